//! `svcauth access` on the development store and the project's template.yaml (as it
//! is: the root template and whatever it nests), with the template's AuthMode.
//!
//! The development store's services have no usage-plan key; a deployed service has one
//! (the key APIs require it), so each test adds them to a copy of the store. Assertions
//! name services, API names and routes, never the templates' resource names.

use std::path::{Path, PathBuf};

use serde_json::Value;
use svcauth::{exit, Aws};

use crate::common::*;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// No SSM: the file store needs none.
fn no_aws() -> Aws {
    Aws::Client(moto_client("http://127.0.0.1:9"))
}

/// The development store with the usage-plan keys a deployed service has, and
/// `change` applied to its documents.
fn dev_store(dir: &TempDir, change: impl FnOnce(&mut Vec<Value>)) -> String {
    let text = std::fs::read_to_string(root().join("dev/dev-store.json")).unwrap();
    let mut docs: Vec<Value> = serde_json::from_str(&text).unwrap();
    for d in &mut docs {
        let service = d["service"].as_str().unwrap().to_owned();
        d["usagePlanKey"] = Value::String(format!("{service}-usage-plan-key"));
    }
    change(&mut docs);
    let file = dir.path("store.json");
    std::fs::write(&file, serde_json::to_string_pretty(&docs).unwrap()).unwrap();
    file
}

/// `svcauth --store file --file STORE access CMD --template template.yaml
/// --parameter AuthMode=MODE`.
async fn access(store: &str, mode: &str, cmd: &[&str]) -> Run {
    let template = root().join("template.yaml").display().to_string();
    let mode = format!("AuthMode={mode}");
    let mut args = vec!["--env", "dev", "--store", "file", "--file", store, "access"];
    args.extend_from_slice(cmd);
    args.extend_from_slice(&["--template", &template, "--parameter", &mode]);
    svcauth(&args, &no_aws(), NOW).await
}

/// The `api-key`, `iam` and `token` lines of an explanation, by proof.
fn answer<'a>(run: &'a Run, via: &str) -> &'a str {
    run.stdout
        .lines()
        .find(|l| l.trim_start().starts_with(&format!("{via} ")))
        .unwrap_or_else(|| panic!("no {via} line: {run:#?}"))
}

#[tokio::test]
async fn explain_names_the_grant_of_an_allowed_key_call() {
    let dir = TempDir::new("access-key");
    let store = dev_store(&dir, |_| {});
    let cmd = words("explain --service tutor-service --api identity --route");
    let mut cmd = cmd.clone();
    cmd.push("GET /internal/users/42");
    let run = access(&store, "api-key", &cmd).await;
    expect(&run, exit::OK);
    let key = answer(&run, "api-key");
    assert!(
        key.contains("allowed") && key.contains("granted `GET /internal/users/*` on identity"),
        "{run:#?}"
    );
    assert!(
        run.stdout
            .contains("decided by grant `GET /internal/users/*` on identity"),
        "{run:#?}"
    );
    assert!(answer(&run, "iam").contains("refused"), "{run:#?}");
    // The route as the template writes it: the same answer, for every id.
    cmd.pop();
    cmd.push("GET /internal/users/{id}");
    let run = access(&store, "api-key", &cmd).await;
    expect(&run, exit::OK);
    assert!(answer(&run, "api-key").contains("allowed"), "{run:#?}");

    // Without a usage-plan key, API Gateway refuses it before any grant counts.
    let bare = dir.path("bare.json");
    std::fs::copy(root().join("dev/dev-store.json"), &bare).unwrap();
    let run = access(&bare, "api-key", &cmd).await;
    expect(&run, exit::NOT_ACCEPTED);
    assert!(
        answer(&run, "api-key").contains("no usagePlanKey"),
        "{run:#?}"
    );
}

