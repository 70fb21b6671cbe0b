//! Issue 9 items 3 and 4 end to end: permission patterns as written and as applied,
//! and permissions scoped to named APIs. The real CLI writes to moto's SSM; the real
//! authorizer reads the documents and the API-name parameters from it.

use std::time::Duration;

use authorizer::{handle, ApiNames, CachedStore, KeySource};
use keystore_ssm::aws_sdk_ssm::types::ParameterType;
use keystore_ssm::aws_sdk_ssm::Client;
use keystore_ssm::SsmKeyStore;
use serde_json::{json, Value};
use service_auth::cache::RefreshPolicy;
use svcauth::{exit, Aws};

use crate::common::*;

const API_PATH: &str = "/svcauth/test/apis";
/// Our own API (registered as `identity`) and another team's (`billing`), by id.
const IDENTITY_API: &str = "idapi00001";
const BILLING_API: &str = "billapi001";

/// What an operator runs once an API is deployed: `svcauth apis register`.
async fn register_api(c: &Client, api_id: &str, name: &str) {
    let run = svcauth(
        &args(&["apis", "register", "--api-id", api_id, "--name", name]),
        &Aws::Client(c.clone()),
        NOW,
    )
    .await;
    assert!(
        run.code == exit::OK || run.code == exit::NOT_ACCEPTED,
        "{run:?}"
    );
}

/// What stacks wrote before issue 16 (and what any role allowed to put parameters
/// there can write): a `String` entry.
async fn forge_api(c: &Client, api_id: &str, name: &str) {
    c.put_parameter()
        .name(format!("{API_PATH}/{api_id}"))
        .value(name)
        .r#type(ParameterType::String)
        .overwrite(true)
        .send()
        .await
        .unwrap();
}

/// The authorizer as deployed: documents and API names from SSM, production TTLs.
fn deployed_authorizer(keys: &Client, apis: &Client, clock: &TestClock) -> CachedStore {
    CachedStore::new(
        KeySource::Ssm(SsmKeyStore::new(keys.clone(), PATH).unwrap()),
        RefreshPolicy::default(),
        Duration::from_secs(30),
        clock.unix_clock(),
    )
    .with_api_names(ApiNames::ssm(
        apis.clone(),
        API_PATH,
        RefreshPolicy::default(),
    ))
}

fn method_arn(api_id: &str, route: &str) -> String {
    let (verb, path) = route.split_once(' ').unwrap();
    format!("arn:aws:execute-api:us-east-1:123456789012:{api_id}/prod/{verb}{path}")
}

fn event_on(key: &str, api_id: &str, route: &str) -> Value {
    let mut ev = request(key);
    ev["methodArn"] = json!(method_arn(api_id, route));
    ev["requestContext"]["apiId"] = json!(api_id);
    ev
}

/// Asks the authorizer about `route` on `api_id` and says whether API Gateway would
/// let the call through. The key must authenticate either way.
async fn allowed(store: &CachedStore, key: &str, api_id: &str, route: &str) -> bool {
    let resp = handle(store, &event_on(key, api_id, route))
        .await
        .unwrap_or_else(|_| panic!("the key was refused on {api_id}"));
    gateway_allows(&resp.to_aws(), &method_arn(api_id, route))
}

