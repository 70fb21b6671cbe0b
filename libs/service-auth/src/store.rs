//! The in-memory key store: every known key, indexed by its SHA-256.
//!
//! Built all-or-nothing from service documents (and optionally the original design's
//! legacy map): one malformed document fails the whole build, so the authorizer never
//! runs on a store that is silently missing part of its data.

use std::collections::HashMap;
use std::sync::Arc;

use crate::key::{ApiKey, KeyHash, KeyId};
use crate::permissions::RoutePattern;
use crate::record::{valid_service_name, DocumentError, KeyStatus, ServiceDocument, UnixTime};

/// What a key grants: shared by all keys of one service.
#[derive(Debug, PartialEq, Eq)]
pub struct ServiceGrant {
    pub service: String,
    pub permissions: Vec<RoutePattern>,
    pub usage_plan_key: Option<String>,
}

/// One indexed key.
#[derive(Debug, Clone)]
pub struct KeyEntry {
    pub key_id: KeyId,
    pub status: KeyStatus,
    pub expires: Option<UnixTime>,
    pub grant: Arc<ServiceGrant>,
    /// True for keys that came from the legacy map rather than a service document.
    pub legacy: bool,
}

/// A key of the original design's `{"<key>": "<service>"}` map, already hashed.
#[derive(Debug, Clone)]
pub struct LegacyEntry {
    pub hash: KeyHash,
    pub key_id: KeyId,
    pub service: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    #[error(transparent)]
    Document(#[from] DocumentError),
    #[error("service {0:?} has two documents")]
    DuplicateService(String),
    #[error("key {0} is listed under two services")]
    DuplicateKey(KeyId),
    #[error("the legacy key map is not a JSON object of key to service name: {0}")]
    LegacyJson(String),
    /// `index` counts from 0; messages count entries from 1, as people do.
    #[error("legacy entry {} (of service {service:?}): the key is not a valid API key ({reason})", .index + 1)]
    LegacyKey {
        index: usize,
        service: String,
        reason: crate::key::KeyFormatError,
    },
    #[error("legacy entry {}: service name {service:?} is invalid", .index + 1)]
    LegacyService { index: usize, service: String },
}

/// Every key the authorizer accepts, by hash.
#[derive(Debug, Default)]
pub struct KeyStore {
    by_hash: HashMap<KeyHash, KeyEntry>,
    services: usize,
    /// Services named only by legacy keys: they authenticate but have no permissions.
    pub legacy_without_permissions: Vec<String>,
}

impl KeyStore {
    /// Builds the index. Document records win over legacy entries for the same key, so
    /// a legacy key that was imported and later revoked stays revoked.
    pub fn build(docs: &[ServiceDocument], legacy: &[LegacyEntry]) -> Result<Self, StoreError> {
        let mut by_hash =
            HashMap::with_capacity(docs.iter().map(|d| d.keys.len()).sum::<usize>() + legacy.len());
        let mut grants: HashMap<&str, Arc<ServiceGrant>> = HashMap::with_capacity(docs.len());
        for doc in docs {
            doc.validate()?;
            let grant = Arc::new(ServiceGrant {
                service: doc.service.clone(),
                permissions: doc.route_patterns()?,
                usage_plan_key: doc.usage_plan_key.clone(),
            });
            if grants.insert(doc.service.as_str(), grant.clone()).is_some() {
                return Err(StoreError::DuplicateService(doc.service.clone()));
            }
            for rec in &doc.keys {
                let entry = KeyEntry {
                    key_id: rec.key_id.clone(),
                    status: rec.status,
                    expires: rec.expires,
                    grant: grant.clone(),
                    legacy: false,
                };
                if by_hash.insert(rec.sha256, entry).is_some() {
                    return Err(StoreError::DuplicateKey(rec.key_id.clone()));
                }
            }
        }
        let mut legacy_without_permissions = Vec::new();
        for entry in legacy {
            if by_hash.contains_key(&entry.hash) {
                continue;
            }
            let grant = match grants.get(entry.service.as_str()) {
                Some(g) => g.clone(),
                None => {
                    if !legacy_without_permissions.contains(&entry.service) {
                        legacy_without_permissions.push(entry.service.clone());
                    }
                    let g = Arc::new(ServiceGrant {
                        service: entry.service.clone(),
                        permissions: Vec::new(),
                        usage_plan_key: None,
                    });
                    grants.insert(entry.service.as_str(), g.clone());
                    g
                }
            };
            by_hash.insert(
                entry.hash,
                KeyEntry {
                    key_id: entry.key_id.clone(),
                    status: KeyStatus::Active,
                    expires: None,
                    grant,
                    legacy: true,
                },
            );
        }
        Ok(Self {
            by_hash,
            services: grants.len(),
            legacy_without_permissions,
        })
    }

