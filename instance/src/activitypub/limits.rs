//! Inbound rate limits: a token bucket per remote instance on the inboxes.
//!
//! Each instance (the host of the key that signs a delivery) has a bucket of `burst` tokens,
//! refilled at `rate` per minute; a delivery takes one, and when none is left the inbox
//! answers 429 with `Retry-After` (the seconds until the next token), which Convene's queue
//! and Mastodon's both honour. The bucket is charged **before** the signature is verified, so
//! that a flood costs us no RSA work; the price is that a forger naming another instance's key
//! spends that instance's tokens, which only delays its deliveries (they are retried).
//!
//! The buckets are in memory, per process: several processes behind one balancer each allow
//! the rate. Time is passed in, so the arithmetic is tested without waiting.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Buckets kept at most; past that, full ones (idle senders) are forgotten first.
const MAX_BUCKETS: usize = 10_000;

/// The limiter; see the module docs.
#[derive(Debug)]
pub struct InboxLimits {
    /// Tokens per second; 0 turns the limits off.
    per_second: f64,
    burst: f64,
    buckets: Mutex<HashMap<String, Bucket>>,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl InboxLimits {
    /// `rate` deliveries per minute on average (0: no limit), `burst` at once.
    pub fn new(rate: u32, burst: u32) -> Self {
        Self {
            per_second: f64::from(rate) / 60.0,
            burst: f64::from(burst.max(1)),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes a token for `host` at `now`; `Err(wait)` when its bucket is empty, with the time
    /// until it holds one again.
    pub fn take(&self, host: &str, now: Instant) -> Result<(), Duration> {
        if self.per_second <= 0.0 {
            return Ok(());
        }
        // A poisoned lock means a panic elsewhere mid-update; the counts are still usable.
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        if buckets.len() >= MAX_BUCKETS && !buckets.contains_key(host) {
            let (per_second, burst) = (self.per_second, self.burst);
            buckets.retain(|_, b| b.refilled(now, per_second, burst) < burst);
            if buckets.len() >= MAX_BUCKETS {
                buckets.clear();
            }
        }
        let bucket = buckets.entry(host.to_owned()).or_insert(Bucket {
            tokens: self.burst,
            at: now,
        });
        let tokens = bucket.refilled(now, self.per_second, self.burst);
        if tokens >= 1.0 {
            *bucket = Bucket {
                tokens: tokens - 1.0,
                at: now,
            };
            Ok(())
        } else {
            *bucket = Bucket { tokens, at: now };
            Err(Duration::from_secs_f64((1.0 - tokens) / self.per_second))
        }
    }
}

impl Bucket {
    fn refilled(&self, now: Instant, per_second: f64, burst: f64) -> f64 {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        (self.tokens + elapsed * per_second).min(burst)
    }
}

/// `Retry-After` in whole seconds, rounded up (to the millisecond, so that float noise does
/// not add a second), at least 1.
pub fn retry_after_secs(wait: Duration) -> u64 {
    let millis = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX);
    millis.div_ceil(1000).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_then_the_rate() {
        let limits = InboxLimits::new(60, 3);
        let t0 = Instant::now();
        for _ in 0..3 {
            assert_eq!(limits.take("a.example", t0), Ok(()));
        }
        let wait = limits.take("a.example", t0).err();
        assert_eq!(wait.map(retry_after_secs), Some(1));
        // Another instance has its own bucket.
        assert_eq!(limits.take("b.example", t0), Ok(()));
        // One token a second comes back.
        assert_eq!(
            limits.take("a.example", t0 + Duration::from_secs(1)),
            Ok(())
        );
        assert!(
            limits
                .take("a.example", t0 + Duration::from_secs(1))
                .is_err()
        );
        // Never more than the burst, however long it waited.
        let later = t0 + Duration::from_secs(3600);
        for _ in 0..3 {
            assert_eq!(limits.take("a.example", later), Ok(()));
        }
        assert!(limits.take("a.example", later).is_err());
    }

    #[test]
    fn the_wait_is_until_the_next_token() {
        let limits = InboxLimits::new(2, 1);
        let t0 = Instant::now();
        assert_eq!(limits.take("slow.example", t0), Ok(()));
        let wait = limits.take("slow.example", t0).err();
        assert_eq!(wait.map(retry_after_secs), Some(30));
        let wait = limits
            .take("slow.example", t0 + Duration::from_secs(20))
            .err();
        assert_eq!(wait.map(retry_after_secs), Some(10));
    }

    #[test]
    fn a_rate_of_zero_is_no_limit() {
        let limits = InboxLimits::new(0, 1);
        let t0 = Instant::now();
        for _ in 0..1000 {
            assert_eq!(limits.take("a.example", t0), Ok(()));
        }
    }

    #[test]
    fn idle_senders_are_forgotten_first() {
        let limits = InboxLimits::new(60, 2);
        let t0 = Instant::now();
        for n in 0..MAX_BUCKETS {
            assert_eq!(limits.take(&format!("h{n}.example"), t0), Ok(()));
        }
        // Everyone has refilled an hour later: the table starts over, and a busy sender's
        // bucket is not shared with a newcomer.
        let later = t0 + Duration::from_secs(3600);
        assert_eq!(limits.take("new.example", later), Ok(()));
        let buckets = limits.buckets.lock().map(|b| b.len()).unwrap_or(0);
        assert_eq!(buckets, 1);
    }
}
