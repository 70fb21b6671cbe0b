//! Decisions are counted as CloudWatch Embedded Metric Format, by outcome and service.

mod common;

use authorizer::handle;
use common::*;
use serde_json::Value;

#[tokio::test]
async fn decisions_are_emitted_as_emf_by_outcome_and_service() {
    // This test binary owns the process-wide metrics recorder.
    let collector = metrics_cloudwatch_embedded::Builder::new()
        .cloudwatch_namespace("ServiceAuth")
        .with_timestamp(1_795_953_600_000)
        .init()
        .unwrap();
    let store = dev_store();
    for name in [
        "authorizer-valid-key",
        "authorizer-valid-key",
        "authorizer-revoked-key",
        "authorizer-missing-key",
    ] {
        let _ = handle(&store, &event(name)).await;
    }
    let mut out = Vec::new();
    collector.flush(&mut out).unwrap();
    let docs: Vec<Value> = String::from_utf8(out)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let find = |outcome: &str, service: &str| {
        docs.iter()
            .find(|d| d["Outcome"] == outcome && d["Service"] == service)
            .map(|d| d["Decisions"].as_f64().unwrap())
    };
    assert_eq!(find("allow", "tutor-service"), Some(2.0), "{docs:?}");
    assert_eq!(find("unauthorized", "tutor-service"), Some(1.0), "{docs:?}");
    assert_eq!(find("unauthorized", "unknown"), Some(1.0), "{docs:?}");
    let allow = docs.iter().find(|d| d["Outcome"] == "allow").unwrap();
    let cw = &allow["_aws"]["CloudWatchMetrics"][0];
    assert_eq!(cw["Namespace"], "ServiceAuth");
    let dims: Vec<&str> = cw["Dimensions"][0]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_str().unwrap())
        .collect();
    assert!(
        dims.contains(&"Outcome") && dims.contains(&"Service"),
        "{dims:?}"
    );
    assert!(docs
        .iter()
        .any(|d| d["Reason"] == "revoked_key" && d["Unauthorized"] == 1.0));
}
