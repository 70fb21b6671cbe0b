//! How the authorizer paces its SSM reads: a jittered, doubling pause after each
//! failure ([`Backoff`]) and a ration of key id lookups ([`TokenBucket`]). Time is
//! passed in (the instant of the injected [`service_auth::clock::Clock`]), so both are
//! tested without sleeping.

use std::time::{Duration, Instant};

/// Jittered exponential backoff between SSM reads after a failure (throttling above
/// all): many instances that failed together retry spread out instead of in lockstep,
/// and an instance flooded with requests does not turn each one into another call.
/// After `n` failures in a row the next read waits `base * 2^(n-1)` (at most `max`),
/// scaled by a random factor in [0.5, 1). Time is passed in.
#[derive(Debug, Clone)]
pub struct Backoff {
    base: Duration,
    max: Duration,
    failures: u32,
    not_before: Option<Instant>,
}

impl Backoff {
    pub fn new(base: Duration, max: Duration) -> Self {
        Self {
            base,
            max,
            failures: 0,
            not_before: None,
        }
    }

    /// Whether a read may be tried at `now`.
    pub fn ready(&self, now: Instant) -> bool {
        self.not_before.is_none_or(|t| now >= t)
    }

    /// A read failed at `now`; `jitter` in [0, 1) (see [`random_unit`]). Returns the
    /// pause before the next read may be tried.
    pub fn failed(&mut self, now: Instant, jitter: f64) -> Duration {
        self.failures = self.failures.saturating_add(1);
        let exp = self
            .base
            .saturating_mul(1u32 << (self.failures - 1).min(16));
        let full = exp.min(self.max);
        let pause = full.mul_f64(0.5 + jitter.clamp(0.0, 1.0) / 2.0);
        self.not_before = Some(now + pause);
        pause
    }

    /// A read succeeded: the next failure starts again from `base`.
    pub fn succeeded(&mut self) {
        self.failures = 0;
        self.not_before = None;
    }

    pub fn failures(&self) -> u32 {
        self.failures
    }
}

/// A token bucket: at most `burst` events at once, refilled at `per_second`. The
/// authorizer spends one per key id lookup; when it is empty it waits for the full
/// load instead of calling SSM again, so a flood of invented keys costs a bounded
/// number of calls per instance. Time is passed in.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    burst: f64,
    per_second: f64,
    tokens: f64,
    at: Option<Instant>,
}

impl TokenBucket {
    pub fn new(burst: u32, per_second: f64) -> Self {
        Self {
            burst: f64::from(burst),
            per_second,
            tokens: f64::from(burst),
            at: None,
        }
    }

    /// Takes one token if there is one at `now`.
    pub fn try_take(&mut self, now: Instant) -> bool {
        if let Some(at) = self.at {
            let refill = now.saturating_duration_since(at).as_secs_f64() * self.per_second;
            self.tokens = (self.tokens + refill).min(self.burst);
        }
        self.at = Some(now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// A random number in [0, 1) from the OS (0.5 if it fails: jitter only spreads
/// retries out, nothing depends on it being secret).
pub fn random_unit() -> f64 {
    let mut b = [0u8; 4];
    match getrandom::fill(&mut b) {
        Ok(()) => f64::from(u32::from_le_bytes(b)) / (f64::from(u32::MAX) + 1.0),
        Err(_) => 0.5,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_with_jitter_up_to_its_cap_and_resets() {
        let t0 = Instant::now();
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_secs(1));
        assert!(b.ready(t0));
        assert_eq!(b.failed(t0, 0.0), Duration::from_millis(50));
        assert!(!b.ready(t0 + Duration::from_millis(49)));
        assert!(b.ready(t0 + Duration::from_millis(50)));
        assert_eq!(b.failed(t0, 0.0), Duration::from_millis(100));
        assert_eq!(b.failed(t0, 0.75), Duration::from_millis(350));
        for _ in 0..40 {
            assert!(b.failed(t0, 0.99) <= Duration::from_secs(1));
        }
        b.succeeded();
        assert!(b.ready(t0));
        assert_eq!(b.failed(t0, 0.0), Duration::from_millis(50));
        let r = random_unit();
        assert!((0.0..1.0).contains(&r));
    }

    #[test]
    fn token_bucket_allows_a_burst_then_its_rate() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(3, 2.0);
        assert!((0..3).all(|_| b.try_take(t0)));
        assert!(!b.try_take(t0));
        assert!(!b.try_take(t0 + Duration::from_millis(400)));
        assert!(b.try_take(t0 + Duration::from_millis(500)));
        assert!(!b.try_take(t0 + Duration::from_millis(500)));
        // Never more than the burst, however long it rested.
        let later = t0 + Duration::from_secs(3600);
        assert!((0..3).all(|_| b.try_take(later)));
        assert!(!b.try_take(later));
    }
}
