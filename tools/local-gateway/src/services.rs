//! The real functions behind the template's routes, run in process: each template
//! function is built from its `Metadata.BuildProperties.Binary` and its environment
//! in the template, the way its `main.rs` builds it in Lambda.
//!
//! | binary | built as |
//! |---|---|
//! | `authorizer` | `authorizer::handle` with a `CachedStore` over the chosen key source |
//! | `identity-service` | `identity_service::router`, users in memory (`dev/dev-users.json`) or in DynamoDB when `USERS_TABLE` is set |
//! | `tutor-service` | `tutor_service::router`, its identity-service client pointed at the gateway's URL of the API the template names, sending its key (`api-key`: the development key, a key given with `--service-key-file`, or with `--key-source ssm` the key delivered to its `SERVICE_API_KEY_PARAMETER`) or signing with its role's development credentials (`iam`) |

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use identity_service::{User, Users};
use service_auth::identity::IamRoleMap;
use service_auth::ApiKey;
use service_client::{AuthConfig, ClientConfig, CredentialsSource, ServiceClient};
use service_identity_http::IdentityConfig;

use crate::function::{Function, LambdaHttp, RequestAuthorizer};
use crate::gateway::Clock;
use crate::sigv4::LocalCredentials;
use crate::template::{EnvValue, FunctionDef, Model};
use crate::{FactoryFuture, FunctionFactory, Site};

/// The development users (`dev/dev-users.json`).
pub const DEV_USERS_JSON: &str = include_str!("../../../dev/dev-users.json");
/// The clear development keys (`dev/dev-keys.json`).
pub const DEV_KEYS_JSON: &str = include_str!("../../../dev/dev-keys.json");

/// The development users.
pub fn dev_users() -> Vec<User> {
    serde_json::from_str(DEV_USERS_JSON).expect("dev/dev-users.json is a list of users")
}

/// The clear development keys by name (`tutor-service`, `admin-service`, ...).
pub fn dev_keys() -> BTreeMap<String, String> {
    let raw: BTreeMap<String, serde_json::Value> =
        serde_json::from_str(DEV_KEYS_JSON).expect("dev/dev-keys.json is an object");
    raw.into_iter()
        .filter(|(k, _)| !k.starts_with('_'))
        .filter_map(|(k, v)| v.as_str().map(|v| (k, v.to_owned())))
        .collect()
}

/// Where identity-service keeps users.
#[derive(Debug, Clone)]
pub enum UsersSource {
    Memory(Vec<User>),
    /// A DynamoDB table through the AWS SDK's default configuration
    /// (`AWS_ENDPOINT_URL` works, e.g. for moto).
    DynamoDb {
        table: String,
    },
}

/// The real authorizer and services.
pub struct RealFunctions {
    /// The authorizer's configuration (`SVCAUTH_KEY_SOURCE`, store TTL, ...).
    pub authorizer: authorizer::Config,
    /// The clock of the authorizer's store cache and of outbound SigV4 signing; the
    /// gateway's clock, so tests move both together.
    pub clock: Clock,
    pub users: UsersSource,
    /// Clear keys by service name, for services calling with `api-key`.
    pub service_keys: BTreeMap<String, String>,
    /// For a calling service with no entry in `service_keys`: read its key from the
    /// SSM parameter its function's `SERVICE_API_KEY_PARAMETER` names (the parameter
    /// `svcauth keys create` delivers to), as it does in Lambda. With `false` such a
    /// service has no key to send: its function is not built (its routes answer 502)
    /// and a warning says why.
    pub caller_keys_from_ssm: bool,
    /// Credentials by role, for services calling with `iam`.
    pub credentials: LocalCredentials,
    pub region: String,
}

impl RealFunctions {
    /// The embedded development defaults: development keys, users in memory.
    pub fn dev(clock: Clock) -> Self {
        let authorizer = authorizer::Config::from_lookup(|k| match k {
            "SVCAUTH_KEY_SOURCE" => Some("dev".to_owned()),
            _ => None,
        })
        .expect("the development configuration is valid");
        Self {
            authorizer,
            clock,
            users: UsersSource::Memory(dev_users()),
            service_keys: dev_keys(),
            caller_keys_from_ssm: false,
            credentials: LocalCredentials::dev(),
            region: "us-east-1".into(),
        }
    }

