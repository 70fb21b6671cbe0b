//! API Gateway's authorizer result cache: per authorizer (and stage), keyed by the
//! identity source values, for the authorizer's TTL. The cached result is the whole
//! policy with its principal and context: a later request with the same key, on any
//! route, is decided from it without invoking the authorizer.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use service_auth::UnixTime;

use crate::policy::Statement;

/// What an authorizer answered, as API Gateway keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthorizerResult {
    pub principal_id: String,
    pub statements: Vec<Statement>,
    /// Context values as the backend receives them: strings.
    pub context: Vec<(String, String)>,
    pub usage_identifier_key: Option<String>,
}

/// Most entries kept; past it, expired entries are dropped, then everything.
const MAX_ENTRIES: usize = 10_000;

/// (authorizer, identity source values) → (result, expiry).
type Entries = HashMap<(String, String), (Arc<AuthorizerResult>, UnixTime)>;

#[derive(Default)]
pub struct ResultCache {
    entries: Mutex<Entries>,
}

impl ResultCache {
    /// The cached result for `key` of `authorizer`, if not expired at `now`.
    pub fn get(&self, authorizer: &str, key: &str, now: UnixTime) -> Option<Arc<AuthorizerResult>> {
        let mut map = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        let k = (authorizer.to_owned(), key.to_owned());
        match map.get(&k) {
            Some((r, until)) if now < *until => Some(r.clone()),
            Some(_) => {
                map.remove(&k);
                None
            }
            None => None,
        }
    }

    pub fn put(
        &self,
        authorizer: &str,
        key: &str,
        result: Arc<AuthorizerResult>,
        now: UnixTime,
        ttl_secs: u64,
    ) {
        if ttl_secs == 0 {
            return;
        }
        let mut map = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() >= MAX_ENTRIES {
            map.retain(|_, (_, until)| now < *until);
            if map.len() >= MAX_ENTRIES {
                map.clear();
            }
        }
        map.insert(
            (authorizer.to_owned(), key.to_owned()),
            (result, UnixTime(now.0.saturating_add(ttl_secs))),
        );
    }

    /// Drops every entry (API Gateway's "flush authorizer cache").
    pub fn flush(&self) {
        self.entries
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
    }

    pub fn len(&self) -> usize {
        self.entries.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_live_for_their_ttl_per_authorizer() {
        let c = ResultCache::default();
        let r = Arc::new(AuthorizerResult {
            principal_id: "p".into(),
            statements: vec![],
            context: vec![],
            usage_identifier_key: None,
        });
        c.put("a", "k", r.clone(), UnixTime(100), 300);
        assert!(c.get("a", "k", UnixTime(399)).is_some());
        assert!(c.get("b", "k", UnixTime(100)).is_none());
        assert!(c.get("a", "k2", UnixTime(100)).is_none());
        assert!(c.get("a", "k", UnixTime(400)).is_none());
        assert!(c.is_empty());
        c.put("a", "k", r, UnixTime(100), 0);
        assert!(c.is_empty());
    }
}
