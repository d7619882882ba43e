//! No account oracle: the time of a login for an unknown address beside a
//! login with a wrong password, medians over alternating runs, at bcrypt
//! cost 10 (the shape is the same at any cost: both pay one verification).
//!
//! `cargo bench --bench login`

use std::sync::Arc;
use std::time::{Duration, Instant};

use signupd::accounts::Accounts;
use signupd::accounts::throttle::Throttle;
use signupd::auth::Auth;
use signupd::config::{Config, Secret};
use signupd::mailer::compose::Composer;
use signupd::pool::HashPool;
use signupd::store::Store;
use tokio::sync::Notify;

#[path = "../tests/common/mod.rs"]
mod common;

use common::link_token;

const RUNS: usize = 40;
const COST: u64 = 10;

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

#[tokio::main]
async fn main() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench-login");
    let _ = std::fs::remove_dir_all(&dir);
    let mut config = Config::default();
    config.auth.secret_key = Secret::new("bench-secret-bench-secret-bench-secret");
    config.auth.bcrypt_cost = COST;
    config.limits.enabled = false;
    let store = Store::open(&dir, 16).unwrap();
    let auth = Arc::new(Auth::new(&config.auth, HashPool::new(2, 64).unwrap()).unwrap());
    let accounts = Accounts::new(
        store.clone(),
        auth.clone(),
        Composer::new("noreply@example.com", "http://localhost"),
        Arc::new(Notify::new()),
        Throttle::new(&config.limits),
    );
    accounts
        .register("known@example.com", "the right pass phrase")
        .await
        .unwrap();
    let token = link_token(&store.outbox().unwrap()[0].raw, "/verify/");
    accounts.verify(&token).await.unwrap();
    auth.warm_up().await;

    let (mut unknown, mut wrong) = (Vec::new(), Vec::new());
    for i in 0..RUNS * 2 {
        let (email, sink) = if i % 2 == 0 {
            ("nobody@example.com", &mut unknown)
        } else {
            ("known@example.com", &mut wrong)
        };
        let t = Instant::now();
        let r = accounts.login(email, "a wrong pass phrase").await;
        sink.push(t.elapsed());
        assert!(r.is_err());
    }
    let t = Instant::now();
    accounts
        .login("known@example.com", "the right pass phrase")
        .await
        .unwrap();
    let right = t.elapsed();

    let (u, w) = (median(unknown), median(wrong));
    println!("login at bcrypt cost {COST}, median of {RUNS} alternating runs each");
    println!(
        "  {:<36} {:>9.2} ms",
        "unknown address",
        u.as_secs_f64() * 1e3
    );
    println!(
        "  {:<36} {:>9.2} ms",
        "known address, wrong password",
        w.as_secs_f64() * 1e3
    );
    println!(
        "  {:<36} {:>9.2} ms  ({:+.1}% of the wrong-password median)",
        "difference",
        (u.as_secs_f64() - w.as_secs_f64()) * 1e3,
        (u.as_secs_f64() / w.as_secs_f64() - 1.0) * 100.0
    );
    println!(
        "  {:<36} {:>9.2} ms  (one run, for scale)",
        "right password",
        right.as_secs_f64() * 1e3
    );
    store.close();
    let _ = std::fs::remove_dir_all(&dir);
}
