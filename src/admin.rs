//! The admin socket and its command-line client: accounts, the mail queue
//! and backups of a running daemon.
//!
//! A unix socket (owner-only permissions; relative paths live in the store
//! directory) takes one JSON request per connection and answers one JSON
//! line, or for a backup a header line followed by the snapshot. The CLI
//! cannot open the store itself while the daemon runs (sled holds a lock),
//! so everything goes through the daemon; `restore` is the exception and
//! needs the daemon stopped.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, bail};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixListener;
use tokio_util::sync::CancellationToken;

use crate::accounts::validate_email;
use crate::http::App;
use crate::http::api::user_json;
use crate::store::{Batch, QueuedMail, TreeId, encode};

/// Binds the socket, replacing a stale one, readable by the owner only.
pub fn bind(path: &Path) -> anyhow::Result<UnixListener> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).ok();
    }
    // The store's lock already proved no other daemon uses this directory.
    let _ = std::fs::remove_file(path);
    let listener = UnixListener::bind(path)
        .with_context(|| format!("cannot bind the admin socket {}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    Ok(listener)
}

pub async fn serve(listener: UnixListener, app: Arc<App>, shutdown: CancellationToken) {
    loop {
        let stream = tokio::select! {
            r = listener.accept() => match r {
                Ok((s, _)) => s,
                Err(e) => {
                    tracing::warn!(error = %e, "admin: accept failed");
                    continue;
                }
            },
            _ = shutdown.cancelled() => break,
        };
        let app = app.clone();
        tokio::spawn(async move {
            if let Err(e) = connection(stream, &app).await {
                tracing::debug!(error = %e, "admin: connection ended");
            }
        });
    }
}

async fn connection(stream: tokio::net::UnixStream, app: &App) -> std::io::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut line = String::new();
    tokio::io::BufReader::new(read.take(64 * 1024))
        .read_line(&mut line)
        .await?;
    let request: Value = serde_json::from_str(&line).unwrap_or(Value::Null);
    if request["cmd"] == "backup" {
        let mut out = Vec::new();
        return match app.accounts.store().snapshot(&mut out) {
            Ok(records) => {
                let head = json!({"ok": true, "data": {"records": records}});
                write.write_all(format!("{head}\n").as_bytes()).await?;
                write.write_all(&out).await
            }
            Err(e) => reply(&mut write, Err(e.to_string())).await,
        };
    }
    let result = handle(app, &request).await;
    reply(&mut write, result).await
}

async fn reply(
    write: &mut (impl tokio::io::AsyncWrite + Unpin),
    result: Result<Value, String>,
) -> std::io::Result<()> {
    let line = match result {
        Ok(data) => json!({"ok": true, "data": data}),
        Err(error) => json!({"ok": false, "error": error}),
    };
    write.write_all(format!("{line}\n").as_bytes()).await
}

fn mail_json(m: &QueuedMail, state: &str) -> Value {
    json!({
        "id": m.id.to_string(), "state": state, "kind": m.kind, "to": m.to,
        "attempts": m.attempts, "next_attempt_at": m.next_attempt_at,
        "created_at": m.created_at, "last_error": m.last_error,
    })
}

