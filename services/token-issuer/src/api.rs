//! The HTTP API: routes, handlers, the AWS reads they need (with their short caches)
//! and the one place errors become responses.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{DefaultBodyLimit, FromRef, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use bytes::Bytes;
use keystore_ssm::{KeySetError, KeySetParameter, SsmKeyStore, StandingError, Standings};
use service_auth::cache::RefreshPolicy;
use service_auth::identity::AuthMethod;
use service_auth::{ServiceDocument, UnixTime};
use service_identity_http::{correlate, json_error, Caller, Correlation, IdentityConfig};
use service_token::{KeySet, TokenClaims};
use token_kms::aws_sdk_kms;
use token_kms::{KmsError, KmsSigner};

use crate::issue::{
    claims_for, new_jti, IssueError, IssuerSettings, RetryPolicy, ReuseCache, Standing,
    TokenRequest,
};

/// The clock (the one every component takes: seconds since the epoch and a monotonic
/// instant); tests pass a hand-moved one.
pub type Clock = service_auth::clock::SharedClock;

/// How long the published key set is served from memory; clients may cache it as long
/// (`Cache-Control: public, max-age=300`).
pub const JWKS_MAX_AGE: Duration = Duration::from_secs(300);
/// When the signing key is missing from the key set held in memory, the parameter is
/// read again, at most this often (so a `svcauth tokens keys add` is seen quickly
/// without every refused request reading SSM).
pub const JWKS_MISS_REFETCH: Duration = Duration::from_secs(10);
/// How long what the store says about a caller (its document, its key's revocation
/// and expiry markers, its brakes) is used. Bounds how late the issuer sees a
/// revocation or a brake; keeps SSM reads (40/s by default, shared) well under the
/// traffic. No stale grace: a read that fails is a 503, never an old answer.
pub const STANDING_TTL: Duration = Duration::from_secs(15);
/// The longest a standing read may take.
const STANDING_TIMEOUT: Duration = Duration::from_secs(5);
/// How often the signing alias is resolved again, so a repointed alias is followed
/// without a cold start.
pub const SIGNER_TTL: Duration = Duration::from_secs(300);
/// Largest request body read.
pub const MAX_BODY_BYTES: usize = 8 * 1024;

/// What [`AppState::new`] is built from.
pub struct Parts {
    pub identity: IdentityConfig,
    pub settings: IssuerSettings,
    pub signing: Signing,
    pub documents: Documents,
    pub jwks: JwksSource,
    pub clock: Clock,
    pub retry: RetryPolicy,
}

/// What signs tokens.
pub enum Signing {
    /// KMS, as deployed. Build the client with SDK retries off (one attempt): the
    /// issuer backs off itself, within [`Parts::retry`]'s budget. `key` is
    /// `SVCAUTH_TOKEN_KEY` (key id, ARN or alias).
    Kms {
        client: aws_sdk_kms::Client,
        key: String,
    },
    /// A signer in this process: the local gateway's ephemeral development key. The
    /// deployed issuer (`main.rs`) never builds one.
    Local(Arc<dyn LocalSigner>),
}

/// Signs in this process (see [`Signing::Local`]).
pub trait LocalSigner: Send + Sync {
    /// The `kid` its tokens carry.
    fn kid(&self) -> &str;
    /// A compact JWS of `claims` with `{"alg":"ES256","typ":"at+jwt","kid":..}`
    /// ([`service_token::TOKEN_TYPE`]: verifiers refuse any other `typ`). The error
    /// says why, without the key.
    fn sign(&self, claims: &TokenClaims) -> Result<String, String>;
}

/// A service's document by name, from memory.
pub type DocumentLookup = Arc<dyn Fn(&str) -> Option<ServiceDocument> + Send + Sync>;

/// Where service documents (and revocation markers) come from.
pub enum Documents {
    /// The key store in SSM, as deployed: documents and revocation markers.
    Ssm(SsmKeyStore),
    /// A lookup in memory (local tools that hold their store themselves); no markers.
    Fixed(DocumentLookup),
}

