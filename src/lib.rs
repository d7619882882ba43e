//! signupd: account sign-up as one daemon.
//!
//! A hyper HTTP server takes sign-ups, hashes passwords with bcrypt on a
//! bounded pool, issues single-use JWTs, and writes users, token state and
//! the outgoing mail queue to sled, durably, before it answers.
//!
//! # Layout
//!
//! Data flows one way: `http` parses and validates → `accounts` decides →
//! `auth` hashes and signs → `store` writes everything that belongs
//! together in one transaction and waits for the shared fsync → `http`
//! answers.
//!
//! - [`config`]: defaults → `daemon.toml` → `SIGNUPD_*` environment, validated once.
//! - [`store`]: sled trees, conditional batches, group commit.
//! - [`auth`]: tokens (`create_token`, `create_confirmation_token`, `decode`) and
//!   password hashing on [`pool`].
//! - [`accounts`]: the use cases, without HTTP, and the per-address limits.
//! - [`mailer`]: the messages of the contract, the delivery worker, the SMTP relay.
//! - [`sink`]: the dev SMTP server that prints like Python's DebuggingServer.
//! - [`http`]: server, route table, handlers, pages, problem documents, metrics.
//! - [`admin`]: the unix admin socket and its CLI client (users, queue, backup).
//! - [`service`]: systemd readiness, stopping and watchdog notifications.
//! - [`Daemon`]: wires them together around listeners bound by the caller.

#![forbid(unsafe_code)]

pub mod accounts;
pub mod admin;
pub mod auth;
pub mod config;
pub mod http;
pub mod mailer;
pub mod pool;
pub mod service;
pub mod sink;
pub mod store;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::accounts::Accounts;
use crate::auth::Auth;
use crate::config::Config;
use crate::http::App;
use crate::mailer::compose::Composer;
use crate::mailer::queue::{RetryPolicy, SystemClock, Worker, WorkerStatus};
use crate::mailer::smtp::{RelayConfig, Security, SmtpRelay};
use crate::pool::HashPool;
use crate::sink::Sink;
use crate::sink::inbox::Inbox;
use crate::sink::session::SessionConfig;
use crate::store::Store;

/// The sockets a daemon serves, bound by the caller (tests bind port 0).
pub struct Listeners {
    pub http: TcpListener,
    /// The dev SMTP sink; when present, all mail is delivered to it.
    pub sink: Option<TcpListener>,
}

impl Listeners {
    /// Binds `server.listen`, and `dev.sink_listen` when the sink is on.
    pub async fn bind(config: &Config) -> anyhow::Result<Listeners> {
        let http_addr = config::socket_addr("server.listen", &config.server.listen)?;
        let http = TcpListener::bind(http_addr)
            .await
            .with_context(|| format!("cannot listen on {http_addr} (server.listen)"))?;
        let sink = if config.dev.sink {
            let addr = config::socket_addr("dev.sink_listen", &config.dev.sink_listen)?;
            Some(
                TcpListener::bind(addr)
                    .await
                    .with_context(|| format!("cannot listen on {addr} (dev.sink_listen)"))?,
            )
        } else {
            None
        };
        Ok(Listeners { http, sink })
    }
}

/// A daemon with its store open, ready to serve on listeners it is given.
pub struct Daemon {
    app: Arc<App>,
    store: Store,
    listeners: Listeners,
    admin: tokio::net::UnixListener,
    worker: Worker<SmtpRelay, SystemClock>,
    sink: Option<Sink>,
}

