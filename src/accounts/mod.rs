//! The use cases: register, verify and resend here; login, logout, password
//! change and deletion in [`session`]; forgot and reset in [`reset`]. No
//! HTTP in here: handlers parse, call one of these, and map the result.
//!
//! Each use case reads, decides, and commits the decision as one conditional
//! [`Batch`]; if anything it read changed meanwhile, it decides again. Every
//! outcome that the API answers identically (new, pending or active address)
//! does the same expensive work (one bcrypt hash, one durable commit), so
//! neither the answer nor its timing tells whether an address has an account.

pub mod policy;
pub mod reset;
pub mod session;
pub mod throttle;

use std::sync::Arc;

use email_address::{EmailAddress, Options};
use tokio::sync::Notify;
use unicode_normalization::UnicodeNormalization;
use uuid::Uuid;

use crate::auth::{self, Auth, MAX_PASSWORD_BYTES, MIN_PASSWORD_BYTES, TokenError};
use crate::mailer::compose::Composer;
use crate::pool::PoolError;
use crate::store::{
    Batch, MailKind, QueuedMail, Scope, Status, Store, StoreError, TokenState, TreeId, User, encode,
};
use throttle::Throttle;

/// RFC 5321's limit on a forward path, which bounds every usable address.
pub const MAX_EMAIL_BYTES: usize = 254;