async fn handle(app: &App, req: &Value) -> Result<Value, String> {
    let store = app.accounts.store();
    let s = |e: crate::store::StoreError| e.to_string();
    let arg = |name: &str| {
        req[name]
            .as_str()
            .map(str::to_string)
            .ok_or(format!("`{name}` is required"))
    };
    let user_by = |email: &str| -> Result<crate::store::User, String> {
        let email = validate_email(email).map_err(|e| e.to_string())?;
        store
            .user_by_email(&email.normalized)
            .map_err(s)?
            .map(|u| u.value)
            .ok_or(format!("no account for {}", email.typed))
    };
    match req["cmd"].as_str().unwrap_or("") {
        "users_list" => Ok(Value::Array(
            store.users().map_err(s)?.iter().map(user_json).collect(),
        )),
        "users_show" => {
            let user = user_by(&arg("email")?)?;
            let queued = store
                .outbox()
                .map_err(s)?
                .iter()
                .filter(|m| m.user_id == user.id)
                .count();
            let mut v = user_json(&user);
            v["queued_mail"] = queued.into();
            Ok(v)
        }
        "users_delete" => {
            let user = user_by(&arg("email")?)?;
            app.accounts
                .delete_user(&user)
                .await
                .map_err(|e| e.to_string())?;
            Ok(user_json(&user))
        }
        "queue_list" => {
            let mut all: Vec<Value> = store
                .outbox()
                .map_err(s)?
                .iter()
                .map(|m| mail_json(m, "pending"))
                .collect();
            all.extend(
                store
                    .dead_mail()
                    .map_err(s)?
                    .iter()
                    .map(|m| mail_json(m, "dead")),
            );
            Ok(Value::Array(all))
        }
        cmd @ ("queue_retry" | "queue_drop") => {
            let id = arg("id")?;
            let pending = store
                .outbox_versioned()
                .map_err(s)?
                .into_iter()
                .find(|m| m.value.id.to_string() == id);
            let dead = store
                .dead_mail()
                .map_err(s)?
                .into_iter()
                .find(|m| m.id.to_string() == id);
            let mut b = Batch::new();
            let mail = match (pending, dead) {
                (Some(p), _) => {
                    b.expect(TreeId::Outbox, p.value.id.as_bytes(), Some(p.raw));
                    p.value
                }
                (None, Some(d)) => {
                    b.remove(TreeId::Dead, d.id.as_bytes());
                    d
                }
                (None, None) => return Err(format!("no queued or dead mail {id}")),
            };
            if cmd == "queue_drop" {
                b.remove(TreeId::Outbox, mail.id.as_bytes());
            } else {
                let mut again = mail.clone();
                again.next_attempt_at = crate::auth::now();
                again.attempts = 0;
                b.put(TreeId::Outbox, mail.id.as_bytes(), encode(&again));
            }
            store.apply(&b).map_err(s)?;
            store.commit().await.map_err(s)?;
            app.accounts.wake_mail();
            Ok(mail_json(
                &mail,
                if cmd == "queue_drop" {
                    "dropped"
                } else {
                    "pending"
                },
            ))
        }
        other => Err(format!("unknown command {other:?}")),
    }
}

/// Sends one request to a running daemon; returns its `data`.
pub fn request(socket: &Path, req: Value) -> anyhow::Result<Value> {
    request_raw(socket, req, None)
}

/// A backup of a running daemon's store, written to `file`.
pub fn backup(socket: &Path, file: &Path) -> anyhow::Result<u64> {
    let tmp = file.with_extension("partial");
    let mut out =
        std::fs::File::create(&tmp).with_context(|| format!("cannot write {}", tmp.display()))?;
    let data = request_raw(socket, json!({"cmd": "backup"}), Some(&mut out))?;
    out.sync_all()?;
    std::fs::rename(&tmp, file)?;
    Ok(data["records"].as_u64().unwrap_or(0))
}

fn request_raw(
    socket: &Path,
    req: Value,
    rest: Option<&mut std::fs::File>,
) -> anyhow::Result<Value> {
    let mut stream = std::os::unix::net::UnixStream::connect(socket).with_context(|| {
        format!(
            "cannot reach the daemon's admin socket {} (is signupd running with this configuration?)",
            socket.display()
        )
    })?;
    writeln!(stream, "{req}")?;
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let answer: Value = serde_json::from_str(&line).context("the daemon's answer is not JSON")?;
    if answer["ok"] != true {
        bail!(
            "{}",
            answer["error"]
                .as_str()
                .unwrap_or("the daemon refused the request")
        );
    }
    if let Some(out) = rest {
        std::io::copy(&mut reader, out)?;
    }
    Ok(answer["data"].clone())
}
