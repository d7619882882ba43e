//! Durable writes: one fsync per acknowledgement against group commit.
//!
//! Prints, in one run: the disk's own fsync rate (the ceiling for any design
//! that pays one fsync per request), sled flush + fsync paid by each request,
//! and the store's group commit, at several concurrencies. The database lives
//! under `target/`, on the same disk as the project, not on a tmpfs.
//!
//! `cargo bench --bench store`

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use signupd::store::{Store, TreeId};

const RUN: Duration = Duration::from_secs(2);
const VALUE: [u8; 400] = [7u8; 400];

fn bench_dir(name: &str) -> std::path::PathBuf {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("target/bench-store")
        .join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Appends and fsyncs a plain file: what the disk allows one writer.
fn disk_fsync_rate() -> f64 {
    let dir = bench_dir("raw");
    let mut f = std::fs::File::create(dir.join("log")).unwrap();
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < RUN {
        f.write_all(&VALUE).unwrap();
        f.sync_data().unwrap();
        n += 1;
    }
    n as f64 / start.elapsed().as_secs_f64()
}

/// Every writer flushes and fsyncs for itself (threads, since each blocks).
fn per_request_flush(writers: usize) -> f64 {
    let store = Store::open(&bench_dir(&format!("alone-{writers}")), 16).unwrap();
    let done = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let start = Instant::now();
    let threads: Vec<_> = (0..writers)
        .map(|w| {
            let (store, done, stop) = (store.clone(), done.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut i = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let key = [(w as u64).to_be_bytes(), i.to_be_bytes()].concat();
                    store.put_raw(TreeId::Users, &key, &VALUE).unwrap();
                    store.flush_and_sync_alone().unwrap();
                    done.fetch_add(1, Ordering::Relaxed);
                    i += 1;
                }
            })
        })
        .collect();
    std::thread::sleep(RUN);
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        t.join().unwrap();
    }
    let rate = done.load(Ordering::Relaxed) as f64 / start.elapsed().as_secs_f64();
    store.close();
    rate
}

/// Writers wait on the shared commit thread, as request handlers do.
fn group_commit(writers: usize) -> (f64, f64) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let store = Store::open(&bench_dir(&format!("group-{writers}")), 16).unwrap();
    let rate = rt.block_on(async {
        let start = Instant::now();
        let tasks: Vec<_> = (0..writers)
            .map(|w| {
                let store = store.clone();
                tokio::spawn(async move {
                    let mut i = 0u64;
                    while start.elapsed() < RUN {
                        let key = [(w as u64).to_be_bytes(), i.to_be_bytes()].concat();
                        store.put_raw(TreeId::Users, &key, &VALUE).unwrap();
                        store.commit().await.unwrap();
                        i += 1;
                    }
                    i
                })
            })
            .collect();
        let mut n = 0;
        for t in tasks {
            n += t.await.unwrap();
        }
        n as f64 / start.elapsed().as_secs_f64()
    });
    let flushes = store.stats().flushes.load(Ordering::Relaxed) as f64;
    let waiters = store.stats().waiters.load(Ordering::Relaxed) as f64;
    store.close();
    (rate, waiters / flushes.max(1.0))
}

fn main() {
    let disk = disk_fsync_rate();
    println!(
        "durable acknowledgements per second ({}s each, 400-byte records)",
        RUN.as_secs()
    );
    println!();
    println!("{:<34} {:>12} {:>12}", "design", "acks/s", "acks/flush");
    println!(
        "{:<34} {:>12.0} {:>12}",
        "limit: disk fsync rate, 1 writer", disk, 1
    );
    for writers in [1usize, 16, 64] {
        let alone = per_request_flush(writers);
        println!(
            "{:<34} {:>12.0} {:>12}",
            format!("flush+fsync per request, {writers} writers"),
            alone,
            1
        );
        let (group, batch) = group_commit(writers);
        println!(
            "{:<34} {:>12.0} {:>12.1}",
            format!("group commit, {writers} writers"),
            group,
            batch
        );
    }
    println!();
    println!(
        "group commit should match the disk at 1 writer and exceed it by about the batch size under concurrency"
    );
    let _ = std::fs::remove_dir_all(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench-store"),
    );
}
