//! The gateway core over real HTTP on 127.0.0.1, with stub functions in place of the
//! authorizer and the backends: routing from the project's template, the REQUEST
//! event, the authorizer's answers, policy evaluation, the result cache, SigV4 and the
//! IAM policies, the proxy event and response, the access log.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use local_gateway::client::request;
use local_gateway::function::FnFunction;
use local_gateway::http::Response;
use local_gateway::{
    default_template, start, FactoryFuture, Function, FunctionError, FunctionFactory,
    LocalCredentials, Model, Options, Running, Site,
};
use serde_json::{json, Value};
use service_auth::UnixTime;

const NOW: u64 = 1_795_953_600;
const ARN_PREFIX: &str = "arn:aws:execute-api:us-east-1:123456789012:";

/// Events seen by the stubs, and what the stub authorizer answers per key.
#[derive(Default, Clone)]
struct Seen {
    authorizer: Arc<Mutex<Vec<Value>>>,
    backend: Arc<Mutex<Vec<Value>>>,
    log: Arc<Mutex<Vec<String>>>,
}

impl Seen {
    fn authorizer_calls(&self) -> usize {
        self.authorizer.lock().unwrap().len()
    }
    fn last_backend_event(&self) -> Value {
        self.backend
            .lock()
            .unwrap()
            .last()
            .cloned()
            .expect("the backend was not invoked")
    }
    fn last_log(&self) -> Value {
        serde_json::from_str(self.log.lock().unwrap().last().expect("no access log line")).unwrap()
    }
}

fn policy(effect: &str, resource: &str) -> Value {
    json!({"Version": "2012-10-17", "Statement": [{"Effect": effect, "Action": "execute-api:Invoke", "Resource": resource}]})
}

/// The stub authorizer: the key names the answer.
fn stub_authorizer(seen: Seen) -> Arc<dyn Function> {
    Arc::new(FnFunction(move |event: Value| {
        seen.authorizer.lock().unwrap().push(event.clone());
        async move {
            let key = event["headers"]
                .as_object()
                .and_then(|h| {
                    h.iter()
                        .find(|(k, _)| k.eq_ignore_ascii_case("x-service-api-key"))
                })
                .and_then(|(_, v)| v.as_str())
                .unwrap_or("")
                .to_owned();
            let users = format!("{ARN_PREFIX}identitykey/v1/GET/internal/users/*");
            let ctx = json!({"serviceId": "tutor-service", "authenticatedBy": "api-key", "keyId": "kid_0123456789abcdef", "n": 7, "flag": true});
            match key.as_str() {
                "allow-users" => Ok(
                    json!({"principalId": "tutor-service", "policyDocument": policy("Allow", &users), "context": ctx}),
                ),
                "allow-then-deny" => {
                    Ok(json!({"principalId": "p", "policyDocument": {"Statement": [
                    {"Effect": "Allow", "Action": "execute-api:*", "Resource": format!("{ARN_PREFIX}*")},
                    {"Effect": "Deny", "Action": "execute-api:Invoke", "Resource": format!("{ARN_PREFIX}identitykey/v1/GET/internal/users/4?")}
                ]}, "context": ctx}))
                }
                "unauthorized" => Err(FunctionError::new("Unauthorized", "Unauthorized")),
                "boom" => Err(FunctionError::new("Error", "database is down")),
                "object-context" => Ok(
                    json!({"principalId": "p", "policyDocument": policy("Allow", "*"), "context": {"o": {"a": 1}}}),
                ),
                "array-context" => Ok(
                    json!({"principalId": "p", "policyDocument": policy("Allow", "*"), "context": {"a": [1]}}),
                ),
                "no-principal" => Ok(json!({"policyDocument": policy("Allow", "*")})),
                _ => Err(FunctionError::new("Unauthorized", "Unauthorized")),
            }
        }
    }))
}

