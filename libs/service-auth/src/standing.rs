//! What the key store says about a calling service now, for its tokens: a
//! [`Standing`]. It is computed once per read, by one reader per source (keystore-ssm's
//! `Standings` for SSM, [`Standing::from_store`] for a loaded store), and read by
//! everyone who decides about tokens: the authorizer (is this token still good, which
//! of its routes are still granted) and the issuer (which token may this caller get).
//!
//! The store's markers (revocation, scheduled expiry, brake: see [`Markers`]) are
//! already applied to [`Standing::document`]: nothing downstream has to know they
//! exist.

use crate::key::KeyId;
use crate::record::{KeyStatus, ServiceDocument, UnixTime};
use crate::store::{KeyStore, Markers};

/// What the store says about one calling service and the key it proved itself with.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Standing {
    /// The service's document, every marker applied; `None` when it has none (or
    /// none that can be used).
    pub document: Option<ServiceDocument>,
    /// The proof key has a revocation marker (false for IAM proofs, and where there are
    /// no markers). The document's record says revoked too once markers are applied;
    /// this also covers a key the document does not hold.
    pub proof_key_revoked: bool,
}

impl Standing {
    /// `document` with `markers` applied. `proof_key`: the key the caller proved
    /// itself with (its revocation marker is in `markers` when it has one).
    pub fn with_markers(
        document: Option<ServiceDocument>,
        proof_key: Option<&KeyId>,
        markers: &Markers,
    ) -> Self {
        let document = document.map(|mut d| {
            markers.apply_to_document(&mut d);
            d
        });
        Self {
            document,
            proof_key_revoked: proof_key.is_some_and(|id| markers.revoked.contains(id)),
        }
    }

    /// A service's standing in a loaded store: its document with the state of the
    /// store's entry of the proof key (a marker applied to the store revokes or ends it
    /// there).
    pub fn from_store(store: &KeyStore, service: &str, proof_key: Option<&str>) -> Self {
        let mut document = store.document(service).map(|d| (**d).clone());
        let mut proof_key_revoked = false;
        if let (Some(doc), Some(id)) = (document.as_mut(), proof_key.and_then(KeyId::parse)) {
            if let (Some(entry), Some(record)) = (store.key_by_id(id.as_str()), doc.key_mut(&id)) {
                if entry.status == KeyStatus::Revoked {
                    record.status = KeyStatus::Revoked;
                    proof_key_revoked = true;
                }
                record.expires = match (record.expires, entry.expires) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                };
            }
        }
        Self {
            document,
            proof_key_revoked,
        }
    }

    /// Whether the service has a (usable) document.
    pub fn known(&self) -> bool {
        self.document.is_some()
    }

    /// The service's brake: tokens issued before it are refused.
    pub fn tokens_not_before(&self) -> Option<UnixTime> {
        self.document.as_ref().and_then(|d| d.tokens_not_before)
    }

    /// The service's usage-plan API key value, when its document names one.
    pub fn usage_plan_key(&self) -> Option<&str> {
        self.document.as_ref()?.usage_plan_key.as_deref()
    }

    /// Whether `key_id` is a key of this service that works at `now`: in its
    /// document, active, not expired, without a revocation marker.
    pub fn proof_key_usable(&self, key_id: &str, now: UnixTime) -> bool {
        if self.proof_key_revoked {
            return false;
        }
        let (Some(doc), Some(id)) = (&self.document, KeyId::parse(key_id)) else {
            return false;
        };
        doc.key(&id).is_some_and(|k| k.usable_at(now))
    }

    /// Whether the service's document grants `route` (a pattern, as written) on `api`
    /// now: some grant names that API and that exact pattern, text for text (a pattern
    /// is never read as covering another, as when the issuer narrows a request).
    pub fn grants(&self, api: &str, route: &str) -> bool {
        self.document.as_ref().is_some_and(|d| {
            d.grants
                .iter()
                .any(|g| g.apis.iter().any(|a| a == api) && g.routes.iter().any(|r| r == route))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::key::ApiKey;
    use crate::record::{ApiGrant, KeyRecord};

    fn doc(keys: &[&ApiKey]) -> ServiceDocument {
        let mut d = ServiceDocument::new(
            "tutor-service",
            vec![ApiGrant::new(&["identity"], &["GET /internal/users/*"])],
        );
        for k in keys {
            d.keys.push(KeyRecord::for_key(k, UnixTime(1), None));
        }
        d
    }

    #[test]
    fn markers_win_over_the_document() {
        let a = ApiKey::generate(None).unwrap();
        let b = ApiKey::generate(None).unwrap();
        let mut markers = Markers::default();
        markers.revoked.insert(a.key_id());
        markers.expiries.insert(b.key_id(), UnixTime(50));
        markers.brake = Some(UnixTime(40));
        let s = Standing::with_markers(Some(doc(&[&a, &b])), Some(&a.key_id()), &markers);
        assert!(s.proof_key_revoked);
        assert!(!s.proof_key_usable(a.key_id().as_str(), UnixTime(10)));
        let s = Standing::with_markers(Some(doc(&[&a, &b])), Some(&b.key_id()), &markers);
        assert!(!s.proof_key_revoked);
        assert!(!s.proof_key_usable(a.key_id().as_str(), UnixTime(10)));
        assert!(s.proof_key_usable(b.key_id().as_str(), UnixTime(49)));
        assert!(!s.proof_key_usable(b.key_id().as_str(), UnixTime(50)));
        assert_eq!(s.tokens_not_before(), Some(UnixTime(40)));
        // A marker only takes away: an earlier brake in the document stays the later one.
        let mut d = doc(&[&b]);
        d.tokens_not_before = Some(UnixTime(60));
        d.keys[0].expires = Some(UnixTime(45));
        let s = Standing::with_markers(Some(d), None, &markers);
        assert_eq!(s.tokens_not_before(), Some(UnixTime(60)));
        assert!(!s.proof_key_usable(b.key_id().as_str(), UnixTime(46)));
        assert!(!Standing::default().known());
    }

    #[test]
    fn grants_are_matched_text_for_text_per_api() {
        let s = Standing::with_markers(Some(doc(&[])), None, &Markers::default());
        assert!(s.grants("identity", "GET /internal/users/*"));
        assert!(!s.grants("identity", "GET /internal/users/42"));
        assert!(!s.grants("billing", "GET /internal/users/*"));
        assert!(!Standing::default().grants("identity", "GET /internal/users/*"));
    }
}
