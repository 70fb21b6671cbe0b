//! `svcauth access matrix --format json` at scale: 500 services, 50 APIs of 20 routes
//! each (half behind a key-or-token authorizer, half AWS_IAM), 50 roles with invoke
//! policies mapped by the IAM backends, a token issuer. One iteration is what the
//! command does after reading its inputs: read the template, prepare the answers,
//! write every cell as JSON (1.5 million cells, to a sink).
//!
//! Run: `cargo bench -p svcauth --bench access`. Figure in docs/keys.md.

use std::collections::{BTreeMap, HashSet};
use std::fmt::Write as _;
use std::io::{self, Write};
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use sam_template::template::{load, Environment};
use service_auth::{ApiGrant, ApiKey, KeyRecord, ServiceDocument, UnixTime};
use svcauth::access::{write_matrix, Access, Format, Registry, Sources};

const SERVICES: usize = 500;
const APIS: usize = 50;
const ROUTES: usize = 20;
const ROLES: usize = 50;
const NOW: u64 = 1_795_953_600;

/// The template: an authorizer, a token issuer and its API, 50 APIs with a backend
/// each, 50 roles.
fn template() -> String {
    let mut t = String::from("Resources:\n");
    let roles: Vec<String> = (0..ROLES)
        .map(|k| format!("${{Role{k}}}=service-{k}"))
        .collect();
    let role_map = roles.join(",");
    let _ = write!(
        t,
        r#"  Authorizer:
    Type: AWS::Serverless::Function
    Properties:
      Environment:
        Variables: {{SVCAUTH_KEY_SOURCE: ssm, SVCAUTH_ACCEPT: 'api-key,token', SVCAUTH_TOKEN_ISSUER: 'svcauth:bench'}}
  TokenApi:
    Type: AWS::Serverless::Api
    Properties:
      StageName: v1
      Auth:
        DefaultAuthorizer: Keys
        Authorizers:
          Keys: {{FunctionArn: !GetAtt Authorizer.Arn, FunctionPayloadType: REQUEST, Identity: {{Headers: [x-service-api-key]}}}}
  Issuer:
    Type: AWS::Serverless::Function
    Metadata: {{BuildProperties: {{Binary: token-issuer}}}}
    Properties:
      Environment:
        Variables:
          SVCAUTH_TOKEN_KEY: alias/bench
          SVCAUTH_TOKEN_ISSUER: 'svcauth:bench'
          SVCAUTH_IAM_ROLES: !Sub '{role_map}'
      Events:
        ByKey: {{Type: Api, Properties: {{RestApiId: !Ref TokenApi, Path: /token, Method: POST}}}}
        ByRole: {{Type: Api, Properties: {{RestApiId: !Ref TokenApi, Path: /token/iam, Method: POST, Auth: {{Authorizer: AWS_IAM}}}}}}
"#
    );
    for a in 0..APIS {
        let iam = a % 2 == 1;
        let auth = if iam {
            "{DefaultAuthorizer: AWS_IAM}".to_owned()
        } else {
            "{DefaultAuthorizer: Keys, Authorizers: {Keys: {FunctionArn: !GetAtt Authorizer.Arn, FunctionPayloadType: REQUEST, Identity: {Headers: [x-service-api-key]}}}}".to_owned()
        };
        let _ = write!(
            t,
            "  Api{a}:\n    Type: AWS::Serverless::Api\n    Properties: {{StageName: v1, Auth: {auth}}}\n  Backend{a}:\n    Type: AWS::Serverless::Function\n    Properties:\n"
        );
        if iam {
            let _ = write!(
                t,
                "      Environment:\n        Variables:\n          SVCAUTH_IAM_ROLES: !Sub '{role_map}'\n"
            );
        }
        t.push_str("      Events:\n");
        for r in 0..ROUTES {
            let (method, path) = match r % 4 {
                0 => ("GET", format!("/svc{a}/items/{{id}}")),
                1 => ("POST", format!("/svc{a}/items")),
                2 => ("GET", format!("/svc{a}/r{r}/{{id}}/detail")),
                _ => ("DELETE", format!("/svc{a}/r{r}/{{id}}")),
            };
            let _ = writeln!(
                t,
                "        E{r}: {{Type: Api, Properties: {{RestApiId: !Ref Api{a}, Path: '{path}', Method: {method}}}}}"
            );
        }
    }
    for k in 0..ROLES {
        let _ = write!(
            t,
            "  Role{k}:\n    Type: AWS::IAM::Role\n    Properties:\n      Policies:\n        - PolicyName: invoke\n          PolicyDocument:\n            Statement:\n              - {{Effect: Allow, Action: execute-api:Invoke, Resource: !Sub 'arn:aws:execute-api:${{AWS::Region}}:${{AWS::AccountId}}:${{TokenApi}}/v1/POST/token/iam'}}\n"
        );
        for m in [2 * (k % 25) + 1, 2 * ((k + 7) % 25) + 1] {
            let _ = writeln!(
                t,
                "              - {{Effect: Allow, Action: execute-api:Invoke, Resource: !Sub 'arn:aws:execute-api:${{AWS::Region}}:${{AWS::AccountId}}:${{Api{m}}}/v1/GET/svc{m}/*'}}"
            );
        }
        let _ = writeln!(
            t,
            "              - {{Effect: Deny, Action: execute-api:Invoke, Resource: !Sub 'arn:aws:execute-api:*:*:*/v1/DELETE/*'}}"
        );
    }
    t
}

