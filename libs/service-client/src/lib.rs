/*!
Outbound client for internal APIs behind API Gateway.

One [`ServiceClient`] per called service, built once per process:

* **Authentication**, chosen by configuration ([`AuthConfig`]): an API key in
  `x-service-api-key`, read once from the caller's own SSM SecureString (with
  decryption) and cached, re-read after a refusal when the cached copy is old enough;
  or a SigV4 signature for `execute-api` with credentials from `aws-config`'s default
  chain (a Lambda or ECS task role: no secret at all), cached until shortly before
  they expire; or (**token mode**) a short-lived signed token from the token issuer,
  obtained with either of those proofs, reused, refreshed before the called API's
  authorizer would refuse it (single-flight, jittered), and replaced once after a
  401 ([`TokenConfig`]).
* **Bounded calls**: a timeout on every attempt (default 5 s); retries with jittered
  exponential backoff only for idempotent methods after connection errors, 429 and
  5xx ([`RetryPolicy`]); a circuit breaker that fails fast after repeated failures and
  lets one probe through after a cool-down ([`BreakerConfig`]).
* **Traceable**: the caller's correlation id goes out as `x-correlation-id` (a new
  one when there is none).
* **Safe paths**: each route parameter is one percent-encoded path segment
  ([`Route`]), so an email or a slash cannot change the route.
* **Useful errors** ([`ClientError`]): which service, which route template, and why;
  never key material, a signature, or the filled-in path.

It does not follow redirects, speak HTTP/2, or pool credentials across processes; it
uses the rustls (aws-lc-rs) stack the AWS SDK already brings, and no other.
*/
#![forbid(unsafe_code)]

use std::time::Duration;

mod auth;
mod breaker;
mod client;
mod clock;
mod error;
mod retry;
mod route;
mod token;

pub use auth::{
    sign_request, AuthConfig, CredentialsSource, KeySource, TokenConfig, API_KEY_HEADER,
    SIGV4_SERVICE,
};
pub use breaker::{Admission, Breaker, BreakerConfig, State as BreakerState};
pub use client::{ClientConfig, ServiceClient};
pub use clock::Clock;
pub use error::ClientError;
pub use retry::{Outcome, RetryPolicy};
pub use route::{PathError, Route};
pub use service_auth::correlation::{CorrelationId, CORRELATION_ID_HEADER};
pub use token::{
    Schedule, TokenGrant, TokenRequest, TokenSettings, MAX_TOKEN_BYTES, MIN_TOKEN_AGE_FOR_REFRESH,
    TOKEN_IAM_ROUTE, TOKEN_ROUTE,
};

/// `api-key`, `iam` or `token`.
pub const AUTH_MODE_ENV: &str = "SERVICE_AUTH_MODE";
/// Token mode: base URL of the token API, stage included.
pub const TOKEN_URL_ENV: &str = "SERVICE_TOKEN_URL";
/// Token mode: the proof traded for tokens, `api-key` (default) or `iam`.
pub const TOKEN_PROOF_ENV: &str = "SERVICE_TOKEN_PROOF";
/// Token mode: the called API's authorizer result-cache TTL in seconds (default 60).
pub const TOKEN_MIN_REMAINING_ENV: &str = "SERVICE_TOKEN_MIN_REMAINING_SECS";
/// Token mode: the lifetime to ask for, seconds (default: the issuer's).
pub const TOKEN_LIFETIME_ENV: &str = "SERVICE_TOKEN_LIFETIME_SECS";
/// Token mode: API names to narrow the token to, comma separated (default: all granted).
pub const TOKEN_AUDIENCE_ENV: &str = "SERVICE_TOKEN_AUDIENCE";
/// The caller's own service name.
pub const SERVICE_NAME_ENV: &str = "SERVICE_NAME";
/// SSM parameter holding the caller's API key (`api-key` mode).
pub const API_KEY_PARAMETER_ENV: &str = "SERVICE_API_KEY_PARAMETER";

impl ClientConfig {
    /// Configuration from the environment: `SERVICE_AUTH_MODE` (`api-key`, `iam` or
    /// `token`), `SERVICE_NAME`, `SERVICE_API_KEY_PARAMETER` (api-key proof), the base
    /// URL from `base_url_env` (e.g. `IDENTITY_SERVICE_URL`), the `SERVICE_TOKEN_*`
    /// variables in token mode, and AWS settings from `aws-config` (loaded once here:
    /// region, credentials chain, endpoint overrides).
    pub async fn from_env(service: &str, base_url_env: &str) -> Result<Self, ClientError> {
        let var = |name: &str| {
            std::env::var(name)
                .ok()
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        let required =
            |name: &str| var(name).ok_or_else(|| ClientError::Config(format!("{name} is not set")));
        let base_url = required(base_url_env)?;
        let caller = required(SERVICE_NAME_ENV)?;
        let mode = required(AUTH_MODE_ENV)?;
        let sdk = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
        let proof = |mode: &str| -> Result<AuthConfig, ClientError> {
            match mode {
                "api-key" => {
                    let parameter = required(API_KEY_PARAMETER_ENV)?;
                    Ok(AuthConfig::api_key_from_ssm(
                        aws_sdk_ssm::Client::new(&sdk),
                        parameter,
                    ))
                }
                "iam" => {
                    let region = sdk.region().map(|r| r.to_string()).ok_or_else(|| {
                        ClientError::Config("no AWS region: set AWS_REGION".into())
                    })?;
                    let provider = sdk.credentials_provider().ok_or_else(|| {
                        ClientError::Config(
                            "no AWS credentials provider in the default chain".into(),
                        )
                    })?;
                    Ok(AuthConfig::sigv4(region, provider))
                }
                other => Err(ClientError::Config(format!(
                    "{AUTH_MODE_ENV} is {other:?}: use \"api-key\", \"iam\" or \"token\""
                ))),
            }
        };
        let auth = match mode.as_str() {
            "token" => {
                let proof_mode = var(TOKEN_PROOF_ENV).unwrap_or_else(|| "api-key".into());
                if !matches!(proof_mode.as_str(), "api-key" | "iam") {
                    return Err(ClientError::Config(format!(
                        "{TOKEN_PROOF_ENV} is {proof_mode:?}: use \"api-key\" or \"iam\""
                    )));
                }
                let mut t = TokenConfig::new(required(TOKEN_URL_ENV)?, proof(&proof_mode)?);
                t.settings.min_remaining = Duration::from_secs(
                    seconds(TOKEN_MIN_REMAINING_ENV, var(TOKEN_MIN_REMAINING_ENV))?.unwrap_or(60),
                );
                t.request.lifetime_seconds = seconds(TOKEN_LIFETIME_ENV, var(TOKEN_LIFETIME_ENV))?;
                t.request.audience = var(TOKEN_AUDIENCE_ENV).map(|v| {
                    v.split(',')
                        .map(str::trim)
                        .filter(|s| !s.is_empty())
                        .map(str::to_owned)
                        .collect()
                });
                AuthConfig::token(t)
            }
            other => proof(other)?,
        };
        Ok(ClientConfig::new(service, base_url, caller, auth))
    }
}

fn seconds(name: &str, value: Option<String>) -> Result<Option<u64>, ClientError> {
    value
        .map(|v| {
            v.parse::<u64>().map_err(|_| {
                ClientError::Config(format!("{name} is {v:?}: give a whole number of seconds"))
            })
        })
        .transpose()
}
