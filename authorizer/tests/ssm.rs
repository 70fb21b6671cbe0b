//! The real `aws-sdk-ssm` client against a real `moto_server` started by the test:
//! keys stored as SecureString, loaded, decided on; broken parameters refused one
//! service at a time (issue 9 item 5), SSM going away, and a failing first load.

use crate::common::*;
use authorizer::{handle, KeySource};
use keystore_ssm::aws_sdk_ssm::types::ParameterType;
use keystore_ssm::aws_sdk_ssm::Client;
use keystore_ssm::SsmKeyStore;
use serde_json::{json, Value};
use service_auth::{ApiGrant, ApiKey, KeyRecord, ServiceDocument, UnixTime};
use test_support::{moto_ssm_client, Fault, MotoServer, SsmFaults};

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
    test_support::put_service_document(client, PATH, doc).await;
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
        .load_store(UnixTime(NOW))
        .await
        .unwrap();
    assert_eq!(loaded.service_count(), 25);

    let clock = TestClock::at(NOW);
    let store = store(ssm_source(c), &clock);
    let resp = handle(&store, &request(key.expose_secret())).await.unwrap();
    assert_eq!(resp.principal_id(), "tutor-service");
    let other = ApiKey::generate(Some("test")).unwrap();
    assert!(handle(&store, &request(other.expose_secret()))
        .await
        .is_err());
}

