//! The API registry: which name each API (by its API Gateway id) has, the link from a
//! request's `methodArn` to the API names grants are written for.
//!
//! * `{apis}/{api id}`: a `SecureString` under the store's KMS key holding the name,
//!   written only by `svcauth apis register` (an operator's act: CloudFormation cannot
//!   write a SecureString, and no deploy role needs to). Whoever could write it could
//!   relabel an API (`billing` written over the identity API's id) and give its callers
//!   another API's grants there, so an entry of any other type is never trusted: the
//!   authorizer allows nothing on that API and says what to run.
//! * `{api-names}/{name}`: a `String` created with `Overwrite=false` whose value is the
//!   API id the name is bound to: one name, one API. A registration claims the name
//!   first, so a second API id for a name already bound is refused, by two operators
//!   at once too. A claim only refuses (a forged one blocks a registration; it grants
//!   nothing: only the SecureString entry names an API).

use std::collections::BTreeMap;

use aws_sdk_ssm::types::{Parameter, ParameterTier, ParameterType};
use aws_sdk_ssm::Client;
use service_auth::record::valid_api_name;

use crate::{get_optional, layout, put_next_version, retry_throttled, sdk_error, SsmStoreError};

/// API Gateway API ids: 1-32 letters and digits (API Gateway's are 10).
pub fn valid_api_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 32 && id.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// What the registry says about one API id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApiEntry {
    /// A SecureString holding a valid name: the API's name.
    Registered(String),
    /// No entry: the API is not registered (every policy on it allows nothing).
    Unregistered,
    /// An entry that is not trusted: written the forgeable way (a `String`, as stacks
    /// wrote them before), or not holding a name. `found` is what it is; `name` the
    /// name it holds, if it is one (for the command that replaces it).
    Untrusted { found: String, name: Option<String> },
}

impl ApiEntry {
    /// The trusted name, if any.
    pub fn name(&self) -> Option<&str> {
        match self {
            Self::Registered(n) => Some(n),
            _ => None,
        }
    }

    /// Why an untrusted entry is not trusted and what to run, for logs and messages.
    pub fn untrusted_reason(&self, api_id: &str) -> Option<String> {
        let Self::Untrusted { found, name } = self else {
            return None;
        };
        let command = format!(
            "svcauth apis register --api-id {api_id} --name {}",
            name.as_deref().unwrap_or("NAME")
        );
        Some(if found == "SecureString" {
            format!("the entry does not hold an API name (1-64 of a-z, 0-9, -): run `{command}`")
        } else {
            format!("the entry is a {found} parameter, which anyone allowed to write parameters there could forge (relabel the API and take another API's grants), so it is never trusted: an operator registers the API with `{command}` (a SecureString under the store's KMS key)")
        })
    }
}

/// What [`ApiRegistry::register`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Registered {
    /// The entry was written (`replaced`: the untrusted entry it replaced, e.g.
    /// `String`).
    Written { replaced: Option<String> },
    /// The API id was registered under that name already.
    Already,
}

/// Why a registration was refused (nothing was written, or only the claim of a name
/// for this same id).
#[derive(Debug, thiserror::Error)]
pub enum RegisterError {
    #[error("the name {name:?} is bound to API id {other} ({claim}): one name names one API. Choose another name, or, if API {other} is gone, run `svcauth apis remove --api-id {other}` first")]
    NameTaken {
        name: String,
        other: String,
        claim: String,
    },
    #[error("API id {api_id} is registered as {current:?}: to rename it, run `svcauth apis remove --api-id {api_id}`, then register it again (its callers' grants name {current:?})")]
    Renamed { api_id: String, current: String },
    #[error("{0:?} is not an API id (1-32 letters and digits, as in the API's execute-api URL)")]
    BadId(String),
    #[error("{0:?} is not an API name (1-64 of a-z, 0-9 and -, e.g. billing)")]
    BadName(String),
    #[error(transparent)]
    Ssm(#[from] SsmStoreError),
}

/// What [`ApiRegistry::remove`] deleted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Removed {
    /// The entry, as it was (`None`: there was none).
    pub entry: Option<ApiEntry>,
    /// The names whose claim named this id.
    pub claims: Vec<String>,
}

/// The registry at one path (`{parent}/apis`) and its name claims (`{parent}/api-names`).
#[derive(Debug, Clone)]
pub struct ApiRegistry {
    client: Client,
    entries: String,
    claims: String,
    kms_key_id: Option<String>,
}

impl ApiRegistry {
    /// The registry at `apis_path` (its claims are the sibling `api-names`).
    pub fn new(client: Client, apis_path: &str) -> Self {
        let entries = apis_path.trim_end_matches('/').to_owned();
        Self {
            client,
            claims: layout::api_name_claims(&entries),
            entries,
            kms_key_id: None,
        }
    }