/// The stub backend: answers 200 with a header, the body echoed.
fn stub_backend(seen: Seen) -> Arc<dyn Function> {
    Arc::new(FnFunction(move |event: Value| {
        seen.backend.lock().unwrap().push(event.clone());
        async move {
            match event["path"].as_str() {
                Some(p) if p.ends_with("/malformed") => Ok(json!({"body": "no status"})),
                Some(p) if p.ends_with("/crash") => {
                    Err(FunctionError::new("Runtime.ExitError", "panicked"))
                }
                _ => Ok(json!({
                    "statusCode": 200,
                    "headers": {},
                    "multiValueHeaders": {"content-type": ["application/json"], "x-backend": ["stub"]},
                    "body": json!({"echo": event["body"]}).to_string(),
                    "isBase64Encoded": false
                })),
            }
        }
    }))
}

struct Stubs(Seen);

impl FunctionFactory for Stubs {
    fn build<'a>(&'a self, model: &'a Model, _site: &'a Site) -> FactoryFuture<'a> {
        Box::pin(async move {
            let mut out: BTreeMap<String, Arc<dyn Function>> = BTreeMap::new();
            for (id, f) in &model.functions {
                let stub = if f.binary.as_deref() == Some("authorizer") {
                    stub_authorizer(self.0.clone())
                } else {
                    stub_backend(self.0.clone())
                };
                out.insert(id.clone(), stub);
            }
            Ok(out)
        })
    }
}

struct Harness {
    gw: Running,
    seen: Seen,
    clock: Arc<AtomicU64>,
}

impl Harness {
    async fn start(result_ttl: Option<u64>) -> Self {
        let seen = Seen::default();
        let clock = Arc::new(AtomicU64::new(NOW));
        let mut o = Options::new(default_template());
        o.bind = "127.0.0.1:0".parse().unwrap();
        o.result_ttl = result_ttl;
        let c = clock.clone();
        o.clock = Arc::new(move || UnixTime(c.load(Ordering::SeqCst)));
        let log = seen.log.clone();
        o.access_log = Arc::new(move |l| log.lock().unwrap().push(l.to_owned()));
        let gw = start(o, &Stubs(seen.clone())).await.unwrap();
        Self { gw, seen, clock }
    }

    fn target(&self, api: &str, path: &str) -> String {
        let base = self.gw.url(api);
        let prefix = base
            .split_once(&self.gw.addr().to_string())
            .unwrap()
            .1
            .to_owned();
        format!("{prefix}{path}")
    }

    async fn call(
        &self,
        method: &str,
        api: &str,
        path: &str,
        headers: &[(&str, &str)],
    ) -> Response {
        request(
            self.gw.addr(),
            method,
            &self.target(api, path),
            headers,
            b"",
        )
        .await
        .unwrap()
    }

    async fn get_users(&self, key: &str) -> Response {
        self.call(
            "GET",
            "IdentityKeyApi",
            "/internal/users/42",
            &[("x-service-api-key", key)],
        )
        .await
    }
}

fn body(r: &Response) -> Value {
    serde_json::from_slice(&r.body).unwrap_or_else(|_| json!(String::from_utf8_lossy(&r.body)))
}