/// Where the published key set comes from.
pub enum JwksSource {
    /// The `SVCAUTH_TOKEN_JWKS_PARAMETER` SecureString, as deployed (read through
    /// keystore-ssm: a `String` one is never trusted).
    Ssm {
        client: keystore_ssm::aws_sdk_ssm::Client,
        parameter: String,
    },
    /// A JWKS given as text (local tools).
    Inline(String),
}

/// The signer in use now.
#[derive(Clone)]
enum ActiveSigner {
    Kms(KmsSigner),
    Local(Arc<dyn LocalSigner>),
}

impl ActiveSigner {
    fn kid(&self) -> &str {
        match self {
            ActiveSigner::Kms(s) => s.kid(),
            ActiveSigner::Local(s) => s.kid(),
        }
    }

    async fn sign(&self, claims: &TokenClaims) -> Result<String, KmsError> {
        match self {
            ActiveSigner::Kms(s) => s.sign(claims).await,
            ActiveSigner::Local(s) => s.sign(claims).map_err(KmsError::Claims),
        }
    }
}

impl Parts {
    /// The signing key as configured, for messages.
    fn signing_name(&self) -> &str {
        match &self.signing {
            Signing::Kms { key, .. } => key,
            Signing::Local(_) => "the local development key",
        }
    }

    /// The key set's location, for messages.
    fn jwks_name(&self) -> &str {
        match &self.jwks {
            JwksSource::Ssm { parameter, .. } => parameter,
            JwksSource::Inline(_) => "the inline key set",
        }
    }
}

/// Shared state, built once per process. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

struct Published {
    body: Bytes,
    keys: KeySet,
    at: u64,
}

struct Inner {
    parts: Parts,
    signer: tokio::sync::Mutex<Option<(KmsSigner, u64)>>,
    /// With documents in SSM: the one cache of standings (keystore-ssm), 15 s.
    standings: Option<Standings>,
    jwks: tokio::sync::Mutex<Option<Published>>,
    reuse: ReuseCache,
}

impl AppState {
    pub fn new(parts: Parts) -> Self {
        let standings = match &parts.documents {
            Documents::Ssm(store) => Some(Standings::new(
                store.clone(),
                RefreshPolicy {
                    ttl: STANDING_TTL,
                    stale_grace: Duration::ZERO,
                    retry_interval: Duration::ZERO,
                },
                STANDING_TIMEOUT,
            )),
            Documents::Fixed(_) => None,
        };
        Self {
            inner: Arc::new(Inner {
                parts,
                signer: tokio::sync::Mutex::new(None),
                standings,
                jwks: tokio::sync::Mutex::new(None),
                reuse: ReuseCache::default(),
            }),
        }
    }

    /// Tokens currently held for reuse.
    pub fn reusable_tokens(&self) -> usize {
        self.inner.reuse.len()
    }

    fn now(&self) -> UnixTime {
        self.inner.parts.clock.now()
    }

