//! Per-API-key rate limiting: a token bucket per key, in memory, per
//! instance (N instances behind a load balancer allow up to N times the
//! rate). Requests over the limit get `429` with `Retry-After`.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The limit applied to every API key.
///
/// The default (10,000/s, bursts of 20,000) lets one tenant's renewal storm
/// (100,000 signals in 10 s) through untouched while a runaway loop on one
/// key is held to about half of what one instance commits; see
/// `docs/configuration.md`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RateLimit {
    /// Sustained requests per second.
    pub per_second: u32,
    /// Requests allowed at once after an idle period (the bucket's size).
    pub burst: u32,
}

impl Default for RateLimit {
    fn default() -> Self {
        RateLimit {
            per_second: 10_000,
            burst: 20_000,
        }
    }
}

#[derive(Clone, Copy, Debug)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// Buckets keyed by API key id.
#[derive(Debug)]
pub struct KeyedBuckets {
    limit: RateLimit,
    buckets: Mutex<HashMap<String, Bucket>>,
}

/// Above this many tracked keys, full (idle) buckets are forgotten.
const MAX_TRACKED: usize = 10_000;

impl KeyedBuckets {
    /// Empty buckets enforcing `limit`.
    pub fn new(limit: RateLimit) -> KeyedBuckets {
        KeyedBuckets {
            limit,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes one token from `key`'s bucket at `now`; `Err(wait)` when it is
    /// empty, with how long until a token is available.
    pub fn take(&self, key: &str, now: Instant) -> Result<(), Duration> {
        let burst = f64::from(self.limit.burst.max(1));
        let rate = f64::from(self.limit.per_second.max(1));
        let mut buckets = self
            .buckets
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if buckets.len() >= MAX_TRACKED && !buckets.contains_key(key) {
            buckets.retain(|_, b| {
                b.tokens + now.saturating_duration_since(b.at).as_secs_f64() * rate < burst
            });
        }
        let bucket = buckets.entry(key.to_owned()).or_insert(Bucket {
            tokens: burst,
            at: now,
        });
        let refill = now.saturating_duration_since(bucket.at).as_secs_f64() * rate;
        bucket.tokens = (bucket.tokens + refill).min(burst);
        bucket.at = now.max(bucket.at);
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - bucket.tokens) / rate))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_then_refill_per_key() {
        let buckets = KeyedBuckets::new(RateLimit {
            per_second: 2,
            burst: 3,
        });
        let t0 = Instant::now();
        for _ in 0..3 {
            assert!(buckets.take("a", t0).is_ok());
        }
        let wait = buckets.take("a", t0).expect_err("empty");
        assert!(wait > Duration::ZERO && wait <= Duration::from_millis(500));
        // Another key has its own bucket.
        assert!(buckets.take("b", t0).is_ok());
        // Half a second refills one token at 2/s.
        assert!(buckets.take("a", t0 + Duration::from_millis(500)).is_ok());
        assert!(buckets.take("a", t0 + Duration::from_millis(500)).is_err());
        // Never more than the burst, however long idle.
        let later = t0 + Duration::from_secs(3600);
        for _ in 0..3 {
            assert!(buckets.take("a", later).is_ok());
        }
        assert!(buckets.take("a", later).is_err());
    }
}
