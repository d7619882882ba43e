//! The HTTP edge: server (accept, limits, timeouts, shutdown), one route
//! table, thin handlers, and the single mapping from errors to responses.

pub mod api;
pub mod body;
pub mod client_ip;
pub mod devmail;
pub mod limits;
pub mod metrics;
pub mod pages;
pub mod problem;
pub mod routes;
pub mod server;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hyper::body::Incoming;
use hyper::header::HeaderValue;
use hyper::{Request, Response};

use crate::accounts::Accounts;
use crate::config::Config;
use crate::mailer::queue::WorkerStatus;
use crate::sink::inbox::Inbox;

use body::BodyLimits;
use client_ip::Cidr;
use limits::{Limited, Limiter};
use problem::{Body, Problem};
use routes::{Endpoint, Match};

/// Everything a request can reach.
pub struct App {
    pub config: Config,
    pub accounts: Accounts,
    pub limiter: Limiter,
    pub trusted_proxies: Vec<Cidr>,
    pub mail: Arc<WorkerStatus>,
    /// The dev sink's messages; `/dev/mail` exists only when this is set.
    pub inbox: Option<Arc<Inbox>>,
}

impl App {
    pub fn new(
        config: Config,
        accounts: Accounts,
        mail: Arc<WorkerStatus>,
        inbox: Option<Arc<Inbox>>,
    ) -> App {
        let limiter = Limiter::new(&config.limits);
        let trusted_proxies = config
            .limits
            .trusted_proxies
            .iter()
            .filter_map(|c| Cidr::parse(c))
            .collect();
        App {
            config,
            accounts,
            limiter,
            trusted_proxies,
            mail,
            inbox,
        }
    }

    /// Forgets limiter state and revocations that no longer matter.
    pub fn purge(&self) {
        let now = crate::auth::now();
        metrics::handle().run_upkeep();
        self.limiter.purge();
        self.accounts.throttle().purge(crate::auth::now_ms());
        match self.accounts.store().purge_revoked(now) {
            Ok(0) => {}
            Ok(n) => tracing::debug!(purged = n, "forgot expired revocations"),
            Err(e) => tracing::warn!(error = %e, "cannot purge expired revocations"),
        }
    }

    pub fn body_limits(&self) -> BodyLimits {
        BodyLimits {
            max_bytes: self.config.server.max_body_bytes,
            timeout: Duration::from_secs(self.config.server.body_read_timeout),
        }
    }
}

/// Answers one request. Handlers run in their own task so that a panic
/// becomes a 500 for that request instead of a dropped connection.
pub async fn handle(app: Arc<App>, req: Request<Incoming>, peer: SocketAddr) -> Response<Body> {
    let start = Instant::now();
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let (pattern, resp) = match routes::route(&method, &path, app.inbox.is_some()) {
        Match::NotFound => ("-", Problem::not_found().into_response()),
        Match::MethodNotAllowed { pattern, allow } => (
            pattern,
            Problem::new(
                hyper::StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                format!("{method} is not allowed here; use {allow}"),
            )
            .with_header("allow", allow)
            .into_response(),
        ),
        Match::Found {
            endpoint,
            pattern,
            param,
        } => {
            let param = param.map(str::to_string);
            let ip = client_ip::client_ip(peer.ip(), req.headers(), &app.trusted_proxies);
            let task = tokio::spawn(dispatch(app, endpoint, req, param, ip));
            let resp = match task.await {
                Ok(resp) => resp,
                Err(e) => {
                    tracing::error!(route = pattern, error = %e, "handler panicked");
                    Problem::internal().into_response()
                }
            };
            (pattern, resp)
        }
    };
    metrics::record_request(
        pattern,
        resp.status().as_u16(),
        start.elapsed().as_secs_f64(),
    );
    // The route pattern, never the path: paths carry tokens.
    tracing::info!(
        target: "signupd::access",
        method = %method,
        route = pattern,
        status = resp.status().as_u16(),
        micros = start.elapsed().as_micros() as u64,
    );
    let mut resp = resp;
    resp.headers_mut()
        .entry("cache-control")
        .or_insert(HeaderValue::from_static("no-store"));
    resp
}

async fn dispatch(
    app: Arc<App>,
    endpoint: Endpoint,
    req: Request<Incoming>,
    param: Option<String>,
    ip: IpAddr,
) -> Response<Body> {
    let token = param.unwrap_or_default();
    let result = match endpoint {
        Endpoint::Register => api::register(&app, req, ip).await,
        Endpoint::Verify => api::verify(&app, req).await,
        Endpoint::Resend => api::resend(&app, req, ip).await,
        Endpoint::Login => api::login(&app, req, ip).await,
        Endpoint::Me => api::me(&app, &req),
        Endpoint::DeleteMe => api::delete_me(&app, req).await,
        Endpoint::Logout => api::logout(&app, &req).await,
        Endpoint::Forgot => api::forgot(&app, req, ip).await,
        Endpoint::Reset if body::is_form(&req) => Ok(pages::reset_submit(&app, req).await),
        Endpoint::Reset => api::reset(&app, req).await,
        Endpoint::Change => api::change(&app, req).await,
        Endpoint::ResetPage => Ok(pages::reset_page(&app, &token)),
        Endpoint::Healthz => Ok(api::healthz()),
        Endpoint::Readyz => Ok(api::readyz(&app)),
        Endpoint::Metrics => Ok(api::metrics(&app)),
        Endpoint::VerifyPage => Ok(pages::verify_page(&app, &token)),
        Endpoint::VerifyConfirm => Ok(pages::verify_confirm(&app, req, &token).await),
        Endpoint::ResendForm => Ok(pages::email_form_submit(&app, req, ip, Limited::Resend).await),
        Endpoint::ForgotForm => Ok(pages::email_form_submit(&app, req, ip, Limited::Forgot).await),
        Endpoint::DevInbox => devmail::inbox_page(&app),
        Endpoint::DevList => devmail::list(&app),
        Endpoint::DevMessage => devmail::message(&app, &token),
        Endpoint::DevClear => devmail::clear(&app),
        Endpoint::DevClearForm => devmail::clear_form(&app),
    };
    result.unwrap_or_else(Problem::into_response)
}
