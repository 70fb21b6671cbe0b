//! tutor-service Lambda entry point: tracing, configuration and the identity-service
//! client built once, then `lambda_http::run`.

use service_identity_http::lambda_service;
use tutor_service::{router, AppState};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_http::Error> {
    lambda_http::tracing::init_default_subscriber();
    let state = AppState::from_env().await?;
    lambda_http::run(lambda_service(router(state))).await
}
