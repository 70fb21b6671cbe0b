//! Property tests: for arbitrary events and header values the authorizer never panics
//! and never allows without a valid key.

use crate::common::*;
use authorizer::handle;
use proptest::prelude::*;
use serde_json::{json, Value};

/// Arbitrary JSON, biased towards the shapes an authorizer event has.
fn arb_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        ".{0,40}".prop_map(Value::String),
        "[a-zA-Z0-9_]{0,80}".prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map("[a-zA-Z-]{1,20}", inner, 0..5)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Header values: near-keys (right prefix and length, wrong checksum), random text,
/// and the valid keys themselves, so mixes of real keys are explored too.
fn arb_key_value() -> impl Strategy<Value = String> {
    let valid: Vec<String> = dev_keys().into_iter().map(|(_, k)| k).collect();
    prop_oneof![
        "svcauth_dev_[0-9A-Za-z]{49}",
        "svcauth_[a-z0-9]{0,14}_?[0-9A-Za-z_]{0,60}",
        "[0-9A-Za-z]{64}",
        ".{0,200}",
        prop::sample::select(valid),
    ]
}

fn arb_method_arn() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(json!("arn:aws:execute-api:us-east-1:123456789012:a1b2c3d4e5/prod/GET/internal/users/42")),
        "arn:aws:execute-api:[a-z0-9-]{0,12}:[0-9]{0,13}:[a-z0-9*]{0,10}/[a-z*]{0,6}/[A-Z*]{0,7}/.{0,30}"
            .prop_map(Value::String),
        arb_json(),
    ]
}

fn build_event(
    values: Vec<String>,
    multi: Vec<String>,
    names: (String, String),
    arn: Value,
    extra: Value,
) -> Value {
    let mut ev = event("authorizer-valid-key");
    ev["headers"] = json!({});
    ev["multiValueHeaders"] = json!({});
    // One JSON key per value: the same header name in three spellings.
    let spellings = [names.0.as_str(), "X-Service-Api-Key", "X-SERVICE-API-KEY"];
    for (v, name) in values.iter().zip(spellings) {
        ev["headers"][name] = json!(v);
    }
    if !multi.is_empty() {
        ev["multiValueHeaders"][&names.1] = json!(multi);
    }
    ev["methodArn"] = arn;
    if let Value::Object(m) = extra {
        for (k, v) in m {
            // Occasionally break the rest of the event too.
            ev[k] = v;
        }
    }
    ev
}

/// Would a correct authorizer allow this? Exactly one distinct non-empty value, which is
/// an active, unexpired development key.
fn expected_allow(values: &[String], multi: &[String]) -> bool {
    let mut distinct: Vec<&str> = values
        .iter()
        .chain(multi)
        .map(|v| v.trim_matches([' ', '\t']))
        .filter(|v| !v.is_empty())
        .collect();
    distinct.sort();
    distinct.dedup();
    let usable = ["tutor-service", "admin-service", "reporting-service-legacy"].map(dev_key);
    distinct.len() == 1 && usable.iter().any(|k| k == distinct[0])
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1024, ..ProptestConfig::default() })]

    #[test]
    fn never_panics_and_never_allows_without_a_valid_key(
        values in prop::collection::vec(arb_key_value(), 0..=2),
        multi in prop::collection::vec(arb_key_value(), 0..3),
        name_case in prop::sample::select(vec!["x-service-api-key", "X-Service-API-Key"]),
        arn in arb_method_arn(),
        extra in prop::collection::btree_map(
            // Not `headers`: the oracle below reads the header values as generated.
            prop::sample::select(vec!["type", "requestContext", "resource", "httpMethod", "path"]),
            arb_json(),
            0..2,
        ),
    ) {
        let extra = Value::Object(extra.into_iter().map(|(k, v)| (k.to_owned(), v)).collect());
        let ev = build_event(values.clone(), multi.clone(), (name_case.to_owned(), name_case.to_owned()), arn, extra);
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let result = rt.block_on(async { handle(&dev_store(), &ev).await });
        if let Ok(resp) = result {
            // Only with exactly one valid key, and the headers as sent: our own header
            // collection (headers that are not strings make the event malformed).
            prop_assert!(expected_allow(&values, &multi), "allowed without a valid key: {ev}");
            let resp = serde_json::to_value(resp).unwrap();
            prop_assert!(resp["principalId"].is_string());
            prop_assert!(resp["context"].as_object().unwrap().values().all(Value::is_string));
        }
    }

    #[test]
    fn arbitrary_json_events_are_refused(ev in arb_json()) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let refused = rt.block_on(async { handle(&dev_store(), &ev).await }).is_err();
        prop_assert!(refused, "allowed {}", ev);
    }
}
