//! A fixed set of threads for bcrypt, with a bounded wait queue.
//!
//! bcrypt at cost 12 is ~200 ms of pure CPU. Running it on tokio's blocking
//! pool would let up to 512 threads fight over two cores, and a flood of
//! sign-ups would starve everything else. Here exactly `workers` threads
//! hash, at most `queue` jobs wait, and a job beyond that is refused at once
//! so the caller can answer 503 with `Retry-After`. The reactor never hashes,
//! so cheap routes keep answering while every worker is busy.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, Mutex};

use tokio::sync::oneshot;

type Job = Box<dyn FnOnce() + Send + 'static>;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PoolError {
    #[error("every hashing worker is busy and the queue is full")]
    Overloaded,
    #[error("the hashing pool has stopped")]
    Stopped,
}

#[derive(Debug, Default)]
pub struct PoolStats {
    /// Jobs admitted and not finished: running plus waiting.
    pub inflight: AtomicUsize,
    pub busy: AtomicUsize,
}

impl PoolStats {
    pub fn queued(&self) -> usize {
        self.inflight
            .load(Ordering::SeqCst)
            .saturating_sub(self.busy.load(Ordering::SeqCst))
    }
}

#[derive(Clone)]
pub struct HashPool {
    tx: SyncSender<Job>,
    stats: Arc<PoolStats>,
    workers: usize,
    limit: usize,
}

impl HashPool {
    /// `queue` jobs may wait beyond the `workers` that run.
    pub fn new(workers: usize, queue: usize) -> std::io::Result<HashPool> {
        let workers = workers.max(1);
        // Admission is counted in `inflight`, not by the channel: a job leaves
        // the channel when a worker takes it, so the channel alone would admit
        // `workers` more than asked, and capacity 0 would refuse jobs while
        // idle workers are between two `recv`s.
        let limit = queue + workers;
        let (tx, rx) = sync_channel::<Job>(limit);
        let rx = Arc::new(Mutex::new(rx));
        let stats = Arc::new(PoolStats::default());
        for i in 0..workers {
            let rx = rx.clone();
            let stats = stats.clone();
            std::thread::Builder::new()
                .name(format!("signupd-hash-{i}"))
                .spawn(move || {
                    loop {
                        // The lock is held only while waiting for the next job.
                        let job = match rx.lock() {
                            Ok(guard) => guard.recv(),
                            Err(_) => return,
                        };
                        let Ok(job) = job else { return };
                        stats.busy.fetch_add(1, Ordering::SeqCst);
                        job();
                        stats.busy.fetch_sub(1, Ordering::SeqCst);
                        stats.inflight.fetch_sub(1, Ordering::SeqCst);
                    }
                })?;
        }
        Ok(HashPool {
            tx,
            stats,
            workers,
            limit,
        })
    }

    pub fn workers(&self) -> usize {
        self.workers
    }

    pub fn stats(&self) -> &PoolStats {
        &self.stats
    }

    /// Runs `f` on a worker. Refuses at once when the queue is full. If the
    /// caller goes away before a worker picks the job up, it is skipped.
    pub async fn run<T, F>(&self, f: F) -> Result<T, PoolError>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        let (done, wait) = oneshot::channel();
        let job: Job = Box::new(move || {
            if done.is_closed() {
                return;
            }
            let _ = done.send(f());
        });
        if self.stats.inflight.fetch_add(1, Ordering::SeqCst) >= self.limit {
            self.stats.inflight.fetch_sub(1, Ordering::SeqCst);
            return Err(PoolError::Overloaded);
        }
        if let Err(e) = self.tx.try_send(job) {
            self.stats.inflight.fetch_sub(1, Ordering::SeqCst);
            return Err(match e {
                TrySendError::Full(_) => PoolError::Overloaded,
                TrySendError::Disconnected(_) => PoolError::Stopped,
            });
        }
        wait.await.map_err(|_| PoolError::Stopped)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Barrier;

    #[tokio::test]
    async fn refuses_beyond_workers_plus_queue_and_recovers() {
        let pool = HashPool::new(1, 1).unwrap();
        let gate = Arc::new(Barrier::new(2));
        let g = gate.clone();
        let running = tokio::spawn({
            let pool = pool.clone();
            async move { pool.run(move || g.wait()).await }
        });
        // Wait until the worker holds the first job.
        while pool.stats().busy.load(Ordering::SeqCst) == 0 {
            tokio::task::yield_now().await;
        }
        let waiting = tokio::spawn({
            let pool = pool.clone();
            async move { pool.run(|| 2).await }
        });
        while pool.stats().queued() == 0 {
            tokio::task::yield_now().await;
        }
        // One running, one queued: the next is refused.
        assert_eq!(pool.run(|| 3).await, Err(PoolError::Overloaded));
        gate.wait();
        running.await.unwrap().unwrap();
        assert_eq!(waiting.await.unwrap(), Ok(2));
        assert_eq!(pool.run(|| 4).await, Ok(4));
    }
}
