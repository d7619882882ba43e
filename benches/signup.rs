//! The daemon against the bar it is built for, each figure beside its limit
//! (and the FastAPI tutorial's figure on this kind of 2-core machine):
//! sign-ups per second against what bcrypt allows on the cores, /healthz
//! latency while every hashing worker is busy, token-checked requests per
//! second, memory when idle, and time from exec to the first answer.
//!
//! Runs the release binary in dev mode at bcrypt cost 12. The load comes
//! from this process, on the same cores.
//!
//! `cargo bench --bench signup`

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

#[path = "../tests/common/mod.rs"]
mod common;

use common::{BIN, free_port, get_json, link_token};

const COST: u32 = 12;
const SIGNUP_SECONDS: u64 = 10;

/// `clients` tasks sending `request(client, n)` back to back until `until`;
/// how many were sent.
async fn load<F, Fut>(clients: usize, until: Instant, request: F) -> u64
where
    F: Fn(usize, u64) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let tasks: Vec<_> = (0..clients)
        .map(|c| {
            let request = request.clone();
            tokio::spawn(async move {
                let mut n = 0u64;
                while Instant::now() < until {
                    request(c, n).await;
                    n += 1;
                }
                n
            })
        })
        .collect();
    let mut total = 0;
    for t in tasks {
        total += t.await.unwrap();
    }
    total
}

fn percentile(v: &mut [Duration], p: f64) -> Duration {
    v.sort();
    v[((v.len() - 1) as f64 * p) as usize]
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

#[tokio::main]
async fn main() {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    // What bcrypt allows: every core hashing at once, nothing else running.
    let t = Instant::now();
    let hashers: Vec<_> = (0..cores)
        .map(|_| {
            std::thread::spawn(|| {
                for _ in 0..6 {
                    bcrypt::hash("a pass phrase to hash", COST).unwrap();
                }
            })
        })
        .collect();
    for h in hashers {
        h.join().unwrap();
    }
    let limit = (cores * 6) as f64 / t.elapsed().as_secs_f64();
    let per_hash = Duration::from_secs_f64(cores as f64 / limit);

    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench-signup");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let started = Instant::now();
    let mut child = Command::new(BIN)
        .args(["serve", "--dev"])
        .current_dir(&dir)
        .env("SIGNUPD_SERVER__LISTEN", format!("127.0.0.1:{port}"))
        .env("SIGNUPD_SERVER__PUBLIC_URL", &base)
        .env("SIGNUPD_DEV__SINK_LISTEN", "127.0.0.1:0")
        .env("SIGNUPD_AUTH__BCRYPT_COST", COST.to_string())
        .env("SIGNUPD_AUTH__HASH_QUEUE", "256")
        .env("SIGNUPD_LIMITS__ENABLED", "false")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let http = reqwest::Client::new();
    let ready = loop {
        if let Ok(r) = http.get(format!("{base}/healthz")).send().await
            && r.status() == 200
        {
            break started.elapsed();
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the daemon did not start"
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    let idle = rss_kib(child.id());

    // Sign-ups from more clients than workers, and /healthz beside them.
    let stop = Instant::now() + Duration::from_secs(SIGNUP_SECONDS);
    let signups = tokio::spawn({
        let (http, base) = (http.clone(), base.clone());
        load(cores * 4, stop, move |c, n| {
            let (http, base) = (http.clone(), base.clone());
            async move {
                let r = http
                    .post(format!("{base}/api/auth/register"))
                    .json(&json!({"email": format!("u{c}-{n}@example.com"), "password": "a pass phrase to hash"}))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status(), 202);
            }
        })
    });
    let probe = {
        let (http, base) = (http.clone(), base.clone());
        tokio::spawn(async move {
            let mut lat = Vec::new();
            tokio::time::sleep(Duration::from_secs(1)).await;
            while Instant::now() + Duration::from_millis(500) < stop {
                let t = Instant::now();
                http.get(format!("{base}/healthz")).send().await.unwrap();
                lat.push(t.elapsed());
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            lat
        })
    };
    let t = Instant::now();
    let signups = signups.await.unwrap();
    let rate = signups as f64 / t.elapsed().as_secs_f64();
    let mut lat = probe.await.unwrap();

    // An active account, its access token, and /api/auth/me as fast as it goes.
    http.post(format!("{base}/api/auth/register"))
        .json(&json!({"email": "me@example.com", "password": "a pass phrase to hash"}))
        .send()
        .await
        .unwrap();
    let token = loop {
        let list = get_json(&http, &format!("{base}/dev/mail/messages")).await;
        let mine = list
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["to"][0] == "me@example.com")
            .cloned();
        if let Some(m) = mine {
            let url = format!("{base}/dev/mail/messages/{}", m["id"].as_str().unwrap());
            let one = get_json(&http, &url).await;
            break link_token(one["raw"].as_str().unwrap(), "/verify/");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    http.post(format!("{base}/api/auth/verify"))
        .json(&json!({"token": token}))
        .send()
        .await
        .unwrap();
    let login: Value = http
        .post(format!("{base}/api/auth/login"))
        .json(&json!({"email": "me@example.com", "password": "a pass phrase to hash"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let access = login["access_token"].as_str().unwrap().to_string();
    let stop = Instant::now() + Duration::from_secs(3);
    let verified = load(8, stop, move |_, _| {
        let (http, base, access) = (http.clone(), base.clone(), access.clone());
        async move {
            let r = http
                .get(format!("{base}/api/auth/me"))
                .bearer_auth(&access)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200);
        }
    })
    .await;
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&dir);

    println!(
        "signupd on {cores} cores, bcrypt cost {COST} ({:.0} ms per hash with every core hashing)",
        per_hash.as_secs_f64() * 1e3
    );
    println!("  {:<40} {:>10}   limit / tutorial", "", "signupd");
    println!(
        "  {:<40} {:>8.1}/s   limit {:.1}/s ({:.0}%), tutorial 4/s",
        "sign-ups",
        rate,
        limit,
        rate / limit * 100.0
    );
    println!(
        "  {:<40} {:>7.1} ms   tutorial 400 ms (p99 {:.1} ms, max {:.1} ms, {} samples)",
        "/healthz p50 while hashing is saturated",
        percentile(&mut lat, 0.5).as_secs_f64() * 1e3,
        percentile(&mut lat, 0.99).as_secs_f64() * 1e3,
        percentile(&mut lat, 1.0).as_secs_f64() * 1e3,
        lat.len()
    );
    println!(
        "  {:<40} {:>8.0}/s   tutorial 620/s",
        "token-checked requests (GET /api/auth/me)",
        verified as f64 / 3.0
    );
    println!(
        "  {:<40} {:>6.1} MiB   limit 10 MiB, tutorial 59 MiB",
        "memory when idle (RSS)",
        idle as f64 / 1024.0
    );
    println!(
        "  {:<40} {:>7.1} ms   limit 50 ms",
        "exec to first answer",
        ready.as_secs_f64() * 1e3
    );
}
