//! One authorizer decision against a store of 10,000 keys across 500 services,
//! including building the API Gateway response (and, separately, serialising it the
//! way the runtime does, and the whole handler from a raw event), next to the work's
//! floor: SHA-256 of a 64-byte key and one lookup in a hash map of 10,000 entries.
//! `authorizer/benches/ratios.py` prints each bench as a multiple of the floor, from
//! the same run.

use std::collections::HashMap;
use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use service_auth::cache::RefreshPolicy;
use service_auth::decision::presented_key;
use service_auth::{
    decide, decide_key, ApiGrant, ApiKey, AuthRequest, Decision, KeyRecord, KeyStore, MethodArn,
    ServiceDocument, UnixTime,
};
use sha2::{Digest, Sha256};

const SERVICES: usize = 500;
const KEYS_PER_SERVICE: usize = 20;
const METHOD_ARN: &str =
    "arn:aws:execute-api:us-east-1:123456789012:a1b2c3d4e5/prod/GET/internal/users/42";

fn build_store() -> (KeyStore, String) {
    let mut docs = Vec::with_capacity(SERVICES);
    let mut probe = None;
    for s in 0..SERVICES {
        let mut doc = ServiceDocument::new(
            &format!("service-{s:03}"),
            vec![ApiGrant {
                apis: vec!["identity".into()],
                routes: vec![
                    "GET /internal/users/*".into(),
                    "GET /internal/users/by-email/*".into(),
                    format!("POST /internal/service-{s:03}/*"),
                ],
            }],
        );
        for _ in 0..KEYS_PER_SERVICE {
            let key = ApiKey::generate(Some("prod")).unwrap();
            doc.keys.push(KeyRecord::for_key(&key, UnixTime(1), None));
            if s == SERVICES / 2 && probe.is_none() {
                probe = Some(key.expose_secret().to_owned());
            }
        }
        docs.push(doc);
    }
    let store = KeyStore::build(&docs, &[]).unwrap();
    assert_eq!(store.key_count(), SERVICES * KEYS_PER_SERVICE);
    (store, probe.unwrap())
}

/// The least any decision must do: hash the presented key, look the hash up.
fn floor(c: &mut Criterion) {
    let map: HashMap<[u8; 32], usize> = (0..SERVICES * KEYS_PER_SERVICE)
        .map(|i| {
            let digest: [u8; 32] = Sha256::digest(format!("{i:064}")).into();
            (digest, i)
        })
        .collect();
    let key = format!("{:064}", SERVICES * KEYS_PER_SERVICE / 2);
    assert_eq!(key.len(), 64);
    c.bench_function(
        "floor: SHA-256 of a 64-byte key + one hash-map lookup",
        |b| {
            b.iter(|| {
                let digest: [u8; 32] = Sha256::digest(black_box(key.as_bytes())).into();
                map.get(&digest).copied()
            })
        },
    );
}

