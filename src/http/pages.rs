//! Server-rendered HTML: the pages behind the links in mails, their forms,
//! and the frame every page shares (branding, security headers).
//!
//! `GET /verify/{token}` and `GET /reset/{token}` only show a form: mail
//! scanners and link previews open links, and opening must use nothing.
//! Forms `POST`. No script, no external asset (inline CSS only), labels on
//! every field, readable on a phone. Everything a user or a mail supplied is
//! HTML-escaped; every page forbids framing, referrers (tokens live in
//! URLs) and caching.

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

const STYLE: &str = "body{font-family:system-ui,sans-serif;max-width:36rem;margin:2rem auto;\
padding:0 1rem;line-height:1.5;color:#1d1d1f;background:#fff}\
header{font-weight:600;color:#555;margin-bottom:1rem}h1{font-size:1.5rem;margin:.5rem 0 1rem}\
label{display:block;margin:.75rem 0 .25rem;font-weight:600}\
input{font:inherit;width:100%;box-sizing:border-box;padding:.6rem;border:1px solid #888;border-radius:4px}\
button{font:inherit;padding:.6rem 1.2rem;margin-top:1rem;border:0;border-radius:4px;background:#0b57d0;color:#fff;cursor:pointer}\
button:focus,input:focus,a:focus,summary:focus{outline:3px solid #f5a623;outline-offset:2px}\
.err{color:#a00;font-weight:600}footer{margin-top:2rem;color:#666;font-size:.9rem}\
details{border:1px solid #ddd;border-radius:4px;margin:.5rem 0;padding:.5rem}\
pre{white-space:pre-wrap;word-break:break-all;background:#f6f6f6;padding:.5rem}";

const CSP: &str = "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; \
frame-ancestors 'none'; base-uri 'none'";

impl App {
    /// A whole page in the product's frame, with the security headers.
    pub fn html(&self, status: StatusCode, title: &str, body_html: &str) -> Response<Body> {
        let b = &self.config.branding;
        let footer = if b.support_email.is_empty() {
            String::new()
        } else {
            let mail = escape(&b.support_email);
            format!("<footer>Need help? Write to <a href=\"mailto:{mail}\">{mail}</a>.</footer>")
        };
        let html = format!(
            "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
             <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
             <title>{t} · {p}</title><style>{STYLE}</style></head>\
             <body><header>{p}</header><main><h1>{t}</h1>{body_html}</main>{footer}</body></html>\n",
            t = escape(title),
            p = escape(&b.product_name),
        );
        let mut resp = Response::new(Full::new(Bytes::from(html)));
        *resp.status_mut() = status;
        let h = resp.headers_mut();
        for (name, value) in [
            ("content-type", "text/html; charset=utf-8"),
            ("content-security-policy", CSP),
            ("x-frame-options", "DENY"),
            ("referrer-policy", "no-referrer"),
            ("cache-control", "no-store"),
            ("x-content-type-options", "nosniff"),
        ] {
            h.insert(name, HeaderValue::from_static(value));
        }
        resp
    }

    /// A refusal for a person: the problem's detail, its status and headers.
    fn problem_page(&self, p: Problem) -> Response<Body> {
        let mut resp = self.html(
            p.status,
            "Please try again",
            &format!("<p class=\"err\">{}</p>", escape(&p.detail)),
        );
        p.add_headers(&mut resp);
        resp
    }
}

/// One address field posting to `action` (the resend and forgot forms).
fn email_form(action: &str, button: &str) -> String {
    format!(
        "<form method=\"post\" action=\"{action}\">\
         <label for=\"email\">Your email address</label>\
         <input id=\"email\" name=\"email\" type=\"email\" autocomplete=\"email\" required>\
         <button type=\"submit\">{button}</button></form>"
    )
}

pub fn verify_page(app: &App, token: &str) -> Response<Body> {
    let body = format!(
        "<p>Press the button to confirm your email address and activate your \
         {} account.</p>\
         <form method=\"post\" action=\"/verify/{}\">\
         <button type=\"submit\">Confirm my address</button></form>",
        escape(&app.config.branding.product_name),
        escape(token)
    );
    app.html(StatusCode::OK, "Confirm your address", &body)
}

