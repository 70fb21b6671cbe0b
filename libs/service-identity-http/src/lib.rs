/*!
The caller's service identity for `lambda_http` + axum backends behind API Gateway REST.

* [`Caller`]: an axum extractor (the original design's `@ServiceIdentity()`). It reads
  the API Gateway request context that `lambda_http` stores in the request extensions
  (`lambda_http::request::RequestContext`) and hands it to
  [`service_auth::identity::identify`]: the authorizer's context (an API-key caller, or
  a signed-token caller: `authenticatedBy` `token`, with `tokenId`, `tokenExpiresAt`,
  `tokenProof`) or the `AWS_IAM` caller, mapped through [`IdentityConfig`] (`SVCAUTH_IAM_ROLES`). A request
  without an identity is rejected with a JSON 401 (a JSON 403 for an authenticated
  principal that is not a known service). Headers are never trusted for identity.
* [`CorrelationId`]: an extractor for the request's correlation id (`x-correlation-id`,
  else API Gateway's request id, else a new one), and [`correlate`], a middleware that
  resolves it once per request and echoes it on the response.
* [`lambda_service`]: wraps a `Router` for `lambda_http::run`, routing on the path API
  Gateway received (without the stage prefix `lambda_http` adds).
* [`json_error`]: the JSON error body every backend answers with.

It does not authenticate anything itself (API Gateway and the authorizer did), does not
authorize routes (the authorizer's policy or IAM did), and has no AWS SDK dependency.
*/
#![forbid(unsafe_code)]

use std::sync::Arc;

use axum::extract::{FromRef, FromRequestParts, MatchedPath, Request};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use lambda_http::request::RequestContext;
use lambda_http::RequestExt;
use service_auth::identity::{identify, IamRoleMap, IdentityError, RoleMapError};

pub use service_auth::correlation::{CorrelationId, CORRELATION_ID_HEADER};
pub use service_auth::identity::{AuthMethod, ServiceIdentity, TokenProof};

/// Environment variable holding the IAM role to service map.
pub const IAM_ROLES_ENV: &str = "SVCAUTH_IAM_ROLES";

/// What the [`Caller`] extractor needs from the application state: the IAM role map.
/// Cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct IdentityConfig {
    roles: Arc<IamRoleMap>,
}

impl IdentityConfig {
    pub fn new(roles: IamRoleMap) -> Self {
        Self {
            roles: Arc::new(roles),
        }
    }

    /// From `SVCAUTH_IAM_ROLES` (`role-name-or-arn=service,...`); unset means no IAM
    /// caller is accepted.
    pub fn from_env() -> Result<Self, RoleMapError> {
        let spec = std::env::var(IAM_ROLES_ENV).unwrap_or_default();
        Ok(Self::new(IamRoleMap::parse(&spec)?))
    }

    pub fn roles(&self) -> &IamRoleMap {
        &self.roles
    }
}

/// The caller of this request, as API Gateway established it. Use it as a handler
/// argument; a request without a valid identity never reaches the handler.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller(pub ServiceIdentity);

impl std::ops::Deref for Caller {
    type Target = ServiceIdentity;
    fn deref(&self) -> &ServiceIdentity {
        &self.0
    }
}

/// The caller's identity from request extensions (where `lambda_http` puts the API
/// Gateway request context). Plain function, for code outside axum.
pub fn identity_from_extensions(
    ext: &http::Extensions,
    roles: &IamRoleMap,
) -> Result<ServiceIdentity, IdentityError> {
    match ext.request_context_ref() {
        Some(RequestContext::ApiGatewayV1(ctx)) => identify(
            |k| ctx.authorizer.fields.get(k).and_then(|v| v.as_str()),
            ctx.identity.user_arn.as_deref(),
            roles,
        ),
        // No request context (direct invocation, a test without one) or another event
        // source: no identity.
        _ => Err(IdentityError::Missing),
    }
}

/// Why [`Caller`] refused a request: a JSON 401 or 403.
#[derive(Debug)]
pub struct IdentityRejection(pub IdentityError);

impl IntoResponse for IdentityRejection {
    fn into_response(self) -> Response {
        let status = if self.0.is_forbidden() {
            StatusCode::FORBIDDEN
        } else {
            StatusCode::UNAUTHORIZED
        };
        json_error(status, self.0.code(), &self.0.to_string())
    }
}

