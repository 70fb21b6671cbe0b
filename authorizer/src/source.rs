//! Where the key store is loaded from, and the cached store the handler reads.
//!
//! Two ways to get the store a key is decided with (SSM):
//!
//! * **By key** (the cold path): the presented key's id -> ONE `GetParameters` of its
//!   index entry and its revocation and expiry markers (and the API's registry entry
//!   when due) -> ONE `GetParameter` of the document of
//!   the service the entry names -> decide. Two SSM calls before a cold instance
//!   answers, whatever the number of services. Each key id and each service document
//!   is cached with the store's TTL and stale grace.
//! * **Full load** (`GetParametersByPath` of every document, the legacy map, the
//!   markers of every usable key), single-flight, for the keys the index cannot
//!   answer: legacy keys, keys written before the index, and keys nobody issued. Once
//!   it is loaded and fresh it answers every key from memory, unknown ones included,
//!   so a flood of invented keys costs at most one lookup and one full load per
//!   instance per TTL.
//!
//! Lookups are rationed per instance ([`TokenBucket`]): when the ration is spent the
//! request waits for the full load instead of calling SSM again. Every SSM failure
//! makes the next call wait a jittered, doubling pause ([`Backoff`]).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use keystore_ssm::{KeyLookup, SsmKeyStore, SsmStoreError};
use service_auth::cache::{random_unit, Action, Backoff, RefreshPolicy, Slot, TokenBucket};
use service_auth::dev::parse_documents;
use service_auth::record::DocumentError;
use service_auth::store::StoreError;
use service_auth::{KeyId, KeyStore, Markers, MethodArn, PresentedKey, UnixTime};
use tokio::sync::Mutex;

/// Key id lookups an instance may make at once before it waits for the full load.
pub const LOOKUP_BURST: u32 = 10;
/// ...and how fast that ration comes back. A full load costs `ceil(services / 10)`
/// calls and then answers every key for the TTL, so beyond a handful of distinct new
/// keys a second it is the cheaper way anyway.
pub const LOOKUPS_PER_SECOND: f64 = 1.0;
/// First pause after a failed SSM read; it doubles up to the retry interval.
pub const BACKOFF_BASE: Duration = Duration::from_millis(100);
/// Key ids remembered at most (then forgotten all at once: they are re-read).
const MAX_CACHED_KEY_IDS: usize = 4096;

/// A key source, chosen at start.
#[derive(Debug)]
pub enum KeySource {
    Ssm(SsmKeyStore),
    /// A JSON array of service documents (the development store is one:
    /// `dev/dev-store.json`).
    File(PathBuf),
    /// The configuration is unusable: every load fails with this message, so every
    /// request is refused and the reason is logged, instead of a crash loop.
    Misconfigured(String),
}

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error(transparent)]
    Ssm(#[from] SsmStoreError),
    #[error("reading {path}: {error}")]
    File { path: String, error: std::io::Error },
    #[error(transparent)]
    Document(#[from] DocumentError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("loading the key store took longer than {0:?}")]
    Timeout(Duration),
    #[error("the authorizer is misconfigured: {0}")]
    Misconfigured(String),
}

impl KeySource {
    pub fn name(&self) -> &'static str {
        match self {
            Self::Ssm(_) => "ssm",
            Self::File(_) => "file",
            Self::Misconfigured(_) => "misconfigured",
        }
    }

    /// Loads the store as it is at `now` (SSM applies the revocation markers of the
    /// keys usable at `now`).
    pub async fn load(&self, now: UnixTime) -> Result<KeyStore, LoadError> {
        match self {
            Self::Ssm(store) => Ok(store.load_store(now).await?),
            Self::File(path) => {
                let json =
                    tokio::fs::read_to_string(path)
                        .await
                        .map_err(|error| LoadError::File {
                            path: path.display().to_string(),
                            error,
                        })?;
                Ok(KeyStore::build(&parse_documents(&json)?, &[])?)
            }
            Self::Misconfigured(msg) => Err(LoadError::Misconfigured(msg.clone())),
        }
    }
}

/// EMF metric counting store loads, by `Result`: `ok`, `partial` (some parameters
/// rejected, their services refused) or `failed` (nothing loaded: the last good store
/// is kept for its grace, or every request is refused).
pub const LOADS_METRIC: &str = "KeyStoreLoads";
/// EMF metric (no dimension) counting the parameters each load rejected: an alarm on
/// `Sum >= 1` means some service is being refused because its parameter is unusable;
/// the `key_store_parameter_rejected` log lines say which and why.
pub const REJECTED_METRIC: &str = "KeyStoreRejectedParameters";

/// The clock the authorizer reads. Injected so tests control expiry and TTLs.
pub type Clock = Arc<dyn Fn() -> UnixTime + Send + Sync>;

