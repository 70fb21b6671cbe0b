//! identity-service against DynamoDB served by a real `moto_server` on loopback, driven
//! through its real router: found, not found, by email, malformed input, create, the
//! identity requirement, what the logs say, and the events in `events/`.

use std::io::Write;
use std::sync::{Arc, Mutex};

use aws_sdk_dynamodb::config::{BehaviorVersion, Credentials, Region};
use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::Router;
use http_body_util::BodyExt;
use identity_service::{create_table, router, AppState, User, Users};
use lambda_http::request::RequestContext;
use serde_json::{json, Value};
use service_auth::identity::IamRoleMap;
use service_identity_http::testing::{anonymous_context, api_key_context, iam_context};
use service_identity_http::{lambda_service, IdentityConfig};
use test_support::MotoServer;
use tower::ServiceExt;

const TUTOR_KID: &str = "kid_3f9a0c41d2e87b65";
const ADMIN_KID: &str = "kid_a17c5e90b3d24f68";
const USER_ID: &str = "6b1f0c52-3f0e-4a8e-9d55-2f1f4c3c9a10";

struct Fixture {
    _moto: MotoServer,
    app: Router,
}

async fn fixture() -> Fixture {
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
            id: USER_ID.into(),
            email: "ada.lovelace+maths@example.com".into(),
            role: "student".into(),
            email_verified: true,
        })
        .await
        .unwrap();
    let roles = IamRoleMap::parse("tutor-task-role=tutor-service").unwrap();
    let state = AppState::new(
        users,
        IdentityConfig::new(roles),
        vec!["admin-service".into()],
    );
    Fixture {
        _moto: moto,
        app: router(state),
    }
}

fn tutor() -> RequestContext {
    api_key_context("tutor-service", TUTOR_KID, "req-tutor-1")
}

fn admin() -> RequestContext {
    api_key_context("admin-service", ADMIN_KID, "req-admin-1")
}

async fn send(
    app: &Router,
    method: &str,
    uri: &str,
    ctx: Option<RequestContext>,
    body: Option<&str>,
) -> (StatusCode, Value, Option<String>) {
    let mut req = Request::builder()
        .method(method)
        .uri(uri)
        .header("x-correlation-id", "corr-test-1")
        .header("content-type", "application/json")
        .body(body.map(|b| Body::from(b.to_owned())).unwrap_or_default())
        .unwrap();
    if let Some(ctx) = ctx {
        req.extensions_mut().insert(ctx);
    }
    let res = app.clone().oneshot(req).await.unwrap();
    let status = res.status();
    let location = res
        .headers()
        .get("location")
        .map(|v| v.to_str().unwrap().to_owned());
    assert_eq!(res.headers()["x-correlation-id"], "corr-test-1");
    let bytes = res.into_body().collect().await.unwrap().to_bytes();
    let v = serde_json::from_slice(&bytes)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&bytes)));
    (status, v, location)
}

fn ada() -> Value {
    json!({"id": USER_ID, "email": "ada.lovelace+maths@example.com", "role": "student", "emailVerified": true})
}

