//! Key records and the per-service document they are stored in.
//!
//! One [`ServiceDocument`] per calling service holds its grants (which routes it may
//! call on which APIs), its optional usage-plan key and the hashed records of all its
//! keys (normally one, two during a rotation). Documents are JSON (schema 2):
//!
//! ```json
//! {"schema":2,"service":"tutor-service",
//!  "grants":[{"apis":["identity"],"routes":["GET /internal/users/*"]}],
//!  "keys":[{"keyId":"kid_0123456789abcdef","sha256":"<64 hex>",
//!           "created":"2026-11-29T10:00:00Z","expires":null,"status":"active"}]}
//! ```
//!
//! An API is named, not identified: the stack that attaches the authorizer to an API
//! writes the API's name under its id (see `docs/contracts.md`), so a grant never
//! holds a hand-copied API id. A schema-1 document (`"permissions": [...]`, no API)
//! still loads, but its permissions apply to **no** API until `svcauth keys migrate`
//! names the APIs they were meant for: an old document never grants every API.
//!
//! Changes to a key are monotonic (a key is added; its expiry only moves earlier; it
//! goes from active to revoked, never back), so two versions of a document written by
//! two operators at once merge without losing either change: [`ServiceDocument::merge`].

use std::collections::BTreeMap;
use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::key::{ApiKey, KeyHash, KeyId};
use crate::permissions::{PatternError, RoutePattern};

/// The document schema this crate writes. It also reads [`SCHEMA_UNSCOPED`].
pub const SCHEMA_VERSION: u32 = 2;
/// The schema before API scoping: `permissions` apply to no API until migrated.
pub const SCHEMA_UNSCOPED: u32 = 1;
/// Most keys one service may have at once. A record is about 230 bytes, so 32 fit
/// SSM's 8 KB advanced-tier limit (writes use Intelligent-Tiering, which moves a
/// parameter past 4 KB to the advanced tier by itself).
pub const MAX_KEYS_PER_SERVICE: usize = 32;
/// Most permissions (routes, over all grants) one service may have.
pub const MAX_PERMISSIONS: usize = 32;
/// Most APIs one grant may name.
pub const MAX_APIS_PER_GRANT: usize = 16;

/// Seconds since the Unix epoch. Time is passed in everywhere, never read inside the
/// decisions, so expiry and TTLs are testable without sleeping.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct UnixTime(pub u64);

impl UnixTime {
    pub fn now() -> Self {
        Self(
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0),
        )
    }

    pub fn plus(self, d: Duration) -> Self {
        Self(self.0.saturating_add(d.as_secs()))
    }

    pub fn seconds_until(self, later: UnixTime) -> i64 {
        later.0 as i64 - self.0 as i64
    }

    pub fn to_rfc3339(self) -> String {
        humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(self.0)).to_string()
    }

    pub fn parse_rfc3339(s: &str) -> Option<Self> {
        let t = humantime::parse_rfc3339(s).ok()?;
        Some(Self(t.duration_since(UNIX_EPOCH).ok()?.as_secs()))
    }
}

impl fmt::Debug for UnixTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_rfc3339())
    }
}

impl Serialize for UnixTime {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_rfc3339())
    }
}

impl<'de> Deserialize<'de> for UnixTime {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        UnixTime::parse_rfc3339(&s).ok_or_else(|| {
            serde::de::Error::custom("a time is RFC 3339 UTC, e.g. 2026-11-29T10:00:00Z")
        })
    }
}

impl Serialize for KeyHash {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_hex())
    }
}

impl<'de> Deserialize<'de> for KeyHash {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        KeyHash::from_hex(&s).ok_or_else(|| serde::de::Error::custom("sha256 is 64 hex digits"))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KeyStatus {
    Active,
    Revoked,
}

/// One key of a service, as stored: never the key itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct KeyRecord {
    pub key_id: KeyId,
    pub sha256: KeyHash,
    pub created: UnixTime,
    #[serde(default)]
    pub expires: Option<UnixTime>,
    pub status: KeyStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked_at: Option<UnixTime>,
}

