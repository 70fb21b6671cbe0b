//! The whole chain on loopback, in one process:
//!
//! ```text
//! test ─▶ tutor-service router ─▶ service-client ─HTTP─▶ gateway (127.0.0.1) ─▶ identity-service router ─▶ moto DynamoDB
//! ```
//!
//! The gateway plays API Gateway: it strips the stage, authenticates the call the way
//! the deployed API does (the product's own authorizer decision for API keys, a SigV4
//! check for IAM) and hands identity-service the request context API Gateway would set.
//! The tests show the key or signature going out, the identity extracted on the far
//! side, and one correlation id at both ends; then how tutor-service answers when
//! identity-service refuses, is missing a student, fails or is slow.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;
use aws_sdk_dynamodb::config::{BehaviorVersion, Region};
use axum::body::Body;
use axum::Router;
use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use identity_service::{create_table, User, Users};
use lambda_http::request::RequestContext;
use serde_json::{json, Value};
use service_auth::identity::IamRoleMap;
use service_auth::{
    context, decide, ApiGrant, ApiKey, AuthRequest, Decision, KeyRecord, KeyStore, ServiceDocument,
    UnixTime,
};
use service_client::{AuthConfig, ClientConfig, CredentialsSource, RetryPolicy, ServiceClient};
use service_identity_http::testing::{api_key_context, authorizer_context, iam_context};
use service_identity_http::IdentityConfig;
use test_support::MotoServer;
use tower::ServiceExt;

const STUDENT: &str = "6b1f0c52-3f0e-4a8e-9d55-2f1f4c3c9a10";
const AKID: &str = "ASIATUTORTASKROLE001";
const SECRET: &str = "tutorSecretAccessKeyForTheChainTest000000";
const TOKEN: &str = "IQoJb3JpZ2luX2VjEChainTestSessionToken";
const TUTOR_SESSION: &str =
    "arn:aws:sts::123456789012:assumed-role/tutor-task-role/tutor-service-fn";

/// What the gateway saw of each call.
#[derive(Debug, Clone)]
struct Seen {
    path: String,
    correlation_id: Option<String>,
    api_key: Option<String>,
    authorization: Option<String>,
    status: u16,
}

#[derive(Clone)]
struct Gateway {
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
}