#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    #[error("{0}")]
    EmailInvalid(&'static str),
    #[error("password must be at least {MIN_PASSWORD_BYTES} bytes")]
    PasswordTooShort,
    #[error("password must be at most {MAX_PASSWORD_BYTES} bytes")]
    PasswordTooLong,
    #[error("this password is among the most common ones; choose another")]
    PasswordTooCommon,
    #[error("the email address or the password is wrong")]
    InvalidCredentials,
    #[error("confirm your email address first; a new link can be sent")]
    EmailUnconfirmed,
    #[error("a valid access token is required")]
    Unauthorized,
    #[error("too many failed attempts; retry in {0} s")]
    TooManyAttempts(u64),
    #[error(transparent)]
    Token(#[from] TokenError),
    #[error("the password hashing pool is saturated")]
    Overloaded,
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<PoolError> for AccountError {
    fn from(e: PoolError) -> Self {
        match e {
            PoolError::Overloaded => AccountError::Overloaded,
            PoolError::Stopped => AccountError::Internal(e.to_string()),
        }
    }
}

impl From<StoreError> for AccountError {
    fn from(e: StoreError) -> Self {
        AccountError::Internal(e.to_string())
    }
}

/// Rendering a mail into memory.
impl From<std::io::Error> for AccountError {
    fn from(e: std::io::Error) -> Self {
        AccountError::Internal(e.to_string())
    }
}

/// Signing a token.
impl From<jsonwebtoken::errors::Error> for AccountError {
    fn from(e: jsonwebtoken::errors::Error) -> Self {
        AccountError::Internal(e.to_string())
    }
}

/// An address as typed (trimmed) and its normalised form for the index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email {
    pub typed: String,
    pub normalized: String,
}

/// Refuses what cannot be a deliverable address or could smuggle a header.
pub fn validate_email(raw: &str) -> Result<Email, AccountError> {
    let typed = raw.trim();
    if typed.is_empty() {
        return Err(AccountError::EmailInvalid("email must not be empty"));
    }
    if typed.len() > MAX_EMAIL_BYTES {
        return Err(AccountError::EmailInvalid(
            "email must be at most 254 bytes",
        ));
    }
    if typed
        .chars()
        .any(|c| c.is_control() || c.is_whitespace() || matches!(c, '"' | '<' | '>' | '\\'))
    {
        return Err(AccountError::EmailInvalid(
            "email must not contain spaces, quotes, angle brackets or control characters",
        ));
    }
    let options = Options::default()
        .without_display_text()
        .without_domain_literal()
        .with_required_tld();
    if EmailAddress::parse_with_options(typed, options).is_err() {
        return Err(AccountError::EmailInvalid(
            "email must be an address like name@example.com",
        ));
    }
    let normalized = typed.nfc().collect::<String>().to_lowercase();
    Ok(Email {
        typed: typed.to_string(),
        normalized,
    })
}

/// Length in bytes, checked before hashing: bcrypt would silently ignore
/// everything past 72 bytes.
pub fn validate_password(p: &str) -> Result<(), AccountError> {
    if p.len() < MIN_PASSWORD_BYTES {
        return Err(AccountError::PasswordTooShort);
    }
    if p.len() > MAX_PASSWORD_BYTES {
        return Err(AccountError::PasswordTooLong);
    }
    Ok(())
}

pub struct Accounts {
    store: Store,
    auth: Arc<Auth>,
    composer: Composer,
    mail_ready: Arc<Notify>,
    throttle: Throttle,
}

impl Accounts {
    pub fn new(
        store: Store,
        auth: Arc<Auth>,
        composer: Composer,
        mail_ready: Arc<Notify>,
        throttle: Throttle,
    ) -> Self {
        Accounts {
            store,
            auth,
            composer,
            mail_ready,
            throttle,
        }
    }

    /// Tells the mail worker to look at the queue now.
    pub fn wake_mail(&self) {
        self.mail_ready.notify_one();
    }

    pub fn throttle(&self) -> &Throttle {
        &self.throttle
    }

    /// Length, then (on the pool) the common-password check and the hash.
    pub async fn hash_new_password(&self, password: &str) -> Result<String, AccountError> {
        validate_password(password)?;
        let p = password.to_string();
        let cost = self.auth.cost();
        self.auth
            .pool()
            .run(move || {
                if policy::is_common(&p) {
                    return Err(AccountError::PasswordTooCommon);
                }
                bcrypt::hash(p.as_bytes(), cost).map_err(|e| AccountError::Internal(e.to_string()))
            })
            .await?
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Reads, decides and applies until what the decision read still holds
    /// (see [`Store::apply`]). `decide` returns the batch and a result, or
    /// `None` when there is nothing to write.
    pub(crate) fn apply_decided<T>(
        &self,
        mut decide: impl FnMut() -> Result<Option<(Batch, T)>, AccountError>,
    ) -> Result<Option<T>, AccountError> {
        loop {
            let Some((batch, out)) = decide()? else {
                return Ok(None);
            };
            match self.store.apply(&batch) {
                Err(StoreError::Conflict) => continue,
                r => r?,
            }
            return Ok(Some(out));
        }
    }

    pub fn auth(&self) -> &Auth {
        &self.auth
    }

    /// Creates a pending account and queues its confirmation; for a pending
    /// address, replaces the password and queues a new confirmation (the
    /// newest registration is the one the mail confirms); for an active one,
    /// queues an "already registered" notice and changes nothing.
    pub async fn register(&self, email: &str, password: &str) -> Result<(), AccountError> {
        let email = validate_email(email)?;
        // Hashed for every outcome so that all of them take the same time.
        let hash = self.hash_new_password(password).await?;
        let mail = self.throttle.mail_allowed(
            throttle::MailLimit::Registration,
            &email.normalized,
            auth::now(),
        );
        self.apply_decided(|| {
            let existing = self.store.user_by_email(&email.normalized)?;
            let mut batch = Batch::new();
            let now = auth::now();
            match existing {
                None => {
                    let user = User {
                        id: Uuid::new_v4(),
                        email: email.typed.clone(),
                        password_hash: hash.clone(),
                        status: Status::Pending,
                        created_at: now,
                        confirmed_at: None,
                        token_gen: 0,
                    };
                    batch.expect(TreeId::Emails, email.normalized.as_bytes(), None);
                    batch.put(
                        TreeId::Emails,
                        email.normalized.as_bytes(),
                        user.id.as_bytes().to_vec(),
                    );
                    batch.put(TreeId::Users, user.id.as_bytes(), encode(&user));
                    // A new account always gets its link: without it, it could never be confirmed.
                    self.issue_confirmation(&mut batch, &user)?;
                }
                Some(found) if found.value.status == Status::Pending => {
                    let mut user = found.value.clone();
                    user.password_hash = hash.clone();
                    user.email = email.typed.clone();
                    batch.expect(TreeId::Users, user.id.as_bytes(), Some(found.raw));
                    batch.put(TreeId::Users, user.id.as_bytes(), encode(&user));
                    if mail {
                        self.issue_confirmation(&mut batch, &user)?;
                    }
                }
                Some(found) => {
                    let user = found.value;
                    batch.expect(TreeId::Users, user.id.as_bytes(), Some(found.raw));
                    if mail {
                        let raw = self.composer.already_registered(&user.email)?;
                        self.queue(&mut batch, MailKind::AlreadyRegistered, &user, raw, None);
                    }
                }
            }
            Ok(Some((batch, ())))
        })?;
        self.commit_and_wake().await
    }

    /// Queues a new confirmation for a pending account; nothing otherwise.
    pub async fn resend(&self, email: &str) -> Result<(), AccountError> {
        let email = validate_email(email)?;
        let mail = self.throttle.mail_allowed(
            throttle::MailLimit::Registration,
            &email.normalized,
            auth::now(),
        );
        if mail {
            self.apply_decided(|| {
                let Some(found) = self.store.user_by_email(&email.normalized)? else {
                    return Ok(None);
                };
                if found.value.status != Status::Pending {
                    return Ok(None);
                }
                let mut batch = Batch::new();
                batch.expect(TreeId::Users, found.value.id.as_bytes(), Some(found.raw));
                self.issue_confirmation(&mut batch, &found.value)?;
                Ok(Some((batch, ())))
            })?;
        }
        // Committed for every outcome, so a queued mail's fsync does not time-stamp the answer.
        self.commit_and_wake().await
    }

    /// Confirms the address behind a `registration` token, once.
    pub async fn verify(&self, token: &str) -> Result<User, AccountError> {
        let claims = self.auth.decode(token, Scope::Registration)?;
        self.consume_token(&claims, Scope::Registration, |user, now| {
            if user.status == Status::Pending {
                user.status = Status::Active;
                user.confirmed_at = Some(now);
            }
            Ok(())
        })
        .await
    }

    /// Uses a single-use token: it must be the user's latest of its scope and
    /// unused. `change` edits the user in the same transaction that marks
    /// the token used; the result is durable when this returns.
    pub(crate) async fn consume_token(
        &self,
        claims: &auth::Claims,
        scope: Scope,
        change: impl Fn(&mut User, u64) -> Result<(), AccountError>,
    ) -> Result<User, AccountError> {
        let (Some(user_id), Some(jti)) = (claims.user_id(), claims.jti()) else {
            return Err(TokenError::Invalid.into());
        };
        let user = self.apply_decided(|| {
            let Some(found) = self.store.user(user_id)? else {
                return Err(TokenError::Invalid.into());
            };
            let Some(state) = self.store.token_state(user_id, scope)? else {
                return Err(TokenError::Invalid.into());
            };
            if state.value.jti != jti {
                // A newer token of this scope was issued; only it counts.
                return Err(TokenError::Invalid.into());
            }
            if state.value.used_at.is_some() {
                return Err(TokenError::Used.into());
            }
            let now = auth::now();
            let mut user = found.value.clone();
            change(&mut user, now)?;
            let mut used = state.value.clone();
            used.used_at = Some(now);
            let key = TokenState::key(user_id, scope);
            let mut batch = Batch::new();
            batch.expect(TreeId::Users, user_id.as_bytes(), Some(found.raw));
            batch.expect(TreeId::Tokens, key.clone(), Some(state.raw));
            batch.put(TreeId::Users, user_id.as_bytes(), encode(&user));
            batch.put(TreeId::Tokens, key, encode(&used));
            Ok(Some((batch, user)))
        })?;
        let user = user.ok_or(TokenError::Invalid)?;
        self.store.commit().await?;
        Ok(user)
    }

    /// Adds a fresh confirmation token (voiding earlier ones) and its mail.
    fn issue_confirmation(&self, batch: &mut Batch, user: &User) -> Result<(), AccountError> {
        let (token, exp) = self.issue_single_use(batch, user, Scope::Registration)?;
        let raw = self.composer.confirmation(&user.email, &token)?;
        self.queue(batch, MailKind::Confirmation, user, raw, Some(exp));
        Ok(())
    }

    /// A new single-use token of `scope`, recorded as the user's latest
    /// (which voids earlier ones); returns it with its expiry.
    pub(crate) fn issue_single_use(
        &self,
        batch: &mut Batch,
        user: &User,
        scope: Scope,
    ) -> Result<(String, u64), AccountError> {
        let key = TokenState::key(user.id, scope);
        let current = self.store.token_state(user.id, scope)?;
        batch.expect(TreeId::Tokens, key.clone(), current.map(|c| c.raw));
        let ttl = match scope {
            Scope::PasswordReset => self.auth.reset_ttl(),
            _ => self.auth.confirmation_ttl(),
        };
        let (token, claims) = self.auth.create_scoped_token(user.id, scope, ttl)?;
        let state = TokenState {
            jti: claims.jti().unwrap_or_default(),
            issued_at: claims.iat,
            expires_at: claims.exp,
            used_at: None,
        };
        batch.put(TreeId::Tokens, key, encode(&state));
        Ok((token, claims.exp))
    }

    pub(crate) fn queue(
        &self,
        batch: &mut Batch,
        kind: MailKind,
        user: &User,
        raw: Vec<u8>,
        expires_at: Option<u64>,
    ) {
        let mail = QueuedMail::new(
            kind,
            user.id,
            self.composer.from(),
            &user.email,
            &raw,
            expires_at,
            auth::now(),
        );
        batch.put(TreeId::Outbox, mail.id.as_bytes(), encode(&mail));
    }

    pub(crate) async fn commit_and_wake(&self) -> Result<(), AccountError> {
        self.store.commit().await?;
        self.mail_ready.notify_one();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn email_rules() {
        let ok = validate_email("  Jürgen.Ä@Bücher.Example ").unwrap();
        assert_eq!(ok.typed, "Jürgen.Ä@Bücher.Example");
        assert_eq!(ok.normalized, "jürgen.ä@bücher.example");
        // NFD input normalises to the same key as NFC input.
        let nfd = validate_email("jU\u{0308}rgen@example.com").unwrap();
        assert_eq!(nfd.normalized, "jürgen@example.com");
        for bad in [
            "",
            "plain",
            "a@",
            "@b.org",
            "a@b",
            "a b@c.org",
            "a@b.org\r\nBcc: x@y.org",
            "a\u{7}@b.org",
            "Name <a@b.org>",
            "a@[127.0.0.1]",
            "\"q\"@b.org",
        ] {
            assert!(validate_email(bad).is_err(), "{bad:?} accepted");
        }
        let long = format!("{}@example.com", "a".repeat(243));
        assert_eq!(long.len(), 255);
        assert!(validate_email(&long).is_err());
    }

    #[test]
    fn password_bounds_are_bytes() {
        assert!(matches!(
            validate_password("1234567"),
            Err(AccountError::PasswordTooShort)
        ));
        assert!(validate_password("12345678").is_ok());
        assert!(validate_password(&"x".repeat(72)).is_ok());
        assert!(matches!(
            validate_password(&"x".repeat(73)),
            Err(AccountError::PasswordTooLong)
        ));
        // "ü" is two bytes: 36 of them make 72 bytes, 37 make 74.
        assert!(validate_password(&"ü".repeat(36)).is_ok());
        assert!(matches!(
            validate_password(&"ü".repeat(37)),
            Err(AccountError::PasswordTooLong)
        ));
    }
}