impl KeyRecord {
    /// The record for a key: its hash and id, never the key.
    pub fn for_key(key: &ApiKey, created: UnixTime, expires: Option<UnixTime>) -> Self {
        Self {
            key_id: key.key_id(),
            sha256: key.hash(),
            created,
            expires,
            status: KeyStatus::Active,
            revoked_at: None,
        }
    }

    /// Whether the key is accepted at `now`.
    pub fn usable_at(&self, now: UnixTime) -> bool {
        self.status == KeyStatus::Active && self.expires.is_none_or(|e| now < e)
    }

    /// When the key stopped being accepted, if it has by `now`: its revocation or its
    /// expiry, whichever came first. A revocation with no recorded time counts from
    /// the key's creation, the earliest it can have happened.
    pub fn ended_at(&self, now: UnixTime) -> Option<UnixTime> {
        let revoked =
            (self.status == KeyStatus::Revoked).then(|| self.revoked_at.unwrap_or(self.created));
        let expired = self.expires.filter(|e| *e <= now);
        match (revoked, expired) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Joins two versions of the same key's record: revoked wins, the earlier expiry
    /// wins, the earlier creation time wins.
    fn merge(&mut self, other: &KeyRecord) {
        self.created = self.created.min(other.created);
        self.expires = match (self.expires, other.expires) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        if other.status == KeyStatus::Revoked {
            self.status = KeyStatus::Revoked;
            self.revoked_at = match (self.revoked_at, other.revoked_at) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
        }
    }
}

/// A parsed grant: its API names and its routes.
pub type ScopedRoutes = (Vec<String>, Vec<RoutePattern>);

/// Routes a service may call on some APIs, named as their stacks registered them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ApiGrant {
    pub apis: Vec<String>,
    pub routes: Vec<String>,
}

impl ApiGrant {
    pub fn new(apis: &[&str], routes: &[&str]) -> Self {
        Self {
            apis: apis.iter().map(|a| a.to_string()).collect(),
            routes: routes.iter().map(|r| r.to_string()).collect(),
        }
    }
}

/// Valid API names: the same rule as service names (they are SSM parameter values
/// and log fields), e.g. `identity`, `billing-internal`.
pub fn valid_api_name(name: &str) -> bool {
    valid_service_name(name)
}

/// Everything the store knows about one calling service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ServiceDocument {
    pub schema: u32,
    pub service: String,
    /// Schema 1 only: routes that name no API, so they apply to none (see the module
    /// doc). Empty, and not written, in schema 2.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub permissions: Vec<String>,
    /// Schema 2: which routes the service may call on which APIs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub grants: Vec<ApiGrant>,
    /// Value of the API Gateway API key tied to this service's usage plan; returned as
    /// `usageIdentifierKey`. Not a credential: with `apiKeySource: AUTHORIZER` callers
    /// never send it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage_plan_key: Option<String>,
    #[serde(default)]
    pub keys: Vec<KeyRecord>,
    /// Emergency brake for signed tokens: the service's tokens issued (`iat`) before
    /// this time are refused. Only ever moves later (see [`ServiceDocument::merge`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokens_not_before: Option<UnixTime>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DocumentError {
    #[error("not a service document: {0}")]
    Json(String),
    #[error("schema {0} is not supported (this build reads schemas {SCHEMA_UNSCOPED} and {SCHEMA_VERSION}); upgrade the authorizer")]
    Schema(u32),
    #[error("service {0:?}: a schema-2 document keeps its routes in `grants`, each naming its APIs; `permissions` belongs to schema 1 (run `svcauth keys migrate`)")]
    UnscopedPermissions(String),
    #[error("service {0:?}: a schema-1 document has no `grants`; write schema 2 (run `svcauth keys migrate`)")]
    GrantsInSchema1(String),
    #[error("grant {index} of service {service:?} must name 1-{MAX_APIS_PER_GRANT} APIs (1-64 of a-z, 0-9, -) and at least one route")]
    Grant { service: String, index: usize },
    #[error("service name {0:?} is invalid: use 1-64 characters of a-z, 0-9 and -, starting with a letter or digit")]
    ServiceName(String),
    #[error("document names service {found:?} but is stored as {expected:?}")]
    WrongService { expected: String, found: String },
    #[error("permission {index} of service {service:?}: {error}")]
    Permission {
        service: String,
        index: usize,
        error: PatternError,
    },
    #[error("service {0:?} has more than {MAX_PERMISSIONS} permissions")]
    TooManyPermissions(String),
    #[error(
        "service {0:?} has more than {MAX_KEYS_PER_SERVICE} keys; remove revoked or expired ones"
    )]
    TooManyKeys(String),
    #[error("service {service:?} lists key {key_id} twice")]
    DuplicateKeyId { service: String, key_id: KeyId },
    #[error("usage-plan key of service {0:?} is empty or longer than 128 characters")]
    UsagePlanKey(String),
}

