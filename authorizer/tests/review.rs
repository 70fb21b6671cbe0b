//! Issue 9 (outside security review), the items of the authorizer's event path: each
//! test is named after the finding it closes.

use crate::common::*;

use authorizer::{handle, key_source, Config, ConfigError, LoadError};
use serde_json::{json, Value};

/// Item 6: a path holding `*` or `?` (legal in an email's local part) made a valid key
/// get 401, so the answer for one key depended on the route. It now gets the caller's
/// policy, the same as on any other route.
#[tokio::test]
async fn item6_path_with_star_or_question_mark_gets_the_callers_policy() {
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

/// The hex SHA-256 hashes of the development keys (`dev/dev-store.json`).
fn dev_key_hashes() -> Vec<String> {
    let docs = read_json(&dev_store_file());
    let hashes: Vec<String> = docs
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|d| d["keys"].as_array().unwrap().iter())
        .map(|k| k["sha256"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(hashes.len(), 5, "the development store's five keys");
    hashes
}

/// Every run of exactly 64 lowercase hex digits in `bytes`.
fn hex64_runs(bytes: &[u8]) -> std::collections::HashSet<&[u8]> {
    let mut runs = std::collections::HashSet::new();
    let mut start = 0;
    for (i, b) in bytes.iter().chain(std::iter::once(&0)).enumerate() {
        if !matches!(b, b'0'..=b'9' | b'a'..=b'f') {
            if i - start == 64 {
                runs.insert(&bytes[start..i]);
            }
            start = i + 1;
        }
    }
    runs
}

/// Item 6: the development keys are never in a build. The authorizer binary (this
/// crate's only binary, the one `sam build` packages alone) holds none of their
/// hashes: the development store is a file (`dev/dev-store.json`), read like any
/// store file, and a deployed function has no such file. (It used to be embedded
/// behind a cargo feature, kept out of the deployed build by the workspace's
/// `default-members`; this crate's tests enabled it, so this binary held them.)
#[test]
fn item6_no_build_holds_the_development_keys() {
    let binary = std::fs::read(env!("CARGO_BIN_EXE_authorizer")).expect("the authorizer binary");
    let runs = hex64_runs(&binary);
    for hash in dev_key_hashes() {
        assert!(
            !runs.contains(hash.as_bytes()),
            "the authorizer binary holds the development key hash {hash}"
        );
    }
    // The scan finds a hash where there is one.
    let text = std::fs::read(dev_store_file()).unwrap();
    assert_eq!(hex64_runs(&text).len(), 5);
}

/// Item 6: `SVCAUTH_KEY_SOURCE=dev` names no store in any build: the authorizer starts,
/// refuses every request, the development keys included, and says how to read them
/// for a local run (the file).
#[tokio::test]
async fn item6_dev_source_refuses_everything_and_says_why() {
    let lookup = |k: &str| (k == "SVCAUTH_KEY_SOURCE").then(|| "dev".to_owned());
    assert_eq!(Config::from_lookup(lookup), Err(ConfigError::DevSource));
    let config = Config::from_lookup_or_refusing(lookup);
    let source = key_source(&config).await;
    match source.load(service_auth::UnixTime::now()).await {
        Err(LoadError::Misconfigured(msg)) => {
            assert_eq!(msg, ConfigError::DevSource.to_string());
            assert!(
                msg.contains("SVCAUTH_KEYS_FILE=dev/dev-store.json"),
                "{msg}"
            );
        }
        other => panic!("SVCAUTH_KEY_SOURCE=dev loaded {other:?}"),
    }
    let store = store(source, &TestClock::at(NOW));
    store.reload_now().await;
    for name in [
        "authorizer-valid-key",
        "authorizer-admin-key",
        "authorizer-legacy-key",
    ] {
        assert!(handle(&store, &event(name)).await.is_err(), "{name}");
    }
    // The same events with the development store read as its file: allowed.
    for name in ["authorizer-valid-key", "authorizer-admin-key"] {
        assert!(handle(&dev_store(), &event(name)).await.is_ok(), "{name}");
    }
}

/// Item 7: the event is read once, from its JSON text. A `serde_json::Value` keeps only
/// the last of two equal keys, so a key given twice in one header map under the same
/// name was seen once; read from the text, both are seen and the request is refused.
#[tokio::test]
async fn item7_event_read_once_from_its_json_sees_every_key_value() {
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
