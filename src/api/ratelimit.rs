//! Request rate limits per credential (ZEGO AppId, Tencent APPID / SecretId) or per client address (native API):
//! one token bucket per key, refilled at the configured rate, holding at most one second's worth.
//!
//! Keys of vendor dialects are checked only after the signature, so a forger cannot drain a real
//! credential's bucket, and their number is bounded by the configuration. Client addresses are not: the map
//! keeps at most [`MAX_KEYS`] buckets, forgets full ones (a full bucket is the same as none), and sends new keys
//! beyond that through one shared overflow bucket, so a flood of addresses can neither grow memory nor escape
//! the limit.

use std::{
    collections::HashMap,
    sync::Mutex,
    time::{Duration, Instant},
};

/// Most buckets kept per limiter.
pub const MAX_KEYS: usize = 4096;
/// The key new clients share once [`MAX_KEYS`] buckets are busy.
const OVERFLOW_KEY: &str = "\0overflow";

/// One limiter: a rate, and the buckets of the keys seen recently.
pub struct RateLimiter {
    /// Tokens added per second, and the bucket size; 0 disables the limiter.
    per_s: u32,
    inner: Mutex<Buckets>,
}

struct Buckets {
    map: HashMap<String, Bucket>,
    /// Pruning scans the whole map, so it runs at most once per second however hard the map is pushed.
    last_prune: Option<Instant>,
}

struct Bucket {
    tokens: f64,
    updated: Instant,
}

impl RateLimiter {
    pub fn new(per_s: u32) -> Self {
        Self {
            per_s,
            inner: Mutex::new(Buckets {
                map: HashMap::new(),
                last_prune: None,
            }),
        }
    }

    /// Takes one token of `key`'s bucket; `Err` with the wait until the next token when it is empty.
    pub fn check(&self, key: &str) -> Result<(), Duration> {
        self.check_at(key, Instant::now())
    }

    fn check_at(&self, key: &str, now: Instant) -> Result<(), Duration> {
        if self.per_s == 0 {
            return Ok(());
        }
        let rate = f64::from(self.per_s);
        let mut inner = self.inner.lock().unwrap();
        let key = if inner.map.contains_key(key) || inner.map.len() < MAX_KEYS {
            key
        } else {
            inner.prune(now, rate);
            if inner.map.len() < MAX_KEYS {
                key
            } else {
                OVERFLOW_KEY
            }
        };
        let bucket = inner.map.entry(key.to_string()).or_insert(Bucket {
            tokens: rate,
            updated: now,
        });
        let elapsed = now.saturating_duration_since(bucket.updated).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * rate).min(rate);
        bucket.updated = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - bucket.tokens) / rate))
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.inner.lock().unwrap().map.len()
    }
}

impl Buckets {
    /// Forgets the buckets that have refilled completely.
    fn prune(&mut self, now: Instant, rate: f64) {
        if self
            .last_prune
            .is_some_and(|t| now.saturating_duration_since(t) < Duration::from_secs(1))
        {
            return;
        }
        self.last_prune = Some(now);
        self.map.retain(|_, b| {
            b.tokens + now.saturating_duration_since(b.updated).as_secs_f64() * rate < rate
        });
    }
}

/// The limiters of every dialect, built from the configuration.
pub struct RateLimits {
    /// Per ZEGO AppId (`zego.max_requests_per_s`).
    pub zego: RateLimiter,
    /// Per legacy CGI APPID (`tencent.max_requests_per_s`).
    pub tencent_cgi: RateLimiter,
    /// Per API 3.0 SecretId, live and CME together (`tencentcloud.max_requests_per_s`).
    pub tencent_cloud: RateLimiter,
    /// Per client address of the native API (`server.max_requests_per_s`).
    pub native: RateLimiter,
}

impl RateLimits {
    pub fn new(config: &crate::config::Config) -> Self {
        Self {
            zego: RateLimiter::new(config.zego.max_requests_per_s),
            tencent_cgi: RateLimiter::new(config.tencent.max_requests_per_s),
            tencent_cloud: RateLimiter::new(config.tencentcloud.max_requests_per_s),
            native: RateLimiter::new(config.server.max_requests_per_s),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_of_one_second_then_the_rate() {
        let l = RateLimiter::new(10);
        let t0 = Instant::now();
        for _ in 0..10 {
            assert_eq!(l.check_at("a", t0), Ok(()));
        }
        let wait = l.check_at("a", t0).unwrap_err();
        assert!(
            wait > Duration::ZERO && wait <= Duration::from_millis(100),
            "{wait:?}"
        );
        // Another key has its own bucket.
        assert_eq!(l.check_at("b", t0), Ok(()));
        // 100 ms later one token is back, and only one.
        let t1 = t0 + Duration::from_millis(100);
        assert_eq!(l.check_at("a", t1), Ok(()));
        assert!(l.check_at("a", t1).is_err());
        // A long pause refills to the bucket size, never beyond.
        let t2 = t1 + Duration::from_secs(60);
        for _ in 0..10 {
            assert_eq!(l.check_at("a", t2), Ok(()));
        }
        assert!(l.check_at("a", t2).is_err());
    }

    #[test]
    fn zero_is_unlimited() {
        let l = RateLimiter::new(0);
        let t0 = Instant::now();
        for _ in 0..10_000 {
            assert_eq!(l.check_at("a", t0), Ok(()));
        }
        assert_eq!(l.len(), 0);
    }

    #[test]
    fn keys_are_bounded_and_overflow_shares_one_bucket() {
        let l = RateLimiter::new(2);
        let t0 = Instant::now();
        // Every bucket busy (one token used of two).
        for i in 0..MAX_KEYS {
            assert_eq!(l.check_at(&format!("k{i}"), t0), Ok(()));
        }
        assert_eq!(l.len(), MAX_KEYS);
        // New keys beyond the bound share the overflow bucket: two tokens in all, then refused.
        assert_eq!(l.check_at("new1", t0), Ok(()));
        assert_eq!(l.check_at("new2", t0), Ok(()));
        assert!(l.check_at("new3", t0).is_err());
        assert_eq!(l.len(), MAX_KEYS + 1);
        // Once the buckets have refilled they are forgotten, and new keys get their own again.
        let later = t0 + Duration::from_secs(2);
        assert_eq!(l.check_at("new4", later), Ok(()));
        assert_eq!(l.len(), 1);
    }
}
