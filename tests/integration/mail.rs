//! Mail leaves the queue over real SMTP: it arrives, survives outages and
//! kill -9, dies with the relay's reason when refused, and talks to an SMTP
//! server we did not write.

use crate::common::*;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

#[tokio::test]
async fn the_mail_arrives_and_its_link_verifies_the_account() {
    let sink = TestSink::start().await;
    let d = TestDaemon::start_with(&[("SIGNUPD_MAIL__SMTP_PORT", &sink.port())]);
    assert_eq!(
        d.register("dora@example.com", "dora password")
            .await
            .status(),
        202
    );
    let mail = sink.wait_for(1).await;
    assert_eq!(mail[0].to, ["dora@example.com"]);
    assert_eq!(mail[0].from, "noreply@example.com");
    assert_eq!(mail[0].subject, "Please confirm your registration");
    let r = d.verify(&token_in(&mail[0].raw)).await;
    assert_eq!(r.status(), 200);
    d.wait_ready("the queue to drain", |v| {
        v["mail"]["queue_depth"] == 0 && v["mail"]["sent"] == 1
    })
    .await;
}

#[tokio::test]
async fn mail_queued_while_the_relay_is_down_arrives_when_it_is_back() {
    let port = free_port();
    let d = TestDaemon::start_with(&[
        ("SIGNUPD_MAIL__SMTP_PORT", &port.to_string()),
        ("SIGNUPD_MAIL__RETRY_INITIAL", "1"),
        ("SIGNUPD_MAIL__RETRY_MAX", "2"),
    ]);
    assert_eq!(
        d.register("eve@example.com", "eve password").await.status(),
        202
    );
    d.wait_ready("a failed delivery", |v| {
        v["mail"]["retried"].as_u64() >= Some(1)
    })
    .await;
    let v = d.readyz().await;
    assert_eq!(
        v["status"], "ready",
        "a down relay does not make the daemon unready"
    );
    assert_eq!(v["mail"]["queue_depth"], 1);
    assert!(
        v["mail"]["last_error"]
            .as_str()
            .unwrap()
            .contains("refused"),
        "{v}"
    );

    let sink = TestSink::start_on(&format!("127.0.0.1:{port}")).await;
    let mail = sink.wait_for(1).await;
    assert_eq!(mail[0].to, ["eve@example.com"]);
    assert_eq!(d.verify(&token_in(&mail[0].raw)).await.status(), 200);
}

#[tokio::test]
async fn kill_9_right_after_202_then_the_mail_arrives_after_restart() {
    // No relay yet: the mail can only be in the store when the process dies.
    let mut d = TestDaemon::start();
    assert_eq!(
        d.register("finn@example.com", "finn password")
            .await
            .status(),
        202
    );
    d.kill9();
    let sink = TestSink::start().await;
    let d = d.restart_with(&[("SIGNUPD_MAIL__SMTP_PORT", &sink.port())]);
    let mail = sink.wait_for(1).await;
    assert_eq!(mail[0].to, ["finn@example.com"]);
    assert_eq!(d.verify(&token_in(&mail[0].raw)).await.status(), 200);
}

#[tokio::test]
async fn a_5xx_reply_makes_dead_mail_with_the_reply_and_4xx_retries() {
    let port = refusing_relay("550 5.1.1 mailbox unavailable").await;
    let mut d = TestDaemon::start_with(&[("SIGNUPD_MAIL__SMTP_PORT", &port.to_string())]);
    d.register("gone@example.com", "gone password").await;
    d.register("gone2@example.com", "gone password").await;
    d.wait_ready("dead mail", |v| v["mail"]["dead"] == 2).await;
    let v = d.readyz().await;
    assert_eq!(v["mail"]["queue_depth"], 0);
    assert!(
        v["mail"]["last_error"].as_str().unwrap().contains("550"),
        "{v}"
    );
    d.stop();
    assert!(d.outbox().is_empty());
    let dead = d.read_store(|s| s.dead_mail().unwrap());
    assert_eq!(dead.len(), 2);
    assert!(
        dead[0]
            .last_error
            .as_deref()
            .unwrap()
            .starts_with("550 5.1.1 mailbox unavailable"),
        "{dead:?}"
    );
    assert!(
        d.log_text().contains("mail is dead"),
        "a dead mail is never silent"
    );

    let port = refusing_relay("450 4.2.1 try later").await;
    let mut d = TestDaemon::start_with(&[("SIGNUPD_MAIL__SMTP_PORT", &port.to_string())]);
    d.register("later@example.com", "later password").await;
    d.wait_ready("a retry", |v| v["mail"]["retried"] == 1).await;
    let v = d.readyz().await;
    assert_eq!(v["mail"]["dead"], 0);
    assert_eq!(v["mail"]["queue_depth"], 1);
    d.stop();
    let queued = d.outbox();
    assert_eq!(queued[0].attempts, 1);
    assert!(queued[0].last_error.as_deref().unwrap().contains("450"));
}

/// Python's DebuggingServer on a free port, its standard output as lines.
pub fn python_debugging_server(
    extra: &[&str],
) -> (KillOnDrop, u16, std::sync::mpsc::Receiver<String>) {
    // Exits at once (and spawn_listening gives up) if python3 has no smtpd,
    // which left the standard library in 3.12: .ci/run installs a 3.11.
    let (mut child, port) = spawn_listening(|port| {
        let mut c = Command::new(python());
        c.args([
            "-u",
            "-W",
            "ignore",
            "-m",
            "smtpd",
            "-n",
            "-c",
            "DebuggingServer",
        ])
        .args(extra)
        .arg(format!("127.0.0.1:{port}"))
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
        c
    });
    let out = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    (child, port, rx)
}

#[tokio::test]
async fn our_client_delivers_to_pythons_debugging_server() {
    let (python, port, lines) = python_debugging_server(&[]);
    let d = TestDaemon::start_with(&[("SIGNUPD_MAIL__SMTP_PORT", &port.to_string())]);
    d.register("hal@example.com", "hal password").await;
    let printed = tokio::task::spawn_blocking(move || {
        let mut seen = Vec::new();
        for line in lines.iter() {
            let end = line.contains("END MESSAGE");
            seen.push(line);
            if end {
                break;
            }
        }
        seen
    })
    .await
    .unwrap();
    drop(python);
    assert_eq!(printed[0], "---------- MESSAGE FOLLOWS ----------");
    assert!(
        printed.contains(&"b'Subject: Please confirm your registration'".to_string()),
        "{printed:?}"
    );
    assert!(
        printed.contains(&"b'To: hal@example.com'".to_string()),
        "{printed:?}"
    );
    assert!(
        printed.contains(&"b'X-Peer: 127.0.0.1'".to_string()),
        "{printed:?}"
    );
    let link = printed.iter().find(|l| l.contains("/verify/")).unwrap();
    let token = link_token(&format!("{}\r\n", link.trim_end_matches('\'')), "/verify/");
    assert_eq!(d.verify(&token).await.status(), 200);
}
