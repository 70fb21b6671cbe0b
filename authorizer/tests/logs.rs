//! Captures the JSON logs of a full run over every sample event, checks each decision's
//! audit line, and finds no key material anywhere in them.

mod common;

use authorizer::handle;
use common::*;
use serde_json::Value;
use service_auth::ApiKey;

/// The audit lines (one per decision) in `logs`.
fn decisions(logs: &str) -> Vec<Value> {
    lines(logs, "authorizer_decision")
}

#[test]
fn one_audit_line_per_decision_with_the_documented_fields() {
    let cases = [
        (
            "authorizer-valid-key",
            "allow",
            "permitted",
            "tutor-service",
        ),
        (
            "authorizer-route-outside-permissions",
            "deny",
            "route_not_permitted",
            "tutor-service",
        ),
        (
            "authorizer-header-other-case",
            "allow",
            "permitted",
            "tutor-service",
        ),
        (
            "authorizer-legacy-key",
            "allow",
            "permitted",
            "reporting-service",
        ),
        (
            "authorizer-admin-key",
            "allow",
            "permitted",
            "admin-service",
        ),
        ("authorizer-missing-key", "unauthorized", "missing_key", ""),
        ("authorizer-invalid-key", "unauthorized", "unknown_key", ""),
        (
            "authorizer-malformed-key",
            "unauthorized",
            "malformed_key",
            "",
        ),
        (
            "authorizer-revoked-key",
            "unauthorized",
            "revoked_key",
            "tutor-service",
        ),
        (
            "authorizer-expired-key",
            "unauthorized",
            "expired_key",
            "tutor-service",
        ),
        (
            "authorizer-duplicated-header",
            "unauthorized",
            "duplicate_key",
            "",
        ),
    ];
    for (name, decision, reason, service) in cases {
        let (_, logs) = capture(async {
            let store = dev_store();
            let _ = handle(&store, &event(name)).await;
        });
        let lines = decisions(&logs);
        assert_eq!(lines.len(), 1, "{name}: {logs}");
        let f = &lines[0]["fields"];
        assert_eq!(f["decision"], decision, "{name}");
        assert_eq!(f["reason"], reason, "{name}");
        assert_eq!(f["service_id"], service, "{name}");
        assert_eq!(lines[0]["level"], "INFO");
        assert_eq!(f["correlation_id"], "corr-7f3b2c1d", "{name}");
        assert_eq!(f["request_id"], "c6af9ac6-7b61-11e6-9a41-93e8deadbeef");
        assert_eq!(f["source_ip"], "10.0.12.34");
        assert!(f["http_method"] == "GET" || f["http_method"] == "POST");
        assert!(f["resource_path"]
            .as_str()
            .unwrap()
            .starts_with("/internal/users"));
        if matches!(
            reason,
            "permitted" | "route_not_permitted" | "revoked_key" | "expired_key" | "unknown_key"
        ) {
            assert!(f["key_id"].as_str().unwrap().starts_with("kid_"), "{name}");
        }
    }
}

