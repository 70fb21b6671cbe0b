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
use std::time::Duration;

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
}