#[tokio::test]
async fn user_found_by_id_and_unknown_id_is_404() {
    let f = fixture().await;
    let (s, v, _) = send(
        &f.app,
        "GET",
        &format!("/internal/users/{USER_ID}"),
        Some(tutor()),
        None,
    )
    .await;
    assert_eq!((s, v), (StatusCode::OK, ada()));

    let (s, v, _) = send(
        &f.app,
        "GET",
        "/internal/users/no-such-user",
        Some(tutor()),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert_eq!(v, json!({"error": "not_found", "message": "no such user"}));
}

#[tokio::test]
async fn user_found_by_escaped_email_case_insensitively() {
    let f = fixture().await;
    for path in [
        "/internal/users/by-email/ada.lovelace%2Bmaths%40example.com",
        "/internal/users/by-email/Ada.Lovelace%2BMaths@EXAMPLE.com",
    ] {
        let (s, v, _) = send(&f.app, "GET", path, Some(tutor()), None).await;
        assert_eq!((s, v), (StatusCode::OK, ada()), "{path}");
    }
    let (s, v, _) = send(
        &f.app,
        "GET",
        "/internal/users/by-email/nobody%40example.com",
        Some(tutor()),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert_eq!(v["error"], "not_found");
}

#[tokio::test]
async fn malformed_ids_and_emails_are_400_with_json_bodies() {
    let f = fixture().await;
    for path in [
        "/internal/users/a%20b",
        "/internal/users/email%23ada.lovelace%2Bmaths%40example.com",
        "/internal/users/%FF",
        "/internal/users/by-email/not-an-email",
        "/internal/users/by-email/ada%40example",
        "/internal/users/by-email/a%2F..%2Fb%40example.com",
    ] {
        let (s, v, _) = send(&f.app, "GET", path, Some(tutor()), None).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{path}: {v}");
        assert_eq!(v["error"], "bad_request");
        assert!(
            !v["message"].as_str().unwrap().contains("ada"),
            "input echoed: {v}"
        );
    }
    // The email guard item is not reachable as a user.
    let (s, _, _) = send(&f.app, "GET", "/internal/users/email", Some(tutor()), None).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn every_route_requires_an_identity() {
    let f = fixture().await;
    for (m, path, body) in [
        ("GET", format!("/internal/users/{USER_ID}"), None),
        (
            "GET",
            "/internal/users/by-email/ada.lovelace%2Bmaths%40example.com".to_owned(),
            None,
        ),
        ("GET", "/internal/users/a%20b".to_owned(), None),
        (
            "POST",
            "/internal/users".to_owned(),
            Some(r#"{"email":"x@example.com","role":"student"}"#),
        ),
    ] {
        for ctx in [None, Some(anonymous_context("req-anon"))] {
            let (s, v, _) = send(&f.app, m, &path, ctx, body).await;
            assert_eq!(s, StatusCode::UNAUTHORIZED, "{m} {path}");
            assert_eq!(v["error"], "no_identity");
        }
    }
}

#[tokio::test]
async fn iam_callers_are_served_when_their_role_is_mapped() {
    let f = fixture().await;
    let uri = format!("/internal/users/{USER_ID}");
    let ok = iam_context(
        "arn:aws:sts::123456789012:assumed-role/tutor-task-role/tutor-fn",
        "r1",
    );
    let (s, v, _) = send(&f.app, "GET", &uri, Some(ok), None).await;
    assert_eq!((s, v), (StatusCode::OK, ada()));
    let unknown = iam_context("arn:aws:sts::123456789012:assumed-role/other-role/x1", "r2");
    let (s, v, _) = send(&f.app, "GET", &uri, Some(unknown), None).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    assert_eq!(v["error"], "unknown_role");
}

#[tokio::test]
async fn admins_create_users_and_others_cannot() {
    let f = fixture().await;
    let body = r#"{"email":"Grace.Hopper@Example.com","role":"tutor","emailVerified":false}"#;
    let (s, v, loc) = send(&f.app, "POST", "/internal/users", Some(admin()), Some(body)).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let id = v["id"].as_str().unwrap().to_owned();
    assert_eq!(id.len(), 36);
    assert_eq!(
        v,
        json!({"id": id, "email": "grace.hopper@example.com", "role": "tutor", "emailVerified": false})
    );
    assert_eq!(
        loc.as_deref(),
        Some(format!("/internal/users/{id}").as_str())
    );

    // It can be read back, by id and by email.
    let (s, got, _) = send(
        &f.app,
        "GET",
        &format!("/internal/users/{id}"),
        Some(tutor()),
        None,
    )
    .await;
    assert_eq!((s, &got), (StatusCode::OK, &v));
    let (s, got, _) = send(
        &f.app,
        "GET",
        "/internal/users/by-email/grace.hopper%40example.com",
        Some(tutor()),
        None,
    )
    .await;
    assert_eq!((s, &got), (StatusCode::OK, &v));

    // The same email again, in another case: 409.
    let again = r#"{"email":"grace.hopper@example.COM","role":"student"}"#;
    let (s, v, _) = send(
        &f.app,
        "POST",
        "/internal/users",
        Some(admin()),
        Some(again),
    )
    .await;
    assert_eq!(s, StatusCode::CONFLICT, "{v}");

    // A non-admin service: 403, whatever the body.
    let (s, v, _) = send(
        &f.app,
        "POST",
        "/internal/users",
        Some(tutor()),
        Some(r#"{"email":"t@example.com","role":"student"}"#),
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    assert_eq!(v["error"], "forbidden");

    for bad in [
        r#"{"email":"not-an-email","role":"student"}"#,
        r#"{"email":"x@example.com","role":"Student!"}"#,
        r#"{"email":"x@example.com","role":"student","id":"chosen"}"#,
        r#"{"email":"x@example.com"}"#,
        "not json",
    ] {
        let (s, v, _) = send(&f.app, "POST", "/internal/users", Some(admin()), Some(bad)).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{bad}: {v}");
        assert_eq!(v["error"], "bad_request");
    }
}

#[tokio::test]
async fn unknown_routes_and_methods_get_json_errors() {
    let f = fixture().await;
    let (s, v, _) = send(&f.app, "GET", "/internal/nothing", Some(tutor()), None).await;
    assert_eq!(
        (s, v["error"].as_str()),
        (StatusCode::NOT_FOUND, Some("no_route"))
    );
    let (s, v, _) = send(
        &f.app,
        "DELETE",
        &format!("/internal/users/{USER_ID}"),
        Some(admin()),
        None,
    )
    .await;
    assert_eq!(
        (s, v["error"].as_str()),
        (StatusCode::METHOD_NOT_ALLOWED, Some("method_not_allowed"))
    );
}

/// Collects formatted log lines.
#[derive(Clone, Default)]
struct Logs(Arc<Mutex<Vec<u8>>>);

impl Write for Logs {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

thread_local! {
    static CAPTURE: std::cell::RefCell<Option<Logs>> = const { std::cell::RefCell::new(None) };
}

/// Writes to the capturing test's buffer, if the writing thread has one.
struct ToCapture;

impl Write for ToCapture {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        CAPTURE.with(|c| {
            if let Some(logs) = &*c.borrow() {
                logs.0.lock().unwrap().extend_from_slice(b);
            }
        });
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Captures this thread's log lines. A global subscriber, not a thread-local default:
/// tracing caches each call site's interest process-wide, so a call site first hit by
/// another test thread with no subscriber would be skipped here too (a flaky test).
/// Tests run on current-thread runtimes, so the handler logs on the test's thread.
fn capture_logs() -> Logs {
    static INIT: std::sync::Once = std::sync::Once::new();
    INIT.call_once(|| {
        let subscriber = tracing_subscriber::fmt()
            .with_writer(|| ToCapture)
            .with_max_level(tracing::Level::INFO)
            .with_ansi(false)
            .finish();
        tracing::subscriber::set_global_default(subscriber).expect("one global subscriber");
    });
    let logs = Logs::default();
    CAPTURE.with(|c| *c.borrow_mut() = Some(logs.clone()));
    logs
}

#[tokio::test]
async fn logs_name_the_caller_and_correlation_id_and_never_the_email() {
    let f = fixture().await;
    let logs = capture_logs();

    send(
        &f.app,
        "GET",
        "/internal/users/by-email/ada.lovelace%2Bmaths%40example.com",
        Some(tutor()),
        None,
    )
    .await;
    send(
        &f.app,
        "GET",
        &format!("/internal/users/{USER_ID}"),
        Some(tutor()),
        None,
    )
    .await;
    let body = r#"{"email":"grace.hopper@example.com","role":"tutor"}"#;
    send(&f.app, "POST", "/internal/users", Some(admin()), Some(body)).await;
    // Refused for want of an identity: logged with the route template, not the path.
    send(
        &f.app,
        "GET",
        "/internal/users/by-email/ada.lovelace%2Bmaths%40example.com",
        None,
        None,
    )
    .await;

    let out = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 4, "{out}");
    assert!(
        lines[3].contains("ERROR") && lines[3].contains("code=\"no_identity\""),
        "{out}"
    );
    assert!(
        lines[3].contains("route=\"/internal/users/by-email/{email}\""),
        "{out}"
    );
    assert!(lines[0].contains("user requested by email"), "{out}");
    assert!(lines[0].contains("caller=tutor-service"), "{out}");
    assert!(lines[0].contains("auth=\"api-key\""), "{out}");
    assert!(
        lines[0].contains(&format!("credential={TUTOR_KID}")),
        "{out}"
    );
    assert!(lines[0].contains("correlation_id=corr-test-1"), "{out}");
    assert!(
        lines[0].contains(&format!("user_id=\"{USER_ID}\"")),
        "{out}"
    );
    assert!(lines[0].contains("email_sha256="), "{out}");
    assert!(
        lines[1].contains("user requested by id") && lines[1].contains("found=true"),
        "{out}"
    );
    assert!(
        lines[2].contains("create user") && lines[2].contains("caller=admin-service"),
        "{out}"
    );
    for needle in ["ada.lovelace", "lovelace%2B", "grace.hopper", "example.com"] {
        assert!(!out.contains(needle), "email in clear in logs: {out}");
    }
}

async fn invoke_event(app: &Router, file: &str) -> (StatusCode, Value, String) {
    let path = test_support::workspace_root().join("events").join(file);
    let json = std::fs::read_to_string(&path).unwrap();
    let req = lambda_http::request::from_str(&json).unwrap_or_else(|e| panic!("{file}: {e}"));
    let res = lambda_service(app.clone()).oneshot(req).await.unwrap();
    let status = res.status();
    let corr = res.headers()["x-correlation-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let bytes = res.into_body().collect().await.unwrap().to_bytes();
    (status, serde_json::from_slice(&bytes).unwrap(), corr)
}

#[tokio::test]
async fn the_events_work_as_lambda_http_delivers_them() {
    let f = fixture().await;
    let (s, v, corr) = invoke_event(&f.app, "identity-get-user-api-key.json").await;
    assert_eq!((s, v), (StatusCode::OK, ada()));
    assert_eq!(corr, "corr-7f3c2a19e4b84d0c");

    let (s, v, _) = invoke_event(&f.app, "identity-by-email-api-key.json").await;
    assert_eq!((s, v), (StatusCode::OK, ada()));

    let (s, v, _) = invoke_event(&f.app, "identity-get-user-iam.json").await;
    assert_eq!((s, v), (StatusCode::OK, ada()));

    let (s, v, _) = invoke_event(&f.app, "identity-get-user-no-identity.json").await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert_eq!(v["error"], "no_identity");

    let (s, v, _) = invoke_event(&f.app, "identity-create-user-admin.json").await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    assert_eq!(v["email"], "grace.hopper@example.com");
}
