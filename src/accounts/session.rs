//! Login, the access token's checks, logout, password change and deletion.
//!
//! Login costs one bcrypt verification whatever the address: an unknown one
//! is verified against a dummy hash, so "no such account" and "wrong
//! password" take the same time and give the same answer. Only a correct
//! password learns that an account is unconfirmed.

use super::{AccountError, Accounts, validate_email};
use crate::auth::{self, Claims};
use crate::store::{Batch, Scope, Status, TokenState, TreeId, User, encode};

/// What a successful login returns.
#[derive(Debug, Clone)]
pub struct Session {
    pub access_token: String,
    pub expires_in: u64,
}

impl Accounts {
    pub async fn login(&self, email: &str, password: &str) -> Result<Session, AccountError> {
        // A malformed address can have no account: answer as for any unknown one.
        let normalized = validate_email(email).map(|e| e.normalized).ok();
        let now = auth::now_ms();
        let key = normalized.clone().unwrap_or_default();
        if let Some(wait) = self.throttle.login_wait(&key, now) {
            return Err(AccountError::TooManyAttempts(wait));
        }
        let found = match &normalized {
            Some(n) => self.store.user_by_email(n)?,
            None => None,
        };
        let ok = match &found {
            Some(u) => match self.check_password(&u.value, password).await {
                Ok(()) => true,
                Err(AccountError::InvalidCredentials) => false,
                Err(e) => return Err(e),
            },
            None => self.auth.verify_dummy(password).await?,
        };
        let Some(user) = found.filter(|_| ok).map(|f| f.value) else {
            self.throttle.login_failed(&key, now);
            return Err(AccountError::InvalidCredentials);
        };
        self.throttle.login_succeeded(&key);
        if user.status != Status::Active {
            return Err(AccountError::EmailUnconfirmed);
        }
        let (token, _) = self.auth.create_access_token(user.id, user.token_gen)?;
        Ok(Session {
            access_token: token,
            expires_in: self.auth.access_ttl(),
        })
    }

    /// The user behind an access token that is valid, current and not logged out.
    pub fn authenticate(&self, token: &str) -> Result<(User, Claims), AccountError> {
        let claims = self
            .auth
            .decode(token, Scope::Access)
            .map_err(|_| AccountError::Unauthorized)?;
        let (Some(id), Some(jti)) = (claims.user_id(), claims.jti()) else {
            return Err(AccountError::Unauthorized);
        };
        let Some(user) = self.store.user(id)? else {
            return Err(AccountError::Unauthorized);
        };
        if claims.token_gen != Some(user.value.token_gen) || self.store.is_revoked(jti)? {
            return Err(AccountError::Unauthorized);
        }
        Ok((user.value, claims))
    }

    /// Revokes this one access token.
    pub async fn logout(&self, token: &str) -> Result<(), AccountError> {
        let (_, claims) = self.authenticate(token)?;
        let jti = claims.jti().unwrap_or_default();
        let mut batch = Batch::new();
        batch.put(
            TreeId::Revoked,
            jti.as_bytes(),
            claims.exp.to_be_bytes().to_vec(),
        );
        self.store.apply(&batch)?;
        self.store.commit().await?;
        Ok(())
    }

    /// Needs the current password; revokes every access token, the
    /// caller's too. `user` comes from [`Accounts::authenticate`].
    pub async fn change_password(
        &self,
        user: &User,
        current: &str,
        new: &str,
    ) -> Result<(), AccountError> {
        self.check_password(user, current).await?;
        let hash = self.hash_new_password(new).await?;
        self.apply_decided(|| {
            let Some(found) = self.store.user(user.id)? else {
                return Err(AccountError::Unauthorized);
            };
            let mut changed = found.value.clone();
            changed.password_hash = hash.clone();
            changed.token_gen += 1;
            let mut batch = Batch::new();
            batch.expect(TreeId::Users, user.id.as_bytes(), Some(found.raw));
            batch.put(TreeId::Users, user.id.as_bytes(), encode(&changed));
            Ok(Some((batch, ())))
        })?;
        self.store.commit().await?;
        Ok(())
    }

    /// Removes the account after checking its password; the address can
    /// register again. `user` comes from [`Accounts::authenticate`].
    pub async fn delete(&self, user: &User, password: &str) -> Result<(), AccountError> {
        self.check_password(user, password).await?;
        self.delete_user(user).await
    }

    /// Removes an account with its token state and unsent mail (also the
    /// operator's `signupd users delete`).
    pub async fn delete_user(&self, user: &User) -> Result<(), AccountError> {
        let normalized = validate_email(&user.email)
            .map(|e| e.normalized)
            .map_err(|_| AccountError::Internal("stored address no longer validates".into()))?;
        self.apply_decided(|| {
            let Some(found) = self.store.user(user.id)? else {
                return Err(AccountError::Unauthorized);
            };
            let mut batch = Batch::new();
            batch.expect(TreeId::Users, user.id.as_bytes(), Some(found.raw));
            batch.remove(TreeId::Users, user.id.as_bytes());
            batch.expect(
                TreeId::Emails,
                normalized.as_bytes(),
                Some(user.id.as_bytes().to_vec()),
            );
            batch.remove(TreeId::Emails, normalized.as_bytes());
            for scope in [Scope::Registration, Scope::PasswordReset] {
                batch.remove(TreeId::Tokens, TokenState::key(user.id, scope));
            }
            for mail in self.store.outbox_versioned()? {
                if mail.value.user_id == user.id {
                    batch.expect(TreeId::Outbox, mail.value.id.as_bytes(), Some(mail.raw));
                    batch.remove(TreeId::Outbox, mail.value.id.as_bytes());
                }
            }
            Ok(Some((batch, ())))
        })?;
        self.store.commit().await?;
        Ok(())
    }

    /// One bcrypt verification, whatever the input: bcrypt reads 72 bytes,
    /// so a longer password cannot be anyone's, but it still costs a hash.
    async fn check_password(&self, user: &User, password: &str) -> Result<(), AccountError> {
        let fits = password.len() <= auth::MAX_PASSWORD_BYTES;
        let ok = self
            .auth
            .verify_password(if fits { password } else { "" }, &user.password_hash)
            .await?;
        if ok && fits {
            Ok(())
        } else {
            Err(AccountError::InvalidCredentials)
        }
    }
}