#[tokio::test]
async fn unknown_routes_and_apis_are_refused_before_any_authorizer() {
    let h = Harness::start(None).await;
    for (method, path) in [
        ("GET", "/internal/nothing"),
        ("DELETE", "/internal/users/42"),
        ("GET", "/internal/users"),
        ("GET", "/internal/users/42/more"),
    ] {
        let r = h
            .call(
                method,
                "IdentityKeyApi",
                path,
                &[("x-service-api-key", "allow-users")],
            )
            .await;
        assert_eq!(r.status, 403, "{method} {path}");
        assert_eq!(body(&r), json!({"message": "Missing Authentication Token"}));
        assert_eq!(
            r.header("x-amzn-ErrorType"),
            Some("MissingAuthenticationTokenException")
        );
    }
    assert_eq!(h.seen.authorizer_calls(), 0);
    let r = request(
        h.gw.addr(),
        "GET",
        "/nosuchapi/v1/internal/users/42",
        &[],
        b"",
    )
    .await
    .unwrap();
    assert_eq!(r.status, 403);
    let r = request(
        h.gw.addr(),
        "GET",
        "/identitykey/prod/internal/users/42",
        &[],
        b"",
    )
    .await
    .unwrap();
    assert_eq!(r.status, 403);
    // The local index lists the template's APIs: the example's four and the
    // platform's token API.
    let r = request(h.gw.addr(), "GET", "/", &[], b"").await.unwrap();
    assert_eq!(body(&r)["apis"].as_array().unwrap().len(), 5);
}

#[tokio::test]
async fn a_missing_or_empty_identity_source_is_401_without_invoking_the_authorizer() {
    let h = Harness::start(None).await;
    let r = h
        .call("GET", "IdentityKeyApi", "/internal/users/42", &[])
        .await;
    assert_eq!(r.status, 401);
    assert_eq!(body(&r), json!({"message": "Unauthorized"}));
    let r = h.get_users("").await;
    assert_eq!(r.status, 401);
    assert_eq!(h.seen.authorizer_calls(), 0);
    assert_eq!(h.seen.last_log()["errorType"], "UNAUTHORIZED");
    assert_eq!(h.seen.last_log()["authorizerStatus"], "-");
}

#[tokio::test]
async fn the_authorizer_gets_a_faithful_request_event() {
    let h = Harness::start(Some(0)).await;
    let r = h
        .call(
            "GET",
            "IdentityKeyApi",
            "/internal/users/by-email/ada%40example.com?x=1&x=2&y=z%20w",
            &[
                ("X-Service-Api-Key", "allow-users"),
                ("X-Correlation-Id", "corr-1"),
                ("Accept", "a"),
                ("accept", "b"),
            ],
        )
        .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let ev = h.seen.authorizer.lock().unwrap()[0].clone();
    assert_eq!(ev["type"], "REQUEST");
    assert_eq!(
        ev["methodArn"],
        format!("{ARN_PREFIX}identitykey/v1/GET/internal/users/by-email/ada%40example.com")
    );
    assert_eq!(ev["resource"], "/internal/users/by-email/{email}");
    assert_eq!(ev["path"], "/internal/users/by-email/ada%40example.com");
    assert_eq!(ev["httpMethod"], "GET");
    // Names as received; every value kept.
    assert_eq!(ev["headers"]["X-Service-Api-Key"], "allow-users");
    assert_eq!(ev["headers"]["Accept"], "b");
    assert_eq!(ev["multiValueHeaders"]["Accept"], json!(["a", "b"]));
    assert_eq!(ev["headers"]["X-Forwarded-Proto"], "http");
    assert!(ev["headers"]["X-Amzn-Trace-Id"]
        .as_str()
        .unwrap()
        .starts_with("Root=1-"));
    assert_eq!(ev["queryStringParameters"], json!({"x": "2", "y": "z w"}));
    assert_eq!(
        ev["multiValueQueryStringParameters"],
        json!({"x": ["1", "2"], "y": ["z w"]})
    );
    assert_eq!(ev["pathParameters"], json!({"email": "ada@example.com"}));
    assert_eq!(
        ev["stageVariables"]["executionLogGroup"],
        "IdentityKeyApiExecutionLogGroup"
    );
    let ctx = &ev["requestContext"];
    assert_eq!(ctx["stage"], "v1");
    assert_eq!(ctx["apiId"], "identitykey");
    assert_eq!(ctx["accountId"], "123456789012");
    assert_eq!(ctx["resourcePath"], "/internal/users/by-email/{email}");
    assert_eq!(ctx["path"], "/v1/internal/users/by-email/ada%40example.com");
    assert_eq!(ctx["identity"]["sourceIp"], "127.0.0.1");
    assert_eq!(ctx["requestId"].as_str().unwrap().len(), 36);
    // The authorizer crate reads it.
    let view = authorizer::Event::from_value(&ev).0.unwrap();
    // Seen in both maps, one distinct value.
    assert_eq!(view.api_key_values, ["allow-users", "allow-users"]);
    assert_eq!(view.correlation_id, "corr-1");
    assert_eq!(
        view.resource.as_deref(),
        Some("/internal/users/by-email/{email}")
    );
}

