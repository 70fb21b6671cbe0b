//! Issue 9 items 3 and 4 end to end: permission patterns as written and as applied,
//! and permissions scoped to named APIs. The real CLI writes to moto's SSM; the real
//! authorizer reads the documents and the API-name parameters from it.

use std::time::Duration;

use authorizer::{handle, ApiNames, AuthorizerResponse, CachedStore, KeySource};
use keystore_ssm::aws_sdk_ssm::types::ParameterType;
use keystore_ssm::aws_sdk_ssm::Client;
use keystore_ssm::SsmKeyStore;
use serde_json::{json, Value};
use service_auth::cache::RefreshPolicy;
use service_auth::permissions::wildcard_match;
use svcauth::{exit, Aws};
use test_support::MotoServer;

use crate::common::*;

const API_PATH: &str = "/svcauth/test/apis";
/// Our own API (registered as `identity`) and another team's (`billing`), by id.
const IDENTITY_API: &str = "idapi00001";
const BILLING_API: &str = "billapi001";

/// What the stack attaching the authorizer writes: the API's name under its id.
async fn register_api(c: &Client, api_id: &str, name: &str) {
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

/// What API Gateway does with the returned policy for this method ARN: an explicit
/// Deny wins, else an Allow must match.
fn gateway_allows(resp: &AuthorizerResponse, arn: &str) -> bool {
    // Read back from the JSON API Gateway receives.
    let policy = serde_json::to_value(resp).unwrap()["policyDocument"].clone();
    let statements = policy["Statement"].as_array().cloned().unwrap_or_default();
    let matching =
        |effect: &str| {
            statements.iter().any(|s| {
                s["Effect"] == effect
                    && s["Resource"].as_array().into_iter().flatten().any(|r| {
                        wildcard_match(r.as_str().unwrap_or("").as_bytes(), arn.as_bytes())
                    })
            })
        };
    !matching("Deny") && matching("Allow")
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
async fn item4_an_existing_key_does_not_reach_a_new_api_until_granted_there() {
    let moto = MotoServer::start();
    let c = moto_client(&moto.endpoint());
    let aws = Aws::Client(c.clone());
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
    let moto = MotoServer::start();
    let c = moto_client(&moto.endpoint());
    let aws = Aws::Client(c.clone());
    let run = svcauth(&args(&create_tutor(&["--deliver", "stdout"])), &aws, NOW).await;
    expect(&run, exit::OK);
    let key = run.delivered_key();
    let route = "GET /internal/users/42";
    let clock = TestClock::at(NOW + 10);

    // SSM unreachable for the name (the store itself loads): fail closed.
    let dead = moto_client("http://127.0.0.1:9");
    let store = deployed_authorizer(&c, &dead, &clock);
    assert!(!allowed(&store, &key, IDENTITY_API, route).await);

    // A name someone wrote as SecureString, or a value that is not a name: refused too.
    let store = deployed_authorizer(&c, &c, &clock);
    c.put_parameter()
        .name(format!("{API_PATH}/{IDENTITY_API}"))
        .value("identity")
        .r#type(ParameterType::SecureString)
        .send()
        .await
        .unwrap();
    assert!(!allowed(&store, &key, IDENTITY_API, route).await);
    register_api(&c, "otherapi01", "Not A Name").await;
    assert!(!allowed(&store, &key, "otherapi01", route).await);

    // Once the stack's String parameter is there (after the retry interval): allowed.
    c.delete_parameter()
        .name(format!("{API_PATH}/{IDENTITY_API}"))
        .send()
        .await
        .unwrap();
    register_api(&c, IDENTITY_API, "identity").await;
    clock.advance(31);
    assert!(allowed(&store, &key, IDENTITY_API, route).await);
}

/// A schema-1 document (written before API scoping) never grants every API: its key
/// authenticates and is allowed nothing until `keys migrate` names the APIs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_schema_1_document_is_allowed_nothing_until_migrated() {
    let moto = MotoServer::start();
    let c = moto_client(&moto.endpoint());
    let aws = Aws::Client(c.clone());
    register_api(&c, IDENTITY_API, "identity").await;
    register_api(&c, BILLING_API, "billing").await;
    let run = svcauth(&args(&create_tutor(&["--deliver", "stdout"])), &aws, NOW).await;
    expect(&run, exit::OK);
    let key = run.delivered_key();
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
async fn item3_malformed_patterns_are_refused_and_effective_patterns_are_shown() {
    let moto = MotoServer::start();
    let c = moto_client(&moto.endpoint());
    let aws = Aws::Client(c.clone());
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