#[test]
fn logs_of_a_full_run_hold_no_key_material() {
    let keys: Vec<String> = dev_keys().into_iter().map(|(_, k)| k).collect();
    let mut names: Vec<String> = std::fs::read_dir(repo_root().join("events"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.starts_with("authorizer-"))
        .collect();
    names.sort();
    let mut presented: Vec<String> = keys.clone();
    let (_, logs) = capture(async {
        let store = dev_store();
        for name in &names {
            let ev = event(name.trim_end_matches(".json"));
            if let Some(k) = ev["headers"]["x-service-api-key"].as_str() {
                presented.push(k.to_owned());
            }
            let _ = handle(&store, &ev).await;
        }
        // A store that fails to load logs its error too.
        let broken = store_with_broken_file();
        let mut ev = event("authorizer-valid-key");
        let _ = handle(&broken, &ev).await;
        ev["headers"]["x-service-api-key"] =
            Value::String("svcauth_dev_".to_owned() + &"Z".repeat(49));
        let _ = handle(&broken, &ev).await;
    });
    assert!(decisions(&logs).len() > names.len());
    assert!(logs.contains("key_store_load_failed"));
    for k in &presented {
        // Neither the key, nor its secret part, nor its stored hash.
        assert!(!logs.contains(k.as_str()), "a key appears in the logs");
        let body = &k[k.len().saturating_sub(49)..];
        assert!(!logs.contains(body), "a key body appears in the logs");
        if let Ok(parsed) = ApiKey::parse(k) {
            assert!(
                !logs.contains(&parsed.hash().to_hex()),
                "a key hash appears in the logs"
            );
        }
    }
}

fn store_with_broken_file() -> authorizer::CachedStore {
    let dir = std::env::temp_dir().join(format!("svcauth-broken-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("keys.json");
    // A document whose permission is broken, next to a clear key someone pasted in.
    let key = dev_key("tutor-service");
    std::fs::write(
        &path,
        format!(r#"[{{"schema":2,"service":"tutor-service","grants":[{{"apis":["identity"],"routes":["{key}"]}}],"keys":[]}}]"#),
    )
    .unwrap();
    store(authorizer::KeySource::File(path), &TestClock::at(NOW))
}

/// Issue 9 item 6: a malformed event was logged with serde's message, which can quote a
/// whole header value: a key with a trailing control character reached the logs. Only
/// the error's kind is logged now.
#[test]
fn malformed_event_logs_only_the_error_kind() {
    let key = dev_key("tutor-service");
    let body = key[key.len() - 49..].to_owned();
    let mut events = Vec::new();
    // The key with a control character, in each header map.
    let mut ev = event("authorizer-valid-key");
    ev["headers"]["x-service-api-key"] = Value::String(format!("{key}\u{1}"));
    events.push(ev);
    let mut ev = event("authorizer-valid-key");
    ev["multiValueHeaders"]["x-service-api-key"] = serde_json::json!([format!("{key}\u{0}")]);
    events.push(ev);
    // The key where the event has another type, and in another header.
    let mut ev = event("authorizer-valid-key");
    ev["requestContext"]["identity"] = Value::String(key.clone());
    events.push(ev);
    let mut ev = event("authorizer-valid-key");
    ev["headers"]["x-other"] = Value::String(format!("{key}\u{7f}\n"));
    ev["methodArn"] = serde_json::json!({ "arn": key });
    events.push(ev);
    let (_, logs) = capture(async {
        let store = dev_store();
        for ev in &events {
            assert!(handle(&store, ev).await.is_err());
        }
    });
    assert!(!logs.contains(&key), "a key appears in the logs: {logs}");
    assert!(
        !logs.contains(&body),
        "a key body appears in the logs: {logs}"
    );
    let lines: Vec<Value> = logs
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .collect();
    let malformed: Vec<&Value> = lines
        .iter()
        .filter(|v| v["fields"]["event"] == "malformed_event")
        .collect();
    assert!(malformed.len() >= 2, "{logs}");
    for line in malformed {
        let kind = line["fields"]["error_kind"].as_str().unwrap_or_default();
        assert!(
            ["shape", "not_request", "header_type", "too_many_values"].contains(&kind),
            "{line}"
        );
    }
    assert_eq!(decisions(&logs).len(), events.len());
}

/// Issue 19 A4: a legacy map stored the wrong way round (`{"<service>": "<key>"}`), or
/// a key where the map should be, used to be reported with the value in the message:
/// a clear key in CloudWatch. The load reports the entry's position and the reason.
#[test]
fn a_malformed_legacy_map_never_puts_a_key_in_the_logs() {
    use keystore_ssm::SsmKeyStore;
    const LEGACY: &str = "/test/legacy-keys";
    let keys: Vec<String> = dev_keys().into_iter().map(|(_, k)| k).collect();
    let legacy = "L".repeat(64);
    let maps = [
        format!(r#"{{"tutor-service": "{}"}}"#, keys[0]),
        format!(r#"{{"reporting-service": "{legacy}"}}"#),
        format!(r#"{{"{legacy}": "{}"}}"#, keys[0]),
        format!(r#""{}""#, keys[0]),
        format!(r#"["{legacy}", "{}"]"#, keys[0]),
    ];
    let (_, logs) = capture(async {
        let moto = test_support::MotoServer::start();
        let c = test_support::moto_ssm_client(&moto.endpoint());
        for map in &maps {
            test_support::put_secure(&c, LEGACY, map).await;
            let source = authorizer::KeySource::Ssm(
                SsmKeyStore::new(c.clone(), "/test/keys")
                    .unwrap()
                    .with_legacy_parameter(Some(LEGACY.into())),
            );
            // The full load (no index): it reads and judges the legacy map.
            let store = store(source, &TestClock::at(NOW)).with_key_index(false);
            let mut ev = event("authorizer-legacy-key");
            ev["headers"]["x-service-api-key"] = Value::String(legacy.clone());
            ev["multiValueHeaders"]["x-service-api-key"] = serde_json::json!([legacy]);
            let _ = handle(&store, &ev).await;
        }
    });
    let rejected = lines(&logs, "key_store_parameter_rejected");
    assert_eq!(rejected.len(), maps.len(), "{logs}");
    assert!(
        rejected[0]["fields"]["reason"]
            .as_str()
            .unwrap()
            .contains("legacy entry 1"),
        "{logs}"
    );
    for k in keys.iter().chain([&legacy]) {
        assert!(
            !logs.contains(k.as_str()),
            "a key appears in the logs: {logs}"
        );
        let body = &k[k.len().saturating_sub(49)..];
        assert!(!logs.contains(body), "a key body appears in the logs");
    }
}