#[tokio::test]
async fn explain_refuses_calls_outside_the_grants_and_apis_not_granted() {
    let dir = TempDir::new("access-refused");
    let store = dev_store(&dir, |_| {});
    // A route of a granted API that no grant covers.
    let mut cmd = words("explain --service tutor-service --api identity --route");
    cmd.push("POST /internal/users");
    let run = access(&store, "api-key", &cmd).await;
    expect(&run, exit::NOT_ACCEPTED);
    let key = answer(&run, "api-key");
    assert!(
        key.contains("refused") && key.contains("no grant of tutor-service on identity covers it"),
        "{run:#?}"
    );
    assert!(
        run.stdout.contains("answer: not allowed by any proof"),
        "{run:#?}"
    );
    // An API the service is granted nothing on.
    let mut cmd = words("explain --service tutor-service --api tutor --route");
    cmd.push("GET /internal/tutor/students/7/profile");
    let run = access(&store, "api-key", &cmd).await;
    expect(&run, exit::NOT_ACCEPTED);
    assert!(
        answer(&run, "api-key").contains("tutor-service is granted nothing on tutor"),
        "{run:#?}"
    );
    // A revoked service's keys: every key revoked or expired.
    let store = dev_store(&dir, |docs| {
        for d in docs
            .iter_mut()
            .filter(|d| d["service"] == "reporting-service")
        {
            d["keys"][0]["status"] = "revoked".into();
            d["keys"][0]["revokedAt"] = "2026-01-01T00:00:00Z".into();
        }
    });
    let mut cmd = words("explain --service reporting-service --api identity --route");
    cmd.push("GET /internal/users/42");
    let run = access(&store, "api-key", &cmd).await;
    expect(&run, exit::NOT_ACCEPTED);
    assert!(
        answer(&run, "api-key").contains("no usable key"),
        "{run:#?}"
    );
    // A route the API does not have.
    let mut cmd = words("explain --service tutor-service --api identity --route");
    cmd.push("DELETE /internal/users/42");
    let run = access(&store, "api-key", &cmd).await;
    expect(&run, exit::NOT_ACCEPTED);
    assert!(answer(&run, "api-key").contains("has no route"), "{run:#?}");
}

/// The matrix as JSON.
async fn matrix_json(store: &str, mode: &str) -> Value {
    let run = access(store, mode, &words("matrix --format json")).await;
    expect(&run, exit::OK);
    serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("{e}: {run:#?}"))
}

