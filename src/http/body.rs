//! Reading request bodies with a size cap (refused from `Content-Length`
//! before reading when possible), a time cap (hyper has none for bodies),
//! and JSON object parsing with field errors the contract names.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use hyper::body::Incoming;
use hyper::header::{CONTENT_LENGTH, CONTENT_TYPE};
use hyper::{Request, StatusCode};
use serde_json::{Map, Value};

use super::problem::Problem;

#[derive(Debug, Clone, Copy)]
pub struct BodyLimits {
    pub max_bytes: u64,
    pub timeout: Duration,
}

fn too_large(max: u64) -> Problem {
    // The rest of the body is never read, so the connection cannot be reused.
    Problem::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "body_too_large",
        format!("request body must be at most {max} bytes"),
    )
    .with_header("connection", "close")
}

/// The body as bytes, whatever its content type.
pub async fn read_bytes(req: Request<Incoming>, limits: BodyLimits) -> Result<Bytes, Problem> {
    let declared = req
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limits.max_bytes) {
        return Err(too_large(limits.max_bytes));
    }
    let body = Limited::new(req.into_body(), limits.max_bytes as usize);
    match tokio::time::timeout(limits.timeout, body.collect()).await {
        Err(_) => Err(Problem::new(
            StatusCode::REQUEST_TIMEOUT,
            "request_timeout",
            "the request body did not arrive in time",
        )
        .with_header("connection", "close")),
        Ok(Err(e)) if e.downcast_ref::<LengthLimitError>().is_some() => {
            Err(too_large(limits.max_bytes))
        }
        Ok(Err(_)) => Err(Problem::bad_request(
            "malformed_body",
            "the request body could not be read",
        )),
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
    }
}

fn is_json(req: &Request<Incoming>) -> bool {
    let Some(ct) = req
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let essence = ct
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

fn essence(req: &Request<Incoming>) -> String {
    req.headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|ct| ct.split(';').next())
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

/// Whether the body is an HTML form submission.
pub fn is_form(req: &Request<Incoming>) -> bool {
    essence(req) == "application/x-www-form-urlencoded"
}

/// A JSON object body; 415 before reading anything that is not declared JSON.
pub async fn read_json(
    req: Request<Incoming>,
    limits: BodyLimits,
) -> Result<Map<String, Value>, Problem> {
    if !is_json(&req) {
        return Err(Problem::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "send the body as JSON with Content-Type: application/json",
        ));
    }
    let bytes = read_bytes(req, limits).await?;
    match serde_json::from_slice::<Value>(&bytes) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(Problem::bad_request(
            "malformed_json",
            "the body must be a JSON object",
        )),
        Err(_) => Err(Problem::bad_request(
            "malformed_json",
            "the body is not valid JSON",
        )),
    }
}

/// A required string field; other fields are ignored.
pub fn str_field<'a>(obj: &'a Map<String, Value>, name: &str) -> Result<&'a str, Problem> {
    match obj.get(name) {
        None | Some(Value::Null) => Err(Problem::bad_request(
            "missing_field",
            format!("`{name}` is required"),
        )),
        Some(Value::String(s)) => Ok(s),
        Some(_) => Err(Problem::bad_request(
            "invalid_field",
            format!("`{name}` must be a string"),
        )),
    }
}

/// One field of an `application/x-www-form-urlencoded` body.
pub fn form_field(body: &[u8], name: &str) -> Option<String> {
    form_urlencoded::parse(body)
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}
