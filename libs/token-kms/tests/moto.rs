//! The KMS signer and key-set builder against a real KMS protocol server (moto), and
//! the tokens it signs checked by two verifiers: this workspace's and Python
//! `cryptography` (OpenSSL), which shares no code with it.

use aws_sdk_kms::types::{KeySpec, KeyUsageType};
use jsonwebtoken::jwk::JwkSet;
use service_auth::UnixTime;
use service_token::{KeySet, Permission, Proof, Rejection, TokenClaims, Verifier, VerifierConfig};
use test_support::{create_kms_key, moto_kms_config, python_verify_es256, MotoServer};
use token_kms::{aws_sdk_kms, key_set, KmsError, KmsSigner};

const ISSUER: &str = "svcauth:dev";
/// The API name tokens are verified for.
const AUDIENCE: &str = "identity";

/// A KMS client for moto that retries as the token signer's clients do.
fn moto_kms(moto: &MotoServer) -> aws_sdk_kms::Client {
    let conf = moto_kms_config(&moto.endpoint()).retry_config(token_kms::retry_config());
    aws_sdk_kms::Client::from_conf(conf.build())
}

/// The independent verifier's answer; its first word is `valid` or `invalid:`.
fn python_verify(token: &str, jwks: &JwkSet) -> String {
    python_verify_es256(token, &serde_json::to_value(jwks).unwrap())
}

fn claims(now: UnixTime, jti: &str) -> TokenClaims {
    TokenClaims {
        iss: ISSUER.into(),
        sub: "tutor-service".into(),
        aud: vec![AUDIENCE.into()],
        exp: now.0 + 600,
        nbf: now.0,
        iat: now.0,
        jti: jti.into(),
        permissions: vec![Permission::new([AUDIENCE], ["GET /internal/users/*"])],
        proof: Proof::ApiKey {
            key_id: "kid_0123456789abcdef".into(),
        },
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn moto_signed_tokens_verify_here_and_in_openssl() {
    let moto = MotoServer::start();
    let kms = moto_kms(&moto);
    let key_id = create_kms_key(&kms, KeySpec::EccNistP256, KeyUsageType::SignVerify).await;
    kms.create_alias()
        .alias_name("alias/svcauth-token-dev")
        .target_key_id(&key_id)
        .send()
        .await
        .unwrap();

    // Resolved through the alias, the kid is the key id.
    let signer = KmsSigner::resolve(kms.clone(), "alias/svcauth-token-dev")
        .await
        .unwrap();
    assert_eq!(signer.kid(), key_id);
    let jwks = key_set(&kms, &[&key_id]).await.unwrap();
    assert_eq!(jwks.keys[0].common.key_id.as_deref(), Some(key_id.as_str()));
    let keys = KeySet::from_jwks(&jwks).unwrap();
    let verifier = Verifier::new(VerifierConfig::new(ISSUER));
    let now = UnixTime::now();

    // Many signatures, so KMS's DER integers of 31, 32 and 33 bytes all occur.
    for i in 0..12 {
        let want = claims(now, &format!("jti-{i}"));
        let token = signer.sign(&want).await.unwrap();
        let verified = verifier.verify(&token, &keys, AUDIENCE, now).unwrap();
        assert_eq!(verified.claims, want);
        assert_eq!(verified.kid, key_id);
        let py = python_verify(&token, &jwks);
        assert!(py.starts_with("valid "), "{py}");
        assert!(py.contains(&format!("\"jti\": \"jti-{i}\"")), "{py}");
    }

    // Both verifiers refuse a token whose payload was changed.
    let token = signer.sign(&claims(now, "jti-x")).await.unwrap();
    let mut parts: Vec<&str> = token.split('.').collect();
    let other = signer.signing_input(&claims(now, "jti-y")).unwrap();
    parts[1] = other.split('.').nth(1).unwrap();
    let tampered = parts.join(".");
    assert_eq!(
        verifier.verify(&tampered, &keys, AUDIENCE, now).map(|_| ()),
        Err(Rejection::BadSignature)
    );
    assert_eq!(python_verify(&tampered, &jwks), "invalid: signature");

    // A token signed by another KMS key is refused for its unknown kid.
    let other_key = create_kms_key(&kms, KeySpec::EccNistP256, KeyUsageType::SignVerify).await;
    let other = KmsSigner::resolve(kms.clone(), &other_key).await.unwrap();
    let token = other.sign(&claims(now, "jti-z")).await.unwrap();
    assert_eq!(
        verifier.verify(&token, &keys, AUDIENCE, now).map(|_| ()),
        Err(Rejection::UnknownKid)
    );

    // A set of both keys (a rotation) verifies both.
    let both = KeySet::from_jwks(&key_set(&kms, &[&key_id, &other_key]).await.unwrap()).unwrap();
    assert_eq!(both.len(), 2);
    assert!(verifier.verify(&token, &both, AUDIENCE, now).is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_that_cannot_sign_es256_are_refused_with_what_to_do() {
    let moto = MotoServer::start();
    let kms = moto_kms(&moto);
    let cases = [
        (KeySpec::SymmetricDefault, KeyUsageType::EncryptDecrypt),
        (KeySpec::EccNistP384, KeyUsageType::SignVerify),
        (KeySpec::Rsa2048, KeyUsageType::SignVerify),
    ];
    for (spec, usage) in cases {
        let key = create_kms_key(&kms, spec.clone(), usage).await;
        let err = KmsSigner::resolve(kms.clone(), &key).await.unwrap_err();
        assert_eq!(err.code(), "kms_wrong_key", "{spec:?}: {err}");
        assert!(err.to_string().contains("ECC_NIST_P256"), "{err}");
    }
    let err = KmsSigner::resolve(kms.clone(), "alias/does-not-exist")
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            KmsError::Kms {
                operation: "DescribeKey",
                ..
            }
        ),
        "{err}"
    );
    let err = key_set(&kms, &["alias/does-not-exist"]).await.unwrap_err();
    assert!(
        matches!(
            err,
            KmsError::Kms {
                operation: "GetPublicKey",
                ..
            }
        ),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_token_is_refused_before_kms_is_called() {
    let moto = MotoServer::start();
    let kms = moto_kms(&moto);
    let key = create_kms_key(&kms, KeySpec::EccNistP256, KeyUsageType::SignVerify).await;
    let signer = KmsSigner::resolve(kms, &key).await.unwrap();
    let mut big = claims(UnixTime::now(), "jti");
    big.permissions = vec![Permission::new(
        [AUDIENCE],
        (0..40).map(|i| format!("GET /internal/{i}/{}", "x".repeat(100))),
    )];
    let err = signer.sign(&big).await.unwrap_err();
    assert!(
        matches!(err, KmsError::TooLarge(n) if n > token_kms::MAX_SIGNING_INPUT),
        "{err}"
    );
}