impl<S> FromRequestParts<S> for Caller
where
    S: Send + Sync,
    IdentityConfig: FromRef<S>,
{
    type Rejection = IdentityRejection;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let config = IdentityConfig::from_ref(state);
        match identity_from_extensions(&parts.extensions, config.roles()) {
            Ok(id) => Ok(Caller(id)),
            Err(e) => {
                let correlation_id = correlation_id_of(parts);
                // The route template, never the path: a path can hold an email.
                let route = parts
                    .extensions
                    .get::<MatchedPath>()
                    .map(MatchedPath::as_str)
                    .unwrap_or("-");
                // Missing identity means the function was reached around the gateway's
                // auth (direct invoke, mis-wired route): worth an operator's attention.
                if matches!(e, IdentityError::Missing) {
                    tracing::error!(code = e.code(), %correlation_id, method = %parts.method,
                        route, "request refused: {e}");
                } else {
                    tracing::warn!(code = e.code(), %correlation_id, method = %parts.method,
                        route, "request refused: {e}");
                }
                Err(IdentityRejection(e))
            }
        }
    }
}

fn correlation_id_of(parts: &Parts) -> CorrelationId {
    if let Some(id) = parts.extensions.get::<CorrelationId>() {
        return id.clone();
    }
    let header = parts
        .headers
        .get(CORRELATION_ID_HEADER)
        .and_then(|v| v.to_str().ok());
    let request_id = match parts.extensions.request_context_ref() {
        Some(RequestContext::ApiGatewayV1(ctx)) => ctx.request_id.as_deref(),
        _ => None,
    };
    CorrelationId::resolve(header, request_id)
}

/// The correlation id of the request; never fails. Behind [`correlate`] it is the id
/// resolved once for the request (the one echoed on the response).
pub struct Correlation(pub CorrelationId);

impl<S: Send + Sync> FromRequestParts<S> for Correlation {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Correlation(correlation_id_of(parts)))
    }
}

/// Middleware: resolves the correlation id once (header, else API Gateway request id,
/// else new), stores it for handlers and echoes it as `x-correlation-id` on the
/// response. Add with `.layer(axum::middleware::from_fn(correlate))`.
pub async fn correlate(mut req: Request, next: Next) -> Response {
    let (mut parts, body) = req.into_parts();
    let id = correlation_id_of(&parts);
    parts.extensions.insert(id.clone());
    req = Request::from_parts(parts, body);
    let mut res = next.run(req).await;
    if let Ok(v) = HeaderValue::from_str(id.as_str()) {
        res.headers_mut().insert(CORRELATION_ID_HEADER, v);
    }
    res
}

/// `{"error": code, "message": message}` with `status`.
pub fn json_error(status: StatusCode, code: &str, message: &str) -> Response {
    (
        status,
        Json(serde_json::json!({ "error": code, "message": message })),
    )
        .into_response()
}

/// Routes on the path API Gateway received. `lambda_http` prefixes REST API paths
/// with the stage (`/prod/internal/...`) unless `AWS_LAMBDA_HTTP_IGNORE_STAGE_IN_PATH`
/// is set; the event's own `path` has no stage and stays percent-encoded, so use it.
pub fn use_gateway_path<B>(mut req: http::Request<B>) -> http::Request<B> {
    let raw = req.extensions().raw_http_path();
    if !raw.starts_with('/') || raw == req.uri().path() {
        return req;
    }
    let pq = match req.uri().query() {
        Some(q) => format!("{raw}?{q}"),
        None => raw.to_owned(),
    };
    let mut uri = req.uri().clone().into_parts();
    if let Ok(pq) = pq.parse() {
        uri.path_and_query = Some(pq);
        if let Ok(u) = http::Uri::from_parts(uri) {
            *req.uri_mut() = u;
        }
    }
    req
}

/// The service to give `lambda_http::run`: the router, routing on the gateway's path.
pub fn lambda_service(
    router: Router,
) -> lambda_http::tower::util::MapRequest<Router, fn(lambda_http::Request) -> lambda_http::Request>
{
    lambda_http::tower::util::MapRequest::new(router, use_gateway_path::<lambda_http::Body>)
}