    pub fn lookup(&self, hash: &KeyHash) -> Option<&KeyEntry> {
        self.by_hash.get(hash)
    }

    pub fn key_count(&self) -> usize {
        self.by_hash.len()
    }

    pub fn service_count(&self) -> usize {
        self.services
    }
}

/// Parses the original design's `{"<key>": "<service>"}` map. Each key is validated,
/// hashed, and its clear value wiped; only hashes leave this function.
pub fn parse_legacy_map(json: &str) -> Result<Vec<LegacyEntry>, StoreError> {
    use serde::de::{Deserializer, MapAccess, Visitor};
    use zeroize::Zeroizing;

    struct Entries(Vec<(Zeroizing<String>, String)>);
    struct V;
    impl<'de> Visitor<'de> for V {
        type Value = Entries;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("an object of key to service name")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Entries, A::Error> {
            let mut out = Vec::new();
            while let Some((k, v)) = map.next_entry::<String, String>()? {
                out.push((Zeroizing::new(k), v));
            }
            Ok(Entries(out))
        }
    }
    let mut de = serde_json::Deserializer::from_str(json);
    // Error messages from serde_json name positions, not values.
    let entries = de
        .deserialize_map(V)
        .and_then(|e| de.end().map(|_| e))
        .map_err(|e| StoreError::LegacyJson(e.to_string()))?;
    entries
        .0
        .into_iter()
        .enumerate()
        .map(|(index, (key, service))| {
            let key = ApiKey::parse(&key).map_err(|reason| StoreError::LegacyKey {
                index,
                service: service.clone(),
                reason,
            })?;
            if !valid_service_name(&service) {
                return Err(StoreError::LegacyService { index, service });
            }
            Ok(LegacyEntry {
                hash: key.hash(),
                key_id: key.key_id(),
                service,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::KeyRecord;

    fn doc_with(service: &str, perms: &[&str], keys: &[&ApiKey]) -> ServiceDocument {
        let mut d = ServiceDocument::new(service, perms.iter().map(|s| s.to_string()).collect());
        for k in keys {
            d.keys.push(KeyRecord::for_key(k, UnixTime(1), None));
        }
        d
    }

    #[test]
    fn builds_an_index_by_hash() {
        let a = ApiKey::generate(None).unwrap();
        let b = ApiKey::generate(None).unwrap();
        let store = KeyStore::build(
            &[doc_with("a", &["GET /x"], &[&a]), doc_with("b", &[], &[&b])],
            &[],
        )
        .unwrap();
        assert_eq!(store.key_count(), 2);
        assert_eq!(store.service_count(), 2);
        let e = store.lookup(&a.hash()).unwrap();
        assert_eq!(e.grant.service, "a");
        assert_eq!(e.key_id, a.key_id());
        assert!(store
            .lookup(&ApiKey::generate(None).unwrap().hash())
            .is_none());
    }

    #[test]
    fn duplicates_fail_the_whole_build() {
        let a = ApiKey::generate(None).unwrap();
        assert_eq!(
            KeyStore::build(&[doc_with("a", &[], &[&a]), doc_with("b", &[], &[&a])], &[])
                .unwrap_err(),
            StoreError::DuplicateKey(a.key_id())
        );
        assert!(matches!(
            KeyStore::build(&[doc_with("a", &[], &[]), doc_with("a", &[], &[])], &[]),
            Err(StoreError::DuplicateService(_))
        ));
        let mut bad = doc_with("a", &[], &[]);
        bad.permissions.push("nope".into());
        assert!(matches!(
            KeyStore::build(&[bad], &[]),
            Err(StoreError::Document(_))
        ));
    }

    #[test]
    fn legacy_map_is_hashed_and_validated() {
        let k1 = "A".repeat(64);
        let k2 = "b".repeat(64);
        let json = format!(r#"{{"{k1}": "tutor-service", "{k2}": "admin-service"}}"#);
        let entries = parse_legacy_map(&json).unwrap();
        assert_eq!(entries.len(), 2);
        assert_eq!(entries[0].hash, ApiKey::parse(&k1).unwrap().hash());
        assert!(!format!("{entries:?}").contains(&k1));

        assert!(matches!(
            parse_legacy_map("[]"),
            Err(StoreError::LegacyJson(_))
        ));
        assert!(matches!(
            parse_legacy_map(r#"{"a": 1}"#),
            Err(StoreError::LegacyJson(_))
        ));
        assert!(matches!(
            parse_legacy_map(r#"{"short": "svc"}"#),
            Err(StoreError::LegacyKey { index: 0, .. })
        ));
        let bad_service = format!(r#"{{"{k1}": "Not Valid"}}"#);
        assert!(matches!(
            parse_legacy_map(&bad_service),
            Err(StoreError::LegacyService { .. })
        ));
        let trailing = format!(r#"{{"{k1}": "svc"}} x"#);
        assert!(matches!(
            parse_legacy_map(&trailing),
            Err(StoreError::LegacyJson(_))
        ));
    }

    #[test]
    fn legacy_errors_never_echo_the_key() {
        let secretish = "S".repeat(63);
        let err = parse_legacy_map(&format!(r#"{{"{secretish}": "svc"}}"#)).unwrap_err();
        assert!(!err.to_string().contains(&secretish));
        let err = parse_legacy_map(&format!(r#"{{"{secretish}": 5}}"#)).unwrap_err();
        assert!(!err.to_string().contains(&secretish), "{err}");
    }

    #[test]
    fn legacy_keys_take_their_service_permissions_and_never_override_records() {
        let legacy_key = ApiKey::parse(&"L".repeat(64)).unwrap();
        let mut doc = doc_with("tutor-service", &["GET /internal/users/*"], &[]);
        let entries =
            parse_legacy_map(&format!(r#"{{"{}": "tutor-service"}}"#, "L".repeat(64))).unwrap();
        let store = KeyStore::build(std::slice::from_ref(&doc), &entries).unwrap();
        let e = store.lookup(&legacy_key.hash()).unwrap();
        assert!(e.legacy);
        assert_eq!(e.grant.permissions.len(), 1);

        // Imported and then revoked: the record wins.
        let mut rec = KeyRecord::for_key(&legacy_key, UnixTime(1), None);
        rec.status = KeyStatus::Revoked;
        doc.keys.push(rec);
        let store = KeyStore::build(&[doc], &entries).unwrap();
        assert_eq!(
            store.lookup(&legacy_key.hash()).unwrap().status,
            KeyStatus::Revoked
        );

        // A legacy service with no document authenticates with no permissions.
        let store = KeyStore::build(&[], &entries).unwrap();
        assert!(store
            .lookup(&legacy_key.hash())
            .unwrap()
            .grant
            .permissions
            .is_empty());
        assert_eq!(
            store.legacy_without_permissions,
            vec!["tutor-service".to_string()]
        );
    }
}
