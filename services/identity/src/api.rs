//! The HTTP API: routes, handlers and the one place errors become responses.

use std::sync::Arc;

use axum::extract::rejection::{JsonRejection, PathRejection};
use axum::extract::{FromRef, Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use lambda_http::request::RequestContext;
use service_identity_http::{correlate, json_error, Caller, Correlation, IdentityConfig};

use crate::store::{StoreError, Users};
use crate::user::{valid_role, Email, InvalidInput, NewUser, User, UserId};

/// Shared state, built once per process.
#[derive(Clone)]
pub struct AppState {
    pub users: Users,
    pub identity: IdentityConfig,
    /// Services allowed to create users (`POST /internal/users`).
    pub admin_services: Arc<Vec<String>>,
}

impl FromRef<AppState> for IdentityConfig {
    fn from_ref(s: &AppState) -> Self {
        s.identity.clone()
    }
}

/// The identity-service routes. Every handler takes [`Caller`]: no identity, no answer.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/internal/users", post(create_user))
        .route("/internal/users/{id}", get(get_user))
        .route("/internal/users/by-email/{email}", get(get_user_by_email))
        .fallback(no_route)
        .method_not_allowed_fallback(no_method)
        .with_state(state)
        .layer(axum::middleware::from_fn(correlate))
}

/// Everything a handler can answer besides success.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    #[error("no such user")]
    NotFound,
    #[error("{0}")]
    Forbidden(&'static str),
    #[error("a user with this email already exists")]
    Conflict,
    #[error("internal error")]
    Internal(String),
}

impl From<InvalidInput> for ApiError {
    fn from(e: InvalidInput) -> Self {
        ApiError::BadRequest(e.to_string())
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::EmailTaken => ApiError::Conflict,
            other => ApiError::Internal(other.to_string()),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = match &self {
            ApiError::BadRequest(_) => (StatusCode::BAD_REQUEST, "bad_request"),
            ApiError::NotFound => (StatusCode::NOT_FOUND, "not_found"),
            ApiError::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden"),
            ApiError::Conflict => (StatusCode::CONFLICT, "conflict"),
            ApiError::Internal(detail) => {
                // Details to the log, a generic body to the caller.
                tracing::error!(error = %detail, "internal error");
                (StatusCode::INTERNAL_SERVER_ERROR, "internal")
            }
        };
        json_error(status, code, &self.to_string())
    }
}

fn path_param(p: Result<Path<String>, PathRejection>) -> Result<String, ApiError> {
    p.map(|Path(s)| s).map_err(|_| {
        ApiError::BadRequest("the path is not valid UTF-8 after percent-decoding".into())
    })
}

async fn get_user(
    caller: Caller,
    Correlation(cid): Correlation,
    State(state): State<AppState>,
    id: Result<Path<String>, PathRejection>,
) -> Result<Json<User>, ApiError> {
    let id = UserId::parse(&path_param(id)?)?;
    let user = state.users.get(&id).await?;
    tracing::info!(
        caller = %caller.service, auth = caller.method_name(), credential = %caller.credential_id(),
        correlation_id = %cid, user_id = id.as_str(), found = user.is_some(),
        "user requested by id"
    );
    user.map(Json).ok_or(ApiError::NotFound)
}

async fn get_user_by_email(
    caller: Caller,
    Correlation(cid): Correlation,
    State(state): State<AppState>,
    email: Result<Path<String>, PathRejection>,
) -> Result<Json<User>, ApiError> {
    let email = Email::parse(&path_param(email)?)?;
    let user = state.users.by_email(&email).await?;
    // Never the address in clear: its hash, and the user id once known.
    tracing::info!(
        caller = %caller.service, auth = caller.method_name(), credential = %caller.credential_id(),
        correlation_id = %cid, email_sha256 = %email.log_hash(),
        user_id = user.as_ref().map(|u| u.id.as_str()).unwrap_or("-"), found = user.is_some(),
        "user requested by email"
    );
    user.map(Json).ok_or(ApiError::NotFound)
}

async fn create_user(
    caller: Caller,
    Correlation(cid): Correlation,
    State(state): State<AppState>,
    context: Option<axum::Extension<RequestContext>>,
    body: Result<Json<NewUser>, JsonRejection>,
) -> Result<Response, ApiError> {
    // The authorizer's policy (or IAM) already limits this route to admin services;
    // checked again here in case a route or policy is mis-wired.
    if !state.admin_services.iter().any(|s| *s == caller.service) {
        tracing::warn!(caller = %caller.service, correlation_id = %cid, "create user refused: not an admin service");
        return Err(ApiError::Forbidden("only admin services may create users"));
    }
    let Json(new) = body.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let email = Email::parse(&new.email)?;
    if !valid_role(&new.role) {
        return Err(InvalidInput::Role.into());
    }
    let id = UserId::generate().map_err(|e| ApiError::Internal(format!("random id: {e}")))?;
    let user = User {
        id: id.as_str().to_owned(),
        email: email.as_str().to_owned(),
        role: new.role,
        email_verified: new.email_verified,
    };
    let outcome = state.users.create(&user).await;
    tracing::info!(
        caller = %caller.service, auth = caller.method_name(), credential = %caller.credential_id(),
        correlation_id = %cid, user_id = id.as_str(), email_sha256 = %email.log_hash(),
        created = outcome.is_ok(), "create user"
    );
    outcome?;
    let location = location(context.as_ref().map(|c| &c.0), &user.id);
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        Json(user),
    )
        .into_response())
}

/// The new user's URL path as the caller sees it. Behind API Gateway the function's
/// own path (`/internal/users`) lacks the stage (`/v1`) or a custom domain's base
/// path, and API Gateway passes `Location` through unchanged: so it is built from
/// `requestContext.path`, the path the client called, when there is one.
fn location(context: Option<&RequestContext>, id: &str) -> String {
    let called = match context {
        Some(RequestContext::ApiGatewayV1(ctx)) => ctx.path.as_deref(),
        _ => None,
    };
    match called.map(|p| p.trim_end_matches('/')) {
        Some(p) if p.starts_with('/') && p.bytes().all(|b| b.is_ascii_graphic()) => {
            format!("{p}/{id}")
        }
        _ => format!("/internal/users/{id}"),
    }
}

async fn no_route() -> Response {
    json_error(StatusCode::NOT_FOUND, "no_route", "no such route")
}

async fn no_method() -> Response {
    json_error(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "method not allowed on this route",
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use lambda_http::aws_lambda_events::apigw::ApiGatewayProxyRequestContext;

    fn called(path: Option<&str>) -> RequestContext {
        let mut ctx = ApiGatewayProxyRequestContext::default();
        ctx.path = path.map(str::to_owned);
        RequestContext::ApiGatewayV1(ctx)
    }

    #[test]
    fn location_is_the_path_the_client_called() {
        let id = "6b1f0c52-3f0e-4a8e-9d55-2f1f4c3c9a10";
        // Behind API Gateway: the stage (or a custom domain's base path) stays.
        assert_eq!(
            location(Some(&called(Some("/v1/internal/users"))), id),
            format!("/v1/internal/users/{id}")
        );
        assert_eq!(
            location(Some(&called(Some("/v1/internal/users/"))), id),
            format!("/v1/internal/users/{id}")
        );
        // No context (not behind API Gateway) or an unusable path: the route's own.
        for ctx in [None, Some(called(None)), Some(called(Some("v1 x\n")))] {
            assert_eq!(location(ctx.as_ref(), id), format!("/internal/users/{id}"));
        }
    }
}
