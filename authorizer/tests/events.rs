//! Every sample event in `events/` and the API Gateway fixtures shipped inside
//! `aws_lambda_events`, through the real handler against the development store.

use crate::common::*;
use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

use authorizer::handle;
use serde_json::{json, Value};
use service_auth::permissions::wildcard_match;

fn resources(resp: &Value) -> Vec<String> {
    resp["policyDocument"]["Statement"][0]["Resource"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_str().unwrap().to_owned())
        .collect()
}

fn allows(resp: &Value, method_arn: &str) -> bool {
    let st = &resp["policyDocument"]["Statement"];
    let matched =
        |effect: &str| {
            st.as_array().unwrap().iter().any(|s| {
                s["Effect"] == effect
                    && s["Resource"].as_array().unwrap().iter().any(|r| {
                        wildcard_match(r.as_str().unwrap().as_bytes(), method_arn.as_bytes())
                    })
            })
        };
    matched("Allow") && !matched("Deny")
}

async fn run(name: &str) -> Result<Value, authorizer::Unauthorized> {
    let store = dev_store();
    handle(&store, &event(name))
        .await
        .map(|r| serde_json::to_value(r).unwrap())
}

#[tokio::test]
async fn valid_key_gets_the_services_policy_and_context() {
    let resp = run("authorizer-valid-key").await.unwrap();
    assert_eq!(resp["principalId"], "tutor-service");
    assert_eq!(resp["policyDocument"]["Version"], "2012-10-17");
    let st = &resp["policyDocument"]["Statement"];
    assert_eq!(st.as_array().unwrap().len(), 1);
    assert_eq!(st[0]["Effect"], "Allow");
    assert_eq!(st[0]["Action"], json!(["execute-api:Invoke"]));
    assert_eq!(
        resources(&resp),
        vec![
            "arn:aws:execute-api:us-east-1:123456789012:a1b2c3d4e5/prod/GET/internal/users/*",
            "arn:aws:execute-api:us-east-1:123456789012:a1b2c3d4e5/prod/GET/internal/users/by-email/*",
        ]
    );
    assert_eq!(
        resp["context"],
        json!({"serviceId": "tutor-service", "authenticatedBy": "api-key", "keyId": "kid_f94915a196acedcb"})
    );
    // API Gateway fails the request on a context value that is not a string, number or boolean.
    assert!(resp["context"]
        .as_object()
        .unwrap()
        .values()
        .all(Value::is_string));
    let arn = event("authorizer-valid-key")["methodArn"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(allows(&resp, &arn));
}

#[tokio::test]
async fn refused_events_are_unauthorized() {
    for name in [
        "authorizer-missing-key",
        "authorizer-invalid-key",
        "authorizer-malformed-key",
        "authorizer-revoked-key",
        "authorizer-expired-key",
        "authorizer-duplicated-header",
    ] {
        let err = run(name).await.expect_err(name);
        assert_eq!(err.to_string(), "Unauthorized", "{name}");
    }
}

#[tokio::test]
async fn route_outside_permissions_gets_the_same_policy_which_does_not_cover_the_route() {
    let inside = run("authorizer-valid-key").await.unwrap();
    let outside = run("authorizer-route-outside-permissions").await.unwrap();
    assert_eq!(inside["policyDocument"], outside["policyDocument"]);
    let arn = event("authorizer-route-outside-permissions")["methodArn"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(arn.ends_with("/POST/internal/users"));
    assert!(
        !allows(&outside, &arn),
        "API Gateway must answer 403 for {arn}"
    );
}

#[tokio::test]
async fn header_name_case_does_not_matter() {
    let resp = run("authorizer-header-other-case").await.unwrap();
    assert_eq!(resp["principalId"], "tutor-service");
}

#[tokio::test]
async fn legacy_and_admin_keys() {
    let resp = run("authorizer-legacy-key").await.unwrap();
    assert_eq!(resp["principalId"], "reporting-service");
    let resp = run("authorizer-admin-key").await.unwrap();
    assert_eq!(resp["principalId"], "admin-service");
    assert_eq!(
        resources(&resp),
        vec!["arn:aws:execute-api:us-east-1:123456789012:a1b2c3d4e5/prod/*/internal/*"]
    );
    assert!(allows(
        &resp,
        event("authorizer-admin-key")["methodArn"].as_str().unwrap()
    ));
}

#[tokio::test]
async fn every_sample_event_has_a_tested_outcome() {
    let dir = repo_root().join("events");
    for entry in std::fs::read_dir(&dir).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        let Some(stem) = name.strip_suffix(".json") else {
            continue;
        };
        if !stem.starts_with("authorizer-") {
            continue;
        }
        let expected_allow = matches!(
            stem,
            "authorizer-valid-key"
                | "authorizer-route-outside-permissions"
                | "authorizer-header-other-case"
                | "authorizer-legacy-key"
                | "authorizer-admin-key"
        );
        let expected_deny = matches!(
            stem,
            "authorizer-missing-key"
                | "authorizer-invalid-key"
                | "authorizer-malformed-key"
                | "authorizer-revoked-key"
                | "authorizer-expired-key"
                | "authorizer-duplicated-header"
                // A Bearer token: this API-key-only authorizer does not look at it.
                // Its token outcomes are in tests/token.rs.
                | "authorizer-token-bearer"
        );
        assert!(
            expected_allow ^ expected_deny,
            "event {stem} has no expected outcome in this test"
        );
        assert_eq!(run(stem).await.is_ok(), expected_allow, "{stem}");
    }
}

/// A fixture shipped inside the `aws_lambda_events` package this workspace builds.
fn upstream_fixture(name: &str) -> Value {
    read_json(&upstream_fixtures_dir().join(name))
}

/// `src/fixtures` of `aws_lambda_events`, found through `cargo metadata`: offline
/// (the build already fetched the package) and filtered to the host platform, since an
/// unfiltered resolve wants crates of other platforms (wasm, Windows) that a build on
/// this machine never downloads.
fn upstream_fixtures_dir() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let rustc = Command::new("rustc")
            .arg("-vV")
            .output()
            .expect("rustc -vV");
        let version = String::from_utf8_lossy(&rustc.stdout);
        let host = version
            .lines()
            .find_map(|l| l.strip_prefix("host: "))
            .expect("rustc -vV names the host triple");
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let out = Command::new(cargo)
            .args(["metadata", "--format-version", "1", "--offline"])
            .args(["--filter-platform", host])
            .current_dir(repo_root())
            .output()
            .expect("cargo metadata");
        assert!(
            out.status.success(),
            "cargo metadata: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let meta: Value = serde_json::from_slice(&out.stdout).unwrap();
        let manifest = meta["packages"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == "aws_lambda_events")
            .expect("aws_lambda_events in cargo metadata")["manifest_path"]
            .as_str()
            .unwrap()
            .to_owned();
        PathBuf::from(manifest)
            .parent()
            .unwrap()
            .join("src/fixtures")
    })
}

