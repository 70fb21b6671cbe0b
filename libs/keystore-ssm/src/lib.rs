/*!
The service key store in SSM Parameter Store: the ONE owner of its layout and the one
reader and writer of everything in it, for the authorizer, the token issuer, svcauth
and the local gateway.

* [`StoreLayout`] derives every parameter name from the key store path (documents,
  revocation/expiry/brake markers, the key id index, the API registry and its name
  claims, the token key set); nobody else builds one.
* [`SsmKeyStore`]: service documents, markers and the index (below).
* [`ApiRegistry`]: API id → name, trusted only as a SecureString, one API per name.
* [`KeySetParameter`]: the token key set, trusted only as a SecureString.
* [`Standings`]: a calling service's standing (its document with every marker applied,
  `service_auth::Standing`), read per service and cached with the caller's TTL: the
  one standing computation of the authorizer's token path and of the issuer.

What verifiers trust to grant anything is a SecureString under the store's KMS key; a
`String` there is never trusted. Strings are markers (they only take access away) or
pointers (they only say where to look).

Documents: one `SecureString` parameter per calling service, `{path}/{service}`,
holding that service's [`ServiceDocument`] (permissions and hashed key records). Why:

* **Cold start**: the authorizer reads only what the first key needs: its key id
  index entry and revocation marker ([`SsmKeyStore::lookup_key`], one
  `GetParameters`), then the document the entry names ([`SsmKeyStore::read_service`],
  one `GetParameter`): two calls, whatever the number of services. The whole store
  ([`SsmKeyStore::load_store`], `GetParametersByPath`, 10 documents a call) is read
  only for keys the index cannot answer (legacy keys, a store written before it).
* **No lost writes**: SSM has no compare-and-swap, but it numbers every version. A
  writer reads version `v`, writes, and checks that its write became `v + 1`. If it
  did not, someone else wrote in between: the writer reads the versions it may have
  overwritten from the parameter's history, merges them ([`ServiceDocument::merge`]:
  keys united, revocations and earlier expiries kept), re-applies its own change and
  writes again. Two operators changing the same service at once both keep their
  change; operators changing different services never touch the same parameter.
  Retries back off with jitter. One window stays open without a compare-and-swap: a
  writer that overwrites another's version and then dies before merging leaves that
  change only in the parameter history. A writer re-reads once after its write to
  narrow it, and the change can be recovered from `GetParameterHistory`.

The original design's single JSON parameter (`{"<key>": "<service>"}`) can be read as
a legacy source: its keys are hashed as they are parsed and the clear values dropped.

**Markers** (revocations, scheduled ends and brakes: `markers.rs`): the version check
above repairs a lost write only while the
writer lives and the history can be read. A revocation must not depend on that, so
`keys revoke` first creates `{revoked path}/{key id}` (a `String` parameter, created
with `Overwrite=false`, never changed or deleted by svcauth), where the revoked path is
a sibling of the key path: `/svcauth/dev/keys` → `/svcauth/dev/revoked`. A load reads
the markers of every key it would accept ([`SsmKeyStore::markers_among`],
`GetParameters`, 10 names a call) and refuses those keys whatever any document or the
legacy map says. A marker only ever takes access away, so its type and value do not
matter: its existence is the revocation.

**Key id index**: `{index path}/{key id}` (a sibling like the markers:
`/svcauth/dev/index`), a `String` whose value names the service whose document holds
the key. [`SsmKeyStore::update_document`] creates the entries of every key of the
document it wrote ([`SsmKeyStore::ensure_index`], `Overwrite=false`): an entry is never
overwritten and never deleted (a revoked key's stays; its marker refuses it). An entry
only says where to look: the key is granted by the `SecureString` document holding its
hash, so a wrong entry costs a full load, never a grant.

Reads that SSM throttles are retried alone after a jittered, doubling pause
(`ThrottlingException`, a few times), so a load under contention goes on from the page
it was at instead of starting over.

**Per-document isolation**: [`SsmKeyStore::load_store`] fails only when SSM cannot be
read (the caller then keeps its last good store); a parameter that is read but cannot
be used (a `String` parameter, bad JSON, a newer schema, a key shared with another
document) is left out and its service refused, see
[`service_auth::store::KeyStore::build_isolated`].

This crate does I/O only; every decision about documents lives in `service-auth`.
*/
#![forbid(unsafe_code)]

pub use aws_sdk_ssm;

use std::collections::HashSet;
use std::time::Duration;

use aws_sdk_ssm::config::http::HttpResponse;
use aws_sdk_ssm::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_ssm::operation::put_parameter::builders::PutParameterFluentBuilder;
use aws_sdk_ssm::operation::put_parameter::PutParameterError;
use aws_sdk_ssm::types::{Parameter, ParameterTier, ParameterType};
use aws_sdk_ssm::Client;
use service_auth::record::{valid_service_name, DocumentError};
use service_auth::store::{
    parse_legacy_map, LegacyEntry, ReadDocument, RejectReason, Rejected, StoreError,
};
use service_auth::{KeyId, KeyStore, Markers, ServiceDocument, UnixTime};

mod keyset;
mod layout;
mod markers;
mod registry;
mod standing;

