//! The name of the API a request is for: the link from the `methodArn`'s API id to
//! the API names service documents grant routes on (issue 9 item 4).
//!
//! The registry (`keystore_ssm::ApiRegistry`) holds one SecureString per API,
//! `{SVCAUTH_API_PATH}/{apiId}` (default: the key store path's sibling `apis`), under
//! the store's KMS key, written only by an operator with `svcauth apis register`
//! (issue 16: a `String` one, as stacks wrote them before, could be forged by any role
//! allowed to write parameters there, relabelling an API; it is never trusted, and the
//! log line `api_name_untrusted` says which command replaces it). The authorizer reads
//! an API's entry on the first request for that API id and keeps it for the store's
//! TTL. No entry, or an untrusted one, means the API is not registered: every policy
//! on it allows nothing. A failed read is logged and, like the key store, answers with
//! the last name read for at most TTL + stale grace, and with nothing (fail closed)
//! when there is none.
//!
//! Without SSM (`SVCAUTH_KEY_SOURCE=file` or `dev`) the names come from
//! `SVCAUTH_API_NAMES=apiId=name,...`; the development store has defaults for the
//! sample events and the local gateway ([`service_auth::dev::DEV_API_NAMES`]).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use keystore_ssm::aws_sdk_ssm::Client;
use keystore_ssm::{valid_api_id, AlsoRead, ApiEntry, ApiRegistry};
use service_auth::cache::{Action, RefreshPolicy, Slot};
use service_auth::record::valid_api_name;
use service_auth::{MethodArn, UnixTime};
use tokio::sync::Mutex;

/// Most API ids whose names are kept at once.
const MAX_CACHED_APIS: usize = 1024;

/// Where API names come from, as configured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApiNamesConfig {
    /// A fixed map of API id to name (`SVCAUTH_API_NAMES`, or the development defaults).
    Static(BTreeMap<String, String>),
    /// The registry at `{path}/{apiId}` in SSM (SecureStrings).
    Ssm { path: String },
}

/// Parses `apiId=name,apiId=name`. Every id is an API id (1-32 letters and digits),
/// every name a valid API name; an id given twice is an error.
pub fn parse_api_names(text: &str) -> Result<BTreeMap<String, String>, String> {
    let mut out = BTreeMap::new();
    for pair in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let bad = || {
            format!(
                "SVCAUTH_API_NAMES entry {pair:?} is not `apiId=name` (an API id of 1-32 letters and digits, a name of 1-64 of a-z, 0-9, -), e.g. a1b2c3d4e5=identity"
            )
        };
        let (id, name) = pair.split_once('=').ok_or_else(bad)?;
        let (id, name) = (id.trim(), name.trim());
        if !valid_api_id(id) || !valid_api_name(name) {
            return Err(bad());
        }
        if out.insert(id.to_owned(), name.to_owned()).is_some() {
            return Err(format!("SVCAUTH_API_NAMES names API id {id} twice"));
        }
    }
    Ok(out)
}

enum Source {
    Static(HashMap<String, Arc<str>>),
    Ssm(ApiRegistry),
}

/// API id → name, cached per API id.
pub struct ApiNames {
    source: Source,
    policy: RefreshPolicy,
    cache: Mutex<HashMap<String, Entry>>,
}

/// One API id's name and when reading it last failed.
struct Entry {
    slot: Slot<Option<Arc<str>>>,
    failed_at: Option<UnixTime>,
}

impl Entry {
    /// Whether to read the parameter now. Unlike the key store, an API id whose name
    /// was never read is retried at most every retry interval, not on every request:
    /// while SSM fails, requests on that API do not each wait for it.
    fn due(&self, now: UnixTime, policy: &RefreshPolicy) -> bool {
        if self.slot.loaded_at().is_none() {
            return self
                .failed_at
                .is_none_or(|f| now >= f.plus(policy.retry_interval));
        }
        self.slot.action(now) == Action::Reload
    }
}

impl std::fmt::Debug for ApiNames {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.source {
            Source::Static(m) => write!(f, "ApiNames::Static({} APIs)", m.len()),
            Source::Ssm(registry) => write!(f, "ApiNames::Ssm({})", registry.path()),
        }
    }
}

impl ApiNames {
    /// No API is registered: every policy allows nothing.
    pub fn none() -> Self {
        Self::fixed(BTreeMap::new())
    }