/// Request contexts for tests and local tools: what API Gateway sets on a route with
/// the API-key authorizer, or on an `AWS_IAM` route.
pub mod testing {
    use lambda_http::aws_lambda_events::apigw::{
        ApiGatewayProxyRequestContext, ApiGatewayRequestAuthorizer, ApiGatewayRequestIdentity,
    };
    use lambda_http::request::RequestContext;
    use service_auth::context;

    /// Context as set after the API-key authorizer allowed `service` with `key_id`
    /// (written by the authorizer's own writer, [`context::key_entries`]).
    pub fn api_key_context(service: &str, key_id: &str, request_id: &str) -> RequestContext {
        let caller = context::KeyCaller {
            service,
            key_id,
            expires_at: None,
        };
        with_principal(service, context::key_entries(caller), request_id)
    }

    /// Context as set after the authorizer allowed a token (written by the
    /// authorizer's own writer, [`context::token_entries`]).
    pub fn token_context(caller: context::TokenCaller<'_>, request_id: &str) -> RequestContext {
        with_principal(caller.service, context::token_entries(caller), request_id)
    }

    fn with_principal<'a>(
        service: &str,
        entries: impl Iterator<Item = (&'static str, std::borrow::Cow<'a, str>)>,
        request_id: &str,
    ) -> RequestContext {
        let entries: Vec<(&str, std::borrow::Cow<'_, str>)> = entries.collect();
        authorizer_context(
            entries
                .iter()
                .map(|(k, v)| (*k, v.as_ref()))
                .chain([("principalId", service)]),
            request_id,
        )
    }

    /// Context with these authorizer entries (string values, as API Gateway sends).
    pub fn authorizer_context<'a>(
        entries: impl IntoIterator<Item = (&'a str, &'a str)>,
        request_id: &str,
    ) -> RequestContext {
        let mut authorizer = ApiGatewayRequestAuthorizer::default();
        authorizer.fields = entries
            .into_iter()
            .map(|(k, v)| (k.to_owned(), serde_json::Value::from(v)))
            .collect();
        let mut ctx = base(request_id);
        ctx.authorizer = authorizer;
        RequestContext::ApiGatewayV1(ctx)
    }

    /// Context of an `AWS_IAM` route called with credentials of `user_arn`.
    pub fn iam_context(user_arn: &str, request_id: &str) -> RequestContext {
        let mut identity = ApiGatewayRequestIdentity::default();
        identity.user_arn = Some(user_arn.to_owned());
        identity.caller = user_arn
            .rsplit_once('/')
            .map(|(_, session)| format!("AROAEXAMPLEROLEID00000:{session}"));
        let mut ctx = base(request_id);
        ctx.identity = identity;
        RequestContext::ApiGatewayV1(ctx)
    }

    /// Context with no identity: what a route without auth would give.
    pub fn anonymous_context(request_id: &str) -> RequestContext {
        RequestContext::ApiGatewayV1(base(request_id))
    }

    fn base(request_id: &str) -> ApiGatewayProxyRequestContext {
        let mut ctx = ApiGatewayProxyRequestContext::default();
        ctx.account_id = Some("123456789012".to_owned());
        ctx.stage = Some("test".to_owned());
        ctx.request_id = Some(request_id.to_owned());
        ctx
    }
}

#[cfg(test)]
mod tests {
    use super::testing::*;
    use super::*;
    use axum::body::Body;
    use axum::routing::get;
    use http_body_util::BodyExt;
    use service_auth::context::TokenCaller;
    use service_auth::UnixTime;
    use tower::ServiceExt;

    const KID: &str = "kid_0123456789abcdef";
    const RID: &str = "c6af9ac6-7b61-11e6-9a41-93e8deadbeef";

    async fn whoami(Caller(id): Caller, Correlation(c): Correlation) -> String {
        let cred = match &id.method {
            AuthMethod::ApiKey { key_id } => key_id.to_string(),
            AuthMethod::Iam {
                role_arn,
                caller_arn,
            } => format!("{role_arn} {caller_arn}"),
            AuthMethod::Token {
                token_id,
                expires_at,
                proof,
            } => match proof {
                TokenProof::ApiKey { key_id } => {
                    format!("{token_id} {} {key_id}", expires_at.to_rfc3339())
                }
                TokenProof::Iam => format!("{token_id} {} iam", expires_at.to_rfc3339()),
            },
        };
        format!("{} {} {} {}", id.service, id.method_name(), cred, c)
    }

