//! When to reload the key store, and what to answer with while a reload fails.
//!
//! * A loaded store is used for `ttl`, then reloaded on the next request.
//! * If a reload fails, the last good store keeps answering until `ttl + stale_grace`
//!   after it was loaded, with a reload tried at most every `retry_interval`; after
//!   that every request is refused (fail closed).
//! * While nothing was ever loaded, every request tries a load (and is refused when
//!   it fails): a failed first load is retried by the next invocation, no crash loop.
//!
//! Time is passed in, so this is tested without sleeping.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::record::UnixTime;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RefreshPolicy {
    pub ttl: Duration,
    pub stale_grace: Duration,
    pub retry_interval: Duration,
}

impl Default for RefreshPolicy {
    fn default() -> Self {
        Self {
            ttl: Duration::from_secs(300),
            stale_grace: Duration::from_secs(900),
            retry_interval: Duration::from_secs(30),
        }
    }
}

/// The store currently in use and what is known about its freshness.
#[derive(Debug)]
pub struct Slot<T> {
    policy: RefreshPolicy,
    current: Option<(Arc<T>, UnixTime)>,
    last_failure: Option<UnixTime>,
}

/// What the slot says to do before answering a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Use the current store as it is.
    Serve,
    /// Try a reload first (then serve whatever the slot holds afterwards).
    Reload,
}

impl<T> Slot<T> {
    pub fn new(policy: RefreshPolicy) -> Self {
        Self {
            policy,
            current: None,
            last_failure: None,
        }
    }

    pub fn policy(&self) -> RefreshPolicy {
        self.policy
    }

    pub fn action(&self, now: UnixTime) -> Action {
        let Some((_, loaded_at)) = &self.current else {
            return Action::Reload;
        };
        if now < loaded_at.plus(self.policy.ttl) {
            return Action::Serve;
        }
        match self.last_failure {
            Some(failed)
                if failed >= *loaded_at && now < failed.plus(self.policy.retry_interval) =>
            {
                Action::Serve
            }
            _ => Action::Reload,
        }
    }

    /// The store to answer with, or `None` to refuse everything.
    pub fn usable(&self, now: UnixTime) -> Option<Arc<T>> {
        let (store, loaded_at) = self.current.as_ref()?;
        let limit = loaded_at
            .plus(self.policy.ttl)
            .plus(self.policy.stale_grace);
        (now < limit).then(|| store.clone())
    }

    pub fn loaded(&mut self, store: T, now: UnixTime) {
        self.current = Some((Arc::new(store), now));
        self.last_failure = None;
    }

    pub fn failed(&mut self, now: UnixTime) {
        self.last_failure = Some(now);
    }

    /// When the current store was loaded.
    pub fn loaded_at(&self) -> Option<UnixTime> {
        self.current.as_ref().map(|(_, t)| *t)
    }
}

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

    fn policy() -> RefreshPolicy {
        RefreshPolicy {
            ttl: Duration::from_secs(300),
            stale_grace: Duration::from_secs(900),
            retry_interval: Duration::from_secs(30),
        }
    }

    #[test]
    fn empty_slot_reloads_on_every_request_and_refuses() {
        let mut slot: Slot<u32> = Slot::new(policy());
        assert_eq!(slot.action(UnixTime(0)), Action::Reload);
        slot.failed(UnixTime(0));
        assert_eq!(slot.action(UnixTime(0)), Action::Reload);
        assert_eq!(slot.action(UnixTime(1)), Action::Reload);
        assert!(slot.usable(UnixTime(1)).is_none());
    }

    #[test]
    fn fresh_store_is_served_until_ttl_then_reloaded() {
        let mut slot = Slot::new(policy());
        slot.loaded(7u32, UnixTime(1000));
        assert_eq!(slot.action(UnixTime(1299)), Action::Serve);
        assert_eq!(slot.usable(UnixTime(1299)).as_deref(), Some(&7));
        assert_eq!(slot.action(UnixTime(1300)), Action::Reload);
        slot.loaded(8u32, UnixTime(1300));
        assert_eq!(slot.action(UnixTime(1301)), Action::Serve);
        assert_eq!(slot.usable(UnixTime(1301)).as_deref(), Some(&8));
    }

    #[test]
    fn failed_reloads_keep_the_last_good_store_for_a_bounded_time() {
        let mut slot = Slot::new(policy());
        slot.loaded(7u32, UnixTime(1000));
        slot.failed(UnixTime(1300));
        // Retried at most every 30 s, serving the old store meanwhile.
        assert_eq!(slot.action(UnixTime(1329)), Action::Serve);
        assert_eq!(slot.action(UnixTime(1330)), Action::Reload);
        assert_eq!(slot.usable(UnixTime(2199)).as_deref(), Some(&7));
        // ttl + grace after the load: fail closed.
        assert!(slot.usable(UnixTime(2200)).is_none());
        // ...until a reload succeeds.
        slot.loaded(9u32, UnixTime(2300));
        assert_eq!(slot.usable(UnixTime(2300)).as_deref(), Some(&9));
    }

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