    /// Encrypt entries with this KMS key (the store's), as documents are.
    pub fn with_kms_key_id(mut self, key: Option<String>) -> Self {
        self.kms_key_id = key.filter(|k| !k.trim().is_empty());
        self
    }

    pub fn path(&self) -> &str {
        &self.entries
    }

    /// The entry of `api_id`.
    pub fn entry_name(&self, api_id: &str) -> String {
        format!("{}/{api_id}", self.entries)
    }

    /// The claim of `name`.
    pub fn claim_name(&self, name: &str) -> String {
        format!("{}/{name}", self.claims)
    }

    /// An entry as read (`None`: it does not exist), judged: a SecureString holding a
    /// name is the only one trusted.
    pub fn judge(parameter: Option<&Parameter>) -> ApiEntry {
        let Some(p) = parameter else {
            return ApiEntry::Unregistered;
        };
        let value = p.value().unwrap_or_default().trim();
        let name = valid_api_name(value).then(|| value.to_owned());
        match (p.r#type(), name) {
            (Some(ParameterType::SecureString), Some(name)) => ApiEntry::Registered(name),
            (t, name) => ApiEntry::Untrusted {
                found: t.map_or("untyped".to_owned(), |t| t.as_str().to_owned()),
                name,
            },
        }
    }

    /// One API id's entry, judged (`GetParameter` with decryption).
    pub async fn read(&self, api_id: &str) -> Result<ApiEntry, SsmStoreError> {
        let name = self.entry_name(api_id);
        Ok(Self::judge(self.get(&name, true).await?.as_ref()))
    }

    /// The API id `name` is bound to, if it is claimed.
    pub async fn claim_of(&self, name: &str) -> Result<Option<String>, SsmStoreError> {
        let claim = self.claim_name(name);
        Ok(self
            .get(&claim, false)
            .await?
            .and_then(|p| p.value().map(|v| v.trim().to_owned())))
    }

    /// Every entry under the registry path, by API id, judged.
    pub async fn list(&self) -> Result<BTreeMap<String, ApiEntry>, SsmStoreError> {
        let mut out = BTreeMap::new();
        for p in self.list_path(&self.entries, true).await? {
            let id = p
                .name()
                .unwrap_or_default()
                .rsplit('/')
                .next()
                .unwrap_or_default();
            out.insert(id.to_owned(), Self::judge(Some(&p)));
        }
        Ok(out)
    }

    /// Registers `api_id` as `name`: claims the name (create-only; refused when it is
    /// bound to another id), then writes the SecureString entry, replacing an untrusted
    /// one. Running it again changes nothing.
    pub async fn register(&self, api_id: &str, name: &str) -> Result<Registered, RegisterError> {
        if !valid_api_id(api_id) {
            return Err(RegisterError::BadId(api_id.to_owned()));
        }
        if !valid_api_name(name) {
            return Err(RegisterError::BadName(name.to_owned()));
        }
        let entry_name = self.entry_name(api_id);
        let current = self.get(&entry_name, true).await?;
        let replaced = match Self::judge(current.as_ref()) {
            ApiEntry::Registered(n) if n == name => {
                // Registered already; make sure the claim is there too (a run that
                // stopped between its two writes, or an entry from before claims).
                self.claim(api_id, name).await?;
                return Ok(Registered::Already);
            }
            ApiEntry::Registered(current) => {
                return Err(RegisterError::Renamed {
                    api_id: api_id.to_owned(),
                    current,
                })
            }
            ApiEntry::Unregistered => None,
            ApiEntry::Untrusted { found, .. } => Some(found),
        };
        self.claim(api_id, name).await?;
        let put = self
            .client
            .put_parameter()
            .name(&entry_name)
            .value(name)
            .r#type(ParameterType::SecureString)
            .set_key_id(self.kms_key_id.clone())
            .tier(ParameterTier::Standard);
        // Replacing an untrusted entry overwrites it (its type changes); else the entry
        // is created, never overwriting one another operator wrote meanwhile.
        let base = current.as_ref().map(|p| p.version());
        let description =
            || "svcauth API registry: this API's name; written by `svcauth apis register`";
        match put_next_version(put, base, description).await {
            Ok(Some(_)) => Ok(Registered::Written { replaced }),
            Ok(None) => match self.read(api_id).await? {
                ApiEntry::Registered(n) if n == name => Ok(Registered::Already),
                ApiEntry::Registered(current) => Err(RegisterError::Renamed {
                    api_id: api_id.to_owned(),
                    current,
                }),
                other => Err(RegisterError::Ssm(SsmStoreError::Sdk {
                    operation: "PutParameter",
                    name: entry_name,
                    message: format!(
                        "another writer created the entry meanwhile ({other:?}); run the command again"
                    ),
                })),
            },
            Err(e) => Err(sdk_error("PutParameter", &entry_name, e).into()),
        }
    }