impl Daemon {
    /// Opens the store and builds the services around bound listeners.
    pub fn open(config: Config, listeners: Listeners) -> anyhow::Result<Daemon> {
        let store = Store::open(Path::new(&config.storage.path), config.storage.cache_mb)?;
        // Bound here, once the store's lock proved this directory ours, and
        // before anything announces the daemon: the socket exists when it runs.
        let admin = admin::bind(&config.admin_socket_path())?;
        let pool = HashPool::new(config.hash_workers(), config.auth.hash_queue as usize)
            .context("cannot start the hashing threads")?;
        let auth = Arc::new(Auth::new(&config.auth, pool)?);
        let composer = Composer::new(&config.mail.from, &config.server.public_url);
        let mail_ready = Arc::new(Notify::new());
        let throttle = crate::accounts::throttle::Throttle::new(&config.limits);
        let accounts = Accounts::new(store.clone(), auth, composer, mail_ready.clone(), throttle);

        let mut relay = RelayConfig::from_config(&config.mail);
        let (sink, inbox) = match &listeners.sink {
            Some(l) => {
                let addr: SocketAddr = l.local_addr()?;
                relay.host = addr.ip().to_string();
                relay.port = addr.port();
                relay.security = Security::None;
                relay.credentials = None;
                let inbox = Arc::new(Inbox::new(config.dev.keep as usize));
                let mut sink = Sink::new(SessionConfig {
                    smtputf8: config.dev.sink_smtputf8,
                    ..SessionConfig::default()
                });
                sink.inbox = Some(inbox.clone());
                (Some(sink), Some(inbox))
            }
            None => (None, None),
        };
        let status = Arc::new(WorkerStatus::default());
        let policy = RetryPolicy {
            initial: config.mail.retry_initial,
            max: config.mail.retry_max,
            max_lifetime: config.mail.max_lifetime,
        };
        let worker = Worker::new(
            store.clone(),
            SmtpRelay::new(relay),
            SystemClock,
            policy,
            mail_ready,
            status.clone(),
        );
        let app = Arc::new(App::new(config, accounts, status, inbox));
        Ok(Daemon {
            app,
            store,
            listeners,
            admin,
            worker,
            sink,
        })
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listeners.http.local_addr()
    }

    pub fn sink_addr(&self) -> Option<SocketAddr> {
        self.listeners
            .sink
            .as_ref()
            .and_then(|l| l.local_addr().ok())
    }

    /// Serves until `shutdown` fires, then finishes requests in flight
    /// (within `server.shutdown_timeout`), lets the mail worker finish the
    /// message it is sending, and makes the store durable.
    pub async fn run(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let Daemon {
            app,
            store,
            listeners,
            admin,
            worker,
            sink,
        } = self;
        let background = CancellationToken::new();
        let worker = tokio::spawn(worker.run(background.clone()));
        let sink = match (sink, listeners.sink) {
            (Some(sink), Some(l)) => Some(tokio::spawn(sink.serve(l, background.clone()))),
            _ => None,
        };
        tokio::spawn({
            let app = app.clone();
            async move { app.accounts.auth().warm_up().await }
        });
        let purge = tokio::spawn({
            let app = app.clone();
            let background = background.clone();
            async move {
                // The first tick is immediate: revocations that expired while stopped go now.
                let mut tick = tokio::time::interval(Duration::from_secs(60));
                loop {
                    tokio::select! {
                        _ = tick.tick() => app.purge(),
                        _ = background.cancelled() => break,
                    }
                }
            }
        });
        let deadline = Duration::from_secs(app.config.server.shutdown_timeout);
        let admin_path = app.config.admin_socket_path();
        let admin = tokio::spawn(admin::serve(admin, app.clone(), background.clone()));
        http::metrics::handle();
        // Ready before the first watchdog ping, which fires at once.
        service::ready();
        let watchdog = tokio::spawn(service::watchdog(store.clone(), background.clone()));
        let stopping = shutdown.clone();
        tokio::spawn(async move {
            stopping.cancelled().await;
            service::stopping();
        });
        http::server::serve(listeners.http, app, shutdown).await;
        background.cancel();
        let _ = watchdog.await;
        let _ = admin.await;
        let _ = std::fs::remove_file(&admin_path);
        if tokio::time::timeout(deadline, worker).await.is_err() {
            tracing::warn!("the mail worker did not stop in time; unsent mail stays queued");
        }
        if let Some(sink) = sink {
            let _ = sink.await;
        }
        let _ = purge.await;
        store
            .commit()
            .await
            .context("final flush of the store failed")?;
        store.close();
        tracing::info!("stopped");
        Ok(())
    }
}