/// 500 services, each granted routes on 5 APIs and POST /token, with one key.
fn documents() -> Vec<ServiceDocument> {
    (0..SERVICES)
        .map(|s| {
            let mut grants = vec![ApiGrant::new(&["token"], &["POST /token"])];
            for j in 0..5 {
                let a = (s * 7 + j * 11) % APIS;
                let api = format!("api{a}");
                let routes = match j % 3 {
                    0 => vec![
                        format!("GET /svc{a}/items/*"),
                        format!("POST /svc{a}/items"),
                    ],
                    1 => vec![format!("* /svc{a}/*")],
                    _ => vec![format!("GET /svc{a}/r{}/*", 2 + 4 * (s % 5))],
                };
                let routes: Vec<&str> = routes.iter().map(String::as_str).collect();
                grants.push(ApiGrant::new(&[&api], &routes));
            }
            let mut doc = ServiceDocument::new(&format!("service-{s}"), grants);
            doc.usage_plan_key = Some(format!("plan-{s}"));
            let key = ApiKey::generate(Some("bench")).expect("a key");
            doc.keys
                .push(KeyRecord::for_key(&key, UnixTime(NOW - 86_400), None));
            doc
        })
        .collect()
}

fn sources(text: &str, docs: &[ServiceDocument]) -> Sources {
    let model = load(text, &Environment::default()).expect("the bench template reads");
    let names: BTreeMap<String, String> = model
        .apis
        .iter()
        .map(|a| (a.api_id.clone(), a.api_id.clone()))
        .collect();
    Sources {
        model,
        documents: docs.to_vec(),
        revoked: HashSet::new(),
        registry: Registry::ById {
            names,
            label: "bench".into(),
        },
        region: "us-east-1".into(),
        account: "123456789012".into(),
        now: UnixTime(NOW),
    }
}

/// Counts what is written.
struct Counter(u64);

impl Write for Counter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0 += buf.len() as u64;
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn matrix_json(text: &str, docs: &[ServiceDocument]) -> u64 {
    let access = Access::new(sources(text, docs)).expect("the bench store builds");
    let mut out = io::BufWriter::with_capacity(1 << 16, Counter(0));
    write_matrix(&access, &[], &[], Format::Json, &mut out).expect("written");
    out.flush().expect("flushed");
    out.get_ref().0
}

fn bench(c: &mut Criterion) {
    let text = template();
    let docs = documents();
    // What one run answers, once: every proof allows something.
    let access = Access::new(sources(&text, &docs)).expect("builds");
    let mut allowed = [0usize; 3];
    let mut cells = 0usize;
    access.for_each_cell(&[], &[], |c| {
        cells += 1;
        if c.answer == svcauth::access::Answer::Allowed {
            allowed[c.via as usize] += 1;
        }
    });
    assert!(allowed.iter().all(|n| *n > 0), "{allowed:?}");
    eprintln!(
        "access matrix: {cells} cells, allowed by api-key/iam/token {allowed:?}, {} bytes of JSON",
        matrix_json(&text, &docs)
    );
    let mut g = c.benchmark_group("access");
    g.sample_size(10).measurement_time(Duration::from_secs(20));
    g.bench_function(
        "matrix --format json, 500 services x 50 APIs x 20 routes",
        |b| b.iter(|| matrix_json(&text, &docs)),
    );
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
