//! Per-client token buckets for the routes that cost a hash or send mail.

use std::net::IpAddr;
use std::num::NonZeroU32;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::config::LimitsConfig;

use super::problem::Problem;

/// The limited routes; each has its own bucket per client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Limited {
    Register,
    Resend,
    Forgot,
    Login,
}

pub struct Limiter {
    buckets: Option<DefaultKeyedRateLimiter<(Limited, IpAddr)>>,
}

impl Limiter {
    pub fn new(cfg: &LimitsConfig) -> Limiter {
        if !cfg.enabled {
            return Limiter { buckets: None };
        }
        let n = NonZeroU32::new(cfg.per_ip_per_minute.clamp(1, u32::MAX as u64) as u32)
            .unwrap_or(NonZeroU32::MIN);
        Limiter {
            buckets: Some(RateLimiter::keyed(Quota::per_minute(n).allow_burst(n))),
        }
    }

    /// 429 with `Retry-After` once the client's bucket is empty.
    pub fn check(&self, route: Limited, ip: IpAddr) -> Result<(), Problem> {
        let Some(b) = &self.buckets else {
            return Ok(());
        };
        b.check_key(&(route, ip)).map_err(|not_until| {
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
            Problem::rate_limited(secs)
        })
    }

    /// Forgets clients whose buckets are full again, so memory stays bounded.
    pub fn purge(&self) {
        if let Some(b) = &self.buckets {
            b.retain_recent();
            b.shrink_to_fit();
        }
    }
}
