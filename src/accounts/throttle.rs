//! Per-address limits that must not tell whether an address has an account:
//! at most one mail of a kind per address per `limits.mail_interval`, and a
//! growing wait after repeated failed logins on one address.
//!
//! The login wait doubles per failure past `login_failures_before_delay`,
//! from 1 s up to [`MAX_LOGIN_WAIT`], and ends by itself: a stranger can
//! slow an account's owner down for a minute at most, never lock them out.
//! Known and unknown addresses are treated alike. State is in memory (a
//! restart forgets it) and entries that no longer matter are purged.

use std::collections::HashMap;
use std::sync::Mutex;

use crate::config::LimitsConfig;

/// Seconds.
pub const MAX_LOGIN_WAIT: u64 = 60;
/// Failures older than this (milliseconds) are forgotten.
const FAILURE_MEMORY_MS: u64 = 15 * 60 * 1000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MailLimit {
    /// Confirmations and "already registered" notices.
    Registration,
    Reset,
}

/// Login failures keep milliseconds: with whole seconds a "1 s" wait could
/// be over a millisecond after it began.
#[derive(Debug, Clone, Copy)]
struct Failures {
    count: u64,
    last_ms: u64,
}

pub struct Throttle {
    enabled: bool,
    mail_interval: u64,
    free_failures: u64,
    mails: Mutex<HashMap<(MailLimit, String), u64>>,
    failures: Mutex<HashMap<String, Failures>>,
}

impl Throttle {
    pub fn new(cfg: &LimitsConfig) -> Throttle {
        Throttle {
            enabled: cfg.enabled,
            mail_interval: cfg.mail_interval,
            free_failures: cfg.login_failures_before_delay,
            mails: Mutex::default(),
            failures: Mutex::default(),
        }
    }

    /// Whether a mail of `kind` may go to `address` now; if so, it counts.
    pub fn mail_allowed(&self, kind: MailLimit, address: &str, now: u64) -> bool {
        if !self.enabled || self.mail_interval == 0 {
            return true;
        }
        let Ok(mut mails) = self.mails.lock() else {
            return true;
        };
        let key = (kind, address.to_string());
        match mails.get(&key) {
            Some(&last) if now < last + self.mail_interval => false,
            _ => {
                mails.insert(key, now);
                true
            }
        }
    }

    /// Whole seconds (rounded up) the next login attempt on `address` must
    /// still wait, at `now_ms` milliseconds.
    pub fn login_wait(&self, address: &str, now_ms: u64) -> Option<u64> {
        if !self.enabled {
            return None;
        }
        let failures = self.failures.lock().ok()?;
        let f = failures.get(address)?;
        if f.count < self.free_failures.max(1) {
            return None;
        }
        let wait_s = 1u64
            .checked_shl((f.count - self.free_failures.max(1)).min(32) as u32)
            .unwrap_or(MAX_LOGIN_WAIT)
            .min(MAX_LOGIN_WAIT);
        let until = f.last_ms + wait_s * 1000;
        (now_ms < until).then(|| (until - now_ms).div_ceil(1000))
    }

    pub fn login_failed(&self, address: &str, now_ms: u64) {
        if !self.enabled {
            return;
        }
        if let Ok(mut failures) = self.failures.lock() {
            let f = failures.entry(address.to_string()).or_insert(Failures {
                count: 0,
                last_ms: now_ms,
            });
            if now_ms > f.last_ms + FAILURE_MEMORY_MS {
                f.count = 0;
            }
            f.count += 1;
            f.last_ms = now_ms;
        }
    }

    pub fn login_succeeded(&self, address: &str) {
        if let Ok(mut failures) = self.failures.lock() {
            failures.remove(address);
        }
    }

    /// Drops what no longer limits anything.
    pub fn purge(&self, now_ms: u64) {
        let now = now_ms / 1000;
        if let Ok(mut mails) = self.mails.lock() {
            mails.retain(|_, last| now < *last + self.mail_interval);
        }
        if let Ok(mut failures) = self.failures.lock() {
            failures.retain(|_, f| now_ms <= f.last_ms + FAILURE_MEMORY_MS);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn throttle() -> Throttle {
        Throttle::new(&LimitsConfig {
            enabled: true,
            per_ip_per_minute: 30,
            mail_interval: 60,
            login_failures_before_delay: 3,
            trusted_proxies: vec![],
        })
    }

    #[test]
    fn one_mail_per_kind_and_address_per_interval() {
        let t = throttle();
        assert!(t.mail_allowed(MailLimit::Registration, "a@x.org", 1000));
        assert!(!t.mail_allowed(MailLimit::Registration, "a@x.org", 1059));
        assert!(t.mail_allowed(MailLimit::Reset, "a@x.org", 1059));
        assert!(t.mail_allowed(MailLimit::Registration, "b@x.org", 1059));
        assert!(t.mail_allowed(MailLimit::Registration, "a@x.org", 1060));
    }

    #[test]
    fn login_waits_grow_are_capped_and_end() {
        let t = throttle();
        let a = "a@x.org";
        for _ in 0..2 {
            t.login_failed(a, 1_000_999);
        }
        assert_eq!(
            t.login_wait(a, 1_000_999),
            None,
            "the first failures are free"
        );
        t.login_failed(a, 1_000_999);
        // A whole second, even when it began at the end of a second.
        assert_eq!(t.login_wait(a, 1_001_001), Some(1));
        assert_eq!(t.login_wait(a, 1_001_999), None);
        t.login_failed(a, 1_002_000);
        assert_eq!(t.login_wait(a, 1_002_000), Some(2));
        for _ in 0..20 {
            t.login_failed(a, 2_000_000);
        }
        assert_eq!(t.login_wait(a, 2_000_000), Some(MAX_LOGIN_WAIT));
        assert_eq!(
            t.login_wait(a, 2_000_000 + MAX_LOGIN_WAIT * 1000),
            None,
            "the owner gets in after a minute"
        );
        assert_eq!(t.login_wait("other@x.org", 2_000_000), None);
        t.login_succeeded(a);
        assert_eq!(t.login_wait(a, 2_000_000), None);
    }

    #[test]
    fn disabled_limits_limit_nothing() {
        let t = Throttle::new(&LimitsConfig {
            enabled: false,
            per_ip_per_minute: 1,
            mail_interval: 60,
            login_failures_before_delay: 1,
            trusted_proxies: vec![],
        });
        for _ in 0..5 {
            assert!(t.mail_allowed(MailLimit::Reset, "a@x.org", 1));
            t.login_failed("a@x.org", 1);
        }
        assert_eq!(t.login_wait("a@x.org", 1), None);
    }
}
