//! The tutorial's `Auth`: `create_token`, `create_confirmation_token`,
//! `decode`, and `get_password_hash` / `verify_password` on the hashing pool.
//!
//! `decode` checks everything a JWT can prove about itself: signature, the one
//! configured algorithm, issuer, scope, and expiry to the second (the crate's
//! 60 s leeway is off). Whether a token was used or voided lives in the store
//! and is checked by `accounts`.

use std::time::{SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation, errors::ErrorKind};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::config::AuthConfig;
use crate::pool::{HashPool, PoolError};
use crate::store::Scope;

/// The bytes bcrypt reads: 72, with the terminating NUL dropped at exactly 72.
pub const MAX_PASSWORD_BYTES: usize = 72;
pub const MIN_PASSWORD_BYTES: usize = 8;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    pub iss: String,
    pub sub: String,
    pub iat: u64,
    pub exp: u64,
    pub jti: String,
    pub scope: String,
    /// Access tokens only: the user's token generation when issued.
    #[serde(default, rename = "gen", skip_serializing_if = "Option::is_none")]
    pub token_gen: Option<u64>,
}

impl Claims {
    pub fn user_id(&self) -> Option<Uuid> {
        Uuid::parse_str(&self.sub).ok()
    }
    pub fn jti(&self) -> Option<Uuid> {
        Uuid::parse_str(&self.jti).ok()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("the token is not valid")]
    Invalid,
    #[error("the token has expired")]
    Expired,
    #[error("the token was already used")]
    Used,
}

/// Unix milliseconds.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

pub struct Auth {
    encoding: EncodingKey,
    decoding: DecodingKey,
    algorithm: Algorithm,
    issuer: String,
    cost: u32,
    confirmation_ttl: u64,
    reset_ttl: u64,
    access_ttl: u64,
    pool: HashPool,
    /// A hash of nothing anyone knows, at the configured cost: logins for
    /// unknown addresses verify against it so they cost what real ones cost.
    dummy_hash: tokio::sync::OnceCell<String>,
}

impl Auth {
    pub fn new(cfg: &AuthConfig, pool: HashPool) -> anyhow::Result<Auth> {
        // Fail here, not on the first request, if the build has no JWT backend.
        anyhow::ensure!(
            jsonwebtoken::crypto::CryptoProvider::try_get_default().is_some(),
            "no JWT crypto provider is available in this build"
        );
        let secret = cfg.secret_key.expose().as_bytes();
        let algorithm = match cfg.algorithm.as_str() {
            "HS384" => Algorithm::HS384,
            "HS512" => Algorithm::HS512,
            _ => Algorithm::HS256,
        };
        Ok(Auth {
            encoding: EncodingKey::from_secret(secret)?,
            decoding: DecodingKey::from_secret(secret)?,
            algorithm,
            issuer: cfg.issuer.clone(),
            cost: cfg.bcrypt_cost as u32,
            confirmation_ttl: cfg.confirmation_ttl,
            reset_ttl: cfg.reset_ttl,
            access_ttl: cfg.access_ttl,
            pool,
            dummy_hash: tokio::sync::OnceCell::new(),
        })
    }

    pub fn pool(&self) -> &HashPool {
        &self.pool
    }

    pub fn cost(&self) -> u32 {
        self.cost
    }

    /// Signs `claims` after adding `iat`, `exp` and `iss`.
    pub fn create_token(
        &self,
        mut claims: serde_json::Map<String, serde_json::Value>,
        expires_in: u64,
    ) -> Result<String, jsonwebtoken::errors::Error> {
        let iat = now();
        claims.insert("iat".into(), iat.into());
        claims.insert("exp".into(), (iat + expires_in).into());
        claims.insert("iss".into(), self.issuer.clone().into());
        jsonwebtoken::encode(&Header::new(self.algorithm), &claims, &self.encoding)
    }

    /// A token for `user` in `scope`, with a fresh `jti`.
    pub fn create_scoped_token(
        &self,
        user: Uuid,
        scope: Scope,
        expires_in: u64,
    ) -> Result<(String, Claims), jsonwebtoken::errors::Error> {
        self.create_scoped_token_with(user, scope, expires_in, serde_json::Map::new())
    }

