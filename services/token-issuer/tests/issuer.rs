//! token-issuer against KMS and SSM served by a real `moto_server`, driven with API
//! Gateway proxy events (as `lambda_http` receives them) through its real router:
//! tokens for API-key and IAM callers checked by this workspace's verifier and by an
//! independent one (Python `cryptography`), narrowing and never widening, refusals
//! (revoked, expired, unknown key, revocation marker, unmapped role, brake), reuse,
//! KMS throttling (back-off, then 503), publish-before-sign and the key set endpoint.

use std::borrow::Cow;
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use http_body_util::BodyExt;
use keystore_ssm::aws_sdk_ssm::types::ParameterType;
use keystore_ssm::{aws_sdk_ssm, SsmKeyStore};
use serde_json::{json, Value};
use service_auth::context::{self, KeyCaller, TokenCaller};
use service_auth::identity::IamRoleMap;
use service_auth::{ApiGrant, ApiKey, KeyRecord, KeyStatus, ServiceDocument, UnixTime};
use service_identity_http::{lambda_service, IdentityConfig};
use service_token::{KeySet, Permission, Proof, TokenClaims, Verifier, VerifierConfig};
use test_support::{
    create_kms_key, moto_kms_config, put_service_document, python_verify_es256, MotoServer,
    TestClock,
};
use token_issuer::api::{Documents, JwksSource, Parts, Signing};
use token_issuer::{router, AppState, IssuerSettings, RetryPolicy};
use token_kms::aws_sdk_kms;
use token_kms::aws_sdk_kms::config::interceptors::{
    BeforeDeserializationInterceptorContextMut, BeforeTransmitInterceptorContextRef,
};
use token_kms::aws_sdk_kms::config::{ConfigBag, Intercept, RuntimeComponents};
use token_kms::aws_sdk_kms::types::{KeySpec, KeyUsageType};
use tower::ServiceExt;

const PATH: &str = "/svcauth/test/keys";
const JWKS: &str = "/svcauth/test/token/jwks";
const ALIAS: &str = "alias/svcauth-token-test";
const ISSUER: &str = "svcauth:test";
const NOW: u64 = 1_764_600_000;
const TUTOR_ROLE: &str = "arn:aws:sts::123456789012:assumed-role/tutor-task-role/task-1";
const REPORTS_ROLE: &str = "arn:aws:sts::123456789012:assumed-role/reports-role/task-1";

/// KMS `Sign` failures injected at the SDK's HTTP edge (the request reaches moto, the
/// answer is replaced by the one KMS sends when it throttles), and `Sign` calls counted.
#[derive(Debug, Clone, Default)]
struct KmsFaults(Arc<Mutex<FaultState>>);

#[derive(Debug, Default)]
struct FaultState {
    /// Throttle this many more `Sign` calls (`u32::MAX`: all).
    throttle: u32,
    /// The error code to answer with.
    code: &'static str,
    sign_calls: u64,
}