fn bench(c: &mut Criterion) {
    floor(c);
    let (store, key) = build_store();
    let values = [key.as_str()];
    let now = UnixTime(1_795_953_600);

    // As the handler decides: the key presented and the event's method ARN (its own
    // string, moved into the parsed ARN) read once, the store read, the response built;
    // everything is dropped inside the timed part.
    let decide_and_answer = |arn: String| {
        let key = presented_key(black_box(&values)).unwrap();
        let arn = MethodArn::parse_owned(arn).unwrap();
        match decide_key(Some(black_box(&store)), &key, arn, Some("identity"), now) {
            Decision::Allow(g) => authorizer::Response::key(g),
            Decision::Unauthorized { .. } => unreachable!(),
        }
    };
    c.bench_function("decide + build response (10k keys, 500 services)", |b| {
        b.iter_batched(
            || METHOD_ARN.to_owned(),
            |arn| drop(black_box(decide_and_answer(arn))),
            BatchSize::SmallInput,
        )
    });

    c.bench_function("part: presented_key", |b| {
        b.iter(|| black_box(presented_key(black_box(&values)).unwrap()))
    });
    c.bench_function("part: MethodArn::parse_owned", |b| {
        b.iter_batched(
            || METHOD_ARN.to_owned(),
            |arn| drop(black_box(MethodArn::parse_owned(arn).unwrap())),
            BatchSize::SmallInput,
        )
    });
    c.bench_function("part: hash + lookup", |b| {
        let key = presented_key(&values).unwrap();
        b.iter(|| store.lookup(&black_box(key).hash()).is_some())
    });
    c.bench_function("part: routes matched", |b| {
        let key = presented_key(&values).unwrap();
        let entry = store.lookup(&key.hash()).unwrap();
        let arn = MethodArn::parse(METHOD_ARN).unwrap();
        b.iter(|| {
            let i = entry.grant.api_index(black_box("identity"));
            entry
                .grant
                .routes_at(i)
                .iter()
                .any(|p| p.matches_suffix(black_box(arn.route_suffix())))
        })
    });
    c.bench_function("part: empty iter_batched with a String", |b| {
        b.iter_batched(
            || METHOD_ARN.to_owned(),
            |arn| drop(black_box(arn)),
            BatchSize::SmallInput,
        )
    });
    c.bench_function("decide + build + serialise response", |b| {
        b.iter_batched(
            || METHOD_ARN.to_owned(),
            |arn| serde_json::to_vec(&decide_and_answer(arn)).unwrap(),
            BatchSize::SmallInput,
        )
    });

    let unknown = ApiKey::generate(Some("prod")).unwrap();
    let unknown_values = [unknown.expose_secret()];
    let unknown_req = AuthRequest {
        api_key_values: &unknown_values,
        method_arn: Some(METHOD_ARN),
        api_name: Some("identity"),
    };
    c.bench_function("decide unknown key", |b| {
        b.iter(|| decide(Some(black_box(&store)), black_box(&unknown_req), now))
    });

    // The whole handler from a raw event (event parsing, decision, response, audit
    // line with no subscriber installed).
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let dir = tempdir_with_store(&store_docs_json());
    let cached = authorizer::CachedStore::new(
        authorizer::KeySource::File(dir),
        RefreshPolicy::default(),
        Duration::from_secs(5),
        Arc::new(move || now),
    )
    .with_api_names(authorizer::ApiNames::fixed(
        authorizer::apis::parse_api_names(service_auth::dev::DEV_API_NAMES).unwrap(),
    ));
    let key = dev_tutor_key();
    let mut event: serde_json::Value =
        serde_json::from_str(include_str!("../../events/authorizer-valid-key.json")).unwrap();
    event["headers"]["x-service-api-key"] = serde_json::Value::String(key.clone());
    event["multiValueHeaders"]["x-service-api-key"] = serde_json::json!([key]);
    rt.block_on(cached.reload_now());
    c.bench_function("handler: raw event to response (dev store)", |b| {
        b.iter(|| {
            rt.block_on(authorizer::handle(&cached, black_box(&event)))
                .unwrap()
        })
    });
    // What the Lambda does: the event's JSON text read once, the response serialised.
    let text = serde_json::to_vec(&event).unwrap();
    c.bench_function(
        "handler: event JSON to serialised response (dev store)",
        |b| {
            b.iter(|| {
                let resp = rt
                    .block_on(authorizer::handle(&cached, black_box(text.as_slice())))
                    .unwrap();
                serde_json::to_vec(&resp).unwrap()
            })
        },
    );
}

fn store_docs_json() -> String {
    service_auth::dev::DEV_STORE_JSON.to_owned()
}

fn dev_tutor_key() -> String {
    let v: serde_json::Value =
        serde_json::from_str(include_str!("../../dev/dev-keys.json")).unwrap();
    v["tutor-service"].as_str().unwrap().to_owned()
}

fn tempdir_with_store(json: &str) -> std::path::PathBuf {
    let path = std::env::temp_dir().join(format!("svcauth-bench-{}.json", std::process::id()));
    std::fs::write(&path, json).unwrap();
    path
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
    targets = bench
}
criterion_main!(benches);
