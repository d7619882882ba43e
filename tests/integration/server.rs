//! The server under pressure: a saturated hashing pool, rate limits, slow
//! and idle clients, a connection cap, and a graceful stop.

use crate::common::*;
use serde_json::json;
use std::io::{Read, Write};
use std::time::Duration;

async fn pool_busy(d: &TestDaemon) -> u64 {
    d.readyz().await["hashing"]["busy"].as_u64().unwrap()
}

#[tokio::test]
async fn saturated_hashing_answers_503_and_cheap_routes_keep_answering() {
    // One worker, no queue, and a cost slow enough to keep it busy for a while.
    let d = TestDaemon::start_with(&[
        ("SIGNUPD_AUTH__HASH_WORKERS", "1"),
        ("SIGNUPD_AUTH__HASH_QUEUE", "0"),
        ("SIGNUPD_AUTH__BCRYPT_COST", "15"),
    ]);
    let first = tokio::spawn({
        let (http, url) = (d.http.clone(), d.url("/api/auth/register"));
        async move {
            http.post(url)
                .json(&json!({"email": "slow@example.com", "password": "slow password"}))
                .send()
                .await
                .unwrap()
                .status()
        }
    });
    while pool_busy(&d).await == 0 {
        tokio::task::yield_now().await;
    }
    // The worker is hashing: the next sign-up is refused at once, not queued.
    let r = d.register("second@example.com", "second password").await;
    assert_eq!(r.headers()["retry-after"], "1");
    assert_eq!(problem_code(r).await, (503, "overloaded".into()));
    // And the cheap routes answer while the hash is still running.
    for _ in 0..20 {
        assert!(d.healthy().await);
    }
    assert_eq!(
        pool_busy(&d).await,
        1,
        "the hash outlived the cheap requests"
    );
    assert!(!first.is_finished());
    assert_eq!(first.await.unwrap(), 202);
}

#[tokio::test]
async fn per_ip_limits_answer_429_with_retry_after() {
    let d = TestDaemon::start_with(&[
        ("SIGNUPD_LIMITS__ENABLED", "true"),
        ("SIGNUPD_LIMITS__PER_IP_PER_MINUTE", "2"),
    ]);
    for i in 0..2 {
        assert_eq!(
            d.register(&format!("l{i}@example.com"), "limit password")
                .await
                .status(),
            202
        );
    }
    let r = d.register("l3@example.com", "limit password").await;
    let wait: u64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=30).contains(&wait), "{wait}");
    assert_eq!(problem_code(r).await, (429, "rate_limited".into()));
    // Each route has its own bucket.
    let r = d
        .post_json("/api/auth/resend", json!({"email": "l0@example.com"}))
        .await;
    assert_eq!(r.status(), 202);
    assert!(d.healthy().await, "health checks are never limited");
}

#[test]
fn slow_and_idle_clients_are_cut_off() {
    let d = TestDaemon::start_with(&[("SIGNUPD_SERVER__HEADER_READ_TIMEOUT", "1")]);
    // A head that never finishes.
    let mut slow = std::net::TcpStream::connect(d.addr).unwrap();
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .unwrap();
    slow.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut buf = Vec::new();
    let n = slow
        .read_to_end(&mut buf)
        .expect("the server closes the connection");
    let text = String::from_utf8_lossy(&buf[..n]);
    assert!(
        text.is_empty() || text.starts_with("HTTP/1.1 408"),
        "{text}"
    );
    // A connection that never speaks.
    let mut idle = std::net::TcpStream::connect(d.addr).unwrap();
    idle.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    assert_eq!(idle.read(&mut [0u8; 64]).expect("closed, not timed out"), 0);
}

#[test]
fn connections_beyond_the_cap_wait_for_a_free_slot() {
    let d = TestDaemon::start_with(&[("SIGNUPD_SERVER__MAX_CONNECTIONS", "2")]);
    let hold1 = std::net::TcpStream::connect(d.addr).unwrap();
    let hold2 = std::net::TcpStream::connect(d.addr).unwrap();
    let mut third = std::net::TcpStream::connect(d.addr).unwrap();
    third
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    third
        .set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let mut buf = [0u8; 256];
    let err = third
        .read(&mut buf)
        .expect_err("served beyond the connection cap");
    assert!(matches!(
        err.kind(),
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
    ));
    drop(hold1);
    third
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut answer = String::new();
    third.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    drop(hold2);
}

#[tokio::test]
async fn sigterm_finishes_the_request_in_flight_then_exits_cleanly() {
    let d = TestDaemon::start_with(&[("SIGNUPD_AUTH__BCRYPT_COST", "14")]);
    let inflight = tokio::spawn({
        let (http, url) = (d.http.clone(), d.url("/api/auth/register"));
        async move {
            http.post(url)
                .json(&json!({"email": "late@example.com", "password": "late password"}))
                .send()
                .await
                .unwrap()
                .status()
        }
    });
    while pool_busy(&d).await == 0 {
        tokio::task::yield_now().await;
    }
    let addr = d.addr;
    let status = tokio::task::spawn_blocking(move || d.stop_and_return())
        .await
        .unwrap();
    let (exit, d) = status;
    assert_eq!(
        inflight.await.unwrap(),
        202,
        "the request in flight was answered"
    );
    assert!(exit.success(), "{exit:?}");
    assert!(
        std::net::TcpStream::connect(addr).is_err(),
        "no longer listening"
    );
    assert_eq!(d.users().len(), 1);
    assert_eq!(d.outbox().len(), 1);
    assert!(d.log_text().contains("stopped"));
}

#[tokio::test]
async fn a_closed_stderr_neither_breaks_requests_nor_shutdown() {
    let mut d = TestDaemon::start();
    d.close_log();
    // Each request logs a line into the closed pipe.
    for i in 0..3 {
        assert_eq!(
            d.register(&format!("quiet{i}@example.com"), "quiet password")
                .await
                .status(),
            202
        );
    }
    assert!(d.healthy().await);
    let exit = d.stop();
    assert!(exit.success(), "{exit:?}");
    assert_eq!(d.users().len(), 3);
}
