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
use super::problem::{Body, Problem};

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

/// A refusal for a person: the problem's detail on a page with its status.
fn problem_page(p: Problem) -> Response<Body> {
    page(
        p.status,
        "Please try again",
        &format!("<p>{}</p>", escape(&p.detail)),
    )
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
        return problem_page(p);
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
        Err(e) => problem_page(e.into()),
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
            return problem_page(p);
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
        Err(e) => problem_page(e.into()),
    }
}

fn reset_form(token: &str, error: Option<&str>) -> String {
    let error = error
        .map(|e| {
            format!(
                "<p class=\"err\" id=\"error\" role=\"alert\">{}</p>",
                escape(e)
            )
        })
        .unwrap_or_default();
    format!(
        "{error}<form method=\"post\" action=\"/api/auth/password/reset\">\
         <input type=\"hidden\" name=\"token\" value=\"{}\">\
         <label for=\"password\">New password (8 to 72 bytes)</label>\
         <input id=\"password\" name=\"password\" type=\"password\" autocomplete=\"new-password\" required minlength=\"8\">\
         <label for=\"password_confirm\">New password, again</label>\
         <input id=\"password_confirm\" name=\"password_confirm\" type=\"password\" autocomplete=\"new-password\" required minlength=\"8\">\
         <p><button type=\"submit\">Set the new password</button></p></form>",
        escape(token)
    )
}

/// The form behind the link in a reset mail; showing it uses nothing.
pub fn reset_page(token: &str) -> Response<Body> {
    page(
        StatusCode::OK,
        "Choose a new password",
        &reset_form(token, None),
    )
}

/// The reset form's submission: success page, or the form again with the
/// reason next to it.
pub async fn reset_submit(app: &App, req: Request<Incoming>) -> Response<Body> {
    let body = match read_bytes(req, app.body_limits()).await {
        Ok(b) => b,
        Err(p) => {
            return problem_page(p);
        }
    };
    let token = form_field(&body, "token").unwrap_or_default();
    let password = form_field(&body, "password").unwrap_or_default();
    let confirm = form_field(&body, "password_confirm").unwrap_or_default();
    let again = |status: StatusCode, why: &str| {
        page(
            status,
            "Choose a new password",
            &reset_form(&token, Some(why)),
        )
    };
    if password != confirm {
        return again(
            StatusCode::BAD_REQUEST,
            "The two passwords are not the same.",
        );
    }
    match app.accounts.reset_password(&token, &password).await {
        Ok(user) => page(
            StatusCode::OK,
            "Password changed",
            &format!(
                "<p>The password of <strong>{}</strong> is changed. You can log in with it now.</p>",
                escape(&user.email)
            ),
        ),
        Err(AccountError::Token(reason)) => {
            let why = match reason {
                TokenError::Expired => "This reset link has expired. Ask for a new one.",
                TokenError::Used => {
                    "This reset link was already used. Ask for a new one if needed."
                }
                TokenError::Invalid => {
                    "This reset link is not valid, or a newer one was sent since."
                }
            };
            page(
                StatusCode::BAD_REQUEST,
                "Link not valid",
                &format!("<p class=\"err\">{why}</p>"),
            )
        }
        Err(
            e @ (AccountError::PasswordTooShort
            | AccountError::PasswordTooLong
            | AccountError::PasswordTooCommon),
        ) => again(StatusCode::BAD_REQUEST, &e.to_string()),
        Err(e) => problem_page(e.into()),
    }
}
