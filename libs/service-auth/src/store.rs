//! The in-memory key store: every known key, indexed by its SHA-256.
//!
//! Two ways to build it:
//!
//! * [`KeyStore::build`], all-or-nothing: one malformed document fails the whole build
//!   (the store file, the development store, the CLI's checks before a write).
//! * [`KeyStore::build_isolated`], per document (what the authorizer does with SSM): a
//!   parameter that cannot be used is left out with its reason ([`Rejected`]) and its
//!   service is refused (fail closed for that service only, its legacy keys included),
//!   while every other service keeps working. Whether the store could be *read* at all
//!   is the caller's business: a read that fails is not a rejected document.
//!
//! Markers (create-only parameters beside the documents, see [`Markers`]) are applied
//! after the build with [`KeyStore::revoke_ids`] and [`KeyStore::expire_ids`]: a key
//! with a revocation marker is refused, and a key with an expiry marker ends at that
//! time at the latest, whatever any document or the legacy map says.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use crate::key::{ApiKey, KeyHash, KeyId};
use crate::permissions::RoutePattern;
use crate::record::{valid_service_name, DocumentError, KeyStatus, ServiceDocument, UnixTime};

/// What a key grants: shared by all keys of one service.
#[derive(Debug, PartialEq, Eq)]
pub struct ServiceGrant {
    pub service: String,
    /// The routes granted on each API the service's document names, one entry per API.
    pub apis: Vec<ApiRoutes>,
    /// Permissions of a schema-1 document: they name no API, so no policy uses them
    /// (kept for tools and logs, which say to run `svcauth keys migrate`).
    pub unscoped: Vec<RoutePattern>,
    pub usage_plan_key: Option<String>,
    /// The service's emergency brake for signed tokens: tokens issued before it are
    /// refused (the document's `tokensNotBefore`).
    pub tokens_not_before: Option<UnixTime>,
}

/// The routes a service may call on one API.
#[derive(Debug, PartialEq, Eq)]
pub struct ApiRoutes {
    pub api: String,
    pub routes: Vec<RoutePattern>,
}

impl ServiceGrant {
    /// A grant with no route on any API (a legacy key whose service has no document).
    pub fn nothing(service: &str) -> Self {
        Self {
            service: service.to_owned(),
            apis: Vec::new(),
            unscoped: Vec::new(),
            usage_plan_key: None,
            tokens_not_before: None,
        }
    }

    fn from_document(doc: &ServiceDocument) -> Result<Self, DocumentError> {
        let mut apis: Vec<ApiRoutes> = Vec::new();
        for (names, routes) in doc.scoped_routes()? {
            for name in names {
                let i = match apis.iter().position(|a| a.api == name) {
                    Some(i) => i,
                    None => {
                        apis.push(ApiRoutes {
                            api: name,
                            routes: Vec::new(),
                        });
                        apis.len() - 1
                    }
                };
                for r in &routes {
                    if !apis[i].routes.contains(r) {
                        apis[i].routes.push(r.clone());
                    }
                }
            }
        }
        Ok(Self {
            service: doc.service.clone(),
            apis,
            unscoped: doc.route_patterns()?,
            usage_plan_key: doc.usage_plan_key.clone(),
            tokens_not_before: doc.tokens_not_before,
        })
    }

    /// Where `api`'s routes are in [`ServiceGrant::apis`]; `None` when the service may
    /// call nothing there. A handful of short string compares: services name few APIs.
    pub fn api_index(&self, api: &str) -> Option<usize> {
        self.apis.iter().position(|a| a.api == api)
    }

    /// The routes at an index from [`ServiceGrant::api_index`]; none for `None`.
    pub fn routes_at(&self, index: Option<usize>) -> &[RoutePattern] {
        index
            .and_then(|i| self.apis.get(i))
            .map_or(&[], |a| a.routes.as_slice())
    }

