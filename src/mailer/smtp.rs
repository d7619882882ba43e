//! The SMTP relay transport, over mail-send: plain, STARTTLS or implicit
//! TLS, optional AUTH, one connection reused for a round of messages, and a
//! timeout on every step (mail-send's default is an hour).
//!
//! Replies are classified by their severity: 4xx and broken connections are
//! retried, 5xx is final. Configuration faults (no STARTTLS offered, AUTH
//! refused) are retried too, so the queue waits for an operator's fix until
//! `max_lifetime` instead of burying every message at once.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use mail_send::smtp::message::{Address, Message, Parameters};
use mail_send::{Credentials, SmtpClient, SmtpClientBuilder};
use tokio::io::{AsyncRead, AsyncWrite};

use super::queue::{DeliveryError, FailureKind, Transport};
use crate::config::{MailConfig, Secret};
use crate::store::QueuedMail;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Security {
    None,
    StartTls,
    Tls,
}

#[derive(Debug, Clone)]
pub struct RelayConfig {
    pub host: String,
    pub port: u16,
    pub security: Security,
    pub credentials: Option<(String, Secret)>,
    pub timeout: Duration,
    pub helo: String,
}

impl RelayConfig {
    pub fn from_config(m: &MailConfig) -> RelayConfig {
        let security = match m.smtp_security.as_str() {
            "starttls" => Security::StartTls,
            "tls" => Security::Tls,
            _ => Security::None,
        };
        let helo = m
            .from
            .rsplit_once('@')
            .map_or("localhost", |(_, d)| d)
            .to_string();
        RelayConfig {
            host: m.smtp_host.clone(),
            port: m.smtp_port as u16,
            security,
            credentials: (!m.smtp_username.is_empty())
                .then(|| (m.smtp_username.clone(), m.smtp_password.clone())),
            timeout: Duration::from_secs(30),
            helo,
        }
    }
}

type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// One open SMTP connection, whatever its stream type.
trait Connection: Send {
    fn send<'a>(&'a mut self, msg: Message<'a>) -> BoxFuture<'a, mail_send::Result<()>>;
    fn rset(&mut self) -> BoxFuture<'_, mail_send::Result<()>>;
    fn quit(self: Box<Self>) -> BoxFuture<'static, mail_send::Result<()>>;
}

impl<T: AsyncRead + AsyncWrite + Unpin + Send + 'static> Connection for SmtpClient<T> {
    fn send<'a>(&'a mut self, msg: Message<'a>) -> BoxFuture<'a, mail_send::Result<()>> {
        Box::pin(async move { SmtpClient::send(self, msg).await.map(|_| ()) })
    }
    fn rset(&mut self) -> BoxFuture<'_, mail_send::Result<()>> {
        Box::pin(SmtpClient::rset(self))
    }
    fn quit(self: Box<Self>) -> BoxFuture<'static, mail_send::Result<()>> {
        Box::pin(SmtpClient::quit(*self))
    }
}

pub struct SmtpRelay {
    cfg: RelayConfig,
    conn: Option<Box<dyn Connection>>,
}

impl SmtpRelay {
    pub fn new(cfg: RelayConfig) -> SmtpRelay {
        SmtpRelay { cfg, conn: None }
    }
}

async fn connect(c: &RelayConfig) -> Result<Box<dyn Connection>, DeliveryError> {
    let mut b = SmtpClientBuilder::new(c.host.clone(), c.port)
        .map_err(|e| DeliveryError::new(FailureKind::Connection, format!("TLS setup: {e}")))?
        .timeout(c.timeout)
        .helo_host(c.helo.clone())
        .implicit_tls(c.security == Security::Tls);
    if let Some((user, pass)) = &c.credentials {
        b = b.credentials(Credentials::Plain {
            username: user.clone(),
            secret: pass.expose().to_string(),
        });
    }
    // mail-send writes a command, the message and its final dot as
    // separate small writes; with Nagle on, each transaction waits out
    // the peer's delayed ACK (about 40 ms). Off, a transaction takes
    // what the round trips take.
    let conn: Box<dyn Connection> = match c.security {
        Security::None => {
            let client = b.connect_plain().await.map_err(classify)?;
            let _ = client.stream.set_nodelay(true);
            Box::new(client)
        }
        Security::StartTls | Security::Tls => {
            let client = b.connect().await.map_err(classify)?;
            let _ = client.stream.get_ref().0.set_nodelay(true);
            Box::new(client)
        }
    };
    Ok(conn)
}

impl Transport for SmtpRelay {
    async fn send(&mut self, mail: &QueuedMail) -> Result<(), DeliveryError> {
        if self.conn.is_none() {
            self.conn = Some(connect(&self.cfg).await?);
        }
        let Some(conn) = self.conn.as_mut() else {
            return Err(DeliveryError::new(FailureKind::Connection, "not connected"));
        };
        let mut params = Parameters::new();
        if !mail.raw.is_ascii() {
            params.add(("BODY", "8BITMIME"));
        }
        if !mail.from.is_ascii() || !mail.to.is_ascii() {
            params.add("SMTPUTF8");
        }
        let msg = Message {
            mail_from: Address::new(mail.from.as_str(), params),
            rcpt_to: vec![Address::from(mail.to.as_str())],
            body: mail.raw.as_bytes().into(),
        };
        match conn.send(msg).await {
            Ok(()) => Ok(()),
            Err(e) => {
                let err = classify(e);
                if err.kind == FailureKind::Connection || conn.rset().await.is_err() {
                    // mail-send does not reset after a refusal; a broken session is dropped.
                    self.conn = None;
                }
                Err(err)
            }
        }
    }

    async fn finish(&mut self) {
        if let Some(conn) = self.conn.take() {
            let _ = conn.quit().await;
        }
    }
}

/// Retry or not, from what the relay said or how the connection failed.
pub fn classify(e: mail_send::Error) -> DeliveryError {
    use mail_send::Error as E;
    match e {
        E::UnexpectedReply(r) => {
            let text = reply_text(&r);
            let kind = if r.code() >= 500 {
                FailureKind::Permanent
            } else {
                FailureKind::Transient
            };
            DeliveryError::new(kind, text)
        }
        E::AuthenticationFailed(r) => DeliveryError::new(
            FailureKind::Connection,
            format!("authentication failed: {}", reply_text(&r)),
        ),
        E::MissingMailFrom | E::MissingRcptTo => {
            DeliveryError::new(FailureKind::Permanent, e.to_string())
        }
        other => DeliveryError::new(FailureKind::Connection, other.to_string()),
    }
}

/// The reply as the relay wrote it, enhanced status code included.
fn reply_text(r: &smtp_proto::Response<String>) -> String {
    let [a, b, c] = r.esc;
    if a == 0 {
        format!("{} {}", r.code(), r.message())
    } else {
        format!("{} {a}.{b}.{c} {}", r.code(), r.message())
    }
}
