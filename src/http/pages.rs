//! Server-rendered HTML for the link in the confirmation mail.
//!
//! `GET /verify/{token}` only shows a button: mail scanners and link
//! previews open links, and opening must not confirm an address that
//! someone registered with a stranger's mailbox. The button `POST`s to the
//! same path. Everything a user or a mail supplied is HTML-escaped, and
//! every page forbids framing, referrers (tokens live in URLs) and caching.

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::HeaderValue;
use hyper::{Request, Response, StatusCode};

use crate::accounts::AccountError;
use crate::auth::TokenError;

use super::App;
use super::body::{form_field, read_bytes};
use super::limits::Limited;
use super::problem::Body;

pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;max-width:32rem;margin:2rem auto;\
padding:0 1rem;line-height:1.5;color:#222}h1{font-size:1.5rem}\
button,input{font:inherit;padding:.5rem .75rem}input{width:100%;box-sizing:border-box}\
label{display:block;margin:.75rem 0 .25rem}.err{color:#a00}";

pub fn page(status: StatusCode, title: &str, body_html: &str) -> Response<Body> {
    let html = format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{t}</title><style>{STYLE}</style></head>\
         <body><main><h1>{t}</h1>{body_html}</main></body></html>\n",
        t = escape(title)
    );
    let mut resp = Response::new(Full::new(Bytes::from(html)));
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    for (name, value) in [
        ("content-type", "text/html; charset=utf-8"),
        (
            "content-security-policy",
            "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
        ("x-frame-options", "DENY"),
        ("referrer-policy", "no-referrer"),
        ("cache-control", "no-store"),
        ("x-content-type-options", "nosniff"),
    ] {
        h.insert(name, HeaderValue::from_static(value));
    }
    resp
}

fn resend_form() -> String {
    "<form method=\"post\" action=\"/resend\">\
     <label for=\"email\">Your email address</label>\
     <input id=\"email\" name=\"email\" type=\"email\" autocomplete=\"email\" required>\
     <p><button type=\"submit\">Send a new confirmation link</button></p></form>"
        .to_string()
}

pub fn verify_page(token: &str) -> Response<Body> {
    let body = format!(
        "<p>Confirm your email address to activate your account.</p>\
         <form method=\"post\" action=\"/verify/{}\">\
         <button type=\"submit\">Confirm my address</button></form>",
        escape(token)
    );
    page(StatusCode::OK, "Confirm your address", &body)
}

pub async fn verify_confirm(app: &App, req: Request<Incoming>, token: &str) -> Response<Body> {
    // The form posts nothing we need, but its body still must stay within limits.
    if let Err(p) = read_bytes(req, app.body_limits()).await {
        return page(
            p.status,
            "Request refused",
            &format!("<p>{}</p>", escape(&p.detail)),
        );
    }
    match app.accounts.verify(token).await {
        Ok(v) => page(
            StatusCode::OK,
            "Address confirmed",
            &format!(
                "<p>Thank you: <strong>{}</strong> is confirmed and your account is active.</p>",
                escape(&v.user.email)
            ),
        ),
        Err(AccountError::Token(TokenError::Used)) => page(
            StatusCode::OK,
            "Already confirmed",
            "<p>Your address is already confirmed; there is nothing more to do.</p>",
        ),
        Err(AccountError::Token(reason)) => {
            let why = match reason {
                TokenError::Expired => "This confirmation link has expired.",
                _ => "This confirmation link is not valid, or a newer one was sent since.",
            };
            page(
                StatusCode::BAD_REQUEST,
                "Link not valid",
                &format!(
                    "<p class=\"err\">{why}</p><p>Ask for a new link:</p>{}",
                    resend_form()
                ),
            )
        }
        Err(e) => {
            let p = super::problem::Problem::from(e);
            page(
                p.status,
                "Please try again",
                &format!("<p>{}</p>", escape(&p.detail)),
            )
        }
    }
}

pub async fn resend_form_submit(
    app: &App,
    req: Request<Incoming>,
    ip: std::net::IpAddr,
) -> Response<Body> {
    if let Err(p) = app.limiter.check(Limited::Resend, ip) {
        let mut resp = page(
            p.status,
            "Too many requests",
            "<p>Please wait a minute and try again.</p>",
        );
        for (k, v) in p.headers {
            if let Ok(v) = HeaderValue::from_str(&v) {
                resp.headers_mut().insert(k, v);
            }
        }
        return resp;
    }
    let body = match read_bytes(req, app.body_limits()).await {
        Ok(b) => b,
        Err(p) => {
            return page(
                p.status,
                "Request refused",
                &format!("<p>{}</p>", escape(&p.detail)),
            );
        }
    };
    let email = form_field(&body, "email").unwrap_or_default();
    match app.accounts.resend(&email).await {
        Ok(()) => page(
            StatusCode::OK,
            "Check your mail",
            "<p>If the address is registered, a new mail is on its way.</p>",
        ),
        Err(AccountError::EmailInvalid(d)) => page(
            StatusCode::BAD_REQUEST,
            "Check the address",
            &format!("<p class=\"err\">{}</p>{}", escape(d), resend_form()),
        ),
        Err(e) => {
            let p = super::problem::Problem::from(e);
            page(
                p.status,
                "Please try again",
                &format!("<p>{}</p>", escape(&p.detail)),
            )
        }
    }
}