struct Gate {
    identity: Router,
    keys: KeyStore,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl Gateway {
    async fn start(identity: Router, keys: KeyStore) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
        let gate = Arc::new(Gate {
            identity,
            keys,
            seen: seen.clone(),
        });
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let gate = gate.clone();
                tokio::spawn(async move {
                    let svc = service_fn(move |req| {
                        let gate = gate.clone();
                        async move { Ok::<_, Infallible>(gate.handle(req).await) }
                    });
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        Gateway { addr, seen }
    }

    fn url(&self) -> String {
        format!("http://{}/test", self.addr)
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

fn gateway_error(status: u16, message: &str) -> hyper::Response<Full<Bytes>> {
    hyper::Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(
            json!({ "message": message }).to_string(),
        )))
        .unwrap()
}

impl Gate {
    async fn handle(
        &self,
        req: hyper::Request<hyper::body::Incoming>,
    ) -> hyper::Response<Full<Bytes>> {
        let (parts, body) = req.into_parts();
        let body = body
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        let header = |n: &str| {
            parts
                .headers
                .get(n)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let mut seen = Seen {
            path: parts.uri.path().to_owned(),
            correlation_id: header("x-correlation-id"),
            api_key: header("x-service-api-key"),
            authorization: header("authorization"),
            status: 0,
        };
        let res = self.route(&parts, body).await;
        seen.status = res.status().as_u16();
        self.seen.lock().unwrap().push(seen);
        res
    }

    async fn route(
        &self,
        parts: &http::request::Parts,
        body: Bytes,
    ) -> hyper::Response<Full<Bytes>> {
        let Some(resource) = parts.uri.path().strip_prefix("/test") else {
            return gateway_error(403, "Missing Authentication Token");
        };
        let request_id = format!(
            "gw-{}",
            service_auth::correlation::CorrelationId::generate()
        );
        let ctx = if parts.headers.contains_key("authorization") {
            match verify_sigv4(parts, &body) {
                Ok(user_arn) => iam_context(&user_arn, &request_id),
                Err(why) => return gateway_error(403, &why),
            }
        } else {
            let values: Vec<&str> = parts
                .headers
                .get_all("x-service-api-key")
                .iter()
                .filter_map(|v| v.to_str().ok())
                .collect();
            let arn = format!(
                "arn:aws:execute-api:eu-west-1:123456789012:a1b2c3d4e5/test/{}{}",
                parts.method, resource
            );
            let ask = AuthRequest {
                api_key_values: &values,
                method_arn: Some(&arn),
                api_name: Some("identity"),
            };
            match decide(Some(&self.keys), &ask, UnixTime::now()) {
                Decision::Allow(grant) if grant.route_permitted => {
                    let entries = context::for_grant(&grant);
                    authorizer_context(entries.iter().map(|(k, v)| (*k, v.as_str())), &request_id)
                }
                Decision::Allow(_) => {
                    return gateway_error(403, "User is not authorized to access this resource")
                }
                _ => return gateway_error(401, "Unauthorized"),
            }
        };
        // API Gateway hands the backend the path as received (still percent-encoded).
        let mut req = Request::builder()
            .method(parts.method.clone())
            .uri(resource);
        for (k, v) in &parts.headers {
            req = req.header(k, v);
        }
        let mut req = req.body(Body::from(body)).unwrap();
        req.extensions_mut().insert(ctx);
        let res = self.identity.clone().oneshot(req).await.unwrap();
        let (p, b) = res.into_parts();
        let bytes = b.collect().await.unwrap().to_bytes();
        hyper::Response::from_parts(p, Full::new(bytes))
    }
}

/// Checks a SigV4 signature as API Gateway would: known access key, a fresh date,
/// the same signature recomputed over the signed headers. Returns the caller's ARN.
fn verify_sigv4(parts: &http::request::Parts, body: &[u8]) -> Result<String, String> {
    let auth = parts.headers["authorization"]
        .to_str()
        .map_err(|e| e.to_string())?;
    let rest = auth
        .strip_prefix("AWS4-HMAC-SHA256 Credential=")
        .ok_or("not SigV4")?;
    let (scope, rest) = rest
        .split_once(", SignedHeaders=")
        .ok_or("no signed headers")?;
    let (signed, _) = rest.split_once(", Signature=").ok_or("no signature")?;
    let mut scope_parts = scope.split('/');
    if scope_parts.next() != Some(AKID) {
        return Err("The security token included in the request is invalid.".into());
    }
    let date = parts.headers["x-amz-date"]
        .to_str()
        .map_err(|e| e.to_string())?;
    let rfc3339 = format!(
        "{}-{}-{}T{}:{}:{}Z",
        &date[0..4],
        &date[4..6],
        &date[6..8],
        &date[9..11],
        &date[11..13],
        &date[13..15]
    );
    let time = humantime::parse_rfc3339(&rfc3339).map_err(|e| e.to_string())?;
    let skew = SystemTime::now()
        .duration_since(time)
        .unwrap_or_else(|e| e.duration());
    if skew > Duration::from_secs(300) {
        return Err("Signature expired".into());
    }
    let host = parts.headers["host"].to_str().map_err(|e| e.to_string())?;
    let mut again = Request::builder()
        .method(parts.method.clone())
        .uri(format!("http://{host}{}", parts.uri.path()));
    for name in signed.split(';') {
        if !matches!(name, "x-amz-date" | "x-amz-security-token") {
            again = again.header(name, &parts.headers[name]);
        }
    }
    let mut again = again.body(()).map_err(|e| e.to_string())?;
    let creds = Credentials::new(AKID, SECRET, Some(TOKEN.into()), None, "gateway");
    service_client::sign_request(&mut again, body, &creds, "eu-west-1", time)?;
    if again.headers()["authorization"] != parts.headers["authorization"] {
        return Err(
            "The request signature we calculated does not match the signature you provided.".into(),
        );
    }
    Ok(TUTOR_SESSION.to_owned())
}

// ---------------------------------------------------------------------------------

struct Chain {
    _moto: MotoServer,
    gateway: Gateway,
    tutor_key: ApiKey,
}

async fn chain() -> Chain {
    let moto = MotoServer::start();
    let conf = aws_sdk_dynamodb::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("eu-west-1"))
        .endpoint_url(moto.endpoint())
        .credentials_provider(Credentials::new("test", "test", None, None, "test"))
        .build();
    let client = aws_sdk_dynamodb::Client::from_conf(conf);
    create_table(&client, "users").await.unwrap();
    let users = Users::new(client, "users");
    users
        .create(&User {
            id: STUDENT.into(),
            email: "ada.lovelace@example.com".into(),
            role: "student".into(),
            email_verified: true,
        })
        .await
        .unwrap();
    let roles = IamRoleMap::parse("tutor-task-role=tutor-service").unwrap();
    let identity = identity_service::router(identity_service::AppState::new(
        users,
        IdentityConfig::new(roles),
        vec!["admin-service".into()],
    ));

    let tutor_key = ApiKey::generate(Some("dev")).unwrap();
    let mut doc = ServiceDocument::new(
        "tutor-service",
        vec![ApiGrant::new(
            &["identity"],
            &["GET /internal/users/*", "GET /internal/users/by-email/*"],
        )],
    );
    doc.keys
        .push(KeyRecord::for_key(&tutor_key, UnixTime::now(), None));
    let keys = KeyStore::build(&[doc], &[]).unwrap();
    Chain {
        _moto: moto,
        gateway: Gateway::start(identity, keys).await,
        tutor_key,
    }
}

fn tutor(base_url: String, auth: AuthConfig) -> Router {
    let mut c = ClientConfig::new("identity-service", base_url, "tutor-service", auth);
    c.timeout = Duration::from_millis(800);
    c.retry = RetryPolicy {
        max_attempts: 2,
        base_delay: Duration::from_millis(10),
        max_delay: Duration::from_millis(20),
    };
    tutor_service::router(tutor_service::AppState {
        identity: IdentityConfig::default(),
        users: ServiceClient::new(c).unwrap(),
    })
}

fn key_auth(k: &ApiKey) -> AuthConfig {
    AuthConfig::api_key(ApiKey::parse(k.expose_secret()).unwrap())
}

fn sigv4_auth() -> AuthConfig {
    AuthConfig::SigV4 {
        region: "eu-west-1".into(),
        credentials: CredentialsSource::Static(Credentials::new(
            AKID,
            SECRET,
            Some(TOKEN.into()),
            None,
            "test",
        )),
        clock: None,
    }
}

/// Calls the tutor route as admin-service would through API Gateway.
async fn profile(
    app: &Router,
    id: &str,
    correlation: Option<&str>,
) -> (StatusCode, Value, http::HeaderMap) {
    let mut req = Request::builder().uri(format!("/internal/tutor/students/{id}/profile"));
    if let Some(c) = correlation {
        req = req.header("x-correlation-id", c);
    }
    let mut req = req.body(Body::empty()).unwrap();
    req.extensions_mut().insert(api_key_context(
        "admin-service",
        "kid_a17c5e90b3d24f68",
        "req-admin-77",
    ));
    let res = app.clone().oneshot(req).await.unwrap();
    let (p, b) = res.into_parts();
    let bytes = b.collect().await.unwrap().to_bytes();
    (p.status, serde_json::from_slice(&bytes).unwrap(), p.headers)
}

#[derive(Clone, Default)]
struct Logs(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Logs {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn capture_logs() -> (Logs, tracing::subscriber::DefaultGuard) {
    let logs = Logs::default();
    let sink = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || sink.clone())
        .with_max_level(tracing::Level::INFO)
        .with_ansi(false)
        .finish();
    (logs, tracing::subscriber::set_default(subscriber))
}

fn expected_profile() -> Value {
    json!({"studentId": STUDENT, "email": "ada.lovelace@example.com", "emailVerified": true, "role": "student"})
}

#[tokio::test]
async fn api_key_out_identity_in_one_correlation_id() {
    let c = chain().await;
    let app = tutor(c.gateway.url(), key_auth(&c.tutor_key));
    let (logs, _g) = capture_logs();

    let (status, body, headers) = profile(&app, STUDENT, Some("corr-chain-1")).await;
    assert_eq!((status, body), (StatusCode::OK, expected_profile()));
    assert_eq!(headers["x-correlation-id"], "corr-chain-1");

    let seen = c.gateway.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].path, format!("/test/internal/users/{STUDENT}"));
    assert_eq!(
        seen[0].api_key.as_deref(),
        Some(c.tutor_key.expose_secret()),
        "the key went out"
    );
    assert_eq!(seen[0].authorization, None);
    assert_eq!(seen[0].correlation_id.as_deref(), Some("corr-chain-1"));

    // identity-service extracted the caller from the authorizer context.
    let out = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    let line = out
        .lines()
        .find(|l| l.contains("user requested by id"))
        .unwrap_or_else(|| panic!("{out}"));
    assert!(line.contains("caller=tutor-service"), "{line}");
    assert!(line.contains("auth=\"api-key\""), "{line}");
    assert!(
        line.contains(&format!("credential={}", c.tutor_key.key_id())),
        "{line}"
    );
    assert!(line.contains("correlation_id=corr-chain-1"), "{line}");
    let tutor_line = out
        .lines()
        .find(|l| l.contains("student profile served"))
        .unwrap();
    assert!(
        tutor_line.contains("caller=admin-service")
            && tutor_line.contains("correlation_id=corr-chain-1")
    );
    assert!(!out.contains(c.tutor_key.expose_secret()), "key in logs");
}

#[tokio::test]
async fn sigv4_out_iam_identity_in_one_correlation_id() {
    let c = chain().await;
    let app = tutor(c.gateway.url(), sigv4_auth());
    let (logs, _g) = capture_logs();

    // No correlation header: the API Gateway request id becomes the correlation id.
    let (status, body, headers) = profile(&app, STUDENT, None).await;
    assert_eq!((status, body), (StatusCode::OK, expected_profile()));
    assert_eq!(headers["x-correlation-id"], "req-admin-77");

    let seen = c.gateway.seen();
    assert_eq!(seen.len(), 1);
    assert!(seen[0]
        .authorization
        .as_deref()
        .unwrap()
        .starts_with("AWS4-HMAC-SHA256 Credential=ASIATUTORTASKROLE001/"));
    assert_eq!(seen[0].api_key, None);
    assert_eq!(seen[0].correlation_id.as_deref(), Some("req-admin-77"));

    let out = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    let line = out
        .lines()
        .find(|l| l.contains("user requested by id"))
        .unwrap_or_else(|| panic!("{out}"));
    assert!(line.contains("caller=tutor-service"), "{line}");
    assert!(line.contains("auth=\"iam\""), "{line}");
    assert!(
        line.contains("credential=arn:aws:iam::123456789012:role/tutor-task-role"),
        "{line}"
    );
    assert!(line.contains("correlation_id=req-admin-77"), "{line}");
}

#[tokio::test]
async fn unknown_student_is_404_and_refused_credentials_are_502() {
    let c = chain().await;
    let app = tutor(c.gateway.url(), key_auth(&c.tutor_key));
    let (status, body, _) = profile(&app, "no-such-student", Some("corr-2")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["error"], "not_found");

    // A key the gateway does not know: identity-service never runs; tutor says 502
    // and names the dependency.
    let stranger = tutor(
        c.gateway.url(),
        key_auth(&ApiKey::generate(Some("dev")).unwrap()),
    );
    let (status, body, _) = profile(&stranger, STUDENT, Some("corr-3")).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY);
    assert_eq!(body["error"], "dependency_refused");
    assert!(body["message"]
        .as_str()
        .unwrap()
        .contains("identity-service"));
    assert_eq!(c.gateway.seen().last().unwrap().status, 401);