pub use keyset::{KeySetError, KeySetParameter, StoredKeySet};
pub use layout::{api_name_claims, default_key_path, StoreLayout, DEFAULT_ENV, DEFAULT_KEY_PATH};
pub use markers::{expiry_of, ExpiryMarked};
pub use registry::{valid_api_id, ApiEntry, ApiRegistry, RegisterError, Registered, Removed};
pub use standing::{StandingError, StandingRead, Standings};

/// How many times a conflicting write is merged and retried before giving up.
const MAX_WRITE_ATTEMPTS: usize = 8;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SsmStoreError {
    #[error("key store path {0:?} is invalid: it must start with `/`, not end with `/`, and use only a-z, A-Z, 0-9, `_`, `.`, `-` and `/`")]
    BadPath(String),
    #[error("access denied reading or writing {name}: {hint}")]
    AccessDenied { name: String, hint: &'static str },
    #[error("parameter {0} does not exist; check the name, the region and SVCAUTH_SSM_PATH / SVCAUTH_LEGACY_PARAMETER")]
    NotFound(String),
    #[error("parameter {name} must be a SecureString, found {found}; recreate it as SecureString")]
    NotSecure { name: String, found: String },
    #[error("parameter {name} is not a valid service document: {error}")]
    Document { name: String, error: DocumentError },
    #[error("parameter {name}: {error}")]
    Store { name: String, error: StoreError },
    #[error(transparent)]
    Build(#[from] StoreError),
    #[error("the store changed under {MAX_WRITE_ATTEMPTS} attempts in a row at {0}; nothing was lost, try again")]
    TooManyConflicts(String),
    #[error("SSM did not answer in time during {0}; check network access to SSM (VPC endpoint or NAT) and the region")]
    Timeout(&'static str),
    #[error("wrote version {written} of {name}, but it replaced version(s) {first}-{last} that another writer stored at the same time, and those could not be read back to merge ({reason}). Safe whatever happened: revocations, scheduled expiries (`keys revoke --after`, `rotate --grace`) and brakes (`tokens brake`) made there, each held by its marker that every authorizer and issuer read applies. May be lost: keys created there (their callers get 401: create them again), grant changes (a route granted there can be missing; a route or API removed there (`keys grant --remove`) can be back: check it first), the usage-plan key, and a second, earlier expiry of a key whose marker holds an earlier one's time. Compare `aws ssm get-parameter-history --name {name} --with-decryption` with `svcauth keys list --service {service}` and run the lost command again")]
    UnmergedOverwrite {
        name: String,
        service: String,
        written: i64,
        first: i64,
        last: i64,
        reason: String,
    },
    #[error("SSM call {operation} on {name} failed: {message}")]
    Sdk {
        operation: &'static str,
        name: String,
        message: String,
    },
}

/// Reads and writes service documents under one path.
#[derive(Debug, Clone)]
pub struct SsmKeyStore {
    client: Client,
    layout: StoreLayout,
    legacy_parameter: Option<String>,
    kms_key_id: Option<String>,
}

/// What one key id lookup ([`SsmKeyStore::lookup_key`]) found: which service the key
/// id's index entry names, and whether the key has a revocation marker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyLookup {
    /// The service named by `{index path}/{key id}`; `None` when there is no entry (or
    /// one that does not name a valid service: then it is not trusted for anything).
    pub service: Option<String>,
    pub revoked: bool,
    /// The key's expiry marker: it ends then at the latest.
    pub expires: Option<UnixTime>,
}

/// What [`SsmKeyStore::ensure_index`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IndexOutcome {
    /// Entries this call created.
    pub created: Vec<KeyId>,
    /// Entries that exist and name another service: never overwritten (see the crate
    /// docs); such a key is answered through the full load only.
    pub conflicts: Vec<(KeyId, String)>,
}

/// The extra parameter [`SsmKeyStore::lookup_key_with`] read: `Ok(None)` when it does
/// not exist, `Err` when it could not be decrypted (it is then not trusted).
pub type AlsoRead = Result<Option<aws_sdk_ssm::types::Parameter>, String>;

/// What a write did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriteOutcome {
    /// The version of the parameter that holds the write.
    pub version: i64,
    /// How many concurrent writes were merged in.
    pub merged_conflicts: usize,
    /// The document as written.
    pub document: ServiceDocument,
    /// The key id index entries written for it, or why they could not be (the
    /// document is written either way; a key without an entry still works through the
    /// authorizer's full load, and `svcauth keys reindex` repairs it).
    pub index: Result<IndexOutcome, String>,
}

impl SsmKeyStore {
    pub fn new(client: Client, path: &str) -> Result<Self, SsmStoreError> {
        Ok(Self {
            client,
            layout: StoreLayout::new(path)?,
            legacy_parameter: None,
            kms_key_id: None,
        })
    }

    /// Where everything of this store is.
    pub fn layout(&self) -> &StoreLayout {
        &self.layout
    }

