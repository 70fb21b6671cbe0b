//! The issuer's time to a token, from the `POST /token` event (as `lambda_http`
//! receives it, an API-key caller) to the response: on the reuse path (a token held
//! from an earlier request is handed out again) and on the signing path (KMS `Sign`,
//! served by a local `moto_server`), next to that path's floor, one bare KMS `Sign`
//! call through the same SDK client. Needs `moto_server` (scripts/setup-tools.sh).
//!
//! Each request asks a 300 s token. At a fixed time the held token is handed out again
//! (the reuse path); moving the clock 200 s before each request leaves the held token
//! less than half a new one's usable life (100 s left, 70 s of which verifiers and
//! clients drop), so each one signs (the signing path).

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use serde_json::json;
use service_auth::context::{self, KeyCaller};
use service_auth::identity::IamRoleMap;
use service_auth::{ApiGrant, ApiKey, KeyRecord, ServiceDocument, UnixTime};
use service_identity_http::{lambda_service, IdentityConfig};
use test_support::{create_kms_key, moto_kms_client, MotoServer, TestClock};
use token_issuer::{
    router, AppState, Documents, IssuerSettings, JwksSource, Parts, RetryPolicy, Signing,
};
use token_kms::aws_sdk_kms::primitives::Blob;
use token_kms::aws_sdk_kms::types::{KeySpec, KeyUsageType, MessageType, SigningAlgorithmSpec};
use tower::ServiceExt;

const NOW: u64 = 1_764_600_000;

/// The token API's `POST /token` event for an API-key caller of tutor-service.
fn event(key: &ApiKey, body: &str) -> String {
    // The authorizer's context, written by the authorizer's own writer.
    let key_id = key.key_id();
    let mut authorizer: serde_json::Map<String, serde_json::Value> =
        context::key_entries(KeyCaller {
            service: "tutor-service",
            key_id: key_id.as_str(),
            expires_at: None,
        })
        .map(|(k, v)| (k.to_owned(), json!(v)))
        .collect();
    authorizer.insert("principalId".into(), json!("tutor-service"));
    json!({
        "resource": "/token",
        "path": "/token",
        "httpMethod": "POST",
        "headers": {"Content-Type": "application/json"},
        "multiValueHeaders": {"Content-Type": ["application/json"]},
        "requestContext": {
            "accountId": "123456789012",
            "resourceId": "t0k3n1",
            "stage": "v1",
            "requestId": "6f1d2c3b-0000-4000-8000-000000000001",
            "identity": {"sourceIp": "10.0.12.34"},
            "resourcePath": "/token",
            "httpMethod": "POST",
            "apiId": "tokenapi01",
            "path": "/v1/token",
            "authorizer": authorizer
        },
        "body": body,
        "isBase64Encoded": false
    })
    .to_string()
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let moto = MotoServer::start();
    let kms = moto_kms_client(&moto.endpoint());
    let key_id = rt.block_on(create_kms_key(
        &kms,
        KeySpec::EccNistP256,
        KeyUsageType::SignVerify,
    ));
    let jwks = rt.block_on(token_kms::key_set(&kms, &[&key_id])).unwrap();
    let key = ApiKey::generate(Some("dev")).unwrap();
    let mut doc = ServiceDocument::new(
        "tutor-service",
        vec![
            ApiGrant::new(&["identity"], &["GET /internal/users/*"]),
            ApiGrant::new(
                &[token_issuer::issue::TOKEN_API],
                &[token_issuer::issue::TOKEN_ROUTE],
            ),
        ],
    );
    doc.keys
        .push(KeyRecord::for_key(&key, UnixTime(NOW - 86_400), None));
    let clock = TestClock::at(NOW);
    let state = AppState::new(Parts {
        identity: IdentityConfig::new(IamRoleMap::parse("tutor-task-role=tutor-service").unwrap()),
        settings: IssuerSettings {
            issuer: "svcauth:bench".into(),
            default_lifetime_secs: 600,
            min_remaining_secs: 60,
        },
        signing: Signing::Kms {
            client: kms.clone(),
            key: key_id.clone(),
        },
        documents: Documents::Fixed(Arc::new(move |s| {
            (s == "tutor-service").then(|| doc.clone())
        })),
        jwks: JwksSource::Inline(serde_json::to_string(&jwks).unwrap()),
        clock: clock.unix_clock(),
        retry: RetryPolicy::default(),
    });
    let app = router(state.clone());
    let asks_300 = event(&key, r#"{"lifetimeSeconds":300}"#);
    let issue = |text: &str| {
        let req = lambda_http::request::from_str(text).unwrap();
        let res = rt
            .block_on(lambda_service(app.clone()).oneshot(req))
            .unwrap();
        assert_eq!(res.status(), 200);
        res
    };

    issue(&asks_300);
    c.bench_function(
        "issuer: POST /token, reuse path (a held token again)",
        |b| b.iter(|| issue(black_box(&asks_300))),
    );
    c.bench_function(
        "issuer: POST /token, signing path (KMS Sign, moto_server)",
        |b| {
            b.iter(|| {
                clock.advance(200);
                issue(black_box(&asks_300))
            })
        },
    );
    // The signing path's floor: one `Sign` call of a token-sized message, the SDK and
    // moto_server alone.
    let message = Blob::new(vec![b'a'; 700]);
    c.bench_function("floor: one KMS Sign call (moto_server)", |b| {
        b.iter(|| {
            rt.block_on(
                kms.sign()
                    .key_id(&key_id)
                    .message(message.clone())
                    .message_type(MessageType::Raw)
                    .signing_algorithm(SigningAlgorithmSpec::EcdsaSha256)
                    .send(),
            )
            .unwrap()
        })
    });
    drop(moto);
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(5)).warm_up_time(Duration::from_secs(1)).sample_size(30);
    targets = bench
}
criterion_main!(benches);