/// The key source with its cache: reloads when the [`RefreshPolicy`] says so, keeps the
/// last good store for a bounded time when reloads fail, and logs each failed attempt
/// once.
pub struct CachedStore {
    source: KeySource,
    slot: Mutex<Slot<KeyStore>>,
    load_timeout: Duration,
    clock: Clock,
    apis: crate::apis::ApiNames,
    /// Per-key state; `None`: every key is decided with the full load (the file
    /// sources, or SSM with the index off).
    by_key: Option<Mutex<ByKey>>,
    /// Shared by every SSM read of this instance.
    backoff: std::sync::Mutex<Backoff>,
    policy: RefreshPolicy,
}

/// What the by-key path caches, and its ration of lookups.
struct ByKey {
    key_ids: HashMap<KeyId, Slot<KeyLookup>>,
    services: HashMap<String, Slot<KeyStore>>,
    lookups: TokenBucket,
}

fn new_by_key() -> Mutex<ByKey> {
    Mutex::new(ByKey {
        key_ids: HashMap::new(),
        services: HashMap::new(),
        lookups: TokenBucket::new(LOOKUP_BURST, LOOKUPS_PER_SECOND),
    })
}

/// The by-key path's answer.
enum Found {
    /// The store to decide this key with.
    Store(Arc<KeyStore>),
    /// The index cannot answer: decide with the full load.
    NeedFull,
}

impl CachedStore {
    pub fn new(
        source: KeySource,
        policy: RefreshPolicy,
        load_timeout: Duration,
        clock: Clock,
    ) -> Self {
        let by_key = matches!(source, KeySource::Ssm(_)).then(new_by_key);
        Self {
            source,
            slot: Mutex::new(Slot::new(policy)),
            load_timeout,
            clock,
            apis: crate::apis::ApiNames::none(),
            by_key,
            policy,
            backoff: std::sync::Mutex::new(Backoff::new(
                BACKOFF_BASE,
                policy.retry_interval.max(BACKOFF_BASE),
            )),
        }
    }

    /// Whether keys are looked up by their index entry (SSM only; on by default). Off,
    /// every key waits for the full load, as before the index existed (benchmarks
    /// compare both).
    pub fn with_key_index(mut self, on: bool) -> Self {
        self.by_key = (on && matches!(self.source, KeySource::Ssm(_))).then(new_by_key);
        self
    }

    /// When the full store in use was loaded (`None`: never, or only by key so far).
    pub async fn loaded_at(&self) -> Option<UnixTime> {
        self.slot.lock().await.loaded_at()
    }

    /// Whether the by-key path is on.
    pub fn key_index(&self) -> bool {
        self.by_key.is_some()
    }

    fn backoff_ready(&self) -> bool {
        self.backoff
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .ready(Instant::now())
    }

    fn backoff_failed(&self) -> Duration {
        self.backoff
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .failed(Instant::now(), random_unit())
    }

    fn backoff_succeeded(&self) {
        self.backoff
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .succeeded();
    }

    /// Where API names come from (without it, no API is named: every policy allows
    /// nothing). See [`crate::apis`].
    pub fn with_api_names(mut self, apis: crate::apis::ApiNames) -> Self {
        self.apis = apis;
        self
    }

    /// The name of the API a method ARN is for (`None`: allow nothing there).
    pub async fn api_name(&self, arn: &MethodArn) -> Option<Arc<str>> {
        self.apis.name_for(arn, self.now()).await
    }

    pub fn now(&self) -> UnixTime {
        (self.clock)()
    }

    /// The full store to decide with, reloading first if due (and the backoff after a
    /// failure allows); `None` means refuse.
    pub async fn current(&self) -> Option<Arc<KeyStore>> {
        let now = self.now();
        // One reload at a time: concurrent callers (the local gateway) wait for it
        // rather than all hitting SSM.
        let mut slot = self.slot.lock().await;
        if slot.action(now) == Action::Reload && self.backoff_ready() {
            self.reload(&mut slot, now).await;
        }
        slot.usable(now)
    }

    /// The store to decide `key` with; `None` means refuse. With the index (SSM), a
    /// fresh full store answers at once; else the key's own index entry and service
    /// document (two SSM calls when nothing is cached); else the full load.
    /// `method_arn`: the request's, so the name of its API is read in the same call
    /// as the key's index entry when it is due.
    pub async fn current_for(
        &self,
        key: &PresentedKey<'_>,
        method_arn: &MethodArn,
    ) -> Option<Arc<KeyStore>> {
        let (Some(by_key), KeySource::Ssm(ssm)) = (&self.by_key, &self.source) else {
            return self.current().await;
        };
        let now = self.now();
        // A full load in flight is not waited for here: a key the index knows goes on.
        if let Ok(slot) = self.slot.try_lock() {
            if slot.loaded_at().is_some() && slot.action(now) == Action::Serve {
                return slot.usable(now);
            }
        }
        match self.find_by_key(by_key, ssm, key, method_arn, now).await {
            Found::Store(store) => Some(store),
            Found::NeedFull => self.current().await,
        }
    }