    /// The API registry of this store (`apis_path`: another path than the layout's,
    /// `SVCAUTH_API_PATH`), writing with this store's KMS key.
    pub fn api_registry(&self, apis_path: Option<&str>) -> ApiRegistry {
        let path = apis_path.map_or_else(|| self.layout.apis(), str::to_owned);
        ApiRegistry::new(self.client.clone(), &path).with_kms_key_id(self.kms_key_id.clone())
    }

    /// The token key set of this store (`name`: another parameter than the layout's,
    /// `SVCAUTH_TOKEN_JWKS_PARAMETER`), writing with this store's KMS key.
    pub fn key_set(&self, name: Option<&str>) -> KeySetParameter {
        let name = name.map_or_else(|| self.layout.key_set(), str::to_owned);
        KeySetParameter::new(self.client.clone(), &name).with_kms_key_id(self.kms_key_id.clone())
    }

    /// Encrypt every `SecureString` this store writes with this KMS key (id, ARN or
    /// alias) instead of the account's default `alias/aws/ssm`. SSM re-encrypts a
    /// parameter with the default key on every overwrite that names none, so it is
    /// passed on every write.
    pub fn with_kms_key_id(mut self, key: Option<String>) -> Self {
        self.kms_key_id = key.filter(|k| !k.trim().is_empty());
        self
    }

    pub fn kms_key_id(&self) -> Option<&str> {
        self.kms_key_id.as_deref()
    }

    /// The revocation marker of a key.
    pub fn marker_name(&self, key_id: &KeyId) -> String {
        self.layout.revocation_marker(key_id)
    }

    /// The index entry of a key: a `String` parameter whose value names its service.
    pub fn index_name(&self, key_id: &KeyId) -> String {
        self.layout.index_entry(key_id)
    }

    /// Also read the original design's `{"<key>": "<service>"}` parameter.
    pub fn with_legacy_parameter(mut self, name: Option<String>) -> Self {
        self.legacy_parameter = name.filter(|n| !n.is_empty());
        self
    }

    pub fn path(&self) -> &str {
        self.layout.keys()
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The parameter holding `service`'s document.
    pub fn parameter_name(&self, service: &str) -> String {
        self.layout.document(service)
    }

    /// Loads and indexes the store as the authorizer uses it at `now`: every document
    /// under the path and the legacy map, judged one parameter at a time (see
    /// [`KeyStore::build_isolated`]), then the revocation markers of every key it would
    /// accept. Fails only when SSM cannot be read.
    ///
    /// Calls: `ceil(documents / 10)` `GetParametersByPath`, one `GetParameter` for the
    /// legacy map if configured, and `ceil(usable keys / 10)` `GetParameters` of their
    /// markers (plus one per 10 keys in a scheduled-end grace, for their
    /// immediate-revocation markers).
    pub async fn load_store(&self, now: UnixTime) -> Result<KeyStore, SsmStoreError> {
        let read = self.read_documents().await?;
        let legacy = self.read_legacy().await?;
        let mut store = KeyStore::build_isolated(read, legacy);
        let markers = self.markers_among(&store.usable_key_ids(now)).await?;
        store.apply_markers(&markers);
        Ok(store)
    }

    /// Every service document under the path, validated; the first unusable one is an
    /// error (what the CLI wants before it writes).
    pub async fn load_documents(&self) -> Result<Vec<ServiceDocument>, SsmStoreError> {
        self.read_documents()
            .await?
            .into_iter()
            .map(|r| {
                r.document.map_err(|reason| match reason {
                    RejectReason::NotSecureString(found) => SsmStoreError::NotSecure {
                        name: r.parameter,
                        found,
                    },
                    RejectReason::Document(error) => SsmStoreError::Document {
                        name: r.parameter,
                        error,
                    },
                    other => SsmStoreError::Store {
                        name: r.parameter,
                        error: StoreError::LegacyJson(other.to_string()),
                    },
                })
            })
            .collect()
    }

    /// Every parameter under the path, each parsed or with the reason it cannot be
    /// used. Fails only when SSM cannot be read.
    ///
    /// One parameter encrypted with a KMS key the caller may not use fails the whole
    /// `GetParametersByPath` with decryption; then the names are listed without
    /// decryption and read 10 at a time (one at a time in a batch that fails), so that
    /// parameter alone is rejected. That costs more calls, only while such a parameter
    /// exists.
    pub async fn read_documents(&self) -> Result<Vec<ReadDocument>, SsmStoreError> {
        match self.read_documents_by_path().await {
            Err(e) if is_decrypt_failure(&e) => self.read_documents_separately().await,
            other => other,
        }
    }

    async fn read_documents_by_path(&self) -> Result<Vec<ReadDocument>, SsmStoreError> {
        let params = self.list_path(true).await?;
        Ok(params.iter().map(|p| self.read_one(p)).collect())
    }

    async fn read_documents_separately(&self) -> Result<Vec<ReadDocument>, SsmStoreError> {
        let names: Vec<String> = self
            .list_path(false)
            .await?
            .into_iter()
            .filter_map(|p| p.name)
            .collect();
        let mut docs = Vec::with_capacity(names.len());
        for chunk in names.chunks(10) {
            let batch = self
                .client
                .get_parameters()
                .set_names(Some(chunk.to_vec()))
                .with_decryption(true)
                .send()
                .await
                .map_err(|e| sdk_error("GetParameters", self.path(), e));
            match batch {
                Ok(out) => docs.extend(out.parameters().iter().map(|p| self.read_one(p))),
                Err(e) if is_decrypt_failure(&e) => {
                    for name in chunk {
                        let one = self
                            .client
                            .get_parameter()
                            .name(name)
                            .with_decryption(true)
                            .send()
                            .await
                            .map_err(|e| sdk_error("GetParameter", name, e));
                        match one {
                            Ok(out) => docs.extend(out.parameter().map(|p| self.read_one(p))),
                            Err(e) if is_decrypt_failure(&e) => docs.push(ReadDocument {
                                parameter: name.clone(),
                                service: name.rsplit('/').next().unwrap_or_default().to_owned(),
                                document: Err(RejectReason::Undecryptable(
                                    "KMS refused to decrypt it".to_owned(),
                                )),
                            }),
                            // Deleted since it was listed: nothing to judge.
                            Err(SsmStoreError::NotFound(_)) => {}
                            Err(e) => return Err(e),
                        }
                    }
                }
                Err(e) => return Err(e),
            }
        }
        Ok(docs)
    }

    /// Every parameter directly under the path (values decrypted when
    /// `with_decryption`). Paged by hand so that a throttled page is retried alone
    /// (after a jittered pause), not the whole listing from its first page.
    async fn list_path(&self, with_decryption: bool) -> Result<Vec<Parameter>, SsmStoreError> {
        let mut params = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let page = retry_throttled(|| {
                self.client
                    .get_parameters_by_path()
                    .path(self.path())
                    .recursive(false)
                    .with_decryption(with_decryption)
                    .max_results(10)
                    .set_next_token(token.clone())
                    .send()
            })
            .await
            .map_err(|e| sdk_error("GetParametersByPath", self.path(), e))?;
            params.extend(page.parameters.unwrap_or_default());
            match page.next_token {
                Some(t) if !t.is_empty() => token = Some(t),
                _ => break,
            }
        }
        Ok(params)
    }