/// The API (label) serving `route` whose cells for `via` are not all refused by the
/// route's authorization: the IAM API of identity, whatever the template calls it.
fn api_serving(m: &Value, route: &str, via: &str) -> String {
    m["cells"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| {
            c["route"] == route
                && c["via"] == via
                && !c["reason"].as_str().unwrap().starts_with("the route takes")
                && !c["reason"]
                    .as_str()
                    .unwrap()
                    .starts_with("the route's authorizer")
        })
        .unwrap_or_else(|| panic!("no API serves {route} by {via}"))["api"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn iam_roles_with_and_without_the_route() {
    let dir = TempDir::new("access-iam");
    let store = dev_store(&dir, |_| {});
    let m = matrix_json(&store, "iam").await;
    let iam_api = api_serving(&m, "GET /internal/users/{id}", "iam");
    // tutor-service's role may read users...
    let mut cmd = vec![
        "explain",
        "--service",
        "tutor-service",
        "--api",
        &iam_api,
        "--route",
    ];
    cmd.push("GET /internal/users/42");
    let run = access(&store, "iam", &cmd).await;
    expect(&run, exit::OK);
    let iam = answer(&run, "iam");
    assert!(
        iam.contains("allowed")
            && iam.contains("role ")
            && iam.contains("Allow execute-api:Invoke"),
        "{run:#?}"
    );
    assert!(
        run.stdout.contains("decided by ") && run.stdout.contains("Resources."),
        "{run:#?}"
    );
    // ... but not create them: no statement of its roles allows POST.
    cmd.pop();
    cmd.push("POST /internal/users");
    let run = access(&store, "iam", &cmd).await;
    expect(&run, exit::NOT_ACCEPTED);
    let iam = answer(&run, "iam");
    assert!(
        iam.contains("refused") && iam.contains("no statement allows it"),
        "{run:#?}"
    );
    // admin-service's role may.
    cmd[2] = "admin-service";
    let run = access(&store, "iam", &cmd).await;
    expect(&run, exit::OK);
    // A service no role is mapped to.
    cmd[2] = "reporting-service";
    let run = access(&store, "iam", &cmd).await;
    expect(&run, exit::NOT_ACCEPTED);
    assert!(
        answer(&run, "iam").contains("no role is mapped to reporting-service"),
        "{run:#?}"
    );
}

#[tokio::test]
async fn tokens_follow_the_grants_and_who_may_get_one() {
    let dir = TempDir::new("access-token");
    let store = dev_store(&dir, |_| {});
    let mut cmd = words("explain --service tutor-service --api identity --route");
    cmd.push("GET /internal/users/42");
    let run = access(&store, "token", &cmd).await;
    expect(&run, exit::OK);
    let token = answer(&run, "token");
    assert!(
        token.contains("allowed")
            && token.contains("token from")
            && token.contains("granted `GET /internal/users/*` on identity"),
        "{run:#?}"
    );
    // In token mode the key is refused on the same route.
    assert!(answer(&run, "api-key").contains("refused"), "{run:#?}");
    // reporting-service holds an identity grant but not POST /token on token.
    cmd[2] = "reporting-service";
    let run = access(&store, "token", &cmd).await;
    expect(&run, exit::NOT_ACCEPTED);
    let token = answer(&run, "token");
    assert!(
        token.contains("refused") && token.contains("reporting-service gets no token"),
        "{run:#?}"
    );
    // A brake in the future: the issuer issues nothing until then.
    let braked = dev_store(&dir, |docs| {
        for d in docs.iter_mut().filter(|d| d["service"] == "tutor-service") {
            d["tokensNotBefore"] = "2027-01-01T00:00:00Z".into();
        }
    });
    cmd[2] = "tutor-service";
    let run = access(&braked, "token", &cmd).await;
    expect(&run, exit::NOT_ACCEPTED);
    assert!(answer(&run, "token").contains("braked"), "{run:#?}");
}

#[tokio::test]
async fn check_holds_or_lists_each_violation() {
    let dir = TempDir::new("access-check");
    let store = dev_store(&dir, |_| {});
    let good = dir.path("good.yaml");
    std::fs::write(
        &good,
        "- {service: tutor-service, api: identity, route: GET /internal/users/42, allowed: true}\n\
         - {service: tutor-service, api: identity, route: POST /internal/users, allowed: false}\n\
         - {service: tutor-service, api: identity, route: 'GET /internal/users/{id}', allowed: true, via: api-key}\n\
         - {service: admin-service, api: tutor, route: GET /internal/tutor/students/7/profile, allowed: true}\n\
         - {service: reporting-service, api: identity, route: GET /internal/users/42, allowed: false, via: token}\n",
    )
    .unwrap();
    let run = access(&store, "api-key", &["check", &good]).await;
    expect(&run, exit::OK);
    assert!(run.stdout.contains("all 5 expectations hold"), "{run:#?}");

    let bad = dir.path("bad.json");
    std::fs::write(
        &bad,
        r#"[{"service": "tutor-service", "api": "identity", "route": "POST /internal/users", "allowed": true},
            {"service": "tutor-service", "api": "identity", "route": "GET /internal/users/42", "allowed": true},
            {"service": "admin-service", "api": "identity", "route": "GET /internal/users/42", "allowed": false, "via": "api-key"}]"#,
    )
    .unwrap();
    let run = access(&store, "api-key", &["check", &bad]).await;
    expect(&run, exit::NOT_ACCEPTED);
    assert!(
        run.stdout.contains("2 of 3 expectations do not hold"),
        "{run:#?}"
    );
    assert!(
        run.stdout.contains(
            "1: tutor-service identity POST /internal/users: expected allowed, but it is refused"
        ),
        "{run:#?}"
    );
    assert!(run.stdout.contains("3: admin-service identity GET /internal/users/42 via api-key: expected refused, but it is allowed"), "{run:#?}");
    assert!(!run.stdout.contains("\n2: "), "{run:#?}");
    // A malformed file is a usage error.
    std::fs::write(&bad, "- {service: x}").unwrap();
    let run = access(&store, "api-key", &["check", &bad]).await;
    expect(&run, exit::USAGE);
}

/// Built for the diff: tutor-service may also create users with its key, which no
/// role policy allows; reporting-service has a key and no role at all.
#[tokio::test]
async fn diff_lists_the_calls_a_move_to_iam_would_change() {
    let dir = TempDir::new("access-diff");
    let store = dev_store(&dir, |docs| {
        for d in docs.iter_mut().filter(|d| d["service"] == "tutor-service") {
            d["grants"][0]["routes"]
                .as_array_mut()
                .unwrap()
                .push("POST /internal/users".into());
        }
    });
    let run = access(&store, "both", &words("diff --to iam --api identity")).await;
    expect(&run, exit::OK);
    let lines: Vec<&str> = run.stdout.lines().collect();
    let has = |service: &str, route: &str| {
        lines.iter().any(|l| {
            l.starts_with(&format!(
                "{service} identity {route}: now allowed (api-key)"
            )) && l.contains("with iam")
                && l.contains("refused")
        })
    };
    assert!(has("tutor-service", "POST /internal/users"), "{run:#?}");
    assert!(
        has("reporting-service", "GET /internal/users/{id}"),
        "{run:#?}"
    );
    // What keys and roles both allow does not change.
    assert!(
        !lines
            .iter()
            .any(|l| l.starts_with("tutor-service identity GET /internal/users/{id}")),
        "{run:#?}"
    );
    assert!(
        !lines.iter().any(|l| l.starts_with("admin-service")),
        "{run:#?}"
    );
    // The same as JSON.
    let run = access(
        &store,
        "both",
        &words("diff --to iam --api identity --json"),
    )
    .await;
    expect(&run, exit::OK);
    let v: Value = serde_json::from_str(&run.stdout).unwrap();
    assert!(v["changes"]
        .as_array()
        .unwrap()
        .iter()
        .any(|c| c["service"] == "tutor-service"
            && c["route"] == "POST /internal/users"
            && c["now"]["allowed"] == true
            && c["after"]["allowed"] == false));
}

#[tokio::test]
async fn matrix_formats() {
    let dir = TempDir::new("access-matrix");
    let store = dev_store(&dir, |_| {});
    let m = matrix_json(&store, "both").await;
    let cells = m["cells"].as_array().unwrap();
    assert!(!cells.is_empty());
    for c in cells {
        for k in ["service", "api", "route", "via", "reason"] {
            assert!(c[k].is_string(), "{c}");
        }
        assert!(c["allowed"].is_boolean() || c["allowed"].is_null(), "{c}");
    }
    assert!(cells.iter().any(|c| c["service"] == "tutor-service"
        && c["api"] == "identity"
        && c["route"] == "GET /internal/users/{id}"
        && c["via"] == "api-key"
        && c["allowed"] == true));

    let run = access(&store, "both", &words("matrix")).await;
    expect(&run, exit::OK);
    for line in run.stdout.lines() {
        assert!(
            line.chars().count() <= 100,
            "{} > 100: {line}",
            line.chars().count()
        );
    }
    assert!(run.stdout.starts_with("SERVICE"), "{run:#?}");

    let run = access(
        &store,
        "both",
        &words("matrix --format csv --service tutor-service"),
    )
    .await;
    expect(&run, exit::OK);
    assert!(run
        .stdout
        .starts_with("service,api,route,via,allowed,reason,rule\n"));
    assert!(run
        .stdout
        .lines()
        .skip(1)
        .all(|l| l.starts_with("tutor-service,")));

    let run = access(&store, "both", &words("matrix --format mermaid")).await;
    expect(&run, exit::OK);
    assert!(run.stdout.starts_with("flowchart LR\n"), "{run:#?}");
    assert!(
        run.stdout.contains("s_tutor_service -->|\"api-key 2/"),
        "{run:#?}"
    );

    // Unknown names say what there is.
    let run = access(&store, "both", &words("matrix --service nobody")).await;
    expect(&run, exit::NOT_FOUND);
    assert!(run.stderr.contains("tutor-service"), "{run:#?}");
}

/// docs/access.md shows the example deployment as `matrix --format mermaid` draws it;
/// `SVCAUTH_UPDATE_DOCS=1` rewrites the picture instead of comparing.
#[tokio::test]
async fn the_docs_picture_is_the_example_deployment() {
    let dir = TempDir::new("access-docs");
    let store = dev_store(&dir, |_| {});
    let run = access(&store, "both", &words("matrix --format mermaid")).await;
    expect(&run, exit::OK);
    let doc_path = root().join("docs/access.md");
    let doc = std::fs::read_to_string(&doc_path).unwrap();
    let (begin, end) = (
        "<!-- access-picture:begin -->\n",
        "<!-- access-picture:end -->",
    );
    let a = doc.find(begin).expect("the picture's begin marker") + begin.len();
    let b = doc.find(end).expect("the picture's end marker");
    let picture = format!("```mermaid\n{}```\n", run.stdout);
    if std::env::var_os("SVCAUTH_UPDATE_DOCS").is_some() {
        std::fs::write(&doc_path, format!("{}{picture}{}", &doc[..a], &doc[b..])).unwrap();
        return;
    }
    assert_eq!(
        doc[a..b],
        picture,
        "docs/access.md's picture differs from what the templates and the development store give now: run SVCAUTH_UPDATE_DOCS=1 cargo test -p svcauth --test integration access::the_docs_picture"
    );
}

/// With `--store ssm`: the documents and the API registry next to the key store in
/// SSM (moto). A template API counts as registered when the name its template declares
/// is in the registry.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ssm_store_and_its_registry() {
    use keystore_ssm::aws_sdk_ssm::types::ParameterType;
    let moto = test_support::MotoServer::start();
    let c = moto_client(&moto.endpoint());
    let aws = Aws::Client(c.clone());
    let run = svcauth(
        &args(&create_tutor(&["--usage-plan-key", "tutor-plan"])),
        &aws,
        NOW,
    )
    .await;
    expect(&run, exit::OK);
    let template = root().join("template.yaml").display().to_string();
    let explain = || {
        let mut cmd = args(&words(
            "access explain --service tutor-service --api identity --parameter AuthMode=api-key",
        ));
        cmd.extend_from_slice(&["--template", &template, "--route", "GET /internal/users/42"]);
        cmd.into_iter().map(str::to_owned).collect::<Vec<String>>()
    };
    let cmd = explain();
    let cmd: Vec<&str> = cmd.iter().map(String::as_str).collect();
    let run = svcauth(&cmd, &aws, NOW).await;
    expect(&run, exit::NOT_ACCEPTED);
    assert!(
        answer(&run, "api-key").contains("has no identity"),
        "{run:#?}"
    );
    // A String entry is not trusted: anyone who may put parameters could write it.
    let parent = PATH.rsplit_once('/').unwrap().0;
    c.put_parameter()
        .name(format!("{parent}/apis/forged0001"))
        .value("identity")
        .r#type(ParameterType::String)
        .send()
        .await
        .unwrap();
    let run = svcauth(&cmd, &aws, NOW).await;
    expect(&run, exit::NOT_ACCEPTED);
    assert!(
        answer(&run, "api-key").contains("has no identity"),
        "{run:#?}"
    );
    let mut matrix = args(&words(
        "access matrix --format json --parameter AuthMode=api-key",
    ));
    matrix.extend_from_slice(&["--template", &template]);
    let run = svcauth(&matrix, &aws, NOW).await;
    expect(&run, exit::OK);
    let m: Value = serde_json::from_str(&run.stdout).unwrap();
    assert!(
        m["notes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n.as_str().unwrap().contains("forged0001 ignored")),
        "{run:#?}"
    );
    // An operator registers the deployed API under its name.
    c.put_parameter()
        .name(format!("{parent}/apis/a1b2c3d4e5"))
        .value("identity")
        .r#type(ParameterType::SecureString)
        .send()
        .await
        .unwrap();
    let run = svcauth(&cmd, &aws, NOW).await;
    expect(&run, exit::OK);
    assert!(
        answer(&run, "api-key").contains("granted `GET /internal/users/*` on identity"),
        "{run:#?}"
    );
    assert!(
        run.stdout.contains("registered (as API a1b2c3d4e5"),
        "{run:#?}"
    );
}