/// Issue 9 item 4: attaching the authorizer to another team's API used to let every
/// caller whose patterns matched in. An existing key does not reach the new API until
/// it is granted there, and the grant reaches only that API.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_existing_key_does_not_reach_a_new_api_until_granted_there() {
    let (_moto, c, aws) = moto_ssm();
    register_api(&c, IDENTITY_API, "identity").await;
    let admin = svcauth(
        &args(&[
            "keys",
            "create",
            "--service",
            "admin-service",
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
    expect(&admin, exit::OK);
    let admin = admin.delivered_key();
    let clock = TestClock::at(NOW + 10);
    let store = deployed_authorizer(&c, &c, &clock);
    let invoices = "GET /internal/billing/invoices";
    assert!(allowed(&store, &admin, IDENTITY_API, "POST /internal/users").await);
    // Another team attaches the authorizer to its API; its stack registers the name.
    assert!(
        !allowed(&store, &admin, BILLING_API, invoices).await,
        "an unregistered API allows nothing"
    );
    register_api(&c, BILLING_API, "billing").await;
    clock.advance(301);
    assert!(
        !allowed(&store, &admin, BILLING_API, invoices).await,
        "admin-service's `* /internal/*` on identity must not reach billing"
    );

    let grant = svcauth(
        &args(&[
            "keys",
            "grant",
            "--service",
            "admin-service",
            "--api",
            "billing",
            "--permissions",
            "GET /internal/billing/*",
        ]),
        &aws,
        NOW + 400,
    )
    .await;
    expect(&grant, exit::OK);
    assert!(grant.stderr.contains("on billing"), "{grant:?}");
    // Granting the same again changes nothing.
    let again = svcauth(
        &args(&[
            "keys",
            "grant",
            "--service",
            "admin-service",
            "--api",
            "billing",
            "--permissions",
            "GET /internal/billing/*",
        ]),
        &aws,
        NOW + 400,
    )
    .await;
    expect(&again, exit::NOT_ACCEPTED);

    clock.advance(301);
    assert!(allowed(&store, &admin, BILLING_API, invoices).await);
    assert!(
        !allowed(
            &store,
            &admin,
            BILLING_API,
            "POST /internal/billing/invoices"
        )
        .await,
        "only the routes granted on billing"
    );
    assert!(allowed(&store, &admin, IDENTITY_API, "POST /internal/users").await);

    let remove = svcauth(
        &args(&words(
            "keys grant --service admin-service --api billing --remove",
        )),
        &aws,
        NOW + 800,
    )
    .await;
    expect(&remove, exit::OK);
    clock.advance(301);
    assert!(!allowed(&store, &admin, BILLING_API, invoices).await);
    assert!(allowed(&store, &admin, IDENTITY_API, "POST /internal/users").await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_api_name_that_cannot_be_read_allows_nothing() {
    let (_moto, c, aws) = moto_ssm();
    let key = new_tutor_key(&aws, NOW).await;
    let route = "GET /internal/users/42";
    let clock = TestClock::at(NOW + 10);

    // SSM unreachable for the name (the store itself loads): fail closed.
    let dead = moto_client("http://127.0.0.1:9");
    let store = deployed_authorizer(&c, &dead, &clock);
    assert!(!allowed(&store, &key, IDENTITY_API, route).await);

    // A SecureString whose value is not a name: refused too.
    let store = deployed_authorizer(&c, &c, &clock);
    test_support::put_secure(&c, &format!("{API_PATH}/otherapi01"), "Not A Name").await;
    assert!(!allowed(&store, &key, "otherapi01", route).await);

    // Once registered with svcauth (after the retry interval): allowed.
    assert!(!allowed(&store, &key, IDENTITY_API, route).await);
    register_api(&c, IDENTITY_API, "identity").await;
    clock.advance(301);
    assert!(allowed(&store, &key, IDENTITY_API, route).await);
}

/// Issue 16 §2: an entry written the forgeable way (a `String`, as stacks wrote them,
/// or anyone allowed to put parameters there) is never trusted (the authorizer's log
/// line naming the command is checked in the authorizer's tests); `svcauth apis
/// register` replaces it with the trusted form.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_string_registry_entry_is_never_trusted_until_registered() {
    let (_moto, c, aws) = moto_ssm();
    let key = new_tutor_key(&aws, NOW).await;
    let route = "GET /internal/users/42";
    let clock = TestClock::at(NOW + 10);
    // A deploy role relabels the identity API... as `identity`: even the right name,
    // written as a String, is not trusted.
    forge_api(&c, IDENTITY_API, "identity").await;
    let store = deployed_authorizer(&c, &c, &clock);
    assert!(!allowed(&store, &key, IDENTITY_API, route).await);
    // The by-key path reads it with the key's entries; the full load reads it alone.
    let full = deployed_authorizer(&c, &c, &clock).with_key_index(false);
    assert!(!allowed(&full, &key, IDENTITY_API, route).await);

    let list = svcauth(&args(&words("apis list")), &aws, NOW).await;
    expect(&list, exit::OK);
    assert!(
        list.stdout.contains("NOT TRUSTED")
            && list
                .stdout
                .contains("svcauth apis register --api-id idapi00001 --name identity"),
        "{list:?}"
    );

    let run = svcauth(
        &args(&words("apis register --api-id idapi00001 --name identity")),
        &aws,
        NOW,
    )
    .await;
    expect(&run, exit::OK);
    assert!(
        run.stderr.contains("replaced an untrusted String entry"),
        "{run:?}"
    );
    let p = c
        .get_parameter()
        .name(format!("{API_PATH}/{IDENTITY_API}"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        p.parameter().unwrap().r#type(),
        Some(&ParameterType::SecureString)
    );
    clock.advance(301);
    assert!(allowed(&store, &key, IDENTITY_API, route).await);
    assert!(allowed(&full, &key, IDENTITY_API, route).await);
}

/// Issue 16 §2: one name names one API. A second registration of a name for another
/// API id is refused (nothing written for that id), also when two operators race;
/// the name is free again once its API is removed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_name_bound_to_one_api_id_is_refused_for_another() {
    let (_moto, c, aws) = moto_ssm();
    let register = |id: &'static str, name: &'static str| {
        let aws = aws.clone();
        async move {
            svcauth(
                &args(&["apis", "register", "--api-id", id, "--name", name]),
                &aws,
                NOW,
            )
            .await
        }
    };
    expect(&register(IDENTITY_API, "identity").await, exit::OK);
    expect(
        &register(IDENTITY_API, "identity").await,
        exit::NOT_ACCEPTED,
    );

    let run = register(BILLING_API, "identity").await;
    expect(&run, exit::USAGE);
    assert!(
        run.stderr.contains("bound to API id idapi00001")
            && run
                .stderr
                .contains("svcauth apis remove --api-id idapi00001"),
        "{run:?}"
    );
    let billing_entry = c
        .get_parameter()
        .name(format!("{API_PATH}/{BILLING_API}"))
        .send()
        .await;
    assert!(billing_entry.is_err(), "nothing written for {BILLING_API}");
    // A dry run says the same.
    let dry = svcauth(
        &args(&words(
            "apis register --api-id billapi001 --name identity --dry-run",
        )),
        &aws,
        NOW,
    )
    .await;
    expect(&dry, exit::USAGE);
    // Renaming a registered id is refused too (its grants name the old name).
    let run = register(IDENTITY_API, "billing").await;
    expect(&run, exit::USAGE);
    assert!(run.stderr.contains("registered as \"identity\""), "{run:?}");

    // Two operators bind one new name to two ids at once: exactly one wins.
    let (a, b) = tokio::join!(
        register("apiaaaaaa1", "reports"),
        register("apibbbbbb2", "reports")
    );
    let mut codes = [a.code, b.code];
    codes.sort();
    assert_eq!(codes, [exit::OK, exit::USAGE], "{a:?} {b:?}");

    let show = svcauth(&args(&words("apis show --name identity")), &aws, NOW).await;
    expect(&show, exit::OK);
    assert!(show.stdout.contains(IDENTITY_API), "{show:?}");
    let list = svcauth(&args(&words("apis list --json")), &aws, NOW).await;
    let rows: Value = serde_json::from_str(&list.stdout).unwrap();
    assert_eq!(rows.as_array().unwrap().len(), 2, "{rows}");

    // Removed: the name is free for another id.
    let run = svcauth(&args(&words("apis remove --api-id idapi00001")), &aws, NOW).await;
    expect(&run, exit::OK);
    assert!(run.stderr.contains("released name(s): identity"), "{run:?}");
    expect(&register(BILLING_API, "identity").await, exit::OK);
    for bad in [
        "apis register --api-id not-an-id --name x",
        "apis register --api-id abc --name Not_A_Name",
    ] {
        expect(&svcauth(&args(&words(bad)), &aws, NOW).await, exit::USAGE);
    }
}

/// Issue 19 B5: `keys grant --api NAME` warns when no API is registered as NAME (a
/// typo grants nothing anywhere), and not when one is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_grant_on_an_unregistered_api_name_warns() {
    let (_moto, c, aws) = moto_ssm();
    register_api(&c, IDENTITY_API, "identity").await;
    expect(
        &svcauth(&args(&create_tutor(&["--deliver", "stdout"])), &aws, NOW).await,
        exit::OK,
    );
    let grant = |api: &'static str| {
        let aws = aws.clone();
        async move {
            svcauth(
                &args(&[
                    "keys",
                    "grant",
                    "--service",
                    "tutor-service",
                    "--api",
                    api,
                    "--permissions",
                    "GET /internal/x/*",
                ]),
                &aws,
                NOW,
            )
            .await
        }
    };
    let typo = grant("identiy").await;
    expect(&typo, exit::OK);
    assert!(
        typo.stderr.contains("no API is registered as identiy")
            && typo.stderr.contains("svcauth apis list"),
        "{typo:?}"
    );
    let good = grant("identity").await;
    expect(&good, exit::OK);
    assert!(!good.stderr.contains("no API is registered"), "{good:?}");
    // A String entry is not a registration.
    forge_api(&c, BILLING_API, "billing").await;
    let forged = grant("billing").await;
    assert!(
        forged.stderr.contains("no API is registered as billing"),
        "{forged:?}"
    );
}

/// A schema-1 document (written before API scoping) never grants every API: its key
/// authenticates and is allowed nothing until `keys migrate` names the APIs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_schema_1_document_is_allowed_nothing_until_migrated() {
    let (_moto, c, aws) = moto_ssm();
    register_api(&c, IDENTITY_API, "identity").await;
    register_api(&c, BILLING_API, "billing").await;
    let key = new_tutor_key(&aws, NOW).await;
    // Rewrite the document as the previous version wrote it.
    let name = format!("{PATH}/tutor-service");
    let mut doc: Value = serde_json::from_str(&read_param(&c, &name).await).unwrap();
    let routes = doc["grants"][0]["routes"].clone();
    doc["schema"] = json!(1);
    doc["permissions"] = routes;
    doc.as_object_mut().unwrap().remove("grants");
    c.put_parameter()
        .name(&name)
        .value(doc.to_string())
        .r#type(ParameterType::SecureString)
        .overwrite(true)
        .send()
        .await
        .unwrap();

    let clock = TestClock::at(NOW + 10);
    let store = deployed_authorizer(&c, &c, &clock);
    let route = "GET /internal/users/42";
    assert!(!allowed(&store, &key, IDENTITY_API, route).await);
    assert!(!allowed(&store, &key, BILLING_API, route).await);

    let list = svcauth(&args(&words("keys list")), &aws, NOW + 20).await;
    expect(&list, exit::OK);
    assert!(list.stdout.contains("none (schema 1"), "{list:?}");

    let dry = svcauth(
        &args(&words("keys migrate --api identity --dry-run")),
        &aws,
        NOW + 20,
    )
    .await;
    expect(&dry, exit::OK);
    assert!(dry.stderr.contains("would have"), "{dry:?}");
    let migrate = svcauth(&args(&words("keys migrate --api identity")), &aws, NOW + 20).await;
    expect(&migrate, exit::OK);
    let again = svcauth(&args(&words("keys migrate --api identity")), &aws, NOW + 20).await;
    expect(&again, exit::NOT_ACCEPTED);
    let doc: Value = serde_json::from_str(&read_param(&c, &name).await).unwrap();
    assert_eq!(doc["schema"], 2);
    assert_eq!(doc["grants"][0]["apis"], json!(["identity"]));

    clock.advance(301);
    assert!(allowed(&store, &key, IDENTITY_API, route).await);
    assert!(!allowed(&store, &key, BILLING_API, route).await);
}