    /// The routes the service may call on `api`.
    pub fn routes_on(&self, api: &str) -> &[RoutePattern] {
        self.routes_at(self.api_index(api))
    }
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

/// What the store's markers say, beside the documents: create-only parameters that no
/// later write of a document can undo, so a change that must hold even when a
/// concurrent writer overwrites the document (and crashes before merging it back)
/// is also written as a marker:
///
/// * `revoked`: keys refused for good (`keys revoke`, `rotate --grace 0`, `prune`);
/// * `expiries`: keys that end at a time at the latest (`keys revoke --after`,
///   `rotate --grace`);
/// * `brake`: the latest brake of the service a standing is about (`tokens brake`).
///
/// A marker only ever takes access away (a key refused, or refused earlier; tokens
/// refused): applied to a document or a store, each one can only make it stricter.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Markers {
    pub revoked: HashSet<KeyId>,
    pub expiries: HashMap<KeyId, UnixTime>,
    pub brake: Option<UnixTime>,
}

impl Markers {
    /// Applies the markers to a document: revoked keys revoked, expiries moved earlier,
    /// the brake moved later. Never the other way round.
    pub fn apply_to_document(&self, doc: &mut ServiceDocument) {
        for k in &mut doc.keys {
            if self.revoked.contains(&k.key_id) && k.status != KeyStatus::Revoked {
                k.status = KeyStatus::Revoked;
            }
            if let Some(&t) = self.expiries.get(&k.key_id) {
                if k.expires.is_none_or(|mine| t < mine) {
                    k.expires = Some(t);
                }
            }
        }
        doc.tokens_not_before = doc.tokens_not_before.max(self.brake);
    }

    pub fn is_empty(&self) -> bool {
        self.revoked.is_empty() && self.expiries.is_empty() && self.brake.is_none()
    }
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
    /// `index` counts from 0; messages count entries from 1, as people do. A message
    /// never holds a value of the map: a map stored the wrong way round
    /// (`{"<service>": "<key>"}`) has its keys where the services should be, so the
    /// service is named only when it is a valid service name that is not a key.
    #[error("legacy entry {}{}: the key is not a valid API key ({reason}){}", .index + 1,
        .service.as_ref().map(|s| format!(" (of service {s:?})")).unwrap_or_default(),
        if *.reversed { "; its value is an API key, so the map looks stored the wrong way round: it must be {\"<key>\": \"<service>\"}" } else { "" })]
    LegacyKey {
        index: usize,
        service: Option<String>,
        reason: crate::key::KeyFormatError,
        /// The entry's value parses as an API key.
        reversed: bool,
    },
    #[error("legacy entry {}: the service name is not valid (1-64 of a-z, 0-9 and -; the value is not shown: it could be a key)", .index + 1)]
    LegacyService { index: usize },
}

/// Why a parameter of the store was left out of a load. The messages name no value
/// (documents hold hashes only, and legacy-map errors never echo a key).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RejectReason {
    #[error("it is a {0} parameter, not a SecureString: anyone who can write a plain parameter could grant a key, so it is never trusted; rewrite it with svcauth")]
    NotSecureString(String),
    #[error("{0}")]
    Document(DocumentError),
    #[error("it holds key {key_id}, which the document of {other:?} holds too: both services are refused until one record is removed")]
    SharedKey { key_id: KeyId, other: String },
    #[error("a second document names service {0:?}: both are refused")]
    DuplicateService(String),
    #[error("{0}; every legacy key is refused, the service documents are not affected")]
    LegacyMap(String),
    #[error("it cannot be decrypted with a KMS key the authorizer may use ({0}): rewrite it with svcauth and --kms-key-id set to the stack's SsmKmsKeyArn")]
    Undecryptable(String),
}

impl RejectReason {
    /// Stable code for logs.
    pub fn code(&self) -> &'static str {
        match self {
            Self::NotSecureString(_) => "not_secure_string",
            Self::Document(DocumentError::Schema(_)) => "unsupported_schema",
            Self::Document(_) => "invalid_document",
            Self::SharedKey { .. } => "shared_key",
            Self::DuplicateService(_) => "duplicate_service",
            Self::LegacyMap(_) => "legacy_map",
            Self::Undecryptable(_) => "kms_key",
        }
    }
}

/// A parameter the load left out, the service refused because of it, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejected {
    /// The parameter's name (or the file entry).
    pub parameter: String,
    /// The service refused because of it; `None` for the legacy map as a whole.
    pub service: Option<String>,
    pub reason: RejectReason,
}