    fn app() -> Router {
        let roles = IamRoleMap::parse(
            "tutor-task-role=tutor-service,arn:aws:iam::123456789012:role/platform/admin-task-role=admin-service",
        )
        .unwrap();
        Router::new()
            .route("/whoami", get(whoami))
            .with_state(IdentityConfig::new(roles))
            .layer(axum::middleware::from_fn(correlate))
    }

    async fn call(
        ctx: Option<RequestContext>,
        headers: &[(&str, &str)],
    ) -> (StatusCode, String, Option<String>) {
        let mut b = http::Request::builder().uri("/whoami");
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        let mut req = b.body(Body::empty()).unwrap();
        if let Some(ctx) = ctx {
            req.extensions_mut().insert(ctx);
        }
        let res = app().oneshot(req).await.unwrap();
        let status = res.status();
        let corr = res
            .headers()
            .get(CORRELATION_ID_HEADER)
            .map(|v| v.to_str().unwrap().to_owned());
        let body = res.into_body().collect().await.unwrap().to_bytes();
        (status, String::from_utf8(body.to_vec()).unwrap(), corr)
    }

    #[tokio::test]
    async fn api_key_context_gives_the_caller() {
        let (s, body, corr) = call(
            Some(api_key_context("tutor-service", KID, RID)),
            &[("x-correlation-id", "corr-42")],
        )
        .await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(body, format!("tutor-service api-key {KID} corr-42"));
        assert_eq!(corr.as_deref(), Some("corr-42"));
    }

    #[tokio::test]
    async fn token_context_gives_the_caller_with_no_change_to_handlers() {
        let exp = "2026-11-29T10:20:00Z";
        let token = |token_id, proof_key_id| TokenCaller {
            service: "tutor-service",
            token_id,
            expires_at: UnixTime::parse_rfc3339(exp).unwrap(),
            proof_key_id,
        };
        let (s, body, _) = call(Some(token_context(token("jti-1", Some(KID)), RID)), &[]).await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(body, format!("tutor-service token jti-1 {exp} {KID} {RID}"));
        let (s, body, _) = call(Some(token_context(token("jti-2", None), RID)), &[]).await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(body, format!("tutor-service token jti-2 {exp} iam {RID}"));
        // A token context without its id is malformed, not an identity.
        let ctx = authorizer_context(
            [
                ("serviceId", "tutor-service"),
                ("authenticatedBy", "token"),
                ("tokenExpiresAt", exp),
                ("tokenProof", "iam"),
            ],
            RID,
        );
        let (s, body, _) = call(Some(ctx), &[]).await;
        assert_eq!(s, StatusCode::UNAUTHORIZED);
        assert!(body.contains("malformed_identity"), "{body}");
    }

    /// The sample backend events, as `lambda_http` delivers them (`sam local invoke -e`,
    /// `cargo lambda invoke --data-file`), through `lambda_service`.
    async fn invoke_event(json: &str) -> (StatusCode, String) {
        let req = lambda_http::request::from_str(json).unwrap();
        let app = Router::new()
            .route("/internal/users/{id}", get(whoami))
            .with_state(IdentityConfig::default())
            .layer(axum::middleware::from_fn(correlate));
        let res = lambda_service(app).oneshot(req).await.unwrap();
        let status = res.status();
        let body = res.into_body().collect().await.unwrap().to_bytes();
        (status, String::from_utf8(body.to_vec()).unwrap())
    }

    #[tokio::test]
    async fn the_sample_token_event_gives_the_token_caller() {
        let (s, body) =
            invoke_event(include_str!("../../../events/identity-get-user-token.json")).await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(
            body,
            "tutor-service token 7c1e9a4b2f6d4e08a3b5c7d9e1f20314 2026-11-29T10:20:00Z kid_3f9a0c41d2e87b65 corr-7f3c2a19e4b84d0c"
        );
        // The API-key event still gives the key caller, through the same handler.
        let (s, body) = invoke_event(include_str!(
            "../../../events/identity-get-user-api-key.json"
        ))
        .await;
        assert_eq!(s, StatusCode::OK);
        assert!(
            body.starts_with("tutor-service api-key kid_3f9a0c41d2e87b65"),
            "{body}"
        );
    }

