//! The token key set (JWKS): one `SecureString` under the store's KMS key, default
//! `{parent}/token/jwks`, written only by `svcauth tokens keys add | remove`.
//!
//! Whoever can write the key set can add a key of their own and mint tokens for any
//! service with any routes, so it is as hard to forge as a service document: read with
//! decryption, and a parameter of any other type (a `String`, as svcauth wrote it
//! before) is never trusted ([`KeySetError::Forgeable`], which names the command that
//! replaces it). The JWKS itself is public: the encryption is there for who may write
//! it, not for who may read it.
//!
//! Writes are checked by version like service documents (SSM has no compare-and-swap):
//! read version `v`, apply the change, write, expect `v + 1`; when another writer got
//! in between, its latest version is read back and the change applied to it again
//! ([`KeySetParameter::update`]).

use aws_sdk_ssm::types::{ParameterTier, ParameterType};
use aws_sdk_ssm::Client;

use crate::{get_optional, put_next_version, sdk_error, SsmStoreError};

/// Attempts of a key-set write before giving up (each after another writer's change).
const MAX_WRITE_ATTEMPTS: u32 = 8;

/// The key set parameter as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredKeySet {
    /// The JWKS text.
    pub text: String,
    pub version: i64,
    /// Its type: only `SecureString` is trusted.
    pub found: String,
}

impl StoredKeySet {
    /// Whether verifiers trust it (a SecureString).
    pub fn trusted(&self) -> bool {
        self.found == ParameterType::SecureString.as_str()
    }
}

/// Why the key set cannot be used. Says what to run; carries no secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeySetError {
    #[error("no key set is published at {0}: publish the signing key with `svcauth tokens keys add --key alias/svcauth-token-ENV --kms-key-id <the store's KMS key>`")]
    NotPublished(String),
    #[error("the key set {name} is a {found} parameter: anyone allowed to write it could add a signing key of their own, so it is never trusted. Rewrite it as a SecureString under the store's KMS key: `svcauth tokens keys add --key alias/svcauth-token-ENV --kms-key-id <the store's KMS key>` (it keeps none of the untrusted keys: add each signing key you published again)")]
    Forgeable { name: String, found: String },
    #[error("{0}")]
    Ssm(String),
}

impl KeySetError {
    /// Stable code for logs and error bodies.
    pub fn code(&self) -> &'static str {
        match self {
            Self::NotPublished(_) => "jwks_not_published",
            Self::Forgeable { .. } => "jwks_not_trusted",
            Self::Ssm(_) => "jwks_unavailable",
        }
    }
}

/// The key set parameter: one name, read and written only here.
#[derive(Debug, Clone)]
pub struct KeySetParameter {
    client: Client,
    name: String,
    kms_key_id: Option<String>,
}

impl KeySetParameter {
    pub fn new(client: Client, name: &str) -> Self {
        Self {
            client,
            name: name.to_owned(),
            kms_key_id: None,
        }
    }

    /// Encrypt writes with this KMS key (the store's), as documents are.
    pub fn with_kms_key_id(mut self, key: Option<String>) -> Self {
        self.kms_key_id = key.filter(|k| !k.trim().is_empty());
        self
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The JWKS verifiers may trust: the parameter's text when it is a SecureString.
    pub async fn read_trusted(&self) -> Result<String, KeySetError> {
        match self.read().await {
            Ok(Some(stored)) if stored.trusted() => Ok(stored.text),
            Ok(Some(stored)) => Err(KeySetError::Forgeable {
                name: self.name.clone(),
                found: stored.found,
            }),
            Ok(None) => Err(KeySetError::NotPublished(self.name.clone())),
            Err(e) => Err(KeySetError::Ssm(e.to_string())),
        }
    }

    /// The parameter as stored, whatever its type (`None`: it does not exist).
    pub async fn read(&self) -> Result<Option<StoredKeySet>, SsmStoreError> {
        self.read_selector(&self.name).await
    }

    /// One version of it (it must exist).
    async fn read_version(&self, version: i64) -> Result<StoredKeySet, SsmStoreError> {
        let selector = format!("{}:{version}", self.name);
        match self.read_selector(&selector).await? {
            Some(stored) => Ok(stored),
            None => Err(SsmStoreError::NotFound(selector)),
        }
    }

    async fn read_selector(&self, selector: &str) -> Result<Option<StoredKeySet>, SsmStoreError> {
        let p = get_optional(&self.client, selector, true, &self.name).await?;
        Ok(p.map(|p| StoredKeySet {
            text: p.value().unwrap_or_default().to_owned(),
            version: p.version(),
            found: p
                .r#type()
                .map_or("untyped".to_owned(), |t| t.as_str().to_owned()),
        }))
    }

    /// Applies `change` to the stored key set and writes the result as a SecureString
    /// without losing a concurrent write. `change` gets what is stored (`None`: nothing
    /// yet) and returns the new JWKS text, or `None` when nothing has to change; it must
    /// be idempotent ("this key is in", "that key is out"): it may run again on a newer
    /// version. An error from it aborts without writing. Returns the text written, or
    /// `None` when nothing had to change.
    pub async fn update<E, F>(
        &self,
        mut change: F,
    ) -> Result<Result<Option<String>, E>, SsmStoreError>
    where
        F: FnMut(Option<&StoredKeySet>) -> Result<Option<String>, E>,
    {
        let mut current = self.read().await?;
        // After a conflict our own write may have replaced another writer's version:
        // write the merged set even when it already holds our change.
        let mut must_write = false;
        let mut written_text: Option<String> = None;
        for _ in 0..MAX_WRITE_ATTEMPTS {
            let next = match change(current.as_ref()) {
                Ok(Some(text)) => text,
                Ok(None) if must_write => match (&current, &written_text) {
                    (Some(c), _) => c.text.clone(),
                    (None, Some(w)) => w.clone(),
                    (None, None) => return Ok(Ok(None)),
                },
                Ok(None) => return Ok(Ok(written_text)),
                Err(e) => return Ok(Err(e)),
            };
            let base = current.as_ref().map(|c| c.version);
            let put = self
                .client
                .put_parameter()
                .name(&self.name)
                .value(&next)
                .r#type(ParameterType::SecureString)
                .set_key_id(self.kms_key_id.clone())
                .tier(ParameterTier::Standard);
            let description =
                || "svcauth published token signing keys (JWKS); written by `svcauth tokens keys`";
            let written = match put_next_version(put, base, description).await {
                Ok(Some(version)) => version,
                Ok(None) => {
                    // Someone created it first: apply the change to theirs.
                    current = self.read().await?;
                    must_write = false;
                    continue;
                }
                Err(e) => return Err(sdk_error("PutParameter", &self.name, e)),
            };
            written_text = Some(next.clone());
            let expected = base.map_or(1, |v| v + 1);
            let latest = if written == expected {
                // A later writer may have replaced ours at once: check the version now.
                match self.read().await? {
                    Some(s) if s.version != written => s,
                    _ => return Ok(Ok(Some(next))),
                }
            } else {
                // Versions expected..written-1 are another writer's; the last holds theirs.
                self.read_version(written - 1).await?
            };
            if written == expected {
                if let Ok(None) = change(Some(&latest)) {
                    // The newer version already holds our change.
                    return Ok(Ok(Some(latest.text)));
                }
            }
            must_write = written != expected;
            let version = latest.version.max(written);
            current = Some(StoredKeySet { version, ..latest });
        }
        Err(SsmStoreError::TooManyConflicts(self.name.clone()))
    }
}
