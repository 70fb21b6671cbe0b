//! Issue 9's key-lifecycle holes, each with the real CLI, the real authorizer and a
//! real moto_server: a revoked legacy key after `keys prune` (item 1), a revocation
//! against a concurrent writer that dies after its put or whose merge cannot read the
//! history (item 2), and the customer-managed KMS key on every SecureString write.

use std::time::Duration;

use crate::common::*;
use authorizer::KeySource;
use keystore_ssm::aws_sdk_ssm::types::ParameterType;
use keystore_ssm::SsmKeyStore;
use service_auth::KeyStatus;
use svcauth::{exit, Aws};
use test_support::{Fault, SsmFaults};

const LEGACY: &str = "/test/identity-service/service-api-keys";

/// The authorizer with the legacy map still configured, as during a migration.
fn legacy_authorizer(
    client: &keystore_ssm::aws_sdk_ssm::Client,
    clock: &TestClock,
) -> authorizer::CachedStore {
    authorizer(
        KeySource::Ssm(
            SsmKeyStore::new(client.clone(), PATH)
                .unwrap()
                .with_legacy_parameter(Some(LEGACY.into())),
        ),
        clock,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn legacy_key_stays_revoked_after_prune() {
    let (_moto, c, aws) = moto_ssm();
    let tutor_key = "Q".repeat(32) + &"7".repeat(32);
    let admin_key = "a1".repeat(32);
    put_legacy_map(
        &c,
        LEGACY,
        &[(&tutor_key, "tutor-service"), (&admin_key, "admin-service")],
    )
    .await;
    // The migration runbook: import, then revoke one imported key and rotate another.
    for (service, perms) in [
        ("tutor-service", TUTOR_PERMS),
        ("admin-service", "* /internal/*"),
    ] {
        let run = svcauth(
            &args(&[
                "keys",
                "import-legacy",
                "--from-parameter",
                LEGACY,
                "--service",
                service,
                "--permissions",
                perms,
                "--api",
                "identity",
            ]),
            &aws,
            NOW,
        )
        .await;
        expect(&run, exit::OK);
    }
    let revoke = format!(
        "keys revoke --service tutor-service --key-id {}",
        key_id(&tutor_key)
    );
    expect(
        &svcauth(&args(&words(&revoke)), &aws, NOW + 60).await,
        exit::OK,
    );
    let rotated = svcauth(
        &args(&words(
            "keys rotate --service admin-service --grace 1h --deliver stdout",
        )),
        &aws,
        NOW + 60,
    )
    .await;
    expect(&rotated, exit::OK);
    let new_admin_key = rotated.delivered_key();

    // Both ended records are pruned while SVCAUTH_LEGACY_PARAMETER still names the map.
    let t = NOW + 3 * 3600;
    let prune = svcauth(&args(&words("keys prune --older-than 0s")), &aws, t).await;
    expect(&prune, exit::OK);
    let list = svcauth(&args(&words("keys list --json")), &aws, t).await;
    assert!(
        !list.stdout.contains(&key_id(&tutor_key)) && !list.stdout.contains(&key_id(&admin_key)),
        "the records are gone: {list:?}"
    );

    let clock = TestClock::at(t + 10);
    let store = legacy_authorizer(&c, &clock);
    assert_refused(&store, &tutor_key).await;
    assert_refused(&store, &admin_key).await;
    assert_accepted(&store, &new_admin_key, "admin-service").await;

    // `keys check` with the legacy map agrees with the authorizer.
    let check = svcauth_stdin(
        &args(&[
            "keys",
            "check",
            "--service",
            "tutor-service",
            "--legacy-parameter",
            LEGACY,
        ]),
        &aws,
        t,
        &tutor_key,
    )
    .await;
    expect(&check, exit::NOT_ACCEPTED);
    assert!(check.stdout.contains("revoked_key"), "{check:?}");

    // Importing the map again does not bring them back either.
    let again = svcauth(
        &args(&["keys", "import-legacy", "--from-parameter", LEGACY]),
        &aws,
        t,
    )
    .await;
    assert!(again.stderr.contains("not importing"), "{again:?}");
    clock.advance(301);
    assert_refused(&store, &tutor_key).await;
    assert_refused(&store, &admin_key).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revocation_survives_a_writer_that_dies_after_its_put() {
    let (_moto, c, aws) = moto_ssm();
    let key = new_tutor_key(&aws, NOW).await;
    let id = key_id(&key);

    // A second writer read the document before the revocation...
    let other = SsmKeyStore::new(c.clone(), PATH).unwrap();
    let (stale, _) = other.read_document("tutor-service").await.unwrap().unwrap();
    // ...the operator revokes the key, and svcauth reports success...
    let revoke = format!("keys revoke --service tutor-service --key-id {id}");
    let run = svcauth(&args(&words(&revoke)), &aws, NOW + 20).await;
    expect(&run, exit::OK);
    // ...then the second writer's put lands and it dies before merging anything.
    test_support::put_service_document(&c, PATH, &stale).await;
    let (doc, _) = other.read_document("tutor-service").await.unwrap().unwrap();
    assert_eq!(
        doc.key(&service_auth::KeyId::parse(&id).unwrap())
            .unwrap()
            .status,
        KeyStatus::Active,
        "the document now says the key is active"
    );

    // No authorizer that loads from now on accepts it...
    let clock = TestClock::at(NOW + 30);
    assert_refused(&ssm_authorizer(&c, &clock), &key).await;
    // ...nor after later writes built on the resurrected version.
    let run = svcauth(
        &args(&words(
            "keys create --service tutor-service --deliver stdout",
        )),
        &aws,
        NOW + 40,
    )
    .await;
    expect(&run, exit::OK);
    let fresh = run.delivered_key();
    let store = ssm_authorizer(&c, &clock);
    assert_refused(&store, &key).await;
    assert_accepted(&store, &fresh, "tutor-service").await;
    let check = svcauth_stdin(
        &args(&words("keys check --service tutor-service")),
        &aws,
        NOW + 50,
        &key,
    )
    .await;
    assert!(check.stdout.contains("revoked_key"), "{check:?}");
    let list = svcauth(&args(&words("keys list --json")), &aws, NOW + 50).await;
    let rows: Vec<serde_json::Value> = serde_json::from_str(&list.stdout).unwrap();
    let row = rows.iter().find(|r| r["keyId"] == id.as_str()).unwrap();
    assert_eq!(row["status"], "revoked", "{row}");
    // Revoking again records it in the document; the marker was there all along.
    let again = svcauth(&args(&words(&revoke)), &aws, NOW + 60).await;
    expect(&again, exit::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_merge_that_cannot_read_the_history_is_an_error_that_says_what_to_run() {
    let (moto, c, aws) = moto_ssm();
    let endpoint = moto.endpoint();
    new_tutor_key(&aws, NOW).await;

    // Operator A's role may not read parameter history. Between A's read and A's put,
    // operator B runs a whole `keys create` of the same service.
    let faults = SsmFaults::new();
    faults.fail("GetParameterHistory", Fault::AccessDenied);
    let (tx, rx) = std::sync::mpsc::channel();
    let b_endpoint = endpoint.clone();
    faults.before_next("PutParameter", move || {
        let cmd = "keys create --service tutor-service --deliver stdout".to_owned();
        let run = run_elsewhere(cmd, b_endpoint, |e| Aws::Client(moto_client(e)), NOW + 5);
        tx.send(run).unwrap();
    });
    let a = svcauth(
        &args(&words(
            "keys create --service tutor-service --deliver stdout",
        )),
        &Aws::Client(faults.client(&endpoint)),
        NOW + 5,
    )
    .await;
    let b = rx.recv_timeout(Duration::from_secs(60)).unwrap();
    expect(&b, exit::OK);
    // A overwrote B's version and could not merge it: an error, never a success.
    expect(&a, exit::STORE);
    assert!(a.stdout.is_empty(), "A's key was never handed over: {a:?}");
    for needed in [
        "could not be read back to merge",
        "GetParameterHistory",
        "aws ssm get-parameter-history --name /svcauth/test/keys/tutor-service",
        "svcauth keys list --service tutor-service",
        "revoked for good",
        // Issue 19 A2: exactly what is safe and what may be lost.
        "Safe whatever happened: revocations, scheduled expiries",
        "brakes (`tokens brake`)",
        "May be lost: keys created there",
        "(`keys grant --remove`) can be back",
    ] {
        assert!(a.stderr.contains(needed), "{needed:?} missing: {a:?}");
    }
    assert_eq!(faults.calls("GetParameterHistory"), 1);
    // What the error warned of: B's key was lost from the document.
    let clock = TestClock::at(NOW + 10);
    assert_refused(&ssm_authorizer(&c, &clock), &b.delivered_key()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_securestring_write_uses_the_configured_kms_key() {
    let (_moto, c, aws) = moto_ssm();
    let kms = "alias/svcauth-test";
    let with_key = |cmd: &'static str| -> Vec<&'static str> {
        let mut v = args(&words(cmd));
        v.extend(["--kms-key-id", kms]);
        v
    };
    expect(
        &svcauth(
            &[
                &with_key("keys create --service tutor-service")[..],
                &["--permissions", TUTOR_PERMS, "--api", "identity"],
            ]
            .concat(),
            &aws,
            NOW,
        )
        .await,
        exit::OK,
    );
    // An overwrite (rotate writes the document twice and overwrites the delivery).
    expect(
        &svcauth(
            &with_key("keys rotate --service tutor-service --grace 1h"),
            &aws,
            NOW + 10,
        )
        .await,
        exit::OK,
    );
    let described = c.describe_parameters().send().await.unwrap();
    let secure: Vec<_> = described
        .parameters()
        .iter()
        .filter(|p| p.r#type() == Some(&ParameterType::SecureString))
        .collect();
    assert_eq!(secure.len(), 2, "{secure:?}");
    for p in secure {
        assert_eq!(p.key_id(), Some(kms), "{p:?}");
    }
    let bad = svcauth(
        &args(&["keys", "list", "--kms-key-id", "not a key"]),
        &aws,
        NOW,
    )
    .await;
    expect(&bad, exit::USAGE);
}

/// Issue 19 A2: what a writer that overwrites a document with an older version and
/// dies before merging it back leaves behind: the document as it was before the
/// command `change` makes (given the key id of the key delivered to tutor-service)
/// ran at `at`. Returns that key.
async fn lose_a_write(
    c: &keystore_ssm::aws_sdk_ssm::Client,
    change: impl FnOnce(&str) -> Vec<String>,
    at: u64,
) -> String {
    let aws = Aws::Client(c.clone());
    let key = new_tutor_key(&aws, NOW).await;
    let name = format!("{PATH}/tutor-service");
    let before = read_param(c, &name).await;
    let change = change(&key_id(&key));
    let change: Vec<&str> = change.iter().map(String::as_str).collect();
    expect(&svcauth(&args(&change), &aws, at).await, exit::OK);
    assert_ne!(
        read_param(c, &name).await,
        before,
        "the change is in the document"
    );
    c.put_parameter()
        .name(&name)
        .value(before)
        .r#type(ParameterType::SecureString)
        .overwrite(true)
        .send()
        .await
        .unwrap();
    key
}

fn owned(line: &str) -> Vec<String> {
    words(line).into_iter().map(str::to_owned).collect()
}

/// Issue 19 A2: `keys revoke --after` survives a writer that puts an older document
/// back and dies: the key's marker holds its end, on the by-key path and the full load.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scheduled_revocation_survives_a_lost_document_write() {
    let (_moto, c, _) = moto_ssm();
    let key = lose_a_write(
        &c,
        |id| {
            owned(&format!(
                "keys revoke --service tutor-service --key-id {id} --after 1h"
            ))
        },
        NOW,
    )
    .await;
    let clock = TestClock::at(NOW + 3599);
    assert_accepted(&ssm_authorizer(&c, &clock), &key, "tutor-service").await;
    let clock = TestClock::at(NOW + 3600);
    assert_refused(&ssm_authorizer(&c, &clock), &key).await;
    assert_refused(&ssm_authorizer(&c, &clock).with_key_index(false), &key).await;
}

/// Issue 19 A2: the end of a `keys rotate --grace` survives a lost document write.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_end_of_a_rotation_grace_survives_a_lost_document_write() {
    let (_moto, c, _) = moto_ssm();
    let old = lose_a_write(
        &c,
        |_| owned("keys rotate --service tutor-service --grace 2h --deliver stdout"),
        NOW + 10,
    )
    .await;
    let clock = TestClock::at(NOW + 10 + 7199);
    assert_accepted(&ssm_authorizer(&c, &clock), &old, "tutor-service").await;
    let clock = TestClock::at(NOW + 10 + 7200);
    assert_refused(&ssm_authorizer(&c, &clock), &old).await;
    assert_refused(&ssm_authorizer(&c, &clock).with_key_index(false), &old).await;
}

/// Issue 19 A2: `tokens brake` survives a lost document write: its marker is applied
/// by every standing read (the authorizer's here; the issuer reads the same).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_brake_survives_a_lost_document_write() {
    use authorizer::token::{SsmStandings, StandingSource};
    let (_moto, c, _) = moto_ssm();
    lose_a_write(
        &c,
        |_| owned("tokens brake --service tutor-service --at 2026-11-29T12:30:00Z"),
        NOW + 10,
    )
    .await;
    let standings = SsmStandings::new(
        SsmKeyStore::new(c.clone(), PATH).unwrap(),
        service_auth::cache::RefreshPolicy::default(),
        Duration::from_secs(30),
    );
    let standing = standings
        .standing("tutor-service", None, service_auth::UnixTime(NOW + 20))
        .await
        .unwrap();
    assert!(standing.known());
    assert_eq!(
        standing.tokens_not_before(),
        Some(service_auth::UnixTime(NOW + 1800))
    );
}
