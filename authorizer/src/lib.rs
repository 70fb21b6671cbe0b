/*!
The API Gateway REST REQUEST authorizer that authenticates calling services by API key.

The binary (`src/main.rs`) is glue: it reads [`Config`], builds the key source once,
loads the store during Lambda's init phase and runs [`handle`] for each event. The
decisions themselves are in `service-auth`; this crate only turns events into plain
inputs and decisions into API Gateway responses, logs one audit line per decision and
counts it as a CloudWatch metric.

The library is public so the local gateway runs exactly this code.
*/
#![forbid(unsafe_code)]

pub mod apis;
pub mod config;
pub mod event;
pub mod handler;
pub mod output;
pub mod source;

use std::sync::Arc;

pub use apis::{ApiNames, ApiNamesConfig};
pub use config::{Config, ConfigError, SourceConfig};

pub use handler::{handle, handle_json, handle_view, response, AuthorizerResponse, Unauthorized};
pub use source::{CachedStore, Clock, KeySource, LoadError};

use keystore_ssm::SsmKeyStore;
use service_auth::UnixTime;

/// The development key store of this build: `Some` only with the cargo feature
/// `dev-store`. A build for deployment has none: started with `SVCAUTH_KEY_SOURCE=dev`,
/// it refuses every request and logs [`NO_DEV_STORE`].
#[cfg(feature = "dev-store")]
pub const DEV_STORE: Option<fn() -> KeySource> = Some(|| KeySource::Dev);
#[cfg(not(feature = "dev-store"))]
pub const DEV_STORE: Option<fn() -> KeySource> = None;

/// Why a build without the development store refuses `SVCAUTH_KEY_SOURCE=dev`.
pub const NO_DEV_STORE: &str = "SVCAUTH_KEY_SOURCE=dev, but this build has no development key store (a build for deployment never has one): set SVCAUTH_KEY_SOURCE=ssm (or file); for local runs build with `--features dev-store`";

/// Builds the key source a configuration names. The SDK is set up only for `ssm`, with
/// the per-attempt timeout, two attempts at most and the whole load bounded by the
/// caller, so a slow SSM cannot eat Lambda's 10-second init.
pub async fn key_source(config: &Config) -> KeySource {
    key_source_with(config, DEV_STORE).await
}

/// [`key_source`] with the development store given (`None`: as in a deployed build).
pub async fn key_source_with(config: &Config, dev_store: Option<fn() -> KeySource>) -> KeySource {
    match &config.source {
        SourceConfig::Dev => match dev_store {
            Some(dev) => dev(),
            None => KeySource::Misconfigured(NO_DEV_STORE.to_owned()),
        },
        SourceConfig::Invalid(e) => KeySource::Misconfigured(e.clone()),
        SourceConfig::File(p) => KeySource::File(p.clone()),
        SourceConfig::Ssm {
            path,
            legacy_parameter,
        } => {
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
            match SsmKeyStore::new(keystore_ssm::aws_sdk_ssm::Client::new(&sdk), path) {
                Ok(s) => KeySource::Ssm(s.with_legacy_parameter(legacy_parameter.clone())),
                Err(e) => KeySource::Misconfigured(e.to_string()),
            }
        }
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
