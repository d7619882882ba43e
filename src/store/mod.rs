//! The sled store: one tree per entity, a cheap-to-clone handle, conditional
//! multi-tree commits and durable acknowledgement.
//!
//! Callers read, decide, and hand [`Store::apply`] a [`Batch`]: the values it
//! read (preconditions) and the writes it wants. The batch is applied in one
//! sled transaction only if every precondition still holds, otherwise it
//! returns [`StoreError::Conflict`] and the caller decides again. That keeps
//! decisions (and JWT or mail rendering) out of sled's transaction closure,
//! which may run more than once. [`Store::commit`] then waits for the shared
//! fsync before a client is answered.

mod commit;
mod records;

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, RwLock};

use sled::Transactional;
use sled::transaction::{ConflictableTransactionError, TransactionError};
use uuid::Uuid;

pub use commit::{CommitStats, Committer};
pub use records::{MailKind, QueuedMail, Scope, Status, TokenState, User};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("the data changed while the request was deciding; try again")]
    Conflict,
    #[error("store: {0}")]
    Sled(#[from] sled::Error),
    #[error("store: cannot make the write durable: {0}")]
    Durability(String),
    #[error("store: corrupt record in {tree}: {error}")]
    Corrupt { tree: &'static str, error: String },
    #[error("store: cannot open {path}: {error}")]
    Open { path: PathBuf, error: String },
}

/// The trees, named so that batches can say where a key lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TreeId {
    Users,
    Emails,
    Tokens,
    Outbox,
    Dead,
    /// Logged-out access tokens: jti → expiry, purged once expired.
    Revoked,
}

impl TreeId {
    pub fn name(self) -> &'static str {
        match self {
            TreeId::Users => "users",
            TreeId::Emails => "emails",
            TreeId::Tokens => "tokens",
            TreeId::Outbox => "outbox",
            TreeId::Dead => "dead",
            TreeId::Revoked => "revoked",
        }
    }
    pub const ALL: [TreeId; 6] = [
        TreeId::Users,
        TreeId::Emails,
        TreeId::Tokens,
        TreeId::Outbox,
        TreeId::Dead,
        TreeId::Revoked,
    ];
}

/// What a decision read, and what it writes if those reads still hold.
#[derive(Debug, Default)]
pub struct Batch {
    expect: Vec<(TreeId, Vec<u8>, Option<Vec<u8>>)>,
    writes: Vec<(TreeId, Vec<u8>, Option<Vec<u8>>)>,
}

impl Batch {
    pub fn new() -> Self {
        Self::default()
    }
    /// Fails the batch with `Conflict` unless `key` still holds `value`.
    pub fn expect(&mut self, tree: TreeId, key: impl Into<Vec<u8>>, value: Option<Vec<u8>>) {
        self.expect.push((tree, key.into(), value));
    }
    pub fn put(&mut self, tree: TreeId, key: impl Into<Vec<u8>>, value: Vec<u8>) {
        self.writes.push((tree, key.into(), Some(value)));
    }
    pub fn remove(&mut self, tree: TreeId, key: impl Into<Vec<u8>>) {
        self.writes.push((tree, key.into(), None));
    }
}

/// A read value with the exact bytes it came from, for preconditions.
#[derive(Debug, Clone)]
pub struct Versioned<T> {
    pub value: T,
    pub raw: Vec<u8>,
}

#[derive(Clone)]
pub struct Store {
    db: sled::Db,
    trees: [sled::Tree; 6],
    committer: Committer,
    path: PathBuf,
    /// Batches hold it shared; a snapshot holds it alone, so a backup sees
    /// every tree at one instant (sled has no cross-tree snapshot).
    gate: Arc<RwLock<()>>,
}

/// First line of a backup file.
pub const BACKUP_MAGIC: &str = "signupd-backup";