pub async fn verify_confirm(app: &App, req: Request<Incoming>, token: &str) -> Response<Body> {
    // The form posts nothing we need, but its body still must stay within limits.
    if let Err(p) = read_bytes(req, app.body_limits()).await {
        return app.problem_page(p);
    }
    match app.accounts.verify(token).await {
        Ok(user) => app.html(
            StatusCode::OK,
            "Address confirmed",
            &format!(
                "<p>Thank you: <strong>{}</strong> is confirmed and your account is active. \
                 You can log in now.</p>",
                escape(&user.email)
            ),
        ),
        Err(AccountError::Token(TokenError::Used)) => app.html(
            StatusCode::OK,
            "Already confirmed",
            "<p>Your address is already confirmed; there is nothing more to do.</p>",
        ),
        Err(AccountError::Token(reason)) => {
            let (title, why) = match reason {
                TokenError::Expired => ("Link expired", "This confirmation link has expired."),
                _ => (
                    "Link not valid",
                    "This confirmation link is not valid, or a newer one was sent since.",
                ),
            };
            app.html(
                StatusCode::BAD_REQUEST,
                title,
                &format!(
                    "<p class=\"err\" role=\"alert\">{why}</p><p>Ask for a new link:</p>{}",
                    email_form("/resend", "Send a new confirmation link")
                ),
            )
        }
        Err(e) => app.problem_page(e.into()),
    }
}

/// The resend and forgot forms: the same answer whether or not the address
/// has an account, like their API routes.
pub async fn email_form_submit(
    app: &App,
    req: Request<Incoming>,
    ip: std::net::IpAddr,
    route: Limited,
) -> Response<Body> {
    if let Err(p) = app.limiter.check(route, ip) {
        return app.problem_page(p);
    }
    let body = match read_bytes(req, app.body_limits()).await {
        Ok(b) => b,
        Err(p) => return app.problem_page(p),
    };
    let email = form_field(&body, "email").unwrap_or_default();
    let (result, action, button) = match route {
        Limited::Forgot => (
            app.accounts.forgot(&email).await,
            "/forgot",
            "Send a reset link",
        ),
        _ => (
            app.accounts.resend(&email).await,
            "/resend",
            "Send a new confirmation link",
        ),
    };
    match result {
        Ok(()) => app.html(
            StatusCode::OK,
            "Check your mail",
            "<p>If the address is registered, a new mail is on its way.</p>",
        ),
        Err(AccountError::EmailInvalid(d)) => app.html(
            StatusCode::BAD_REQUEST,
            "Check the address",
            &format!(
                "<p class=\"err\" role=\"alert\">{}</p>{}",
                escape(d),
                email_form(action, button)
            ),
        ),
        Err(e) => app.problem_page(e.into()),
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
         <input id=\"password\" name=\"password\" type=\"password\" autocomplete=\"new-password\" required>\
         <label for=\"password_confirm\">New password, again</label>\
         <input id=\"password_confirm\" name=\"password_confirm\" type=\"password\" autocomplete=\"new-password\" required>\
         <button type=\"submit\">Set the new password</button></form>",
        escape(token)
    )
}

/// The form behind the link in a reset mail; showing it uses nothing.
pub fn reset_page(app: &App, token: &str) -> Response<Body> {
    app.html(
        StatusCode::OK,
        "Choose a new password",
        &reset_form(token, None),
    )
}

/// The reset form's submission: the success page, or the form again with
/// the reason next to it.
pub async fn reset_submit(app: &App, req: Request<Incoming>) -> Response<Body> {
    let body = match read_bytes(req, app.body_limits()).await {
        Ok(b) => b,
        Err(p) => return app.problem_page(p),
    };
    let token = form_field(&body, "token").unwrap_or_default();
    let password = form_field(&body, "password").unwrap_or_default();
    let confirm = form_field(&body, "password_confirm").unwrap_or_default();
    let again = |why: &str| {
        app.html(
            StatusCode::BAD_REQUEST,
            "Choose a new password",
            &reset_form(&token, Some(why)),
        )
    };
    if password != confirm {
        return again("The two passwords are not the same.");
    }
    match app.accounts.reset_password(&token, &password).await {
        Ok(user) => app.html(
            StatusCode::OK,
            "Password changed",
            &format!(
                "<p>The password of <strong>{}</strong> is changed. You can log in with it now.</p>",
                escape(&user.email)
            ),
        ),
        Err(AccountError::Token(reason)) => {
            let why = match reason {
                TokenError::Expired => "This reset link has expired.",
                TokenError::Used => "This reset link was already used.",
                TokenError::Invalid => {
                    "This reset link is not valid, or a newer one was sent since."
                }
            };
            app.html(
                StatusCode::BAD_REQUEST,
                "Link not valid",
                &format!(
                    "<p class=\"err\" role=\"alert\">{why}</p><p>Ask for a new link:</p>{}",
                    email_form("/forgot", "Send a reset link")
                ),
            )
        }
        Err(
            e @ (AccountError::PasswordTooShort
            | AccountError::PasswordTooLong
            | AccountError::PasswordTooCommon),
        ) => again(&e.to_string()),
        Err(e) => app.problem_page(e.into()),
    }
}
