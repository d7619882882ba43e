//! Running as a service: systemd notifications, metrics, and logs that
//! never carry a secret.

use crate::common::*;
use serde_json::{Value, json};
use std::os::unix::net::UnixDatagram;
use std::time::Duration;

#[tokio::test]
async fn tells_systemd_ready_pings_the_watchdog_and_says_stopping() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notify");
    let sock = UnixDatagram::bind(&path).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let mut d = TestDaemon::start_with(&[
        ("NOTIFY_SOCKET", path.to_str().unwrap()),
        ("WATCHDOG_USEC", "200000"),
    ]);
    let next = || {
        let mut buf = [0u8; 256];
        let n = sock.recv(&mut buf).expect("a notification");
        String::from_utf8_lossy(&buf[..n]).trim().to_string()
    };
    assert_eq!(next(), "READY=1");
    assert!(d.healthy().await, "ready means serving");
    assert_eq!(next(), "WATCHDOG=1");
    assert_eq!(next(), "WATCHDOG=1");
    let stop = std::thread::spawn(move || d.stop());
    let mut seen = next();
    while seen == "WATCHDOG=1" {
        seen = next();
    }
    assert_eq!(seen, "STOPPING=1");
    assert!(stop.join().unwrap().success());
}

fn sample(text: &str, name: &str) -> f64 {
    text.lines()
        .find(|l| l.starts_with(name) && !l.starts_with('#'))
        .and_then(|l| l.rsplit(' ').next())
        .map_or(0.0, |v| v.parse().unwrap())
}

#[tokio::test]
async fn metrics_move_with_requests_and_mail() {
    let sink = TestSink::start().await;
    let d = TestDaemon::start_with(&[("SIGNUPD_MAIL__SMTP_PORT", &sink.port())]);
    let scrape = || async {
        let r = d.http.get(d.url("/metrics")).send().await.unwrap();
        assert!(
            r.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/plain")
        );
        r.text().await.unwrap()
    };
    let before = scrape().await;
    let registered = "signupd_http_requests_total{route=\"/api/auth/register\",status=\"202\"}";
    assert_eq!(sample(&before, registered), 0.0);
    assert_eq!(sample(&before, "signupd_hash_pool_workers"), 2.0);

    d.register("metric@example.com", "metric pass phrase").await;
    d.register("metric2@example.com", "metric pass phrase")
        .await;
    sink.wait_for(2).await;
    d.wait_ready("two sent", |v| v["mail"]["sent"] == 2).await;
    let after = scrape().await;
    assert_eq!(sample(&after, registered), 2.0, "{after}");
    assert_eq!(sample(&after, "signupd_mail_sent_total"), 2.0, "{after}");
    assert_eq!(sample(&after, "signupd_mail_queue_depth"), 0.0);
    assert!(
        after.contains(
            "signupd_http_request_duration_seconds_bucket{route=\"/api/auth/register\",le=\"0.5\"}"
        ),
        "{after}"
    );
    assert!(after.contains("signupd_hash_pool_busy"));
    assert!(after.contains("signupd_mail_oldest_age_seconds"));
    assert!(
        after.contains("signupd_mail_retried_total") && after.contains("signupd_mail_dead_total")
    );
}

#[tokio::test]
async fn no_password_token_or_secret_reaches_the_log_at_any_level() {
    let sink = TestSink::start().await;
    let mut d = TestDaemon::start_with(&[
        ("SIGNUPD_MAIL__SMTP_PORT", &sink.port()),
        ("SIGNUPD_MAIL__SMTP_PASSWORD", "relay-secret-1234"),
        ("RUST_LOG", "trace"),
    ]);
    let password = "log-me-never-1234";
    d.register("quiet@example.com", password).await;
    let confirmation = token_in(&sink.wait_for(1).await[0].raw);
    // Also through the page, whose path carries the token.
    let r = d
        .http
        .post(d.url(&format!("/verify/{confirmation}")))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = d
        .post_json(
            "/api/auth/login",
            json!({"email": "quiet@example.com", "password": password}),
        )
        .await;
    let access = r.json::<Value>().await.unwrap()["access_token"]
        .as_str()
        .unwrap()
        .to_string();
    d.http
        .get(d.url("/api/auth/me"))
        .bearer_auth(&access)
        .send()
        .await
        .unwrap();
    d.post_json(
        "/api/auth/password/forgot",
        json!({"email": "quiet@example.com"}),
    )
    .await;
    let reset = link_token(
        &String::from_utf8_lossy(&sink.wait_for(2).await[0].raw),
        "/reset/",
    );
    let new_password = "log-me-never-5678";
    let r = d
        .post_json(
            "/api/auth/password/reset",
            json!({"token": reset, "password": new_password}),
        )
        .await;
    assert_eq!(r.status(), 200);
    d.stop();

    let log = d.log_text();
    assert!(
        log.lines().count() > 50,
        "trace logging was on: {}",
        log.lines().count()
    );
    for (what, secret) in [
        ("password", password),
        ("new password", new_password),
        ("confirmation token", confirmation.as_str()),
        ("reset token", reset.as_str()),
        ("access token", access.as_str()),
        ("signing key", SECRET),
        ("relay password", "relay-secret-1234"),
    ] {
        // A token's signature alone would be enough to leak it.
        let probe = secret.rsplit('.').next().unwrap();
        assert!(!log.contains(probe), "the {what} is in the log");
    }
}

#[tokio::test]
async fn json_log_lines_on_request() {
    let mut d = TestDaemon::start_with(&[("SIGNUPD_LOGGING__FORMAT", "json")]);
    assert!(d.healthy().await);
    d.stop();
    let log = d.log_text();
    let access = log
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .find(|v| v["target"] == "signupd::access")
        .expect("an access line");
    assert_eq!(access["fields"]["route"], "/healthz");
    assert_eq!(access["fields"]["status"], 200);
    assert_eq!(access["fields"]["method"], "GET");
}

#[tokio::test]
async fn under_journald_lines_carry_no_timestamp_of_their_own() {
    let mut d = TestDaemon::start_with(&[("JOURNAL_STREAM", "8:12345")]);
    assert!(d.healthy().await);
    d.stop();
    let log = d.log_text();
    let access = log
        .lines()
        .find(|l| l.contains("signupd::access"))
        .expect("an access line");
    assert!(access.trim_start().starts_with("INFO"), "{access}");
    assert!(
        access.contains("route=\"/healthz\"") && access.contains("status=200"),
        "{access}"
    );
    assert!(
        !log.contains("Z  INFO") && !log.contains("2026-") && !log.contains("T00:"),
        "{log}"
    );
}
