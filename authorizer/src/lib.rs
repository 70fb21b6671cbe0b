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
pub mod source;

use std::sync::Arc;

pub use apis::{ApiNames, ApiNamesConfig};
pub use config::{Config, ConfigError, SourceConfig};
pub use handler::{handle, response, AuthorizerResponse, Unauthorized};
pub use source::{CachedStore, Clock, KeySource, LoadError};

use keystore_ssm::SsmKeyStore;
use service_auth::UnixTime;

/// Builds the key source a configuration names. The SDK is set up only for `ssm`, with
/// the per-attempt timeout, two attempts at most and the whole load bounded by the
/// caller, so a slow SSM cannot eat Lambda's 10-second init.
pub async fn key_source(config: &Config) -> KeySource {
    match &config.source {
        SourceConfig::Dev => KeySource::Dev,
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
