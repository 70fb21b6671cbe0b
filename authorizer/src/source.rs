//! Where the key store is loaded from, and the cached store the handler reads.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use keystore_ssm::{SsmKeyStore, SsmStoreError};
use service_auth::cache::{Action, RefreshPolicy, Slot};
#[cfg(feature = "dev-store")]
use service_auth::dev::dev_documents;
use service_auth::dev::parse_documents;
use service_auth::record::DocumentError;
use service_auth::store::StoreError;
use service_auth::{KeyStore, UnixTime};
use tokio::sync::Mutex;

/// A key source, chosen at start.
#[derive(Debug)]
pub enum KeySource {
    Ssm(SsmKeyStore),
    File(PathBuf),
    /// The development store: only in builds with the `dev-store` feature.
    #[cfg(feature = "dev-store")]
    Dev,
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
            #[cfg(feature = "dev-store")]
            Self::Dev => "dev",
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
            #[cfg(feature = "dev-store")]
            Self::Dev => Ok(KeyStore::build(&dev_documents()?, &[])?),
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
}

impl CachedStore {
    pub fn new(
        source: KeySource,
        policy: RefreshPolicy,
        load_timeout: Duration,
        clock: Clock,
    ) -> Self {
        Self {
            source,
            slot: Mutex::new(Slot::new(policy)),
            load_timeout,
            clock,
            apis: crate::apis::ApiNames::none(),
        }
    }

    /// Where API names come from (without it, no API is named: every policy allows
    /// nothing). See [`crate::apis`].
    pub fn with_api_names(mut self, apis: crate::apis::ApiNames) -> Self {
        self.apis = apis;
        self
    }

    /// The name of the API a method ARN is for (`None`: allow nothing there).
    pub async fn api_name(&self, method_arn: Option<&str>) -> Option<Arc<str>> {
        self.apis.name_for(method_arn, self.now()).await
    }

    pub fn now(&self) -> UnixTime {
        (self.clock)()
    }

    /// The store to decide with, reloading first if due; `None` means refuse.
    pub async fn current(&self) -> Option<Arc<KeyStore>> {
        let now = self.now();
        // One reload at a time: concurrent callers (the local gateway) wait for it
        // rather than all hitting SSM.
        let mut slot = self.slot.lock().await;
        if slot.action(now) == Action::Reload {
            self.reload(&mut slot, now).await;
        }
        slot.usable(now)
    }

    /// Loads now, whatever the cache says (used at init).
    pub async fn reload_now(&self) {
        let now = self.now();
        let mut slot = self.slot.lock().await;
        self.reload(&mut slot, now).await;
    }

    async fn reload(&self, slot: &mut Slot<KeyStore>, now: UnixTime) {
        let started = Instant::now();
        let result = match tokio::time::timeout(self.load_timeout, self.source.load(now)).await {
            Ok(r) => r,
            Err(_) => Err(LoadError::Timeout(self.load_timeout)),
        };
        let elapsed_ms = started.elapsed().as_millis() as u64;
        match result {
            Ok(store) => {
                let load_result = if store.rejected.is_empty() {
                    "ok"
                } else {
                    "partial"
                };
                metrics::counter!(LOADS_METRIC, "Result" => load_result).increment(1);
                tracing::info!(
                    event = "key_store_loaded",
                    source = self.source.name(),
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
                slot.loaded(store, now);
            }
            Err(error) => {
                metrics::counter!(LOADS_METRIC, "Result" => "failed").increment(1);
                slot.failed(now);
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
                        "refusing every request until a load succeeds; the next invocation retries"
                            .to_owned()
                    }
                };
                tracing::error!(
                    event = "key_store_load_failed",
                    source = self.source.name(),
                    error = %error,
                    elapsed_ms,
                    "key store load failed: {serving}"
                );
            }
        }
    }
}