    /// What the store says about the caller (its document with its markers), read at
    /// most every [`STANDING_TTL`].
    async fn standing(
        &self,
        service: &str,
        method: &AuthMethod,
        now: UnixTime,
    ) -> Result<Arc<Standing>, ApiError> {
        let key_id = match method {
            AuthMethod::ApiKey { key_id } => Some(key_id.to_string()),
            AuthMethod::Iam { .. } => None,
            // Refused before any read: a token is not a proof for another token.
            AuthMethod::Token { .. } => return Err(ApiError::Issue(IssueError::TokenCaller)),
        };
        let standings = match (&self.inner.standings, &self.inner.parts.documents) {
            (_, Documents::Fixed(lookup)) => {
                return Ok(Arc::new(Standing {
                    document: lookup(service),
                    proof_key_revoked: false,
                }))
            }
            (Some(s), Documents::Ssm(_)) => s,
            (None, Documents::Ssm(_)) => {
                return Err(ApiError::Internal(
                    "no_standings",
                    "no standing cache".into(),
                ))
            }
        };
        let (standing, read) = standings.get(service, key_id.as_deref(), now).await;
        match standing {
            Ok(s) => Ok(s),
            Err(StandingError::Unusable(rejected)) => {
                if read.is_some() {
                    tracing::error!(event = "store_read_failed", service, parameter = %rejected.parameter,
                        reason_code = rejected.reason.code(), error = %rejected.reason, "the caller's document cannot be used");
                }
                // Read, but unusable: retrying will not help; an operator must fix it.
                Err(ApiError::Issue(IssueError::DocumentInvalid(
                    service.to_owned(),
                )))
            }
            Err(StandingError::Unavailable(e)) => {
                tracing::error!(event = "store_read_failed", service, error = %e, "could not read the caller's standing");
                Err(ApiError::Unavailable {
                    code: "store_unavailable",
                    message: "the key store could not be read; retry shortly".into(),
                    retry_after: 1,
                })
            }
        }
    }

    /// The signer for the key `SVCAUTH_TOKEN_KEY` names now (re-resolved every
    /// [`SIGNER_TTL`]; a failed re-resolve keeps the key resolved before).
    async fn signer(&self, now: UnixTime) -> Result<ActiveSigner, ApiError> {
        let parts = &self.inner.parts;
        let (client, key) = match &parts.signing {
            Signing::Local(s) => return Ok(ActiveSigner::Local(s.clone())),
            Signing::Kms { client, key } => (client, key),
        };
        let mut held = self.inner.signer.lock().await;
        if let Some((s, at)) = held.as_ref() {
            if now.0 < at + SIGNER_TTL.as_secs() {
                return Ok(ActiveSigner::Kms(s.clone()));
            }
        }
        match KmsSigner::resolve(client.clone(), key).await {
            Ok(s) => {
                if held.as_ref().is_some_and(|(old, _)| old.kid() != s.kid()) {
                    tracing::info!(event = "signing_key_changed", kid = s.kid(), alias = %key, "the signing alias names another key now");
                }
                *held = Some((s.clone(), now.0));
                Ok(ActiveSigner::Kms(s))
            }
            Err(e) => {
                tracing::error!(event = "signing_key_unresolved", code = e.code(), alias = %key, error = %e, "could not resolve the signing key");
                match held.as_mut() {
                    Some((s, at)) => {
                        *at = now.0;
                        Ok(ActiveSigner::Kms(s.clone()))
                    }
                    None => Err(ApiError::Unavailable {
                        code: "signing_key_unavailable",
                        message: format!(
                            "the signing key {key} could not be resolved; operators: see the issuer's logs"
                        ),
                        retry_after: 5,
                    }),
                }
            }
        }
    }

