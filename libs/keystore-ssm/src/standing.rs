//! A calling service's standing read from SSM, and the one cache of standings every
//! reader uses (the authorizer for tokens, the issuer for callers), each choosing its
//! TTL.
//!
//! One read, three calls at the same time (one round trip): the service's document
//! (`GetParameter`, decrypted), for a caller that proved itself with an API key that
//! key's markers (`GetParameters`, never decrypted), and the service's brake markers
//! (`GetParametersByPath`).
//! The document is judged as a load judges it; the markers are applied to it
//! ([`service_auth::Standing::with_markers`]): nothing the authorizer or the issuer
//! decides from it can be undone by a writer that lost a change to the document.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use service_auth::cache::{Action, RefreshPolicy, Slot};
use service_auth::store::{RejectReason, Rejected};
use service_auth::{KeyId, Markers, Standing, UnixTime};

use crate::{SsmKeyStore, SsmStoreError};

/// Most (service, proof key) standings kept at once.
const MAX_CACHED_STANDINGS: usize = 4096;

/// Why a standing cannot be had now.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StandingError {
    /// The service's parameter exists but cannot be used (not a SecureString, bad
    /// JSON, a newer schema...): refuse; retrying will not help, an operator must
    /// rewrite it. Kept for the TTL like a good answer.
    #[error("the document {} cannot be used: {}", .0.parameter, .0.reason)]
    Unusable(Rejected),
    /// SSM could not be read (and nothing read before is usable any more).
    #[error("{0}")]
    Unavailable(String),
}

/// One read made by [`Standings::get`], for the caller's logs and metrics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StandingRead {
    pub elapsed: Duration,
    /// Why it failed (then what was cached, if still usable, answered).
    pub error: Option<String>,
    /// Whether the service has a usable document.
    pub known: bool,
}

/// What a read found: a standing, or why the service's document cannot be used.
type Judged = Result<Standing, Rejected>;
/// The same, shared: a cached answer costs an `Arc` clone, never a document's.
type Shared = Result<Arc<Standing>, Rejected>;
/// A cached standing's key: the service and the proof key id (if any).
type StandingKey = (String, Option<String>);

impl SsmKeyStore {
    /// `service`'s standing now, with `proof_key`'s markers (see the module docs).
    /// `Ok(Err(..))`: the document exists but cannot be used. Fails only when SSM
    /// cannot be read.
    pub async fn read_standing(
        &self,
        service: &str,
        proof_key: Option<&KeyId>,
    ) -> Result<Judged, SsmStoreError> {
        let markers = async {
            match proof_key {
                Some(id) => self.markers_among(std::slice::from_ref(id)).await,
                None => Ok(Markers::default()),
            }
        };
        let (read, markers, brake) =
            tokio::join!(self.read_service(service), markers, self.brake_of(service));
        let mut markers = markers?;
        markers.brake = brake?;
        let document = match read? {
            None => None,
            Some(r) => match r.document.and_then(|d| {
                d.validate().map_err(RejectReason::Document)?;
                Ok(d)
            }) {
                Ok(d) => Some(d),
                Err(reason) => {
                    return Ok(Err(Rejected {
                        parameter: r.parameter,
                        service: Some(r.service),
                        reason,
                    }))
                }
            },
        };
        Ok(Ok(Standing::with_markers(document, proof_key, &markers)))
    }
}

/// Standings read from SSM, per (service, proof key), each kept as the caller's
/// [`RefreshPolicy`] says: the authorizer keeps them for its store TTL (300 s) with a
/// stale grace while reads fail; the issuer for 15 s with none. Reads are one at a
/// time per cache (single-flight) and bounded by a timeout.
pub struct Standings {
    store: SsmKeyStore,
    policy: RefreshPolicy,
    timeout: Duration,
    cache: tokio::sync::Mutex<HashMap<StandingKey, Slot<Shared>>>,
}

impl std::fmt::Debug for Standings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Standings({}, {:?})", self.store.path(), self.policy)
    }
}

impl Standings {
    pub fn new(store: SsmKeyStore, policy: RefreshPolicy, timeout: Duration) -> Self {
        Self {
            store,
            policy,
            timeout,
            cache: tokio::sync::Mutex::new(HashMap::new()),
        }
    }

    pub fn policy(&self) -> RefreshPolicy {
        self.policy
    }

    /// `service`'s standing for a caller that proved itself with `proof_key` (`None`:
    /// IAM), from the cache while it is fresh, else read. The second value describes
    /// the read when one was made.
    pub async fn get(
        &self,
        service: &str,
        proof_key: Option<&str>,
        now: UnixTime,
    ) -> (Result<Arc<Standing>, StandingError>, Option<StandingRead>) {
        let mut cache = self.cache.lock().await;
        let key = (service.to_owned(), proof_key.map(str::to_owned));
        if cache.len() >= MAX_CACHED_STANDINGS && !cache.contains_key(&key) {
            cache.clear();
        }
        let slot = cache.entry(key).or_insert_with(|| Slot::new(self.policy));
        let mut read = None;
        if slot.action(now) == Action::Reload {
            let started = Instant::now();
            let proof = proof_key.and_then(KeyId::parse);
            let result = tokio::time::timeout(
                self.timeout,
                Box::pin(self.store.read_standing(service, proof.as_ref())),
            )
            .await
            .unwrap_or_else(|_| {
                Err(SsmStoreError::Sdk {
                    operation: "GetParameters",
                    name: self.store.parameter_name(service),
                    message: format!("no answer within {:?}", self.timeout),
                })
            });
            let elapsed = started.elapsed();
            match result {
                Ok(judged) => {
                    read = Some(StandingRead {
                        elapsed,
                        error: None,
                        known: judged.as_ref().is_ok_and(Standing::known),
                    });
                    slot.loaded(judged.map(Arc::new), now);
                }
                Err(e) => {
                    read = Some(StandingRead {
                        elapsed,
                        error: Some(e.to_string()),
                        known: false,
                    });
                    slot.failed(now);
                }
            }
        }
        let answer = match slot.usable(now) {
            Some(judged) => match &*judged {
                Ok(s) => Ok(s.clone()),
                Err(r) => Err(StandingError::Unusable(r.clone())),
            },
            None => Err(StandingError::Unavailable(
                read.as_ref()
                    .and_then(|r| r.error.clone())
                    .unwrap_or_else(|| "the last read failed; the next is not due yet".into()),
            )),
        };
        (answer, read)
    }
}
