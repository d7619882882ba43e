//! The delivery worker: sends what is due in the `outbox` tree, reschedules
//! what failed for a while, and buries what can never be delivered.
//!
//! It sleeps until the next message is due, new mail is queued (a `Notify`,
//! never a busy poll), or shutdown. A message leaves the outbox only after
//! the relay accepted it, so a crash mid-send means it is sent again: at
//! least once, never lost. A refused or broken message is moved to the
//! `dead` tree with the reason; it never stops the loop. Times are read from
//! a [`Clock`] so tests can run the backoff on paused time.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::store::{Batch, QueuedMail, Store, StoreError, TreeId, Versioned, encode};

/// Delivered messages removed from the outbox per store transaction. A
/// crash before their removal sends them again (at least once).
const REMOVE_BATCH: usize = 64;

/// Unix seconds, from the system or from a test.
pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> u64;
}

pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> u64 {
        crate::auth::now()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// The relay said 4xx: try this message again later.
    Transient,
    /// The relay cannot be reached or talked to: try everything again later.
    Connection,
    /// The relay said 5xx: this message will never be accepted.
    Permanent,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason}")]
pub struct DeliveryError {
    pub kind: FailureKind,
    pub reason: String,
}

impl DeliveryError {
    pub fn new(kind: FailureKind, reason: impl Into<String>) -> Self {
        DeliveryError {
            kind,
            reason: reason.into(),
        }
    }
}

/// Something that delivers queued mail, keeping a connection between calls.
pub trait Transport: Send + 'static {
    fn send(&mut self, mail: &QueuedMail)
    -> impl Future<Output = Result<(), DeliveryError>> + Send;
    /// Ends the connection at the end of a round.
    fn finish(&mut self) -> impl Future<Output = ()> + Send;
}

/// `retry_initial` doubling up to `retry_max`, then jitter, then `max_lifetime`.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    pub initial: u64,
    pub max: u64,
    pub max_lifetime: u64,
}

impl RetryPolicy {
    /// Seconds before the next try after `attempts` failed ones. `jitter`
    /// in [0, 1) takes up to a quarter off, so that messages that failed
    /// together (a relay outage) come back spread out, never later than
    /// the configured delay.
    pub fn delay(&self, attempts: u32, jitter: f64) -> u64 {
        let doublings = attempts.saturating_sub(1).min(62);
        let base = self
            .initial
            .saturating_mul(1u64 << doublings)
            .min(self.max)
            .max(1);
        let cut = (base as f64 * 0.25 * jitter.clamp(0.0, 1.0)) as u64;
        (base - cut).max(1)
    }
}

/// What readiness and operators see of the worker.
#[derive(Debug, Default)]
pub struct WorkerStatus {
    pub running: AtomicBool,
    pub sent: AtomicU64,
    pub retried: AtomicU64,
    pub dead: AtomicU64,
    /// As of the last round.
    pub queue_depth: AtomicU64,
    pub oldest_created_at: AtomicU64,
    pub dead_total: AtomicU64,
    pub last_error: std::sync::Mutex<Option<String>>,
}

impl WorkerStatus {
    /// Seconds the oldest queued message has waited, as of the last round.
    pub fn oldest_age(&self, now: u64) -> Option<u64> {
        let oldest = self.oldest_created_at.load(Ordering::Relaxed);
        (oldest > 0).then(|| now.saturating_sub(oldest))
    }

    pub fn last_error(&self) -> Option<String> {
        self.last_error.lock().ok().and_then(|e| e.clone())
    }
    fn set_last_error(&self, e: Option<String>) {
        if let Ok(mut slot) = self.last_error.lock() {
            *slot = e;
        }
    }
}

/// What a round leaves in the queue.
#[derive(Default)]
struct Remaining {
    depth: u64,
    oldest: Option<u64>,
    next_due: Option<u64>,
}

impl Remaining {
    fn keep(&mut self, created_at: u64, due: u64) {
        self.depth += 1;
        self.oldest = Some(self.oldest.map_or(created_at, |o| o.min(created_at)));
        self.next_due = Some(self.next_due.map_or(due, |n| n.min(due)));
    }
}

pub struct Worker<T: Transport, C: Clock> {
    store: Store,
    transport: T,
    clock: C,
    policy: RetryPolicy,
    wake: Arc<Notify>,
    status: Arc<WorkerStatus>,
}

impl<T: Transport, C: Clock> Worker<T, C> {
    pub fn new(
        store: Store,
        transport: T,
        clock: C,
        policy: RetryPolicy,
        wake: Arc<Notify>,
        status: Arc<WorkerStatus>,
    ) -> Self {
        Worker {
            store,
            transport,
            clock,
            policy,
            wake,
            status,
        }
    }

