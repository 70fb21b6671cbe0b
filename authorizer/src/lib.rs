/*!
The API Gateway REST REQUEST authorizer that authenticates calling services by API key
(`x-service-api-key`) and, when configured (`SVCAUTH_ACCEPT`), by signed service token
(`Authorization: Bearer`, see [`token`]).

The binary (`src/main.rs`) is glue: it reads [`Config`], builds the [`Authorizer`]
once (key source, token verifier), loads what its configuration needs during Lambda's
init phase and runs it for each event. The decisions themselves are in `service-auth`
and `service-token`; this crate only turns events into plain inputs and decisions into
API Gateway responses, logs one audit line per decision and counts it as a CloudWatch
metric.

The library is public so the local gateway runs exactly this code.
*/
#![forbid(unsafe_code)]

pub mod apis;
pub mod config;
pub mod event;
pub mod handler;
pub mod output;
pub mod response;
pub mod source;
pub mod token;

use std::sync::Arc;

pub use apis::{ApiNames, ApiNamesConfig};
pub use config::{Accept, Config, ConfigError, SourceConfig, TokenConfig};

pub use event::Event;
pub use handler::{handle, Authorizer, Unauthorized};
pub use response::{AuthorizerResponse, Response};
pub use source::{CachedStore, Clock, KeySource, LoadError};
pub use token::TokenAuth;

use keystore_ssm::SsmKeyStore;
use service_auth::UnixTime;

/// Builds the key source a configuration names. The SDK is set up only for `ssm`, with
/// the per-attempt timeout, two attempts at most and the whole load bounded by the
/// caller, so a slow SSM cannot eat Lambda's 10-second init. No source holds the
/// development keys but the file of their hashes (`dev/dev-store.json`), read like any
/// other file: a deployed function has no such file and reads `ssm`.
pub async fn key_source(config: &Config) -> KeySource {
    match &config.source {
        SourceConfig::Invalid(e) => KeySource::Misconfigured(e.clone()),
        SourceConfig::File(p) => KeySource::File(p.clone()),
        SourceConfig::Ssm {
            path,
            legacy_parameter,
        } => match SsmKeyStore::new(ssm_client(config).await, path) {
            Ok(s) => KeySource::Ssm(s.with_legacy_parameter(legacy_parameter.clone())),
            Err(e) => KeySource::Misconfigured(e.to_string()),
        },
    }
}

/// An SSM client with the per-attempt timeout and two attempts at most.
pub async fn ssm_client(config: &Config) -> keystore_ssm::aws_sdk_ssm::Client {
    let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .timeout_config(
            aws_config::timeout::TimeoutConfig::builder()
                .connect_timeout(config.ssm_attempt_timeout)
                .operation_attempt_timeout(config.ssm_attempt_timeout)
                .build(),
        )
        .retry_config(aws_config::retry::RetryConfig::standard().with_max_attempts(2))
        .load()
        .await;
    keystore_ssm::aws_sdk_ssm::Client::new(&sdk)
}

/// The token verifier a configuration asks for (`None` when tokens are not
/// accepted). The key set is read from SSM through the key source's client when there
/// is one, else through a client of its own; an inline JWKS needs none.
pub async fn token_auth(config: &Config, source: &KeySource) -> Option<TokenAuth> {
    let tc = config.token.as_ref()?;
    let jwks = match &tc.jwks {
        // Checked when the configuration was read (an unusable one is refused there).
        config::JwksConfig::Inline(json) => token::JwksSource::Inline(
            service_token::KeySet::from_json(json.as_bytes()).unwrap_or_default(),
        ),
        config::JwksConfig::Ssm { parameter } => token::JwksSource::Ssm {
            client: match source {
                KeySource::Ssm(store) => store.client().clone(),
                _ => ssm_client(config).await,
            },
            parameter: parameter.clone(),
        },
    };
    Some(TokenAuth::new(tc, jwks))
}

/// The whole authorizer a configuration describes (not loaded yet: see
/// [`Authorizer::init`]).
pub async fn authorizer(config: &Config, clock: Clock) -> Authorizer {
    let source = key_source(config).await;
    let apis = api_names(config, &source);
    let tokens = token_auth(config, &source).await;
    // With SSM, a token's standing is read per service (never a full load for it).
    let standings = match (&source, config.accept.tokens()) {
        (KeySource::Ssm(ssm), true) => Some(token::SsmStandings::new(
            ssm.clone(),
            config.refresh,
            config.load_timeout,
        )),
        _ => None,
    };
    let store =
        CachedStore::new(source, config.refresh, config.load_timeout, clock).with_api_names(apis);
    let authorizer = Authorizer::new(store, config.accept, tokens);
    match standings {
        Some(s) => authorizer.with_standings(s),
        None => authorizer,
    }
}

/// Where the authorizer reads API names (see [`apis`]): SSM through the key source's
/// client for `ssm`, else the configured map.
pub fn api_names(config: &Config, source: &KeySource) -> ApiNames {
    match (&config.api_names, source) {
        (ApiNamesConfig::Static(map), _) => ApiNames::fixed(map.clone()),
        (ApiNamesConfig::Ssm { path }, KeySource::Ssm(store)) => {
            ApiNames::ssm(store.client().clone(), path, config.refresh)
        }
        // Misconfigured source: nothing is loaded, nothing is named.
        (ApiNamesConfig::Ssm { .. }, _) => ApiNames::none(),
    }
}

/// The wall clock.
pub fn system_clock() -> Clock {
    Arc::new(UnixTime::now)
}