    /// One parameter read from under the path, judged.
    fn read_one(&self, p: &Parameter) -> ReadDocument {
        let name = p.name().unwrap_or_default();
        let service = name.rsplit('/').next().unwrap_or_default();
        let document = require_secure(name, p.r#type())
            .and_then(|()| self.parse_named(name, service, p.value().unwrap_or_default()))
            .map_err(|e| match e {
                SsmStoreError::NotSecure { found, .. } => RejectReason::NotSecureString(found),
                SsmStoreError::Document { error, .. } => RejectReason::Document(error),
                other => RejectReason::Document(DocumentError::Json(other.to_string())),
            });
        ReadDocument {
            parameter: name.to_owned(),
            service: service.to_owned(),
            document,
        }
    }

    /// The legacy map's keys, hashed. Empty when no legacy parameter is configured.
    pub async fn load_legacy(&self) -> Result<Vec<LegacyEntry>, SsmStoreError> {
        match self.read_legacy().await? {
            Ok(entries) => Ok(entries),
            Err(r) => Err(SsmStoreError::Store {
                name: r.parameter,
                error: StoreError::LegacyJson(r.reason.to_string()),
            }),
        }
    }

    /// The legacy map, or why its content cannot be used (a missing parameter, a
    /// `String` one, not a map of keys). Fails only when SSM cannot be read.
    pub async fn read_legacy(&self) -> Result<Result<Vec<LegacyEntry>, Rejected>, SsmStoreError> {
        let Some(name) = &self.legacy_parameter else {
            return Ok(Ok(Vec::new()));
        };
        let reject = |reason: RejectReason| {
            Ok(Err(Rejected {
                parameter: name.clone(),
                service: None,
                reason,
            }))
        };
        let out = match self
            .client
            .get_parameter()
            .name(name)
            .with_decryption(true)
            .send()
            .await
        {
            Ok(out) => out,
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_parameter_not_found()) =>
            {
                return reject(RejectReason::LegacyMap(format!(
                    "the legacy parameter {name} does not exist (SVCAUTH_LEGACY_PARAMETER)"
                )))
            }
            Err(e) => return Err(sdk_error("GetParameter", name, e)),
        };
        let Some(p) = out.parameter() else {
            return reject(RejectReason::LegacyMap(format!(
                "the legacy parameter {name} does not exist"
            )));
        };
        if let Err(SsmStoreError::NotSecure { found, .. }) = require_secure(name, p.r#type()) {
            return reject(RejectReason::NotSecureString(found));
        }
        match parse_legacy_map(p.value().unwrap_or_default()) {
            Ok(entries) => Ok(Ok(entries)),
            Err(error) => reject(RejectReason::LegacyMap(error.to_string())),
        }
    }

    /// Which of `ids` a marker revokes now (a marker holding a scheduled end does not,
    /// until its immediate-revocation marker exists: see [`SsmKeyStore::markers_among`]).
    pub async fn revoked_among(&self, ids: &[KeyId]) -> Result<HashSet<KeyId>, SsmStoreError> {
        Ok(self.markers_among(ids).await?.revoked)
    }

