//! Nested applications with a local `Location` and stacks read side by side, on the
//! small copy of the split deployment in `tests/fixtures/split` (root nesting a
//! platform and an example application; the example imports the platform's exports).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use sam_template::template::{load, load_all, EnvValue, Environment, Model, RouteAuth};

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/split")
}

fn text(file: &str) -> String {
    std::fs::read_to_string(dir().join(file)).unwrap()
}

fn env(stack: &str, sub: &str, params: &[(&str, &str)]) -> Environment {
    Environment {
        stack_name: stack.into(),
        template_dir: Some(dir().join(sub)),
        parameters: params
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect::<BTreeMap<_, _>>(),
        ..Environment::default()
    }
}

/// `API METHOD PATH -> authorizer function (its SVCAUTH_ACCEPT)` or `-> AWS_IAM`.
fn routes(m: &Model) -> Vec<String> {
    m.routes
        .iter()
        .map(|r| {
            let auth = match &r.auth {
                RouteAuth::Request(a) => {
                    let accept = match m.functions[&a.function].env.get("SVCAUTH_ACCEPT") {
                        Some(EnvValue::Text(t)) => t.clone(),
                        other => format!("{other:?}"),
                    };
                    format!("{} ({accept})", a.function)
                }
                other => other.describe(),
            };
            format!("{} {} {} -> {auth}", r.api, r.method, r.path)
        })
        .collect()
}

#[test]
fn the_root_nests_the_platform_and_the_example_that_imports_its_exports() {
    let m = load(&text("template.yaml"), &env("svcauth-local", "", &[])).unwrap();
    assert_eq!(
        routes(&m),
        [
            "TokenApi POST /token -> AuthorizerFunction (api-key)",
            "TokenApi POST /token/iam -> AWS_IAM",
            "IdentityKeyApi GET /users/{id} -> AuthorizerFunction (api-key)",
            "IdentityIamApi GET /users/{id} -> AWS_IAM",
        ]
    );
    // Stacks: names as CloudFormation builds them (less its random suffix), parameters
    // passed down, the platform's output feeding the example's PlatformStackName.
    let stacks: Vec<(String, Option<String>)> = m
        .stacks
        .iter()
        .map(|s| (s.name.clone(), s.parent_app.clone()))
        .collect();
    assert_eq!(
        stacks,
        [
            ("svcauth-local".to_owned(), None),
            (
                "svcauth-local-Platform".to_owned(),
                Some("Platform".to_owned())
            ),
            (
                "svcauth-local-Platform-KeyAuthorizer".to_owned(),
                Some("KeyAuthorizer".to_owned())
            ),
            (
                "svcauth-local-Platform-TokenAuthorizer".to_owned(),
                Some("TokenAuthorizer".to_owned())
            ),
            (
                "svcauth-local-Example".to_owned(),
                Some("Example".to_owned())
            ),
        ]
    );
    let example = &m.stacks[4];
    assert_eq!(
        example.parameters["PlatformStackName"],
        "svcauth-local-Platform"
    );
    assert_eq!(example.parameters["AuthMode"], "both");
    assert_eq!(m.parameters["AuthMode"], "both");
    // The same application nested twice: the second one's resources are named after it.
    let accept = |f: &str| m.functions[f].env["SVCAUTH_ACCEPT"].clone();
    assert_eq!(
        accept("AuthorizerFunction"),
        EnvValue::Text("api-key".into())
    );
    assert_eq!(
        accept("TokenAuthorizerAuthorizerFunction"),
        EnvValue::Text("token".into())
    );
    assert_eq!(
        m.functions["TokenAuthorizerAuthorizerFunction"]
            .role
            .as_deref(),
        Some("TokenAuthorizerAuthorizerRole")
    );
    // An imported URL is still the platform's API; the role map names the local role.
    let identity = &m.functions["IdentityFunction"];
    assert_eq!(
        identity.env["SERVICE_TOKEN_URL"],
        EnvValue::ApiUrl {
            api: "TokenApi".into()
        }
    );
    assert_eq!(
        identity.env["SVCAUTH_IAM_ROLES"],
        EnvValue::Text("CallerRole=caller-service".into())
    );
    assert_eq!(
        m.roles["CallerRole"].statements[0].resources,
        ["arn:aws:execute-api:us-east-1:123456789012:identityiam/v1/GET/users/*"]
    );
}

#[test]
fn parameters_passed_down_decide_what_the_nested_stack_has() {
    let m = load(
        &text("template.yaml"),
        &env("svcauth-local", "", &[("AuthMode", "token")]),
    )
    .unwrap();
    assert_eq!(
        routes(&m)[2],
        "IdentityKeyApi GET /users/{id} -> TokenAuthorizerAuthorizerFunction (token)"
    );
    assert!(m.api("IdentityIamApi").is_none());
    let m = load(
        &text("template.yaml"),
        &env("svcauth-local", "", &[("AuthMode", "iam")]),
    )
    .unwrap();
    let apis: Vec<&str> = m.apis.iter().map(|a| a.api_id.as_str()).collect();
    assert_eq!(apis, ["token", "identityiam"]);
    // A value the nested template does not allow is refused there.
    let bad = text("template.yaml").replace(
        "AllowedValues: [api-key, iam, both, token, key-or-token]",
        "",
    );
    let err = load(&bad, &env("svcauth-local", "", &[("AuthMode", "nope")]))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("example/template.yaml#parameter AuthMode"),
        "{err}"
    );
}

