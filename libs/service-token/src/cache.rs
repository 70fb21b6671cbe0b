//! The verifier's copy of the key set, refreshed without stampedes.
//!
//! * A `kid` already in the set is answered from memory, with no await and no I/O.
//! * An unknown `kid` refetches the set, but at most once per `min_refetch` interval:
//!   a flood of tokens with made-up `kid`s costs one fetch per interval, not one each.
//! * Fetches are single-flight: callers that miss together wait for one fetch and then
//!   look again.
//! * A set older than `max_age` is refetched on the next call (keys removed from the
//!   published set stop being trusted); if that fetch fails the old set is kept.
//!
//! The first call of a cold process loads the set the same way (the "cold" cost).

use std::future::Future;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use service_auth::UnixTime;

use crate::keyset::KeySet;
use crate::verify::Rejection;

/// Why a key-set source could not answer. Carries no secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct SourceError(pub String);

/// Where the key set comes from (KMS `GetPublicKey`, an HTTPS JWKS URL, a file).
pub trait KeySetSource: Send + Sync {
    fn fetch(&self) -> impl Future<Output = Result<KeySet, SourceError>> + Send;
}

/// Default least time between two fetches caused by unknown `kid`s.
pub const DEFAULT_MIN_REFETCH: Duration = Duration::from_secs(30);
/// Default age after which the set is refetched: the bound on how long a key removed
/// from the published set (`svcauth tokens keys remove`) is still trusted by a
/// verifier that holds it (issue 19 A3: it was an hour). One `GetParameter` per
/// instance every 5 minutes is cheap; svcauth's message and docs/tokens.md quote it.
pub const DEFAULT_MAX_AGE: Duration = Duration::from_secs(300);

#[derive(Default)]
struct State {
    keys: Arc<KeySet>,
    /// When the set in `keys` was fetched (None: never).
    fetched_at: Option<UnixTime>,
    /// When a fetch was last tried, successful or not.
    tried_at: Option<UnixTime>,
    /// Fetches tried so far (for tests and metrics).
    fetches: u64,
}

/// A shared, lazily filled key set. See the module docs.
pub struct KeySetCache<S> {
    source: S,
    state: RwLock<State>,
    fetch_lock: tokio::sync::Mutex<()>,
    min_refetch: u64,
    max_age: u64,
}

impl<S: KeySetSource> KeySetCache<S> {
    pub fn new(source: S) -> Self {
        Self::with_intervals(source, DEFAULT_MIN_REFETCH, DEFAULT_MAX_AGE)
    }

    pub fn with_intervals(source: S, min_refetch: Duration, max_age: Duration) -> Self {
        Self {
            source,
            state: RwLock::new(State::default()),
            fetch_lock: tokio::sync::Mutex::new(()),
            min_refetch: min_refetch.as_secs(),
            max_age: max_age.as_secs(),
        }
    }

    /// Fetches tried so far.
    pub fn fetches(&self) -> u64 {
        self.read(|s| s.fetches)
    }

    /// The current set, whatever it holds (empty before the first fetch).
    pub fn current(&self) -> Arc<KeySet> {
        self.read(|s| s.keys.clone())
    }

    /// A set that holds `kid`, fetching as the module docs say. `UnknownKid` when the
    /// set does not have it (and may not be fetched again yet), `KeySetUnavailable`
    /// when no set could ever be fetched.
    pub async fn keys_for(&self, kid: &str, now: UnixTime) -> Result<Arc<KeySet>, Rejection> {
        if let Some(keys) = self.answer_from_memory(kid, now) {
            return keys;
        }
        let _flight = self.fetch_lock.lock().await;
        // Another caller may have fetched while this one waited.
        if let Some(keys) = self.answer_from_memory(kid, now) {
            return keys;
        }
        let fetched = self.source.fetch().await;
        let mut s = self.state.write().unwrap_or_else(|p| p.into_inner());
        s.tried_at = Some(now);
        s.fetches += 1;
        if let Ok(keys) = fetched {
            s.keys = Arc::new(keys);
            s.fetched_at = Some(now);
        }
        match (&s.fetched_at, s.keys.contains(kid)) {
            (None, _) => Err(Rejection::KeySetUnavailable),
            (Some(_), true) => Ok(s.keys.clone()),
            (Some(_), false) => Err(Rejection::UnknownKid),
        }
    }

    /// Fetches the set now, whatever memory holds (at start, so the first token does
    /// not wait for it). Counts as a fetch for the refetch interval. Returns how many
    /// keys the set has, or why it could not be fetched (the old set, if any, is kept).
    pub async fn prefetch(&self, now: UnixTime) -> Result<usize, SourceError> {
        let _flight = self.fetch_lock.lock().await;
        let fetched = self.source.fetch().await;
        let mut s = self.state.write().unwrap_or_else(|p| p.into_inner());
        s.tried_at = Some(now);
        s.fetches += 1;
        let keys = fetched?;
        let n = keys.len();
        s.keys = Arc::new(keys);
        s.fetched_at = Some(now);
        Ok(n)
    }

    /// `Some` when memory decides: the kid is known and the set is fresh, or a fetch
    /// was tried too recently to try another. `None`: fetch.
    fn answer_from_memory(
        &self,
        kid: &str,
        now: UnixTime,
    ) -> Option<Result<Arc<KeySet>, Rejection>> {
        self.read(|s| {
            let fresh = s
                .fetched_at
                .is_some_and(|t| now.0 < t.0.saturating_add(self.max_age));
            let may_fetch = s
                .tried_at
                .is_none_or(|t| now.0 >= t.0.saturating_add(self.min_refetch));
            if s.keys.contains(kid) && (fresh || !may_fetch) {
                Some(Ok(s.keys.clone()))
            } else if !may_fetch {
                Some(Err(if s.fetched_at.is_some() {
                    Rejection::UnknownKid
                } else {
                    Rejection::KeySetUnavailable
                }))
            } else {
                None
            }
        })
    }

    fn read<T>(&self, f: impl FnOnce(&State) -> T) -> T {
        f(&self.state.read().unwrap_or_else(|p| p.into_inner()))
    }
}
