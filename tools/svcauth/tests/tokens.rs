//! `svcauth tokens keys add | remove | list` and `tokens brake` against moto's KMS and
//! SSM: the key set they write is one the verifier loads, the signing key cannot be
//! removed, concurrent writers lose nothing, and the brake only moves later.

use std::time::Duration;

use keystore_ssm::aws_sdk_ssm::Client;
use serde_json::Value;
use service_auth::{ServiceDocument, UnixTime};
use service_token::KeySet;
use svcauth::{exit, Aws};
use test_support::{MotoServer, SsmFaults};
use token_kms::aws_sdk_kms;
use token_kms::aws_sdk_kms::types::{KeySpec, KeyUsageType};

use crate::common::*;

const JWKS: &str = "/svcauth/test/token/jwks";
const ALIAS: &str = "alias/svcauth-token-test";

/// A signing key (ECC P-256 or another spec) in moto's KMS.
async fn create_key(kms: &aws_sdk_kms::Client, spec: KeySpec) -> String {
    test_support::create_kms_key(kms, spec, KeyUsageType::SignVerify).await
}

/// Points the signing alias at `key`, as the platform stack does.
async fn alias_to(kms: &aws_sdk_kms::Client, key: &str) {
    kms.create_alias()
        .alias_name(ALIAS)
        .target_key_id(key)
        .send()
        .await
        .unwrap();
}