    #[tokio::test]
    async fn iam_assumed_role_gives_the_mapped_service() {
        let arn = "arn:aws:sts::123456789012:assumed-role/tutor-task-role/tutor-fn";
        let (s, body, corr) = call(Some(iam_context(arn, RID)), &[]).await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(
            body,
            format!("tutor-service iam arn:aws:iam::123456789012:role/tutor-task-role {arn} {RID}")
        );
        // No header: the API Gateway request id is the correlation id.
        assert_eq!(corr.as_deref(), Some(RID));
    }

    #[tokio::test]
    async fn iam_role_with_a_path_is_matched_by_name_within_its_account() {
        let arn = "arn:aws:sts::123456789012:assumed-role/admin-task-role/i-0abc";
        let (s, body, _) = call(Some(iam_context(arn, RID)), &[]).await;
        assert_eq!(s, StatusCode::OK);
        assert!(
            body.starts_with(
                "admin-service iam arn:aws:iam::123456789012:role/platform/admin-task-role "
            ),
            "{body}"
        );
    }

    #[tokio::test]
    async fn unknown_role_and_iam_users_are_forbidden_with_a_json_body() {
        let arn = "arn:aws:sts::123456789012:assumed-role/edtech-dev-tutor-task-role/s1";
        let (s, body, corr) = call(Some(iam_context(arn, RID)), &[]).await;
        assert_eq!(s, StatusCode::FORBIDDEN);
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["error"], "unknown_role");
        assert!(v["message"]
            .as_str()
            .unwrap()
            .contains("arn:aws:iam::123456789012:role/edtech-dev-tutor-task-role"));
        assert_eq!(
            corr.as_deref(),
            Some(RID),
            "errors carry the correlation id too"
        );

        let user = "arn:aws:iam::123456789012:user/tutor-task-role";
        let (s, body, _) = call(Some(iam_context(user, RID)), &[]).await;
        assert_eq!(s, StatusCode::FORBIDDEN);
        assert!(body.contains("caller_not_a_role"), "{body}");
    }

    #[tokio::test]
    async fn no_identity_is_refused_even_with_identity_headers() {
        // A caller cannot claim an identity with headers.
        let spoof = [
            ("serviceId", "admin-service"),
            ("x-service-id", "admin-service"),
            ("authenticatedBy", "api-key"),
            ("keyId", KID),
            (
                "x-amzn-iam-user-arn",
                "arn:aws:sts::123456789012:assumed-role/tutor-task-role/s",
            ),
        ];
        for ctx in [None, Some(anonymous_context(RID))] {
            let (s, body, _) = call(ctx, &spoof).await;
            assert_eq!(s, StatusCode::UNAUTHORIZED);
            let v: serde_json::Value = serde_json::from_str(&body).unwrap();
            assert_eq!(v["error"], "no_identity");
        }
    }

    #[tokio::test]
    async fn malformed_authorizer_context_is_unauthorized() {
        let ctx = authorizer_context(
            [
                ("serviceId", "tutor-service"),
                ("authenticatedBy", "api-key"),
            ],
            RID,
        );
        let (s, body, _) = call(Some(ctx), &[]).await;
        assert_eq!(s, StatusCode::UNAUTHORIZED);
        assert!(body.contains("malformed_identity"), "{body}");
    }

    #[tokio::test]
    async fn unsafe_correlation_ids_are_replaced() {
        let (_, body, corr) = call(
            Some(api_key_context("tutor-service", KID, RID)),
            &[("x-correlation-id", "a b\tc")],
        )
        .await;
        assert_eq!(corr.as_deref(), Some(RID));
        assert!(body.ends_with(RID));
    }

    #[test]
    fn gateway_path_replaces_the_stage_prefixed_path() {
        use lambda_http::RequestExt;
        let req = http::Request::builder()
            .uri("https://h.example/test/internal/users/by-email/ada%40example.com?x=1")
            .body(())
            .unwrap();
        let req = req.with_raw_http_path("/internal/users/by-email/ada%40example.com");
        let req = use_gateway_path(req);
        assert_eq!(
            req.uri().path(),
            "/internal/users/by-email/ada%40example.com"
        );
        assert_eq!(req.uri().query(), Some("x=1"));
        // No raw path (not from lambda_http): left alone.
        let req = http::Request::builder().uri("/a/b").body(()).unwrap();
        assert_eq!(use_gateway_path(req).uri().path(), "/a/b");
    }
}