    /// A fixed map of API id to name.
    pub fn fixed(names: BTreeMap<String, String>) -> Self {
        Self {
            source: Source::Static(
                names
                    .into_iter()
                    .map(|(id, name)| (id, Arc::from(name)))
                    .collect(),
            ),
            policy: RefreshPolicy::default(),
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// Names read from the registry at `{path}/{apiId}` in SSM, each kept as `policy`
    /// says (the store's TTL, stale grace and retry interval).
    pub fn ssm(client: Client, path: &str, policy: RefreshPolicy) -> Self {
        Self {
            source: Source::Ssm(ApiRegistry::new(client, path)),
            policy,
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// The name of the API a method ARN is for; `None` when it is not registered or
    /// its name cannot be read (each: the policy allows nothing).
    pub async fn name_for(&self, arn: &MethodArn, now: UnixTime) -> Option<Arc<str>> {
        let api_id = arn.api_id();
        match &self.source {
            Source::Static(map) => map.get(api_id).cloned(),
            Source::Ssm(registry) => {
                let mut cache = self.cache.lock().await;
                let entry = bounded_entry(&mut cache, api_id, self.policy);
                if entry.due(now, &self.policy) {
                    let read = registry.read(api_id).await.map_err(|e| e.to_string());
                    record(entry, api_id, &registry.entry_name(api_id), read, now);
                }
                entry.slot.usable(now).and_then(|n| (*n).clone())
            }
        }
    }

    /// With names in SSM: the parameter holding the name of `method_arn`'s API when
    /// it is due to be read (never read, or past its TTL) as `(api id, parameter)`, so
    /// that the key store's first read fetches it in the same `GetParameters` call and
    /// hands it to [`ApiNames::seed`]: a cold instance then answers with two calls.
    pub async fn due_parameter(&self, arn: &MethodArn, now: UnixTime) -> Option<(String, String)> {
        let Source::Ssm(registry) = &self.source else {
            return None;
        };
        let api_id = arn.api_id();
        let cache = self.cache.lock().await;
        match cache.get(api_id) {
            Some(e) if !e.due(now, &self.policy) => None,
            _ => Some((api_id.to_owned(), registry.entry_name(api_id))),
        }
    }

    /// Takes the registry entry read by someone else (see [`ApiNames::due_parameter`];
    /// `Ok(None)`: it does not exist, `Err`: it could not be decrypted), judged exactly
    /// as [`ApiNames::name_for`] judges its own reads.
    pub async fn seed(&self, api_id: &str, parameter: &AlsoRead, now: UnixTime) {
        let Source::Ssm(registry) = &self.source else {
            return;
        };
        let mut cache = self.cache.lock().await;
        let entry = bounded_entry(&mut cache, api_id, self.policy);
        let read = match parameter {
            Ok(p) => Ok(ApiRegistry::judge(p.as_ref())),
            Err(e) => Err(e.clone()),
        };
        record(entry, api_id, &registry.entry_name(api_id), read, now);
    }
}

/// The cache entry of `api_id`, made (never read yet) when missing. The cache holds at
/// most [`MAX_CACHED_APIS`]: API ids come from API Gateway, one per API the authorizer
/// is attached to, and a bound keeps memory fixed whatever arrives.
fn bounded_entry<'c>(
    cache: &'c mut HashMap<String, Entry>,
    api_id: &str,
    policy: RefreshPolicy,
) -> &'c mut Entry {
    if cache.len() >= MAX_CACHED_APIS && !cache.contains_key(api_id) {
        cache.clear();
    }
    cache.entry(api_id.to_owned()).or_insert_with(|| Entry {
        slot: Slot::new(policy),
        failed_at: None,
    })
}

/// Stores the result of one read of an API's registry entry, and logs it.
fn record(
    entry: &mut Entry,
    api_id: &str,
    name: &str,
    read: Result<ApiEntry, String>,
    now: UnixTime,
) {
    match read {
        Ok(found) => {
            if let Some(why) = found.untrusted_reason(api_id) {
                // Read, and refused for good (until an operator registers it): not a
                // failure to retry, and no name read before keeps answering.
                tracing::error!(
                    event = "api_name_untrusted",
                    api_id,
                    parameter = name,
                    "the API's registry entry is not trusted, so requests on this API are allowed nothing: {why}"
                );
            } else {
                tracing::info!(
                    event = "api_name_loaded",
                    api_id,
                    api_name = found.name().unwrap_or(""),
                    registered = found.name().is_some(),
                    "API name read from {name}"
                );
            }
            entry.slot.loaded(found.name().map(Arc::from), now);
            entry.failed_at = None;
        }
        Err(error) => {
            entry.slot.failed(now);
            entry.failed_at = Some(now);
            tracing::error!(
                event = "api_name_load_failed",
                api_id,
                parameter = name,
                error = error.as_str(),
                "reading the API's name failed: requests on this API are allowed nothing until it is read (a name read before keeps answering until its TTL + stale grace end)"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_name_maps_parse_strictly() {
        let m = parse_api_names(" a1b2c3d4e5=identity, tutorkey=tutor ,").unwrap();
        assert_eq!(m.get("a1b2c3d4e5").map(String::as_str), Some("identity"));
        assert_eq!(m.len(), 2);
        for bad in [
            "identity",
            "a-b=identity",
            "abc=Identity",
            "abc=",
            "=x",
            "a=x,a=y",
        ] {
            assert!(parse_api_names(bad).is_err(), "{bad}");
        }
        assert!(parse_api_names("").unwrap().is_empty());
    }

    #[tokio::test]
    async fn a_fixed_map_names_only_its_apis() {
        let names = ApiNames::fixed(parse_api_names("abc123=identity").unwrap());
        let arn = |id: &str| {
            MethodArn::parse(&format!(
                "arn:aws:execute-api:us-east-1:123456789012:{id}/prod/GET/x"
            ))
            .unwrap()
        };
        let now = UnixTime(1);
        assert_eq!(
            names.name_for(&arn("abc123"), now).await.as_deref(),
            Some("identity")
        );
        assert_eq!(names.name_for(&arn("other1"), now).await, None);
        assert_eq!(ApiNames::none().name_for(&arn("abc123"), now).await, None);
    }
}