    pub async fn run(mut self, shutdown: CancellationToken) {
        self.status.running.store(true, Ordering::SeqCst);
        loop {
            let next = match self.round(&shutdown).await {
                Ok(next) => next,
                Err(e) => {
                    tracing::error!(error = %e, "mail queue round failed; retrying in 5 s");
                    Some(self.clock.now() + 5)
                }
            };
            if shutdown.is_cancelled() {
                break;
            }
            let wait = next.map_or(3600, |t| t.saturating_sub(self.clock.now()));
            if wait == 0 {
                continue;
            }
            tokio::select! {
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(Duration::from_secs(wait)) => {}
                _ = shutdown.cancelled() => break,
            }
        }
        self.transport.finish().await;
        self.status.running.store(false, Ordering::SeqCst);
    }

    /// Sends everything due; returns when the next message falls due.
    pub async fn round(&mut self, shutdown: &CancellationToken) -> Result<Option<u64>, StoreError> {
        let now = self.clock.now();
        let queue = self.store.outbox_versioned()?;
        let mut left = Remaining::default();
        let mut relay_down: Option<String> = None;
        let mut delivered = Vec::new();
        for item in queue {
            let mail = &item.value;
            if mail.next_attempt_at > now || shutdown.is_cancelled() {
                left.keep(mail.created_at, mail.next_attempt_at);
                continue;
            }
            if let Some(reason) = self.expired(mail, now) {
                self.bury(&item, reason)?;
                continue;
            }
            let result = match &relay_down {
                // The relay just failed: do not knock again for every message.
                Some(reason) => Err(DeliveryError::new(FailureKind::Connection, reason.clone())),
                None => self.transport.send(mail).await,
            };
            match result {
                Ok(()) => {
                    delivered.push(item.clone());
                    if delivered.len() >= REMOVE_BATCH {
                        self.remove_delivered(&mut delivered)?;
                    }
                    self.status.sent.fetch_add(1, Ordering::Relaxed);
                    self.status.set_last_error(None);
                    tracing::info!(id = %mail.id, kind = ?mail.kind, attempts = mail.attempts + 1, "mail delivered");
                }
                Err(e) if e.kind == FailureKind::Permanent => self.bury(&item, e.reason)?,
                Err(e) => {
                    if e.kind == FailureKind::Connection && relay_down.is_none() {
                        relay_down = Some(e.reason.clone());
                    }
                    let due = self.reschedule(&item, &e.reason, now)?;
                    left.keep(mail.created_at, due);
                }
            }
        }
        self.remove_delivered(&mut delivered)?;
        self.transport.finish().await;
        self.status.queue_depth.store(left.depth, Ordering::Relaxed);
        self.status
            .oldest_created_at
            .store(left.oldest.unwrap_or(0), Ordering::Relaxed);
        self.status
            .dead_total
            .store(self.store.dead_count() as u64, Ordering::Relaxed);
        // Removals need not be durable before the next send (a resend is
        // allowed), so one flush per round is enough.
        self.store.commit().await?;
        Ok(left.next_due)
    }

    /// Takes delivered messages out of the outbox, many per transaction.
    /// One that changed meanwhile (deleted with its account) makes the
    /// batch fail; then each goes alone, and the changed one is left.
    fn remove_delivered(&self, done: &mut Vec<Versioned<QueuedMail>>) -> Result<(), StoreError> {
        if done.is_empty() {
            return Ok(());
        }
        let removal = |items: &[Versioned<QueuedMail>]| {
            let mut b = Batch::new();
            for item in items {
                b.expect(
                    TreeId::Outbox,
                    item.value.id.as_bytes(),
                    Some(item.raw.clone()),
                );
                b.remove(TreeId::Outbox, item.value.id.as_bytes());
            }
            b
        };
        match self.store.apply(&removal(done)) {
            Err(StoreError::Conflict) => {
                for item in done.iter() {
                    ignore_conflict(self.store.apply(&removal(std::slice::from_ref(item))))?;
                }
            }
            r => r?,
        }
        done.clear();
        Ok(())
    }

    fn expired(&self, mail: &QueuedMail, now: u64) -> Option<String> {
        if mail.expires_at.is_some_and(|t| t <= now) {
            return Some("the link in this mail expired before it could be delivered".into());
        }
        if mail.created_at.saturating_add(self.policy.max_lifetime) <= now {
            let last = mail.last_error.as_deref().unwrap_or("no error recorded");
            return Some(format!(
                "not delivered within mail.max_lifetime ({} s); last error: {last}",
                self.policy.max_lifetime
            ));
        }
        None
    }

