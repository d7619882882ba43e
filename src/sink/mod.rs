//! The dev SMTP sink: accept loop → connection I/O → [`session`] (the
//! protocol, no I/O) → [`printer`] (DebuggingServer's output) and
//! [`inbox`] (what `/dev/mail` shows).

pub mod inbox;
pub mod printer;
pub mod session;

use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use inbox::Inbox;
use session::{Received, Session, SessionConfig};

/// Writes printouts on its own thread: a slow terminal or a full pipe then
/// holds up the SMTP sessions (through the bounded channel), never the reactor.
#[derive(Clone)]
pub struct Printer {
    tx: tokio::sync::mpsc::Sender<Vec<u8>>,
}

impl Printer {
    pub fn stdout() -> Printer {
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<u8>>(64);
        std::thread::Builder::new()
            .name("signupd-sink-print".into())
            .spawn(move || {
                while let Some(text) = rx.blocking_recv() {
                    // One write per message: concurrent sessions never interleave.
                    let mut stdout = std::io::stdout().lock();
                    if stdout
                        .write_all(&text)
                        .and_then(|()| stdout.flush())
                        .is_err()
                    {
                        break;
                    }
                }
            })
            .ok();
        Printer { tx }
    }

    async fn print(&self, text: Vec<u8>) {
        let _ = self.tx.send(text).await;
    }
}

/// How the sink runs.
#[derive(Clone)]
pub struct Sink {
    pub session: SessionConfig,
    /// Where DebuggingServer-style printouts go; `None` prints nothing.
    pub printer: Option<Printer>,
    pub inbox: Option<Arc<Inbox>>,
    pub idle_timeout: Duration,
    pub max_connections: usize,
}

impl Sink {
    pub fn new(session: SessionConfig) -> Sink {
        Sink {
            session,
            printer: Some(Printer::stdout()),
            inbox: None,
            idle_timeout: Duration::from_secs(300),
            max_connections: 256,
        }
    }

    /// Serves until `shutdown` fires.
    pub async fn serve(self, listener: TcpListener, shutdown: CancellationToken) {
        let this = Arc::new(self);
        let slots = Arc::new(Semaphore::new(this.max_connections));
        loop {
            let permit = tokio::select! {
                p = slots.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => break },
                _ = shutdown.cancelled() => break,
            };
            let (stream, peer) = tokio::select! {
                r = listener.accept() => match r {
                    Ok(x) => x,
                    Err(e) => {
                        tracing::warn!(error = %e, "sink: accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
                _ = shutdown.cancelled() => break,
            };
            let this = this.clone();
            let shutdown = shutdown.clone();
            tokio::spawn(async move {
                let ip = peer.ip().to_canonical().to_string();
                tokio::select! {
                    r = this.connection(stream, &ip) => if let Err(e) = r {
                        tracing::debug!(error = %e, "sink: connection ended");
                    },
                    _ = shutdown.cancelled() => {},
                }
                drop(permit);
            });
        }
    }

    async fn connection(&self, mut stream: TcpStream, ip: &str) -> std::io::Result<()> {
        let _ = stream.set_nodelay(true);
        let mut session = Session::new(self.session.clone());
        stream.write_all(&session.greeting()).await?;
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = match tokio::time::timeout(self.idle_timeout, stream.read(&mut buf)).await {
                Ok(r) => r?,
                Err(_) => {
                    stream
                        .write_all(b"421 4.4.2 Idle too long, closing\r\n")
                        .await?;
                    return Ok(());
                }
            };
            if n == 0 {
                return Ok(());
            }
            let out = session.feed(&buf[..n]);
            // Printed before the 250 goes out, as DebuggingServer does.
            for m in &out.messages {
                self.deliver(ip, m).await;
            }
            if !out.reply.is_empty() {
                stream.write_all(&out.reply).await?;
            }
            if out.close {
                return stream.shutdown().await;
            }
        }
    }

    async fn deliver(&self, ip: &str, m: &Received) {
        if let Some(p) = &self.printer {
            p.print(printer::render(ip, &m.mail_options, &m.data)).await;
        }
        if let Some(inbox) = &self.inbox {
            inbox.push(m);
        }
    }
}
