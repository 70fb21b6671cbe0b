//! token-issuer Lambda entry point: tracing, configuration, the KMS and SSM clients,
//! then `lambda_http::run`. The signing key is resolved on the first request (and
//! every few minutes after), so a misnamed key is a clear 503, not a crash loop.

use keystore_ssm::SsmKeyStore;
use service_identity_http::{lambda_service, IdentityConfig};
use token_issuer::api::{Documents, JwksSource, Parts, Signing};
use token_issuer::{router, AppState, Config, RetryPolicy};
use token_kms::aws_sdk_kms;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_http::Error> {
    lambda_http::tracing::init_default_subscriber();
    let config = Config::from_env()?;
    let sdk = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    // One attempt per call: the issuer backs off itself on throttling, within a time
    // budget, so SDK retries would only multiply the calls and the wait.
    let kms_conf = aws_sdk_kms::config::Builder::from(&sdk)
        .retry_config(aws_sdk_kms::config::retry::RetryConfig::standard().with_max_attempts(1))
        .build();
    let ssm = keystore_ssm::aws_sdk_ssm::Client::new(&sdk);
    let store = SsmKeyStore::new(ssm.clone(), &config.ssm_path)?;
    let state = AppState::new(Parts {
        identity: IdentityConfig::from_env()?,
        settings: config.settings,
        signing: Signing::Kms {
            client: aws_sdk_kms::Client::from_conf(kms_conf),
            key: config.signing_key,
        },
        documents: Documents::Ssm(store),
        jwks: JwksSource::Ssm {
            client: ssm,
            parameter: config.jwks_parameter,
        },
        clock: service_auth::clock::SystemClock::shared(),
        retry: RetryPolicy::default(),
    });
    lambda_http::run(lambda_service(router(state))).await
}