/// Issue 9 item 3 through the CLI: a malformed pattern is refused before anything is
/// written, and `list` / `check` show each pattern as written and as applied.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_patterns_are_refused_and_effective_patterns_are_shown() {
    let (_moto, c, aws) = moto_ssm();
    for bad in [
        "GET /internal/users/{id/profile",
        "GET /internal//users",
        "GET /internal/users/",
    ] {
        let run = svcauth(
            &args(&[
                "keys",
                "create",
                "--service",
                "tutor-service",
                "--permissions",
                bad,
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
        assert!(run.stdout.is_empty(), "{run:?}");
    }
    assert!(
        all_params(&c).await.is_empty(),
        "a refused pattern wrote something"
    );

    let run = svcauth(
        &args(&[
            "keys",
            "create",
            "--service",
            "tutor-service",
            "--permissions",
            "GET /internal/users/{id}",
            "--api",
            "identity",
            "--deliver",
            "stdout",
        ]),
        &aws,
        NOW,
    )
    .await;
    expect(&run, exit::OK);
    let key = run.delivered_key();
    let list = svcauth(&args(&words("keys list")), &aws, NOW).await;
    let line = list
        .stdout
        .lines()
        .find(|l| l.contains("{id}"))
        .unwrap_or_else(|| panic!("{list:?}"));
    assert!(
        line.contains("identity") && line.ends_with("GET /internal/users/*"),
        "{line}"
    );
    assert!(list.stdout.contains("`/` included"), "{list:?}");
    let json = svcauth(&args(&words("keys list --json")), &aws, NOW).await;
    let rows: Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(
        rows[0]["grants"][0]["routes"][0],
        json!({"written": "GET /internal/users/{id}", "effective": "GET /internal/users/*"})
    );

    // `check` says the same, and that the parameter reaches deeper paths.
    let check = svcauth_stdin(
        &args(&[
            "keys",
            "check",
            "--service",
            "tutor-service",
            "--api",
            "identity",
            "--route",
            "GET /internal/users/42/anything/below",
            "--json",
        ]),
        &aws,
        NOW,
        &key,
    )
    .await;
    expect(&check, exit::OK);
    let answer: Value = serde_json::from_str(&check.stdout).unwrap();
    assert_eq!(answer["routePermitted"], true);
    assert_eq!(
        answer["grants"][0]["routes"][0]["effective"],
        "GET /internal/users/*"
    );
    let human = svcauth_stdin(
        &args(&words("keys check --service tutor-service --api billing")),
        &aws,
        NOW,
        &key,
    )
    .await;
    expect(&human, exit::NOT_ACCEPTED);
    assert!(human.stdout.contains("api_not_granted"), "{human:?}");
    assert!(
        human
            .stdout
            .contains("identity: GET /internal/users/{id} -> GET /internal/users/*"),
        "{human:?}"
    );
}
