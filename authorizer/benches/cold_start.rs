//! A cold instance's first answer, before and after the key id index (issue 11 item
//! 3): how many SSM calls it makes and how long it takes, at 10, 100 and 500 services,
//! against a moto_server this harness starts on 127.0.0.1.
//!
//! * `before`: the full load at init (main's code before the index: every document
//!   by `GetParametersByPath`, 10 a page, then the revocation markers of every usable
//!   key, 10 a `GetParameters`), then the request.
//! * `after`: nothing at init; the request reads its key's index entry and marker (one
//!   `GetParameters`) and its service's document (one `GetParameter`).
//! * `after, no index`: a store written before the index (no entries): one lookup
//!   that finds nothing, then the full load.
//!
//! `cargo bench --workspace --bench cold_start` measures all three sizes (5 cold
//! instances each, median); without `--bench` (`cargo test --benches`) it runs 10
//! services once, as a smoke test. Prints a Markdown table. Timings are moto's (a
//! Python server on loopback): compare them with each other, not with AWS.

use std::time::{Duration, Instant};

use authorizer::{handle, ApiNames, CachedStore, KeySource};
use keystore_ssm::aws_sdk_ssm::types::ParameterType;
use keystore_ssm::SsmKeyStore;
use serde_json::json;
use service_auth::cache::RefreshPolicy;
use service_auth::{ApiGrant, ApiKey, KeyRecord, ServiceDocument, UnixTime};
use test_support::{MotoServer, SsmFaults, TestClock};

const NOW: u64 = 1_795_953_600;

#[derive(Clone, Copy, PartialEq)]
enum Mode {
    Before,
    After,
    AfterNoIndex,
}

impl Mode {
    fn label(self) -> &'static str {
        match self {
            Mode::Before => "before (full load at init)",
            Mode::After => "after (key id index)",
            Mode::AfterNoIndex => "after, store without index",
        }
    }
}

struct Sample {
    calls: u64,
    by_operation: String,
    first_answer: Duration,
}

fn request(key: &str) -> serde_json::Value {
    let text = std::fs::read_to_string(
        test_support::workspace_root().join("events/authorizer-valid-key.json"),
    )
    .expect("events/authorizer-valid-key.json");
    let mut ev: serde_json::Value = serde_json::from_str(&text).expect("sample event");
    ev["headers"]["x-service-api-key"] = json!(key);
    ev["multiValueHeaders"]["x-service-api-key"] = json!([key]);
    ev
}

/// Where the API names of a store at `path` (`.../keys`) are: `.../apis`.
fn api_path(path: &str) -> String {
    format!("{}/apis", path.trim_end_matches("/keys"))
}

/// `services` documents of one key each under `path`, with index entries if asked,
/// and the sample event's API registered as `identity`.
async fn seed(
    c: &keystore_ssm::aws_sdk_ssm::Client,
    path: &str,
    services: usize,
    indexed: bool,
) -> Vec<ApiKey> {
    let store = SsmKeyStore::new(c.clone(), path).expect("path");
    // As `svcauth apis register` writes it: the authorizer trusts only a SecureString.
    c.put_parameter()
        .name(format!("{}/a1b2c3d4e5", api_path(path)))
        .value("identity")
        .r#type(ParameterType::SecureString)
        .overwrite(true)
        .send()
        .await
        .expect("put API name");
    let mut keys = Vec::with_capacity(services);
    for i in 0..services {
        let key = ApiKey::generate(Some("bench")).expect("key");
        let mut doc = ServiceDocument::new(
            &format!("svc-{i:03}"),
            vec![ApiGrant::new(&["identity"], &["GET /internal/users/*"])],
        );
        doc.keys
            .push(KeyRecord::for_key(&key, UnixTime(NOW - 3600), None));
        c.put_parameter()
            .name(store.parameter_name(&doc.service))
            .value(doc.to_json())
            .r#type(ParameterType::SecureString)
            .overwrite(true)
            .send()
            .await
            .expect("put document");
        if indexed {
            store.ensure_index(&doc).await.expect("index");
        }
        keys.push(key);
    }
    keys
}

async fn cold_instance(
    faults: &SsmFaults,
    endpoint: &str,
    path: &str,
    mode: Mode,
    key: &ApiKey,
) -> Sample {
    let client = faults.client(endpoint);
    faults.reset_counts();
    let clock = TestClock::at(NOW);
    let started = Instant::now();
    let store = CachedStore::new(
        KeySource::Ssm(SsmKeyStore::new(client, path).expect("path")),
        RefreshPolicy::default(),
        Duration::from_secs(30),
        clock.unix_clock(),
    )
    .with_key_index(mode != Mode::Before)
    // API names from SSM, as deployed (`{StorePath}/apis/{apiId}`).
    .with_api_names(ApiNames::ssm(
        faults.client(endpoint),
        &api_path(path),
        RefreshPolicy::default(),
    ));
    // What main.rs does at init, then the first request.
    store.init().await;
    let answer = handle(&store, &request(key.expose_secret())).await;
    let first_answer = started.elapsed();
    // (the policy is checked below, outside the timed part)
    assert!(
        answer.is_ok(),
        "the valid key was refused ({})",
        mode.label()
    );
    let allowed =
        serde_json::to_string(&answer.expect("checked").to_aws().policy_document).expect("policy");
    assert!(
        allowed.contains("/GET/internal/users/*"),
        "the API name was not read ({})",
        mode.label()
    );
    let ops = ["GetParametersByPath", "GetParameters", "GetParameter"];
    Sample {
        calls: faults.total_calls(),
        by_operation: ops
            .iter()
            .map(|op| (op, faults.calls(op)))
            .filter(|(_, n)| *n > 0)
            .map(|(op, n)| format!("{n} {op}"))
            .collect::<Vec<_>>()
            .join(" + "),
        first_answer,
    }
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let sizes: &[usize] = if full { &[10, 100, 500] } else { &[10] };
    let runs = if full { 5 } else { 1 };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let moto = MotoServer::start();
    let endpoint = moto.endpoint();
    let faults = SsmFaults::new();
    println!("| services | mode | SSM calls before the first answer | time to first answer (median of {runs}) |");
    println!("|---:|---|---|---:|");
    for &n in sizes {
        rt.block_on(async {
            let c = faults.client(&endpoint);
            let indexed_path = format!("/bench/n{n}/keys");
            let plain_path = format!("/bench/plain{n}/keys");
            let keys = seed(&c, &indexed_path, n, true).await;
            let plain_keys = seed(&c, &plain_path, n, false).await;
            for mode in [Mode::Before, Mode::After, Mode::AfterNoIndex] {
                let mut samples = Vec::with_capacity(runs);
                for r in 0..runs {
                    // A different service each time, so nothing is warm in moto either.
                    let (path, key) = match mode {
                        Mode::AfterNoIndex => (&plain_path, &plain_keys[(r * 7) % n]),
                        _ => (&indexed_path, &keys[(r * 7) % n]),
                    };
                    samples.push(cold_instance(&faults, &endpoint, path, mode, key).await);
                }
                samples.sort_by_key(|s| s.first_answer);
                let median = &samples[samples.len() / 2];
                println!(
                    "| {n} | {} | {} ({}) | {:.1} ms |",
                    mode.label(),
                    median.calls,
                    median.by_operation,
                    median.first_answer.as_secs_f64() * 1000.0
                );
            }
        });
    }
}
