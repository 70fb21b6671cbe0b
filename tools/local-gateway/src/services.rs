//! The real functions behind the template's routes, run in process: each template
//! function is built from its `Metadata.BuildProperties.Binary` and its environment
//! in the template, the way its `main.rs` builds it in Lambda.
//!
//! | binary | built as |
//! |---|---|
//! | `authorizer` | `authorizer::handle` with a `CachedStore` over the chosen key source |
//! | `identity-service` | `identity_service::router`, users in memory (`dev/dev-users.json`) or in DynamoDB when `USERS_TABLE` is set |
//! | `tutor-service` | `tutor_service::router`, its identity-service client pointed at the gateway's URL of the API the template names, sending its key (`api-key`: the development key, a key given with `--service-key-file`, or with `--key-source ssm` the key delivered to its `SERVICE_API_KEY_PARAMETER`), signing with its role's development credentials (`iam`), or sending tokens (`token`) traded for either at the gateway's token API |
//! | `token-issuer` | `token_issuer::router`, signing with the ephemeral development key ([`DevSigner`], the default) or with KMS ([`TokenSigning::Kms`]); service documents from the authorizer's key source |
//!
//! Each authorizer function gets the gateway's authorizer environment
//! ([`RealFunctions::authorizer_env`]) under the token settings its template
//! environment names (`SVCAUTH_ACCEPT`, `SVCAUTH_TOKEN_ISSUER`,
//! `SVCAUTH_TOKEN_MIN_REMAINING_SECS`, `SVCAUTH_TOKEN_JWKS_PARAMETER`); with the
//! development key its key set is given inline (`SVCAUTH_TOKEN_JWKS`).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use identity_service::{User, Users};
use service_client::{TokenConfig, TokenSettings};
use token_issuer::api::{Documents, JwksSource, Parts, Signing};

use crate::dev_signer::DevSigner;
use service_auth::identity::IamRoleMap;
use service_auth::ApiKey;
use service_client::{AuthConfig, ClientConfig, CredentialsSource, ServiceClient};
use service_identity_http::IdentityConfig;

use crate::function::{Function, LambdaHttp, RequestAuthorizer};
use crate::gateway::Clock;
use crate::sigv4::LocalCredentials;
use crate::template::{EnvValue, FunctionDef, Model};
use crate::{FactoryFuture, FunctionFactory, Site};

/// Local API ids to API names: the development names and the token API's (`token`,
/// the name its authorizer requires for `POST /token`).
pub const LOCAL_API_NAMES: &str =
    "a1b2c3d4e5=identity,identitykey=identity,tutorkey=tutor,token=token";

/// The development users (`dev/dev-users.json`).
pub const DEV_USERS_JSON: &str = include_str!("../../../dev/dev-users.json");
/// The clear development keys (`dev/dev-keys.json`).
pub const DEV_KEYS_JSON: &str = include_str!("../../../dev/dev-keys.json");

/// The file the authorizer reads the development keys' hashes from with
/// `--key-source dev` (`SVCAUTH_KEY_SOURCE=file`: no authorizer build holds them): the
/// embedded `dev/dev-store.json`, written under the temporary directory (once per
/// process, replaced whole: every gateway writes the same text), whatever the working
/// directory. `None` (logged) when it cannot be
/// written: the authorizer then refuses to start and says so.
pub fn dev_store_file() -> Option<String> {
    static FILE: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    FILE.get_or_init(|| {
        let dir = std::env::temp_dir();
        let path = dir.join("svcauth-local-gateway-dev-store.json");
        let partial = dir.join(format!("svcauth-dev-store-{}.partial", std::process::id()));
        match std::fs::write(&partial, service_auth::dev::DEV_STORE_JSON)
            .and_then(|_| std::fs::rename(&partial, &path))
        {
            Ok(()) => Some(path.display().to_string()),
            Err(e) => {
                tracing::error!(path = %path.display(), error = %e, "cannot write the development store file");
                None
            }
        }
    })
    .clone()
}

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

/// An environment: a variable's value by name.
pub type Lookup = Arc<dyn Fn(&str) -> Option<String> + Send + Sync>;

/// The authorizer variables a function's template environment decides (token modes).
const AUTHORIZER_TEMPLATE_VARS: [&str; 4] = [
    "SVCAUTH_ACCEPT",
    "SVCAUTH_TOKEN_ISSUER",
    "SVCAUTH_TOKEN_MIN_REMAINING_SECS",
    "SVCAUTH_TOKEN_JWKS_PARAMETER",
];

/// How the local token issuer signs.
#[derive(Debug, Clone)]
pub enum TokenSigning {
    /// An ephemeral development key made at start ([`DevSigner`]); its key set is
    /// given to the issuer and the authorizers inline.
    Dev,
    /// KMS through the AWS SDK's default configuration (`AWS_ENDPOINT_URL` works with
    /// moto) with this key (id, ARN or alias); the key set is the SSM parameter the
    /// template names (`SVCAUTH_TOKEN_JWKS_PARAMETER`), as deployed.
    Kms { key: String },
}