    fn reschedule(
        &self,
        item: &Versioned<QueuedMail>,
        reason: &str,
        now: u64,
    ) -> Result<u64, StoreError> {
        let mut mail = item.value.clone();
        mail.attempts += 1;
        let delay = self.policy.delay(mail.attempts, rand::random::<f64>());
        mail.next_attempt_at = now + delay;
        mail.last_error = Some(reason.to_string());
        let mut b = Batch::new();
        b.expect(TreeId::Outbox, mail.id.as_bytes(), Some(item.raw.clone()));
        b.put(TreeId::Outbox, mail.id.as_bytes(), encode(&mail));
        ignore_conflict(self.store.apply(&b))?;
        self.status.retried.fetch_add(1, Ordering::Relaxed);
        self.status.set_last_error(Some(reason.to_string()));
        tracing::warn!(id = %mail.id, kind = ?mail.kind, attempts = mail.attempts, retry_in = delay, reason, "mail not delivered; will retry");
        Ok(mail.next_attempt_at)
    }

    fn bury(&self, item: &Versioned<QueuedMail>, reason: String) -> Result<(), StoreError> {
        let mut mail = item.value.clone();
        mail.last_error = Some(reason.clone());
        let mut b = Batch::new();
        b.expect(TreeId::Outbox, mail.id.as_bytes(), Some(item.raw.clone()));
        b.remove(TreeId::Outbox, mail.id.as_bytes());
        b.put(TreeId::Dead, mail.id.as_bytes(), encode(&mail));
        ignore_conflict(self.store.apply(&b))?;
        self.status.dead.fetch_add(1, Ordering::Relaxed);
        self.status.set_last_error(Some(reason.clone()));
        tracing::error!(id = %mail.id, kind = ?mail.kind, attempts = mail.attempts, reason, "mail is dead: it will not be delivered");
        Ok(())
    }
}

