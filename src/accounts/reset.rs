//! Forgotten passwords: a reset link by mail, and the reset itself.
//!
//! `forgot` answers the same for every address and commits for every
//! outcome, like `resend`. A reset proves the mailbox is the owner's, so a
//! pending account becomes active; every access token issued before it is
//! revoked.

use super::throttle::MailLimit;
use super::{AccountError, Accounts, validate_email};
use crate::auth;
use crate::store::{Batch, MailKind, Scope, Status, TreeId, User};

impl Accounts {
    pub async fn forgot(&self, email: &str) -> Result<(), AccountError> {
        let email = validate_email(email)?;
        let mail = self
            .throttle
            .mail_allowed(MailLimit::Reset, &email.normalized, auth::now());
        if mail {
            self.apply_decided(|| {
                let Some(found) = self.store.user_by_email(&email.normalized)? else {
                    return Ok(None);
                };
                let user = &found.value;
                let mut batch = Batch::new();
                batch.expect(TreeId::Users, user.id.as_bytes(), Some(found.raw.clone()));
                let (token, exp) = self.issue_single_use(&mut batch, user, Scope::PasswordReset)?;
                let raw = self.composer.password_reset(&user.email, &token)?;
                self.queue(&mut batch, MailKind::PasswordReset, user, raw, Some(exp));
                Ok(Some((batch, ())))
            })?;
        }
        self.commit_and_wake().await
    }

    /// Sets a new password with a `password_reset` token, once.
    pub async fn reset_password(&self, token: &str, password: &str) -> Result<User, AccountError> {
        let claims = self.auth.decode(token, Scope::PasswordReset)?;
        let hash = self.hash_new_password(password).await?;
        self.consume_token(&claims, Scope::PasswordReset, |user, now| {
            user.password_hash = hash.clone();
            user.token_gen += 1;
            if user.status == Status::Pending {
                user.status = Status::Active;
                user.confirmed_at = Some(now);
            }
            Ok(())
        })
        .await
    }
}