    async fn find_by_key(
        &self,
        by_key: &Mutex<ByKey>,
        ssm: &SsmKeyStore,
        key: &PresentedKey<'_>,
        method_arn: &MethodArn,
        now: UnixTime,
    ) -> Found {
        let policy = self.policy;
        let key_id = key.key_id();
        // One lookup at a time per instance (single-flight, and the ration below).
        let mut state = by_key.lock().await;
        let state = &mut *state;
        if state.key_ids.len() >= MAX_CACHED_KEY_IDS && !state.key_ids.contains_key(&key_id) {
            state.key_ids.clear();
        }
        let entry = state
            .key_ids
            .entry(key_id.clone())
            .or_insert_with(|| Slot::new(policy));
        if entry.action(now) == Action::Reload {
            if !self.backoff_ready() || !state.lookups.try_take(Instant::now()) {
                // Rationed: whatever is cached, else the full load (never a refusal
                // because invented keys spent the ration).
                if entry.usable(now).is_none() {
                    return Found::NeedFull;
                }
            } else {
                let started = Instant::now();
                let api = self.apis.due_parameter(method_arn, now).await;
                // The SSM reads are boxed (here, below and in `reload`): inline, the SDK's
                // deep futures make `authorizer::handle`'s future too deep for rustc's
                // layout query (depth 128) in the crates that await it. One allocation
                // per SSM call, never on a cached answer.
                let lookup = ssm.lookup_key_with(&key_id, api.as_ref().map(|(_, p)| p.as_str()));
                let result = match tokio::time::timeout(self.load_timeout, Box::pin(lookup)).await {
                    Ok(r) => r.map_err(LoadError::from),
                    Err(_) => Err(LoadError::Timeout(self.load_timeout)),
                };
                match result {
                    Ok((found, api_parameter)) => {
                        self.backoff_succeeded();
                        entry.loaded(found, now);
                        if let Some((api_id, _)) = &api {
                            self.apis.seed(api_id, &api_parameter, now).await;
                        }
                    }
                    Err(error) => {
                        entry.failed(now);
                        self.read_failed(&error, "key_id_lookup", started, Some(&key_id));
                    }
                }
            }
        }
        let Some(found) = entry.usable(now) else {
            return Found::NeedFull;
        };
        let Some(service) = found.service.clone() else {
            // No index entry: a legacy key, a key older than the index, or none at all.
            return Found::NeedFull;
        };
        let slot = state
            .services
            .entry(service.clone())
            .or_insert_with(|| Slot::new(policy));
        if slot.action(now) == Action::Reload && self.backoff_ready() {
            let started = Instant::now();
            let read = Box::pin(ssm.read_service(&service));
            let result = match tokio::time::timeout(self.load_timeout, read).await {
                Ok(r) => r.map_err(LoadError::from),
                Err(_) => Err(LoadError::Timeout(self.load_timeout)),
            };
            match result {
                Ok(read) => {
                    self.backoff_succeeded();
                    // One document judged as a full load judges it (a key it shares
                    // with another document is seen by the full load only).
                    let store =
                        KeyStore::build_isolated(read.into_iter().collect(), Ok(Vec::new()));
                    self.report_loaded(&store, "ssm-service", started);
                    slot.loaded(store, now);
                }
                Err(error) => {
                    slot.failed(now);
                    self.read_failed(&error, "service_document", started, None);
                }
            }
        }
        let Some(store) = slot.usable(now) else {
            return Found::NeedFull;
        };
        if store.lookup(&key.hash()).is_none() {
            // The entry names a document that does not hold this key (pruned, or an
            // entry that is wrong): only the full load can say more.
            return Found::NeedFull;
        }
        if found.revoked || found.expires.is_some() {
            // The markers win over the document.
            let mut markers = Markers::default();
            if found.revoked {
                markers.revoked.insert(key_id.clone());
            }
            if let Some(t) = found.expires {
                markers.expiries.insert(key_id, t);
            }
            let mut marked = (*store).clone();
            marked.apply_markers(&markers);
            return Found::Store(Arc::new(marked));
        }
        Found::Store(store)
    }