/// One document parameter as a load read it: parsed, or why not.
#[derive(Debug, Clone)]
pub struct ReadDocument {
    pub parameter: String,
    /// The service its name stands for (the last segment of the parameter name).
    pub service: String,
    pub document: Result<ServiceDocument, RejectReason>,
}

/// Every key the authorizer accepts, by hash.
#[derive(Debug, Default, Clone)]
pub struct KeyStore {
    by_hash: HashMap<KeyHash, KeyEntry>,
    /// Key id → hash, for the standing of a token's proof key (a token names the key
    /// it was obtained with by id only).
    by_key_id: HashMap<KeyId, KeyHash>,
    /// Every service with a document or a legacy key, for the standing of a token's
    /// service (its brake).
    by_service: HashMap<String, Arc<ServiceGrant>>,
    /// Every service's document as loaded, for a token's standing
    /// ([`crate::standing::Standing::from_store`]).
    documents: HashMap<String, Arc<ServiceDocument>>,
    /// Services named only by legacy keys: they authenticate but have no permissions.
    pub legacy_without_permissions: Vec<String>,
    /// Services whose document is still schema 1: their keys authenticate, but their
    /// permissions name no API, so every policy for them allows nothing until
    /// `svcauth keys migrate` names the APIs.
    pub unscoped_services: Vec<String>,
    /// What [`KeyStore::build_isolated`] left out; empty for [`KeyStore::build`].
    pub rejected: Vec<Rejected>,
}

