//! Mail throughput, each figure beside what it is measured against.
//!
//! 1. Sink ingest: messages per second from N parallel SMTP clients into
//!    `signupd sink`, beside Python's `smtpd -n -c DebuggingServer` fed the
//!    same messages by the same client (both print to /dev/null).
//! 2. Queue drain: messages per second the delivery worker moves from the
//!    store to a local SMTP server, beside the rate one client reaches by
//!    sending back to back on one connection (one SMTP transaction's time):
//!    the worker sends sequentially on one connection, so that is its limit.
//!
//! `cargo bench --bench mail` (needs python3 with smtpd, i.e. 3.11).

#[path = "../tests/common/mod.rs"]
mod common;

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mail_send::SmtpClientBuilder;
use mail_send::smtp::message::Message;
use signupd::mailer::queue::{RetryPolicy, SystemClock, Worker, WorkerStatus};
use signupd::mailer::smtp::{RelayConfig, Security, SmtpRelay};
use signupd::sink::Sink;
use signupd::sink::session::SessionConfig;
use signupd::store::{MailKind, QueuedMail, Store, TreeId, encode};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use common::{BIN, python, spawn_listening};

const CLIENTS: usize = 8;
const PER_CLIENT: usize = 250;

fn body(i: usize) -> Vec<u8> {
    format!(
        "From: noreply@example.com\r\nTo: user{i}@example.com\r\nSubject: Please confirm your registration\r\n\r\n\
         Hi!\r\n\r\nPlease confirm your registration: http://localhost:8000/verify/{}.\r\n",
        "t".repeat(300)
    )
    .into_bytes()
}

/// CLIENTS connections, each sending PER_CLIENT messages back to back.
async fn blast(port: u16) -> f64 {
    let start = Instant::now();
    let tasks: Vec<_> = (0..CLIENTS)
        .map(|c| {
            tokio::spawn(async move {
                let mut client = SmtpClientBuilder::new("127.0.0.1".to_string(), port)
                    .unwrap()
                    .implicit_tls(false)
                    .timeout(Duration::from_secs(30))
                    .connect_plain()
                    .await
                    .unwrap();
                // Without it every transaction waits out a delayed ACK (~40 ms).
                client.stream.set_nodelay(true).unwrap();
                for i in 0..PER_CLIENT {
                    let m = Message::new(
                        "noreply@example.com",
                        ["user@example.com"],
                        body(c * PER_CLIENT + i),
                    );
                    client.send(m).await.unwrap();
                }
                client.quit().await.unwrap();
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    (CLIENTS * PER_CLIENT) as f64 / start.elapsed().as_secs_f64()
}

async fn sink_ingest() {
    let (py, port) = spawn_listening(|port| {
        let mut c = Command::new(python());
        c.args(["-W", "ignore", "-m", "smtpd", "-n", "-c", "DebuggingServer"])
            .arg(format!("127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        c
    });
    let py_rate = blast(port).await;
    drop(py);

    let (ours, port) = spawn_listening(|port| {
        let mut c = Command::new(BIN);
        c.args(["sink", "--listen", &format!("127.0.0.1:{port}")])
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        c
    });
    let our_rate = blast(port).await;
    drop(ours);

    println!(
        "sink ingest, {CLIENTS} clients x {PER_CLIENT} messages (~500 B), printing to /dev/null"
    );
    println!(
        "  {:<44} {:>10.0} msg/s",
        "python3 -m smtpd -n -c DebuggingServer", py_rate
    );
    println!(
        "  {:<44} {:>10.0} msg/s  ({:.1}x)",
        "signupd sink",
        our_rate,
        our_rate / py_rate
    );
}

async fn queue_drain() {
    const N: usize = 2000;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let mut sink = Sink::new(SessionConfig::default());
    sink.printer = None;
    let stop = CancellationToken::new();
    tokio::spawn(sink.serve(listener, stop.clone()));

    // The limit: one connection, transactions back to back.
    let mut client = SmtpClientBuilder::new("127.0.0.1".to_string(), port)
        .unwrap()
        .implicit_tls(false)
        .connect_plain()
        .await
        .unwrap();
    client.stream.set_nodelay(true).unwrap();
    let start = Instant::now();
    for i in 0..N {
        client
            .send(Message::new(
                "noreply@example.com",
                ["user@example.com"],
                body(i),
            ))
            .await
            .unwrap();
    }
    let per_tx = start.elapsed() / N as u32;
    client.quit().await.unwrap();

    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench-mail");
    let _ = std::fs::remove_dir_all(&dir);
    let store = Store::open(&dir, 16).unwrap();
    let now = signupd::auth::now();
    for i in 0..N {
        let m = QueuedMail::new(
            MailKind::Confirmation,
            uuid::Uuid::new_v4(),
            "noreply@example.com",
            &format!("user{i}@example.com"),
            &body(i),
            None,
            now,
        );
        store
            .put_raw(TreeId::Outbox, m.id.as_bytes(), &encode(&m))
            .unwrap();
    }
    store.commit().await.unwrap();
    let relay = SmtpRelay::new(RelayConfig {
        host: "127.0.0.1".into(),
        port,
        security: Security::None,
        credentials: None,
        timeout: Duration::from_secs(30),
        helo: "bench".into(),
    });
    let status = Arc::new(WorkerStatus::default());
    let policy = RetryPolicy {
        initial: 60,
        max: 3600,
        max_lifetime: 432000,
    };
    let mut worker = Worker::new(
        store.clone(),
        relay,
        SystemClock,
        policy,
        Arc::new(Notify::new()),
        status.clone(),
    );
    let start = Instant::now();
    worker.round(&CancellationToken::new()).await.unwrap();
    let drain = N as f64 / start.elapsed().as_secs_f64();
    assert!(store.outbox().unwrap().is_empty());
    store.close();
    stop.cancel();
    let _ = std::fs::remove_dir_all(&dir);

    println!("queue drain, {N} queued messages to a local SMTP server");
    println!(
        "  {:<44} {:>10.0} msg/s  ({:.0} us per transaction)",
        "limit: one connection, back to back",
        1.0 / per_tx.as_secs_f64(),
        per_tx.as_secs_f64() * 1e6
    );
    println!(
        "  {:<44} {:>10.0} msg/s  ({:.0}% of the limit)",
        "delivery worker (send + remove from store)",
        drain,
        drain * per_tx.as_secs_f64() * 100.0
    );
}

#[tokio::main]
async fn main() {
    sink_ingest().await;
    println!();
    queue_drain().await;
}