    /// The published key set, read from SSM at most every [`JWKS_MAX_AGE`], or every
    /// [`JWKS_MISS_REFETCH`] while `want_kid` is missing from it.
    async fn published(
        &self,
        now: UnixTime,
        want_kid: Option<&str>,
    ) -> Result<tokio::sync::MappedMutexGuard<'_, Published>, ApiError> {
        let mut held = self.inner.jwks.lock().await;
        let fresh = held.as_ref().is_some_and(|p| {
            let age = now.0.saturating_sub(p.at);
            let missing = want_kid.is_some_and(|k| !p.keys.contains(k));
            age < JWKS_MAX_AGE.as_secs() && !(missing && age >= JWKS_MISS_REFETCH.as_secs())
        });
        if !fresh {
            match self.read_jwks_parameter(now).await {
                Ok(p) => *held = Some(p),
                // A key set read before keeps serving (it only ever grows between
                // rotations); with none, the caller gets the error.
                Err(e) if held.is_some() => {
                    tracing::warn!(event = "jwks_read_failed", error = %e.message(), "kept the key set read before");
                }
                Err(e) => return Err(e),
            }
        }
        tokio::sync::MutexGuard::try_map(held, |p| p.as_mut()).map_err(|_| ApiError::Unavailable {
            code: "jwks_unavailable",
            message: "the key set is not loaded".into(),
            retry_after: 1,
        })
    }

    async fn read_jwks_parameter(&self, now: UnixTime) -> Result<Published, ApiError> {
        let parts = &self.inner.parts;
        let name = parts.jwks_name();
        let (client, parameter) = match &parts.jwks {
            JwksSource::Inline(text) => return Self::parse_jwks(name, text.clone(), now),
            JwksSource::Ssm { client, parameter } => (client, parameter),
        };
        let value = match KeySetParameter::new(client.clone(), parameter)
            .read_trusted()
            .await
        {
            Ok(text) => text,
            Err(e @ KeySetError::NotPublished(_)) => {
                return Err(ApiError::Unavailable {
                    code: e.code(),
                    message: format!(
                        "no key set is published at {name}: run `svcauth tokens keys add --key {}`",
                        parts.signing_name()
                    ),
                    retry_after: 30,
                })
            }
            Err(e @ KeySetError::Forgeable { .. }) => {
                tracing::error!(event = "jwks_not_trusted", parameter = %name, error = %e, "the key set is not trusted: no token is signed until it is rewritten");
                return Err(ApiError::Unavailable {
                    code: e.code(),
                    message: format!(
                        "the key set at {name} is not a SecureString, so it is not trusted; operators: see the issuer's logs (`svcauth tokens keys add --key {}` rewrites it)",
                        parts.signing_name()
                    ),
                    retry_after: 30,
                });
            }
            Err(e) => {
                tracing::error!(event = "jwks_read_failed", parameter = %name, error = %e, "could not read the key set");
                return Err(ApiError::Unavailable {
                    code: e.code(),
                    message: "the key set could not be read; retry shortly".into(),
                    retry_after: 1,
                });
            }
        };
        Self::parse_jwks(name, value, now)
    }

    fn parse_jwks(name: &str, value: String, now: UnixTime) -> Result<Published, ApiError> {
        let keys = KeySet::from_json(value.as_bytes()).map_err(|e| {
            tracing::error!(event = "jwks_invalid", parameter = %name, error = %e, "the published key set is not a usable JWKS");
            ApiError::Unavailable {
                code: "jwks_invalid",
                message: format!(
                    "the key set at {name} is not a usable JWKS; rewrite it with `svcauth tokens keys add`"
                ),
                retry_after: 30,
            }
        })?;
        Ok(Published {
            body: Bytes::from(value),
            keys,
            at: now.0,
        })
    }

    /// Signs with back-off on throttling within the retry budget.
    async fn sign(&self, signer: &ActiveSigner, claims: &TokenClaims) -> Result<String, KmsError> {
        let policy = self.inner.parts.retry;
        let start = Instant::now();
        let mut retry = 0;
        loop {
            match signer.sign(claims).await {
                Ok(token) => return Ok(token),
                Err(e) if e.is_retryable() => {
                    let Some(delay) = policy.next_delay(retry, start.elapsed(), fastrand::f64())
                    else {
                        return Err(e);
                    };
                    tracing::warn!(event = "kms_retry", code = e.code(), retry, delay_ms = delay.as_millis() as u64, jti = %claims.jti, "KMS refused to sign for now; backing off");
                    tokio::time::sleep(delay).await;
                    retry += 1;
                }
                Err(e) => return Err(e),
            }
        }
    }
}

impl FromRef<AppState> for IdentityConfig {
    fn from_ref(s: &AppState) -> Self {
        s.inner.parts.identity.clone()
    }
}

