//! Issue 9 (outside security review), the items of the authorizer's event path: each
//! test is named after the finding it closes.

use crate::common::*;
use std::process::Command;

use authorizer::{handle, handle_json, key_source_with, Config, LoadError, NO_DEV_STORE};
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
            serde_json::to_value(&resp.policy_document).unwrap(),
            serde_json::to_value(&plain.policy_document).unwrap(),
            "{path}"
        );
    }
    // Control characters are still refused.
    let mut ev = event("authorizer-valid-key");
    ev["methodArn"] =
        json!("arn:aws:execute-api:us-east-1:123456789012:a1b2c3d4e5/prod/GET/internal/x\u{7}");
    assert!(handle(&store, &ev).await.is_err());
}

/// `cargo tree` at the workspace root, offline and for this machine (see events.rs).
fn cargo_tree(args: &[&str]) -> String {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let rustc = Command::new("rustc")
        .arg("-vV")
        .output()
        .expect("rustc -vV");
    let version = String::from_utf8_lossy(&rustc.stdout).into_owned();
    let host = version
        .lines()
        .find_map(|l| l.strip_prefix("host: "))
        .expect("rustc -vV names the host triple");
    let out = Command::new(cargo)
        .args([
            "tree",
            "--offline",
            "--locked",
            "--prefix",
            "none",
            "--target",
            host,
        ])
        .args(args)
        .current_dir(repo_root())
        .output()
        .expect("cargo tree");
    assert!(
        out.status.success(),
        "cargo tree: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Item 6: the development store must not exist in what `sam build` deploys. `sam
/// build` runs `cargo lambda build --release --arm64 --bin authorizer` at the workspace
/// root: the features it resolves (no `-p`, no dev-dependencies) leave `dev-store` off,
/// while a member that asks for it (the local gateway) gets it, so the check is real.
#[test]
fn item6_dev_store_is_not_in_the_deploy_build() {
    let deploy = cargo_tree(&["-e", "normal,build,features", "-i", "authorizer"]);
    assert!(
        deploy.contains("authorizer v"),
        "the root build builds the authorizer: {deploy}"
    );
    assert!(
        !deploy.contains("authorizer feature \"dev-store\""),
        "a root build (sam build) would have the development store:\n{deploy}"
    );
    let gateway = cargo_tree(&[
        "-p",
        "local-gateway",
        "-e",
        "normal,build,features",
        "-i",
        "authorizer",
    ]);
    assert!(
        gateway.contains("authorizer feature \"dev-store\""),
        "{gateway}"
    );
}

/// Item 6: a build without the development store, started with `SVCAUTH_KEY_SOURCE=dev`,
/// refuses every request and says why (the load error is logged on every attempt).
#[tokio::test]
async fn item6_without_the_dev_store_dev_refuses_everything_and_says_why() {
    let config =
        Config::from_lookup(|k| (k == "SVCAUTH_KEY_SOURCE").then(|| "dev".into())).unwrap();
    // `None`: what `authorizer::DEV_STORE` is in a build without the feature.
    let source = key_source_with(&config, None).await;
    match source.load(service_auth::UnixTime::now()).await {
        Err(LoadError::Misconfigured(msg)) => {
            assert_eq!(msg, NO_DEV_STORE);
            assert!(msg.contains("SVCAUTH_KEY_SOURCE=ssm"), "{msg}");
        }
        other => panic!("a build without the dev store loaded {other:?}"),
    }
    let store = store(source, &TestClock::at(NOW));
    store.reload_now().await;
    for name in ["authorizer-valid-key", "authorizer-admin-key"] {
        assert!(handle(&store, &event(name)).await.is_err(), "{name}");
    }
}

/// Item 7: the event is read once, from its JSON text. A `serde_json::Value` keeps only
/// the last of two equal keys, so a key given twice in one header map under the same
/// name was seen once; read from the text, both are seen and the request is refused.
#[tokio::test]
async fn item7_event_read_once_from_its_json_sees_every_key_value() {
    let store = dev_store();
    let text = serde_json::to_string(&event("authorizer-valid-key")).unwrap();
    let resp = handle_json(&store, text.as_bytes()).await.unwrap();
    assert_eq!(resp.principal_id.as_deref(), Some("tutor-service"));
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
        handle_json(&store, text.as_bytes()).await.is_err(),
        "two keys in one header map must be refused"
    );
}