#[tokio::test]
async fn authorizer_errors_are_401_for_unauthorized_and_500_otherwise() {
    let h = Harness::start(None).await;
    let r = h.get_users("unauthorized").await;
    assert_eq!(
        (r.status, body(&r)),
        (401, json!({"message": "Unauthorized"}))
    );
    for key in ["boom", "object-context", "array-context", "no-principal"] {
        let r = h.get_users(key).await;
        assert_eq!(r.status, 500, "{key}");
        assert_eq!(body(&r), json!({"message": null}), "{key}");
        assert_eq!(
            h.seen.last_log()["errorType"],
            "AUTHORIZER_CONFIGURATION_ERROR"
        );
    }
    // Nothing of that was cached: each call invoked the authorizer.
    h.get_users("boom").await;
    assert_eq!(h.seen.authorizer_calls(), 6);
    assert!(h.seen.backend.lock().unwrap().is_empty());
}

#[tokio::test]
async fn the_policy_is_evaluated_against_the_method_arn() {
    let h = Harness::start(None).await;
    // Allowed: GET /internal/users/*.
    let r = h.get_users("allow-users").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-backend"), Some("stub"));
    // Same key, another route: the cached policy does not cover it.
    let r = h
        .call(
            "POST",
            "IdentityKeyApi",
            "/internal/users",
            &[("x-service-api-key", "allow-users")],
        )
        .await;
    assert_eq!(r.status, 403);
    assert_eq!(
        body(&r),
        json!({"Message": "User is not authorized to access this resource"})
    );
    assert_eq!(h.seen.last_log()["errorType"], "ACCESS_DENIED");
    assert_eq!(h.seen.last_log()["serviceId"], "tutor-service");
    assert_eq!(h.seen.authorizer_calls(), 1);
    // Explicit Deny wins over Allow; `?` is one character.
    let r = h
        .call(
            "GET",
            "IdentityKeyApi",
            "/internal/users/42",
            &[("x-service-api-key", "allow-then-deny")],
        )
        .await;
    assert_eq!(r.status, 403);
    assert_eq!(
        body(&r),
        json!({"Message": "User is not authorized to access this resource with an explicit deny"})
    );
    let r = h
        .call(
            "GET",
            "IdentityKeyApi",
            "/internal/users/420",
            &[("x-service-api-key", "allow-then-deny")],
        )
        .await;
    assert_eq!(r.status, 200);
}

#[tokio::test]
async fn results_are_cached_by_identity_source_for_the_ttl() {
    let h = Harness::start(None).await;
    assert_eq!(h.get_users("allow-users").await.status, 200);
    assert_eq!(h.get_users("allow-users").await.status, 200);
    assert_eq!(
        h.call(
            "GET",
            "IdentityKeyApi",
            "/internal/users/by-email/x",
            &[("x-service-api-key", "allow-users")]
        )
        .await
        .status,
        200
    );
    assert_eq!(
        h.seen.authorizer_calls(),
        1,
        "one invocation for three calls"
    );
    // Another key is another cache entry.
    h.get_users("unauthorized").await;
    assert_eq!(h.seen.authorizer_calls(), 2);
    // The template's ReauthorizeEvery (300 s), on the gateway's clock.
    h.clock.fetch_add(299, Ordering::SeqCst);
    h.get_users("allow-users").await;
    assert_eq!(h.seen.authorizer_calls(), 2);
    h.clock.fetch_add(1, Ordering::SeqCst);
    h.get_users("allow-users").await;
    assert_eq!(h.seen.authorizer_calls(), 3);
    // Each API's authorizer has its own cache.
    let r = h
        .call(
            "GET",
            "TutorKeyApi",
            "/internal/tutor/students/1/profile",
            &[("x-service-api-key", "allow-users")],
        )
        .await;
    assert_eq!(r.status, 403);
    assert_eq!(h.seen.authorizer_calls(), 4);

    // TTL 0: every call invokes the authorizer.
    let h = Harness::start(Some(0)).await;
    for _ in 0..3 {
        h.get_users("allow-users").await;
    }
    assert_eq!(h.seen.authorizer_calls(), 3);
}

