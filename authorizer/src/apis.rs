//! The name of the API a request is for: the link from the `methodArn`'s API id to
//! the API names service documents grant routes on (issue 9 item 4).
//!
//! The stack that attaches the authorizer to an API writes a `String` parameter
//! `{SVCAUTH_API_PATH}/{apiId}` whose value is the API's name (template.yaml does it
//! for `identity` and `tutor`, docs/examples/attach-authorizer.yaml for another
//! team's API). The authorizer reads it on the first request for that API id and keeps
//! it for the store's TTL. No parameter means the API is not registered: every policy
//! on it allows nothing. A failed read is logged and, like the key store, answers with
//! the last name read for at most TTL + stale grace, and with nothing (fail closed)
//! when there is none.
//!
//! Without SSM (`SVCAUTH_KEY_SOURCE=file` or `dev`) the names come from
//! `SVCAUTH_API_NAMES=apiId=name,...`; the development store has defaults for the
//! sample events and the local gateway ([`service_auth::dev::DEV_API_NAMES`]).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use keystore_ssm::aws_sdk_ssm::types::ParameterType;
use keystore_ssm::aws_sdk_ssm::Client;
use service_auth::cache::{Action, RefreshPolicy, Slot};
use service_auth::record::valid_api_name;
use service_auth::{MethodArn, UnixTime};
use tokio::sync::Mutex;

/// Most API ids whose names are kept at once.
const MAX_CACHED_APIS: usize = 1024;

/// `SVCAUTH_API_PATH` when unset.
pub const DEFAULT_API_PATH: &str = "/svcauth/dev/apis";

/// Where API names come from, as configured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApiNamesConfig {
    /// A fixed map of API id to name (`SVCAUTH_API_NAMES`, or the development defaults).
    Static(BTreeMap<String, String>),
    /// `{path}/{apiId}` String parameters in SSM.
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
        let id_ok =
            !id.is_empty() && id.len() <= 32 && id.bytes().all(|b| b.is_ascii_alphanumeric());
        if !id_ok || !valid_api_name(name) {
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
    Ssm { client: Client, path: String },
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
            Source::Ssm { path, .. } => write!(f, "ApiNames::Ssm({path})"),
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

    /// Names read from `{path}/{apiId}` in SSM, each kept as `policy` says (the store's
    /// TTL, stale grace and retry interval).
    pub fn ssm(client: Client, path: &str, policy: RefreshPolicy) -> Self {
        Self {
            source: Source::Ssm {
                client,
                path: path.trim_end_matches('/').to_owned(),
            },
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
            Source::Ssm { client, path } => {
                let mut cache = self.cache.lock().await;
                let entry = bounded_entry(&mut cache, api_id, self.policy);
                if entry.due(now, &self.policy) {
                    let name = parameter_name(path, api_id);
                    let read = read_name(client, &name).await;
                    record(entry, api_id, &name, read, now);
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
        let Source::Ssm { path, .. } = &self.source else {
            return None;
        };
        let api_id = arn.api_id();
        let cache = self.cache.lock().await;
        match cache.get(api_id) {
            Some(e) if !e.due(now, &self.policy) => None,
            _ => Some((api_id.to_owned(), parameter_name(path, api_id))),
        }
    }

    /// Takes the name parameter read by someone else (see [`ApiNames::due_parameter`];
    /// `None`: it does not exist), judged exactly as [`ApiNames::name_for`] judges its
    /// own reads.
    pub async fn seed(
        &self,
        api_id: &str,
        parameter: Option<&keystore_ssm::aws_sdk_ssm::types::Parameter>,
        now: UnixTime,
    ) {
        let Source::Ssm { path, .. } = &self.source else {
            return;
        };
        let mut cache = self.cache.lock().await;
        let entry = bounded_entry(&mut cache, api_id, self.policy);
        let name = parameter_name(path, api_id);
        record(entry, api_id, &name, judge(parameter), now);
    }
}

/// The SSM parameter holding the name of API `api_id` under `path`.
fn parameter_name(path: &str, api_id: &str) -> String {
    format!("{path}/{api_id}")
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

/// Stores the result of one read of an API's name, and logs it.
fn record(
    entry: &mut Entry,
    api_id: &str,
    name: &str,
    read: Result<Option<Arc<str>>, String>,
    now: UnixTime,
) {
    match read {
        Ok(found) => {
            tracing::info!(
                event = "api_name_loaded",
                api_id,
                api_name = found.as_deref().unwrap_or(""),
                registered = found.is_some(),
                "API name read from {name}"
            );
            entry.slot.loaded(found, now);
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

/// The name in one parameter: `Ok(None)` when there is no such parameter (the API is
/// not registered), `Err` when SSM could not be asked or the value is not a name.
async fn read_name(client: &Client, name: &str) -> Result<Option<Arc<str>>, String> {
    let out = match client.get_parameter().name(name).send().await {
        Ok(out) => out,
        Err(e)
            if e.as_service_error()
                .is_some_and(|s| s.is_parameter_not_found()) =>
        {
            return Ok(None)
        }
        // The SDK's Display is one line with the error code; no secret is involved.
        Err(e) => return Err(keystore_ssm::aws_sdk_ssm::error::DisplayErrorContext(e).to_string()),
    };
    judge(out.parameter())
}

/// An API name parameter as read (`None`: it does not exist), judged.
fn judge(
    parameter: Option<&keystore_ssm::aws_sdk_ssm::types::Parameter>,
) -> Result<Option<Arc<str>>, String> {
    let Some(p) = parameter else {
        return Ok(None);
    };
    if p.r#type() != Some(&ParameterType::String) {
        return Err("the parameter is not a String parameter: write it with the stack (AWS::SSM::Parameter, Type String)".into());
    }
    let value = p.value().unwrap_or_default().trim();
    if !valid_api_name(value) {
        return Err("the parameter's value is not an API name (1-64 of a-z, 0-9, -)".into());
    }
    Ok(Some(Arc::from(value)))
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
