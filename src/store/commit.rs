//! Group commit: one thread makes the store durable for every waiter at once.
//!
//! sled 0.34 has two traps here. Concurrent `flush_async` calls can hang
//! forever, and `flush` ends in `sync_file_range`, which survives a process
//! crash but not a power cut. So exactly one thread flushes: it takes the
//! first waiter, drains every other waiter already queued, runs `flush` and
//! then `fsync` on sled's log file, and answers them all with one result.
//! Under load many requests share one fsync; alone, a request pays one.

use std::fs::File;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;

use tokio::sync::oneshot;

type Waiter = oneshot::Sender<Result<(), String>>;

enum Msg {
    Commit(Waiter),
    /// Flush once more and let go of the database.
    Stop,
}

/// Counters that benchmarks and readiness read.
#[derive(Debug, Default)]
pub struct CommitStats {
    pub flushes: AtomicU64,
    pub waiters: AtomicU64,
    /// Set after a flush or fsync failed: nothing since can be acknowledged.
    pub failed: AtomicBool,
}

#[derive(Clone)]
pub struct Committer {
    tx: mpsc::Sender<Msg>,
    thread: Arc<std::sync::Mutex<Option<std::thread::JoinHandle<()>>>>,
    pub stats: Arc<CommitStats>,
}

impl Committer {
    pub fn start(db: sled::Db, dir: &Path) -> std::io::Result<Committer> {
        // fsync acts on the inode, so our own handle on sled's log file syncs
        // what sled wrote through its handle.
        let log = File::open(dir.join("db"))?;
        let (tx, rx) = mpsc::channel::<Msg>();
        let stats = Arc::new(CommitStats::default());
        let thread_stats = stats.clone();
        let thread = std::thread::Builder::new()
            .name("signupd-commit".into())
            .spawn(move || run(db, log, rx, thread_stats))?;
        Ok(Committer {
            tx,
            thread: Arc::new(std::sync::Mutex::new(Some(thread))),
            stats,
        })
    }

    /// Stops the thread after a last flush, so the database can be reopened.
    pub fn stop(&self) {
        let _ = self.tx.send(Msg::Stop);
        let handle = self.thread.lock().ok().and_then(|mut h| h.take());
        if let Some(h) = handle {
            let _ = h.join();
        }
    }

    /// Resolves once everything written before the call is on disk.
    pub async fn commit(&self) -> Result<(), String> {
        let (tx, rx) = oneshot::channel();
        self.tx
            .send(Msg::Commit(tx))
            .map_err(|_| "the commit thread has stopped".to_string())?;
        rx.await
            .map_err(|_| "the commit thread has stopped".to_string())?
    }

    /// The same from a thread that is not in the runtime (CLI, shutdown).
    pub fn commit_blocking(&self) -> Result<(), String> {
        let (tx, rx) = oneshot::channel();
        self.tx
            .send(Msg::Commit(tx))
            .map_err(|_| "the commit thread has stopped".to_string())?;
        rx.blocking_recv()
            .map_err(|_| "the commit thread has stopped".to_string())?
    }
}

fn run(db: sled::Db, log: File, rx: mpsc::Receiver<Msg>, stats: Arc<CommitStats>) {
    let mut stopping = false;
    while !stopping {
        let Ok(first) = rx.recv() else { break };
        let mut batch = Vec::new();
        for msg in std::iter::once(first).chain(rx.try_iter()) {
            match msg {
                Msg::Commit(w) => batch.push(w),
                Msg::Stop => stopping = true,
            }
        }
        let result = db
            .flush()
            .map(|_| ())
            .map_err(|e| e.to_string())
            .and_then(|()| log.sync_data().map_err(|e| e.to_string()));
        stats.flushes.fetch_add(1, Ordering::Relaxed);
        stats
            .waiters
            .fetch_add(batch.len() as u64, Ordering::Relaxed);
        if let Err(e) = &result {
            stats.failed.store(true, Ordering::SeqCst);
            tracing::error!(error = %e, "store flush failed; writes are no longer acknowledged");
        }
        for w in batch {
            // A waiter whose request was dropped is no longer listening; fine.
            let _ = w.send(result.clone());
        }
    }
}