    /// An `access` token for `user` at its current token generation.
    pub fn create_access_token(
        &self,
        user: Uuid,
        token_gen: u64,
    ) -> Result<(String, Claims), jsonwebtoken::errors::Error> {
        let mut extra = serde_json::Map::new();
        extra.insert("gen".into(), token_gen.into());
        self.create_scoped_token_with(user, Scope::Access, self.access_ttl, extra)
    }

    fn create_scoped_token_with(
        &self,
        user: Uuid,
        scope: Scope,
        expires_in: u64,
        mut claims: serde_json::Map<String, serde_json::Value>,
    ) -> Result<(String, Claims), jsonwebtoken::errors::Error> {
        let jti = Uuid::new_v4();
        claims.insert("sub".into(), user.to_string().into());
        claims.insert("scope".into(), scope.as_str().into());
        claims.insert("jti".into(), jti.to_string().into());
        let token = self.create_token(claims, expires_in)?;
        let decoded = self
            .decode(&token, scope)
            .map_err(|_| jsonwebtoken::errors::Error::from(ErrorKind::InvalidToken))?;
        Ok((token, decoded))
    }

    /// The tutorial's `create_confirmation_token(user_id)`.
    pub fn create_confirmation_token(
        &self,
        user: Uuid,
    ) -> Result<(String, Claims), jsonwebtoken::errors::Error> {
        self.create_scoped_token(user, Scope::Registration, self.confirmation_ttl)
    }

    pub fn confirmation_ttl(&self) -> u64 {
        self.confirmation_ttl
    }

    pub fn reset_ttl(&self) -> u64 {
        self.reset_ttl
    }

    pub fn access_ttl(&self) -> u64 {
        self.access_ttl
    }

    /// Verifies `password` against the dummy hash on the pool, like any
    /// other verification; always false.
    pub async fn verify_dummy(&self, password: &str) -> Result<bool, PoolError> {
        let hash = self.dummy_hash().await?;
        self.verify_password(password, &hash).await.map(|_| false)
    }

    /// Made once, off the hashing pool: at start-up it must not take a
    /// worker from the first sign-ups.
    async fn dummy_hash(&self) -> Result<String, PoolError> {
        let cost = self.cost;
        self.dummy_hash
            .get_or_try_init(|| async move {
                let secret = uuid::Uuid::new_v4().to_string();
                tokio::task::spawn_blocking(move || bcrypt::hash(secret, cost))
                    .await
                    .map_err(|_| PoolError::Stopped)?
                    .map_err(|_| PoolError::Stopped)
            })
            .await
            .cloned()
    }

    /// Makes the dummy hash in the background, so that the first login for
    /// an unknown address does not pay for it (and take longer than others).
    pub async fn warm_up(&self) {
        let _ = self.dummy_hash().await;
    }

    /// Checks what the token proves by itself; the store checks the rest.
    pub fn decode(&self, token: &str, scope: Scope) -> Result<Claims, TokenError> {
        let mut v = Validation::new(self.algorithm);
        v.leeway = 0;
        v.set_issuer(&[&self.issuer]);
        v.set_required_spec_claims(&["exp", "iat", "iss", "sub"]);
        v.validate_aud = false;
        let data =
            jsonwebtoken::decode::<Claims>(token, &self.decoding, &v).map_err(|e| {
                match e.kind() {
                    ErrorKind::ExpiredSignature => TokenError::Expired,
                    _ => TokenError::Invalid,
                }
            })?;
        let c = data.claims;
        if c.scope != scope.as_str() || c.user_id().is_none() || c.jti().is_none() {
            return Err(TokenError::Invalid);
        }
        // jsonwebtoken accepts exp == now; "to the second" means now must be before exp.
        if c.exp <= now() {
            return Err(TokenError::Expired);
        }
        Ok(c)
    }

    /// bcrypt on the pool. The caller has checked the length (8..=72 bytes),
    /// so bcrypt's silent truncation past 72 bytes never applies.
    pub async fn get_password_hash(&self, password: &str) -> Result<String, PoolError> {
        let password = password.to_string();
        let cost = self.cost;
        self.pool
            .run(move || bcrypt::hash(password.as_bytes(), cost))
            .await?
            .map_err(|_| PoolError::Stopped)
    }