#[derive(Debug, Clone)]
struct Throttle(&'static str);

impl aws_smithy_types::config_bag::Storable for Throttle {
    type Storer = aws_smithy_types::config_bag::StoreReplace<Self>;
}

impl KmsFaults {
    fn throttle(&self, calls: u32, code: &'static str) {
        let mut s = self.0.lock().unwrap();
        s.throttle = calls;
        s.code = code;
    }
    fn sign_calls(&self) -> u64 {
        self.0.lock().unwrap().sign_calls
    }
}

impl Intercept for KmsFaults {
    fn name(&self) -> &'static str {
        "KmsFaults"
    }

    fn read_before_transmit(
        &self,
        context: &BeforeTransmitInterceptorContextRef<'_>,
        _: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), aws_sdk_kms::error::BoxError> {
        let target = context
            .request()
            .headers()
            .get("x-amz-target")
            .unwrap_or_default();
        if target != "TrentService.Sign" {
            return Ok(());
        }
        let mut s = self.0.lock().unwrap();
        s.sign_calls += 1;
        if s.throttle > 0 {
            if s.throttle != u32::MAX {
                s.throttle -= 1;
            }
            cfg.interceptor_state().store_put(Throttle(s.code));
        }
        Ok(())
    }

    fn modify_before_deserialization(
        &self,
        context: &mut BeforeDeserializationInterceptorContextMut<'_>,
        _: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), aws_sdk_kms::error::BoxError> {
        let Some(Throttle(code)) = cfg.load::<Throttle>().cloned() else {
            return Ok(());
        };
        let body = format!(r#"{{"__type":"{code}","message":"Rate exceeded"}}"#);
        let mut resp = aws_smithy_runtime_api::http::Response::new(
            aws_smithy_runtime_api::http::StatusCode::try_from(400u16)?,
            aws_smithy_types::body::SdkBody::from(body),
        );
        resp.headers_mut()
            .insert("content-type", "application/x-amz-json-1.1");
        *context.response_mut() = resp;
        Ok(())
    }
}

/// A KMS client for moto as the issuer builds its own: one attempt per call.
fn kms_client(moto: &MotoServer, faults: &KmsFaults) -> aws_sdk_kms::Client {
    let conf = moto_kms_config(&moto.endpoint()).interceptor(faults.clone());
    aws_sdk_kms::Client::from_conf(conf.build())
}

struct Fixture {
    _moto: MotoServer,
    app: Router,
    state: AppState,
    ssm: aws_sdk_ssm::Client,
    kms: aws_sdk_kms::Client,
    faults: KmsFaults,
    clock: TestClock,
    key_id: String,
    active: ApiKey,
    revoked: ApiKey,
}

/// Publishes `keys` as `svcauth tokens keys add` does: a SecureString.
async fn publish(ssm: &aws_sdk_ssm::Client, kms: &aws_sdk_kms::Client, keys: &[&str]) {
    publish_as(ssm, kms, keys, ParameterType::SecureString).await;
}

async fn publish_as(
    ssm: &aws_sdk_ssm::Client,
    kms: &aws_sdk_kms::Client,
    keys: &[&str],
    kind: ParameterType,
) {
    let set = token_kms::key_set(kms, keys).await.unwrap();
    ssm.put_parameter()
        .name(JWKS)
        .value(serde_json::to_string(&set).unwrap())
        .r#type(kind)
        .overwrite(true)
        .send()
        .await
        .unwrap();
}

fn grants() -> Vec<ApiGrant> {
    vec![
        ApiGrant::new(
            &["identity"],
            &["GET /internal/users/*", "GET /internal/users/by-email/*"],
        ),
        ApiGrant::new(&["billing", "identity"], &["POST /internal/charges"]),
        ApiGrant::new(&["token"], &["POST /token"]),
    ]
}

fn tutor_doc(active: &ApiKey, revoked: &ApiKey) -> ServiceDocument {
    let mut doc = ServiceDocument::new("tutor-service", grants());
    doc.keys
        .push(KeyRecord::for_key(active, UnixTime(NOW - 86_400), None));
    let mut r = KeyRecord::for_key(revoked, UnixTime(NOW - 86_400), None);
    r.status = KeyStatus::Revoked;
    r.revoked_at = Some(UnixTime(NOW - 60));
    doc.keys.push(r);
    doc
}

async fn fixture_with(retry: RetryPolicy, published: bool) -> Fixture {
    let moto = MotoServer::start();
    let faults = KmsFaults::default();
    let kms = kms_client(&moto, &faults);
    let key_id = create_kms_key(&kms, KeySpec::EccNistP256, KeyUsageType::SignVerify).await;
    kms.create_alias()
        .alias_name(ALIAS)
        .target_key_id(&key_id)
        .send()
        .await
        .unwrap();
    let ssm = test_support::moto_ssm_client(&moto.endpoint());
    if published {
        publish(&ssm, &kms, &[&key_id]).await;
    }
    let active = ApiKey::generate(Some("dev")).unwrap();
    let revoked = ApiKey::generate(Some("dev")).unwrap();
    put_service_document(&ssm, PATH, &tutor_doc(&active, &revoked)).await;
    let roles =
        IamRoleMap::parse("tutor-task-role=tutor-service,reports-role=reports-service").unwrap();
    let clock = TestClock::at(NOW);
    let state = AppState::new(Parts {
        identity: IdentityConfig::new(roles),
        settings: IssuerSettings {
            issuer: ISSUER.into(),
            default_lifetime_secs: 600,
            min_remaining_secs: 0,
        },
        signing: Signing::Kms {
            client: kms.clone(),
            key: ALIAS.into(),
        },
        documents: Documents::Ssm(SsmKeyStore::new(ssm.clone(), PATH).unwrap()),
        jwks: JwksSource::Ssm {
            client: ssm.clone(),
            parameter: JWKS.into(),
        },
        clock: clock.unix_clock(),
        retry,
    });
    Fixture {
        _moto: moto,
        app: router(state.clone()),
        state,
        ssm,
        kms,
        faults,
        clock,
        key_id,
        active,
        revoked,
    }
}

async fn fixture() -> Fixture {
    fixture_with(RetryPolicy::default(), true).await
}

/// Who API Gateway says the caller is.
enum Auth<'a> {
    /// The API-key authorizer allowed this key of tutor-service.
    Key(&'a ApiKey),
    /// `AWS_IAM` verified a signature by this assumed-role session.
    Iam(&'a str),
    /// An authorizer that accepted a signed token (not a proof the issuer takes).
    Token(&'a ApiKey),
    None,
}

/// An API Gateway REST proxy event for the `v1` stage of the token API.
fn event(method: &str, path: &str, auth: Auth<'_>, body: Option<&str>) -> String {
    let mut identity = json!({"sourceIp": "10.0.12.34", "userAgent": "service-client/0.1"});
    let mut authorizer = Value::Null;
    // The authorizer's context, written by the authorizer's own writers.
    let written = |entries: &mut dyn Iterator<Item = (&'static str, Cow<'_, str>)>| {
        let mut fields: serde_json::Map<String, Value> =
            entries.map(|(k, v)| (k.to_owned(), json!(v))).collect();
        fields.insert("principalId".into(), json!("tutor-service"));
        Value::Object(fields)
    };
    match auth {
        Auth::Key(key) => {
            let key_id = key.key_id();
            authorizer = written(&mut context::key_entries(KeyCaller {
                service: "tutor-service",
                key_id: key_id.as_str(),
                expires_at: None,
            }));
            authorizer["integrationLatency"] = json!(3);
        }
        Auth::Token(key) => {
            let key_id = key.key_id();
            authorizer = written(&mut context::token_entries(TokenCaller {
                service: "tutor-service",
                token_id: "0123456789abcdef0123456789abcdef",
                expires_at: UnixTime::parse_rfc3339("2026-12-01T10:10:00Z").unwrap(),
                proof_key_id: Some(key_id.as_str()),
            }));
        }
        Auth::Iam(arn) => {
            identity["userArn"] = json!(arn);
            identity["caller"] = json!("AROAEXAMPLEROLEID0001:task-1");
            identity["accountId"] = json!("123456789012");
        }
        Auth::None => {}
    }
    let mut ctx = json!({
        "accountId": "123456789012",
        "resourceId": "t0k3n1",
        "stage": "v1",
        "requestId": "6f1d2c3b-0000-4000-8000-000000000001",
        "identity": identity,
        "resourcePath": path,
        "httpMethod": method,
        "apiId": "tokenapi01",
        "path": format!("/v1{path}"),
        "protocol": "HTTP/1.1",
        "domainName": "tokenapi01.execute-api.eu-west-1.amazonaws.com",
    });
    if !authorizer.is_null() {
        ctx["authorizer"] = authorizer;
    }
    json!({
        "resource": path,
        "path": path,
        "httpMethod": method,
        "headers": {"Content-Type": "application/json", "x-correlation-id": "corr-token-1"},
        "multiValueHeaders": {"Content-Type": ["application/json"], "x-correlation-id": ["corr-token-1"]},
        "queryStringParameters": null,
        "multiValueQueryStringParameters": null,
        "pathParameters": null,
        "stageVariables": null,
        "requestContext": ctx,
        "body": body,
        "isBase64Encoded": false
    })
    .to_string()
}

struct Answer {
    status: u16,
    body: Value,
    raw: String,
    headers: http::HeaderMap,
}

async fn call(
    app: &Router,
    method: &str,
    path: &str,
    auth: Auth<'_>,
    body: Option<&str>,
) -> Answer {
    let req = lambda_http::request::from_str(&event(method, path, auth, body)).unwrap();
    let res = lambda_service(app.clone()).oneshot(req).await.unwrap();
    let status = res.status().as_u16();
    let headers = res.headers().clone();
    let bytes = res.into_body().collect().await.unwrap().to_bytes();
    let raw = String::from_utf8(bytes.to_vec()).unwrap();
    let body = serde_json::from_str(&raw).unwrap_or_else(|e| panic!("not JSON ({e}): {raw}"));
    Answer {
        status,
        body,
        raw,
        headers,
    }
}

async fn token_for(f: &Fixture, auth: Auth<'_>, body: Option<&str>) -> Answer {
    call(&f.app, "POST", "/token", auth, body).await
}

fn code(a: &Answer) -> (u16, &str) {
    (a.status, a.body["error"].as_str().unwrap_or("-"))
}

async fn key_set(f: &Fixture) -> (KeySet, Value) {
    let a = call(&f.app, "GET", "/.well-known/jwks.json", Auth::None, None).await;
    assert_eq!(a.status, 200, "{}", a.raw);
    (KeySet::from_json(a.raw.as_bytes()).unwrap(), a.body)
}

fn verify(token: &Value, keys: &KeySet, api: &str, now: u64) -> TokenClaims {
    Verifier::new(VerifierConfig::new(ISSUER))
        .verify(token.as_str().unwrap(), keys, api, UnixTime(now))
        .unwrap()
        .claims
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_api_key_caller_gets_a_token_both_verifiers_accept() {
    let f = fixture().await;
    let a = token_for(&f, Auth::Key(&f.active), None).await;
    assert_eq!(a.status, 200, "{}", a.raw);
    assert_eq!(a.headers["cache-control"], "no-store");
    assert_eq!(a.headers["x-correlation-id"], "corr-token-1");
    assert_eq!(a.body["tokenType"], "Bearer");
    assert_eq!(a.body["expiresAt"], UnixTime(NOW + 600).to_rfc3339());
    assert_eq!(a.body["expiresIn"], 600);
    let (keys, jwks) = key_set(&f).await;
    let claims = verify(&a.body["token"], &keys, "identity", NOW);
    assert_eq!(claims.sub, "tutor-service");
    assert_eq!(claims.iss, ISSUER);
    assert_eq!(claims.aud, ["billing", "identity", "token"]);
    assert_eq!(
        claims.permissions,
        grants()
            .iter()
            .map(|g| Permission::new(g.apis.clone(), g.routes.clone()))
            .collect::<Vec<_>>()
    );
    assert_eq!(
        claims.proof,
        Proof::ApiKey {
            key_id: f.active.key_id().to_string()
        }
    );
    assert_eq!(claims.jti, a.body["tokenId"].as_str().unwrap());
    assert_eq!(claims.jti.len(), 32);
    assert_eq!((claims.iat, claims.nbf, claims.exp), (NOW, NOW, NOW + 600));
    // The header names the KMS key id, not the alias.
    let header = jsonwebtoken::decode_header(a.body["token"].as_str().unwrap());
    assert_eq!(header.unwrap().kid.as_deref(), Some(f.key_id.as_str()));
    // An independent implementation agrees.
    let py = python_verify_es256(a.body["token"].as_str().unwrap(), &jwks);
    assert!(py.starts_with("valid "), "{py}");
    assert!(py.contains(&format!("\"jti\": \"{}\"", claims.jti)), "{py}");
    assert!(py.contains("\"sub\": \"tutor-service\""), "{py}");
    // An API outside the grants is not in the audience.
    let refused = Verifier::new(VerifierConfig::new(ISSUER)).verify(
        a.body["token"].as_str().unwrap(),
        &keys,
        "tutor",
        UnixTime(NOW),
    );
    assert!(refused.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_iam_caller_gets_a_token_naming_its_role() {
    let f = fixture().await;
    let a = call(
        &f.app,
        "POST",
        "/token/iam",
        Auth::Iam(TUTOR_ROLE),
        Some(r#"{"audience":["billing"],"lifetimeSeconds":3600}"#),
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.raw);
    let claims = verify(&a.body["token"], &key_set(&f).await.0, "billing", NOW);
    assert_eq!(
        claims.proof,
        Proof::Iam {
            role_arn: "arn:aws:iam::123456789012:role/tutor-task-role".into()
        }
    );
    assert_eq!(claims.aud, ["billing"]);
    assert_eq!(
        claims.permissions,
        [Permission::new(["billing"], ["POST /internal/charges"])]
    );
    assert_eq!(claims.exp, NOW + 3600);

    // A role that is not mapped to a service: 403, and a mapped role whose service has
    // no document: 403 too.
    let a = call(
        &f.app,
        "POST",
        "/token/iam",
        Auth::Iam("arn:aws:sts::123456789012:assumed-role/stranger-role/s-1"),
        None,
    )
    .await;
    assert_eq!(code(&a), (403, "unknown_role"), "{}", a.raw);
    let a = call(&f.app, "POST", "/token/iam", Auth::Iam(REPORTS_ROLE), None).await;
    assert_eq!(code(&a), (403, "unknown_service"), "{}", a.raw);
    assert_eq!(f.state.reusable_tokens(), 1);
}

/// Issue 19 A1: `POST /token/iam` checks the service's `POST /token` grant as the key
/// route's authorizer does: a mapped role whose service lost (or never had) the grant
/// gets no token. The key route refuses too (an authorizer answer cached before the
/// grant was removed may still let the key through).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_proof_needs_the_token_grant() {
    let f = fixture().await;
    let mut doc = tutor_doc(&f.active, &f.revoked);
    doc.ungrant("token");
    put_service_document(&f.ssm, PATH, &doc).await;
    let a = call(&f.app, "POST", "/token/iam", Auth::Iam(TUTOR_ROLE), None).await;
    assert_eq!(code(&a), (403, "tokens_not_granted"), "{}", a.raw);
    assert!(a.body.get("token").is_none());
    assert!(
        a.body["message"]
            .as_str()
            .unwrap()
            .contains("svcauth keys grant --service tutor-service --api token"),
        "{}",
        a.raw
    );
    let a = token_for(&f, Auth::Key(&f.active), None).await;
    assert_eq!(code(&a), (403, "tokens_not_granted"), "{}", a.raw);
    assert_eq!(f.faults.sign_calls(), 0, "nothing was signed");
    assert_eq!(f.state.reusable_tokens(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoked_expired_and_unknown_keys_get_401_and_no_token() {
    let f = fixture().await;
    let stranger = ApiKey::generate(Some("dev")).unwrap();
    let a = token_for(&f, Auth::Key(&f.revoked), None).await;
    assert_eq!(code(&a), (401, "key_not_usable"), "{}", a.raw);
    assert!(a.body.get("token").is_none());
    let a = token_for(&f, Auth::Key(&stranger), None).await;
    assert_eq!(code(&a), (401, "key_not_usable"), "{}", a.raw);

    // An expired key (the authorizer's cached answer may still let it through).
    let expired = ApiKey::generate(Some("dev")).unwrap();
    let mut doc = tutor_doc(&f.active, &f.revoked);
    doc.keys.push(KeyRecord::for_key(
        &expired,
        UnixTime(NOW - 1000),
        Some(UnixTime(NOW - 1)),
    ));
    put_service_document(&f.ssm, PATH, &doc).await;
    let a = token_for(&f, Auth::Key(&expired), None).await;
    assert_eq!(code(&a), (401, "key_not_usable"), "{}", a.raw);

    // The revocation marker alone refuses a key the document still calls active.
    let store = SsmKeyStore::new(f.ssm.clone(), PATH).unwrap();
    assert!(store
        .put_revocation_marker("tutor-service", &f.active.key_id(), UnixTime(NOW), "test")
        .await
        .unwrap());
    let a = token_for(&f, Auth::Key(&f.active), None).await;
    assert_eq!(code(&a), (401, "key_not_usable"), "{}", a.raw);
    assert!(a.body["message"]
        .as_str()
        .unwrap()
        .contains(f.active.key_id().as_str()));
    assert!(!a.raw.contains(f.active.expose_secret()));
    assert_eq!(f.faults.sign_calls(), 0, "nothing was signed");
    assert_eq!(f.state.reusable_tokens(), 0);

    // A document that is stored but unusable (here: not a SecureString): 403, no token.
    f.ssm
        .put_parameter()
        .name(format!("{PATH}/reports-service"))
        .value(ServiceDocument::new("reports-service", grants()).to_json())
        .r#type(ParameterType::String)
        .send()
        .await
        .unwrap();
    let a = call(&f.app, "POST", "/token/iam", Auth::Iam(REPORTS_ROLE), None).await;
    assert_eq!(code(&a), (403, "document_invalid"), "{}", a.raw);

    // No identity at all (a route wired without auth): 401.
    let a = token_for(&f, Auth::None, None).await;
    assert_eq!(code(&a), (401, "no_identity"), "{}", a.raw);
    // A token is not a proof for a new token (that would outlive every revocation).
    let a = token_for(&f, Auth::Token(&f.active), None).await;
    assert_eq!(code(&a), (401, "token_not_a_proof"), "{}", a.raw);
    assert!(a.body.get("token").is_none());
    assert_eq!(f.faults.sign_calls(), 0);
}

static LOGS: Mutex<Vec<u8>> = Mutex::new(Vec::new());

struct ToLogs;

impl Write for ToLogs {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        LOGS.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Every log line of this test binary, as the Lambda runtime's JSON formatter writes
/// them (a global subscriber: tracing caches call-site interest process-wide).
fn capture_logs() {
    static INIT: std::sync::Once = std::sync::Once::new();
    INIT.call_once(|| {
        let subscriber = tracing_subscriber::fmt()
            .json()
            .with_writer(|| ToLogs)
            .with_max_level(tracing::Level::INFO)
            .finish();
        tracing::subscriber::set_global_default(subscriber).expect("one global subscriber");
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_name_the_token_id_and_key_never_the_token() {
    capture_logs();
    let f = fixture().await;
    let a = token_for(&f, Auth::Key(&f.active), None).await;
    assert_eq!(a.status, 200, "{}", a.raw);
    let again = token_for(&f, Auth::Key(&f.active), None).await;
    assert_eq!(again.body["token"], a.body["token"]);
    let refused = token_for(&f, Auth::Key(&f.revoked), None).await;
    assert_eq!(refused.status, 401);
    // A caller that pastes its key into the body by mistake: refused, not logged.
    let pasted = format!(r#"{{"audience":"{}"}}"#, f.active.expose_secret());
    let bad = token_for(&f, Auth::Key(&f.active), Some(&pasted)).await;
    assert_eq!(code(&bad), (400, "bad_request"), "{}", bad.raw);
    let token = a.body["token"].as_str().unwrap();
    let jti = a.body["tokenId"].as_str().unwrap();
    let out = String::from_utf8(LOGS.lock().unwrap().clone()).unwrap();
    let lines: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let issued: Vec<&Value> = lines
        .iter()
        .filter(|l| l["fields"]["event"] == "token_issued" && l["fields"]["jti"] == jti)
        .collect();
    assert_eq!(issued.len(), 2, "{out}");
    assert_eq!(issued[0]["fields"]["kid"], f.key_id.as_str());
    assert_eq!(issued[0]["fields"]["proof"], "api-key");
    assert_eq!(issued[0]["fields"]["service"], "tutor-service");
    assert_eq!(
        issued[0]["fields"]["credential"],
        f.active.key_id().as_str()
    );
    assert_eq!(issued[0]["fields"]["correlation_id"], "corr-token-1");
    assert_eq!(
        (
            issued[0]["fields"]["reused"].as_bool(),
            issued[1]["fields"]["reused"].as_bool()
        ),
        (Some(false), Some(true))
    );
    assert!(
        lines.iter().any(|l| l["fields"]["event"] == "token_refused"
            && l["fields"]["code"] == "key_not_usable"
            && l["fields"]["status"] == 401
            && l["fields"]["credential"] == f.revoked.key_id().as_str()),
        "{out}"
    );
    let signature = token.rsplit('.').next().unwrap();
    for secret in [
        token,
        signature,
        f.active.expose_secret(),
        f.revoked.expose_secret(),
    ] {
        assert!(!out.contains(secret), "a secret in the logs: {out}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_narrow_the_grants_and_never_widen_them() {
    let f = fixture().await;
    let a = token_for(
        &f,
        Auth::Key(&f.active),
        Some(r#"{"permissions":[{"apis":["identity"],"routes":["GET /internal/users/*"]}]}"#),
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.raw);
    let claims = verify(&a.body["token"], &key_set(&f).await.0, "identity", NOW);
    assert_eq!(
        claims.permissions,
        [Permission::new(["identity"], ["GET /internal/users/*"])]
    );
    assert_eq!(claims.aud, ["identity"]);

    let big = format!(r#"{{"audience":["{}"]}}"#, "a".repeat(9000));
    let cases: Vec<(&str, (u16, &str))> = vec![
        (
            r#"{"permissions":[{"apis":["identity"],"routes":["DELETE /internal/users/*"]}]}"#,
            (403, "permission_not_granted"),
        ),
        (
            r#"{"permissions":[{"apis":["tutor"],"routes":["GET /internal/users/*"]}]}"#,
            (403, "permission_not_granted"),
        ),
        (
            r#"{"permissions":[{"apis":["identity"],"routes":["* /internal/*"]}]}"#,
            (403, "permission_not_granted"),
        ),
        (r#"{"audience":["tutor"]}"#, (403, "permission_not_granted")),
        (r#"{"permissions":[]}"#, (400, "bad_request")),
        (r#"{"audience":[]}"#, (400, "bad_request")),
        (r#"{"lifetimeSeconds":3601}"#, (400, "bad_request")),
        (r#"{"lifetimeSeconds":10}"#, (400, "bad_request")),
        (r#"{"lifetimeSeconds":"600"}"#, (400, "bad_request")),
        (r#"{"sub":"admin-service"}"#, (400, "bad_request")),
        ("not json", (400, "bad_request")),
        (big.as_str(), (400, "bad_request")),
    ];
    for (body, want) in cases {
        let a = token_for(&f, Auth::Key(&f.active), Some(body)).await;
        assert_eq!(code(&a), want, "{body}: {}", a.raw);
        assert!(a.body.get("token").is_none());
    }
    assert_eq!(f.faults.sign_calls(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_still_valid_token_is_reused_only_while_safe() {
    let f = fixture().await;
    let first = token_for(&f, Auth::Key(&f.active), None).await.body;
    assert_eq!(f.faults.sign_calls(), 1);
    // Same caller, same grants, more than half the lifetime left: the same token,
    // without a KMS call.
    f.clock.advance(120);
    let again = token_for(&f, Auth::Key(&f.active), Some("{}")).await.body;
    assert_eq!(again["token"], first["token"]);
    assert_eq!(again["tokenId"], first["tokenId"]);
    assert_eq!(again["expiresIn"], 480);
    assert_eq!(f.faults.sign_calls(), 1);
    // Other grants (narrowed), or another proof (IAM), are other tokens.
    let narrow = token_for(
        &f,
        Auth::Key(&f.active),
        Some(r#"{"audience":["billing"]}"#),
    )
    .await;
    assert_ne!(narrow.body["token"], first["token"]);
    let iam = call(&f.app, "POST", "/token/iam", Auth::Iam(TUTOR_ROLE), None).await;
    assert_ne!(iam.body["token"], first["token"]);
    assert_eq!(f.faults.sign_calls(), 3);
    // Less than half the asked lifetime left: a new token.
    f.clock.advance(181);
    let later = token_for(&f, Auth::Key(&f.active), None).await.body;
    assert_ne!(later["tokenId"], first["tokenId"]);
    assert_eq!(later["expiresIn"], 600);
    assert_eq!(f.faults.sign_calls(), 4);

    // A retired signing key takes its held tokens with it: the alias now names another
    // key and only that one is published, so the next request gets a new token signed
    // by it, though the held one has time left.
    let next = create_kms_key(&f.kms, KeySpec::EccNistP256, KeyUsageType::SignVerify).await;
    publish(&f.ssm, &f.kms, &[&next]).await;
    f.kms
        .update_alias()
        .alias_name(ALIAS)
        .target_key_id(&next)
        .send()
        .await
        .unwrap();
    f.clock.advance(300);
    let rotated = token_for(&f, Auth::Key(&f.active), None).await.body;
    assert_ne!(rotated["tokenId"], later["tokenId"]);
    let header = jsonwebtoken::decode_header(rotated["token"].as_str().unwrap()).unwrap();
    assert_eq!(header.kid.as_deref(), Some(next.as_str()));
    let later = rotated;

    // The brake: once the issuer sees it (its standing TTL, 15 s), a held token issued
    // before it is not handed out; the new one is issued at or after it.
    let mut doc = tutor_doc(&f.active, &f.revoked);
    let brake = NOW + 620;
    doc.tokens_not_before = Some(UnixTime(brake));
    put_service_document(&f.ssm, PATH, &doc).await;
    f.clock.set(brake + 16);
    let after = token_for(&f, Auth::Key(&f.active), None).await.body;
    assert_ne!(after["tokenId"], later["tokenId"]);
    let claims = verify(
        &after["token"],
        &key_set(&f).await.0,
        "identity",
        brake + 16,
    );
    assert!(claims.iat >= brake);
    // A brake ahead of now refuses every token until then.
    doc.tokens_not_before = Some(UnixTime(brake + 600));
    put_service_document(&f.ssm, PATH, &doc).await;
    f.clock.advance(16);
    let a = token_for(&f, Auth::Key(&f.active), None).await;
    assert_eq!(code(&a), (403, "braked"), "{}", a.raw);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kms_throttling_is_retried_with_back_off_then_503() {
    let retry = RetryPolicy {
        base: Duration::from_millis(20),
        cap: Duration::from_millis(100),
        budget: Duration::from_millis(600),
    };
    let f = fixture_with(retry, true).await;
    // A burst: two throttled answers, then KMS signs.
    f.faults.throttle(2, "ThrottlingException");
    let a = token_for(&f, Auth::Key(&f.active), None).await;
    assert_eq!(a.status, 200, "{}", a.raw);
    assert_eq!(f.faults.sign_calls(), 3);
    verify(&a.body["token"], &key_set(&f).await.0, "identity", NOW);

    // Sustained throttling (each code KMS uses for it): 503 with Retry-After once the
    // budget is spent, and no token.
    for kms_code in [
        "ThrottlingException",
        "KMSInternalException",
        "LimitExceededException",
    ] {
        f.faults.throttle(u32::MAX, kms_code);
        let before = f.faults.sign_calls();
        let start = Instant::now();
        let a = token_for(
            &f,
            Auth::Key(&f.active),
            Some(r#"{"audience":["billing"]}"#),
        )
        .await;
        let took = start.elapsed();
        assert_eq!(code(&a), (503, "kms_throttled"), "{kms_code}: {}", a.raw);
        assert_eq!(a.headers["retry-after"], "1");
        assert!(a.body.get("token").is_none());
        let tries = f.faults.sign_calls() - before;
        assert!(tries >= 3, "{kms_code}: retried {tries} times");
        assert!(took < Duration::from_secs(5), "{kms_code}: took {took:?}");
    }
    // Other KMS errors are not retried.
    f.faults.throttle(u32::MAX, "AccessDeniedException");
    let before = f.faults.sign_calls();
    let a = token_for(
        &f,
        Auth::Key(&f.active),
        Some(r#"{"audience":["billing"]}"#),
    )
    .await;
    assert_eq!(a.status, 500, "{}", a.raw);
    assert_eq!(f.faults.sign_calls() - before, 1);
    f.faults.throttle(0, "");
    let a = token_for(
        &f,
        Auth::Key(&f.active),
        Some(r#"{"audience":["billing"]}"#),
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.raw);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_issuer_signs_only_with_a_published_key() {
    let f = fixture_with(RetryPolicy::default(), false).await;
    // Nothing published yet: the key set and every token are 503, saying what to run.
    let a = call(&f.app, "GET", "/.well-known/jwks.json", Auth::None, None).await;
    assert_eq!(code(&a), (503, "jwks_not_published"), "{}", a.raw);
    let a = token_for(&f, Auth::Key(&f.active), None).await;
    assert_eq!(code(&a), (503, "jwks_not_published"), "{}", a.raw);
    assert!(a.raw.contains("svcauth tokens keys add"), "{}", a.raw);

    // Issue 16 §2: a key set written the forgeable way (a String: whoever may write it
    // could add a key of their own) is never trusted: 503, no token signed, and the
    // issuer's log names the command that replaces it.
    publish_as(&f.ssm, &f.kms, &[&f.key_id], ParameterType::String).await;
    f.clock.advance(31);
    let a = token_for(&f, Auth::Key(&f.active), None).await;
    assert_eq!(code(&a), (503, "jwks_not_trusted"), "{}", a.raw);
    assert!(a.raw.contains("not a SecureString"), "{}", a.raw);
    let a = call(&f.app, "GET", "/.well-known/jwks.json", Auth::None, None).await;
    assert_eq!(code(&a), (503, "jwks_not_trusted"), "{}", a.raw);
    assert_eq!(f.faults.sign_calls(), 0);

    // A key set without the signing key (another key published): 503, naming the key.
    let other = create_kms_key(&f.kms, KeySpec::EccNistP256, KeyUsageType::SignVerify).await;
    publish(&f.ssm, &f.kms, &[&other]).await;
    f.clock.advance(11);
    let a = token_for(&f, Auth::Key(&f.active), None).await;
    assert_eq!(code(&a), (503, "signing_key_not_published"), "{}", a.raw);
    assert!(
        a.raw
            .contains(&format!("svcauth tokens keys add --key {}", f.key_id)),
        "{}",
        a.raw
    );
    assert_eq!(a.headers["retry-after"], "10");
    assert_eq!(f.faults.sign_calls(), 0);

    // Published: the issuer sees it within its miss refetch interval and signs.
    publish(&f.ssm, &f.kms, &[&other, &f.key_id]).await;
    f.clock.advance(10);
    let a = token_for(&f, Auth::Key(&f.active), None).await;
    assert_eq!(a.status, 200, "{}", a.raw);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_key_set_is_served_with_cache_headers() {
    let f = fixture().await;
    let a = call(&f.app, "GET", "/.well-known/jwks.json", Auth::None, None).await;
    assert_eq!(a.status, 200, "{}", a.raw);
    assert_eq!(a.headers["content-type"], "application/json");
    assert_eq!(a.headers["cache-control"], "public, max-age=300");
    let stored = f
        .ssm
        .get_parameter()
        .name(JWKS)
        .with_decryption(true)
        .send()
        .await
        .unwrap()
        .parameter()
        .unwrap()
        .value()
        .unwrap()
        .to_owned();
    assert_eq!(a.raw, stored);
    assert_eq!(a.body["keys"][0]["kid"], f.key_id.as_str());
    assert!(a.body["keys"][0].get("d").is_none(), "no private part");
    // Held in memory for its max-age: a change shows after 300 s.
    let next = create_kms_key(&f.kms, KeySpec::EccNistP256, KeyUsageType::SignVerify).await;
    publish(&f.ssm, &f.kms, &[&f.key_id, &next]).await;
    f.clock.advance(299);
    let a = call(&f.app, "GET", "/.well-known/jwks.json", Auth::None, None).await;
    assert_eq!(a.raw, stored);
    f.clock.advance(1);
    let a = call(&f.app, "GET", "/.well-known/jwks.json", Auth::None, None).await;
    assert_eq!(a.body["keys"].as_array().unwrap().len(), 2, "{}", a.raw);
    // A parameter that is not a usable key set is not served over the good one held.
    f.ssm
        .put_parameter()
        .name(JWKS)
        .value("not a key set")
        .r#type(ParameterType::String)
        .overwrite(true)
        .send()
        .await
        .unwrap();
    f.clock.advance(300);
    let b = call(&f.app, "GET", "/.well-known/jwks.json", Auth::None, None).await;
    assert_eq!(b.raw, a.raw);
    // Unknown routes are JSON 404s.
    let a = call(&f.app, "GET", "/token/nothing", Auth::None, None).await;
    assert_eq!(code(&a), (404, "not_found"));
}
