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
//! - [`accounts`]: the use cases, without HTTP.
//! - [`mailer`]: the messages of the contract.
//! - [`http`]: server, route table, handlers, pages, problem documents.
//! - [`Daemon`]: wires them together around listeners bound by the caller.

#![forbid(unsafe_code)]

pub mod accounts;
pub mod auth;
pub mod config;
pub mod http;
pub mod mailer;
pub mod pool;
pub mod store;

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
use crate::pool::HashPool;
use crate::store::Store;

/// A daemon with its store open, ready to serve on listeners it is given.
pub struct Daemon {
    app: Arc<App>,
    store: Store,
}

impl Daemon {
    /// Opens the store and builds the services; binds nothing.
    pub fn open(config: Config) -> anyhow::Result<Daemon> {
        let store = Store::open(Path::new(&config.storage.path), config.storage.cache_mb)?;
        let pool = HashPool::new(config.hash_workers(), config.auth.hash_queue as usize)
            .context("cannot start the hashing threads")?;
        let auth = Arc::new(Auth::new(&config.auth, pool)?);
        let composer = Composer::new(&config.mail.from, &config.server.public_url);
        let mail_ready = Arc::new(Notify::new());
        let accounts = Accounts::new(store.clone(), auth, composer, mail_ready);
        Ok(Daemon {
            app: Arc::new(App::new(config, accounts)),
            store,
        })
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Serves until `shutdown` fires, then finishes requests in flight
    /// (within `server.shutdown_timeout`) and makes the store durable.
    pub async fn run(
        self,
        listener: TcpListener,
        shutdown: CancellationToken,
    ) -> anyhow::Result<()> {
        let purge = tokio::spawn({
            let app = self.app.clone();
            let shutdown = shutdown.clone();
            async move {
                let mut tick = tokio::time::interval(Duration::from_secs(60));
                loop {
                    tokio::select! {
                        _ = tick.tick() => app.limiter.purge(),
                        _ = shutdown.cancelled() => break,
                    }
                }
            }
        });
        http::server::serve(listener, self.app.clone(), shutdown).await;
        purge.abort();
        self.store
            .commit()
            .await
            .context("final flush of the store failed")?;
        self.store.close();
        tracing::info!("stopped");
        Ok(())
    }
}
