//! The records the trees hold, stored as JSON so that an operator can read
//! a dump and a new optional field needs no migration.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Pending,
    Active,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::Active => "active",
        }
    }
}

/// An account. `email` is kept as the user typed it; the `emails` tree maps
/// its normalised form to `id`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    pub id: Uuid,
    pub email: String,
    pub password_hash: String,
    pub status: Status,
    /// Unix seconds.
    pub created_at: u64,
    pub confirmed_at: Option<u64>,
    /// Access tokens carry the generation they were issued in; a password
    /// change or reset bumps it, which revokes every earlier token at once.
    #[serde(default)]
    pub token_gen: u64,
}

/// The token scopes of the contract; also the `scope` claim.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    Registration,
    PasswordReset,
    Access,
}

impl Scope {
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Registration => "registration",
            Scope::PasswordReset => "password_reset",
            Scope::Access => "access",
        }
    }
}

/// The one live single-use token of a user and scope: issuing a new one
/// replaces `jti`, which voids every earlier token of that scope.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenState {
    pub jti: Uuid,
    pub issued_at: u64,
    pub expires_at: u64,
    pub used_at: Option<u64>,
}

impl TokenState {
    pub fn key(user: Uuid, scope: Scope) -> Vec<u8> {
        let mut k = user.as_bytes().to_vec();
        k.push(b'/');
        k.extend_from_slice(scope.as_str().as_bytes());
        k
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MailKind {
    Confirmation,
    AlreadyRegistered,
    PasswordReset,
}

/// A rendered message waiting for delivery. It is rendered once, at
/// enqueue, so retries send the same Message-ID and Date.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueuedMail {
    /// UUID v7: the key, so the tree iterates oldest first.
    pub id: Uuid,
    pub kind: MailKind,
    pub user_id: Uuid,
    pub from: String,
    pub to: String,
    pub raw: String,
    pub created_at: u64,
    /// After this the link inside is dead, and so is the mail.
    pub expires_at: Option<u64>,
    pub attempts: u32,
    pub next_attempt_at: u64,
    pub last_error: Option<String>,
}

impl QueuedMail {
    /// A message due now, never tried yet.
    pub fn new(
        kind: MailKind,
        user_id: Uuid,
        from: &str,
        to: &str,
        raw: &[u8],
        expires_at: Option<u64>,
        now: u64,
    ) -> QueuedMail {
        QueuedMail {
            id: Uuid::now_v7(),
            kind,
            user_id,
            from: from.to_string(),
            to: to.to_string(),
            raw: String::from_utf8_lossy(raw).into_owned(),
            created_at: now,
            expires_at,
            attempts: 0,
            next_attempt_at: now,
            last_error: None,
        }
    }
}
