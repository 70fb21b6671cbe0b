/*!
Outbound client for internal APIs behind API Gateway.

One [`ServiceClient`] per called service, built once per process:

* **Authentication**, chosen by configuration ([`AuthConfig`]): an API key in
  `x-service-api-key`, read once from the caller's own SSM SecureString (with
  decryption) and cached, re-read after a refusal when the cached copy is old enough;
  or a SigV4 signature for `execute-api` with credentials from `aws-config`'s default
  chain (a Lambda or ECS task role: no secret at all), cached until shortly before
  they expire.
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

mod auth;
mod breaker;
mod client;
mod error;
mod retry;
mod route;

pub use auth::{
    sign_request, AuthConfig, Clock, CredentialsSource, KeySource, API_KEY_HEADER, SIGV4_SERVICE,
};
pub use breaker::{Admission, Breaker, BreakerConfig, State as BreakerState};
pub use client::{ClientConfig, ServiceClient};
pub use error::ClientError;
pub use retry::{Outcome, RetryPolicy};
pub use route::{PathError, Route};
pub use service_auth::identity::{CorrelationId, CORRELATION_ID_HEADER};

/// `api-key` or `iam`.
pub const AUTH_MODE_ENV: &str = "SERVICE_AUTH_MODE";
/// The caller's own service name.
pub const SERVICE_NAME_ENV: &str = "SERVICE_NAME";
/// SSM parameter holding the caller's API key (`api-key` mode).
pub const API_KEY_PARAMETER_ENV: &str = "SERVICE_API_KEY_PARAMETER";

impl ClientConfig {
    /// Configuration from the environment: `SERVICE_AUTH_MODE` (`api-key` or `iam`),
    /// `SERVICE_NAME`, `SERVICE_API_KEY_PARAMETER` (api-key mode), the base URL from
    /// `base_url_env` (e.g. `IDENTITY_SERVICE_URL`), and AWS settings from `aws-config`
    /// (loaded once here: region, credentials chain, endpoint overrides).
    pub async fn from_env(service: &str, base_url_env: &str) -> Result<Self, ClientError> {
        let var = |name: &str| {
            std::env::var(name)
                .ok()
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
                .ok_or_else(|| ClientError::Config(format!("{name} is not set")))
        };
        let base_url = var(base_url_env)?;
        let caller = var(SERVICE_NAME_ENV)?;
        let mode = var(AUTH_MODE_ENV)?;
        let sdk = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
        let auth = match mode.as_str() {
            "api-key" => {
                let parameter = var(API_KEY_PARAMETER_ENV)?;
                AuthConfig::api_key_from_ssm(aws_sdk_ssm::Client::new(&sdk), parameter)
            }
            "iam" => {
                let region = sdk
                    .region()
                    .map(|r| r.to_string())
                    .ok_or_else(|| ClientError::Config("no AWS region: set AWS_REGION".into()))?;
                let provider = sdk.credentials_provider().ok_or_else(|| {
                    ClientError::Config("no AWS credentials provider in the default chain".into())
                })?;
                AuthConfig::sigv4(region, provider)
            }
            other => {
                return Err(ClientError::Config(format!(
                    "{AUTH_MODE_ENV} is {other:?}: use \"api-key\" or \"iam\""
                )))
            }
        };
        Ok(ClientConfig::new(service, base_url, caller, auth))
    }
}