/// Valid service names double as SSM path segments and log fields.
pub fn valid_service_name(name: &str) -> bool {
    let b = name.as_bytes();
    !b.is_empty()
        && b.len() <= 64
        && b[0].is_ascii_alphanumeric()
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
}

impl ServiceDocument {
    /// A schema-2 document with these grants and no key.
    pub fn new(service: &str, grants: Vec<ApiGrant>) -> Self {
        Self {
            schema: SCHEMA_VERSION,
            service: service.to_owned(),
            permissions: Vec::new(),
            grants,
            usage_plan_key: None,
            keys: Vec::new(),
            tokens_not_before: None,
        }
    }

    /// Whether this is a schema-1 document, whose permissions apply to no API.
    pub fn is_unscoped(&self) -> bool {
        self.schema == SCHEMA_UNSCOPED
    }

    /// Turns a schema-1 document into schema 2, its permissions granted on `apis`.
    /// Does nothing to a schema-2 document (so it is idempotent).
    pub fn migrate(&mut self, apis: &[String]) {
        if !self.is_unscoped() {
            return;
        }
        self.schema = SCHEMA_VERSION;
        let routes = std::mem::take(&mut self.permissions);
        if !routes.is_empty() && !apis.is_empty() {
            self.grants = vec![ApiGrant {
                apis: apis.to_vec(),
                routes,
            }];
        }
    }

    /// Grants `routes` on `api` (schema 2), adding only what is missing, so doing it
    /// twice changes nothing. Routes go to the grant that names exactly this API.
    pub fn grant(&mut self, api: &str, routes: &[String]) {
        let i = match self.grants.iter().position(|g| g.apis == [api]) {
            Some(i) => i,
            None => {
                self.grants.push(ApiGrant {
                    apis: vec![api.to_owned()],
                    routes: Vec::new(),
                });
                self.grants.len() - 1
            }
        };
        for r in routes {
            if !self.grants[i].routes.contains(r) {
                self.grants[i].routes.push(r.clone());
            }
        }
    }

    /// Removes `api` from every grant (dropping grants left with no API).
    pub fn ungrant(&mut self, api: &str) {
        for g in &mut self.grants {
            g.apis.retain(|a| a != api);
        }
        self.grants.retain(|g| !g.apis.is_empty());
    }

    /// The APIs any grant names, sorted, without repeats.
    pub fn api_names(&self) -> Vec<&str> {
        let mut out: Vec<&str> = self
            .grants
            .iter()
            .flat_map(|g| g.apis.iter().map(String::as_str))
            .collect();
        out.sort_unstable();
        out.dedup();
        out
    }

    /// Parses and validates a stored document.
    pub fn from_json(json: &str) -> Result<Self, DocumentError> {
        // serde_json's message names the line/column and the expected field, never
        // a value, so it is safe to surface.
        let doc: ServiceDocument =
            serde_json::from_str(json).map_err(|e| DocumentError::Json(e.to_string()))?;
        doc.validate()?;
        Ok(doc)
    }

