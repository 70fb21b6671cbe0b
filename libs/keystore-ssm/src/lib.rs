/*!
The service key store in SSM Parameter Store.

Layout: one `SecureString` parameter per calling service, `{path}/{service}`, holding
that service's [`ServiceDocument`] (permissions and hashed key records). Why:

* **Cold start**: the authorizer loads the whole store with `GetParametersByPath`,
  10 parameters a call, so 100 services cost 10 calls (and no call grows with the
  number of keys a service has).
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

This crate does I/O only; every decision about documents lives in `service-auth`.
*/
#![forbid(unsafe_code)]

pub use aws_sdk_ssm;

use std::time::Duration;

use aws_sdk_ssm::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_ssm::types::{ParameterTier, ParameterType};
use aws_sdk_ssm::Client;
use service_auth::record::{valid_service_name, DocumentError};
use service_auth::store::{parse_legacy_map, LegacyEntry, StoreError};
use service_auth::{KeyStore, ServiceDocument};

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
    path: String,
    legacy_parameter: Option<String>,
}

/// What a write did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriteOutcome {
    /// The version of the parameter that holds the write.
    pub version: i64,
    /// How many concurrent writes were merged in.
    pub merged_conflicts: usize,
    /// The document as written.
    pub document: ServiceDocument,
}

impl SsmKeyStore {
    pub fn new(client: Client, path: &str) -> Result<Self, SsmStoreError> {
        let ok = path.starts_with('/')
            && !path.ends_with('/')
            && path.len() <= 900
            && path
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"/_.-".contains(&b));
        if !ok {
            return Err(SsmStoreError::BadPath(path.to_owned()));
        }
        Ok(Self {
            client,
            path: path.to_owned(),
            legacy_parameter: None,
        })
    }

    /// Also read the original design's `{"<key>": "<service>"}` parameter.
    pub fn with_legacy_parameter(mut self, name: Option<String>) -> Self {
        self.legacy_parameter = name.filter(|n| !n.is_empty());
        self
    }

    pub fn path(&self) -> &str {
        &self.path
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The parameter holding `service`'s document.
    pub fn parameter_name(&self, service: &str) -> String {
        format!("{}/{}", self.path, service)
    }

    /// Loads and indexes everything: all documents plus the legacy map, all or nothing.
    pub async fn load_store(&self) -> Result<KeyStore, SsmStoreError> {
        let docs = self.load_documents().await?;
        let legacy = self.load_legacy().await?;
        Ok(KeyStore::build(&docs, &legacy)?)
    }

    /// Every service document under the path, validated.
    pub async fn load_documents(&self) -> Result<Vec<ServiceDocument>, SsmStoreError> {
        let mut docs = Vec::new();
        let mut pages = self
            .client
            .get_parameters_by_path()
            .path(&self.path)
            .recursive(false)
            .with_decryption(true)
            .max_results(10)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| sdk_error("GetParametersByPath", &self.path, e))?;
            for p in page.parameters() {
                let name = p.name().unwrap_or_default();
                let service = name.rsplit('/').next().unwrap_or_default();
                require_secure(name, p.r#type())?;
                let doc = self.parse_named(name, service, p.value().unwrap_or_default())?;
                docs.push(doc);
            }
        }
        Ok(docs)
    }

    /// The legacy map's keys, hashed. Empty when no legacy parameter is configured.
    pub async fn load_legacy(&self) -> Result<Vec<LegacyEntry>, SsmStoreError> {
        let Some(name) = &self.legacy_parameter else {
            return Ok(Vec::new());
        };
        let out = self
            .client
            .get_parameter()
            .name(name)
            .with_decryption(true)
            .send()
            .await
            .map_err(|e| sdk_error("GetParameter", name, e))?;
        let p = out
            .parameter()
            .ok_or_else(|| SsmStoreError::NotFound(name.clone()))?;
        require_secure(name, p.r#type())?;
        parse_legacy_map(p.value().unwrap_or_default()).map_err(|error| SsmStoreError::Store {
            name: name.clone(),
            error,
        })
    }

    /// One service's document and its version, `None` when the service has none.
    pub async fn read_document(
        &self,
        service: &str,
    ) -> Result<Option<(ServiceDocument, i64)>, SsmStoreError> {
        let name = self.checked_name(service)?;
        let out = match self
            .client
            .get_parameter()
            .name(&name)
            .with_decryption(true)
            .send()
            .await
        {
            Ok(out) => out,
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_parameter_not_found()) =>
            {
                return Ok(None)
            }
            Err(e) => return Err(sdk_error("GetParameter", &name, e)),
        };
        let Some(p) = out.parameter() else {
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
                .tier(ParameterTier::IntelligentTiering)
                .overwrite(base_version.is_some());
            let put = if base_version.is_none() {
                put.description(format!(
                    "svcauth key records of {service}; written by svcauth, read by the authorizer"
                ))
            } else {
                put
            };
            let written = match put.send().await {
                Ok(out) => out.version(),
                Err(e)
                    if e.as_service_error()
                        .is_some_and(|s| s.is_parameter_already_exists()) =>
                {
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
                    return Ok(Ok(WriteOutcome {
                        version: written,
                        merged_conflicts,
                        document: doc,
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
            .overwrite(overwrite)
            .send()
            .await
            .map_err(|e| sdk_error("PutParameter", name, e))?;
        Ok(out.version())
    }

    /// Versions `from..to` (exclusive) of a document, oldest first.
    async fn versions_between(
        &self,
        name: &str,
        service: &str,
        from: i64,
        to: i64,
    ) -> Result<Vec<ServiceDocument>, SsmStoreError> {
        let mut out = Vec::new();
        let mut pages = self
            .client
            .get_parameter_history()
            .name(name)
            .with_decryption(true)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| sdk_error("GetParameterHistory", name, e))?;
            for p in page.parameters() {
                if (from..to).contains(&p.version()) {
                    out.push((
                        p.version(),
                        self.parse_named(name, service, p.value().unwrap_or_default())?,
                    ));
                }
            }
        }
        out.sort_by_key(|(v, _)| *v);
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
            hint: "the caller's IAM role needs ssm:GetParametersByPath/GetParameter(History)/PutParameter on this path and kms:Decrypt/Encrypt through SSM (kms:ViaService)",
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