    /// A by-key read failed: back off, count it as a failed load, say what happens.
    fn read_failed(
        &self,
        error: &LoadError,
        what: &'static str,
        started: Instant,
        key_id: Option<&KeyId>,
    ) {
        let pause = self.backoff_failed();
        metrics::counter!(LOADS_METRIC, "Result" => "failed").increment(1);
        tracing::error!(
            event = "key_store_load_failed",
            source = self.source.name(),
            read = what,
            key_id = key_id.map_or("", |k| k.as_str()),
            error = %error,
            elapsed_ms = started.elapsed().as_millis() as u64,
            backoff_ms = pause.as_millis() as u64,
            "key store read failed: this key is decided with what is cached (within its TTL and stale grace), else refused; SSM is not called again for {} ms",
            pause.as_millis()
        );
    }

    /// What the Lambda's init phase does: the full load when that is how keys are
    /// decided (file, SSM without the index); nothing with the index, where a
    /// cold instance reads only what its first key needs (two SSM calls), and the full
    /// load happens only if a key the index cannot answer arrives.
    pub async fn init(&self) {
        if self.by_key.is_none() {
            self.reload_now().await;
        }
    }

    /// Loads now, whatever the cache says (used at init).
    pub async fn reload_now(&self) {
        let now = self.now();
        let mut slot = self.slot.lock().await;
        self.reload(&mut slot, now).await;
    }

    /// Logs and counts a load (full, or one service's document): its result, and one
    /// line per parameter it left out.
    fn report_loaded(&self, store: &KeyStore, source: &str, started: Instant) {
        let elapsed_ms = started.elapsed().as_millis() as u64;
        let load_result = if store.rejected.is_empty() {
            "ok"
        } else {
            "partial"
        };
        metrics::counter!(LOADS_METRIC, "Result" => load_result).increment(1);
        tracing::info!(
            event = "key_store_loaded",
            source,
            services = store.service_count(),
            keys = store.key_count(),
            rejected_parameters = store.rejected.len(),
            elapsed_ms,
            "key store loaded"
        );
        for r in &store.rejected {
            // One line per parameter left out: which, why, and who is refused.
            // The reason names fields and positions, never a value.
            let refused = match &r.service {
                Some(s) => format!("every key of service {s} is refused (legacy keys included) until it is fixed; the other services are not affected"),
                None => "every legacy key is refused until it is fixed; the service documents are not affected".to_owned(),
            };
            tracing::error!(
                event = "key_store_parameter_rejected",
                parameter = r.parameter.as_str(),
                service_id = r.service.as_deref().unwrap_or(""),
                reason_code = r.reason.code(),
                reason = %r.reason,
                "key store parameter rejected: {refused}"
            );
        }
        if !store.rejected.is_empty() {
            metrics::counter!(REJECTED_METRIC).increment(store.rejected.len() as u64);
        }
        if !store.legacy_without_permissions.is_empty() {
            tracing::warn!(
                event = "legacy_keys_without_permissions",
                services = ?store.legacy_without_permissions,
                "legacy keys of these services have no service document, so they are granted no route; create one with `svcauth keys import-legacy` or `svcauth keys create`"
            );
        }
        if !store.unscoped_services.is_empty() {
            tracing::warn!(
                event = "unscoped_documents",
                services = ?store.unscoped_services,
                "these services' documents are schema 1: their permissions name no API, so their keys are allowed nothing until you run `svcauth keys migrate --api NAME` (e.g. `--api identity --api tutor` for this stack's own APIs)"
            );
        }
    }

    async fn reload(&self, slot: &mut Slot<KeyStore>, now: UnixTime) {
        let started = Instant::now();
        let load = Box::pin(self.source.load(now));
        let result = match tokio::time::timeout(self.load_timeout, load).await {
            Ok(r) => r,
            Err(_) => Err(LoadError::Timeout(self.load_timeout)),
        };
        let elapsed_ms = started.elapsed().as_millis() as u64;
        match result {
            Ok(store) => {
                self.backoff_succeeded();
                self.report_loaded(&store, self.source.name(), started);
                slot.loaded(store, now);
            }
            Err(error) => {
                metrics::counter!(LOADS_METRIC, "Result" => "failed").increment(1);
                slot.failed(now);
                // SSM only: a file has no throughput to protect.
                let backoff_ms = if matches!(self.source, KeySource::Ssm(_)) {
                    self.backoff_failed().as_millis() as u64
                } else {
                    0
                };
                let serving = match (slot.usable(now), slot.loaded_at()) {
                    (Some(_), Some(at)) => {
                        let policy = slot.policy();
                        format!(
                            "serving the store loaded at {} until {}, then refusing every request",
                            at.to_rfc3339(),
                            at.plus(policy.ttl).plus(policy.stale_grace).to_rfc3339()
                        )
                    }
                    _ => {
                        format!("refusing every request until a load succeeds; the first invocation after {backoff_ms} ms retries")
                    }
                };
                tracing::error!(
                    event = "key_store_load_failed",
                    source = self.source.name(),
                    error = %error,
                    elapsed_ms,
                    backoff_ms,
                    "key store load failed: {serving}"
                );
            }
        }
    }
}
