/*!
tutor-service: a `lambda_http` backend that builds student profiles from
identity-service, called through [`service_client`].

`GET /internal/tutor/students/{id}/profile` requires the caller's identity (like every
backend route), calls identity-service `GET /internal/users/{id}` with this service's
own credentials (API key or SigV4, by configuration) and the caller's correlation id,
and answers with a profile. The dependency's answers map to ours:

| identity-service | tutor-service |
|---|---|
| 200 | 200 with the profile |
| 404 | 404 (no such student) |
| 401 / 403 | 502 naming the dependency: our credentials were refused (an operator problem) |
| 429 / 5xx / timeout / connection failure / open circuit | 503 with `Retry-After` |
| anything else | 502 |

It does not authenticate its own callers (API Gateway did) nor hold identity data.
*/
#![forbid(unsafe_code)]

use axum::extract::rejection::PathRejection;
use axum::extract::{FromRef, Path, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use service_client::{ClientConfig, ClientError, Route, ServiceClient};
use service_identity_http::{correlate, json_error, Caller, Correlation, IdentityConfig};

/// The identity-service route this service calls.
pub const GET_USER: Route = Route::get("/internal/users/{id}");
/// Name of the dependency, in errors and logs.
pub const IDENTITY_SERVICE: &str = "identity-service";
/// Base URL of the internal API (stage included).
pub const IDENTITY_SERVICE_URL_ENV: &str = "IDENTITY_SERVICE_URL";
/// `Retry-After` when the dependency gave none.
pub const DEFAULT_RETRY_AFTER_SECS: u64 = 5;

#[derive(Clone)]
pub struct AppState {
    pub identity: IdentityConfig,
    pub users: ServiceClient,
}

impl FromRef<AppState> for IdentityConfig {
    fn from_ref(s: &AppState) -> Self {
        s.identity.clone()
    }
}

impl AppState {
    /// From the environment: `SVCAUTH_IAM_ROLES`, `IDENTITY_SERVICE_URL`,
    /// `SERVICE_AUTH_MODE`, `SERVICE_NAME`, `SERVICE_API_KEY_PARAMETER`, and in token mode
    /// the `SERVICE_TOKEN_*` variables (see docs/backends.md).
    pub async fn from_env() -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        let identity = IdentityConfig::from_env()?;
        let config = ClientConfig::from_env(IDENTITY_SERVICE, IDENTITY_SERVICE_URL_ENV).await?;
        Ok(Self {
            identity,
            users: ServiceClient::new(config)?,
        })
    }
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .route(
            "/internal/tutor/students/{id}/profile",
            get(student_profile),
        )
        .fallback(|| async { json_error(StatusCode::NOT_FOUND, "no_route", "no such route") })
        .with_state(state)
        .layer(axum::middleware::from_fn(correlate))
}

/// A user as identity-service returns it.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct UserDto {
    id: String,
    email: String,
    role: String,
    email_verified: bool,
}

/// What this service answers.
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct StudentProfile {
    pub student_id: String,
    pub email: String,
    pub email_verified: bool,
    pub role: String,
}