    /// Creates the `String` parameter `name`, never replacing one that exists:
    /// `Ok(true)` created, `Ok(false)` it was there already.
    async fn create_string(
        &self,
        name: &str,
        value: impl Into<String>,
        description: &'static str,
    ) -> Result<bool, SsmStoreError> {
        let put = self
            .client
            .put_parameter()
            .name(name)
            .value(value)
            .r#type(ParameterType::String)
            .tier(ParameterTier::Standard);
        put_next_version(put, None, || description)
            .await
            .map(|written| written.is_some())
            .map_err(|e| sdk_error("PutParameter", name, e))
    }

    /// What the store knows about one key id, in ONE `GetParameters` call: its index
    /// entry `{index path}/{key id}` and its markers (`{revoked path}/{key id}`, and
    /// `{key id}.now`). This is the first of the authorizer's two calls on a cold start
    /// (the second reads the named service's document).
    ///
    /// The entry only says where to look: a key is granted only by the `SecureString`
    /// document that holds its hash, so a wrong or forged entry can cost a lookup or
    /// a full load, never grant anything.
    pub async fn lookup_key(&self, key_id: &KeyId) -> Result<KeyLookup, SsmStoreError> {
        Ok(self.lookup_key_with(key_id, None).await?.0)
    }

    /// [`SsmKeyStore::lookup_key`], with one more parameter read in the same call,
    /// decrypted (the registry entry of the API the request is for, a SecureString, so
    /// a cold instance still makes two calls); the second value is that parameter,
    /// `None` when it does not exist.
    pub async fn lookup_key_with(
        &self,
        key_id: &KeyId,
        also: Option<&str>,
    ) -> Result<(KeyLookup, AlsoRead), SsmStoreError> {
        match self.lookup_key_and(key_id, also).await {
            Ok((found, extra)) => Ok((found, Ok(extra))),
            // KMS refused the extra parameter (encrypted with another key than the
            // store's): the key's own entries do not need it.
            Err(e) if also.is_some() && is_decrypt_failure(&e) => {
                let (found, _) = self.lookup_key_and(key_id, None).await?;
                Ok((found, Err(e.to_string())))
            }
            Err(e) => Err(e),
        }
    }