    pub async fn verify_password(&self, password: &str, hash: &str) -> Result<bool, PoolError> {
        let password = password.to_string();
        let hash = hash.to_string();
        self.pool
            .run(move || bcrypt::verify(password.as_bytes(), &hash).unwrap_or(false))
            .await
    }
}

/// bcrypt synchronously; for the CLI and benchmarks, never the reactor.
pub fn hash_now(password: &str, cost: u32) -> Result<String, bcrypt::BcryptError> {
    bcrypt::hash(password.as_bytes(), cost)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Config, Secret};

    fn auth_with(issuer: &str, secret: &str) -> Auth {
        let mut c = Config::default().auth;
        c.secret_key = Secret::new(secret);
        c.issuer = issuer.into();
        c.bcrypt_cost = 4;
        Auth::new(&c, HashPool::new(1, 4).unwrap()).unwrap()
    }

    const KEY: &str = "0123456789abcdef0123456789abcdef";

    #[test]
    fn confirmation_token_round_trips_with_every_claim() {
        let a = auth_with("signupd", KEY);
        let id = Uuid::new_v4();
        let (t, c) = a.create_confirmation_token(id).unwrap();
        let d = a.decode(&t, Scope::Registration).unwrap();
        assert_eq!(d, c);
        assert_eq!(d.user_id(), Some(id));
        assert_eq!(d.iss, "signupd");
        assert_eq!(d.exp - d.iat, 86400);
    }

    #[test]
    fn refuses_wrong_scope_issuer_key_alg_none_and_tampering() {
        let a = auth_with("signupd", KEY);
        let (t, _) = a.create_confirmation_token(Uuid::new_v4()).unwrap();
        assert_eq!(a.decode(&t, Scope::PasswordReset), Err(TokenError::Invalid));
        let other_iss = auth_with("other", KEY);
        assert_eq!(
            other_iss.decode(&t, Scope::Registration),
            Err(TokenError::Invalid)
        );
        let other_key = auth_with("signupd", "another-secret-another-secret-xx");
        assert_eq!(
            other_key.decode(&t, Scope::Registration),
            Err(TokenError::Invalid)
        );

        let parts: Vec<&str> = t.split('.').collect();
        let none_header = b64(br#"{"alg":"none","typ":"JWT"}"#);
        let unsigned = format!("{none_header}.{}.", parts[1]);
        assert_eq!(
            a.decode(&unsigned, Scope::Registration),
            Err(TokenError::Invalid)
        );
        let mut flipped = t.clone().into_bytes();
        let i = parts[0].len() + 5;
        flipped[i] = if flipped[i] == b'A' { b'B' } else { b'A' };
        let flipped = String::from_utf8(flipped).unwrap();
        assert_eq!(
            a.decode(&flipped, Scope::Registration),
            Err(TokenError::Invalid)
        );
    }

    #[test]
    fn expiry_is_exact_to_the_second() {
        let a = auth_with("signupd", KEY);
        let mut claims = serde_json::Map::new();
        claims.insert("sub".into(), Uuid::new_v4().to_string().into());
        claims.insert("scope".into(), "registration".into());
        claims.insert("jti".into(), Uuid::new_v4().to_string().into());
        // Expired one second ago: jsonwebtoken's default leeway would accept it.
        let t = a.create_token(claims.clone(), 0).unwrap();
        assert_eq!(a.decode(&t, Scope::Registration), Err(TokenError::Expired));
        let t = a.create_token(claims, 30).unwrap();
        assert!(a.decode(&t, Scope::Registration).is_ok());
    }

    #[tokio::test]
    async fn hashes_all_72_bytes() {
        let a = auth_with("signupd", KEY);
        let p72 = "x".repeat(72);
        let h = a.get_password_hash(&p72).await.unwrap();
        assert!(a.verify_password(&p72, &h).await.unwrap());
        let mut other = "x".repeat(71);
        other.push('y');
        assert!(!a.verify_password(&other, &h).await.unwrap());
    }

    fn b64(data: &[u8]) -> String {
        const T: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let mut out = String::new();
        for chunk in data.chunks(3) {
            let n = chunk.iter().fold(0u32, |n, b| (n << 8) | *b as u32) << (8 * (3 - chunk.len()));
            for i in 0..=chunk.len() {
                out.push(T[((n >> (18 - 6 * i)) & 63) as usize] as char);
            }
        }
        out
    }
}