fn valid_id(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

async fn student_profile(
    caller: Caller,
    Correlation(cid): Correlation,
    State(state): State<AppState>,
    id: Result<Path<String>, PathRejection>,
) -> Response {
    let Some(id) = id.ok().map(|Path(id)| id).filter(|id| valid_id(id)) else {
        return json_error(
            StatusCode::BAD_REQUEST,
            "bad_request",
            "a student id is 1-64 characters of A-Z a-z 0-9 _ -",
        );
    };
    let result = state
        .users
        .get_json::<UserDto>(&GET_USER, &[&id], Some(&cid))
        .await;
    match &result {
        Ok(_) => tracing::info!(caller = %caller.service, auth = caller.method_name(),
            correlation_id = %cid, student_id = %id, "student profile served"),
        Err(e) => tracing::warn!(caller = %caller.service, auth = caller.method_name(),
            correlation_id = %cid, student_id = %id, "student profile failed: {e}"),
    }
    match result {
        Ok(u) => Json(StudentProfile {
            student_id: u.id,
            email: u.email,
            email_verified: u.email_verified,
            role: u.role,
        })
        .into_response(),
        Err(e) => dependency_error(&e),
    }
}

/// The one place the dependency's failures become our answers.
pub fn dependency_error(e: &ClientError) -> Response {
    match e.status() {
        Some(404) => return json_error(StatusCode::NOT_FOUND, "not_found", "no such student"),
        Some(401 | 403) => {
            return json_error(
                StatusCode::BAD_GATEWAY,
                "dependency_refused",
                "identity-service refused tutor-service's credentials",
            )
        }
        _ => {}
    }
    // Token mode: the token issuer refused our proof (a revoked key, an unmapped role,
    // no `POST /token` grant): as above, an operator problem.
    if let ClientError::Token {
        status: Some(401 | 403),
        ..
    } = e
    {
        return json_error(
            StatusCode::BAD_GATEWAY,
            "dependency_refused",
            "the token issuer refused tutor-service's credentials",
        );
    }
    if e.is_unavailable() {
        let secs = e
            .retry_after()
            .map(|d| d.as_secs_f64().ceil() as u64)
            .unwrap_or(DEFAULT_RETRY_AFTER_SECS)
            .clamp(1, 300);
        let mut res = json_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "dependency_unavailable",
            "identity-service is unavailable; retry later",
        );
        res.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        return res;
    }
    match e {
        ClientError::Credentials { .. } | ClientError::Request { .. } | ClientError::Config(_) => {
            json_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "internal error",
            )
        }
        _ => json_error(
            StatusCode::BAD_GATEWAY,
            "dependency_error",
            "identity-service gave an unusable answer",
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn status(s: u16, retry_after: Option<u64>) -> ClientError {
        ClientError::Status {
            service: IDENTITY_SERVICE.into(),
            route: GET_USER.name(),
            status: s,
            code: None,
            retry_after: retry_after.map(Duration::from_secs),
        }
    }

    fn answer(e: ClientError) -> (u16, Option<String>) {
        let r = dependency_error(&e);
        (
            r.status().as_u16(),
            r.headers()
                .get("retry-after")
                .map(|v| v.to_str().unwrap().to_owned()),
        )
    }

    #[test]
    fn dependency_answers_map_to_ours() {
        assert_eq!(answer(status(404, None)), (404, None));
        assert_eq!(answer(status(401, None)), (502, None));
        assert_eq!(answer(status(403, None)), (502, None));
        assert_eq!(answer(status(500, None)), (503, Some("5".into())));
        assert_eq!(answer(status(503, Some(12))), (503, Some("12".into())));
        assert_eq!(answer(status(429, Some(0))), (503, Some("1".into())));
        assert_eq!(answer(status(400, None)), (502, None));
        let open = ClientError::CircuitOpen {
            service: IDENTITY_SERVICE.into(),
            route: GET_USER.name(),
            retry_after: Duration::from_millis(2500),
        };
        assert_eq!(answer(open), (503, Some("3".into())));
        let timeout = ClientError::Timeout {
            service: IDENTITY_SERVICE.into(),
            route: GET_USER.name(),
            timeout: Duration::from_secs(5),
        };
        assert_eq!(answer(timeout), (503, Some("5".into())));
        let creds = ClientError::Credentials {
            service: IDENTITY_SERVICE.into(),
            reason: "x".into(),
        };
        assert_eq!(answer(creds), (500, None));
        let token = |status: Option<u16>, unavailable: bool| ClientError::Token {
            service: IDENTITY_SERVICE.into(),
            reason: "x".into(),
            status,
            code: None,
            retry_after: None,
            unavailable,
        };
        assert_eq!(answer(token(Some(401), false)), (502, None));
        assert_eq!(answer(token(Some(403), false)), (502, None));
        assert_eq!(answer(token(Some(503), true)), (503, Some("5".into())));
        assert_eq!(answer(token(None, true)), (503, Some("5".into())));
        // An unusable issuer answer (not a token, too short-lived): 502.
        assert_eq!(answer(token(None, false)), (502, None));
    }
}
