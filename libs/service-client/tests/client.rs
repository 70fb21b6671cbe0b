//! The client against a scripted HTTP server on 127.0.0.1 started by each test:
//! credentials on the wire, timeouts, retries, the breaker, correlation ids, escaping,
//! error messages; the API key read once from a SecureString in `moto_server`; and the
//! SigV4 signature checked byte for byte against botocore's `SigV4Auth`.

use std::collections::VecDeque;
use std::io::Write as _;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, UNIX_EPOCH};

use aws_credential_types::Credentials;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use service_auth::ApiKey;
use service_client::{
    AuthConfig, BreakerConfig, ClientConfig, ClientError, CorrelationId, CredentialsSource,
    RetryPolicy, Route, ServiceClient,
};

const GET_USER: Route = Route::get("/internal/users/{id}");
const BY_EMAIL: Route = Route::get("/internal/users/by-email/{email}");
const CREATE: Route = Route::post("/internal/users");

// ---------------------------------------------------------------------------------
// A scripted HTTP/1.1 server

#[derive(Clone, Debug)]
enum Reply {
    /// Status, JSON body, extra headers.
    Json(u16, &'static str, Vec<(&'static str, &'static str)>),
    /// Wait, then answer 200.
    Slow(Duration),
    /// Close the connection without answering.
    Hangup,
}

fn ok() -> Reply {
    Reply::Json(200, r#"{"ok":true}"#, vec![])
}

fn status(s: u16) -> Reply {
    Reply::Json(s, r#"{"error":"some_code","message":"details"}"#, vec![])
}

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

#[derive(Clone)]
struct Server {
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
    script: Arc<Mutex<VecDeque<Reply>>>,
}

impl Server {
    async fn start(script: Vec<Reply>) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let server = Server {
            addr: listener.local_addr().unwrap(),
            seen: Arc::default(),
            script: Arc::new(Mutex::new(script.into())),
        };
        let s = server.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let s = s.clone();
                tokio::spawn(async move {
                    let svc = service_fn(move |req| {
                        let s = s.clone();
                        async move { s.handle(req).await }
                    });
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        server
    }

    async fn handle(
        &self,
        req: hyper::Request<hyper::body::Incoming>,
    ) -> Result<hyper::Response<Full<Bytes>>, std::io::Error> {
        let (parts, body) = req.into_parts();
        let body = body
            .collect()
            .await
            .map(|b| b.to_bytes().to_vec())
            .unwrap_or_default();
        self.seen.lock().unwrap().push(Seen {
            method: parts.method.to_string(),
            path: parts
                .uri
                .path_and_query()
                .map(|p| p.to_string())
                .unwrap_or_default(),
            headers: parts
                .headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("<binary>").to_owned()))
                .collect(),
            body,
        });
        let reply = self.script.lock().unwrap().pop_front().unwrap_or_else(ok);
        let (code, body, headers) = match reply {
            Reply::Json(code, body, headers) => (code, body, headers),
            Reply::Slow(d) => {
                tokio::time::sleep(d).await;
                (200, r#"{"ok":true}"#, vec![])
            }
            Reply::Hangup => return Err(std::io::Error::other("hang up")),
        };
        let mut b = hyper::Response::builder()
            .status(code)
            .header("content-type", "application/json");
        for (k, v) in headers {
            b = b.header(k, v);
        }
        Ok(b.body(Full::new(Bytes::from(body))).unwrap())
    }

    fn url(&self) -> String {
        format!("http://{}/test", self.addr)
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    fn count(&self) -> usize {
        self.seen.lock().unwrap().len()
    }
}

// ---------------------------------------------------------------------------------
// Client set-ups

fn key() -> ApiKey {
    ApiKey::generate(Some("dev")).unwrap()
}

fn fast(mut c: ClientConfig) -> ClientConfig {
    c.timeout = Duration::from_millis(500);
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

fn key_client(server: &Server, k: ApiKey) -> ServiceClient {
    let c = ClientConfig::new(
        "identity-service",
        server.url(),
        "tutor-service",
        AuthConfig::api_key(k),
    );
    ServiceClient::new(fast(c)).unwrap()
}

const AKID: &str = "AKIDEXAMPLE";
const SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
const TOKEN: &str = "IQoJb3JpZ2luX2VjEXAMPLETOKEN//////////wEaCWV1LXdlc3QtMSJGMEQCIExample=";
/// 2026-11-29T10:15:42Z
const FIXED_TIME: u64 = 1_795_947_342;

fn sigv4_client(server: &Server) -> ServiceClient {
    let auth = AuthConfig::SigV4 {
        region: "eu-west-1".into(),
        credentials: CredentialsSource::Static(Credentials::new(
            AKID,
            SECRET,
            Some(TOKEN.into()),
            None,
            "test",
        )),
        clock: Some(Arc::new(|| UNIX_EPOCH + Duration::from_secs(FIXED_TIME))),
    };
    let c = ClientConfig::new("identity-service", server.url(), "tutor-service", auth);
    ServiceClient::new(fast(c)).unwrap()
}

fn corr(s: &str) -> CorrelationId {
    CorrelationId::parse(s).unwrap()
}

async fn get(client: &ServiceClient, route: &Route, params: &[&str]) -> Result<Value, ClientError> {
    client
        .get_json::<Value>(route, params, Some(&corr("corr-1")))
        .await
}

// ---------------------------------------------------------------------------------
// Credentials on the wire

#[tokio::test]
async fn api_key_header_correlation_id_and_escaped_path_are_sent() {
    let server = Server::start(vec![]).await;
    let k = key();
    let secret = k.expose_secret().to_owned();
    let client = key_client(&server, k);
    let v = client
        .get_json::<Value>(
            &BY_EMAIL,
            &["ada.lovelace+maths@example.com"],
            Some(&corr("corr-abc-123")),
        )
        .await
        .unwrap();
    assert_eq!(v, json!({"ok": true}));
    let seen = server.seen();
    assert_eq!(seen.len(), 1);
    let s = &seen[0];
    assert_eq!(s.method, "GET");
    assert_eq!(
        s.path,
        "/test/internal/users/by-email/ada.lovelace%2Bmaths%40example.com"
    );
    assert_eq!(s.header("x-service-api-key"), Some(secret.as_str()));
    assert_eq!(s.header("x-correlation-id"), Some("corr-abc-123"));
    assert_eq!(s.header("accept"), Some("application/json"));
    assert!(s.header("user-agent").unwrap().ends_with("(tutor-service)"));
    assert_eq!(s.header("authorization"), None);
    // Neither the client nor its config show the key.
    assert!(!format!("{client:?}").contains(&secret));
}

#[tokio::test]
async fn slashes_queries_and_dot_segments_cannot_change_the_route() {
    let server = Server::start(vec![]).await;
    let client = key_client(&server, key());
    get(&client, &GET_USER, &["../admin?x=1#y"]).await.unwrap();
    assert_eq!(
        server.seen()[0].path,
        "/test/internal/users/..%2Fadmin%3Fx%3D1%23y"
    );
    for bad in ["..", ".", ""] {
        let err = get(&client, &GET_USER, &[bad]).await.unwrap_err();
        assert!(matches!(err, ClientError::Request { .. }), "{err}");
    }
    assert_eq!(server.count(), 1, "refused paths are never sent");
}

#[tokio::test]
async fn a_new_correlation_id_is_made_when_there_is_none() {
    let server = Server::start(vec![]).await;
    let client = key_client(&server, key());
    client
        .get_json::<Value>(&GET_USER, &["u1"], None)
        .await
        .unwrap();
    client
        .get_json::<Value>(&GET_USER, &["u1"], None)
        .await
        .unwrap();
    let seen = server.seen();
    let a = seen[0].header("x-correlation-id").unwrap();
    let b = seen[1].header("x-correlation-id").unwrap();
    assert_eq!(a.len(), 32);
    assert!(CorrelationId::parse(a).is_some());
    assert_ne!(a, b);
}

#[tokio::test]
async fn retries_keep_the_same_correlation_id() {
    let server = Server::start(vec![status(503), status(502)]).await;
    let client = key_client(&server, key());
    get(&client, &GET_USER, &["u1"]).await.unwrap();
    let ids: Vec<String> = server
        .seen()
        .iter()
        .map(|s| s.header("x-correlation-id").unwrap().to_owned())
        .collect();
    assert_eq!(ids, ["corr-1", "corr-1", "corr-1"]);
}

#[tokio::test]
async fn sigv4_headers_are_present_and_no_api_key() {
    let server = Server::start(vec![]).await;
    let client = sigv4_client(&server);
    get(&client, &GET_USER, &["u1"]).await.unwrap();
    let s = &server.seen()[0];
    let auth = s.header("authorization").unwrap();
    assert!(
        auth.starts_with("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20261129/eu-west-1/execute-api/aws4_request, SignedHeaders="),
        "{auth}"
    );
    assert!(
        auth.contains("x-correlation-id"),
        "the correlation id is signed: {auth}"
    );
    assert_eq!(s.header("x-amz-date"), Some("20261129T101542Z"));
    assert_eq!(s.header("x-amz-security-token"), Some(TOKEN));
    assert_eq!(s.header("x-service-api-key"), None);
}

/// Asks botocore's `SigV4Auth` for the Authorization header of a request exactly as
/// the server received it (minus the client's own signature headers).
fn botocore_authorization(seen: &Seen, host: &str) -> String {
    let python = test_support::workspace_root().join(".venv/bin/python");
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/botocore_sigv4.py");
    let headers: Vec<(String, String)> = seen
        .headers
        .iter()
        .filter(|(k, _)| {
            !matches!(
                k.as_str(),
                "authorization" | "x-amz-date" | "x-amz-security-token"
            )
        })
        .cloned()
        .collect();
    let input = json!({
        "method": seen.method,
        "url": format!("http://{host}{}", seen.path),
        "headers": headers,
        "body": String::from_utf8(seen.body.clone()).unwrap(),
        "access_key": AKID,
        "secret_key": SECRET,
        "token": TOKEN,
        "region": "eu-west-1",
        "time": "2026-11-29T10:15:42Z",
    });
    let mut child = std::process::Command::new(&python)
        .arg(&script)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run {} ({e}): run scripts/setup-tools.sh",
                python.display()
            )
        });
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.to_string().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "botocore signer failed");
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["x-amz-date"], "20261129T101542Z");
    v["authorization"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn sigv4_signature_equals_botocore_for_the_same_request_credentials_and_time() {
    let server = Server::start(vec![Reply::Json(201, r#"{"ok":true}"#, vec![])]).await;
    let client = sigv4_client(&server);
    // A POST with a JSON body, then a GET whose path holds an escaped email (SigV4
    // encodes it a second time in the canonical request).
    client
        .send_json::<Value, Value>(
            &CREATE,
            &[],
            Some(&json!({"email": "grace.hopper@example.com", "role": "tutor"})),
            Some(&corr("corr-sig-1")),
        )
        .await
        .unwrap();
    get(&client, &BY_EMAIL, &["ada.lovelace+maths@example.com"])
        .await
        .unwrap();

    let host = server.addr.to_string();
    let seen = server.seen();
    assert_eq!(seen.len(), 2);
    for s in &seen {
        let ours = s.header("authorization").unwrap();
        let theirs = botocore_authorization(s, &host);
        assert_eq!(ours, theirs, "{} {}", s.method, s.path);
    }
    // A different body or path must give a different signature (the check can fail).
    let mut tampered = seen[1].clone();
    tampered.path = tampered.path.replace("ada", "eve");
    assert_ne!(
        seen[1].header("authorization").unwrap(),
        botocore_authorization(&tampered, &host)
    );
}

// ---------------------------------------------------------------------------------
// Timeouts, retries, breaker

#[tokio::test]
async fn the_timeout_is_honoured_and_not_retried() {
    let server = Server::start(vec![Reply::Slow(Duration::from_secs(3))]).await;
    let client = key_client(&server, key());
    let start = Instant::now();
    let err = get(&client, &GET_USER, &["u1"]).await.unwrap_err();
    let took = start.elapsed();
    assert!(matches!(err, ClientError::Timeout { .. }), "{err}");
    assert!(
        took >= Duration::from_millis(500) && took < Duration::from_millis(1500),
        "{took:?}"
    );
    assert_eq!(server.count(), 1, "a timeout is not retried");
    assert!(err.is_unavailable());
}

#[tokio::test]
async fn the_default_timeout_is_five_seconds() {
    let c = ClientConfig::new("s", "https://example.com", "me", AuthConfig::api_key(key()));
    assert_eq!(c.timeout, Duration::from_secs(5));
}

#[tokio::test]
async fn idempotent_calls_are_retried_on_5xx_429_and_connection_errors() {
    let server = Server::start(vec![
        status(500),
        Reply::Json(429, "{}", vec![("retry-after", "0")]),
        Reply::Hangup,
    ])
    .await;
    let client = key_client(&server, key());
    let v = get(&client, &GET_USER, &["u1"]).await;
    // Three failures used up the three attempts.
    assert!(matches!(v, Err(ClientError::Connection { .. })), "{v:?}");
    assert_eq!(server.count(), 3);

    // 503 then 200: success on the second attempt.
    server.script.lock().unwrap().extend([status(503)]);
    let before = server.count();
    assert_eq!(
        get(&client, &GET_USER, &["u1"]).await.unwrap(),
        json!({"ok": true})
    );
    assert_eq!(server.count() - before, 2);
}

#[tokio::test]
async fn posts_and_client_errors_are_not_retried() {
    let server = Server::start(vec![
        status(503),
        Reply::Hangup,
        status(404),
        status(401),
        status(409),
    ])
    .await;
    let client = key_client(&server, key());
    let body = json!({"email": "x@example.com", "role": "student"});
    let post = |c: &ServiceClient| {
        let c = c.clone();
        let body = body.clone();
        async move {
            c.send_json::<Value, Value>(&CREATE, &[], Some(&body), None)
                .await
        }
    };
    assert_eq!(post(&client).await.unwrap_err().status(), Some(503));
    assert!(matches!(
        post(&client).await.unwrap_err(),
        ClientError::Connection { .. }
    ));
    assert_eq!(server.count(), 2, "POST is never retried");
    for want in [404, 401, 409] {
        let err = get(&client, &GET_USER, &["u1"]).await.unwrap_err();
        assert_eq!(err.status(), Some(want));
        assert!(!err.is_unavailable());
    }
    assert_eq!(server.count(), 5, "4xx answers are not retried");
}

#[tokio::test]
async fn a_long_retry_after_ends_the_retries() {
    let server = Server::start(vec![Reply::Json(503, "{}", vec![("retry-after", "120")])]).await;
    let client = key_client(&server, key());
    let err = get(&client, &GET_USER, &["u1"]).await.unwrap_err();
    assert_eq!(err.retry_after(), Some(Duration::from_secs(120)));
    assert_eq!(server.count(), 1);
}

#[tokio::test]
async fn nothing_listening_is_a_connection_error_after_bounded_retries() {
    let port = test_support::free_port();
    let c = ClientConfig::new(
        "identity-service",
        format!("http://127.0.0.1:{port}/test"),
        "tutor-service",
        AuthConfig::api_key(key()),
    );
    let client = ServiceClient::new(fast(c)).unwrap();
    let start = Instant::now();
    let err = get(&client, &GET_USER, &["u1"]).await.unwrap_err();
    assert!(matches!(err, ClientError::Connection { .. }), "{err}");
    assert!(start.elapsed() < Duration::from_secs(2));
}

#[tokio::test]
async fn the_breaker_opens_fails_fast_and_recovers_after_a_probe() {
    let server = Server::start(vec![status(500); 6]).await;
    let mut c = ClientConfig::new(
        "identity-service",
        server.url(),
        "tutor-service",
        AuthConfig::api_key(key()),
    );
    c = fast(c);
    let clock = test_support::TestClock::at(1_764_600_000);
    c.clock = clock.unix_clock();
    c.breaker = BreakerConfig {
        failure_threshold: 3,
        cool_down: Duration::from_millis(300),
    };
    let client = ServiceClient::new(c).unwrap();

    // Three failed attempts (one call, retried twice) open the circuit.
    assert_eq!(
        get(&client, &GET_USER, &["u1"]).await.unwrap_err().status(),
        Some(500)
    );
    assert_eq!(server.count(), 3);
    // Open: fail fast, nothing sent, and still open just before the cool-down ends.
    clock.advance_millis(299);
    let err = get(&client, &GET_USER, &["u1"]).await.unwrap_err();
    assert!(matches!(err, ClientError::CircuitOpen { .. }), "{err}");
    assert!(err.is_unavailable() && err.retry_after().unwrap() <= Duration::from_millis(300));
    assert_eq!(server.count(), 3);

    // After the cool-down one probe goes out; it fails (500): open again, no retry.
    clock.advance_millis(1);
    assert_eq!(
        get(&client, &GET_USER, &["u1"]).await.unwrap_err().status(),
        Some(500)
    );
    assert_eq!(server.count(), 4);
    assert!(matches!(
        get(&client, &GET_USER, &["u1"]).await,
        Err(ClientError::CircuitOpen { .. })
    ));

    // Next probe succeeds: closed, calls flow again.
    server.script.lock().unwrap().clear();
    clock.advance_millis(300);
    assert!(get(&client, &GET_USER, &["u1"]).await.is_ok());
    assert!(get(&client, &GET_USER, &["u1"]).await.is_ok());
    assert_eq!(server.count(), 6);
}

#[tokio::test]
async fn concurrent_callers_send_one_probe_only() {
    let server = Server::start(vec![
        status(500),
        status(500),
        status(500),
        Reply::Slow(Duration::from_millis(200)),
    ])
    .await;
    let mut c = fast(ClientConfig::new(
        "identity-service",
        server.url(),
        "tutor-service",
        AuthConfig::api_key(key()),
    ));
    let clock = test_support::TestClock::at(1_764_600_000);
    c.clock = clock.unix_clock();
    c.breaker = BreakerConfig {
        failure_threshold: 3,
        cool_down: Duration::from_millis(100),
    };
    let client = ServiceClient::new(c).unwrap();
    let _ = get(&client, &GET_USER, &["u1"]).await;
    clock.advance_millis(100);
    let results = futures_join(&client, 5).await;
    let ok = results.iter().filter(|r| r.is_ok()).count();
    let open = results
        .iter()
        .filter(|r| matches!(r, Err(ClientError::CircuitOpen { .. })))
        .count();
    assert_eq!((ok, open), (1, 4), "{results:?}");
    assert_eq!(server.count(), 4);
}

async fn futures_join(client: &ServiceClient, n: usize) -> Vec<Result<Value, ClientError>> {
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..n {
        let c = client.clone();
        set.spawn(async move { get(&c, &GET_USER, &["u1"]).await });
    }
    let mut out = Vec::new();
    while let Some(r) = set.join_next().await {
        out.push(r.unwrap());
    }
    out
}

// ---------------------------------------------------------------------------------
// Errors, configuration

#[tokio::test]
async fn errors_name_the_service_the_route_and_the_reason_without_secrets() {
    let server = Server::start(vec![
        Reply::Json(403, r#"{"error":"unknown_role","message":"x"}"#, vec![]),
        Reply::Json(200, "not json", vec![]),
    ])
    .await;
    let k = key();
    let secret = k.expose_secret().to_owned();
    let client = key_client(&server, k);
    let err = get(&client, &BY_EMAIL, &["ada@example.com"])
        .await
        .unwrap_err();
    let msg = err.to_string();
    assert_eq!(
        msg,
        "identity-service GET /internal/users/by-email/{email}: answered HTTP 403 (unknown_role)"
    );
    let err = get(&client, &BY_EMAIL, &["ada@example.com"])
        .await
        .unwrap_err();
    let msg2 = err.to_string();
    assert!(msg2.starts_with("identity-service GET /internal/users/by-email/{email}: the answer is not the expected JSON"), "{msg2}");
    for m in [&msg, &msg2, &format!("{err:?}")] {
        assert!(
            !m.contains(&secret) && !m.contains("ada@example.com"),
            "{m}"
        );
    }
}

#[test]
fn base_urls_are_checked() {
    let mk = |url: &str| {
        ServiceClient::new(ClientConfig::new(
            "identity-service",
            url,
            "tutor-service",
            AuthConfig::api_key(key()),
        ))
    };
    assert!(mk("https://abc.execute-api.eu-west-1.amazonaws.com/prod").is_ok());
    assert!(mk("http://127.0.0.1:3000/prod").is_ok());
    assert!(mk("http://localhost:3000").is_ok());
    for bad in [
        "http://abc.execute-api.eu-west-1.amazonaws.com/prod",
        "https://user:pw@example.com/prod",
        "https://example.com/prod?x=1",
        "ftp://example.com",
        "example.com/prod",
    ] {
        let err = mk(bad).unwrap_err();
        assert!(
            err.to_string().contains("base URL of identity-service"),
            "{bad}: {err}"
        );
    }
}

// ---------------------------------------------------------------------------------
// The API key from SSM (moto), read once and cached; never logged

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
async fn the_api_key_is_read_once_from_a_securestring_and_cached() {
    let moto = test_support::MotoServer::start();
    let conf = aws_sdk_ssm::Config::builder()
        .behavior_version(aws_sdk_ssm::config::BehaviorVersion::latest())
        .region(aws_sdk_ssm::config::Region::new("eu-west-1"))
        .endpoint_url(moto.endpoint())
        .credentials_provider(Credentials::new("test", "test", None, None, "test"))
        .build();
    let ssm = aws_sdk_ssm::Client::from_conf(conf);
    let param = "/dev/tutor-service/identity-service-api-key";
    let first = key();
    let put = |v: String| {
        let ssm = ssm.clone();
        async move {
            ssm.put_parameter()
                .name(param)
                .value(v)
                .r#type(aws_sdk_ssm::types::ParameterType::SecureString)
                .overwrite(true)
                .send()
                .await
                .unwrap();
        }
    };
    put(first.expose_secret().to_owned()).await;

    let logs = Logs::default();
    let sink = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || sink.clone())
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let server = Server::start(vec![ok(), ok(), status(401)]).await;
    let auth = AuthConfig::ApiKey {
        source: service_client::KeySource::Ssm {
            client: ssm.clone(),
            parameter: param.into(),
        },
        refresh_after_rejection: Duration::ZERO,
    };
    let client = ServiceClient::new(fast(ClientConfig::new(
        "identity-service",
        server.url(),
        "tutor-service",
        auth,
    )))
    .unwrap();
    get(&client, &GET_USER, &["u1"]).await.unwrap();

    // The parameter is rotated: the cached key is still used...
    let second = key();
    put(second.expose_secret().to_owned()).await;
    get(&client, &GET_USER, &["u1"]).await.unwrap();
    // ...until the service refuses it; then it is read again.
    assert_eq!(
        get(&client, &GET_USER, &["u1"]).await.unwrap_err().status(),
        Some(401)
    );
    get(&client, &GET_USER, &["u1"]).await.unwrap();

    let sent: Vec<String> = server
        .seen()
        .iter()
        .map(|s| s.header("x-service-api-key").unwrap().to_owned())
        .collect();
    assert_eq!(
        sent,
        [
            first.expose_secret(),
            first.expose_secret(),
            first.expose_secret(),
            second.expose_secret()
        ]
    );

    let out = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    assert!(out.contains("service API key loaded"), "{out}");
    assert!(out.contains(first.key_id().as_str()), "{out}");
    for k in [&first, &second] {
        assert!(!out.contains(k.expose_secret()), "key in logs: {out}");
    }

    // A parameter that does not hold a key: a clear error, without its value.
    put("not-a-key-value".into()).await;
    let auth = AuthConfig::api_key_from_ssm(ssm.clone(), param);
    let client = ServiceClient::new(fast(ClientConfig::new(
        "identity-service",
        server.url(),
        "tutor-service",
        auth,
    )))
    .unwrap();
    let err = get(&client, &GET_USER, &["u1"])
        .await
        .unwrap_err()
        .to_string();
    assert!(err.starts_with("identity-service: no credentials to call it with: SSM parameter /dev/tutor-service/identity-service-api-key does not hold a service key"), "{err}");
    assert!(!err.contains("not-a-key-value"));
    let missing = AuthConfig::api_key_from_ssm(ssm, "/dev/nobody/identity-service-api-key");
    let client = ServiceClient::new(fast(ClientConfig::new(
        "identity-service",
        server.url(),
        "tutor-service",
        missing,
    )))
    .unwrap();
    let err = get(&client, &GET_USER, &["u1"])
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("reading SSM parameter /dev/nobody/identity-service-api-key"),
        "{err}"
    );
}