/// A message changed under us (deleted with its account, say): leave it.
fn ignore_conflict(r: Result<(), StoreError>) -> Result<(), StoreError> {
    match r {
        Err(StoreError::Conflict) => Ok(()),
        r => r,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::MailKind;
    use std::collections::VecDeque;
    use std::sync::Mutex;

    #[test]
    fn delay_doubles_to_the_cap_and_jitter_only_shortens() {
        let p = RetryPolicy {
            initial: 60,
            max: 3600,
            max_lifetime: 432000,
        };
        let plain: Vec<u64> = (1..=8).map(|n| p.delay(n, 0.0)).collect();
        assert_eq!(plain, [60, 120, 240, 480, 960, 1920, 3600, 3600]);
        assert_eq!(p.delay(1, 1.0), 45);
        assert_eq!(p.delay(u32::MAX, 0.0), 3600);
        for n in 1..20 {
            for j in [0.0, 0.3, 0.7, 0.99] {
                let d = p.delay(n, j);
                assert!(
                    d <= p.delay(n, 0.0) && d * 4 >= p.delay(n, 0.0) * 3,
                    "{n} {j} {d}"
                );
            }
        }
    }

    /// Paused tokio time, seen as unix seconds.
    struct PausedClock {
        start: tokio::time::Instant,
        base: u64,
    }

    impl Clock for PausedClock {
        fn now(&self) -> u64 {
            self.base + self.start.elapsed().as_secs()
        }
    }

    /// Fails with the scripted errors, then accepts; records when it was called.
    #[derive(Clone)]
    struct Scripted {
        script: Arc<Mutex<VecDeque<DeliveryError>>>,
        calls: Arc<Mutex<Vec<tokio::time::Instant>>>,
        delivered: Arc<Notify>,
    }

    impl Transport for Scripted {
        async fn send(&mut self, _: &QueuedMail) -> Result<(), DeliveryError> {
            self.calls.lock().unwrap().push(tokio::time::Instant::now());
            match self.script.lock().unwrap().pop_front() {
                Some(e) => Err(e),
                None => {
                    self.delivered.notify_one();
                    Ok(())
                }
            }
        }
        async fn finish(&mut self) {}
    }

    fn mail(now: u64) -> QueuedMail {
        let raw = b"Subject: x\r\n\r\nbody\r\n";
        QueuedMail::new(
            MailKind::Confirmation,
            uuid::Uuid::new_v4(),
            "noreply@example.com",
            "a@example.com",
            raw,
            None,
            now,
        )
    }

    impl Scripted {
        fn failing(errors: Vec<DeliveryError>) -> Scripted {
            Scripted {
                script: Arc::new(Mutex::new(errors.into())),
                calls: Arc::default(),
                delivered: Arc::new(Notify::new()),
            }
        }
    }

    const POLICY: RetryPolicy = RetryPolicy {
        initial: 60,
        max: 3600,
        max_lifetime: 432000,
    };

    /// A store and a clock on paused time; keep the directory alive.
    fn fixture() -> (tempfile::TempDir, Store, PausedClock) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), 4).unwrap();
        let clock = PausedClock {
            start: tokio::time::Instant::now(),
            base: 1_000_000,
        };
        (dir, store, clock)
    }

    #[tokio::test(start_paused = true)]
    async fn retries_back_off_on_paused_time_then_deliver() {
        let (_dir, store, clock) = fixture();
        let m = mail(clock.now());
        store
            .put_raw(TreeId::Outbox, m.id.as_bytes(), &encode(&m))
            .unwrap();
        let transient = |r: &str| DeliveryError::new(FailureKind::Transient, r);
        let t = Scripted::failing(vec![
            transient("451 later"),
            DeliveryError::new(FailureKind::Connection, "refused"),
            transient("421 busy"),
        ]);
        let policy = POLICY;
        let status = Arc::new(WorkerStatus::default());
        let worker = Worker::new(
            store.clone(),
            t.clone(),
            clock,
            policy,
            Arc::new(Notify::new()),
            status.clone(),
        );
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(worker.run(shutdown.clone()));
        t.delivered.notified().await;
        shutdown.cancel();
        task.await.unwrap();

        let calls = t.calls.lock().unwrap().clone();
        assert_eq!(calls.len(), 4);
        let gaps: Vec<u64> = calls.windows(2).map(|w| (w[1] - w[0]).as_secs()).collect();
        // Each gap is the policy's delay for that attempt, less at most a quarter.
        for (i, gap) in gaps.iter().enumerate() {
            let full = policy.delay(i as u32 + 1, 0.0);
            assert!(
                *gap <= full + 1 && *gap * 4 + 4 >= full * 3,
                "gap {i}: {gap} vs {full}"
            );
        }
        assert!(store.outbox().unwrap().is_empty());
        assert_eq!(status.sent.load(Ordering::Relaxed), 1);
        assert_eq!(status.retried.load(Ordering::Relaxed), 3);
        store.close();
    }

    #[tokio::test(start_paused = true)]
    async fn an_unreadable_record_does_not_stop_the_others() {
        let (_dir, store, clock) = fixture();
        store
            .put_raw(TreeId::Outbox, b"\x00garbage", b"{not json")
            .unwrap();
        let good = mail(clock.now());
        store
            .put_raw(TreeId::Outbox, good.id.as_bytes(), &encode(&good))
            .unwrap();
        let t = Scripted::failing(vec![]);
        let mut worker = Worker::new(
            store.clone(),
            t.clone(),
            clock,
            POLICY,
            Arc::new(Notify::new()),
            Arc::default(),
        );
        worker.round(&CancellationToken::new()).await.unwrap();
        assert_eq!(t.calls.lock().unwrap().len(), 1, "the good one was sent");
        assert!(store.outbox_versioned().unwrap().is_empty());
        store.close();
    }

    #[tokio::test(start_paused = true)]
    async fn permanent_refusals_and_expired_links_go_to_dead_mail() {
        let (_dir, store, clock) = fixture();
        let refused = mail(clock.now());
        let mut stale = mail(clock.now());
        stale.expires_at = Some(clock.now());
        for m in [&refused, &stale] {
            store
                .put_raw(TreeId::Outbox, m.id.as_bytes(), &encode(m))
                .unwrap();
        }
        let t = Scripted::failing(vec![DeliveryError::new(
            FailureKind::Permanent,
            "550 5.1.1 no such user",
        )]);
        let policy = POLICY;
        let mut worker = Worker::new(
            store.clone(),
            t.clone(),
            clock,
            policy,
            Arc::new(Notify::new()),
            Arc::default(),
        );
        let next = worker.round(&CancellationToken::new()).await.unwrap();
        assert_eq!(next, None, "nothing left to send");
        assert!(store.outbox().unwrap().is_empty());
        let dead = store.dead_mail().unwrap();
        assert_eq!(dead.len(), 2);
        let reasons: Vec<String> = dead.iter().map(|m| m.last_error.clone().unwrap()).collect();
        assert!(
            reasons.iter().any(|r| r.contains("550 5.1.1 no such user")),
            "{reasons:?}"
        );
        assert!(reasons.iter().any(|r| r.contains("expired")), "{reasons:?}");
        assert_eq!(
            t.calls.lock().unwrap().len(),
            1,
            "the expired one was never sent"
        );
        store.close();
    }
}
