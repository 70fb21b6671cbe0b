//! The real `aws-sdk-ssm` client against a real `moto_server` started by the test:
//! keys stored as SecureString, loaded, decided on; broken parameters, SSM going away,
//! and a failing first load.

use crate::common::*;
use authorizer::{handle, KeySource};
use keystore_ssm::aws_sdk_ssm::types::ParameterType;
use keystore_ssm::aws_sdk_ssm::Client;
use keystore_ssm::SsmKeyStore;
use serde_json::{json, Value};
use service_auth::{ApiGrant, ApiKey, KeyRecord, ServiceDocument, UnixTime};
use test_support::{moto_ssm_client, MotoServer};

const PATH: &str = "/svcauth/test/keys";

async fn put(client: &Client, name: &str, value: &str, kind: ParameterType) {
    client
        .put_parameter()
        .name(name)
        .value(value)
        .r#type(kind)
        .overwrite(true)
        .send()
        .await
        .unwrap();
}

async fn put_doc(client: &Client, doc: &ServiceDocument) {
    put(
        client,
        &format!("{PATH}/{}", doc.service),
        &doc.to_json(),
        ParameterType::SecureString,
    )
    .await;
}

fn tutor_doc(key: &ApiKey) -> ServiceDocument {
    let mut doc = ServiceDocument::new(
        "tutor-service",
        vec![ApiGrant::new(&["identity"], &["GET /internal/users/*"])],
    );
    doc.keys
        .push(KeyRecord::for_key(key, UnixTime(NOW - 3600), None));
    doc
}

fn request(key: &str) -> Value {
    let mut ev = event("authorizer-valid-key");
    ev["headers"]["x-service-api-key"] = json!(key);
    ev["multiValueHeaders"]["x-service-api-key"] = json!([key]);
    ev
}