    async fn lookup_key_and(
        &self,
        key_id: &KeyId,
        also: Option<&str>,
    ) -> Result<(KeyLookup, Option<aws_sdk_ssm::types::Parameter>), SsmStoreError> {
        let index = self.index_name(key_id);
        let out = retry_throttled(|| {
            let mut call = self
                .client
                .get_parameters()
                .names(&index)
                .names(self.marker_name(key_id))
                .names(self.layout.immediate_marker(key_id))
                // Only the registry entry is a SecureString; the others come back as
                // they are.
                .with_decryption(also.is_some());
            if let Some(name) = also {
                call = call.names(name);
            }
            call.send()
        })
        .await
        .map_err(|e| sdk_error("GetParameters", &index, e))?;
        let extra = also.and_then(|name| {
            out.parameters()
                .iter()
                .find(|p| p.name() == Some(name))
                .cloned()
        });
        let mut markers = Markers::default();
        let mut found = KeyLookup {
            service: None,
            revoked: false,
            expires: None,
        };
        for p in out.parameters() {
            if p.name() == Some(index.as_str()) && p.r#type() == Some(&ParameterType::String) {
                let value = p.value().unwrap_or_default().trim();
                if valid_service_name(value) {
                    found.service = Some(value.to_owned());
                }
            } else {
                self.read_marker(std::slice::from_ref(key_id), p, &mut markers);
            }
        }
        found.revoked = markers.revoked.contains(key_id);
        found.expires = markers.expiries.get(key_id).copied();
        Ok((found, extra))
    }

    /// One service's document as a load reads it (judged, never an error for what it
    /// holds), in ONE `GetParameter` call with decryption; `None` when it does not
    /// exist. Fails only when SSM cannot be read.
    pub async fn read_service(&self, service: &str) -> Result<Option<ReadDocument>, SsmStoreError> {
        let name = self.checked_name(service)?;
        match retry_throttled(|| {
            self.client
                .get_parameter()
                .name(&name)
                .with_decryption(true)
                .send()
        })
        .await
        .map_err(|e| sdk_error("GetParameter", &name, e))
        {
            Ok(out) => Ok(out.parameter().map(|p| self.read_one(p))),
            Err(SsmStoreError::NotFound(_)) => Ok(None),
            Err(e) if is_decrypt_failure(&e) => Ok(Some(ReadDocument {
                parameter: name,
                service: service.to_owned(),
                document: Err(RejectReason::Undecryptable(
                    "KMS refused to decrypt it".to_owned(),
                )),
            })),
            Err(e) => Err(e),
        }
    }

    /// The index entries of `ids`: for each id, the service its entry names (`None`:
    /// no entry, or one that names no valid service). `GetParameters`, 10 a call.
    pub async fn index_entries(
        &self,
        ids: &[KeyId],
    ) -> Result<Vec<(KeyId, Option<String>)>, SsmStoreError> {
        let mut out = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(10) {
            let names: Vec<String> = chunk.iter().map(|id| self.index_name(id)).collect();
            let got = self
                .client
                .get_parameters()
                .set_names(Some(names.clone()))
                .with_decryption(false)
                .send()
                .await
                .map_err(|e| sdk_error("GetParameters", &self.layout.index(), e))?;
            for (id, name) in chunk.iter().zip(&names) {
                let service = got
                    .parameters()
                    .iter()
                    .find(|p| p.name() == Some(name.as_str()))
                    .and_then(|p| p.value())
                    .map(str::trim)
                    .filter(|v| valid_service_name(v))
                    .map(str::to_owned);
                out.push((id.clone(), service));
            }
        }
        Ok(out)
    }

    /// Creates the missing index entries of `doc`'s keys (create-only: an entry is
    /// never overwritten, and never deleted, a revoked key's included: its marker
    /// refuses it). An entry that names another service is reported, not changed.
    pub async fn ensure_index(&self, doc: &ServiceDocument) -> Result<IndexOutcome, SsmStoreError> {
        let ids: Vec<KeyId> = doc.keys.iter().map(|k| k.key_id.clone()).collect();
        let mut outcome = IndexOutcome::default();
        for (id, existing) in self.index_entries(&ids).await? {
            match existing {
                Some(s) if s == doc.service => {}
                Some(other) => outcome.conflicts.push((id, other)),
                None => match self.put_index_entry(&id, &doc.service).await? {
                    None => outcome.created.push(id),
                    Some(other) if other == doc.service => {}
                    Some(other) => outcome.conflicts.push((id, other)),
                },
            }
        }
        Ok(outcome)
    }

    /// Creates `{index path}/{key id}` = `service` (`Overwrite=false`). `None` when
    /// this call created it; else what the existing entry names (empty when that is no
    /// valid service name, e.g. an entry that is not a `String` parameter).
    async fn put_index_entry(
        &self,
        key_id: &KeyId,
        service: &str,
    ) -> Result<Option<String>, SsmStoreError> {
        let name = self.index_name(key_id);
        let created = self
            .create_string(
                &name,
                service,
                "svcauth key id index: which service document holds this key (not secret)",
            )
            .await?;
        if created {
            return Ok(None);
        }
        let entries = self.index_entries(std::slice::from_ref(key_id)).await?;
        Ok(Some(
            entries
                .into_iter()
                .next()
                .and_then(|(_, s)| s)
                .unwrap_or_default(),
        ))
    }

    /// One service's document and its version, `None` when the service has none.
    pub async fn read_document(
        &self,
        service: &str,
    ) -> Result<Option<(ServiceDocument, i64)>, SsmStoreError> {
        let name = self.checked_name(service)?;
        let Some(p) = get_optional(&self.client, &name, true, &name).await? else {
            return Ok(None);
        };
        require_secure(&name, p.r#type())?;
        let doc = self.parse_named(&name, service, p.value().unwrap_or_default())?;
        Ok(Some((doc, p.version())))
    }

    /// Applies `change` to `service`'s document and writes it so that no concurrent
    /// write is lost (see the crate docs). `change` may run more than once, on newer
    /// versions of the document, so it must be idempotent ("add this record", "revoke
    /// that key", "set these permissions"); an error from it aborts without writing.
    pub async fn update_document<E, F>(
        &self,
        service: &str,
        mut change: F,
    ) -> Result<Result<WriteOutcome, E>, SsmStoreError>
    where
        F: FnMut(&mut ServiceDocument) -> Result<(), E>,
    {
        let name = self.checked_name(service)?;
        let mut merged_conflicts = 0;
        let (mut doc, mut base_version) = match self.read_document(service).await? {
            Some((d, v)) => (d, Some(v)),
            None => (ServiceDocument::new(service, Vec::new()), None),
        };
        for attempt in 0..MAX_WRITE_ATTEMPTS {
            if let Err(e) = change(&mut doc) {
                return Ok(Err(e));
            }
            doc.validate().map_err(|error| SsmStoreError::Document {
                name: name.clone(),
                error,
            })?;
            let put = self
                .client
                .put_parameter()
                .name(&name)
                .value(doc.to_json())
                .r#type(ParameterType::SecureString)
                .set_key_id(self.kms_key_id.clone())
                .tier(ParameterTier::IntelligentTiering);
            let description = || {
                format!(
                    "svcauth key records of {service}; written by svcauth, read by the authorizer"
                )
            };
            let written = match put_next_version(put, base_version, description).await {
                Ok(Some(version)) => version,
                Ok(None) => {
                    // Someone created it first: start again from theirs.
                    merged_conflicts += 1;
                    let Some((mut theirs, v)) = self.read_document(service).await? else {
                        continue;
                    };
                    theirs.merge(&doc);
                    doc = theirs;
                    base_version = Some(v);
                    backoff(attempt).await;
                    continue;
                }
                Err(e) => return Err(sdk_error("PutParameter", &name, e)),
            };
            let expected = base_version.map_or(1, |v| v + 1);
            if written == expected {
                // A later writer may have overwritten this version and stopped before
                // merging it back. Re-read once: if the current version lacks our
                // change, go round again from it. (The window cannot be closed without
                // a compare-and-swap, which SSM lacks; the change is still in the
                // parameter history either way.)
                let Some((current, v)) = self.read_document(service).await? else {
                    return Err(SsmStoreError::NotFound(name));
                };
                let mut probe = current.clone();
                if v == written || (change(&mut probe).is_ok() && probe == current) {
                    // After the document: an entry never points at a document that
                    // does not hold its key yet (it would only cost a full load).
                    let index = self.ensure_index(&doc).await.map_err(|e| e.to_string());
                    return Ok(Ok(WriteOutcome {
                        version: written,
                        merged_conflicts,
                        document: doc,
                        index,
                    }));
                }
                merged_conflicts += 1;
                let mut next = current;
                next.merge(&doc);
                doc = next;
                base_version = Some(v);
                backoff(attempt).await;
                continue;
            }
            // Versions expected..written-1 were written by others and may have been
            // overwritten by ours: merge them and write again.
            let others = self
                .versions_between(&name, service, expected, written)
                .await?;
            merged_conflicts += others.len();
            let mut next = others.last().cloned().unwrap_or_else(|| doc.clone());
            for other in &others {
                next.merge(other);
            }
            next.merge(&doc);
            doc = next;
            base_version = Some(written);
            backoff(attempt).await;
        }
        Err(SsmStoreError::TooManyConflicts(name))
    }

    /// Writes a SecureString that holds a clear key for its owner (a calling service's
    /// own key parameter). `overwrite` false refuses to replace an existing one.
    pub async fn put_secret_parameter(
        &self,
        name: &str,
        secret: &str,
        overwrite: bool,
    ) -> Result<i64, SsmStoreError> {
        let out = self
            .client
            .put_parameter()
            .name(name)
            .value(secret)
            .r#type(ParameterType::SecureString)
            .set_key_id(self.kms_key_id.clone())
            .overwrite(overwrite)
            .send()
            .await
            .map_err(|e| sdk_error("PutParameter", name, e))?;
        Ok(out.version())
    }

    /// Versions `from..to` (exclusive) of a document, oldest first: the versions that
    /// our write (version `to`) may have overwritten. Every one of them must be read
    /// and parsed; anything less is [`SsmStoreError::UnmergedOverwrite`], never a
    /// silent partial merge.
    async fn versions_between(
        &self,
        name: &str,
        service: &str,
        from: i64,
        to: i64,
    ) -> Result<Vec<ServiceDocument>, SsmStoreError> {
        let unmerged = |reason: String| SsmStoreError::UnmergedOverwrite {
            name: name.to_owned(),
            service: service.to_owned(),
            written: to,
            first: from,
            last: to - 1,
            reason,
        };
        let mut out = Vec::new();
        let mut pages = self
            .client
            .get_parameter_history()
            .name(name)
            .with_decryption(true)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| {
                unmerged(format!(
                    "GetParameterHistory failed: {}",
                    sdk_error("GetParameterHistory", name, e)
                ))
            })?;
            for p in page.parameters() {
                if (from..to).contains(&p.version()) {
                    let doc = self
                        .parse_named(name, service, p.value().unwrap_or_default())
                        .map_err(|e| {
                            unmerged(format!("version {} does not parse: {e}", p.version()))
                        })?;
                    out.push((p.version(), doc));
                }
            }
        }
        out.sort_by_key(|(v, _)| *v);
        out.dedup_by_key(|(v, _)| *v);
        let missing: Vec<String> = (from..to)
            .filter(|v| !out.iter().any(|(got, _)| got == v))
            .map(|v| v.to_string())
            .collect();
        if !missing.is_empty() {
            return Err(unmerged(format!(
                "version(s) {} are no longer in the parameter history (SSM keeps the last 100)",
                missing.join(", ")
            )));
        }
        Ok(out.into_iter().map(|(_, d)| d).collect())
    }

    fn checked_name(&self, service: &str) -> Result<String, SsmStoreError> {
        if !valid_service_name(service) {
            return Err(SsmStoreError::Document {
                name: self.parameter_name("<service>"),
                error: DocumentError::ServiceName(service.to_owned()),
            });
        }
        Ok(self.parameter_name(service))
    }

    fn parse_named(
        &self,
        name: &str,
        service: &str,
        json: &str,
    ) -> Result<ServiceDocument, SsmStoreError> {
        let doc = ServiceDocument::from_json(json).map_err(|error| SsmStoreError::Document {
            name: name.to_owned(),
            error,
        })?;
        if doc.service != service {
            return Err(SsmStoreError::Document {
                name: name.to_owned(),
                error: DocumentError::WrongService {
                    expected: service.to_owned(),
                    found: doc.service,
                },
            });
        }
        Ok(doc)
    }
}