impl Store {
    /// Opens (or creates) the store; fails if another process holds it.
    pub fn open(path: &Path, cache_mb: u64) -> Result<Store, StoreError> {
        let open_err = |error: String| StoreError::Open {
            path: path.to_path_buf(),
            error,
        };
        std::fs::create_dir_all(path).map_err(|e| open_err(e.to_string()))?;
        let db = sled::Config::new()
            .path(path)
            .cache_capacity(cache_mb << 20)
            .open()
            .map_err(|e| {
                // sled reports a held lock as an Io error wrapping the message.
                if e.to_string().contains("could not acquire lock") {
                    open_err(
                        "it is in use by another process (is signupd already running on it?)"
                            .into(),
                    )
                } else {
                    open_err(e.to_string())
                }
            })?;
        let open = |t: TreeId| db.open_tree(t.name());
        let trees = [
            open(TreeId::Users)?,
            open(TreeId::Emails)?,
            open(TreeId::Tokens)?,
            open(TreeId::Outbox)?,
            open(TreeId::Dead)?,
            open(TreeId::Revoked)?,
        ];
        let committer = Committer::start(db.clone(), path).map_err(|e| open_err(e.to_string()))?;
        Ok(Store {
            db,
            trees,
            committer,
            path: path.to_path_buf(),
            gate: Arc::default(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn tree(&self, t: TreeId) -> &sled::Tree {
        let i = TreeId::ALL.iter().position(|x| *x == t).unwrap_or(0);
        &self.trees[i]
    }

    fn get<T: serde::de::DeserializeOwned>(
        &self,
        t: TreeId,
        key: &[u8],
    ) -> Result<Option<Versioned<T>>, StoreError> {
        let Some(raw) = self.tree(t).get(key)? else {
            return Ok(None);
        };
        let value = serde_json::from_slice(&raw).map_err(|e| StoreError::Corrupt {
            tree: t.name(),
            error: e.to_string(),
        })?;
        Ok(Some(Versioned {
            value,
            raw: raw.to_vec(),
        }))
    }

    pub fn user(&self, id: Uuid) -> Result<Option<Versioned<User>>, StoreError> {
        self.get(TreeId::Users, id.as_bytes())
    }

    /// The user id that owns a normalised address, as stored bytes.
    pub fn email_owner(&self, normalized: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self
            .tree(TreeId::Emails)
            .get(normalized.as_bytes())?
            .map(|v| v.to_vec()))
    }

    pub fn user_by_email(&self, normalized: &str) -> Result<Option<Versioned<User>>, StoreError> {
        match self.email_owner(normalized)? {
            Some(id) => match Uuid::from_slice(&id) {
                Ok(id) => self.user(id),
                Err(e) => Err(StoreError::Corrupt {
                    tree: "emails",
                    error: e.to_string(),
                }),
            },
            None => Ok(None),
        }
    }

    pub fn token_state(
        &self,
        user: Uuid,
        scope: Scope,
    ) -> Result<Option<Versioned<TokenState>>, StoreError> {
        self.get(TreeId::Tokens, &TokenState::key(user, scope))
    }

    /// Every readable queued mail, oldest first.
    pub fn outbox(&self) -> Result<Vec<QueuedMail>, StoreError> {
        Ok(self
            .outbox_versioned()?
            .into_iter()
            .map(|v| v.value)
            .collect())
    }

    /// The queue with each entry's stored bytes, for conditional updates.
    /// A record that no longer parses is logged and left out, so that one
    /// bad entry cannot stop the delivery of all the others.
    pub fn outbox_versioned(&self) -> Result<Vec<Versioned<QueuedMail>>, StoreError> {
        let mut out = Vec::new();
        for entry in self.tree(TreeId::Outbox).iter() {
            let (key, raw) = entry?;
            match serde_json::from_slice(&raw) {
                Ok(value) => out.push(Versioned {
                    value,
                    raw: raw.to_vec(),
                }),
                Err(e) => tracing::error!(
                    key = %hex(&key),
                    error = %e,
                    "unreadable record in the mail queue; skipped, the rest is delivered"
                ),
            }
        }
        Ok(out)
    }

    /// Whether an access token's `jti` was logged out.
    pub fn is_revoked(&self, jti: Uuid) -> Result<bool, StoreError> {
        Ok(self.tree(TreeId::Revoked).contains_key(jti.as_bytes())?)
    }

    /// Forgets revocations of tokens that have expired anyway; returns how many.
    pub fn purge_revoked(&self, now: u64) -> Result<usize, StoreError> {
        let tree = self.tree(TreeId::Revoked);
        let mut purged = 0;
        for entry in tree.iter() {
            let (key, value) = entry?;
            let expires = <[u8; 8]>::try_from(value.as_ref()).map_or(0, u64::from_be_bytes);
            if expires <= now {
                tree.remove(key)?;
                purged += 1;
            }
        }
        Ok(purged)
    }

    pub fn revoked_count(&self) -> usize {
        self.tree(TreeId::Revoked).len()
    }

    pub fn dead_count(&self) -> usize {
        self.tree(TreeId::Dead).len()
    }

    pub fn dead_mail(&self) -> Result<Vec<QueuedMail>, StoreError> {
        self.scan(TreeId::Dead)
    }

    pub fn users(&self) -> Result<Vec<User>, StoreError> {
        self.scan(TreeId::Users)
    }

    fn scan<T: serde::de::DeserializeOwned>(&self, t: TreeId) -> Result<Vec<T>, StoreError> {
        self.tree(t)
            .iter()
            .values()
            .map(|v| {
                let v = v?;
                serde_json::from_slice(&v).map_err(|e| StoreError::Corrupt {
                    tree: t.name(),
                    error: e.to_string(),
                })
            })
            .collect()
    }

    /// Applies `batch` atomically across trees if its preconditions hold.
    /// Not yet durable: follow with [`Store::commit`] before acknowledging.
    pub fn apply(&self, batch: &Batch) -> Result<(), StoreError> {
        let _shared = self.gate.read().unwrap_or_else(|e| e.into_inner());
        let [users, emails, tokens, outbox, dead, revoked] = &self.trees;
        let trees = (users, emails, tokens, outbox, dead, revoked);
        let result = trees.transaction(|(u, e, t, o, d, r)| {
            let pick = |id: TreeId| match id {
                TreeId::Users => u,
                TreeId::Emails => e,
                TreeId::Tokens => t,
                TreeId::Outbox => o,
                TreeId::Dead => d,
                TreeId::Revoked => r,
            };
            for (tree, key, want) in &batch.expect {
                let have = pick(*tree).get(key)?;
                if have.as_deref() != want.as_deref() {
                    return Err(ConflictableTransactionError::Abort(()));
                }
            }
            for (tree, key, value) in &batch.writes {
                match value {
                    Some(v) => pick(*tree).insert(key.as_slice(), v.as_slice())?,
                    None => pick(*tree).remove(key.as_slice())?,
                };
            }
            Ok(())
        });
        match result {
            Ok(()) => Ok(()),
            Err(TransactionError::Abort(())) => Err(StoreError::Conflict),
            Err(TransactionError::Storage(e)) => Err(StoreError::Sled(e)),
        }
    }

    /// Writes every record of every tree to `out`, as of one instant:
    /// a header line, then one JSON line per record (keys and values in hex).
    pub fn snapshot(&self, out: &mut impl std::io::Write) -> Result<u64, StoreError> {
        let _alone = self.gate.write().unwrap_or_else(|e| e.into_inner());
        let io = |e: std::io::Error| StoreError::Durability(e.to_string());
        writeln!(
            out,
            "{}",
            serde_json::json!({"format": BACKUP_MAGIC, "version": 1, "created_at": crate::auth::now()})
        )
        .map_err(io)?;
        let mut n = 0;
        for t in TreeId::ALL {
            for entry in self.tree(t).iter() {
                let (k, v) = entry?;
                let line = serde_json::json!({"tree": t.name(), "key": hex(&k), "value": hex(&v)});
                writeln!(out, "{line}").map_err(io)?;
                n += 1;
            }
        }
        Ok(n)
    }

    /// Replaces every tree with a snapshot's records; for a store no daemon
    /// holds. Checks the whole file before it changes anything.
    pub fn restore(&self, input: impl std::io::BufRead) -> Result<u64, StoreError> {
        let bad = |msg: String| StoreError::Corrupt {
            tree: "backup",
            error: msg,
        };
        let mut lines = input.lines();
        let header: serde_json::Value = lines
            .next()
            .ok_or_else(|| bad("empty file".into()))?
            .map_err(|e| bad(e.to_string()))
            .and_then(|l| serde_json::from_str(&l).map_err(|e| bad(e.to_string())))?;
        if header["format"] != BACKUP_MAGIC {
            return Err(bad("not a signupd backup".into()));
        }
        let mut records = Vec::new();
        for (i, line) in lines.enumerate() {
            let line = line.map_err(|e| bad(e.to_string()))?;
            let v: serde_json::Value =
                serde_json::from_str(&line).map_err(|e| bad(format!("line {}: {e}", i + 2)))?;
            let tree = TreeId::ALL
                .into_iter()
                .find(|t| v["tree"] == t.name())
                .ok_or_else(|| bad(format!("line {}: unknown tree", i + 2)))?;
            let field = |f: &str| {
                v[f].as_str()
                    .and_then(unhex)
                    .ok_or_else(|| bad(format!("line {}: bad {f}", i + 2)))
            };
            records.push((tree, field("key")?, field("value")?));
        }
        let _alone = self.gate.write().unwrap_or_else(|e| e.into_inner());
        for t in TreeId::ALL {
            self.tree(t).clear()?;
        }
        for (tree, k, v) in &records {
            self.tree(*tree).insert(k.as_slice(), v.as_slice())?;
        }
        Ok(records.len() as u64)
    }

    /// Waits until every write applied before this call is on disk; many
    /// concurrent callers share one flush.
    pub async fn commit(&self) -> Result<(), StoreError> {
        self.committer
            .commit()
            .await
            .map_err(StoreError::Durability)
    }

    pub fn commit_blocking(&self) -> Result<(), StoreError> {
        self.committer
            .commit_blocking()
            .map_err(StoreError::Durability)
    }

    /// One flush per caller, for the benchmark that compares it with group commit.
    #[doc(hidden)]
    pub fn flush_and_sync_alone(&self) -> Result<(), StoreError> {
        self.db.flush()?;
        std::fs::File::open(self.path.join("db"))
            .and_then(|f| f.sync_data())
            .map_err(|e| StoreError::Durability(e.to_string()))
    }

    /// Flushes and releases the database once every other clone is dropped
    /// too; without it the commit thread would keep the file lock.
    pub fn close(self) {
        self.committer.stop();
    }

    pub fn stats(&self) -> &CommitStats {
        &self.committer.stats
    }

    /// False once a flush failed: acknowledging writes is no longer safe.
    pub fn healthy(&self) -> bool {
        !self.committer.stats.failed.load(Ordering::SeqCst)
    }

    /// Writes raw bytes, bypassing records; for benchmarks and tests.
    #[doc(hidden)]
    pub fn put_raw(&self, tree: TreeId, key: &[u8], value: &[u8]) -> Result<(), StoreError> {
        self.tree(tree).insert(key, value)?;
        Ok(())
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

/// JSON for a record; the types are plain data, so this cannot fail.
pub fn encode<T: serde::Serialize>(v: &T) -> Vec<u8> {
    serde_json::to_vec(v).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn batch_applies_only_if_preconditions_hold_and_survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), 4).unwrap();
        let mut b = Batch::new();
        b.expect(TreeId::Emails, "a@x.org", None);
        b.put(TreeId::Emails, "a@x.org", b"1".to_vec());
        b.put(TreeId::Users, "1", b"{}".to_vec());
        store.apply(&b).unwrap();
        // The same decision again no longer holds: nothing is written.
        let mut b2 = Batch::new();
        b2.expect(TreeId::Emails, "a@x.org", None);
        b2.put(TreeId::Users, "2", b"{}".to_vec());
        assert!(matches!(store.apply(&b2), Err(StoreError::Conflict)));
        store.commit().await.unwrap();
        store.close();
        let store = Store::open(dir.path(), 4).unwrap();
        assert_eq!(store.email_owner("a@x.org").unwrap(), Some(b"1".to_vec()));
        assert!(store.tree(TreeId::Users).get("2").unwrap().is_none());
    }

    #[tokio::test]
    async fn concurrent_commits_share_flushes() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), 4).unwrap();
        let mut tasks = Vec::new();
        for i in 0..200u32 {
            let s = store.clone();
            tasks.push(tokio::spawn(async move {
                s.put_raw(TreeId::Users, &i.to_be_bytes(), b"x").unwrap();
                s.commit().await.unwrap();
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        let flushes = store.stats().flushes.load(Ordering::Relaxed);
        assert_eq!(store.stats().waiters.load(Ordering::Relaxed), 200);
        assert!(flushes < 200, "each waiter paid its own flush ({flushes})");
    }

    #[test]
    fn expired_revocations_are_purged_and_live_ones_kept() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), 4).unwrap();
        let (old, live) = (Uuid::new_v4(), Uuid::new_v4());
        let mut b = Batch::new();
        b.put(
            TreeId::Revoked,
            old.as_bytes(),
            1000u64.to_be_bytes().to_vec(),
        );
        b.put(
            TreeId::Revoked,
            live.as_bytes(),
            2000u64.to_be_bytes().to_vec(),
        );
        store.apply(&b).unwrap();
        assert_eq!(store.purge_revoked(1500).unwrap(), 1);
        assert!(!store.is_revoked(old).unwrap());
        assert!(store.is_revoked(live).unwrap());
        assert_eq!(store.revoked_count(), 1);
    }