fn ssm_source(client: Client) -> KeySource {
    KeySource::Ssm(SsmKeyStore::new(client, PATH).unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_stored_as_securestring_are_loaded_and_decided_on() {
    let moto = MotoServer::start();
    let c = moto_ssm_client(&moto.endpoint());
    let key = ApiKey::generate(Some("test")).unwrap();
    put_doc(&c, &tutor_doc(&key)).await;
    // Enough services to need several GetParametersByPath pages (10 a page).
    for i in 0..24 {
        let k = ApiKey::generate(None).unwrap();
        let mut d = ServiceDocument::new(
            &format!("svc-{i:02}"),
            vec![ApiGrant::new(&["identity"], &["GET /x/*"])],
        );
        d.keys.push(KeyRecord::for_key(&k, UnixTime(1), None));
        put_doc(&c, &d).await;
    }
    let stored = c
        .get_parameter()
        .name(format!("{PATH}/tutor-service"))
        .send()
        .await
        .unwrap();
    let raw = stored.parameter().unwrap();
    assert_eq!(raw.r#type(), Some(&ParameterType::SecureString));

    let loaded = SsmKeyStore::new(c.clone(), PATH)
        .unwrap()
        .load_store()
        .await
        .unwrap();
    assert_eq!(loaded.service_count(), 25);

    let clock = TestClock::at(NOW);
    let store = store(ssm_source(c), &clock);
    let resp = handle(&store, &request(key.expose_secret())).await.unwrap();
    assert_eq!(resp.principal_id.as_deref(), Some("tutor-service"));
    let other = ApiKey::generate(Some("test")).unwrap();
    assert!(handle(&store, &request(other.expose_secret()))
        .await
        .is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_parameter_that_breaks_keeps_the_last_good_set_then_fails_closed_then_recovers() {
    let moto = MotoServer::start();
    let c = moto_ssm_client(&moto.endpoint());
    let key = ApiKey::generate(Some("test")).unwrap();
    put_doc(&c, &tutor_doc(&key)).await;
    let clock = TestClock::at(NOW);
    let store = store(ssm_source(c.clone()), &clock);
    assert!(handle(&store, &request(key.expose_secret())).await.is_ok());

    // Someone writes a broken document.
    put(
        &c,
        &format!("{PATH}/tutor-service"),
        "{not json",
        ParameterType::SecureString,
    )
    .await;
    clock.advance(301); // past the 300 s TTL: reload fails
    assert!(
        handle(&store, &request(key.expose_secret())).await.is_ok(),
        "last good set is kept"
    );
    clock.advance(600);
    assert!(
        handle(&store, &request(key.expose_secret())).await.is_ok(),
        "still inside the grace"
    );
    clock.advance(300); // 1201 s after the load: past ttl + grace (1200 s)
    assert!(
        handle(&store, &request(key.expose_secret())).await.is_err(),
        "fails closed"
    );

    // Fixed: the next attempt (after the retry interval) loads it again.
    put_doc(&c, &tutor_doc(&key)).await;
    clock.advance(31);
    assert!(
        handle(&store, &request(key.expose_secret())).await.is_ok(),
        "recovers"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plain_string_parameter_in_the_store_path_is_refused() {
    let moto = MotoServer::start();
    let c = moto_ssm_client(&moto.endpoint());
    let key = ApiKey::generate(Some("test")).unwrap();
    // A String parameter could be written by someone without the KMS key: never trust it.
    put(
        &c,
        &format!("{PATH}/tutor-service"),
        &tutor_doc(&key).to_json(),
        ParameterType::String,
    )
    .await;
    let clock = TestClock::at(NOW);
    let store = store(ssm_source(c), &clock);
    assert!(handle(&store, &request(key.expose_secret())).await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ssm_going_away_mid_life_keeps_the_last_good_set_for_a_bounded_time() {
    let mut moto = MotoServer::start();
    let c = moto_ssm_client(&moto.endpoint());
    let key = ApiKey::generate(Some("test")).unwrap();
    put_doc(&c, &tutor_doc(&key)).await;
    let clock = TestClock::at(NOW);
    let store = store(ssm_source(c), &clock);
    assert!(handle(&store, &request(key.expose_secret())).await.is_ok());

    moto.stop();
    clock.advance(301);
    assert!(
        handle(&store, &request(key.expose_secret())).await.is_ok(),
        "last good set"
    );
    clock.advance(900);
    assert!(
        handle(&store, &request(key.expose_secret())).await.is_err(),
        "then fail closed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_first_load_refuses_everything_and_the_next_invocation_retries() {
    let moto = MotoServer::start();
    let c = moto_ssm_client(&moto.endpoint());
    let key = ApiKey::generate(Some("test")).unwrap();
    put(
        &c,
        &format!("{PATH}/tutor-service"),
        "[]",
        ParameterType::SecureString,
    )
    .await;
    let clock = TestClock::at(NOW);
    let store = store(ssm_source(c.clone()), &clock);
    store.reload_now().await; // init-time load fails: malformed data
    assert!(handle(&store, &request(key.expose_secret())).await.is_err());
    // Fixed without the clock moving: the very next invocation loads.
    put_doc(&c, &tutor_doc(&key)).await;
    assert!(handle(&store, &request(key.expose_secret())).await.is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_ssm_at_start_refuses_without_panicking() {
    let port = test_support::free_port();
    let c = moto_ssm_client(&format!("http://127.0.0.1:{port}"));
    let clock = TestClock::at(NOW);
    let store = store(ssm_source(c), &clock);
    store.reload_now().await;
    let key = dev_key("tutor-service");
    assert!(handle(&store, &request(&key)).await.is_err());
    assert!(handle(&store, &request(&key)).await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_legacy_parameter_is_accepted_and_hashed() {
    let moto = MotoServer::start();
    let c = moto_ssm_client(&moto.endpoint());
    let legacy_key = "Q".repeat(32) + &"7".repeat(32);
    put(
        &c,
        "/test/identity-service/service-api-keys",
        &format!(r#"{{"{legacy_key}": "tutor-service"}}"#),
        ParameterType::SecureString,
    )
    .await;
    // The service's document gives the legacy key its permissions.
    put_doc(
        &c,
        &ServiceDocument::new(
            "tutor-service",
            vec![ApiGrant::new(&["identity"], &["GET /internal/users/*"])],
        ),
    )
    .await;
    let source = KeySource::Ssm(
        SsmKeyStore::new(c, PATH)
            .unwrap()
            .with_legacy_parameter(Some("/test/identity-service/service-api-keys".into())),
    );
    let clock = TestClock::at(NOW);
    let store = store(source, &clock);
    let resp = handle(&store, &request(&legacy_key)).await.unwrap();
    assert_eq!(resp.principal_id.as_deref(), Some("tutor-service"));
    assert_eq!(resp.context["authenticatedBy"], "api-key");
}