/// The example deployed against a platform stack that already exists: the platform's
/// template read first, as the stack the example's PlatformStackName names.
#[test]
fn an_application_read_alongside_the_platform_it_imports_from() {
    let platform = text("platform/template.yaml");
    let example = text("example/template.yaml");
    let m = load_all(&[
        (&platform, &env("team-platform", "platform", &[])),
        (
            &example,
            &env(
                "team-example",
                "example",
                &[("PlatformStackName", "team-platform"), ("AuthMode", "both")],
            ),
        ),
    ])
    .unwrap();
    assert_eq!(
        routes(&m),
        [
            "TokenApi POST /token -> AuthorizerFunction (api-key)",
            "TokenApi POST /token/iam -> AWS_IAM",
            "IdentityKeyApi GET /users/{id} -> AuthorizerFunction (api-key)",
            "IdentityIamApi GET /users/{id} -> AWS_IAM",
        ]
    );
    assert_eq!(m.parameters["PlatformStackName"], "team-platform");

    // Another platform stack's name, or no platform at all: the import has nothing to
    // find, and says so.
    for (templates, missing) in [
        (
            vec![
                (platform.as_str(), env("team-platform", "platform", &[])),
                (
                    example.as_str(),
                    env("team-example", "example", &[("PlatformStackName", "other")]),
                ),
            ],
            "other-KeyAuthorizerArn",
        ),
        (
            vec![(example.as_str(), env("team-example", "example", &[]))],
            "svcauth-platform-KeyAuthorizerArn",
        ),
    ] {
        let refs: Vec<(&str, &Environment)> = templates.iter().map(|(t, e)| (*t, e)).collect();
        let err = load_all(&refs).unwrap_err().to_string();
        assert!(
            err.contains(&format!(
                "Fn::ImportValue {missing}: no template read before"
            )),
            "{err}"
        );
    }
    // The same stack read twice exports the same names twice: refused, as CloudFormation does.
    let e = env("team-platform", "platform", &[]);
    let err = load_all(&[(&platform, &e), (&platform, &e)])
        .unwrap_err()
        .to_string();
    assert!(err.contains("already exported"), "{err}");
}

#[test]
fn bad_nesting_is_refused_with_the_place() {
    let root = |app: &str| {
        format!(
            "Resources:\n  Platform:\n    Type: AWS::Serverless::Application\n    Properties:\n{app}"
        )
    };
    let cases = [
        (
            root("      Location: platform/template.yaml\n      Parameters: {Nope: x}\n"),
            "platform/template.yaml#parameters: the template has no parameter Nope",
        ),
        (
            root("      Location: missing.yaml\n"),
            "Resources.Platform: cannot read",
        ),
        (
            root("      Location: cycle.yaml\n"),
            "cycle.yaml nests itself",
        ),
    ];
    for (text, want) in cases {
        let err = load(&text, &env("s", "", &[])).unwrap_err().to_string();
        assert!(err.contains(want), "{err}");
    }
    // An application's parameters that need its own outputs.
    let cycle = "Resources:\n  A:\n    Type: AWS::Serverless::Application\n    Properties:\n      Location: example/template.yaml\n      Parameters: {PlatformStackName: !GetAtt A.Outputs.X}\n";
    let err = load(cycle, &env("s", "", &[])).unwrap_err().to_string();
    assert!(err.contains("a cycle"), "{err}");
    // An output the application does not have.
    let text = text("template.yaml").replace("Platform.Outputs.StackName", "Platform.Outputs.Nope");
    let err = load(&text, &env("s", "", &[])).unwrap_err().to_string();
    assert!(
        err.contains("the application Platform has no output Nope"),
        "{err}"
    );
    // A remote application is not read; using its outputs says why.
    let remote = "Resources:\n  A:\n    Type: AWS::Serverless::Application\n    Properties:\n      Location: {ApplicationId: arn:aws:serverlessrepo:us-east-1:123456789012:applications/x, SemanticVersion: 1.0.0}\n  Api:\n    Type: AWS::Serverless::Api\n    Properties:\n      StageName: v1\n      Auth:\n        DefaultAuthorizer: K\n        Authorizers:\n          K: {FunctionArn: !GetAtt A.Outputs.FunctionArn, FunctionPayloadType: REQUEST, Identity: {Headers: [k]}}\n";
    let err = load(remote, &env("s", "", &[])).unwrap_err().to_string();
    assert!(err.contains("not a local file"), "{err}");
}