/// The kids in the stored key set, checked to load in the token verifier's KeySet.
async fn published(c: &Client) -> Vec<String> {
    let raw = read_param(c, JWKS).await;
    let keys = KeySet::from_json(raw.as_bytes()).unwrap();
    let v: Value = serde_json::from_str(&raw).unwrap();
    let kids: Vec<String> = v["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(keys.len(), kids.len(), "every published key is usable");
    kids
}

/// Runs `cmd`; a `tokens keys` command names the signing alias, as the platform's
/// operators pass its TokenSigningKeyAlias output.
async fn tokens(cmd: &str, aws: &Aws) -> Run {
    let mut cmd = words(cmd);
    if cmd.starts_with(&["tokens", "keys"]) && !cmd.contains(&"--help") {
        cmd.extend(["--signing-alias", ALIAS]);
    }
    svcauth(&args(&cmd), aws, NOW).await
}

/// The signing alias has no default (the platform's is named after its generated stack
/// name): `keys remove` refuses without it, `keys list` lists with SIGNING unknown.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_signing_alias_remove_refuses_and_list_cannot_mark() {
    let moto = MotoServer::start();
    let aws = moto_clients(&moto.endpoint());
    let Aws::Clients { kms, .. } = &aws else {
        unreachable!()
    };
    let current = create_key(kms, KeySpec::EccNistP256).await;
    let old = create_key(kms, KeySpec::EccNistP256).await;
    alias_to(kms, &current).await;
    for key in [&current, &old] {
        expect(
            &tokens(&format!("tokens keys add --key {key}"), &aws).await,
            exit::OK,
        );
    }
    let run = svcauth(
        &args(&words(&format!("tokens keys remove --kid {old}"))),
        &aws,
        NOW,
    )
    .await;
    expect(&run, exit::USAGE);
    assert!(run.stderr.contains("--signing-alias"), "{run:?}");
    assert!(
        run.stderr.contains("alias/PLATFORM_STACK/token-signing"),
        "{run:?}"
    );
    let run = svcauth(&args(&words("tokens keys list --json")), &aws, NOW).await;
    expect(&run, exit::OK);
    let rows: Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(rows.as_array().unwrap().len(), 2, "{run:?}");
    assert!(
        rows.as_array()
            .unwrap()
            .iter()
            .all(|r| r["signing"].is_null()),
        "{run:?}"
    );
    assert!(
        run.stderr
            .contains("SIGNING is unknown without --signing-alias"),
        "{run:?}"
    );
    // Named, the key the alias points to is marked and the other one can go.
    let run = tokens(&format!("tokens keys remove --kid {old}"), &aws).await;
    expect(&run, exit::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_are_published_listed_and_retired_but_never_the_signing_key() {
    let moto = MotoServer::start();
    let aws = moto_clients(&moto.endpoint());
    let Aws::Clients { ssm, kms } = &aws else {
        unreachable!()
    };
    let current = create_key(kms, KeySpec::EccNistP256).await;
    let next = create_key(kms, KeySpec::EccNistP256).await;
    kms.create_alias()
        .alias_name(ALIAS)
        .target_key_id(&current)
        .send()
        .await
        .unwrap();

    let run = tokens("tokens keys list", &aws).await;
    expect(&run, exit::NOT_FOUND);
    assert!(
        run.stderr
            .contains("svcauth tokens keys add --key alias/svcauth-token-test"),
        "{run:?}"
    );

    // Added through the alias: published under the KMS key id.
    let run = tokens(&format!("tokens keys add --key {ALIAS}"), &aws).await;
    expect(&run, exit::OK);
    assert!(
        run.stderr.contains(&format!("published key {current}")),
        "{run:?}"
    );
    assert_eq!(published(ssm).await, std::slice::from_ref(&current));
    let run = tokens(&format!("tokens keys add --key {current}"), &aws).await;
    expect(&run, exit::NOT_ACCEPTED);
    assert!(run.stderr.contains("already published"), "{run:?}");
    let run = tokens(&format!("tokens keys add --key {next} --dry-run"), &aws).await;
    expect(&run, exit::OK);
    assert_eq!(published(ssm).await.len(), 1, "a dry run writes nothing");
    let run = tokens(&format!("tokens keys add --key {next}"), &aws).await;
    expect(&run, exit::OK);
    assert!(run.stderr.contains("aws kms update-alias"), "{run:?}");
    assert_eq!(published(ssm).await, [current.clone(), next.clone()]);

    let run = tokens("tokens keys list", &aws).await;
    expect(&run, exit::OK);
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert!(lines[0].starts_with("KID"), "{run:?}");
    assert!(
        lines[1].starts_with(&current) && lines[1].ends_with("yes"),
        "{run:?}"
    );
    assert!(
        lines[2].starts_with(&next) && lines[2].ends_with("no"),
        "{run:?}"
    );
    let run = tokens("tokens keys list --json", &aws).await;
    expect(&run, exit::OK);
    let listed: Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(listed[0]["kid"], current.as_str());
    assert_eq!(listed[0]["signing"], true);
    assert_eq!(listed[1]["crv"], "P-256");
    assert_eq!(listed[1]["signing"], false);

    // The key the alias points to is refused, with what to do instead.
    let run = tokens(&format!("tokens keys remove --kid {current}"), &aws).await;
    expect(&run, exit::USAGE);
    for needed in ["points to", "update-alias", "expired"] {
        assert!(run.stderr.contains(needed), "{needed}: {run:?}");
    }
    assert_eq!(published(ssm).await.len(), 2);

    // Rotation: repoint the alias, then the previous key can go.
    kms.update_alias()
        .alias_name(ALIAS)
        .target_key_id(&next)
        .send()
        .await
        .unwrap();
    let run = tokens(&format!("tokens keys remove --kid {current}"), &aws).await;
    expect(&run, exit::OK);
    assert_eq!(published(ssm).await, std::slice::from_ref(&next));
    // A kid that is not published (removed, or never there) is "not found" (4), as an
    // unknown key id is in `keys revoke` (issue 19 B5).
    for kid in [current.as_str(), "nosuch"] {
        let run = tokens(&format!("tokens keys remove --kid {kid}"), &aws).await;
        expect(&run, exit::NOT_FOUND);
        assert!(run.stderr.contains("tokens keys list"), "{run:?}");
    }

    // Bad input: each a clear refusal, nothing written.
    let p384 = create_key(kms, KeySpec::EccNistP384).await;
    let cases = [
        (
            format!("tokens keys add --key {p384}"),
            exit::USAGE,
            "ECC_NIST_P256",
        ),
        (
            "tokens keys add --key alias/none".to_owned(),
            exit::NOT_FOUND,
            "alias/none",
        ),
        (
            "tokens keys remove --kid k\u{e9}y".to_owned(),
            exit::USAGE,
            "not a key id",
        ),
    ];
    for (cmd, code, needed) in cases {
        let run = tokens(&cmd, &aws).await;
        expect(&run, code);
        assert!(run.stderr.contains(needed), "{cmd}: {run:?}");
    }
    assert_eq!(published(ssm).await, std::slice::from_ref(&next));

    // A parameter that is not a key set is reported, never overwritten blindly.
    test_support::put_secure(ssm, JWKS, "[oops").await;
    let run = tokens(&format!("tokens keys add --key {next}"), &aws).await;
    expect(&run, exit::STORE);
    assert!(run.stderr.contains("is not a JWKS"), "{run:?}");

    let help = tokens("tokens keys add --help", &aws).await;
    assert!(
        help.stderr.contains("BEFORE pointing the signing alias"),
        "{help:?}"
    );
    assert!(help.stderr.contains("--jwks-parameter"), "{help:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_key_set_writers_lose_nothing() {
    let moto = MotoServer::start();
    let endpoint = moto.endpoint();
    let aws = moto_clients(&endpoint);
    let Aws::Clients { ssm, kms } = &aws else {
        unreachable!()
    };
    let a = create_key(kms, KeySpec::EccNistP256).await;
    let b = create_key(kms, KeySpec::EccNistP256).await;
    let c = create_key(kms, KeySpec::EccNistP256).await;
    let d = create_key(kms, KeySpec::EccNistP256).await;

    // Both create the parameter at once: B's writer gets there first.
    let faults = SsmFaults::new();
    let (tx, rx) = std::sync::mpsc::channel();
    let e = endpoint.clone();
    let cmd = format!("tokens keys add --key {b}");
    faults.before_next("PutParameter", move || {
        tx.send(run_elsewhere(cmd, e, moto_clients, NOW)).unwrap();
    });
    let with_faults = Aws::Clients {
        ssm: faults.client(&endpoint),
        kms: kms.clone(),
    };
    let run = tokens(&format!("tokens keys add --key {a}"), &with_faults).await;
    expect(&run, exit::OK);
    expect(&rx.recv_timeout(Duration::from_secs(60)).unwrap(), exit::OK);
    let mut got = published(ssm).await;
    got.sort();
    let mut want = vec![a.clone(), b.clone()];
    want.sort();
    assert_eq!(got, want);

    // Between this writer's read and its write, another adds C: the later write
    // (overwriting C's version) merges it back.
    let (tx, rx) = std::sync::mpsc::channel();
    let e = endpoint.clone();
    let cmd = format!("tokens keys add --key {c}");
    faults.before_next("PutParameter", move || {
        tx.send(run_elsewhere(cmd, e, moto_clients, NOW)).unwrap();
    });
    let run = tokens(&format!("tokens keys add --key {d}"), &with_faults).await;
    expect(&run, exit::OK);
    expect(&rx.recv_timeout(Duration::from_secs(60)).unwrap(), exit::OK);
    let mut got = published(ssm).await;
    got.sort();
    let mut want = vec![a.clone(), b.clone(), c.clone(), d.clone()];
    want.sort();
    assert_eq!(got, want);

    // A removal racing an addition: the removed key stays out, the added one in.
    kms.create_alias()
        .alias_name(ALIAS)
        .target_key_id(&a)
        .send()
        .await
        .unwrap();
    let e2 = create_key(kms, KeySpec::EccNistP256).await;
    let (tx, rx) = std::sync::mpsc::channel();
    let e = endpoint.clone();
    let cmd = format!("tokens keys add --key {e2}");
    faults.before_next("PutParameter", move || {
        tx.send(run_elsewhere(cmd, e, moto_clients, NOW)).unwrap();
    });
    let run = tokens(&format!("tokens keys remove --kid {b}"), &with_faults).await;
    expect(&run, exit::OK);
    expect(&rx.recv_timeout(Duration::from_secs(60)).unwrap(), exit::OK);
    let got = published(ssm).await;
    assert!(!got.contains(&b), "{got:?}");
    assert!(
        got.contains(&e2) && got.contains(&a) && got.contains(&c),
        "{got:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_brake_only_moves_later_and_survives_concurrent_writes() {
    let moto = MotoServer::start();
    let endpoint = moto.endpoint();
    let aws = Aws::Client(moto_client(&endpoint));
    let c = moto_client(&endpoint);
    new_tutor_key(&aws, NOW).await;
    let brake_of = |raw: String| ServiceDocument::from_json(&raw).unwrap().tokens_not_before;
    let doc_param = format!("{PATH}/tutor-service");

    let run = tokens("tokens brake --service tutor-service", &aws).await;
    expect(&run, exit::OK);
    assert!(
        run.stderr
            .contains("braked: tokens of tutor-service issued before 2026-11-29T12:00:00Z"),
        "{run:?}"
    );
    assert_eq!(
        brake_of(read_param(&c, &doc_param).await),
        Some(UnixTime(NOW))
    );

    // Earlier or equal: nothing to do; the brake stays.
    for at in ["now", "2026-11-29T11:00:00Z"] {
        let run = tokens(
            &format!("tokens brake --service tutor-service --at {at}"),
            &aws,
        )
        .await;
        expect(&run, exit::NOT_ACCEPTED);
        assert!(run.stderr.contains("only moves later"), "{run:?}");
    }
    assert_eq!(
        brake_of(read_param(&c, &doc_param).await),
        Some(UnixTime(NOW))
    );

    // Bad input: refused, nothing written.
    let cases = [
        (
            "tokens brake --service tutor-service --at tomorrow",
            exit::USAGE,
            "RFC 3339",
        ),
        (
            "tokens brake --service tutor-service --at 2027-06-01T00:00:00Z",
            exit::USAGE,
            "7 days",
        ),
        ("tokens brake --service Tutor", exit::USAGE, "service name"),
        (
            "tokens brake --service reports-service",
            exit::NOT_FOUND,
            "no document",
        ),
    ];
    for (cmd, code, needed) in cases {
        let run = tokens(cmd, &aws).await;
        expect(&run, code);
        assert!(run.stderr.contains(needed), "{cmd}: {run:?}");
    }

    // Another operator creates a key between this brake's read and write: both stay.
    let faults = SsmFaults::new();
    let (tx, rx) = std::sync::mpsc::channel();
    let e = endpoint.clone();
    faults.before_next("PutParameter", move || {
        let cmd = "keys create --service tutor-service --deliver stdout".to_owned();
        let run = run_elsewhere(cmd, e, |e| Aws::Client(moto_client(e)), NOW + 5);
        tx.send(run).unwrap();
    });
    let run = svcauth(
        &args(&words(
            "tokens brake --service tutor-service --at 2026-11-29T12:30:00Z",
        )),
        &Aws::Client(faults.client(&endpoint)),
        NOW + 5,
    )
    .await;
    expect(&run, exit::OK);
    assert!(
        run.stderr
            .contains("gets no token at all until 2026-11-29T12:30:00Z"),
        "{run:?}"
    );
    expect(&rx.recv_timeout(Duration::from_secs(60)).unwrap(), exit::OK);
    let doc = ServiceDocument::from_json(&read_param(&c, &doc_param).await).unwrap();
    assert_eq!(doc.tokens_not_before, Some(UnixTime(NOW + 1800)));
    assert_eq!(doc.keys.len(), 2, "the concurrent key survived");

    let help = tokens("tokens brake --help", &aws).await;
    for needed in ["only ever moves later", "until they expire", "--at <TIME>"] {
        assert!(help.stderr.contains(needed), "{needed}: {help:?}");
    }
}

/// Issue 16 §2: a token's routes are cut to its service's current grants, read with
/// its standing, so `keys grant --remove` ends a route of tokens already issued within
/// the standing's TTL (`SVCAUTH_CACHE_TTL_SECS`, 300 s: the bound the command states),
/// not at the token's expiry. Everything real: the key set published by `svcauth tokens
/// keys add` from moto's KMS, the API registered and the grant removed by svcauth, the
/// token signed by KMS, decided by the authorizer reading SSM.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removed_grant_ends_a_tokens_route_within_the_standing_ttl() {
    use authorizer::config::{JwksConfig, TokenConfig};
    use authorizer::token::{JwksSource, SsmStandings};
    use authorizer::{Accept, ApiNames, Authorizer, CachedStore, KeySource, TokenAuth};
    use keystore_ssm::SsmKeyStore;
    use service_auth::cache::RefreshPolicy;
    use service_token::{Permission, Proof, TokenClaims};

    const API: &str = "a1b2c3d4e5";
    const ARN: &str =
        "arn:aws:execute-api:us-east-1:123456789012:a1b2c3d4e5/prod/GET/internal/users/42";
    let moto = MotoServer::start();
    let aws = moto_clients(&moto.endpoint());
    let Aws::Clients { ssm, kms } = &aws else {
        unreachable!()
    };
    let signing = create_key(kms, KeySpec::EccNistP256).await;
    alias_to(kms, &signing).await;
    for cmd in [
        format!("tokens keys add --key {ALIAS}"),
        format!("apis register --api-id {API} --name identity"),
    ] {
        expect(&tokens(&cmd, &aws).await, exit::OK);
    }
    let run = svcauth(&args(&create_tutor(&["--deliver", "stdout"])), &aws, NOW).await;
    expect(&run, exit::OK);
    let key_id = key_id(&run.delivered_key());

    // A token as the issuer signs it: an hour long, the service's grant.
    let claims = TokenClaims {
        iss: "svcauth:test".into(),
        sub: "tutor-service".into(),
        aud: vec!["identity".into()],
        exp: NOW + 3600,
        nbf: NOW,
        iat: NOW,
        jti: "jti-grant-removed".into(),
        permissions: vec![Permission::new(["identity"], ["GET /internal/users/*"])],
        proof: Proof::ApiKey { key_id },
    };
    let token = token_kms::KmsSigner::resolve(kms.clone(), ALIAS)
        .await
        .unwrap()
        .sign(&claims)
        .await
        .unwrap();

    // The authorizer as deployed with SVCAUTH_ACCEPT=token.
    let clock = TestClock::at(NOW + 10);
    let ssm_store = SsmKeyStore::new(ssm.clone(), PATH).unwrap();
    let store = CachedStore::new(
        KeySource::Ssm(ssm_store.clone()),
        RefreshPolicy::default(),
        Duration::from_secs(30),
        clock.unix_clock(),
    )
    .with_api_names(ApiNames::ssm(
        ssm.clone(),
        "/svcauth/test/apis",
        RefreshPolicy::default(),
    ));
    let config = TokenConfig {
        issuer: "svcauth:test".into(),
        jwks: JwksConfig::Ssm {
            parameter: JWKS.into(),
        },
        min_remaining_secs: 60,
    };
    let verifier = TokenAuth::new(
        &config,
        JwksSource::Ssm {
            client: ssm.clone(),
            parameter: JWKS.into(),
        },
    );
    let a = Authorizer::new(store, Accept::Token, Some(verifier)).with_standings(
        SsmStandings::new(ssm_store, RefreshPolicy::default(), Duration::from_secs(30)),
    );
    a.init().await;
    let event = {
        let mut ev = request("unused");
        ev["headers"] = serde_json::json!({ "Authorization": format!("Bearer {token}") });
        ev["multiValueHeaders"] =
            serde_json::json!({ "Authorization": [format!("Bearer {token}")] });
        ev["methodArn"] = serde_json::json!(ARN);
        ev
    };
    let allowed = |resp: Result<authorizer::Response, authorizer::Unauthorized>| {
        gateway_allows(&resp.expect("the token verifies").to_aws(), ARN)
    };
    assert!(allowed(a.handle(&event).await), "granted");

    let removed = svcauth(
        &args(&words(
            "keys grant --service tutor-service --api identity --remove",
        )),
        &aws,
        NOW + 20,
    )
    .await;
    expect(&removed, exit::OK);
    assert!(
        removed
            .stderr
            .contains("within its store TTL (SVCAUTH_CACHE_TTL_SECS, default 300 s), for API keys and for tokens already issued alike"),
        "{removed:?}"
    );
    // The standing read at NOW + 10 answers until its TTL ends ...
    clock.set(NOW + 10 + 299);
    assert!(allowed(a.handle(&event).await), "within the TTL");
    // ... then the route is gone, though the token is good for another 50 minutes.
    clock.set(NOW + 10 + 300);
    assert!(
        !allowed(a.handle(&event).await),
        "the removed grant still let it in"
    );
}

/// Issue 19 A3: what `tokens keys remove` says is the bound the authorizer keeps
/// (service_token::cache::DEFAULT_MAX_AGE), and the key set is the trusted form.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removing_a_key_states_the_bound_the_verifier_keeps_and_the_key_set_is_a_securestring() {
    let moto = MotoServer::start();
    let aws = moto_clients(&moto.endpoint());
    let Aws::Clients { ssm, kms } = &aws else {
        unreachable!()
    };
    let old = create_key(kms, KeySpec::EccNistP256).await;
    let new = create_key(kms, KeySpec::EccNistP256).await;
    for key in [&old, &new] {
        expect(
            &tokens(&format!("tokens keys add --key {key}"), &aws).await,
            exit::OK,
        );
    }
    // Without the signing alias nobody can tell which key signs: nothing is removed.
    let blind = tokens(&format!("tokens keys remove --kid {new}"), &aws).await;
    expect(&blind, exit::USAGE);
    assert!(blind.stderr.contains("--signing-alias"), "{blind:?}");
    alias_to(kms, &new).await;
    let p = ssm.get_parameter().name(JWKS).send().await.unwrap();
    assert_eq!(
        p.parameter().unwrap().r#type(),
        Some(&keystore_ssm::aws_sdk_ssm::types::ParameterType::SecureString)
    );
    let run = tokens(&format!("tokens keys remove --kid {old}"), &aws).await;
    expect(&run, exit::OK);
    let bound = format!(
        "within {} s",
        service_token::cache::DEFAULT_MAX_AGE.as_secs()
    );
    assert!(run.stderr.contains(&bound), "{bound}: {run:?}");
    assert!(run.stderr.contains("authorizer result TTL"), "{run:?}");
    let docs =
        std::fs::read_to_string(test_support::workspace_root().join("docs/tokens.md")).unwrap();
    assert!(
        docs.contains(&format!(
            "within {} s (`service_token::cache::DEFAULT_MAX_AGE`",
            service_token::cache::DEFAULT_MAX_AGE.as_secs()
        )),
        "docs/tokens.md states the same bound"
    );
}

/// Issue 16 §2 migration: a key set written the old way (a `String`) is not trusted;
/// `tokens keys add` replaces it with a SecureString holding only the key it adds and
/// names the other keys to add again; `remove` and `list` say what to run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_string_key_set_is_replaced_never_carried_over() {
    let moto = MotoServer::start();
    let aws = moto_clients(&moto.endpoint());
    let Aws::Clients { ssm, kms } = &aws else {
        unreachable!()
    };
    let signing = create_key(kms, KeySpec::EccNistP256).await;
    let forged = create_key(kms, KeySpec::EccNistP256).await;
    alias_to(kms, &signing).await;
    // The key set as an older svcauth wrote it (or anyone allowed to write it).
    let set = token_kms::key_set(kms, &[signing.as_str(), forged.as_str()])
        .await
        .unwrap();
    ssm.put_parameter()
        .name(JWKS)
        .value(serde_json::to_string(&set).unwrap())
        .r#type(keystore_ssm::aws_sdk_ssm::types::ParameterType::String)
        .send()
        .await
        .unwrap();
    let list = tokens("tokens keys list", &aws).await;
    expect(&list, exit::OK);
    assert!(
        list.stderr.contains("verifiers do NOT trust it"),
        "{list:?}"
    );
    let remove = tokens(&format!("tokens keys remove --kid {forged}"), &aws).await;
    expect(&remove, exit::STORE);
    assert!(
        remove
            .stderr
            .contains(&format!("svcauth tokens keys add --key {ALIAS}")),
        "{remove:?}"
    );
    let add = tokens(&format!("tokens keys add --key {ALIAS}"), &aws).await;
    expect(&add, exit::OK);
    assert!(
        add.stderr.contains("not carried over") && add.stderr.contains(&forged),
        "{add:?}"
    );
    assert_eq!(published(ssm).await, std::slice::from_ref(&signing));
    let p = ssm.get_parameter().name(JWKS).send().await.unwrap();
    assert_eq!(
        p.parameter().unwrap().r#type(),
        Some(&keystore_ssm::aws_sdk_ssm::types::ParameterType::SecureString)
    );
}