    async fn build_all(
        &self,
        model: &Model,
        site: &Site,
    ) -> Result<BTreeMap<String, Arc<dyn Function>>, String> {
        let users = match &self.users {
            UsersSource::Memory(list) => Users::in_memory(list.clone()),
            UsersSource::DynamoDb { table } => {
                let sdk = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
                Users::new(aws_sdk_dynamodb::Client::new(&sdk), table.clone())
            }
        };
        let mut out: BTreeMap<String, Arc<dyn Function>> = BTreeMap::new();
        for (id, def) in &model.functions {
            let f: Arc<dyn Function> = match def.binary.as_deref() {
                Some("authorizer") => {
                    let source = authorizer::key_source(&self.authorizer).await;
                    let apis = authorizer::api_names(&self.authorizer, &source);
                    let store = authorizer::CachedStore::new(
                        source,
                        self.authorizer.refresh,
                        self.authorizer.load_timeout,
                        self.clock.clone(),
                    )
                    .with_api_names(apis);
                    // Loaded at start, as in Lambda's init phase.
                    store.reload_now().await;
                    Arc::new(RequestAuthorizer::new(store))
                }
                Some("identity-service") => {
                    let roles = roles(def)?;
                    let admins = text(def, identity_service::ADMIN_SERVICES_ENV)
                        .unwrap_or_else(|| "admin-service".into());
                    let admins = admins
                        .split(',')
                        .map(str::trim)
                        .filter(|s| !s.is_empty())
                        .map(str::to_owned)
                        .collect();
                    let state = identity_service::AppState::new(
                        users.clone(),
                        IdentityConfig::new(roles),
                        admins,
                    );
                    Arc::new(LambdaHttp::router(identity_service::router(state)))
                }
                Some("tutor-service") => {
                    let Some(client) = self.client(def, site).await? else {
                        continue;
                    };
                    let state = tutor_service::AppState {
                        identity: IdentityConfig::new(roles(def)?),
                        users: client,
                    };
                    Arc::new(LambdaHttp::router(tutor_service::router(state)))
                }
                other => {
                    tracing::warn!(function = %id, binary = ?other,
                        "no local implementation: its routes answer 502");
                    continue;
                }
            };
            out.insert(id.clone(), f);
        }
        Ok(out)
    }

    /// tutor-service's client for identity-service, as `ClientConfig::from_env` builds
    /// it from the function's environment, with local credentials. `None`: the service
    /// has no key to send (see [`RealFunctions::caller_keys_from_ssm`]).
    async fn client(
        &self,
        def: &FunctionDef,
        site: &Site,
    ) -> Result<Option<ServiceClient>, String> {
        let id = &def.logical_id;
        let base_url = match def.env.get(tutor_service::IDENTITY_SERVICE_URL_ENV) {
            Some(EnvValue::ApiUrl { api }) => site
                .api_url(api)
                .ok_or_else(|| format!("{id}: {api} does not exist for these parameters"))?
                .to_owned(),
            Some(EnvValue::Text(t)) => t.clone(),
            None => {
                return Err(format!(
                    "{id}: no {}",
                    tutor_service::IDENTITY_SERVICE_URL_ENV
                ))
            }
        };
        let caller = text(def, service_client::SERVICE_NAME_ENV)
            .ok_or_else(|| format!("{id}: no {}", service_client::SERVICE_NAME_ENV))?;
        let auth = match text(def, service_client::AUTH_MODE_ENV).as_deref() {
            Some("api-key") => match self.service_keys.get(&caller) {
                Some(key) => AuthConfig::api_key(
                    ApiKey::parse(key).map_err(|e| format!("{id}: the key of {caller}: {e}"))?,
                ),
                None if self.caller_keys_from_ssm => {
                    let parameter =
                        text(def, service_client::API_KEY_PARAMETER_ENV).ok_or_else(|| {
                            format!("{id}: no {}", service_client::API_KEY_PARAMETER_ENV)
                        })?;
                    let sdk =
                        aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
                    AuthConfig::api_key_from_ssm(aws_sdk_ssm::Client::new(&sdk), parameter)
                }
                None => {
                    tracing::warn!(function = %id, service = %caller,
                        "{caller} has no key to send to identity-service: the key store holds only hashes; give its clear key with --service-key-file {caller}=PATH. Its routes answer 502 until then");
                    return Ok(None);
                }
            },
            Some("iam") => {
                let role = def
                    .role
                    .as_deref()
                    .ok_or_else(|| format!("{id}: no execution role"))?;
                let (akid, _) = self
                    .credentials
                    .for_role(role)
                    .ok_or_else(|| format!("{id}: no local credentials for role {role}"))?;
                let creds = self
                    .credentials
                    .credentials(akid)
                    .ok_or_else(|| format!("{id}: credentials {akid}"))?;
                let clock = self.clock.clone();
                AuthConfig::SigV4 {
                    region: self.region.clone(),
                    credentials: CredentialsSource::Static(creds),
                    clock: Some(Arc::new(move || {
                        UNIX_EPOCH + Duration::from_secs(clock().0)
                    })),
                }
            }
            other => return Err(format!("{id}: SERVICE_AUTH_MODE is {other:?}")),
        };
        ServiceClient::new(ClientConfig::new(
            tutor_service::IDENTITY_SERVICE,
            base_url,
            caller,
            auth,
        ))
        .map(Some)
        .map_err(|e| format!("{id}: {e}"))
    }
}

fn text(def: &FunctionDef, name: &str) -> Option<String> {
    match def.env.get(name) {
        Some(EnvValue::Text(t)) => Some(t.clone()),
        _ => None,
    }
}

fn roles(def: &FunctionDef) -> Result<IamRoleMap, String> {
    IamRoleMap::parse(&text(def, service_identity_http::IAM_ROLES_ENV).unwrap_or_default())
        .map_err(|e| format!("{}: SVCAUTH_IAM_ROLES: {e}", def.logical_id))
}

impl FunctionFactory for RealFunctions {
    fn build<'a>(&'a self, model: &'a Model, site: &'a Site) -> FactoryFuture<'a> {
        Box::pin(self.build_all(model, site))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_development_data() {
        assert!(dev_users().len() >= 2);
        let keys = dev_keys();
        for service in ["tutor-service", "admin-service"] {
            assert!(ApiKey::parse(&keys[service]).is_ok(), "{service}");
        }
    }
}