    pub fn to_json(&self) -> String {
        // Serialising these plain types cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Checks everything the authorizer relies on.
    pub fn validate(&self) -> Result<(), DocumentError> {
        match self.schema {
            SCHEMA_VERSION if !self.permissions.is_empty() => {
                return Err(DocumentError::UnscopedPermissions(self.service.clone()))
            }
            SCHEMA_UNSCOPED if !self.grants.is_empty() => {
                return Err(DocumentError::GrantsInSchema1(self.service.clone()))
            }
            SCHEMA_VERSION | SCHEMA_UNSCOPED => {}
            other => return Err(DocumentError::Schema(other)),
        }
        if !valid_service_name(&self.service) {
            return Err(DocumentError::ServiceName(self.service.clone()));
        }
        self.route_patterns()?;
        self.scoped_routes()?;
        if self.keys.len() > MAX_KEYS_PER_SERVICE {
            return Err(DocumentError::TooManyKeys(self.service.clone()));
        }
        if let Some(k) = &self.usage_plan_key {
            if k.is_empty() || k.len() > 128 || !k.bytes().all(|b| b.is_ascii_graphic()) {
                return Err(DocumentError::UsagePlanKey(self.service.clone()));
            }
        }
        let mut seen = std::collections::BTreeSet::new();
        for k in &self.keys {
            if !seen.insert(&k.key_id) {
                return Err(DocumentError::DuplicateKeyId {
                    service: self.service.clone(),
                    key_id: k.key_id.clone(),
                });
            }
        }
        Ok(())
    }

    /// The parsed grants: each grant's APIs with its routes. Schema-1 permissions
    /// are not here: they name no API (see [`ServiceDocument::route_patterns`]).
    pub fn scoped_routes(&self) -> Result<Vec<ScopedRoutes>, DocumentError> {
        let total: usize = self.grants.iter().map(|g| g.routes.len()).sum();
        if total > MAX_PERMISSIONS {
            return Err(DocumentError::TooManyPermissions(self.service.clone()));
        }
        let mut index = 0;
        let mut out = Vec::with_capacity(self.grants.len());
        for (g_index, g) in self.grants.iter().enumerate() {
            if g.apis.is_empty()
                || g.apis.len() > MAX_APIS_PER_GRANT
                || g.routes.is_empty()
                || !g.apis.iter().all(|a| valid_api_name(a))
            {
                return Err(DocumentError::Grant {
                    service: self.service.clone(),
                    index: g_index,
                });
            }
            let mut routes = Vec::with_capacity(g.routes.len());
            for r in &g.routes {
                routes.push(
                    RoutePattern::parse(r).map_err(|error| DocumentError::Permission {
                        service: self.service.clone(),
                        index,
                        error,
                    })?,
                );
                index += 1;
            }
            out.push((g.apis.clone(), routes));
        }
        Ok(out)
    }

    /// The parsed schema-1 permissions (which apply to no API).
    pub fn route_patterns(&self) -> Result<Vec<RoutePattern>, DocumentError> {
        if self.permissions.len() > MAX_PERMISSIONS {
            return Err(DocumentError::TooManyPermissions(self.service.clone()));
        }
        self.permissions
            .iter()
            .enumerate()
            .map(|(index, p)| {
                RoutePattern::parse(p).map_err(|error| DocumentError::Permission {
                    service: self.service.clone(),
                    index,
                    error,
                })
            })
            .collect()
    }

    pub fn key(&self, key_id: &KeyId) -> Option<&KeyRecord> {
        self.keys.iter().find(|k| &k.key_id == key_id)
    }

    pub fn key_mut(&mut self, key_id: &KeyId) -> Option<&mut KeyRecord> {
        self.keys.iter_mut().find(|k| &k.key_id == key_id)
    }

    /// Removes the records of keys that had stopped being accepted (revoked or expired)
    /// by `cutoff`, and returns their ids. A key still usable at `now` is never removed.
    ///
    /// Safe beside concurrent writers: a writer that read this document before the
    /// key ended merges the versions it overwrote from the store's history, which
    /// include the revocation or expiry, so a removed record can come back only as
    /// the ended record it was, never as a usable one.
    pub fn remove_ended(&mut self, now: UnixTime, cutoff: UnixTime) -> Vec<KeyId> {
        let mut removed = Vec::new();
        self.keys.retain(|k| {
            let ended = k.ended_at(now).is_some_and(|t| t <= cutoff);
            if ended {
                removed.push(k.key_id.clone());
            }
            !ended
        });
        removed
    }

    /// Folds another version of this document into this one without losing a key or
    /// a revocation from either: keys are united by id and each key's record joined
    /// (revoked wins, earlier expiry wins). Service-level fields (schema, permissions,
    /// grants, usage-plan key) are taken from `self`, the version being written.
    pub fn merge(&mut self, other: &ServiceDocument) {
        let mut by_id: BTreeMap<KeyId, KeyRecord> =
            self.keys.drain(..).map(|k| (k.key_id.clone(), k)).collect();
        for k in &other.keys {
            by_id
                .entry(k.key_id.clone())
                .and_modify(|mine| mine.merge(k))
                .or_insert_with(|| k.clone());
        }
        let mut keys: Vec<KeyRecord> = by_id.into_values().collect();
        keys.sort_by(|a, b| a.created.cmp(&b.created).then(a.key_id.cmp(&b.key_id)));
        self.keys = keys;
        // A brake pulled in either version stays pulled, at the later time.
        self.tokens_not_before = self.tokens_not_before.max(other.tokens_not_before);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(key: &ApiKey, created: u64) -> KeyRecord {
        KeyRecord::for_key(key, UnixTime(created), None)
    }

    #[test]
    fn documents_round_trip_and_hold_no_secret() {
        let key = ApiKey::generate(Some("dev")).unwrap();
        let mut doc = ServiceDocument::new(
            "tutor-service",
            vec![ApiGrant::new(&["identity"], &["GET /internal/users/*"])],
        );
        doc.keys.push(KeyRecord::for_key(
            &key,
            UnixTime(1_700_000_000),
            Some(UnixTime(1_800_000_000)),
        ));
        let json = doc.to_json();
        assert!(!json.contains(key.expose_secret()));
        assert!(json.contains(&key.hash().to_hex()));
        assert!(json.contains("\"created\":\"2023-11-14T22:13:20Z\""));
        assert_eq!(ServiceDocument::from_json(&json).unwrap(), doc);
    }

    #[test]
    fn the_token_brake_is_optional_and_survives_a_merge() {
        let plain = r#"{"schema":1,"service":"tutor-service","permissions":[],"keys":[]}"#;
        let doc = ServiceDocument::from_json(plain).unwrap();
        assert_eq!(doc.tokens_not_before, None);
        assert!(!doc.to_json().contains("tokensNotBefore"));
        let braked = r#"{"schema":1,"service":"tutor-service","keys":[],"tokensNotBefore":"2026-12-01T10:00:00Z"}"#;
        let braked = ServiceDocument::from_json(braked).unwrap();
        assert_eq!(
            braked.tokens_not_before,
            UnixTime::parse_rfc3339("2026-12-01T10:00:00Z")
        );
        assert_eq!(
            ServiceDocument::from_json(&braked.to_json()).unwrap(),
            braked
        );
        // A concurrent writer that never saw the brake does not release it, and of two
        // brakes the later one stays.
        let mut unaware = doc.clone();
        unaware.merge(&braked);
        assert_eq!(unaware.tokens_not_before, braked.tokens_not_before);
        let mut later = braked.clone();
        later.tokens_not_before = Some(UnixTime(braked.tokens_not_before.unwrap().0 + 60));
        let mut earlier = braked.clone();
        earlier.merge(&later);
        assert_eq!(earlier.tokens_not_before, later.tokens_not_before);
    }

    #[test]
    fn broken_documents_are_rejected_with_a_reason() {
        let ok = r#"{"schema":1,"service":"tutor-service","permissions":["GET /x"],"keys":[]}"#;
        assert!(ServiceDocument::from_json(ok).is_ok());
        let cases = [
            ("{", "not a service document"),
            (r#"{"schema":3,"service":"a","keys":[]}"#, "schema 3"),
            (
                r#"{"schema":2,"service":"a","permissions":["GET /x"]}"#,
                "keeps its routes in `grants`",
            ),
            (
                r#"{"schema":1,"service":"a","grants":[{"apis":["x"],"routes":["GET /x"]}]}"#,
                "schema-1 document has no `grants`",
            ),
            (
                r#"{"schema":2,"service":"a","grants":[{"apis":[],"routes":["GET /x"]}]}"#,
                "grant 0",
            ),
            (
                r#"{"schema":2,"service":"a","grants":[{"apis":["Identity"],"routes":["GET /x"]}]}"#,
                "grant 0",
            ),
            (
                r#"{"schema":2,"service":"a","grants":[{"apis":["x"],"routes":[]}]}"#,
                "grant 0",
            ),
            (
                r#"{"schema":2,"service":"a","grants":[{"apis":["x"],"routes":["GET /x"]},{"apis":["y"],"routes":["GET /internal/users/{id/profile"]}]}"#,
                "permission 1",
            ),
            (
                r#"{"schema":2,"service":"a","grants":[{"apis":["x"],"routes":["GET /x"],"extra":1}]}"#,
                "unknown field",
            ),
            (
                r#"{"schema":1,"service":"Bad Name","keys":[]}"#,
                "service name",
            ),
            (
                r#"{"schema":1,"service":"a","permissions":["FETCH /x"],"keys":[]}"#,
                "permission 0",
            ),
            (
                r#"{"schema":1,"service":"a","extra":true}"#,
                "unknown field",
            ),
            (
                r#"{"schema":1,"service":"a","keys":[{"keyId":"kid_0123456789abcdef","sha256":"zz","created":"2026-01-01T00:00:00Z","status":"active"}]}"#,
                "64 hex",
            ),
            (
                r#"{"schema":1,"service":"a","keys":[{"keyId":"kid_0123456789abcdef","sha256":"ffe054fe7ae0cb6dc65c3af9b61d5209f439851db43d0ba5997337df154668eb","created":"yesterday","status":"active"}]}"#,
                "RFC 3339",
            ),
            (
                r#"{"schema":1,"service":"a","keys":[{"keyId":"kid_0123456789abcdef","sha256":"ffe054fe7ae0cb6dc65c3af9b61d5209f439851db43d0ba5997337df154668eb","created":"2026-01-01T00:00:00Z","status":"maybe"}]}"#,
                "unknown variant",
            ),
        ];
        for (json, want) in cases {
            let err = ServiceDocument::from_json(json).unwrap_err().to_string();
            assert!(err.contains(want), "{json}: {err}");
        }
    }

    /// Issue 9 item 3, at the document: a malformed pattern fails the document's parse
    /// with a typed error (the loader refuses that service only, the CLI writes nothing).
    #[test]
    fn a_document_with_a_malformed_pattern_is_refused() {
        for json in [
            r#"{"schema":1,"service":"a","permissions":["GET /internal/users/{id/profile"]}"#,
            r#"{"schema":2,"service":"a","grants":[{"apis":["identity"],"routes":["GET /internal//users"]}]}"#,
        ] {
            assert!(
                matches!(
                    ServiceDocument::from_json(json),
                    Err(DocumentError::Permission { index: 0, .. })
                ),
                "{json}"
            );
        }
    }

    #[test]
    fn schema_1_migrates_to_grants_on_the_named_apis_and_only_once() {
        let json = r#"{"schema":1,"service":"admin-service","permissions":["* /internal/*"]}"#;
        let mut doc = ServiceDocument::from_json(json).unwrap();
        assert!(doc.is_unscoped());
        assert!(doc.scoped_routes().unwrap().is_empty(), "applies to no API");
        doc.migrate(&["identity".into(), "tutor".into()]);
        assert_eq!(doc.schema, SCHEMA_VERSION);
        assert!(doc.permissions.is_empty());
        assert_eq!(
            doc.grants,
            vec![ApiGrant::new(&["identity", "tutor"], &["* /internal/*"])]
        );
        let again = doc.clone();
        doc.migrate(&["other".into()]);
        assert_eq!(doc, again);
        let written = doc.to_json();
        assert!(written.contains(r#""schema":2"#), "{written}");
        assert!(!written.contains("permissions"), "{written}");
        assert_eq!(ServiceDocument::from_json(&written).unwrap(), doc);
    }

    #[test]
    fn grant_and_ungrant_are_idempotent() {
        let mut doc = ServiceDocument::new(
            "tutor-service",
            vec![ApiGrant::new(&["identity"], &["GET /internal/users/*"])],
        );
        doc.grant("billing", &["GET /internal/billing/*".into()]);
        doc.grant("billing", &["GET /internal/billing/*".into()]);
        doc.grant("identity", &["GET /internal/users/*".into()]);
        assert_eq!(
            doc.grants,
            vec![
                ApiGrant::new(&["identity"], &["GET /internal/users/*"]),
                ApiGrant::new(&["billing"], &["GET /internal/billing/*"]),
            ]
        );
        assert_eq!(doc.api_names(), ["billing", "identity"]);
        doc.validate().unwrap();
        doc.ungrant("billing");
        doc.ungrant("billing");
        assert_eq!(doc.api_names(), ["identity"]);
    }

    #[test]
    fn duplicate_key_ids_and_too_many_keys_are_rejected() {
        let key = ApiKey::generate(None).unwrap();
        let mut doc = ServiceDocument::new("a", vec![]);
        doc.keys.push(record(&key, 1));
        doc.keys.push(record(&key, 2));
        assert!(matches!(
            doc.validate(),
            Err(DocumentError::DuplicateKeyId { .. })
        ));
        doc.keys.clear();
        for _ in 0..=MAX_KEYS_PER_SERVICE {
            doc.keys.push(record(&ApiKey::generate(None).unwrap(), 1));
        }
        assert!(matches!(doc.validate(), Err(DocumentError::TooManyKeys(_))));
    }

    #[test]
    fn usable_at_honours_status_and_expiry() {
        let key = ApiKey::generate(None).unwrap();
        let mut r = KeyRecord::for_key(&key, UnixTime(100), Some(UnixTime(200)));
        assert!(r.usable_at(UnixTime(199)));
        assert!(!r.usable_at(UnixTime(200)));
        r.expires = None;
        assert!(r.usable_at(UnixTime(10_000)));
        r.status = KeyStatus::Revoked;
        assert!(!r.usable_at(UnixTime(150)));
    }

    #[test]
    fn concurrent_versions_merge_without_losing_a_change() {
        let old = ApiKey::generate(None).unwrap();
        let a_new = ApiKey::generate(None).unwrap();
        let b_new = ApiKey::generate(None).unwrap();
        let mut base = ServiceDocument::new("svc", vec![ApiGrant::new(&["api"], &["GET /x"])]);
        base.keys.push(record(&old, 10));

        // Operator A adds a key; operator B revokes the old key and adds another.
        let mut a = base.clone();
        a.keys.push(record(&a_new, 20));
        let mut b = base.clone();
        b.keys[0].status = KeyStatus::Revoked;
        b.keys[0].revoked_at = Some(UnixTime(30));
        b.keys.push(record(&b_new, 30));

        let mut merged = a.clone();
        merged.merge(&b);
        assert_eq!(merged.keys.len(), 3);
        assert_eq!(
            merged.key(&old.key_id()).unwrap().status,
            KeyStatus::Revoked
        );
        assert!(merged.key(&a_new.key_id()).is_some());
        assert!(merged.key(&b_new.key_id()).is_some());

        // Merge is order-independent for keys.
        let mut other_way = b.clone();
        other_way.merge(&a);
        assert_eq!(other_way.keys, merged.keys);
    }

    #[test]
    fn merge_keeps_the_earlier_expiry() {
        let k = ApiKey::generate(None).unwrap();
        let mut a = ServiceDocument::new("svc", vec![]);
        a.keys
            .push(KeyRecord::for_key(&k, UnixTime(1), Some(UnixTime(500))));
        let mut b = a.clone();
        b.keys[0].expires = Some(UnixTime(300));
        a.merge(&b);
        assert_eq!(a.keys[0].expires, Some(UnixTime(300)));
        let mut c = ServiceDocument::new("svc", vec![]);
        c.keys.push(KeyRecord::for_key(&k, UnixTime(1), None));
        c.merge(&a);
        assert_eq!(c.keys[0].expires, Some(UnixTime(300)));
    }

    #[test]
    fn a_key_ends_at_its_revocation_or_its_expiry_whichever_came_first() {
        let k = ApiKey::generate(None).unwrap();
        let now = UnixTime(1_000);
        let mut r = KeyRecord::for_key(&k, UnixTime(100), None);
        assert_eq!(r.ended_at(now), None);
        r.expires = Some(UnixTime(2_000));
        assert_eq!(r.ended_at(now), None, "expires later");
        r.expires = Some(UnixTime(1_000));
        assert_eq!(r.ended_at(now), Some(UnixTime(1_000)), "expires now");
        assert!(!r.usable_at(now));
        r.status = KeyStatus::Revoked;
        r.revoked_at = Some(UnixTime(600));
        assert_eq!(r.ended_at(now), Some(UnixTime(600)));
        r.revoked_at = None;
        assert_eq!(
            r.ended_at(now),
            Some(UnixTime(100)),
            "unknown revocation time"
        );
        r.expires = Some(UnixTime(50));
        assert_eq!(r.ended_at(now), Some(UnixTime(50)));
    }

    #[test]
    fn remove_ended_keeps_usable_keys_and_recently_ended_ones() {
        let keys: Vec<ApiKey> = (0..4).map(|_| ApiKey::generate(None).unwrap()).collect();
        let now = UnixTime(10_000);
        let mut doc = ServiceDocument::new("svc", vec![]);
        // usable, never expires
        doc.keys.push(record(&keys[0], 1));
        // revoked long ago
        let mut old = record(&keys[1], 1);
        old.status = KeyStatus::Revoked;
        old.revoked_at = Some(UnixTime(100));
        doc.keys.push(old);
        // expired long ago
        doc.keys.push(KeyRecord::for_key(
            &keys[2],
            UnixTime(1),
            Some(UnixTime(200)),
        ));
        // revoked after the cutoff
        let mut recent = record(&keys[3], 1);
        recent.status = KeyStatus::Revoked;
        recent.revoked_at = Some(UnixTime(9_000));
        doc.keys.push(recent);

        let removed = doc.remove_ended(now, UnixTime(5_000));
        assert_eq!(removed, vec![keys[1].key_id(), keys[2].key_id()]);
        let left: Vec<KeyId> = doc.keys.iter().map(|k| k.key_id.clone()).collect();
        assert_eq!(left, vec![keys[0].key_id(), keys[3].key_id()]);
        // A cutoff at `now` also takes the recent one, never the usable one.
        assert_eq!(doc.remove_ended(now, now), vec![keys[3].key_id()]);
        assert_eq!(doc.remove_ended(now, now), Vec::<KeyId>::new());
        assert_eq!(doc.keys.len(), 1);
        assert!(doc.keys[0].usable_at(now));
    }

    #[test]
    fn a_removed_record_comes_back_from_a_merge_only_as_ended() {
        // An operator prunes a revoked key while another, who read the document before
        // the revocation, writes: the writer merges the versions it overwrote.
        let k = ApiKey::generate(None).unwrap();
        let mut before_revocation = ServiceDocument::new("svc", vec![]);
        before_revocation.keys.push(record(&k, 1));
        let mut revoked = before_revocation.clone();
        revoked.keys[0].status = KeyStatus::Revoked;
        revoked.keys[0].revoked_at = Some(UnixTime(100));
        let mut pruned = revoked.clone();
        pruned.remove_ended(UnixTime(10_000), UnixTime(5_000));
        assert!(pruned.keys.is_empty());

        let mut writer = before_revocation.clone();
        for overwritten in [&revoked, &pruned] {
            writer.merge(overwritten);
        }
        assert_eq!(writer.keys.len(), 1);
        assert!(!writer.keys[0].usable_at(UnixTime(10_000)));
    }

    #[test]
    fn service_names() {
        assert!(valid_service_name("tutor-service"));
        assert!(valid_service_name("a1"));
        assert!(!valid_service_name(""));
        assert!(!valid_service_name("-a"));
        assert!(!valid_service_name("Tutor"));
        assert!(!valid_service_name("a/b"));
        assert!(!valid_service_name(&"a".repeat(65)));
    }
}