fn doc_of(service: &str, keys: &[&ApiKey]) -> ServiceDocument {
    let mut d = ServiceDocument::new(
        service,
        vec![ApiGrant::new(&["identity"], &["GET /internal/users/*"])],
    );
    for k in keys {
        d.keys
            .push(KeyRecord::for_key(k, UnixTime(NOW - 3600), None));
    }
    d
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_bad_parameter_refuses_only_its_service() {
    let moto = MotoServer::start();
    let c = moto_ssm_client(&moto.endpoint());
    let good = ApiKey::generate(Some("test")).unwrap();
    put_doc(&c, &tutor_doc(&good)).await;
    // Every kind of bad parameter the issue names, each for a service of its own.
    let plain = ApiKey::generate(Some("test")).unwrap();
    put(
        &c,
        &format!("{PATH}/plain-service"),
        &doc_of("plain-service", &[&plain]).to_json(),
        ParameterType::String,
    )
    .await;
    let newer = ApiKey::generate(Some("test")).unwrap();
    let mut newer_doc = doc_of("newer-service", &[&newer]);
    newer_doc.schema = service_auth::record::SCHEMA_VERSION + 1;
    put(
        &c,
        &format!("{PATH}/newer-service"),
        &serde_json::to_string(&newer_doc).unwrap(),
        ParameterType::SecureString,
    )
    .await;
    put(
        &c,
        &format!("{PATH}/json-service"),
        "{not json",
        ParameterType::SecureString,
    )
    .await;
    let shared = ApiKey::generate(Some("test")).unwrap();
    put_doc(&c, &doc_of("shared-a", &[&shared])).await;
    put_doc(&c, &doc_of("shared-b", &[&shared])).await;
    // A legacy key of a refused service is refused with it.
    let legacy_plain = "P".repeat(64);
    let legacy_tutor = "T".repeat(64);
    put(
        &c,
        "/test/legacy",
        &format!(r#"{{"{legacy_plain}": "plain-service", "{legacy_tutor}": "tutor-service"}}"#),
        ParameterType::SecureString,
    )
    .await;
    let source = KeySource::Ssm(
        SsmKeyStore::new(c.clone(), PATH)
            .unwrap()
            .with_legacy_parameter(Some("/test/legacy".into())),
    );
    let loaded = SsmKeyStore::new(c.clone(), PATH)
        .unwrap()
        .with_legacy_parameter(Some("/test/legacy".into()))
        .load_store(UnixTime(NOW))
        .await
        .unwrap();
    let mut rejected: Vec<(String, &str)> = loaded
        .rejected
        .iter()
        .map(|r| (r.parameter.clone(), r.reason.code()))
        .collect();
    rejected.sort();
    assert_eq!(
        rejected,
        vec![
            (format!("{PATH}/json-service"), "invalid_document"),
            (format!("{PATH}/newer-service"), "unsupported_schema"),
            (format!("{PATH}/plain-service"), "not_secure_string"),
            (format!("{PATH}/shared-a"), "shared_key"),
            (format!("{PATH}/shared-b"), "shared_key"),
        ]
    );

    let clock = TestClock::at(NOW);
    let store = store(source, &clock);
    let resp = handle(&store, &request(good.expose_secret()))
        .await
        .unwrap();
    assert_eq!(resp.principal_id(), "tutor-service");
    assert!(handle(&store, &request(&legacy_tutor)).await.is_ok());
    for refused in [
        plain.expose_secret(),
        newer.expose_secret(),
        shared.expose_secret(),
        legacy_plain.as_str(),
    ] {
        assert!(handle(&store, &request(refused)).await.is_err());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_document_the_authorizer_cannot_decrypt_refuses_only_its_service() {
    let moto = MotoServer::start();
    let faults = SsmFaults::new();
    let c = faults.client(&moto.endpoint());
    let key = ApiKey::generate(Some("test")).unwrap();
    let other = ApiKey::generate(Some("test")).unwrap();
    put_doc(&c, &tutor_doc(&key)).await;
    put_doc(&c, &doc_of("admin-service", &[&other])).await;
    // admin-service's document is encrypted with a KMS key the authorizer may not use:
    // SSM then fails every call that would decrypt it, the listing by path included.
    let admin = format!("{PATH}/admin-service");
    faults.fail_when(
        "GetParametersByPath",
        r#""WithDecryption":true"#,
        Fault::AccessDenied,
    );
    faults.fail_when("GetParameters", &admin, Fault::AccessDenied);
    faults.fail_when("GetParameter", &admin, Fault::AccessDenied);
    let loaded = SsmKeyStore::new(c.clone(), PATH)
        .unwrap()
        .load_store(UnixTime(NOW))
        .await
        .unwrap();
    let rejected: Vec<(&str, &str)> = loaded
        .rejected
        .iter()
        .map(|r| (r.parameter.as_str(), r.reason.code()))
        .collect();
    assert_eq!(rejected, vec![(admin.as_str(), "kms_key")]);
    let clock = TestClock::at(NOW);
    let store = store(ssm_source(c), &clock);
    assert!(handle(&store, &request(key.expose_secret())).await.is_ok());
    assert!(handle(&store, &request(other.expose_secret()))
        .await
        .is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_document_that_breaks_refuses_its_service_only_until_fixed() {
    let moto = MotoServer::start();
    let c = moto_ssm_client(&moto.endpoint());
    let key = ApiKey::generate(Some("test")).unwrap();
    let other = ApiKey::generate(Some("test")).unwrap();
    put_doc(&c, &tutor_doc(&key)).await;
    put_doc(&c, &doc_of("admin-service", &[&other])).await;
    let clock = TestClock::at(NOW);
    let store = store(ssm_source(c.clone()), &clock);
    assert!(handle(&store, &request(key.expose_secret())).await.is_ok());

    // Someone writes a broken document for tutor-service.
    put(
        &c,
        &format!("{PATH}/tutor-service"),
        "{not json",
        ParameterType::SecureString,
    )
    .await;
    clock.advance(299);
    assert!(
        handle(&store, &request(key.expose_secret())).await.is_ok(),
        "the cached store until its TTL"
    );
    clock.advance(1); // the 300 s TTL: the reload reads the broken document
    assert!(
        handle(&store, &request(key.expose_secret())).await.is_err(),
        "its service is refused"
    );
    assert!(
        handle(&store, &request(other.expose_secret()))
            .await
            .is_ok(),
        "the others keep working"
    );

    // Fixed: the next reload (after the TTL) takes it again.
    put_doc(&c, &tutor_doc(&key)).await;
    clock.advance(300);
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
    let faults = SsmFaults::new();
    let c = faults.client(&moto.endpoint());
    let key = ApiKey::generate(Some("test")).unwrap();
    put_doc(&c, &tutor_doc(&key)).await;
    // The path cannot be read at all: the one case where nothing is loaded.
    faults.fail("GetParametersByPath", Fault::Throttling);
    let clock = TestClock::at(NOW);
    let store = store(ssm_source(c.clone()), &clock);
    store.reload_now().await; // init-time load fails
    assert!(handle(&store, &request(key.expose_secret())).await.is_err());
    // SSM answers again, without the clock moving: the first invocation after the
    // jittered backoff (at most 200 ms after two failures) loads.
    faults.heal("GetParametersByPath");
    tokio::time::sleep(std::time::Duration::from_millis(450)).await;
    assert!(handle(&store, &request(key.expose_secret())).await.is_ok());
    // A failing marker read fails the full load too: never a store that skipped them.
    faults.fail("GetParameters", Fault::AccessDenied);
    let fresh = crate::common::store(ssm_source(c.clone()), &clock).with_key_index(false);
    assert!(handle(&fresh, &request(key.expose_secret())).await.is_err());
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
    assert_eq!(resp.principal_id(), "tutor-service");
    assert_eq!(resp.to_aws().context["authenticatedBy"], "api-key");
}

/// Issue 16 §2: the API registry entry is trusted only as a SecureString (what `svcauth
/// apis register` writes under the store's KMS key). A `String` one, which any role
/// allowed to write parameters there could forge to relabel an API, allows nothing,
/// and the log line names the command that replaces it; on the by-key path (read with
/// the key's entries) and on its own alike.
#[test]
fn a_string_api_registry_entry_is_never_trusted() {
    const APIS: &str = "/svcauth/test/apis";
    let key = ApiKey::generate(Some("test")).unwrap();
    let ((forged, forged_full, trusted), logs) = capture(async {
        let moto = MotoServer::start();
        let c = moto_ssm_client(&moto.endpoint());
        put_doc(&c, &tutor_doc(&key)).await;
        SsmKeyStore::new(c.clone(), PATH)
            .unwrap()
            .ensure_index(&tutor_doc(&key))
            .await
            .unwrap();
        put(
            &c,
            &format!("{APIS}/a1b2c3d4e5"),
            "identity",
            ParameterType::String,
        )
        .await;
        let clock = TestClock::at(NOW);
        let deployed = |c: &Client| {
            store(ssm_source(c.clone()), &clock).with_api_names(authorizer::ApiNames::ssm(
                c.clone(),
                APIS,
                service_auth::cache::RefreshPolicy::default(),
            ))
        };
        let allows = |resp: Result<authorizer::Response, authorizer::Unauthorized>| {
            let v = serde_json::to_value(resp.expect("the key authenticates")).unwrap();
            v["policyDocument"]["Statement"]
                .as_array()
                .unwrap()
                .iter()
                .any(|s| s["Effect"] == "Allow")
        };
        let forged = allows(handle(&deployed(&c), &request(key.expose_secret())).await);
        let full = deployed(&c).with_key_index(false);
        let forged_full = allows(handle(&full, &request(key.expose_secret())).await);
        test_support::put_secure(&c, &format!("{APIS}/a1b2c3d4e5"), "identity").await;
        let trusted = allows(handle(&deployed(&c), &request(key.expose_secret())).await);
        (forged, forged_full, trusted)
    });
    assert!(
        !forged && !forged_full,
        "a String entry was trusted: {logs}"
    );
    assert!(trusted, "{logs}");
    let untrusted = lines(&logs, "api_name_untrusted");
    assert_eq!(untrusted.len(), 2, "{logs}");
    let message = untrusted[0]["fields"]["message"].as_str().unwrap();
    for needed in [
        "String parameter",
        "never trusted",
        "svcauth apis register --api-id a1b2c3d4e5 --name identity",
    ] {
        assert!(message.contains(needed), "{needed}: {message}");
    }
}
