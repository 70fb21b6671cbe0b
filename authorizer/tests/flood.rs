//! Issue 11 item 3: under a flood of invalid keys the authorizer keeps answering valid
//! callers, and the flood does not turn into SSM calls. The real SDK against a real
//! moto_server; `SsmFaults` counts every call and throttles beyond the account's rate
//! like SSM does.

use std::time::Duration;

use crate::common::*;
use authorizer::apis::parse_api_names;
use authorizer::{handle, ApiNames, CachedStore, KeySource};
use keystore_ssm::aws_sdk_ssm::Client;
use keystore_ssm::SsmKeyStore;
use serde_json::{json, Value};
use service_auth::cache::RefreshPolicy;
use service_auth::{ApiGrant, ApiKey, KeyRecord, ServiceDocument, UnixTime};
use test_support::{put_service_document, MotoServer, SsmFaults};

const PATH: &str = "/svcauth/flood/keys";

fn request(key: &str) -> Value {
    let mut ev = event("authorizer-valid-key");
    ev["headers"]["x-service-api-key"] = json!(key);
    ev["multiValueHeaders"]["x-service-api-key"] = json!([key]);
    ev
}

/// `services` services with one key each, written as svcauth writes them (document,
/// then its index entries). Returns the keys, by service index.
async fn seed(c: &Client, services: usize, indexed: bool) -> Vec<ApiKey> {
    let store = SsmKeyStore::new(c.clone(), PATH).unwrap();
    let mut keys = Vec::with_capacity(services);
    for i in 0..services {
        let key = ApiKey::generate(Some("test")).unwrap();
        let mut doc = ServiceDocument::new(
            &format!("svc-{i:03}"),
            vec![ApiGrant::new(&["identity"], &["GET /internal/users/*"])],
        );
        doc.keys
            .push(KeyRecord::for_key(&key, UnixTime(NOW - 3600), None));
        put_service_document(c, PATH, &doc).await;
        if indexed {
            let out = store.ensure_index(&doc).await.unwrap();
            assert_eq!(out.created, vec![key.key_id()]);
        }
        keys.push(key);
    }
    keys
}

/// A moto SSM store seeded with `services` services (see [`seed`]) behind a client
/// whose calls `faults` counts, and the test clock at `NOW`.
struct Seeded {
    _moto: MotoServer,
    faults: SsmFaults,
    c: Client,
    keys: Vec<ApiKey>,
    clock: TestClock,
}

async fn seeded(services: usize, indexed: bool) -> Seeded {
    let moto = MotoServer::start();
    let faults = SsmFaults::new();
    let c = faults.client(&moto.endpoint());
    let keys = seed(&c, services, indexed).await;
    Seeded {
        _moto: moto,
        faults,
        c,
        keys,
        clock: TestClock::at(NOW),
    }
}

fn instance(c: Client, clock: &TestClock, policy: RefreshPolicy) -> CachedStore {
    CachedStore::new(
        KeySource::Ssm(SsmKeyStore::new(c, PATH).unwrap()),
        policy,
        Duration::from_secs(10),
        clock.unix_clock(),
    )
    .with_api_names(ApiNames::fixed(
        parse_api_names(test_support::DEV_API_NAMES).unwrap(),
    ))
}

/// Keys that are not keys: each refused by its shape alone.
fn malformed(i: usize) -> String {
    let good = ApiKey::generate(Some("test")).unwrap();
    let k = good.expose_secret();
    match i % 5 {
        // One character changed: the checksum catches it.
        0 => {
            let mut b = k.as_bytes().to_vec();
            let at = b.len() - 10;
            b[at] = if b[at] == b'a' { b'b' } else { b'a' };
            String::from_utf8(b).unwrap()
        }
        1 => k[..k.len() - 1].to_owned(),
        2 => format!("{k}!"),
        3 => "x".repeat(4000),
        _ => format!("svcauth_{}", "A".repeat(49)),
    }
}

