//! identity-service Lambda entry point: tracing, configuration and the DynamoDB client
//! built once, then `lambda_http::run`.

use identity_service::{router, AppState, Config, Users};
use service_identity_http::lambda_service;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_http::Error> {
    lambda_http::tracing::init_default_subscriber();
    let config = Config::from_env()?;
    let sdk = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let users = Users::new(aws_sdk_dynamodb::Client::new(&sdk), config.table);
    let state = AppState::new(users, config.identity, config.admin_services);
    lambda_http::run(lambda_service(router(state))).await
}