impl KeyStore {
    /// Builds the index. Document records win over legacy entries for the same key, so
    /// a legacy key that was imported and later revoked stays revoked.
    pub fn build(docs: &[ServiceDocument], legacy: &[LegacyEntry]) -> Result<Self, StoreError> {
        let mut by_hash =
            HashMap::with_capacity(docs.iter().map(|d| d.keys.len()).sum::<usize>() + legacy.len());
        let mut by_key_id = HashMap::with_capacity(by_hash.capacity());
        let mut grants: HashMap<&str, Arc<ServiceGrant>> = HashMap::with_capacity(docs.len());
        let mut documents = HashMap::with_capacity(docs.len());
        let mut unscoped_services = Vec::new();
        for doc in docs {
            doc.validate()?;
            documents.insert(doc.service.clone(), Arc::new(doc.clone()));
            let grant = Arc::new(ServiceGrant::from_document(doc)?);
            if doc.is_unscoped() {
                unscoped_services.push(doc.service.clone());
            }
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
                by_key_id.insert(rec.key_id.clone(), rec.sha256);
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
                    let g = Arc::new(ServiceGrant::nothing(&entry.service));
                    grants.insert(entry.service.as_str(), g.clone());
                    g
                }
            };
            by_key_id.insert(entry.key_id.clone(), entry.hash);
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
            by_key_id,
            by_service: grants
                .into_iter()
                .map(|(name, g)| (name.to_owned(), g))
                .collect(),
            documents,
            legacy_without_permissions,
            unscoped_services,
            rejected: Vec::new(),
        })
    }

    /// Builds the index document by document: what cannot be used is left out and
    /// reported in [`KeyStore::rejected`], and the services it concerns are refused
    /// (their keys are unknown, their legacy keys dropped); every other service works.
    ///
    /// `legacy` is the legacy map, or why it cannot be used (then every legacy key is
    /// refused).
    pub fn build_isolated(
        read: Vec<ReadDocument>,
        legacy: Result<Vec<LegacyEntry>, Rejected>,
    ) -> Self {
        let mut rejected = Vec::new();
        let mut refused: HashSet<String> = HashSet::new();
        let mut good: Vec<(String, ServiceDocument)> = Vec::with_capacity(read.len());
        for r in read {
            match r.document.and_then(|d| {
                d.validate().map_err(RejectReason::Document)?;
                Ok(d)
            }) {
                Ok(d) => good.push((r.parameter, d)),
                Err(reason) => {
                    refused.insert(r.service.clone());
                    rejected.push(Rejected {
                        parameter: r.parameter,
                        service: Some(r.service),
                        reason,
                    });
                }
            }
        }
        // Conflicts between documents: neither side can be trusted, so both go.
        let mut conflict: Vec<Option<RejectReason>> = vec![None; good.len()];
        let mut owner_of_service: HashMap<&str, usize> = HashMap::new();
        let mut owner_of_hash: HashMap<KeyHash, usize> = HashMap::new();
        for (i, (_, doc)) in good.iter().enumerate() {
            if let Some(&j) = owner_of_service.get(doc.service.as_str()) {
                conflict[i] = Some(RejectReason::DuplicateService(doc.service.clone()));
                conflict[j] = Some(RejectReason::DuplicateService(doc.service.clone()));
            } else {
                owner_of_service.insert(doc.service.as_str(), i);
            }
            for rec in &doc.keys {
                if let Some(&j) = owner_of_hash.get(&rec.sha256) {
                    conflict[i].get_or_insert_with(|| RejectReason::SharedKey {
                        key_id: rec.key_id.clone(),
                        other: good[j].1.service.clone(),
                    });
                    conflict[j].get_or_insert_with(|| RejectReason::SharedKey {
                        key_id: rec.key_id.clone(),
                        other: doc.service.clone(),
                    });
                } else {
                    owner_of_hash.insert(rec.sha256, i);
                }
            }
        }
        // Hashes named by a refused document never come in through the legacy map.
        let mut tainted: HashSet<KeyHash> = HashSet::new();
        let mut docs = Vec::with_capacity(good.len());
        for ((parameter, doc), conflict) in good.into_iter().zip(conflict) {
            match conflict {
                None => docs.push(doc),
                Some(reason) => {
                    tainted.extend(doc.keys.iter().map(|k| k.sha256));
                    refused.insert(doc.service.clone());
                    rejected.push(Rejected {
                        parameter,
                        service: Some(doc.service),
                        reason,
                    });
                }
            }
        }
        let legacy = match legacy {
            Ok(entries) => entries
                .into_iter()
                .filter(|e| !refused.contains(&e.service) && !tainted.contains(&e.hash))
                .collect(),
            Err(r) => {
                rejected.push(r);
                Vec::new()
            }
        };
        // What is left has no duplicate and every document is valid, so this cannot
        // fail; if it ever did, refusing everything is the safe answer.
        let mut store = Self::build(&docs, &legacy).unwrap_or_else(|e| {
            let mut s = Self::default();
            s.rejected.push(Rejected {
                parameter: "(whole store)".into(),
                service: None,
                reason: RejectReason::LegacyMap(e.to_string()),
            });
            s
        });
        rejected.append(&mut store.rejected);
        store.rejected = rejected;
        store
    }

    /// Ids of the keys accepted at `now`: the only ones whose revocation markers a
    /// load has to read (a key that is unknown, revoked or expired is refused anyway).
    pub fn usable_key_ids(&self, now: UnixTime) -> Vec<KeyId> {
        let mut ids: Vec<KeyId> = self
            .by_hash
            .values()
            .filter(|e| e.status == KeyStatus::Active && e.expires.is_none_or(|t| now < t))
            .map(|e| e.key_id.clone())
            .collect();
        ids.sort();
        ids.dedup();
        ids
    }

    /// Applies revocation markers: every key whose id is in `revoked` is refused as
    /// revoked, whatever its document or the legacy map says. Returns how many keys
    /// it changed.
    pub fn revoke_ids(&mut self, revoked: &HashSet<KeyId>) -> usize {
        let mut changed = 0;
        for e in self.by_hash.values_mut() {
            if e.status != KeyStatus::Revoked && revoked.contains(&e.key_id) {
                e.status = KeyStatus::Revoked;
                changed += 1;
            }
        }
        changed
    }

    /// Applies expiry markers: every key whose id is in `expiries` ends at that time at
    /// the latest, whatever its document says. Returns how many keys it changed.
    pub fn expire_ids(&mut self, expiries: &HashMap<KeyId, UnixTime>) -> usize {
        let mut changed = 0;
        for e in self.by_hash.values_mut() {
            if let Some(&t) = expiries.get(&e.key_id) {
                if e.expires.is_none_or(|mine| t < mine) {
                    e.expires = Some(t);
                    changed += 1;
                }
            }
        }
        changed
    }

    /// Applies every key marker of `markers` (revocations and expiries).
    pub fn apply_markers(&mut self, markers: &Markers) {
        self.revoke_ids(&markers.revoked);
        self.expire_ids(&markers.expiries);
    }

    /// A service's document as loaded (markers not applied), by name.
    pub fn document(&self, service: &str) -> Option<&Arc<ServiceDocument>> {
        self.documents.get(service)
    }

    pub fn lookup(&self, hash: &KeyHash) -> Option<&KeyEntry> {
        self.by_hash.get(hash)
    }

    /// The key with this (non-secret) id, as [`KeyStore::lookup`] would find it.
    pub fn key_by_id(&self, key_id: &str) -> Option<&KeyEntry> {
        let id = KeyId::parse(key_id)?;
        self.by_hash.get(self.by_key_id.get(&id)?)
    }

    /// A service's grant (and brake), by name.
    pub fn service(&self, name: &str) -> Option<&Arc<ServiceGrant>> {
        self.by_service.get(name)
    }

    pub fn key_count(&self) -> usize {
        self.by_hash.len()
    }

    pub fn service_count(&self) -> usize {
        self.by_service.len()
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
    // serde_json's messages can quote a value (`invalid type: string "<key>"`): only
    // the kind of error and its position are reported.
    let entries = de
        .deserialize_map(V)
        .and_then(|e| de.end().map(|_| e))
        .map_err(|e| {
            let what = match e.classify() {
                serde_json::error::Category::Data => "not an object of key to service name",
                serde_json::error::Category::Eof => "cut short",
                _ => "not valid JSON",
            };
            StoreError::LegacyJson(format!("{what} (line {}, column {})", e.line(), e.column()))
        })?;
    entries
        .0
        .into_iter()
        .enumerate()
        .map(|(index, (key, service))| {
            // The value is looked at only to say what is wrong, never quoted unless it
            // is a service name and not a key.
            let value_is_key = ApiKey::parse(&service).is_ok();
            let key = ApiKey::parse(&key).map_err(|reason| StoreError::LegacyKey {
                index,
                service: (valid_service_name(&service) && !value_is_key).then(|| service.clone()),
                reason,
                reversed: value_is_key,
            })?;
            if !valid_service_name(&service) || value_is_key {
                return Err(StoreError::LegacyService { index });
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
    use crate::record::{ApiGrant, KeyRecord};

    fn doc_with(service: &str, perms: &[&str], keys: &[&ApiKey]) -> ServiceDocument {
        let grants = if perms.is_empty() {
            Vec::new()
        } else {
            vec![ApiGrant::new(&["identity"], perms)]
        };
        let mut d = ServiceDocument::new(service, grants);
        for k in keys {
            d.keys.push(KeyRecord::for_key(k, UnixTime(1), None));
        }
        d
    }

    #[test]
    fn builds_an_index_by_hash() {
        let a = ApiKey::generate(None).unwrap();
        let b = ApiKey::generate(None).unwrap();
        let mut braked = doc_with("b", &[], &[&b]);
        braked.tokens_not_before = Some(UnixTime(50));
        let store = KeyStore::build(&[doc_with("a", &["GET /x"], &[&a]), braked], &[]).unwrap();
        assert_eq!(store.key_count(), 2);
        assert_eq!(store.service_count(), 2);
        let e = store.lookup(&a.hash()).unwrap();
        assert_eq!(e.grant.service, "a");
        assert_eq!(e.key_id, a.key_id());
        assert!(store
            .lookup(&ApiKey::generate(None).unwrap().hash())
            .is_none());
        // By key id and by service: what a token's standing is read from.
        let by_id = store.key_by_id(a.key_id().as_str()).unwrap();
        assert_eq!(by_id.grant.service, "a");
        assert!(store.key_by_id("kid_0000000000000000").is_none());
        assert!(store.key_by_id("not a key id").is_none());
        assert_eq!(store.service("b").unwrap().service, "b");
        assert_eq!(
            store.service("b").unwrap().tokens_not_before,
            Some(UnixTime(50))
        );
        assert_eq!(store.service("a").unwrap().tokens_not_before, None);
        assert!(store.service("c").is_none());
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
        bad.grants.push(ApiGrant::new(&["identity"], &["nope"]));
        assert!(matches!(
            KeyStore::build(&[bad], &[]),
            Err(StoreError::Document(_))
        ));
    }

    #[test]
    fn grants_are_indexed_by_api_and_schema_1_permissions_apply_to_none() {
        let k = ApiKey::generate(None).unwrap();
        let old = ApiKey::generate(None).unwrap();
        let mut admin = doc_with("admin-service", &[], &[&k]);
        admin.grants = vec![
            ApiGrant::new(&["identity", "tutor"], &["* /internal/*"]),
            ApiGrant::new(&["identity"], &["GET /x", "* /internal/*"]),
        ];
        let unscoped = ServiceDocument::from_json(&format!(
            r#"{{"schema":1,"service":"old-service","permissions":["* /internal/*"],"keys":[{}]}}"#,
            serde_json::to_string(&KeyRecord::for_key(&old, UnixTime(1), None)).unwrap()
        ))
        .unwrap();
        let store = KeyStore::build(&[admin, unscoped], &[]).unwrap();
        let g = &store.lookup(&k.hash()).unwrap().grant;
        let shown = |api: &str| -> Vec<String> {
            g.routes_on(api).iter().map(ToString::to_string).collect()
        };
        assert_eq!(shown("identity"), ["* /internal/*", "GET /x"]);
        assert_eq!(shown("tutor"), ["* /internal/*"]);
        assert!(shown("billing").is_empty());
        let g = &store.lookup(&old.hash()).unwrap().grant;
        assert!(g.apis.is_empty());
        assert_eq!(g.unscoped.len(), 1);
        assert_eq!(store.unscoped_services, ["old-service"]);
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

    /// Issue 19 A4: a map stored the wrong way round, or a key where the map should
    /// be, is reported by position and reason, never with a value.
    #[test]
    fn a_malformed_legacy_map_is_reported_by_position_never_by_value() {
        let key = ApiKey::generate(Some("prod")).unwrap();
        let legacy_key = "Q".repeat(64);
        let cases = [
            // Reversed: the keys are where the services should be.
            format!(r#"{{"tutor-service": "{}"}}"#, key.expose_secret()),
            format!(r#"{{"tutor-service": "{legacy_key}"}}"#),
            // A key and a key.
            format!(r#"{{"{legacy_key}": "{}"}}"#, key.expose_secret()),
            // A key alone, or in a list, where the map should be.
            format!(r#""{}""#, key.expose_secret()),
            format!(r#"["{legacy_key}"]"#),
            // A key as a value after a good entry.
            format!(
                r#"{{"{legacy_key}": "svc", "x": "{}"}}"#,
                key.expose_secret()
            ),
        ];
        for json in &cases {
            let err = parse_legacy_map(json).unwrap_err().to_string();
            assert!(
                !err.contains(key.expose_secret()) && !err.contains(&legacy_key),
                "a key in {err:?}"
            );
            assert!(err.contains("line") || err.contains("entry"), "{err}");
        }
        let reversed = parse_legacy_map(&cases[0]).unwrap_err();
        assert!(matches!(
            reversed,
            StoreError::LegacyKey {
                index: 0,
                service: None,
                reversed: true,
                ..
            }
        ));
        assert!(
            reversed.to_string().contains("wrong way round"),
            "{reversed}"
        );
        assert!(matches!(
            parse_legacy_map(&cases[2]),
            Err(StoreError::LegacyService { index: 0 })
        ));
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
        assert_eq!(e.grant.routes_on("identity").len(), 1);

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
            .apis
            .is_empty());
        assert_eq!(
            store.legacy_without_permissions,
            vec!["tutor-service".to_string()]
        );
    }

    fn read(doc: &ServiceDocument) -> ReadDocument {
        ReadDocument {
            parameter: format!("/p/{}", doc.service),
            service: doc.service.clone(),
            document: Ok(doc.clone()),
        }
    }

    #[test]
    fn one_bad_document_refuses_only_its_service_and_its_legacy_keys() {
        let a = ApiKey::generate(None).unwrap();
        let b = ApiKey::generate(None).unwrap();
        let legacy_b = "L".repeat(64);
        let legacy = parse_legacy_map(&format!(r#"{{"{legacy_b}": "b"}}"#)).unwrap();
        let store = KeyStore::build_isolated(
            vec![
                read(&doc_with("a", &["GET /x"], &[&a])),
                ReadDocument {
                    parameter: "/p/b".into(),
                    service: "b".into(),
                    document: Err(RejectReason::NotSecureString("String".into())),
                },
                ReadDocument {
                    parameter: "/p/c".into(),
                    service: "c".into(),
                    document: ServiceDocument::from_json(&format!(
                        r#"{{"schema":{},"service":"c"}}"#,
                        crate::record::SCHEMA_VERSION + 1
                    ))
                    .map_err(RejectReason::Document),
                },
            ],
            Ok(legacy),
        );
        assert!(store.lookup(&a.hash()).is_some(), "a keeps working");
        assert!(store.lookup(&b.hash()).is_none());
        assert!(
            store
                .lookup(&ApiKey::parse(&legacy_b).unwrap().hash())
                .is_none(),
            "b's legacy keys are refused with it"
        );
        let codes: Vec<(&str, Option<&str>)> = store
            .rejected
            .iter()
            .map(|r| (r.reason.code(), r.service.as_deref()))
            .collect();
        assert_eq!(
            codes,
            vec![
                ("not_secure_string", Some("b")),
                ("unsupported_schema", Some("c"))
            ]
        );
    }

    #[test]
    fn a_key_in_two_documents_refuses_both_services_and_no_other() {
        let shared = ApiKey::generate(None).unwrap();
        let a2 = ApiKey::generate(None).unwrap();
        let c = ApiKey::generate(None).unwrap();
        let store = KeyStore::build_isolated(
            vec![
                read(&doc_with("a", &[], &[&shared, &a2])),
                read(&doc_with("b", &[], &[&shared])),
                read(&doc_with("c", &[], &[&c])),
            ],
            Ok(Vec::new()),
        );
        assert!(store.lookup(&shared.hash()).is_none());
        assert!(store.lookup(&a2.hash()).is_none(), "all of a is refused");
        assert!(store.lookup(&c.hash()).is_some());
        assert_eq!(store.rejected.len(), 2);
        assert!(store
            .rejected
            .iter()
            .all(|r| r.reason.code() == "shared_key"));
        // A broken legacy map refuses the legacy keys only.
        let store = KeyStore::build_isolated(
            vec![read(&doc_with("c", &[], &[&c]))],
            Err(Rejected {
                parameter: "/legacy".into(),
                service: None,
                reason: RejectReason::LegacyMap("not a map".into()),
            }),
        );
        assert!(store.lookup(&c.hash()).is_some());
        assert_eq!(store.rejected[0].reason.code(), "legacy_map");
    }

    #[test]
    fn revocation_markers_win_over_documents_and_the_legacy_map() {
        let a = ApiKey::generate(None).unwrap();
        let expired = ApiKey::generate(None).unwrap();
        let legacy_key = ApiKey::parse(&"M".repeat(64)).unwrap();
        let mut doc = doc_with("a", &[], &[&a]);
        doc.keys.push(KeyRecord::for_key(
            &expired,
            UnixTime(1),
            Some(UnixTime(50)),
        ));
        let legacy = parse_legacy_map(&format!(r#"{{"{}": "a"}}"#, "M".repeat(64))).unwrap();
        let mut store = KeyStore::build_isolated(vec![read(&doc)], Ok(legacy));
        let mut usable = store.usable_key_ids(UnixTime(100));
        usable.sort();
        let mut expected = vec![a.key_id(), legacy_key.key_id()];
        expected.sort();
        assert_eq!(usable, expected, "only usable keys need a marker lookup");
        let marked: HashSet<KeyId> = [a.key_id(), legacy_key.key_id()].into_iter().collect();
        assert_eq!(store.revoke_ids(&marked), 2);
        assert_eq!(store.lookup(&a.hash()).unwrap().status, KeyStatus::Revoked);
        assert_eq!(
            store.lookup(&legacy_key.hash()).unwrap().status,
            KeyStatus::Revoked
        );
        assert!(store.usable_key_ids(UnixTime(100)).is_empty());
    }
}
