//! JSON handlers: parse and validate the body, call one use case, answer.

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::{Request, Response, StatusCode};
use serde_json::json;

use crate::auth;
use crate::store::User;

use super::App;
use super::body::{read_json, str_field};
use super::limits::Limited;
use super::problem::{Body, Problem};

pub type ApiResult = Result<Response<Body>, Problem>;

pub fn json_response(status: StatusCode, value: serde_json::Value) -> Response<Body> {
    let mut resp = Response::new(Full::new(Bytes::from(value.to_string())));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp
}

pub(crate) fn rfc3339(secs: u64) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs);
    humantime::format_rfc3339_seconds(t).to_string()
}

/// The contract's user object.
pub fn user_json(u: &User) -> serde_json::Value {
    json!({
        "id": u.id.to_string(),
        "email": u.email,
        "status": u.status.as_str(),
        "created_at": rfc3339(u.created_at),
        "confirmed_at": u.confirmed_at.map(rfc3339),
    })
}

pub async fn register(app: &App, req: Request<Incoming>, ip: std::net::IpAddr) -> ApiResult {
    app.limiter.check(Limited::Register, ip)?;
    let body = read_json(req, app.body_limits()).await?;
    let email = str_field(&body, "email")?;
    let password = str_field(&body, "password")?;
    app.accounts.register(email, password).await?;
    Ok(json_response(
        StatusCode::ACCEPTED,
        json!({"status": "confirmation_sent"}),
    ))
}

pub async fn verify(app: &App, req: Request<Incoming>) -> ApiResult {
    let body = read_json(req, app.body_limits()).await?;
    let token = str_field(&body, "token")?;
    let user = app.accounts.verify(token).await?;
    Ok(json_response(StatusCode::OK, user_json(&user)))
}

pub async fn resend(app: &App, req: Request<Incoming>, ip: std::net::IpAddr) -> ApiResult {
    app.limiter.check(Limited::Resend, ip)?;
    let body = read_json(req, app.body_limits()).await?;
    let email = str_field(&body, "email")?;
    app.accounts.resend(email).await?;
    Ok(json_response(
        StatusCode::ACCEPTED,
        json!({"status": "confirmation_sent"}),
    ))
}

/// The token of `Authorization: Bearer <token>`.
fn bearer(req: &Request<Incoming>) -> Result<&str, Problem> {
    req.headers()
        .get(hyper::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, t)| t.trim())
        .filter(|t| !t.is_empty())
        .ok_or_else(Problem::unauthorized)
}

pub fn no_content() -> Response<Body> {
    let mut resp = Response::new(Body::default());
    *resp.status_mut() = StatusCode::NO_CONTENT;
    resp
}

pub async fn login(app: &App, req: Request<Incoming>, ip: std::net::IpAddr) -> ApiResult {
    app.limiter.check(Limited::Login, ip)?;
    let body = read_json(req, app.body_limits()).await?;
    let email = str_field(&body, "email")?;
    let password = str_field(&body, "password")?;
    let s = app.accounts.login(email, password).await?;
    Ok(json_response(
        StatusCode::OK,
        json!({"access_token": s.access_token, "token_type": "Bearer", "expires_in": s.expires_in}),
    ))
}

pub fn me(app: &App, req: &Request<Incoming>) -> ApiResult {
    let (user, _) = app.accounts.authenticate(bearer(req)?)?;
    Ok(json_response(StatusCode::OK, user_json(&user)))
}

pub async fn logout(app: &App, req: &Request<Incoming>) -> ApiResult {
    app.accounts.logout(bearer(req)?).await?;
    Ok(no_content())
}

pub async fn delete_me(app: &App, req: Request<Incoming>) -> ApiResult {
    // Authenticate before reading the body: a stranger learns nothing from it.
    let (user, _) = app.accounts.authenticate(bearer(&req)?)?;
    let body = read_json(req, app.body_limits()).await?;
    let password = str_field(&body, "password")?;
    app.accounts.delete(&user, password).await?;
    Ok(no_content())
}

pub async fn change(app: &App, req: Request<Incoming>) -> ApiResult {
    let (user, _) = app.accounts.authenticate(bearer(&req)?)?;
    let body = read_json(req, app.body_limits()).await?;
    let current = str_field(&body, "current_password")?;
    let new = str_field(&body, "new_password")?;
    app.accounts.change_password(&user, current, new).await?;
    Ok(no_content())
}

pub async fn forgot(app: &App, req: Request<Incoming>, ip: std::net::IpAddr) -> ApiResult {
    app.limiter.check(Limited::Forgot, ip)?;
    let body = read_json(req, app.body_limits()).await?;
    let email = str_field(&body, "email")?;
    app.accounts.forgot(email).await?;
    Ok(json_response(
        StatusCode::ACCEPTED,
        json!({"status": "reset_sent"}),
    ))
}

pub async fn reset(app: &App, req: Request<Incoming>) -> ApiResult {
    let body = read_json(req, app.body_limits()).await?;
    let token = str_field(&body, "token")?;
    let password = str_field(&body, "password")?;
    let user = app.accounts.reset_password(token, password).await?;
    Ok(json_response(StatusCode::OK, user_json(&user)))
}

pub fn metrics(app: &App) -> Response<Body> {
    let mut resp = Response::new(Full::new(Bytes::from(super::metrics::render(app))));
    resp.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    resp
}

pub fn healthz() -> Response<Body> {
    let mut resp = Response::new(Full::new(Bytes::from_static(b"ok")));
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    resp
}

/// 200 while the store accepts durable writes and the mail worker runs.
/// The mail figures are as of the worker's last round.
pub fn readyz(app: &App) -> Response<Body> {
    use std::sync::atomic::Ordering::Relaxed;
    let store_ok = app.accounts.store().healthy();
    let mail = &app.mail;
    let worker_ok = mail.running.load(Relaxed);
    let ready = store_ok && worker_ok;
    let pool = app.accounts.auth().pool();
    let body = json!({
        "status": if ready { "ready" } else { "not_ready" },
        "store": if store_ok { "ok" } else { "flush_failed" },
        "mail": {
            "worker": if worker_ok { "running" } else { "stopped" },
            "queue_depth": mail.queue_depth.load(Relaxed),
            "oldest_age_seconds": mail.oldest_age(auth::now()),
            "dead": mail.dead_total.load(Relaxed),
            "sent": mail.sent.load(Relaxed),
            "retried": mail.retried.load(Relaxed),
            "last_error": mail.last_error(),
        },
        "hashing": {
            "workers": pool.workers(),
            "busy": pool.stats().busy.load(Relaxed),
            "queued": pool.stats().queued(),
        },
        "time": rfc3339(auth::now()),
    });
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    json_response(status, body)
}