#[tokio::test]
async fn the_backend_gets_a_faithful_proxy_event_and_its_answer_is_returned() {
    let h = Harness::start(None).await;
    let target = h.target("IdentityKeyApi", "/internal/users");
    let r = request(
        h.gw.addr(),
        "POST",
        &target,
        &[
            ("x-service-api-key", "allow-then-deny"),
            ("Content-Type", "application/json"),
            ("X-Correlation-Id", "c-9"),
        ],
        br#"{"email":"a@b.c"}"#,
    )
    .await
    .unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(body(&r), json!({"echo": "{\"email\":\"a@b.c\"}"}));
    assert!(r.header("x-amzn-RequestId").is_some());
    let ev = h.seen.last_backend_event();
    assert_eq!(ev["resource"], "/internal/users");
    assert_eq!(ev["path"], "/internal/users");
    assert_eq!(ev["httpMethod"], "POST");
    assert_eq!(ev["headers"]["X-Correlation-Id"], "c-9");
    assert_eq!(
        ev["multiValueHeaders"]["Content-Type"],
        json!(["application/json"])
    );
    assert_eq!(ev["queryStringParameters"], Value::Null);
    assert_eq!(ev["pathParameters"], Value::Null);
    assert_eq!(ev["isBase64Encoded"], false);
    // Context values as strings, with the principal.
    let a = &ev["requestContext"]["authorizer"];
    assert_eq!(a["serviceId"], "tutor-service");
    assert_eq!(a["n"], "7");
    assert_eq!(a["flag"], "true");
    assert_eq!(a["principalId"], "p");
    assert_eq!(ev["requestContext"]["identity"]["userArn"], Value::Null);
    // lambda_http reads it as an API Gateway REST event.
    let req = lambda_http::request::from_str(&ev.to_string()).unwrap();
    assert_eq!(req.uri().path(), "/v1/internal/users");

    // A malformed proxy response or a function error is a 502.
    for path in ["/internal/users/malformed", "/internal/users/crash"] {
        let r = h
            .call(
                "GET",
                "IdentityKeyApi",
                path,
                &[("x-service-api-key", "allow-users")],
            )
            .await;
        assert_eq!(
            (r.status, body(&r)),
            (502, json!({"message": "Internal server error"})),
            "{path}"
        );
    }
}

fn signed(
    h: &Harness,
    method: &str,
    api: &str,
    path: &str,
    akid: &str,
    at: u64,
) -> Vec<(String, String)> {
    let creds = LocalCredentials::dev();
    let c = creds.credentials(akid).unwrap_or_else(|| {
        aws_credential_types::Credentials::new(akid, "unknown-secret", None, None, "test")
    });
    let mut headers = vec![("Host".to_owned(), h.gw.addr().to_string())];
    local_gateway::sigv4::sign_headers(
        method,
        &h.target(api, path),
        &mut headers,
        b"",
        &c,
        "us-east-1",
        UnixTime(at),
    )
    .unwrap();
    headers
}

const TUTOR_AKID: &str = "AKIAIOSFODNN7EXAMPLE";
const ADMIN_AKID: &str = "AKIAI44QH8DHBEXAMPLE";