/// Sends `put` (a `PutParameter` naming the parameter, its value, type and tier) as
/// the version after `base_version`: replacing that version, or, with no base,
/// creating the parameter with `description()` and never replacing one that exists.
/// `Ok(None)`: someone created it first (read theirs and apply the change to it).
/// The version-checked writers (service documents here, the key set in svcauth) then
/// compare the version written with `base_version + 1`.
pub async fn put_next_version<D: Into<String>>(
    put: PutParameterFluentBuilder,
    base_version: Option<i64>,
    description: impl FnOnce() -> D,
) -> Result<Option<i64>, SdkError<PutParameterError, HttpResponse>> {
    let put = match base_version {
        Some(_) => put.overwrite(true),
        None => put.overwrite(false).description(description()),
    };
    match put.send().await {
        Ok(out) => Ok(Some(out.version())),
        Err(e)
            if e.as_service_error()
                .is_some_and(|s| s.is_parameter_already_exists()) =>
        {
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

/// A growing, jittered pause before writing again after a conflict, so writers that
/// collided do not collide again in lockstep: 12-25 ms, then doubling up to ~1.6 s.
async fn backoff(attempt: usize) {
    let base_ms = 25u64 << attempt.min(6);
    let mut b = [0u8; 2];
    let jitter = getrandom::fill(&mut b)
        .map(|_| u64::from(u16::from_le_bytes(b)) % (base_ms / 2 + 1))
        .unwrap_or(0);
    tokio::time::sleep(Duration::from_millis(base_ms / 2 + jitter)).await;
}

/// One parameter (`name` may carry a `:version` selector), `None` when it does not
/// exist: the one optional `GetParameter` every reader here goes through. Errors
/// name `label` (the parameter without its selector).
pub(crate) async fn get_optional(
    client: &Client,
    name: &str,
    decrypt: bool,
    label: &str,
) -> Result<Option<Parameter>, SsmStoreError> {
    match retry_throttled(|| {
        client
            .get_parameter()
            .name(name)
            .with_decryption(decrypt)
            .send()
    })
    .await
    {
        Ok(out) => Ok(out.parameter().cloned()),
        Err(e)
            if e.as_service_error()
                .is_some_and(|s| s.is_parameter_not_found()) =>
        {
            Ok(None)
        }
        Err(e) => Err(sdk_error("GetParameter", label, e)),
    }
}

/// Retries of one read SSM throttled, on top of the SDK's own attempts.
const THROTTLE_RETRIES: u32 = 4;

/// Runs one SSM read, and again after a jittered, doubling pause (12-25 ms, up to
/// 100-200 ms) each time SSM answers that the account's throughput is used up: the
/// instances that were throttled together come back spread out.
async fn retry_throttled<T, E, R, F, Fut>(mut call: F) -> Result<T, SdkError<E, R>>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, SdkError<E, R>>>,
    E: ProvideErrorMetadata,
{
    let mut attempt = 0;
    loop {
        match call().await {
            Err(e) if attempt < THROTTLE_RETRIES && is_throttling(e.code()) => {
                backoff(attempt as usize).await;
                attempt += 1;
            }
            other => return other,
        }
    }
}

fn is_throttling(code: Option<&str>) -> bool {
    matches!(
        code,
        Some(
            "ThrottlingException"
                | "Throttling"
                | "TooManyRequestsException"
                | "RequestLimitExceeded"
        )
    )
}

/// Whether an error may come from KMS refusing one parameter (SSM reports it as
/// access denied, or with KMS's own code).
fn is_decrypt_failure(e: &SsmStoreError) -> bool {
    match e {
        SsmStoreError::AccessDenied { .. } => true,
        SsmStoreError::Sdk { message, .. } => {
            message.contains("KMS") || message.contains("Kms") || message.contains("InvalidKeyId")
        }
        _ => false,
    }
}

fn require_secure(name: &str, t: Option<&ParameterType>) -> Result<(), SsmStoreError> {
    match t {
        Some(ParameterType::SecureString) => Ok(()),
        other => Err(SsmStoreError::NotSecure {
            name: name.to_owned(),
            found: other.map_or("nothing".to_owned(), |t| t.as_str().to_owned()),
        }),
    }
}

/// Turns an SDK error into one that says what to do. Never includes a parameter value
/// (SSM error messages name parameters, not values).
fn sdk_error<E, R>(operation: &'static str, name: &str, e: SdkError<E, R>) -> SsmStoreError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    if let SdkError::TimeoutError(_) = &e {
        return SsmStoreError::Timeout(operation);
    }
    match e.code() {
        Some("AccessDeniedException") => SsmStoreError::AccessDenied {
            name: name.to_owned(),
            hint: "the caller's IAM role needs the SSM and KMS permissions docs/keys.md lists for it (\"Who may do what\"): on the key path and its siblings revoked/, brakes/, index/, apis/, api-names/ and token/jwks, and kms:Decrypt/Encrypt through SSM (kms:ViaService) on the store's KMS key",
        },
        Some("ParameterNotFound") => SsmStoreError::NotFound(name.to_owned()),
        Some("UnrecognizedClientException" | "InvalidSignatureException" | "ExpiredTokenException") => SsmStoreError::Sdk {
            operation,
            name: name.to_owned(),
            message: "AWS rejected the credentials; refresh them (aws sso login, or check AWS_PROFILE) and the region".to_owned(),
        },
        _ => SsmStoreError::Sdk {
            operation,
            name: name.to_owned(),
            message: DisplayErrorContext(&e).to_string(),
        },
    }
}
