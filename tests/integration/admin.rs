//! Operating a running daemon through its admin socket.

use crate::common::*;
use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Output};

fn cli(d: &TestDaemon, args: &[&str]) -> Output {
    cli_with(&TestDaemon::config_path(d.dir.path()), args)
}

fn cli_with(config: &std::path::Path, args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .arg("--config")
        .arg(config)
        .env_remove("SIGNUPD_AUTH__SECRET_KEY")
        .output()
        .unwrap()
}

fn stdout(o: &Output) -> String {
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[tokio::test]
async fn users_can_be_listed_shown_and_deleted() {
    let d = TestDaemon::start();
    d.register("adm1@example.com", "admin pass phrase").await;
    d.register("adm2@example.com", "admin pass phrase").await;
    let socket = d.dir.path().join("data/signupd.sock");
    let mode = std::fs::metadata(&socket).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "owner-only socket");

    let list = stdout(&cli(&d, &["users", "list"]));
    assert_eq!(list.lines().count(), 2, "{list}");
    assert!(
        list.contains("adm1@example.com") && list.contains("pending"),
        "{list}"
    );
    let show: serde_json::Value =
        serde_json::from_str(&stdout(&cli(&d, &["users", "show", "ADM1@example.com"]))).unwrap();
    assert_eq!(show["email"], "adm1@example.com");
    assert_eq!(show["queued_mail"], 1);
    stdout(&cli(&d, &["users", "delete", "adm1@example.com"]));
    let list = stdout(&cli(&d, &["users", "list"]));
    assert!(!list.contains("adm1@example.com"), "{list}");
    let o = cli(&d, &["users", "show", "adm1@example.com"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("no account"));
    // The address is free again.
    assert_eq!(
        d.register("adm1@example.com", "admin pass phrase")
            .await
            .status(),
        202
    );
}

#[tokio::test]
async fn the_queue_shows_attempts_and_errors_and_can_be_retried_and_dropped() {
    let d = TestDaemon::start();
    d.register("q1@example.com", "queue pass phrase").await;
    d.register("q2@example.com", "queue pass phrase").await;
    d.wait_ready("failed deliveries", |v| {
        v["mail"]["retried"].as_u64() >= Some(2)
    })
    .await;
    let list = stdout(&cli(&d, &["queue", "list"]));
    let lines: Vec<&str> = list.lines().collect();
    assert_eq!(lines.len(), 2, "{list}");
    assert!(
        lines
            .iter()
            .all(|l| l.contains("pending") && l.contains("attempts=1") && l.contains("refused")),
        "{list}"
    );
    let id = lines[0].split_whitespace().next().unwrap();
    let retried: serde_json::Value =
        serde_json::from_str(&stdout(&cli(&d, &["queue", "retry", id]))).unwrap();
    assert_eq!(retried["id"], id);
    stdout(&cli(&d, &["queue", "drop", id]));
    let list = stdout(&cli(&d, &["queue", "list"]));
    assert_eq!(list.lines().count(), 1, "{list}");
    assert!(!list.contains(id));
    assert_eq!(cli(&d, &["queue", "drop", id]).status.code(), Some(1));
}

#[tokio::test]
async fn a_backup_taken_while_serving_restores_into_a_fresh_store() {
    let mut d = TestDaemon::start();
    for i in 0..3 {
        d.register(&format!("b{i}@example.com"), "backup pass phrase")
            .await;
    }
    let file = d.dir.path().join("backup.jsonl");
    let o = cli(&d, &["backup", file.to_str().unwrap()]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(d.healthy().await, "the daemon kept serving");

    // Restore is refused while a daemon holds the store.
    let o = cli(&d, &["restore", file.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("stop the daemon"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );

    let mut fresh = TestDaemon::start();
    fresh.stop();
    let o = cli_with(
        &TestDaemon::config_path(fresh.dir.path()),
        &["restore", file.to_str().unwrap()],
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let mut emails: Vec<String> = fresh.users().into_iter().map(|u| u.email).collect();
    emails.sort();
    assert_eq!(
        emails,
        ["b0@example.com", "b1@example.com", "b2@example.com"]
    );
    assert_eq!(fresh.outbox().len(), 3, "queued mail is in the backup too");
    d.stop();
    let fresh = fresh.restart();
    assert_eq!(stdout(&cli(&fresh, &["users", "list"])).lines().count(), 3);
}

#[tokio::test]
async fn dead_mail_can_be_retried_after_a_fix_and_dropped() {
    let refusing = refusing_relay("550 5.1.1 mailbox unavailable").await;
    let d = TestDaemon::start_with(&[("SIGNUPD_MAIL__SMTP_PORT", &refusing.to_string())]);
    d.register("dead1@example.com", "dead pass phrase").await;
    d.register("dead2@example.com", "dead pass phrase").await;
    d.wait_ready("two dead", |v| v["mail"]["dead"] == 2).await;
    let list = stdout(&cli(&d, &["queue", "list"]));
    let dead: Vec<(String, String)> = list
        .lines()
        .map(|l| {
            assert!(l.contains("  dead ") && l.contains("550 5.1.1"), "{list}");
            let id = l.split_whitespace().next().unwrap().to_string();
            let to = l
                .split_whitespace()
                .find(|w| w.contains('@'))
                .unwrap()
                .to_string();
            (id, to)
        })
        .collect();
    assert_eq!(dead.len(), 2, "{list}");

    // The relay is fixed: a retried dead message goes out, a dropped one is gone.
    let sink = TestSink::start().await;
    let d = d.restart_with(&[("SIGNUPD_MAIL__SMTP_PORT", &sink.port())]);
    stdout(&cli(&d, &["queue", "retry", &dead[0].0]));
    let mail = sink.wait_for(1).await;
    assert_eq!(mail[0].to, [dead[0].1.clone()]);
    stdout(&cli(&d, &["queue", "drop", &dead[1].0]));
    d.wait_ready("an empty queue", |v| {
        v["mail"]["queue_depth"] == 0 && v["mail"]["dead"] == 0
    })
    .await;
    assert_eq!(stdout(&cli(&d, &["queue", "list"])), "");
    assert_eq!(sink.inbox.list().len(), 1, "the dropped one was never sent");
}
