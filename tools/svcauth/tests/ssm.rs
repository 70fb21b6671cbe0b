//! svcauth against a real moto_server (the SSM wire protocol), checked with the real
//! authorizer (`authorizer::handle`) and a clock the test moves: create, rotate with a
//! grace period, revoke, list, import-legacy, check, and concurrent writers.

use crate::common::*;
use keystore_ssm::aws_sdk_ssm::types::ParameterType;
use serde_json::Value;
use svcauth::{exit, Aws};

const TUTOR_PARAM: &str = "/test/tutor-service/identity-service-api-key";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_stores_only_a_hash_and_delivers_a_key_the_authorizer_accepts() {
    let (_moto, c, aws) = moto_ssm();

    // A dry run checks and writes nothing.
    let run = svcauth(&args(&create_tutor(&["--dry-run"])), &aws, NOW).await;
    expect(&run, exit::OK);
    assert!(run.stderr.contains("dry run"), "{run:?}");
    assert!(all_params(&c).await.is_empty(), "a dry run wrote something");

    let run = svcauth(
        &args(&create_tutor(&[
            "--usage-plan-key",
            "tutor-usage-plan-key-value",
        ])),
        &aws,
        NOW,
    )
    .await;
    expect(&run, exit::OK);
    assert!(
        run.stdout.is_empty(),
        "the key went to SSM, not stdout: {run:?}"
    );

    // The caller's own parameter holds the key, as a SecureString.
    let key = read_param(&c, TUTOR_PARAM).await;
    assert!(key.starts_with("svcauth_test_"));
    // Beside them, the key id index entry: a String naming the service, no secret.
    let (index, params): (Vec<_>, Vec<_>) = all_params(&c)
        .await
        .into_iter()
        .partition(|(name, _, _)| name.starts_with("/svcauth/test/index/"));
    assert_eq!(params.len(), 2, "{params:?}");
    assert!(
        params.iter().all(|(_, _, t)| t == "SecureString"),
        "{params:?}"
    );
    assert_eq!(
        index,
        vec![(
            format!("/svcauth/test/index/{}", key_id(&key)),
            "tutor-service".to_owned(),
            "String".to_owned()
        )]
    );
    // The store holds the hash and id, never the key.
    let doc = read_param(&c, &format!("{PATH}/tutor-service")).await;
    assert!(!doc.contains(&key));
    assert!(doc.contains(&key_id(&key)));
    assert!(
        !run.stderr.contains(&key),
        "the key leaked into status output"
    );

    let clock = TestClock::at(NOW + 10);
    let store = ssm_authorizer(&c, &clock);
    assert_accepted(&store, &key, "tutor-service").await;
    let resp = authorize(&store, &key).await.unwrap();
    assert_eq!(resp.context["keyId"], Value::String(key_id(&key)));
    // The usage-plan key ties the caller to its usage plan (throttling).
    assert_eq!(
        resp.usage_identifier_key.as_deref(),
        Some("tutor-usage-plan-key-value")
    );

    // A second create refuses to overwrite the delivered key and writes nothing.
    let run = svcauth(
        &args(&words("keys create --service tutor-service")),
        &aws,
        NOW,
    )
    .await;
    expect(&run, exit::USAGE);
    assert!(run.stderr.contains("keys rotate"), "{run:?}");
    assert_eq!(read_param(&c, &format!("{PATH}/tutor-service")).await, doc);
    assert_eq!(read_param(&c, TUTOR_PARAM).await, key);

    // Different permissions for an existing service need --replace-permissions.
    let run = svcauth(
        &args(&[
            "keys",
            "create",
            "--service",
            "tutor-service",
            "--permissions",
            "* /internal/*",
            "--api",
            "identity",
            "--deliver",
            "stdout",
        ]),
        &aws,
        NOW,
    )
    .await;
    expect(&run, exit::USAGE);
    assert!(run.stderr.contains("--replace-permissions"), "{run:?}");
    assert!(run.stdout.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotate_keeps_both_keys_for_the_grace_period_then_only_the_new_one() {
    let (_moto, c, aws) = moto_ssm();
    let created = svcauth(&args(&create_tutor(&[])), &aws, NOW).await;
    expect(&created, exit::OK);
    let old_key = read_param(&c, TUTOR_PARAM).await;

    let rotated_at = NOW + 3600;
    let dry = svcauth(
        &args(&words("keys rotate --service tutor-service --dry-run")),
        &aws,
        rotated_at,
    )
    .await;
    expect(&dry, exit::OK);
    assert_eq!(
        read_param(&c, TUTOR_PARAM).await,
        old_key,
        "a dry run delivered a key"
    );

    let run = svcauth(
        &args(&words("keys rotate --service tutor-service --grace 24h")),
        &aws,
        rotated_at,
    )
    .await;
    expect(&run, exit::OK);
    let new_key = read_param(&c, TUTOR_PARAM).await;
    assert_ne!(new_key, old_key, "rotate overwrites the caller's parameter");
    assert!(run.stderr.contains("cold start"), "{run:?}");

    // During the grace period both keys work, with the same permissions.
    let clock = TestClock::at(rotated_at + 60);
    let store = ssm_authorizer(&c, &clock);
    assert_accepted(&store, &old_key, "tutor-service").await;
    assert_accepted(&store, &new_key, "tutor-service").await;
    clock.set(rotated_at + 24 * 3600 - 1);
    assert_accepted(&store, &old_key, "tutor-service").await;

    // After it, only the new one: nothing ran in between, the authorizer's clock moved.
    clock.set(rotated_at + 24 * 3600);
    assert_refused(&store, &old_key).await;
    assert_accepted(&store, &new_key, "tutor-service").await;

    let list = svcauth(
        &args(&words("keys list --json")),
        &aws,
        rotated_at + 24 * 3600,
    )
    .await;
    let rows: Vec<Value> = serde_json::from_str(&list.stdout).unwrap();
    let status = |id: &str| rows.iter().find(|r| r["keyId"] == id).unwrap()["status"].clone();
    assert_eq!(status(&key_id(&old_key)), "expired");
    assert_eq!(status(&key_id(&new_key)), "active");

    // A rotation of a service that has no document says so.
    let run = svcauth(&args(&words("keys rotate --service nobody")), &aws, NOW).await;
    expect(&run, exit::NOT_FOUND);
    assert!(run.stderr.contains("keys create"), "{run:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoke_stops_a_key_within_the_authorizer_cache_ttl() {
    let (_moto, c, aws) = moto_ssm();
    let key = new_tutor_key(&aws, NOW).await;
    let id = key_id(&key);

    let clock = TestClock::at(NOW + 10);
    let store = ssm_authorizer(&c, &clock);
    assert_accepted(&store, &key, "tutor-service").await;

    let dry = svcauth(
        &args(&words(&format!(
            "keys revoke --service tutor-service --key-id {id} --dry-run"
        ))),
        &aws,
        NOW + 20,
    )
    .await;
    expect(&dry, exit::OK);
    let run = svcauth(
        &args(&words(&format!(
            "keys revoke --service tutor-service --key-id {id}"
        ))),
        &aws,
        NOW + 20,
    )
    .await;
    expect(&run, exit::OK);
    assert!(
        run.stderr.contains("10 minutes"),
        "the bound is stated: {run:?}"
    );
    assert!(run.stderr.contains("no other usable key"), "{run:?}");

    // The authorizer's cached store still has it until its TTL (300 s) ends...
    clock.set(NOW + 10 + 299);
    assert_accepted(&store, &key, "tutor-service").await;
    // ...then reloads and refuses it.
    clock.set(NOW + 10 + 300);
    assert_refused(&store, &key).await;

    let again = svcauth(
        &args(&words(&format!(
            "keys revoke --service tutor-service --key-id {id}"
        ))),
        &aws,
        NOW + 30,
    )
    .await;
    expect(&again, exit::NOT_ACCEPTED);
    assert!(again.stderr.contains("already revoked"), "{again:?}");
    let unknown = svcauth(
        &args(&words(
            "keys revoke --service tutor-service --key-id kid_0000000000000000",
        )),
        &aws,
        NOW,
    )
    .await;
    expect(&unknown, exit::NOT_FOUND);
    assert!(unknown.stderr.contains("keys list"), "{unknown:?}");
    let no_service = svcauth(
        &args(&words(&format!(
            "keys revoke --service nobody --key-id {id}"
        ))),
        &aws,
        NOW,
    )
    .await;
    expect(&no_service, exit::NOT_FOUND);
    assert!(
        no_service.stderr.contains("region us-east-1"),
        "{no_service:?}"
    );
    let bad_id = svcauth(
        &args(&words("keys revoke --service tutor-service --key-id abc")),
        &aws,
        NOW,
    )
    .await;
    expect(&bad_id, exit::USAGE);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_shows_every_key_and_no_secret() {
    let (_moto, c, aws) = moto_ssm();
    let mut keys = Vec::new();
    for (service, at) in [
        ("tutor-service", NOW - 80 * 86_400),
        ("admin-service", NOW - 100 * 86_400),
    ] {
        let run = svcauth(
            &args(&[
                "keys",
                "create",
                "--service",
                service,
                "--permissions",
                "* /internal/*",
                "--api",
                "identity",
                "--deliver",
                "stdout",
            ]),
            &aws,
            at,
        )
        .await;
        expect(&run, exit::OK);
        keys.push(run.delivered_key());
    }
    let table = svcauth(&args(&["keys", "list"]), &aws, NOW).await;
    expect(&table, exit::OK);
    let json = svcauth(&args(&words("keys list --json")), &aws, NOW).await;
    expect(&json, exit::OK);
    let only_tutor = svcauth(
        &args(&words("keys list --service tutor-service --json")),
        &aws,
        NOW,
    )
    .await;
    expect(&only_tutor, exit::OK);

    let docs = [
        read_param(&c, &format!("{PATH}/tutor-service")).await,
        read_param(&c, &format!("{PATH}/admin-service")).await,
    ];
    for out in [&table.stdout, &json.stdout, &table.stderr, &json.stderr] {
        for key in &keys {
            assert!(!out.contains(key.as_str()), "a key is listed");
            let hash = service_auth::ApiKey::parse(key).unwrap().hash().to_hex();
            assert!(!out.contains(&hash), "a hash is listed");
            assert!(docs.iter().any(|d| d.contains(&hash)));
        }
        assert!(!out.contains("sha256"));
    }
    assert!(table.stdout.starts_with("SERVICE"), "{}", table.stdout);
    assert!(table.stdout.contains("in 10 days"), "{}", table.stdout);
    assert!(
        table.stdout.contains("overdue by 10 days"),
        "{}",
        table.stdout
    );
    assert_eq!(
        key_ids(&json.stdout, "tutor-service"),
        vec![key_id(&keys[0])]
    );
    assert_eq!(
        key_ids(&json.stdout, "admin-service"),
        vec![key_id(&keys[1])]
    );
    let rows: Vec<Value> = serde_json::from_str(&only_tutor.stdout).unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["rotationDueInDays"], 10);
    assert_eq!(rows[0]["status"], "active");

    let missing = svcauth(&args(&words("keys list --service nobody")), &aws, NOW).await;
    expect(&missing, exit::NOT_FOUND);
    let elsewhere = svcauth(&["--env", "prod", "keys", "list"], &aws, NOW).await;
    expect(&elsewhere, exit::OK);
    assert!(
        elsewhere.stderr.contains("no service documents"),
        "{elsewhere:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn import_legacy_makes_the_old_keys_work_without_any_clear_value_in_a_parameter() {
    let (_moto, c, aws) = moto_ssm();
    let legacy = "/test/identity-service/service-api-keys";
    let tutor_key = "Q".repeat(32) + &"7".repeat(32);
    let admin_key = "a1".repeat(32);
    put_legacy_map(
        &c,
        legacy,
        &[(&tutor_key, "tutor-service"), (&admin_key, "admin-service")],
    )
    .await;
    // tutor-service already has a document with its permissions (and a product key).
    new_tutor_key(&aws, NOW).await;

    let dry = svcauth(
        &args(&[
            "keys",
            "import-legacy",
            "--from-parameter",
            legacy,
            "--dry-run",
        ]),
        &aws,
        NOW,
    )
    .await;
    expect(&dry, exit::OK);
    assert!(dry.stderr.contains("would import"), "{dry:?}");
    let before = all_params(&c).await;
    assert_eq!(
        before
            .iter()
            .filter(|(n, _, _)| !n.starts_with("/svcauth/test/index/"))
            .count(),
        2,
        "a dry run wrote something: {before:?}"
    );

    // admin-service has no document: it takes --permissions; tutor-service keeps its own.
    let run = svcauth(
        &args(&[
            "keys",
            "import-legacy",
            "--from-parameter",
            legacy,
            "--permissions",
            "* /internal/*",
            "--api",
            "identity",
        ]),
        &aws,
        NOW,
    )
    .await;
    expect(&run, exit::OK);
    assert!(run.stderr.contains("SVCAUTH_LEGACY_PARAMETER"), "{run:?}");
    assert!(run.stderr.contains("left in place"), "{run:?}");

    // The authorizer, with no legacy parameter configured, accepts both legacy keys.
    let clock = TestClock::at(NOW + 10);
    let store = ssm_authorizer(&c, &clock);
    assert_accepted(&store, &tutor_key, "tutor-service").await;
    assert_accepted(&store, &admin_key, "admin-service").await;
    let tutor_doc = read_param(&c, &format!("{PATH}/tutor-service")).await;
    let doc: Value = serde_json::from_str(&tutor_doc).unwrap();
    assert_eq!(
        doc["grants"][0]["routes"].as_array().unwrap().len(),
        2,
        "tutor-service keeps its permissions"
    );
    let admin_doc: Value =
        serde_json::from_str(&read_param(&c, &format!("{PATH}/admin-service")).await).unwrap();
    assert_eq!(
        admin_doc["grants"],
        serde_json::json!([{"apis": ["identity"], "routes": ["* /internal/*"]}])
    );

    // No parameter but the legacy one (left in place) holds a clear legacy key.
    for (name, value, _) in all_params(&c).await {
        if name != legacy {
            assert!(
                !value.contains(&tutor_key) && !value.contains(&admin_key),
                "{name} holds a clear key"
            );
        }
    }
    assert!(!run.stderr.contains(&tutor_key) && !run.stdout.contains(&tutor_key));

    // Running it again changes nothing.
    let again = svcauth(
        &args(&["keys", "import-legacy", "--from-parameter", legacy]),
        &aws,
        NOW,
    )
    .await;
    expect(&again, exit::NOT_ACCEPTED);
    assert!(again.stderr.contains("nothing to do"), "{again:?}");
    let missing = svcauth(
        &args(&words("keys import-legacy --from-parameter /nope")),
        &aws,
        NOW,
    )
    .await;
    expect(&missing, exit::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_reads_the_key_from_stdin_and_answers_as_the_authorizer_would() {
    let (_moto, _, aws) = moto_ssm();
    let key = new_tutor_key(&aws, NOW).await;

    let ok = svcauth_stdin(
        &args(&[
            "keys",
            "check",
            "--service",
            "tutor-service",
            "--json",
            "--route",
            "GET /internal/users/42",
            "--api",
            "identity",
        ]),
        &aws,
        NOW,
        &format!("{key}\n"),
    )
    .await;
    expect(&ok, exit::OK);
    let answer: Value = serde_json::from_str(&ok.stdout).unwrap();
    assert_eq!(answer["accepted"], true);
    assert_eq!(answer["reason"], "permitted");
    assert_eq!(answer["keyId"], key_id(&key));
    assert_eq!(answer["permissions"][0], "GET /internal/users/*");
    assert!(!ok.stdout.contains(&key) && !ok.stderr.contains(&key));

    let forbidden_route = svcauth_stdin(
        &args(&[
            "keys",
            "check",
            "--service",
            "tutor-service",
            "--route",
            "POST /internal/users",
            "--api",
            "identity",
        ]),
        &aws,
        NOW,
        &key,
    )
    .await;
    expect(&forbidden_route, exit::NOT_ACCEPTED);
    assert!(
        forbidden_route.stdout.contains("route_not_permitted"),
        "{forbidden_route:?}"
    );

    let other = svcauth_stdin(
        &args(&words("keys check --service admin-service")),
        &aws,
        NOW,
        &key,
    )
    .await;
    expect(&other, exit::NOT_ACCEPTED);
    assert!(other.stdout.contains("other_service"), "{other:?}");

    let typo = format!(
        "{}{}",
        &key[..key.len() - 1],
        if key.ends_with('x') { 'y' } else { 'x' }
    );
    let bad = svcauth_stdin(
        &args(&words("keys check --service tutor-service")),
        &aws,
        NOW,
        &typo,
    )
    .await;
    expect(&bad, exit::NOT_ACCEPTED);
    assert!(bad.stdout.contains("malformed_key"), "{bad:?}");

    svcauth(
        &args(&[
            "keys",
            "revoke",
            "--service",
            "tutor-service",
            "--key-id",
            &key_id(&key),
        ]),
        &aws,
        NOW,
    )
    .await;
    let revoked = svcauth_stdin(
        &args(&words("keys check --service tutor-service")),
        &aws,
        NOW,
        &key,
    )
    .await;
    expect(&revoked, exit::NOT_ACCEPTED);
    assert!(revoked.stdout.contains("revoked_key"), "{revoked:?}");

    let empty = svcauth_stdin(
        &args(&words("keys check --service tutor-service")),
        &aws,
        NOW,
        "",
    )
    .await;
    expect(&empty, exit::USAGE);
}

/// Several operators create keys for the same service at the same moment, each with
/// its own SSM client, while another revokes an existing key: every created key is in
/// the final document and works, and the revocation stays.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prune_removes_only_records_of_keys_that_ended_before_the_cutoff() {
    let (_moto, c, aws) = moto_ssm();
    let day = 86_400;
    let first = new_tutor_key(&aws, NOW).await;
    let create_admin = words("keys create --service admin-service --deliver stdout");
    let run = svcauth(
        &args(
            &[
                &create_admin[..],
                &["--permissions", "* /internal/*", "--api", "identity"],
            ]
            .concat(),
        ),
        &aws,
        NOW,
    )
    .await;
    expect(&run, exit::OK);
    let admin = run.delivered_key();
    let run = svcauth(
        &args(&words(
            "keys rotate --service tutor-service --grace 1h --deliver stdout",
        )),
        &aws,
        NOW + 60,
    )
    .await;
    expect(&run, exit::OK);
    let second = run.delivered_key();
    let revoke = format!(
        "keys revoke --service tutor-service --key-id {}",
        key_id(&second)
    );
    let run = svcauth(&args(&words(&revoke)), &aws, NOW + 2 * day + 3600).await;
    expect(&run, exit::OK);

    // At NOW + 3d with --older-than 1d: the first tutor key (expired NOW + 1h) goes,
    // the second (revoked NOW + 2d 1h, less than a day before) stays, admin's is usable.
    let t = NOW + 3 * day;
    let prune = words("keys prune --older-than 1d");
    let run = svcauth(&args(&prune), &aws, t).await;
    expect(&run, exit::OK);
    assert!(
        run.stderr.contains(&format!(
            "removed 1 record(s) of tutor-service: {}; 1 left",
            key_id(&first)
        )),
        "{run:?}"
    );
    assert!(!run.stderr.contains("admin-service"), "{run:?}");
    let list = svcauth(&args(&words("keys list --json")), &aws, t).await;
    assert_eq!(
        key_ids(&list.stdout, "tutor-service"),
        vec![key_id(&second)]
    );
    assert_eq!(key_ids(&list.stdout, "admin-service"), vec![key_id(&admin)]);
    let run = svcauth(&args(&prune), &aws, t).await;
    expect(&run, exit::NOT_ACCEPTED);

    // The authorizer: admin's key works, tutor's pruned and revoked keys do not.
    let clock = TestClock::at(t);
    let store = ssm_authorizer(&c, &clock);
    assert_accepted(&store, &admin, "admin-service").await;
    assert_refused(&store, &first).await;
    assert_refused(&store, &second).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_writers_lose_no_key() {
    let (moto, c, aws) = moto_ssm();
    let endpoint = moto.endpoint();
    let first = new_tutor_key(&aws, NOW).await;
    let first_id = key_id(&first);

    const WRITERS: usize = 6;
    let start = std::sync::Arc::new(tokio::sync::Barrier::new(WRITERS + 1));
    let mut tasks = Vec::new();
    for _ in 0..WRITERS {
        let aws = Aws::Client(moto_client(&endpoint));
        let start = start.clone();
        tasks.push(tokio::spawn(async move {
            start.wait().await;
            svcauth(
                &args(&words(
                    "keys create --service tutor-service --deliver stdout",
                )),
                &aws,
                NOW + 5,
            )
            .await
        }));
    }
    let revoker = {
        let aws = Aws::Client(moto_client(&endpoint));
        let start = start.clone();
        let id = first_id.clone();
        tokio::spawn(async move {
            start.wait().await;
            svcauth(
                &args(&words(&format!(
                    "keys revoke --service tutor-service --key-id {id}"
                ))),
                &aws,
                NOW + 5,
            )
            .await
        })
    };
    let mut created = Vec::new();
    let mut merged = 0;
    for t in tasks {
        let run = t.await.unwrap();
        expect(&run, exit::OK);
        merged += run
            .stderr
            .matches("others wrote to the same service")
            .count();
        created.push(run.delivered_key());
    }
    expect(&revoker.await.unwrap(), exit::OK);
    eprintln!("writes that merged a concurrent change: {merged}");
    assert!(
        merged > 0,
        "the writers never overlapped: the test did not exercise a conflict"
    );

    let list = svcauth(
        &args(&words("keys list --json")),
        &Aws::Client(c.clone()),
        NOW + 10,
    )
    .await;
    let ids = key_ids(&list.stdout, "tutor-service");
    assert_eq!(ids.len(), WRITERS + 1, "{ids:?}");
    let clock = TestClock::at(NOW + 10);
    let store = ssm_authorizer(&c, &clock);
    for key in &created {
        assert!(ids.contains(&key_id(key)));
        assert_accepted(&store, key, "tutor-service").await;
    }
    assert_refused(&store, &first).await;
}

/// Issue 11 item 3: a store written before the key id index gets its entries from
/// `keys reindex`; the entries name the service holding each key, are never
/// overwritten, and a second run has nothing to do.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reindex_writes_the_missing_key_id_index_entries_once() {
    let (_moto, c, aws) = moto_ssm();
    let key = new_tutor_key(&aws, NOW).await;
    let entry = format!("/svcauth/test/index/{}", key_id(&key));
    assert_eq!(read_param(&c, &entry).await, "tutor-service");
    // As if written before the index: the entry is gone.
    c.delete_parameter().name(&entry).send().await.unwrap();

    let dry = svcauth(&args(&["keys", "reindex", "--dry-run"]), &aws, NOW).await;
    expect(&dry, exit::OK);
    assert!(
        dry.stderr
            .contains("would write 1 index entry of tutor-service"),
        "{dry:?}"
    );
    assert!(!all_params(&c).await.iter().any(|(n, _, _)| *n == entry));

    let run = svcauth(&args(&["keys", "reindex"]), &aws, NOW).await;
    expect(&run, exit::OK);
    assert_eq!(read_param(&c, &entry).await, "tutor-service");
    assert!(!run.stderr.contains(&key), "{run:?}");

    let again = svcauth(&args(&["keys", "reindex"]), &aws, NOW).await;
    expect(&again, exit::NOT_ACCEPTED);
    assert!(again.stderr.contains("nothing to do"), "{again:?}");

    // An entry naming another service is reported, never overwritten.
    c.delete_parameter().name(&entry).send().await.unwrap();
    c.put_parameter()
        .name(&entry)
        .value("admin-service")
        .r#type(ParameterType::String)
        .send()
        .await
        .unwrap();
    let conflict = svcauth(&args(&["keys", "reindex"]), &aws, NOW).await;
    assert!(
        conflict.stderr.contains("names \"admin-service\""),
        "{conflict:?}"
    );
    assert_eq!(read_param(&c, &entry).await, "admin-service");
}