    // A bad signature: 403 at the gateway, 502 from tutor.
    let forged = AuthConfig::SigV4 {
        region: "eu-west-1".into(),
        credentials: CredentialsSource::Static(Credentials::new(
            AKID,
            "wrong-secret",
            Some(TOKEN.into()),
            None,
            "t",
        )),
        clock: None,
    };
    let (status, body, _) = profile(&tutor(c.gateway.url(), forged), STUDENT, None).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY);
    assert_eq!(body["error"], "dependency_refused");
    assert_eq!(c.gateway.seen().last().unwrap().status, 403);

    // A malformed student id never leaves tutor-service.
    let before = c.gateway.seen().len();
    let (status, _, _) = profile(&app, "a%20b", None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(c.gateway.seen().len(), before);
}

/// A dependency that answers with a fixed status, or hangs.
async fn stub(status: u16, delay: Duration) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let svc = service_fn(move |_req| async move {
                    tokio::time::sleep(delay).await;
                    Ok::<_, Infallible>(gateway_error(status, "stub"))
                });
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    format!("http://{addr}/test")
}

#[tokio::test]
async fn failures_and_slowness_of_identity_service_are_503_with_retry_after() {
    let k = ApiKey::generate(Some("dev")).unwrap();
    for (status, delay) in [
        (500, Duration::ZERO),
        (503, Duration::ZERO),
        (429, Duration::ZERO),
        (200, Duration::from_secs(3)),
    ] {
        let app = tutor(stub(status, delay).await, key_auth(&k));
        let (s, body, headers) = profile(&app, STUDENT, Some("corr-4")).await;
        assert_eq!(
            s,
            StatusCode::SERVICE_UNAVAILABLE,
            "{status} after {delay:?}: {body}"
        );
        assert_eq!(body["error"], "dependency_unavailable");
        assert_eq!(headers["retry-after"], "5");
        assert_eq!(headers["x-correlation-id"], "corr-4");
    }
    // Nothing listening at all.
    let app = tutor(
        format!("http://127.0.0.1:{}/test", test_support::free_port()),
        key_auth(&k),
    );
    let (s, _, headers) = profile(&app, STUDENT, None).await;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE);
    assert!(headers.contains_key("retry-after"));
}