/// The issuer's routes (paths as API Gateway receives them, without the stage).
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/token", post(issue_token))
        .route("/token/iam", post(issue_token))
        .route("/.well-known/jwks.json", get(jwks))
        .fallback(|| async { json_error(StatusCode::NOT_FOUND, "not_found", "no such route") })
        .with_state(state)
        .layer(DefaultBodyLimit::disable())
        .layer(axum::middleware::from_fn(correlate))
}

/// Everything a handler can answer besides success.
#[derive(Debug)]
pub enum ApiError {
    Issue(IssueError),
    /// 400 `bad_request`.
    Body(String),
    /// 503 with `Retry-After` seconds: nothing is wrong with the request.
    Unavailable {
        code: &'static str,
        message: String,
        retry_after: u32,
    },
    /// 500; the detail goes to the log only.
    Internal(&'static str, String),
}

impl ApiError {
    fn message(&self) -> String {
        match self {
            ApiError::Issue(e) => e.to_string(),
            ApiError::Body(m) | ApiError::Unavailable { message: m, .. } => m.clone(),
            ApiError::Internal(code, _) => (*code).to_owned(),
        }
    }

    fn code(&self) -> &'static str {
        match self {
            ApiError::Issue(e) => e.code(),
            ApiError::Body(_) => "bad_request",
            ApiError::Unavailable { code, .. } | ApiError::Internal(code, _) => code,
        }
    }
}

impl From<IssueError> for ApiError {
    fn from(e: IssueError) -> Self {
        ApiError::Issue(e)
    }
}

impl From<KmsError> for ApiError {
    fn from(e: KmsError) -> Self {
        match e {
            KmsError::Throttled { .. } | KmsError::Unavailable { .. } => ApiError::Unavailable {
                code: "kms_throttled",
                message: "KMS is throttling token signing (about 300 signatures/s per account and Region); retry after the Retry-After seconds, and reuse tokens until they near expiry".into(),
                retry_after: 1,
            },
            KmsError::TooLarge(_) => ApiError::Body(e.to_string()),
            KmsError::WrongKey { .. } => ApiError::Unavailable {
                code: "signing_key_unavailable",
                message: e.to_string(),
                retry_after: 30,
            },
            other => ApiError::Internal(other.code(), other.to_string()),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        self.to_response()
    }
}

impl ApiError {
    fn to_response(&self) -> Response {
        match self {
            ApiError::Issue(e) => {
                let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::FORBIDDEN);
                json_error(status, e.code(), &e.to_string())
            }
            ApiError::Body(m) => json_error(StatusCode::BAD_REQUEST, "bad_request", m),
            ApiError::Unavailable {
                code,
                message,
                retry_after,
            } => {
                let mut res = json_error(StatusCode::SERVICE_UNAVAILABLE, code, message);
                res.headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(*retry_after));
                res
            }
            ApiError::Internal(code, detail) => {
                tracing::error!(event = "internal_error", code, detail = %detail, "internal error");
                json_error(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    code,
                    "internal error; see the issuer's logs",
                )
            }
        }
    }
}

/// `POST /token` and `POST /token/iam`: trades the caller's proof for a token.
async fn issue_token(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Correlation(correlation_id): Correlation,
    body: Bytes,
) -> Response {
    let service = caller.service.clone();
    let method = caller.method_name();
    let credential = caller.credential_id();
    match issue(&state, &caller, &body, &correlation_id).await {
        Ok(res) => res,
        Err(e) => {
            let res = e.to_response();
            // The credential id (key id or role ARN) and the reason; never a token, and
            // nothing quoted from the body (a parse error can quote a value).
            let detail = match &e {
                ApiError::Body(_) => "the request body was refused".to_owned(),
                other => other.message(),
            };
            tracing::warn!(event = "token_refused", code = e.code(), status = res.status().as_u16(), service = %service, proof = method,
                credential = %credential, correlation_id = %correlation_id, "no token: {detail}");
            res
        }
    }
}

