//! What the two token modes cost in authorizer invocations, through the gateway's
//! emulation of API Gateway's result cache (the count is a property of the cache and
//! the identity sources, so a counting stub stands in for the authorizer here; the
//! real one is exercised by tests/e2e). The authorizers are declared as template.yaml
//! declares them for `AuthMode` `token` (identity source `Authorization`, result TTL
//! 60 s) and `key-or-token` (no identity source, `ReauthorizeEvery: 0`).
//!
//! Run `cargo test --workspace --test token_cache -- --nocapture` to see the numbers.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use local_gateway::client::request;
use local_gateway::function::FnFunction;
use local_gateway::{
    start, Environment, FactoryFuture, Function, FunctionError, FunctionFactory, Model, Options,
    Site,
};
use serde_json::{json, Value};
use test_support::TestClock;

const NOW: u64 = 1_795_953_600;

const TEMPLATE: &str = r#"
Parameters:
  TokenResultTtl: {Type: Number, Default: 60}
Resources:
  TokenOnlyApi:
    Type: AWS::Serverless::Api
    Properties:
      StageName: v1
      Auth:
        DefaultAuthorizer: token
        Authorizers:
          token:
            FunctionArn: !GetAtt AuthFn.Arn
            FunctionPayloadType: REQUEST
            Identity: {Headers: [Authorization], ReauthorizeEvery: !Ref TokenResultTtl}
  KeyOrTokenApi:
    Type: AWS::Serverless::Api
    Properties:
      StageName: v1
      Auth:
        DefaultAuthorizer: key-or-token
        Authorizers:
          key-or-token:
            FunctionArn: !GetAtt AuthFn.Arn
            FunctionPayloadType: REQUEST
            Identity: {ReauthorizeEvery: 0}
  AuthFn:
    Type: AWS::Serverless::Function
    Metadata: {BuildProperties: {Binary: authorizer}}
    Properties: {Timeout: 5}
  Backend:
    Type: AWS::Serverless::Function
    Metadata: {BuildProperties: {Binary: backend}}
    Properties:
      Events:
        A: {Type: Api, Properties: {RestApiId: !Ref TokenOnlyApi, Path: "/internal/users/{id}", Method: GET}}
        B: {Type: Api, Properties: {RestApiId: !Ref KeyOrTokenApi, Path: "/internal/users/{id}", Method: GET}}
"#;

/// A stub authorizer counting its invocations: allows `Bearer tok-...` or a key.
struct Stubs(Arc<AtomicU64>);

impl FunctionFactory for Stubs {
    fn build<'a>(&'a self, model: &'a Model, _site: &'a Site) -> FactoryFuture<'a> {
        Box::pin(async move {
            let mut out: BTreeMap<String, Arc<dyn Function>> = BTreeMap::new();
            for (id, f) in &model.functions {
                let calls = self.0.clone();
                let stub: Arc<dyn Function> = if f.binary.as_deref() == Some("authorizer") {
                    Arc::new(FnFunction(move |event: Value| {
                        calls.fetch_add(1, Ordering::SeqCst);
                        async move {
                            let h = &event["headers"];
                            let token = h["Authorization"].as_str().unwrap_or("");
                            let key = h["x-service-api-key"].as_str().unwrap_or("");
                            if token.starts_with("Bearer tok-") || key.starts_with("svcauth_") {
                                Ok(
                                    json!({"principalId": "svc", "policyDocument": {"Version": "2012-10-17",
                                    "Statement": [{"Effect": "Allow", "Action": "execute-api:Invoke", "Resource": "*"}]}}),
                                )
                            } else {
                                Err(FunctionError::new("Unauthorized", "Unauthorized"))
                            }
                        }
                    }))
                } else {
                    Arc::new(FnFunction(|_| async {
                        Ok(json!({"statusCode": 200, "body": "{}"}))
                    }))
                };
                out.insert(id.clone(), stub);
            }
            Ok(out)
        })
    }
}

/// `requests` requests from `callers` callers in turn, `per_second` a second of the
/// gateway's clock; each caller's token is replaced every `rotate_secs` (as the client
/// does before expiry). Returns authorizer invocations per API logical id.
async fn run(requests: u64, callers: u64, per_second: u64, rotate_secs: u64) -> (u64, u64) {
    let dir = std::env::temp_dir().join(format!("token-cache-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("template.yaml");
    std::fs::write(&path, TEMPLATE).unwrap();
    let mut o = Options::new(path);
    o.env = Environment::default();
    o.bind = "127.0.0.1:0".parse().unwrap();
    let clock = TestClock::at(NOW);
    o.clock = clock.unix_clock();
    o.access_log = Arc::new(|_| {});
    let calls = Arc::new(AtomicU64::new(0));
    let gw = start(o, &Stubs(calls.clone())).await.unwrap();
    let mut counts = Vec::new();
    for api in ["TokenOnlyApi", "KeyOrTokenApi"] {
        clock.set(NOW);
        gw.gateway().cache().flush();
        let before = calls.load(Ordering::SeqCst);
        let base = gw.url(api);
        let prefix = base
            .split_once(&gw.addr().to_string())
            .unwrap()
            .1
            .to_owned();
        for i in 0..requests {
            let t = i / per_second;
            clock.set(NOW + t);
            let caller = i % callers;
            let token = format!("Bearer tok-{caller}-{}", t / rotate_secs);
            let r = request(
                gw.addr(),
                "GET",
                &format!("{prefix}/internal/users/42"),
                &[("Authorization", &token)],
                b"",
            )
            .await
            .unwrap();
            assert_eq!(r.status, 200);
        }
        counts.push(calls.load(Ordering::SeqCst) - before);
    }
    (counts[0], counts[1])
}

#[tokio::test]
async fn token_routes_cost_one_authorizer_call_per_token_per_ttl_key_or_token_one_per_request() {
    // 1,000 requests from 3 callers at 10 requests/s (100 s): each token is
    // authorized at t=0 and again after the 60 s TTL.
    let (token, key_or_token) = run(1000, 3, 10, 450).await;
    println!(
        "1000 requests, 3 callers, 10/s: token {token} authorizer calls ({:.3}/request), key-or-token {key_or_token} ({:.3}/request)",
        token as f64 / 1000.0,
        key_or_token as f64 / 1000.0
    );
    assert_eq!(token, 3 * 2);
    assert_eq!(key_or_token, 1000);

    // The same 1,000 requests at 1 request/s (1,000 s), tokens replaced every 450 s:
    // per caller one call per TTL window it is active in, plus one per new token.
    let (token, key_or_token) = run(1000, 3, 1, 450).await;
    println!(
        "1000 requests, 3 callers, 1/s, tokens replaced every 450 s: token {token} authorizer calls ({:.3}/request), key-or-token {key_or_token} ({:.3}/request)",
        token as f64 / 1000.0,
        key_or_token as f64 / 1000.0
    );
    assert_eq!(key_or_token, 1000);
    // 1,000 s / 60 s TTL = 17 windows a caller, plus the windows a new token opens.
    assert!((3 * 17..=3 * 20).contains(&token), "{token}");
}
