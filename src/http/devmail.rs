//! `/dev/mail`: what the built-in sink received, newest first, as an HTML
//! inbox and as JSON. Routed only while the sink runs.

use hyper::StatusCode;
use serde_json::json;
use uuid::Uuid;

use crate::sink::inbox::{Inbox, StoredMessage};

use super::App;
use super::api::{ApiResult, json_response, rfc3339};
use super::pages::escape;
use super::problem::Problem;

fn inbox(app: &App) -> Result<&Inbox, Problem> {
    app.inbox.as_deref().ok_or_else(Problem::not_found)
}

fn summary(m: &StoredMessage) -> serde_json::Value {
    json!({
        "id": m.id.to_string(),
        "received_at": rfc3339(m.received_at),
        "from": m.from,
        "to": m.to,
        "subject": m.subject,
        "size": m.raw.len(),
    })
}

pub fn list(app: &App) -> ApiResult {
    let all: Vec<_> = inbox(app)?.list().iter().map(summary).collect();
    Ok(json_response(StatusCode::OK, serde_json::Value::Array(all)))
}

pub fn message(app: &App, id: &str) -> ApiResult {
    let m = Uuid::parse_str(id)
        .ok()
        .and_then(|id| inbox(app).ok()?.get(id))
        .ok_or_else(|| Problem::new(StatusCode::NOT_FOUND, "not_found", "no such message"))?;
    let mut v = summary(&m);
    v["raw"] = String::from_utf8_lossy(&m.raw).into_owned().into();
    Ok(json_response(StatusCode::OK, v))
}

pub fn clear(app: &App) -> ApiResult {
    inbox(app)?.clear();
    Ok(super::api::no_content())
}

/// The inbox's "empty" button: a form can only POST, then back to the inbox.
pub fn clear_form(app: &App) -> ApiResult {
    inbox(app)?.clear();
    let mut resp = super::api::no_content();
    *resp.status_mut() = StatusCode::SEE_OTHER;
    resp.headers_mut().insert(
        "location",
        hyper::header::HeaderValue::from_static("/dev/mail"),
    );
    Ok(resp)
}

/// Escapes `text` and turns http(s) URLs into links, leaving out the
/// punctuation that ends a sentence ("…/verify/TOKEN.").
pub fn linkify(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(start) = ["http://", "https://"]
        .iter()
        .filter_map(|p| rest.find(p))
        .min()
    {
        out.push_str(&escape(&rest[..start]));
        let tail = &rest[start..];
        let mut end = tail
            .find(|c: char| c.is_whitespace() || matches!(c, '<' | '>' | '"'))
            .unwrap_or(tail.len());
        while end > 0 && tail[..end].ends_with(['.', ',', ')', ';', ':', '!', '?']) {
            end -= 1;
        }
        let url = escape(&tail[..end]);
        out.push_str(&format!("<a href=\"{url}\">{url}</a>"));
        rest = &tail[end..];
    }
    out.push_str(&escape(rest));
    out
}

pub fn inbox_page(app: &App) -> ApiResult {
    let messages = inbox(app)?.list();
    let mut body = format!(
        "<p>{} message(s) received by the built-in SMTP sink, newest first. \
         Open one to read it; its links work.</p>\
         <form method=\"post\" action=\"/dev/mail/clear\">\
         <button type=\"submit\">Empty the inbox</button></form>",
        messages.len()
    );
    for m in &messages {
        let raw = String::from_utf8_lossy(&m.raw);
        body.push_str(&format!(
            "<details class=\"message\"><summary><strong>{}</strong> to {} \
             <small>{}</small></summary><pre>{}</pre></details>",
            escape(&m.subject),
            escape(&m.to.join(", ")),
            rfc3339(m.received_at),
            linkify(&raw)
        ));
    }
    Ok(app.html(StatusCode::OK, "Dev mail", &body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_are_clickable_and_everything_else_escaped() {
        assert_eq!(
            linkify("Confirm: http://x.test/verify/a.b.c.\r\n<b>"),
            "Confirm: <a href=\"http://x.test/verify/a.b.c\">http://x.test/verify/a.b.c</a>.\r\n&lt;b&gt;"
        );
    }
}
