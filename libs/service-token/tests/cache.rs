//! The key-set cache: one fetch for many concurrent misses, at most one refetch per
//! interval for unknown kids, refresh after max age, old set kept when a fetch fails.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use service_auth::UnixTime;
use service_token::{KeySet, KeySetCache, KeySetSource, Rejection, SourceError};
use test_support::token_signer::TestKey;

/// A source whose set the test swaps, which counts fetches and can fail or be slow.
#[derive(Clone, Default)]
struct Source {
    set: Arc<Mutex<KeySet>>,
    fetches: Arc<AtomicUsize>,
    failing: Arc<AtomicBool>,
}

impl KeySetSource for Source {
    async fn fetch(&self) -> Result<KeySet, SourceError> {
        self.fetches.fetch_add(1, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(20)).await;
        if self.failing.load(Ordering::SeqCst) {
            return Err(SourceError("GetPublicKey: throttled".into()));
        }
        Ok(self.set.lock().unwrap().clone())
    }
}

fn cache(source: &Source) -> KeySetCache<Source> {
    KeySetCache::with_intervals(
        source.clone(),
        Duration::from_secs(30),
        Duration::from_secs(3600),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_misses_share_one_fetch() {
    let key = TestKey::new("k1");
    let source = Source::default();
    *source.set.lock().unwrap() = key.key_set();
    let cache = Arc::new(cache(&source));
    let tasks: Vec<_> = (0..32)
        .map(|_| {
            let cache = cache.clone();
            tokio::spawn(async move { cache.keys_for("k1", UnixTime(100)).await.map(|s| s.len()) })
        })
        .collect();
    for t in tasks {
        assert_eq!(t.await.unwrap(), Ok(1));
    }
    assert_eq!(source.fetches.load(Ordering::SeqCst), 1);
    // Warm: no further fetch.
    assert!(cache.keys_for("k1", UnixTime(200)).await.is_ok());
    assert_eq!(cache.fetches(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn unknown_kids_refetch_at_most_once_per_interval() {
    let source = Source::default();
    *source.set.lock().unwrap() = TestKey::new("k1").key_set();
    let cache = Arc::new(cache(&source));
    assert!(cache.keys_for("k1", UnixTime(100)).await.is_ok());
    // A flood of made-up kids within the interval: no fetch at all.
    let tasks: Vec<_> = (0..50)
        .map(|i| {
            let cache = cache.clone();
            tokio::spawn(async move {
                cache
                    .keys_for(&format!("bogus-{i}"), UnixTime(110))
                    .await
                    .map(|_| ())
            })
        })
        .collect();
    for t in tasks {
        assert_eq!(t.await.unwrap(), Err(Rejection::UnknownKid));
    }
    assert_eq!(cache.fetches(), 1);
    // After the interval, one refetch for all of them.
    let tasks: Vec<_> = (0..50)
        .map(|i| {
            let cache = cache.clone();
            tokio::spawn(async move {
                cache
                    .keys_for(&format!("bogus-{i}"), UnixTime(130))
                    .await
                    .map(|_| ())
            })
        })
        .collect();
    for t in tasks {
        assert_eq!(t.await.unwrap(), Err(Rejection::UnknownKid));
    }
    assert_eq!(cache.fetches(), 2);
}

#[tokio::test]
async fn a_new_key_is_found_by_refetch_after_the_interval() {
    let source = Source::default();
    *source.set.lock().unwrap() = TestKey::new("old").key_set();
    let cache = cache(&source);
    assert!(cache.keys_for("old", UnixTime(100)).await.is_ok());
    // Rotation: the new key is published.
    let both = serde_json::json!({"keys": [
        TestKey::new("old").jwks().keys[0].clone(), TestKey::new("new").jwks().keys[0].clone()]});
    *source.set.lock().unwrap() = KeySet::from_json(both.to_string().as_bytes()).unwrap();
    assert_eq!(
        cache.keys_for("new", UnixTime(110)).await.map(|_| ()),
        Err(Rejection::UnknownKid)
    );
    assert_eq!(
        cache.keys_for("new", UnixTime(130)).await.map(|s| s.len()),
        Ok(2)
    );
}

#[tokio::test]
async fn old_sets_are_refreshed_and_kept_if_the_refresh_fails() {
    let source = Source::default();
    *source.set.lock().unwrap() = TestKey::new("k1").key_set();
    let cache = cache(&source);
    assert!(cache.keys_for("k1", UnixTime(0)).await.is_ok());
    // Past max age the set is refetched; a removed key stops being trusted.
    *source.set.lock().unwrap() = TestKey::new("k2").key_set();
    assert_eq!(
        cache.keys_for("k1", UnixTime(3600)).await.map(|_| ()),
        Err(Rejection::UnknownKid)
    );
    assert_eq!(cache.fetches(), 2);
    // A failed refresh keeps the set it had.
    source.failing.store(true, Ordering::SeqCst);
    assert!(cache.keys_for("k2", UnixTime(7300)).await.is_ok());
    assert_eq!(cache.fetches(), 3);
}

#[tokio::test]
async fn a_cold_cache_that_cannot_fetch_fails_closed() {
    let source = Source::default();
    source.failing.store(true, Ordering::SeqCst);
    let cache = cache(&source);
    assert_eq!(
        cache.keys_for("k1", UnixTime(0)).await.map(|_| ()),
        Err(Rejection::KeySetUnavailable)
    );
    // Not retried within the interval, still unavailable.
    assert_eq!(
        cache.keys_for("k1", UnixTime(10)).await.map(|_| ()),
        Err(Rejection::KeySetUnavailable)
    );
    assert_eq!(cache.fetches(), 1);
    source.failing.store(false, Ordering::SeqCst);
    *source.set.lock().unwrap() = TestKey::new("k1").key_set();
    assert!(cache.keys_for("k1", UnixTime(30)).await.is_ok());
}

#[tokio::test]
async fn a_prefetch_at_start_answers_the_first_token_from_memory() {
    let key = TestKey::new("k1");
    let source = Source::default();
    *source.set.lock().unwrap() = key.key_set();
    let cache = cache(&source);
    assert_eq!(cache.prefetch(UnixTime(100)).await, Ok(1));
    assert!(cache.keys_for("k1", UnixTime(101)).await.is_ok());
    assert_eq!(cache.fetches(), 1);
    // It counts for the refetch interval: an unknown kid right after start waits.
    assert_eq!(
        cache.keys_for("k2", UnixTime(110)).await.map(|_| ()),
        Err(Rejection::UnknownKid)
    );
    assert_eq!(cache.fetches(), 1);
    // A failed prefetch keeps the old set and says why.
    source.failing.store(true, Ordering::SeqCst);
    assert!(cache.prefetch(UnixTime(200)).await.is_err());
    assert!(cache.keys_for("k1", UnixTime(201)).await.is_ok());
    // Before any set was fetched, a failed prefetch leaves the cache unavailable.
    let cold = cold_after_a_failed_prefetch(&source).await;
    assert_eq!(cold, Err(Rejection::KeySetUnavailable));
}

async fn cold_after_a_failed_prefetch(source: &Source) -> Result<(), Rejection> {
    let cache = cache(source);
    assert!(cache.prefetch(UnixTime(100)).await.is_err());
    cache.keys_for("k1", UnixTime(101)).await.map(|_| ())
}