/// An invented key: malformed (see [`malformed`]), or well-formed and unknown.
fn invented(i: usize, malformed_one: bool) -> String {
    if malformed_one {
        malformed(i)
    } else {
        ApiKey::generate(Some("test"))
            .unwrap()
            .expose_secret()
            .to_owned()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_keys_are_refused_without_a_single_ssm_call() {
    let Seeded {
        _moto,
        faults,
        c,
        keys,
        clock,
    } = seeded(3, true).await;
    faults.reset_counts();
    let cold = instance(c, &clock, RefreshPolicy::default());
    for i in 0..500 {
        assert!(handle(&cold, &request(&malformed(i))).await.is_err());
    }
    let mut missing = event("authorizer-valid-key");
    missing["headers"]
        .as_object_mut()
        .unwrap()
        .remove("x-service-api-key");
    missing["multiValueHeaders"]
        .as_object_mut()
        .unwrap()
        .remove("x-service-api-key");
    assert!(handle(&cold, &missing).await.is_err());
    let mut two = request(keys[0].expose_secret());
    two["multiValueHeaders"]["x-service-api-key"] =
        json!([keys[0].expose_secret(), keys[1].expose_secret()]);
    assert!(handle(&cold, &two).await.is_err());
    assert_eq!(
        faults.total_calls(),
        0,
        "a malformed key must cost no SSM call"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cold_instance_answers_an_indexed_key_with_two_ssm_calls_whatever_the_store_size() {
    let Seeded {
        _moto,
        faults,
        c,
        keys,
        clock,
    } = seeded(60, true).await;

    faults.reset_counts();
    let cold = instance(c.clone(), &clock, RefreshPolicy::default());
    let resp = handle(&cold, &request(keys[42].expose_secret()))
        .await
        .unwrap();
    assert_eq!(resp.principal_id(), "svc-042");
    assert_eq!(faults.total_calls(), 2, "{faults:?}");
    assert_eq!(faults.calls("GetParameters"), 1);
    assert_eq!(faults.calls("GetParameter"), 1);
    assert_eq!(faults.calls("GetParametersByPath"), 0);
    // The same key again: from memory.
    assert!(handle(&cold, &request(keys[42].expose_secret()))
        .await
        .is_ok());
    assert_eq!(faults.total_calls(), 2);

    // With API names in SSM (as deployed, registered by `svcauth apis register`), the
    // name is read in the same first call.
    test_support::put_secure(&c, "/svcauth/flood/apis/a1b2c3d4e5", "identity").await;
    faults.reset_counts();
    let deployed = CachedStore::new(
        KeySource::Ssm(SsmKeyStore::new(c.clone(), PATH).unwrap()),
        RefreshPolicy::default(),
        Duration::from_secs(10),
        clock.unix_clock(),
    )
    .with_api_names(ApiNames::ssm(
        c.clone(),
        "/svcauth/flood/apis",
        RefreshPolicy::default(),
    ));
    let resp = handle(&deployed, &request(keys[5].expose_secret()))
        .await
        .unwrap();
    let statements = serde_json::to_value(resp.to_aws().policy_document).unwrap();
    assert!(
        statements.to_string().contains("/GET/internal/users/*"),
        "the API's name was not known: {statements}"
    );
    assert_eq!(faults.total_calls(), 2, "{faults:?}");

    // The marker wins over the document, on the by-key path too.
    let ssm = SsmKeyStore::new(c.clone(), PATH).unwrap();
    ssm.put_revocation_marker("svc-007", &keys[7].key_id(), UnixTime(NOW), "test")
        .await
        .unwrap();
    faults.reset_counts();
    let cold = instance(c.clone(), &clock, RefreshPolicy::default());
    assert!(handle(&cold, &request(keys[7].expose_secret()))
        .await
        .is_err());
    assert_eq!(faults.calls("GetParametersByPath"), 0);

    // Before: the same first answer through the full load costs one call per 10
    // documents and per 10 usable keys.
    faults.reset_counts();
    let before = instance(c.clone(), &clock, RefreshPolicy::default()).with_key_index(false);
    assert!(handle(&before, &request(keys[42].expose_secret()))
        .await
        .is_ok());
    // 6 pages of 10 (moto may answer one more, empty page) and 6 marker reads.
    let pages = faults.calls("GetParametersByPath");
    assert!((6..=7).contains(&pages), "{faults:?}");
    assert_eq!(faults.calls("GetParameters"), 6, "{faults:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_without_an_index_entry_are_answered_by_one_full_load() {
    // An older store: documents only, no index.
    let Seeded {
        _moto,
        faults,
        c,
        keys,
        clock,
    } = seeded(12, false).await;
    faults.reset_counts();
    let cold = instance(c.clone(), &clock, RefreshPolicy::default());
    for k in &keys {
        let resp = handle(&cold, &request(k.expose_secret())).await.unwrap();
        assert!(!resp.principal_id().is_empty());
    }
    // One lookup found nothing, one full load (2 pages, 2 marker reads); every other
    // key, and every unknown one, from memory.
    assert_eq!(faults.calls("GetParametersByPath"), 2, "{faults:?}");
    for _ in 0..50 {
        let unknown = ApiKey::generate(Some("test")).unwrap();
        assert!(handle(&cold, &request(unknown.expose_secret()))
            .await
            .is_err());
    }
    assert_eq!(faults.total_calls(), 1 + 2 + 2, "{faults:?}");
    // `svcauth keys reindex` path: the entries written, a new instance goes by key.
    let ssm = SsmKeyStore::new(c.clone(), PATH).unwrap();
    for doc in ssm.load_documents().await.unwrap() {
        ssm.ensure_index(&doc).await.unwrap();
    }
    faults.reset_counts();
    let cold = instance(c, &clock, RefreshPolicy::default());
    assert!(handle(&cold, &request(keys[3].expose_secret()))
        .await
        .is_ok());
    assert_eq!(faults.total_calls(), 2, "{faults:?}");
}

/// One flooded instance and what it saw.
struct Flooded {
    store: CachedStore,
    /// Which valid keys it has answered.
    answered: Vec<bool>,
    /// Requests made so far (it starts at its index, so the instances' requests differ).
    i: usize,
    flood: u64,
    refused_after_answered: u64,
    valid_ok: u64,
}

impl Flooded {
    /// Until every valid key was answered here, and then some.
    async fn done(&self) -> bool {
        self.i >= 4000
            && self.answered.iter().all(|a| *a)
            && self.valid_ok >= 200
            && self.store.loaded_at().await.is_some()
    }

    /// One request: every fourth a valid key, else an invented one (malformed, or
    /// well-formed and unknown).
    async fn request(&mut self, valid: &[String]) {
        self.i += 1;
        let i = self.i;
        if i.is_multiple_of(4) {
            let v = (i / 4) % valid.len();
            match handle(&self.store, &request(&valid[v])).await {
                Ok(_) => {
                    self.answered[v] = true;
                    self.valid_ok += 1;
                }
                Err(_) if self.answered[v] => self.refused_after_answered += 1,
                Err(_) => {}
            }
        } else {
            let bad = invented(i, i % 4 == 1);
            assert!(handle(&self.store, &request(&bad)).await.is_err());
            self.flood += 1;
        }
    }
}

/// The "Show it": cold instances started together, each flooded with
/// invented keys (malformed and well-formed unknown) beside valid traffic, against an
/// SSM that throttles beyond 40 calls a second (the account default). Every valid
/// call succeeds once its instance has answered that key (or loaded its store), every
/// valid key gets through on every instance, and the SSM calls stay bounded by the
/// number of instances, not the number of requests.
///
/// Time is the test's clock, not the machine's: the instances take turns, one request
/// each per millisecond, and the throttle, the authorizers' back-off and their lookup
/// ration all read that clock. The counts depend on the requests made, not on how
/// fast a busy machine makes them (only the back-off's jitter is random).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_a_flood_of_invalid_keys_valid_callers_keep_being_answered() {
    const INSTANCES: usize = 6;
    const SERVICES: usize = 100;
    /// At most 30 s of the test's clock.
    const MAX_TICKS_MS: u64 = 30_000;
    let Seeded {
        _moto,
        faults,
        c,
        keys,
        clock,
    } = seeded(SERVICES, true).await;
    let valid: Vec<String> = [3, 17, 42, 64, 99]
        .iter()
        .map(|&i| keys[i].expose_secret().to_owned())
        .collect();
    // Backoff capped at 2 s (the retry interval) so the test stays short.
    let policy = RefreshPolicy {
        retry_interval: Duration::from_secs(2),
        ..RefreshPolicy::default()
    };
    faults.reset_counts();
    // Each SSM call takes 10 ms of the test's clock.
    faults.throttle_above(40, &clock, Duration::from_millis(10));

    let started = clock.instant();
    let mut instances: Vec<Flooded> = (0..INSTANCES)
        .map(|n| Flooded {
            store: instance(c.clone(), &clock, policy),
            answered: vec![false; valid.len()],
            i: n,
            flood: 0,
            refused_after_answered: 0,
            valid_ok: 0,
        })
        .collect();
    for _ in 0..MAX_TICKS_MS {
        let mut all_done = true;
        for flooded in &mut instances {
            if !flooded.done().await {
                all_done = false;
                flooded.request(&valid).await;
            }
        }
        if all_done {
            break;
        }
        clock.advance_millis(1);
    }
    let mut stores = Vec::new();
    let mut flood_total = 0;
    for f in instances {
        assert!(
            f.answered.iter().all(|a| *a),
            "a valid key never got through on an instance: {:?}; loaded: {:?}; {faults:?}",
            f.answered,
            f.store.loaded_at().await
        );
        assert_eq!(
            f.refused_after_answered, 0,
            "a valid key was refused after its instance had answered it"
        );
        assert!(f.valid_ok >= 200);
        assert!(
            f.store.loaded_at().await.is_some(),
            "the flood's full load never got through"
        );
        flood_total += f.flood;
        stores.push(f.store);
    }
    let calls = faults.total_calls();
    let throttled = faults.throttled();
    eprintln!(
        "flood: {INSTANCES} instances, {flood_total} invalid requests, {calls} SSM calls ({throttled} throttled) in {} ms of the test's clock",
        (clock.instant() - started).as_millis()
    );
    // Per instance: the lookup ration (burst + 1/s over the run), two calls per valid
    // key, and full loads (10 pages + 10 marker reads each), each call retried a few
    // times while throttled. Bounded by the instances, far from one call per request.
    assert!(
        flood_total >= 10 * calls,
        "{flood_total} invalid requests, {calls} calls"
    );

    // Once loaded, a new wave of invented keys costs nothing at all.
    faults.reset_counts();
    for store in &stores {
        for i in 0..300 {
            let bad = invented(i, i.is_multiple_of(2));
            assert!(handle(store, &request(&bad)).await.is_err());
        }
        for v in valid.iter() {
            assert!(handle(store, &request(v)).await.is_ok());
        }
    }
    assert_eq!(faults.total_calls(), 0, "{faults:?}");
}