#[tokio::test]
async fn upstream_request_type_fixture_without_a_key_is_unauthorized() {
    let fixture = upstream_fixture("example-apigw-custom-auth-request-type-request.json");
    // Real shape: mixed-case headers, multiValueHeaders, a client certificate.
    assert!(fixture["requestContext"]["identity"]["clientCert"].is_object());
    let store = dev_store();
    assert!(handle(&store, &fixture).await.is_err());
}

#[tokio::test]
async fn upstream_request_type_fixture_with_a_key_in_mixed_case() {
    let mut fixture = upstream_fixture("example-apigw-custom-auth-request-type-request.json");
    let key = dev_key("tutor-service");
    fixture["headers"]["X-Service-Api-Key"] = json!(key);
    fixture["multiValueHeaders"]["X-Service-Api-Key"] = json!([key]);
    let store = dev_store();
    let resp = serde_json::to_value(handle(&store, &fixture).await.unwrap()).unwrap();
    assert_eq!(resp["principalId"], "tutor-service");
    // The policy is for the fixture's API and stage, and its GET /request is not a
    // tutor route: API Gateway answers 403.
    assert!(resources(&resp)[0]
        .starts_with("arn:aws:execute-api:us-east-1:123456789012:s4x3opwd6i/test/"));
    assert!(!allows(&resp, fixture["methodArn"].as_str().unwrap()));

    // The same key twice under two spellings in multiValueHeaders is one key...
    fixture["multiValueHeaders"]["x-service-api-key"] = json!([key]);
    assert!(handle(&store, &fixture).await.is_ok());
    // ...but a second, different key is refused.
    fixture["multiValueHeaders"]["x-service-api-key"] = json!([dev_key("admin-service")]);
    assert!(handle(&store, &fixture).await.is_err());
}