/// The real authorizer and services.
pub struct RealFunctions {
    /// The authorizer's environment (`SVCAUTH_KEY_SOURCE`, store TTL, ...); each
    /// authorizer function's token settings come from the template on top of it.
    pub authorizer_env: Lookup,
    /// How the token issuer signs (token modes).
    pub token_signing: TokenSigning,
    /// The development key made by the last build, when one was (token modes with
    /// [`TokenSigning::Dev`]): for the start-up examples.
    pub dev_signer: std::sync::OnceLock<Arc<DevSigner>>,
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
        Self {
            authorizer_env: Arc::new(|k| match k {
                "SVCAUTH_KEY_SOURCE" => Some("file".to_owned()),
                "SVCAUTH_KEYS_FILE" => dev_store_file(),
                "SVCAUTH_API_NAMES" => Some(LOCAL_API_NAMES.to_owned()),
                _ => None,
            }),
            token_signing: TokenSigning::Dev,
            dev_signer: std::sync::OnceLock::new(),
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
        // One development key per start, when something needs it.
        let dev_signer = match self.token_signing {
            TokenSigning::Dev if model.functions.values().any(uses_tokens) => {
                let made = Arc::new(DevSigner::generate()?);
                Some(self.dev_signer.get_or_init(|| made).clone())
            }
            _ => None,
        };
        let mut out: BTreeMap<String, Arc<dyn Function>> = BTreeMap::new();
        for (id, def) in &model.functions {
            let f: Arc<dyn Function> = match def.binary.as_deref() {
                Some("authorizer") => {
                    let config = self.authorizer_config(def, dev_signer.as_deref())?;
                    let authorizer = authorizer::authorizer(&config, self.clock.clone()).await;
                    // Loaded at start, as in Lambda's init phase: the key store when
                    // keys are accepted, the key set when tokens are.
                    authorizer.init().await;
                    Arc::new(RequestAuthorizer::new(authorizer))
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
                Some("token-issuer") => {
                    let state = self.issuer(def, dev_signer.clone()).await?;
                    Arc::new(LambdaHttp::router(token_issuer::router(state)))
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
        let mode = text(def, service_client::AUTH_MODE_ENV);
        let auth = match mode.as_deref() {
            Some("token") => {
                let issuer_url = match def.env.get(service_client::TOKEN_URL_ENV) {
                    Some(EnvValue::ApiUrl { api }) => site
                        .api_url(api)
                        .ok_or_else(|| format!("{id}: {api} does not exist for these parameters"))?
                        .to_owned(),
                    Some(EnvValue::Text(t)) => t.clone(),
                    None => return Err(format!("{id}: no {}", service_client::TOKEN_URL_ENV)),
                };
                let proof_mode =
                    text(def, service_client::TOKEN_PROOF_ENV).unwrap_or_else(|| "api-key".into());
                let Some(proof) = self.proof(def, &caller, &proof_mode).await? else {
                    return Ok(None);
                };
                let mut t = TokenConfig::new(issuer_url, proof);
                let min_remaining = match text(def, service_client::TOKEN_MIN_REMAINING_ENV) {
                    Some(v) => v.parse::<u64>().map_err(|_| {
                        format!("{id}: {} is {v:?}", service_client::TOKEN_MIN_REMAINING_ENV)
                    })?,
                    None => TokenSettings::default().min_remaining.as_secs(),
                };
                t.settings.min_remaining = Duration::from_secs(min_remaining);
                let clock = self.clock.clone();
                t.clock = Some(Arc::new(move || {
                    UNIX_EPOCH + Duration::from_secs(clock().0)
                }));
                AuthConfig::token(t)
            }
            Some(m @ ("api-key" | "iam")) => match self.proof(def, &caller, m).await? {
                Some(a) => a,
                None => return Ok(None),
            },
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

impl RealFunctions {
    /// A calling service's own proof: its key (`api-key`) or its role's development
    /// credentials (`iam`). `None`: it has no key to send (see
    /// [`RealFunctions::caller_keys_from_ssm`]).
    async fn proof(
        &self,
        def: &FunctionDef,
        caller: &str,
        mode: &str,
    ) -> Result<Option<AuthConfig>, String> {
        let id = &def.logical_id;
        Ok(Some(match mode {
            "api-key" => match self.service_keys.get(caller) {
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
                        "{caller} has no key to send: the key store holds only hashes; give its clear key with --service-key-file {caller}=PATH. Its routes answer 502 until then");
                    return Ok(None);
                }
            },
            "iam" => {
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
            other => return Err(format!("{id}: a proof of {other:?}: use api-key or iam")),
        }))
    }

    /// An authorizer function's configuration: the gateway's authorizer environment
    /// under the token settings of the function's template environment.
    fn authorizer_config(
        &self,
        def: &FunctionDef,
        dev_signer: Option<&DevSigner>,
    ) -> Result<authorizer::Config, String> {
        let accepts_tokens =
            text(def, "SVCAUTH_ACCEPT").is_some_and(|a| a.split(',').any(|m| m.trim() == "token"));
        let base = self.authorizer_env.clone();
        authorizer::Config::from_lookup(|k| {
            if accepts_tokens {
                if let Some(s) = dev_signer {
                    match k {
                        "SVCAUTH_TOKEN_JWKS" => return Some(s.jwks().to_owned()),
                        // The key set is given inline: no SSM parameter to read.
                        "SVCAUTH_TOKEN_JWKS_PARAMETER" => return None,
                        _ => {}
                    }
                }
            }
            if AUTHORIZER_TEMPLATE_VARS.contains(&k) {
                if let Some(v) = text(def, k) {
                    return Some(v);
                }
            }
            base(k)
        })
        .map_err(|e| format!("{}: {e}", def.logical_id))
    }

    /// The token issuer's state: the template's settings, the development key or KMS,
    /// and the service documents of the authorizer's key source.
    async fn issuer(
        &self,
        def: &FunctionDef,
        dev_signer: Option<Arc<DevSigner>>,
    ) -> Result<token_issuer::AppState, String> {
        let id = &def.logical_id;
        let config = token_issuer::Config::from_lookup(|k| match k {
            // The template names a local logical id; the key is chosen here.
            "SVCAUTH_TOKEN_KEY" => Some(match &self.token_signing {
                TokenSigning::Kms { key } => key.clone(),
                TokenSigning::Dev => "local development key".into(),
            }),
            _ => text(def, k),
        })
        .map_err(|e| format!("{id}: {e}"))?;
        let (signing, jwks) = match (&self.token_signing, dev_signer) {
            (TokenSigning::Dev, Some(s)) => {
                let jwks = JwksSource::Inline(s.jwks().to_owned());
                (Signing::Local(s), jwks)
            }
            (TokenSigning::Dev, None) => return Err(format!("{id}: no development key")),
            (TokenSigning::Kms { key }, _) => {
                let sdk = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
                // One attempt per call, as deployed: the issuer backs off itself.
                let kms = token_kms::aws_sdk_kms::config::Builder::from(&sdk)
                    .retry_config(
                        token_kms::aws_sdk_kms::config::retry::RetryConfig::standard()
                            .with_max_attempts(1),
                    )
                    .build();
                (
                    Signing::Kms {
                        client: token_kms::aws_sdk_kms::Client::from_conf(kms),
                        key: key.clone(),
                    },
                    JwksSource::Ssm {
                        client: aws_sdk_ssm::Client::new(&sdk),
                        parameter: config.jwks_parameter.clone(),
                    },
                )
            }
        };
        let documents = match self.authorizer_env.as_ref()("SVCAUTH_KEY_SOURCE").as_deref() {
            Some("file") => {
                let path = self.authorizer_env.as_ref()("SVCAUTH_KEYS_FILE")
                    .ok_or_else(|| format!("{id}: no SVCAUTH_KEYS_FILE"))?;
                // Read at each lookup (the issuer keeps what it read for a few seconds):
                // `svcauth --store file` changes show up as they would from SSM.
                Documents::Fixed(Arc::new(move |service| {
                    let text = std::fs::read_to_string(&path).ok()?;
                    service_auth::dev::parse_documents(&text)
                        .ok()?
                        .into_iter()
                        .find(|d| d.service == service)
                }))
            }
            Some("ssm") => {
                let sdk = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
                let store = keystore_ssm::SsmKeyStore::new(
                    aws_sdk_ssm::Client::new(&sdk),
                    &config.ssm_path,
                )
                .map_err(|e| format!("{id}: {e}"))?;
                Documents::Ssm(store)
            }
            _ => {
                let docs = service_auth::dev::dev_documents()
                    .map_err(|e| format!("{id}: the development store: {e}"))?;
                Documents::Fixed(Arc::new(move |service| {
                    docs.iter().find(|d| d.service == service).cloned()
                }))
            }
        };
        Ok(token_issuer::AppState::new(Parts {
            identity: IdentityConfig::new(roles(def)?),
            settings: config.settings,
            signing,
            documents,
            jwks,
            clock: self.clock.clone(),
            retry: token_issuer::RetryPolicy::default(),
        }))
    }
}

/// Whether a function signs or verifies tokens (then a development key is made).
fn uses_tokens(def: &FunctionDef) -> bool {
    def.binary.as_deref() == Some("token-issuer")
        || text(def, "SVCAUTH_ACCEPT").is_some_and(|a| a.contains("token"))
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