#[tokio::test]
async fn the_tutor_route_requires_an_identity_too() {
    let app = tutor(
        "http://127.0.0.1:9/test".into(),
        key_auth(&ApiKey::generate(None).unwrap()),
    );
    let req = Request::builder()
        .uri(format!("/internal/tutor/students/{STUDENT}/profile"))
        .body(Body::empty())
        .unwrap();
    let res = app.oneshot(req).await.unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn the_tutor_event_works_as_lambda_http_delivers_it() {
    let c = chain().await;
    let app = tutor(c.gateway.url(), key_auth(&c.tutor_key));
    let json = std::fs::read_to_string(
        test_support::workspace_root().join("events/tutor-student-profile.json"),
    )
    .unwrap();
    let req = lambda_http::request::from_str(&json).unwrap();
    assert!(matches!(
        req.extensions().get::<RequestContext>(),
        Some(RequestContext::ApiGatewayV1(_))
    ));
    let res = service_identity_http::lambda_service(app)
        .oneshot(req)
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["x-correlation-id"], "corr-7f3c2a19e4b84d0c");
    let bytes = res.into_body().collect().await.unwrap().to_bytes();
    let v: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(v, expected_profile());
    assert_eq!(
        c.gateway.seen()[0].correlation_id.as_deref(),
        Some("corr-7f3c2a19e4b84d0c")
    );
}