#[tokio::test]
async fn iam_routes_verify_sigv4_and_apply_the_roles_policies() {
    let h = Harness::start(None).await;
    let send = |headers: Vec<(String, String)>, method: &'static str, path: &'static str| {
        let target = h.target("IdentityIamApi", path);
        let addr = h.gw.addr();
        async move {
            let hs: Vec<(&str, &str)> = headers
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            request(addr, method, &target, &hs, b"").await.unwrap()
        }
    };
    // The tutor role may read users.
    let hs = signed(
        &h,
        "GET",
        "IdentityIamApi",
        "/internal/users/42",
        TUTOR_AKID,
        NOW,
    );
    let r = send(hs, "GET", "/internal/users/42").await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let ev = h.seen.last_backend_event();
    let id = &ev["requestContext"]["identity"];
    assert_eq!(
        id["userArn"],
        "arn:aws:sts::123456789012:assumed-role/TutorServiceRole/local-session"
    );
    assert!(id["caller"].as_str().unwrap().ends_with(":local-session"));
    assert_eq!(id["accessKey"], TUTOR_AKID);
    assert!(ev["requestContext"].get("authorizer").is_none());
    let log = h.seen.last_log();
    assert_eq!(
        log["iamCaller"],
        "arn:aws:sts::123456789012:assumed-role/TutorServiceRole/local-session"
    );
    assert_eq!(log["status"], "200");

    // ...but not create them: the template's policy for TutorServiceRole.
    let hs = signed(
        &h,
        "POST",
        "IdentityIamApi",
        "/internal/users",
        TUTOR_AKID,
        NOW,
    );
    let r = send(hs, "POST", "/internal/users").await;
    assert_eq!(r.status, 403);
    assert_eq!(
        body(&r)["Message"],
        format!("User: arn:aws:sts::123456789012:assumed-role/TutorServiceRole/local-session is not authorized to perform: execute-api:Invoke on resource: {ARN_PREFIX}identityiam/v1/POST/internal/users")
    );
    // The admin role may.
    let hs = signed(
        &h,
        "POST",
        "IdentityIamApi",
        "/internal/users",
        ADMIN_AKID,
        NOW,
    );
    assert_eq!(send(hs, "POST", "/internal/users").await.status, 200);

    // No signature, an unknown key, a tampered signature, an old one.
    let r = send(vec![], "GET", "/internal/users/42").await;
    assert_eq!(
        (r.status, body(&r)),
        (403, json!({"message": "Missing Authentication Token"}))
    );
    let hs = signed(
        &h,
        "GET",
        "IdentityIamApi",
        "/internal/users/42",
        "AKIAUNKNOWN00EXAMPLE",
        NOW,
    );
    let r = send(hs, "GET", "/internal/users/42").await;
    assert_eq!(
        (r.status, body(&r)),
        (
            403,
            json!({"message": "The security token included in the request is invalid."})
        )
    );
    let hs = signed(
        &h,
        "GET",
        "IdentityIamApi",
        "/internal/users/43",
        TUTOR_AKID,
        NOW,
    );
    let r = send(hs, "GET", "/internal/users/42").await;
    assert_eq!(r.status, 403);
    assert!(body(&r)["message"]
        .as_str()
        .unwrap()
        .starts_with("The request signature we calculated"));
    let hs = signed(
        &h,
        "GET",
        "IdentityIamApi",
        "/internal/users/42",
        TUTOR_AKID,
        NOW - 16 * 60,
    );
    let r = send(hs, "GET", "/internal/users/42").await;
    assert_eq!(r.status, 403);
    assert!(body(&r)["message"]
        .as_str()
        .unwrap()
        .starts_with("Signature expired"));
    // An API key means nothing on an IAM API.
    let r = h
        .call(
            "GET",
            "IdentityIamApi",
            "/internal/users/42",
            &[("x-service-api-key", "allow-users")],
        )
        .await;
    assert_eq!(r.status, 403);
}