async fn issue(
    state: &AppState,
    caller: &service_auth::identity::ServiceIdentity,
    body: &[u8],
    correlation_id: &service_identity_http::CorrelationId,
) -> Result<Response, ApiError> {
    // Lambda already holds the whole body (API Gateway caps it at 10 MB): refuse a large
    // one here, as JSON, instead of with axum's plain-text 413.
    if body.len() > MAX_BODY_BYTES {
        return Err(ApiError::Body(format!(
            "the body is larger than {MAX_BODY_BYTES} bytes; a token request is a small JSON object"
        )));
    }
    let req: TokenRequest = if body.iter().all(u8::is_ascii_whitespace) {
        TokenRequest::default()
    } else {
        serde_json::from_slice(body).map_err(|e| {
            ApiError::Body(format!(
                "the body is not a token request ({e}); send {{}} or {{\"audience\":[..],\"permissions\":[{{\"apis\":[..],\"routes\":[..]}}],\"lifetimeSeconds\":600}}"
            ))
        })?
    };
    let now = state.now();
    let standing = state.standing(&caller.service, &caller.method, now).await?;
    let jti = new_jti().map_err(|e| ApiError::Internal("no_randomness", e.to_string()))?;
    let claims = claims_for(
        caller,
        &standing,
        &req,
        &state.inner.parts.settings,
        now,
        jti,
    )?;
    let brake = standing.document.as_ref().and_then(|d| d.tokens_not_before);
    // A held token is handed out again only while its key is still published: a key
    // retired from the key set (rotation, compromise) takes its held tokens with it.
    let least_left = state.inner.parts.settings.least_left_secs();
    let held = match state.inner.reuse.find(&claims, brake, now, least_left) {
        Some(r) if state.published(now, None).await?.keys.contains(&r.kid) => Some(r),
        _ => None,
    };
    let (token, exp, jti, kid, reused) = match held {
        Some(r) => (r.token, r.exp, r.jti, r.kid, true),
        None => {
            let signer = state.signer(now).await?;
            let published = state
                .published(now, Some(signer.kid()))
                .await?
                .keys
                .contains(signer.kid());
            if !published {
                return Err(ApiError::Unavailable {
                    code: "signing_key_not_published",
                    message: format!(
                        "the signing key {kid} is not in the published key set {param}, so no verifier could check its tokens: run `svcauth tokens keys add --key {kid}` and retry",
                        kid = signer.kid(),
                        param = state.inner.parts.jwks_name()
                    ),
                    retry_after: JWKS_MISS_REFETCH.as_secs() as u32,
                });
            }
            let token = state.sign(&signer, &claims).await?;
            state.inner.reuse.keep(&claims, &token, signer.kid(), now);
            (
                token,
                claims.exp,
                claims.jti.clone(),
                signer.kid().to_owned(),
                false,
            )
        }
    };
    // The token itself is never logged: its id is.
    tracing::info!(event = "token_issued", jti = %jti, service = %caller.service, proof = caller.method_name(),
        credential = %caller.credential_id(), kid = %kid, exp, reused, correlation_id = %correlation_id, "token issued");
    let body = serde_json::json!({
        "token": token,
        "tokenType": "Bearer",
        "expiresAt": UnixTime(exp).to_rfc3339(),
        "expiresIn": exp.saturating_sub(now.0),
        "tokenId": jti,
    });
    let mut res = (StatusCode::OK, Json(body)).into_response();
    res.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(res)
}

/// `GET /.well-known/jwks.json`: the published key set, as `svcauth tokens keys`
/// wrote it.
async fn jwks(State(state): State<AppState>) -> Response {
    let now = state.now();
    let body = match state.published(now, None).await {
        Ok(p) => p.body.clone(),
        Err(e) => {
            tracing::warn!(
                event = "jwks_unavailable",
                code = e.code(),
                "{}",
                e.message()
            );
            return e.into_response();
        }
    };
    let mut res = (StatusCode::OK, body).into_response();
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=300"),
    );
    res
}
