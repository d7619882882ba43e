//! RFC 9457 problem documents: the one place where errors become responses.

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::{Response, StatusCode};

use crate::accounts::AccountError;
use crate::auth::TokenError;

pub type Body = Full<Bytes>;

/// A refusal: status, stable `code`, a sentence for people, extra headers.
#[derive(Debug, Clone)]
pub struct Problem {
    pub status: StatusCode,
    pub code: &'static str,
    pub detail: String,
    pub headers: Vec<(&'static str, String)>,
}

impl Problem {
    pub fn new(status: StatusCode, code: &'static str, detail: impl Into<String>) -> Self {
        Problem {
            status,
            code,
            detail: detail.into(),
            headers: Vec::new(),
        }
    }

    pub fn with_header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    pub fn bad_request(code: &'static str, detail: impl Into<String>) -> Self {
        Problem::new(StatusCode::BAD_REQUEST, code, detail)
    }

    pub fn not_found() -> Self {
        Problem::new(StatusCode::NOT_FOUND, "not_found", "no such route")
    }

    pub fn internal() -> Self {
        Problem::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_error",
            "the server could not complete the request; nothing was changed or it is safe to retry",
        )
    }

    pub fn unauthorized() -> Self {
        Problem::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "send a valid access token as Authorization: Bearer <token>",
        )
        .with_header("www-authenticate", "Bearer")
    }

    pub fn rate_limited(retry_after: u64) -> Self {
        Problem::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            "too many requests; retry later",
        )
        .with_header("retry-after", retry_after.max(1).to_string())
    }

    pub fn overloaded() -> Self {
        Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "overloaded",
            "the server is busy hashing passwords; retry shortly",
        )
        .with_header("retry-after", "1")
    }

    pub fn into_response(self) -> Response<Body> {
        let doc = serde_json::json!({
            "type": "about:blank",
            "title": self.status.canonical_reason().unwrap_or("Error"),
            "status": self.status.as_u16(),
            "code": self.code,
            "detail": self.detail,
        });
        let mut resp = Response::new(Full::new(Bytes::from(doc.to_string())));
        *resp.status_mut() = self.status;
        resp.headers_mut().insert(
            CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        self.add_headers(&mut resp);
        resp
    }

    /// Puts the problem's extra headers (Retry-After, Allow, …) on `resp`.
    pub fn add_headers<B>(&self, resp: &mut Response<B>) {
        for (name, value) in &self.headers {
            if let Ok(v) = HeaderValue::from_str(value) {
                resp.headers_mut().insert(*name, v);
            }
        }
    }
}

impl From<TokenError> for Problem {
    fn from(e: TokenError) -> Self {
        let code = match e {
            TokenError::Invalid => "token_invalid",
            TokenError::Expired => "token_expired",
            TokenError::Used => "token_used",
        };
        Problem::bad_request(code, e.to_string())
    }
}

impl From<AccountError> for Problem {
    fn from(e: AccountError) -> Self {
        match e {
            AccountError::EmailInvalid(d) => Problem::bad_request("email_invalid", d),
            AccountError::PasswordTooShort => {
                Problem::bad_request("password_too_short", e.to_string())
            }
            AccountError::PasswordTooLong => {
                Problem::bad_request("password_too_long", e.to_string())
            }
            AccountError::PasswordTooCommon => {
                Problem::bad_request("password_too_common", e.to_string())
            }
            AccountError::InvalidCredentials => Problem::new(
                StatusCode::UNAUTHORIZED,
                "invalid_credentials",
                e.to_string(),
            ),
            AccountError::EmailUnconfirmed => {
                Problem::new(StatusCode::FORBIDDEN, "email_unconfirmed", e.to_string())
            }
            AccountError::Unauthorized => Problem::unauthorized(),
            AccountError::TooManyAttempts(wait) => Problem::rate_limited(wait),
            AccountError::Token(t) => t.into(),
            AccountError::Overloaded => Problem::overloaded(),
            AccountError::Internal(detail) => {
                tracing::error!(error = %detail, "request failed");
                Problem::internal()
            }
        }
    }
}