#[tokio::test]
async fn access_log_lines_follow_the_templates_format() {
    let h = Harness::start(None).await;
    h.get_users("allow-users").await;
    let log = h.seen.last_log();
    let format_keys: Vec<String> = serde_json::from_str::<Value>(
        &h.gw.model().apis[0]
            .access_log_format
            .clone()
            .unwrap()
            .replace("$context.", ""),
    )
    .unwrap()
    .as_object()
    .unwrap()
    .keys()
    .cloned()
    .collect();
    let line_keys: Vec<String> = log.as_object().unwrap().keys().cloned().collect();
    assert_eq!(line_keys, format_keys);
    assert_eq!(log["route"], "/internal/users/{id}");
    assert_eq!(log["path"], "/v1/internal/users/42");
    assert_eq!(log["httpMethod"], "GET");
    assert_eq!(log["status"], "200");
    assert_eq!(log["apiId"], "identitykey");
    assert_eq!(log["stage"], "v1");
    assert_eq!(log["serviceId"], "tutor-service");
    assert_eq!(log["authenticatedBy"], "api-key");
    assert_eq!(log["keyId"], "kid_0123456789abcdef");
    assert_eq!(log["authorizerStatus"], "200");
    assert_eq!(log["sourceIp"], "127.0.0.1");
    assert_eq!(log["iamCaller"], "-");
    assert_eq!(log["errorType"], "-");
    assert!(log["latencyMs"].as_str().unwrap().parse::<u64>().is_ok());
    assert!(log["time"].as_str().unwrap().ends_with("+0000"));
}

#[tokio::test]
async fn only_loopback_addresses_are_served() {
    let mut o = Options::new(default_template());
    o.bind = "0.0.0.0:0".parse().unwrap();
    let err = start(o, &Stubs(Seen::default())).await.err().unwrap();
    assert!(err.to_string().contains("loopback"), "{err}");
}

/// A trailing slash: API Gateway REST ignores it when matching the resource, passes
/// the path on as sent (`path`, `requestContext.path`) and the path parameter without
/// it. As recorded against AWS in LocalStack's snapshot tests
/// (`test_lambda_aws_proxy_integration`: `/proxy-value/` gives `path` `/proxy-value/`,
/// `pathParameters.proxy` `proxy-value`) and its router ("trailing slashes are
/// ignored in APIGW").
#[tokio::test]
async fn a_trailing_slash_matches_the_resource_and_reaches_the_backend_as_sent() {
    let h = Harness::start(None).await;
    let r = h
        .call(
            "GET",
            "IdentityKeyApi",
            "/internal/users/42/",
            &[("x-service-api-key", "allow-users")],
        )
        .await;
    assert_eq!(r.status, 200, "{}", body(&r));
    let ev = h.seen.last_backend_event();
    assert_eq!(ev["resource"], "/internal/users/{id}");
    assert_eq!(ev["path"], "/internal/users/42/");
    assert_eq!(ev["pathParameters"], json!({"id": "42"}));
    assert_eq!(ev["requestContext"]["path"], "/v1/internal/users/42/");
    assert_eq!(ev["requestContext"]["resourcePath"], "/internal/users/{id}");
    // The authorizer's method ARN carries the path as sent; the tutor policy's
    // `users/*` still covers it.
    let auth = h.seen.authorizer.lock().unwrap().last().cloned().unwrap();
    assert_eq!(
        auth["methodArn"],
        format!("{ARN_PREFIX}identitykey/v1/GET/internal/users/42/")
    );
    // A trailing slash on the collection resource too.
    let r = h
        .call(
            "POST",
            "IdentityKeyApi",
            "/internal/users/",
            &[("x-service-api-key", "allow-then-deny")],
        )
        .await;
    assert_eq!(r.status, 200, "{}", body(&r));
    assert_eq!(h.seen.last_backend_event()["resource"], "/internal/users");
}