    /// Claims `name` for `api_id` (create-only); refused when it names another id.
    async fn claim(&self, api_id: &str, name: &str) -> Result<(), RegisterError> {
        let claim = self.claim_name(name);
        let put = self
            .client
            .put_parameter()
            .name(&claim)
            .value(api_id)
            .r#type(ParameterType::String)
            .tier(ParameterTier::Standard);
        let description =
            || "svcauth API name claim: the API id this name is bound to (one name, one API)";
        match put_next_version(put, None, description).await {
            Ok(Some(_)) => Ok(()),
            Ok(None) => match self.claim_of(name).await? {
                Some(other) if other == api_id => Ok(()),
                other => Err(RegisterError::NameTaken {
                    name: name.to_owned(),
                    other: other.unwrap_or_else(|| "(unreadable)".into()),
                    claim,
                }),
            },
            Err(e) => Err(sdk_error("PutParameter", &claim, e).into()),
        }
    }

    /// Unregisters `api_id`: deletes its entry and every name claim naming it (so the
    /// name can be bound again). Its callers are allowed nothing on it from the
    /// authorizer's next read.
    pub async fn remove(&self, api_id: &str) -> Result<Removed, RegisterError> {
        if !valid_api_id(api_id) {
            return Err(RegisterError::BadId(api_id.to_owned()));
        }
        let entry_name = self.entry_name(api_id);
        let entry = self.get(&entry_name, true).await?;
        let mut removed = Removed {
            entry: entry.as_ref().map(|p| Self::judge(Some(p))),
            claims: Vec::new(),
        };
        if entry.is_some() {
            self.delete(&entry_name).await?;
        }
        for p in self.list_path(&self.claims, false).await? {
            if p.value().map(str::trim) == Some(api_id) {
                let claim = p.name().unwrap_or_default().to_owned();
                self.delete(&claim).await?;
                removed
                    .claims
                    .push(claim.rsplit('/').next().unwrap_or_default().to_owned());
            }
        }
        Ok(removed)
    }

    async fn get(&self, name: &str, decrypt: bool) -> Result<Option<Parameter>, SsmStoreError> {
        get_optional(&self.client, name, decrypt, name).await
    }

    async fn delete(&self, name: &str) -> Result<(), SsmStoreError> {
        match self.client.delete_parameter().name(name).send().await {
            Ok(_) => Ok(()),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_parameter_not_found()) =>
            {
                Ok(())
            }
            Err(e) => Err(sdk_error("DeleteParameter", name, e)),
        }
    }

    async fn list_path(&self, path: &str, decrypt: bool) -> Result<Vec<Parameter>, SsmStoreError> {
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let page = retry_throttled(|| {
                self.client
                    .get_parameters_by_path()
                    .path(path)
                    .recursive(false)
                    .with_decryption(decrypt)
                    .max_results(10)
                    .set_next_token(token.clone())
                    .send()
            })
            .await
            .map_err(|e| sdk_error("GetParametersByPath", path, e))?;
            out.extend(page.parameters.unwrap_or_default());
            match page.next_token {
                Some(t) if !t.is_empty() => token = Some(t),
                _ => break,
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn param(t: ParameterType, value: &str) -> Parameter {
        Parameter::builder().r#type(t).value(value).build()
    }

    #[test]
    fn only_a_securestring_holding_a_name_is_trusted() {
        assert_eq!(ApiRegistry::judge(None), ApiEntry::Unregistered);
        assert_eq!(
            ApiRegistry::judge(Some(&param(ParameterType::SecureString, " billing "))),
            ApiEntry::Registered("billing".into())
        );
        let forged = ApiRegistry::judge(Some(&param(ParameterType::String, "billing")));
        assert_eq!(
            forged,
            ApiEntry::Untrusted {
                found: "String".into(),
                name: Some("billing".into())
            }
        );
        let why = forged.untrusted_reason("a1b2c3d4e5").unwrap();
        assert!(
            why.contains("svcauth apis register --api-id a1b2c3d4e5 --name billing"),
            "{why}"
        );
        let garbage = ApiRegistry::judge(Some(&param(ParameterType::SecureString, "Not A Name")));
        assert!(matches!(garbage, ApiEntry::Untrusted { name: None, .. }));
        assert!(valid_api_id("a1b2c3d4e5") && !valid_api_id("a-b") && !valid_api_id(""));
    }
}