#[tokio::test]
async fn other_upstream_apigw_fixtures_are_refused_not_panicked_on() {
    for name in [
        "example-apigw-request.json",
        "example-apigw-custom-auth-request.json",
        "example-apigw-v2-custom-authorizer-v2-request.json",
        "example-apigw-request-multi-value-parameters.json",
    ] {
        let store = dev_store();
        assert!(
            handle(&store, &upstream_fixture(name)).await.is_err(),
            "{name}"
        );
    }
}

/// A path holding `*` or `?` (legal in an email's local part) gets the caller's
/// policy, the same as any other route: the answer for one key never depends on the
/// route (it once was a 401).
#[tokio::test]
async fn a_path_with_star_or_question_mark_gets_the_callers_policy() {
    let store = dev_store();
    let plain = handle(&store, &event("authorizer-valid-key"))
        .await
        .unwrap();
    for path in [
        "internal/users/by-email/a*b@example.com",
        "internal/users/by-email/who?@example.com",
        "internal/users/*",
    ] {
        let mut ev = event("authorizer-valid-key");
        ev["methodArn"] = json!(format!(
            "arn:aws:execute-api:us-east-1:123456789012:a1b2c3d4e5/prod/GET/{path}"
        ));
        let resp = handle(&store, &ev)
            .await
            .unwrap_or_else(|_| panic!("{path}: a valid key was refused"));
        assert_eq!(
            resp.to_aws().policy_document,
            plain.to_aws().policy_document,
            "{path}"
        );
    }
    // Control characters are still refused.
    let mut ev = event("authorizer-valid-key");
    ev["methodArn"] =
        json!("arn:aws:execute-api:us-east-1:123456789012:a1b2c3d4e5/prod/GET/internal/x\u{7}");
    assert!(handle(&store, &ev).await.is_err());
}

/// The event is read once, from its JSON text. A `serde_json::Value` keeps only
/// the last of two equal keys, so a key given twice in one header map under the same
/// name was seen once; read from the text, both are seen and the request is refused.
#[tokio::test]
async fn the_event_is_read_once_from_its_json_and_every_key_value_is_seen() {
    let store = dev_store();
    let text = serde_json::to_string(&event("authorizer-valid-key")).unwrap();
    let resp = handle(&store, text.as_bytes()).await.unwrap();
    assert_eq!(resp.principal_id(), "tutor-service");
    // The same answer as through the Value entry point.
    let via_value = handle(&store, &event("authorizer-valid-key"))
        .await
        .unwrap();
    assert_eq!(
        serde_json::to_value(&resp).unwrap(),
        serde_json::to_value(&via_value).unwrap()
    );

    let tutor = dev_key("tutor-service");
    let admin = dev_key("admin-service");
    let mut ev = event("authorizer-valid-key");
    ev["multiValueHeaders"] = json!({});
    ev["headers"] = json!({"x-service-api-key": "PLACEHOLDER"});
    let text = serde_json::to_string(&ev).unwrap().replace(
        r#""x-service-api-key":"PLACEHOLDER""#,
        &format!(r#""x-service-api-key":"{admin}","x-service-api-key":"{tutor}""#),
    );
    let parsed: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(parsed["headers"]["x-service-api-key"], json!(tutor));
    assert!(
        handle(&store, text.as_bytes()).await.is_err(),
        "two keys in one header map must be refused"
    );
}