    #[tokio::test]
    async fn a_snapshot_restores_into_a_fresh_store() {
        let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let store = Store::open(a.path(), 4).unwrap();
        let mut batch = Batch::new();
        batch.put(
            TreeId::Users,
            Uuid::new_v4().as_bytes(),
            b"{\"x\":1}".to_vec(),
        );
        batch.put(TreeId::Outbox, Uuid::now_v7().as_bytes(), vec![0, 255, 10]);
        store.apply(&batch).unwrap();
        let mut file = Vec::new();
        assert_eq!(store.snapshot(&mut file).unwrap(), 2);
        let fresh = Store::open(b.path(), 4).unwrap();
        fresh
            .put_raw(TreeId::Dead, b"stale", b"gone after restore")
            .unwrap();
        assert_eq!(fresh.restore(std::io::Cursor::new(&file)).unwrap(), 2);
        for t in TreeId::ALL {
            let left: Vec<_> = store.tree(t).iter().map(|e| e.unwrap()).collect();
            let right: Vec<_> = fresh.tree(t).iter().map(|e| e.unwrap()).collect();
            assert_eq!(left, right, "{}", t.name());
        }
        assert!(fresh.restore(std::io::Cursor::new(b"{}\n")).is_err());
    }

    #[test]
    fn second_open_is_refused_while_held() {
        let dir = tempfile::tempdir().unwrap();
        let _store = Store::open(dir.path(), 4).unwrap();
        let e = Store::open(dir.path(), 4).err().unwrap().to_string();
        assert!(e.contains("in use"), "{e}");
    }
}
