//! Token mode against a token issuer and an API, both small HTTP servers on 127.0.0.1
//! started by each test: the token obtained with the key (or SigV4) and reused, the
//! refresh before the authorizer would refuse it, single flight under concurrency, one
//! retry after a 401, the issuer's 503, and no token in logs, errors or `Debug`.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, UNIX_EPOCH};

use aws_credential_types::Credentials;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use service_auth::ApiKey;
use service_client::{
    AuthConfig, BreakerConfig, ClientConfig, ClientError, CredentialsSource, RetryPolicy, Route,
    ServiceClient, TokenConfig, TokenRequest, TokenSettings,
};

const GET_USER: Route = Route::get("/internal/users/{id}");
const CREATE: Route = Route::post("/internal/users");
/// 2025-12-01T14:40:00Z
const T0: u64 = 1_764_600_000;

#[derive(Clone, Debug)]
struct Seen {
    method: String,
    path: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Seen {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

type Answer = (u16, String, Vec<(&'static str, String)>);
type Handler = Arc<dyn Fn(&Seen) -> Answer + Send + Sync>;

/// An HTTP/1.1 server answering with `handler`, after `delay`.
#[derive(Clone)]
struct Server {
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl Server {
    async fn start(delay: Duration, handler: Handler) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let server = Server {
            addr: listener.local_addr().unwrap(),
            seen: Arc::default(),
        };
        let seen = server.seen.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (seen, handler) = (seen.clone(), handler.clone());
                tokio::spawn(async move {
                    let svc = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                        let (seen, handler) = (seen.clone(), handler.clone());
                        async move {
                            let (parts, body) = req.into_parts();
                            let body = body.collect().await.map(|b| b.to_bytes().to_vec());
                            let s = Seen {
                                method: parts.method.to_string(),
                                path: parts.uri.path().to_owned(),
                                headers: parts
                                    .headers
                                    .iter()
                                    .map(|(k, v)| {
                                        (k.to_string(), v.to_str().unwrap_or("").to_owned())
                                    })
                                    .collect(),
                                body: body.unwrap_or_default(),
                            };
                            seen.lock().unwrap().push(s.clone());
                            tokio::time::sleep(delay).await;
                            let (code, body, headers) = handler(&s);
                            let mut b = hyper::Response::builder()
                                .status(code)
                                .header("content-type", "application/json");
                            for (k, v) in headers {
                                b = b.header(k, v);
                            }
                            Ok::<_, std::io::Error>(b.body(Full::new(Bytes::from(body))).unwrap())
                        }
                    });
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        server
    }

    fn url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    fn count(&self) -> usize {
        self.seen.lock().unwrap().len()
    }
}

/// A token issuer: token `tok-N` (N counting from 1), `lifetime` seconds from `clock`.
fn issuer(clock: Arc<AtomicU64>, lifetime: u64) -> Handler {
    let n = Arc::new(AtomicU64::new(0));
    Arc::new(move |_| {
        let i = n.fetch_add(1, Ordering::SeqCst) + 1;
        let now = clock.load(Ordering::SeqCst);
        (
            200,
            json!({"token": format!("eyJhbGciOiJFUzI1NiJ9.tok-{i}.c2ln"), "tokenType": "Bearer",
                "expiresAt": humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(now + lifetime)).to_string(),
                "expiresIn": lifetime, "tokenId": format!("jti-{i}")})
            .to_string(),
            vec![],
        )
    })
}

fn bearer(i: u64) -> String {
    format!("Bearer eyJhbGciOiJFUzI1NiJ9.tok-{i}.c2ln")
}

/// An API accepting every token but those `refused` lists (by number).
fn api(refused: Vec<u64>) -> Handler {
    Arc::new(move |s| {
        let auth = s.header("authorization").unwrap_or("");
        if refused.iter().any(|i| auth == bearer(*i)) || auth.is_empty() {
            (401, r#"{"message":"Unauthorized"}"#.into(), vec![])
        } else {
            (200, r#"{"ok":true}"#.into(), vec![])
        }
    })
}

fn ok(_: &Seen) -> Answer {
    (200, r#"{"ok":true}"#.into(), vec![])
}

fn settings() -> TokenSettings {
    TokenSettings {
        min_remaining: Duration::from_secs(60),
        clock_skew: Duration::from_secs(10),
        refresh_lead: Duration::from_secs(60),
        refresh_jitter: Duration::from_secs(60),
        retry_after_failure: Duration::from_secs(5),
    }
}

fn fast(mut c: ClientConfig) -> ClientConfig {
    c.timeout = Duration::from_secs(2);
    c.retry = RetryPolicy {
        max_attempts: 3,
        base_delay: Duration::from_millis(10),
        max_delay: Duration::from_millis(50),
    };
    c.breaker = BreakerConfig {
        failure_threshold: 100,
        cool_down: Duration::from_secs(30),
    };
    c
}

fn token_client(
    issuer: &Server,
    api: &Server,
    proof: AuthConfig,
    clock: Arc<AtomicU64>,
) -> ServiceClient {
    let mut t = TokenConfig::new(issuer.url(), proof);
    t.settings = settings();
    t.request = TokenRequest {
        audience: Some(vec!["identity".into()]),
        ..Default::default()
    };
    t.clock = Some(Arc::new(move || {
        UNIX_EPOCH + Duration::from_secs(clock.load(Ordering::SeqCst))
    }));
    ServiceClient::new(fast(ClientConfig::new(
        "identity-service",
        api.url(),
        "tutor-service",
        AuthConfig::token(t),
    )))
    .unwrap()
}

fn key() -> ApiKey {
    ApiKey::generate(Some("dev")).unwrap()
}

async fn get(c: &ServiceClient) -> Result<Value, ClientError> {
    c.get_json(&GET_USER, &["42"], None).await
}

#[tokio::test]
async fn a_token_is_obtained_with_the_key_reused_and_refreshed_before_the_authorizer_refuses_it() {
    let clock = Arc::new(AtomicU64::new(T0));
    let iss = Server::start(Duration::ZERO, issuer(clock.clone(), 600)).await;
    let target = Server::start(Duration::ZERO, api(vec![])).await;
    let k = key();
    let client = token_client(
        &iss,
        &target,
        AuthConfig::api_key(ApiKey::parse(k.expose_secret()).unwrap()),
        clock.clone(),
    );
    for _ in 0..3 {
        get(&client).await.unwrap();
    }
    // One issuer call, with the key, on the key route; every API call with the token.
    let got = iss.seen();
    assert_eq!(got.len(), 1);
    assert_eq!(
        (got[0].method.as_str(), got[0].path.as_str()),
        ("POST", "/v1/token")
    );
    assert_eq!(got[0].header("x-service-api-key"), Some(k.expose_secret()));
    assert_eq!(
        serde_json::from_slice::<Value>(&got[0].body).unwrap(),
        json!({"audience": ["identity"]})
    );
    for s in target.seen() {
        assert_eq!(s.header("authorization"), Some(bearer(1).as_str()));
        assert_eq!(s.header("x-service-api-key"), None);
    }
    // Usable until exp - 60 (cache TTL) - 10 (skew) = T0+530; due 60..120 s before.
    clock.store(T0 + 409, Ordering::SeqCst);
    get(&client).await.unwrap();
    assert_eq!(iss.count(), 1, "not due before T0+410");
    clock.store(T0 + 470, Ordering::SeqCst);
    get(&client).await.unwrap();
    assert_eq!(iss.count(), 2, "due by T0+470 whatever the jitter");
    assert_eq!(
        target.seen().last().unwrap().header("authorization"),
        Some(bearer(2).as_str())
    );
}

#[tokio::test]
async fn a_token_is_never_presented_inside_the_authorizer_cache_ttl() {
    // The token held expires at T0+600; at T0+531 it would be refused
    // (expires_within_cache_ttl): the client must not send it, even if the issuer fails.
    let clock = Arc::new(AtomicU64::new(T0));
    let fail = Arc::new(AtomicU64::new(0));
    let good = issuer(clock.clone(), 600);
    let f = fail.clone();
    let handler: Handler = Arc::new(move |s| {
        if f.load(Ordering::SeqCst) == 1 {
            (
                503,
                r#"{"error":"signing_unavailable"}"#.into(),
                vec![("retry-after", "1".into())],
            )
        } else {
            good(s)
        }
    });
    let iss = Server::start(Duration::ZERO, handler).await;
    let target = Server::start(Duration::ZERO, api(vec![])).await;
    let client = token_client(&iss, &target, AuthConfig::api_key(key()), clock.clone());
    get(&client).await.unwrap();
    fail.store(1, Ordering::SeqCst);
    // Due but usable: the refresh fails (503; its Retry-After of 1 s is beyond the
    // retry policy's 50 ms, so not retried), the held token is used, and the next
    // attempt waits 5 s.
    clock.store(T0 + 480, Ordering::SeqCst);
    get(&client).await.unwrap();
    assert_eq!(iss.count(), 2);
    get(&client).await.unwrap();
    assert_eq!(
        iss.count(),
        2,
        "no new issuer call within retry_after_failure"
    );
    assert_eq!(target.count(), 3);
    // Past usable_until: no token is sent; the error says the issuer is unavailable.
    clock.store(T0 + 531, Ordering::SeqCst);
    let err = get(&client).await.unwrap_err();
    assert!(
        matches!(
            err,
            ClientError::Token {
                status: Some(503),
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.is_unavailable());
    assert_eq!(err.retry_after(), Some(Duration::from_secs(1)));
    assert!(err.to_string().contains("signing_unavailable"), "{err}");
    assert_eq!(
        target.count(),
        3,
        "the API was not called with a stale token"
    );
    // The issuer is back: a new token.
    fail.store(0, Ordering::SeqCst);
    get(&client).await.unwrap();
    assert_eq!(
        target.seen().last().unwrap().header("authorization"),
        Some(bearer(2).as_str())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_callers_share_one_issuer_call() {
    let clock = Arc::new(AtomicU64::new(T0));
    // A slow issuer, so that every caller arrives while the first call is in flight.
    let iss = Server::start(Duration::from_millis(200), issuer(clock.clone(), 600)).await;
    let target = Server::start(Duration::ZERO, api(vec![])).await;
    let client = token_client(&iss, &target, AuthConfig::api_key(key()), clock.clone());
    let calls: Vec<_> = (0..32)
        .map(|_| {
            let c = client.clone();
            tokio::spawn(async move { get(&c).await.map(|_| ()) })
        })
        .collect();
    for c in calls {
        c.await.unwrap().unwrap();
    }
    assert_eq!(iss.count(), 1);
    assert_eq!(target.count(), 32);

    // Due for refresh: one caller refreshes, the others go on with the held token.
    clock.store(T0 + 480, Ordering::SeqCst);
    let calls: Vec<_> = (0..32)
        .map(|_| {
            let c = client.clone();
            tokio::spawn(async move { get(&c).await.map(|_| ()) })
        })
        .collect();
    for c in calls {
        c.await.unwrap().unwrap();
    }
    assert_eq!(iss.count(), 2);
    let tokens: Vec<_> = target.seen()[32..]
        .iter()
        .map(|s| s.header("authorization").unwrap().to_owned())
        .collect();
    assert!(tokens.iter().all(|t| *t == bearer(1) || *t == bearer(2)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_callers_share_one_failed_issuer_call() {
    let refusals: Handler = Arc::new(|_| {
        (
            401,
            r#"{"error":"key_not_usable","message":"revoked"}"#.into(),
            vec![],
        )
    });
    let iss = Server::start(Duration::from_millis(200), refusals).await;
    let target = Server::start(Duration::ZERO, Arc::new(ok)).await;
    let client = token_client(
        &iss,
        &target,
        AuthConfig::api_key(key()),
        Arc::new(AtomicU64::new(T0)),
    );
    let calls: Vec<_> = (0..16)
        .map(|_| {
            let c = client.clone();
            tokio::spawn(async move { get(&c).await })
        })
        .collect();
    for c in calls {
        let err = c.await.unwrap().unwrap_err();
        assert!(
            matches!(&err, ClientError::Token { status: Some(401), code: Some(c), unavailable: false, .. } if c == "key_not_usable"),
            "{err:?}"
        );
    }
    assert_eq!(iss.count(), 1, "one issuer call for 16 waiting callers");
    assert_eq!(target.count(), 0);
}

#[tokio::test]
async fn a_401_gets_one_new_token_and_one_retry_then_gives_up() {
    let clock = Arc::new(AtomicU64::new(T0));
    let iss = Server::start(Duration::ZERO, issuer(clock.clone(), 600)).await;
    // The API refuses token 1 (say, braked) and accepts token 2.
    let target = Server::start(Duration::ZERO, api(vec![1])).await;
    let client = token_client(&iss, &target, AuthConfig::api_key(key()), clock.clone());
    // A token refused moments after it was issued is not replaced: a new one would be
    // refused too (this bounds issuer calls under a persistent refusal).
    let err = get(&client).await.unwrap_err();
    assert_eq!(err.status(), Some(401));
    assert_eq!((iss.count(), target.count()), (1, 1));
    // Older: a new token and one retry; even a POST (never retried otherwise).
    clock.store(T0 + 30, Ordering::SeqCst);
    let _: Value = client
        .send_json(&CREATE, &[], Some(&json!({"email": "a@example.com"})), None)
        .await
        .unwrap();
    let auth: Vec<_> = target
        .seen()
        .iter()
        .map(|s| s.header("authorization").unwrap().to_owned())
        .collect();
    assert_eq!(auth, [bearer(1), bearer(1), bearer(2)]);
    assert_eq!(iss.count(), 2);

    // The API refuses every token: one retry, then the 401, naming no token.
    let clock = Arc::new(AtomicU64::new(T0));
    let iss = Server::start(Duration::ZERO, issuer(clock.clone(), 600)).await;
    let target = Server::start(Duration::ZERO, api((1..100).collect())).await;
    let client = token_client(&iss, &target, AuthConfig::api_key(key()), clock.clone());
    get(&client).await.unwrap_err();
    clock.store(T0 + 30, Ordering::SeqCst);
    let err = get(&client).await.unwrap_err();
    assert_eq!(err.status(), Some(401));
    assert_eq!((iss.count(), target.count()), (2, 3));
    let shown = format!("{err} {err:?} {client:?}");
    assert!(!shown.contains("tok-"), "{shown}");
    // A 403 is about the token's permissions: no new token, no retry.
    let forbid: Handler = Arc::new(|_| (403, r#"{"Message":"denied"}"#.into(), vec![]));
    let clock = Arc::new(AtomicU64::new(T0));
    let iss = Server::start(Duration::ZERO, issuer(clock.clone(), 600)).await;
    let target = Server::start(Duration::ZERO, forbid).await;
    let client = token_client(&iss, &target, AuthConfig::api_key(key()), clock.clone());
    clock.store(T0 + 30, Ordering::SeqCst);
    assert_eq!(get(&client).await.unwrap_err().status(), Some(403));
    assert_eq!((iss.count(), target.count()), (1, 1));
}

#[tokio::test]
async fn a_token_is_obtained_with_sigv4_on_the_iam_route() {
    let clock = Arc::new(AtomicU64::new(T0));
    let iss = Server::start(Duration::ZERO, issuer(clock.clone(), 600)).await;
    let target = Server::start(Duration::ZERO, api(vec![])).await;
    let c = clock.clone();
    let proof = AuthConfig::SigV4 {
        region: "eu-west-1".into(),
        credentials: CredentialsSource::Static(Credentials::new(
            "AKIDEXAMPLE",
            "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
            None,
            None,
            "test",
        )),
        clock: Some(Arc::new(move || {
            UNIX_EPOCH + Duration::from_secs(c.load(Ordering::SeqCst))
        })),
    };
    let client = token_client(&iss, &target, proof, clock);
    get(&client).await.unwrap();
    let got = iss.seen();
    assert_eq!(
        (got[0].method.as_str(), got[0].path.as_str()),
        ("POST", "/v1/token/iam")
    );
    let auth = got[0].header("authorization").unwrap();
    assert!(
        auth.starts_with(
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20251201/eu-west-1/execute-api/aws4_request"
        ),
        "{auth}"
    );
    assert_eq!(got[0].header("x-service-api-key"), None);
    assert_eq!(
        target.seen()[0].header("authorization"),
        Some(bearer(1).as_str())
    );
}

#[tokio::test]
async fn bad_issuer_answers_are_clear_errors_without_the_token() {
    let clock = Arc::new(AtomicU64::new(T0));
    let target = Server::start(Duration::ZERO, api(vec![])).await;
    for (answer, expect) in [
        // Lives 60 s: shorter than the cache TTL + skew, the authorizer would refuse it.
        (
            json!({"token": "eyJ.short-secret.sig", "tokenType": "Bearer", "expiresIn": 60, "tokenId": "jti-s"}),
            "lives 60 s",
        ),
        (
            json!({"token": "eyJ.mac-secret.sig", "tokenType": "MAC", "expiresIn": 600}),
            "not Bearer",
        ),
        (
            json!({"token": "has spaces-secret", "expiresIn": 600}),
            "not a compact JWS",
        ),
        (
            json!({"token": "x".repeat(9000), "expiresIn": 600}),
            "too long",
        ),
        (
            json!({"tok": "eyJ.field-secret.sig", "expiresIn": 600}),
            "is not {token, expiresIn",
        ),
        (
            json!({"token": "eyJ.type-secret.sig", "expiresIn": "eyJ.type-secret.sig"}),
            "is not {token, expiresIn",
        ),
    ] {
        let body = answer.to_string();
        let iss = Server::start(
            Duration::ZERO,
            Arc::new(move |_| (200, body.clone(), vec![])),
        )
        .await;
        let client = token_client(&iss, &target, AuthConfig::api_key(key()), clock.clone());
        let err = get(&client).await.unwrap_err();
        let shown = format!("{err} {err:?}");
        assert!(matches!(err, ClientError::Token { .. }), "{shown}");
        assert!(shown.contains(expect), "{expect}: {shown}");
        assert!(!shown.contains("secret"), "{shown}");
    }
    assert_eq!(target.count(), 0);
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

#[tokio::test]
async fn tokens_are_never_logged_only_their_ids() {
    // The process-wide subscriber (a thread-local one can miss events whose callsite
    // another test thread registered first): every test's client logs land here, so
    // the no-token check below covers them all.
    static LOGS: std::sync::OnceLock<Logs> = std::sync::OnceLock::new();
    let logs = LOGS
        .get_or_init(|| {
            let logs = Logs::default();
            let sink = logs.clone();
            tracing_subscriber::fmt()
                .with_writer(move || sink.clone())
                .with_max_level(tracing::Level::TRACE)
                .with_ansi(false)
                .init();
            logs
        })
        .clone();

    let clock = Arc::new(AtomicU64::new(T0));
    let iss = Server::start(Duration::ZERO, issuer(clock.clone(), 600)).await;
    let target = Server::start(Duration::ZERO, api(vec![1])).await;
    let k = key();
    let client = token_client(
        &iss,
        &target,
        AuthConfig::api_key(ApiKey::parse(k.expose_secret()).unwrap()),
        clock.clone(),
    );
    clock.store(T0, Ordering::SeqCst);
    get(&client).await.unwrap_err();
    clock.store(T0 + 30, Ordering::SeqCst);
    get(&client).await.unwrap();
    let out = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    assert!(out.contains("service token obtained"), "{out}");
    assert!(out.contains("jti-1") && out.contains("jti-2"), "{out}");
    assert!(out.contains("service token refused"), "{out}");
    assert!(
        !out.contains("tok-1") && !out.contains("tok-2"),
        "token in logs: {out}"
    );
    assert!(!out.contains(k.expose_secret()), "key in logs: {out}");
    let shown = format!("{client:?}");
    assert!(
        !shown.contains("tok-") && !shown.contains(k.expose_secret()),
        "{shown}"
    );
}
