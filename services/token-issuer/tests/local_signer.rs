//! The issuer with the seams a local tool uses: a signer in this process (an
//! ephemeral P-256 key, signing through `jsonwebtoken`: what the local gateway's
//! development key does), documents from memory and an inline key set. No AWS.

use std::sync::Arc;

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
use axum::Router;
use http_body_util::BodyExt;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use service_auth::identity::IamRoleMap;
use service_auth::{ApiGrant, ServiceDocument, UnixTime};
use service_identity_http::testing::iam_context;
use service_identity_http::IdentityConfig;
use service_token::{Proof, TokenClaims, Verifier, VerifierConfig};
use test_support::TestClock;
use token_issuer::api::{Documents, JwksSource, LocalSigner, Parts, Signing};
use token_issuer::{router, AppState, IssuerSettings, RetryPolicy};
use tower::ServiceExt;

const NOW: u64 = 1_764_600_000;
const ROLE: &str = "arn:aws:sts::123456789012:assumed-role/tutor-task-role/task-1";

struct DevKey {
    kid: String,
    key: EncodingKey,
}

impl LocalSigner for DevKey {
    fn kid(&self) -> &str {
        &self.kid
    }
    fn sign(&self, claims: &TokenClaims) -> Result<String, String> {
        let mut header = Header::new(Algorithm::ES256);
        header.typ = Some(service_token::TOKEN_TYPE.to_owned());
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, claims, &self.key).map_err(|e| e.to_string())
    }
}

/// An ephemeral key, and the key set that publishes it (or another key's).
fn dev_key(kid: &str) -> (DevKey, String) {
    let pair = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).unwrap();
    let pkcs8 = pair.to_pkcs8v1().unwrap();
    let spki = pair.public_key().as_der().unwrap();
    let jwk = service_token::jwk_from_spki_der(kid, spki.as_ref()).unwrap();
    let jwks = serde_json::json!({ "keys": [jwk] }).to_string();
    let key = DevKey {
        kid: kid.to_owned(),
        key: EncodingKey::from_ec_der(pkcs8.as_ref()),
    };
    (key, jwks)
}

fn app(signer: DevKey, jwks: String) -> Router {
    let doc = ServiceDocument::new(
        "tutor-service",
        vec![
            ApiGrant::new(&["identity"], &["GET /internal/users/*"]),
            ApiGrant::new(&["token"], &["POST /token"]),
        ],
    );
    let clock = TestClock::at(NOW);
    router(AppState::new(Parts {
        identity: IdentityConfig::new(IamRoleMap::parse("tutor-task-role=tutor-service").unwrap()),
        settings: IssuerSettings {
            issuer: "svcauth:local".into(),
            default_lifetime_secs: 600,
            min_remaining_secs: 0,
        },
        signing: Signing::Local(Arc::new(signer)),
        documents: Documents::Fixed(Arc::new(move |s| (s == doc.service).then(|| doc.clone()))),
        jwks: JwksSource::Inline(jwks),
        clock: clock.unix_clock(),
        retry: RetryPolicy::default(),
    }))
}

async fn post(app: &Router, path: &str) -> (u16, serde_json::Value) {
    let mut req = http::Request::post(path)
        .body(axum::body::Body::from("{}"))
        .unwrap();
    req.extensions_mut().insert(iam_context(ROLE, "req-local"));
    let res = app.clone().oneshot(req).await.unwrap();
    let status = res.status().as_u16();
    let bytes = res.into_body().collect().await.unwrap().to_bytes();
    (status, serde_json::from_slice(&bytes).unwrap())
}

#[tokio::test]
async fn a_local_signer_issues_tokens_the_verifier_accepts() {
    let (signer, jwks) = dev_key("local-dev-1");
    let app = app(signer, jwks.clone());
    let (status, body) = post(&app, "/token/iam").await;
    assert_eq!(status, 200, "{body}");
    let keys = service_token::KeySet::from_json(jwks.as_bytes()).unwrap();
    let verified = Verifier::new(VerifierConfig::new("svcauth:local"))
        .verify(
            body["token"].as_str().unwrap(),
            &keys,
            "identity",
            UnixTime(NOW),
        )
        .unwrap();
    assert_eq!(verified.kid, "local-dev-1");
    assert_eq!(verified.claims.sub, "tutor-service");
    assert!(matches!(verified.claims.proof, Proof::Iam { .. }));
}

#[tokio::test]
async fn a_local_signer_is_held_to_publish_before_sign_too() {
    let (signer, _) = dev_key("local-dev-1");
    let (_, other_jwks) = dev_key("local-dev-2");
    let (status, body) = post(&app(signer, other_jwks), "/token/iam").await;
    assert_eq!(
        (status, body["error"].as_str()),
        (503, Some("signing_key_not_published")),
        "{body}"
    );
}