/// API Gateway's REST quotas that a request can hit: "Total combined size of all
/// header values" 10240 bytes, and the 1600-byte method ARN of a method with
/// authorization (AWS: 414).
#[tokio::test]
async fn header_and_method_arn_quotas_are_applied() {
    let h = Harness::start(None).await;
    let key = ("x-service-api-key", "allow-users");
    // Just within the quota: served.
    let used = "allow-users".len() + "127.0.0.1:65535".len();
    let pad = "a".repeat(10_240 - used - 200);
    let r = h
        .call(
            "GET",
            "IdentityKeyApi",
            "/internal/users/42",
            &[key, ("x-pad", &pad)],
        )
        .await;
    assert_eq!(r.status, 200, "{}", body(&r));
    let calls = h.seen.authorizer_calls();
    // Over it: refused before the authorizer.
    let pad = "a".repeat(10_241);
    let r = h
        .call(
            "GET",
            "IdentityKeyApi",
            "/internal/users/42",
            &[key, ("x-pad", &pad)],
        )
        .await;
    assert_eq!(r.status, 431, "{}", body(&r));
    assert_eq!(
        body(&r),
        json!({"message": "Request Header Fields Too Large"})
    );
    assert_eq!(h.seen.authorizer_calls(), calls);
    // A path that makes the method ARN longer than 1600 bytes: 414.
    let long = "x".repeat(1600);
    let r = h
        .call(
            "GET",
            "IdentityKeyApi",
            &format!("/internal/users/{long}"),
            &[key],
        )
        .await;
    assert_eq!(r.status, 414, "{}", body(&r));
    assert_eq!(h.seen.authorizer_calls(), calls);
    assert_eq!(h.seen.last_log()["status"], "414");
}

/// The root names the example's roles to the platform's token issuer by the names a
/// deployed stack gives them (`{stack}-tutor-service`); a local run knows every role by
/// its logical id, so the gateway gives the issuer the example's own line instead, and
/// keeps a `TokenIamRoles` the user gave.
#[test]
fn the_token_issuer_maps_the_roles_the_local_run_signs_as() {
    let path = local_gateway::default_template();
    let text = std::fs::read_to_string(&path).unwrap();
    let issuer_roles = |given: Option<&str>| {
        let mut env = local_gateway::Environment {
            template_dir: path.parent().map(std::path::Path::to_path_buf),
            ..Default::default()
        };
        env.parameters.insert("AuthMode".into(), "token".into());
        if let Some(g) = given {
            env.parameters.insert("TokenIamRoles".into(), g.into());
        }
        let model = local_gateway::read_model(&text, &mut env).unwrap();
        let issuer = model
            .functions
            .values()
            .find(|f| f.binary.as_deref() == Some("token-issuer"))
            .unwrap();
        (issuer.env["SVCAUTH_IAM_ROLES"].clone(), model)
    };
    let (roles, model) = issuer_roles(None);
    let backend = model.functions["IdentityServiceFunction"].env["SVCAUTH_IAM_ROLES"].clone();
    assert_eq!(roles, backend);
    assert_eq!(
        roles,
        local_gateway::template::EnvValue::Text(
            "TutorServiceRole=tutor-service,TutorFunctionRole=tutor-service,AdminServiceRole=admin-service".into()
        )
    );
    // every role it names is one the development credentials sign as
    let credentials = local_gateway::LocalCredentials::dev();
    for role in ["TutorServiceRole", "TutorFunctionRole", "AdminServiceRole"] {
        assert!(credentials.for_role(role).is_some(), "{role}");
    }
    let (given, _) = issuer_roles(Some("BillingRole=billing"));
    assert_eq!(
        given,
        local_gateway::template::EnvValue::Text("BillingRole=billing".into())
    );
}
