//! A test signer: a P-256 key made by aws-lc-rs, tokens assembled by hand so that every
//! malformed shape (odd headers, duplicate claims, DER or zero signatures) can be made.

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{
    EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_ASN1_SIGNING, ECDSA_P256_SHA256_FIXED_SIGNING,
};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use jsonwebtoken::jwk::JwkSet;
use serde_json::{json, Value};
use service_token::{jwk_from_spki_der, KeySet, Verifier, VerifierConfig};

pub const ISSUER: &str = "svcauth:dev";
/// The API name the requests in these tests are for.
pub const AUDIENCE: &str = "identity";
pub const NOW: u64 = 1_764_600_000;

pub struct TestKey {
    pub kid: String,
    pkcs8: Vec<u8>,
}

impl TestKey {
    pub fn new(kid: &str) -> Self {
        let pkcs8 =
            EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &SystemRandom::new())
                .unwrap()
                .as_ref()
                .to_vec();
        Self {
            kid: kid.into(),
            pkcs8,
        }
    }

    fn pair(&self, alg: &'static aws_lc_rs::signature::EcdsaSigningAlgorithm) -> EcdsaKeyPair {
        EcdsaKeyPair::from_pkcs8(alg, &self.pkcs8).unwrap()
    }

    pub fn spki_der(&self) -> Vec<u8> {
        let pair = self.pair(&ECDSA_P256_SHA256_FIXED_SIGNING);
        pair.public_key().as_der().unwrap().as_ref().to_vec()
    }

    pub fn jwks(&self) -> JwkSet {
        JwkSet {
            keys: vec![jwk_from_spki_der(&self.kid, &self.spki_der()).unwrap()],
        }
    }

    pub fn key_set(&self) -> KeySet {
        KeySet::from_jwks(&self.jwks()).unwrap()
    }

    /// `b64(header).b64(claims)`: the JWS signing input.
    pub fn signing_input(header: &str, claims: &str) -> String {
        format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header),
            URL_SAFE_NO_PAD.encode(claims)
        )
    }

    /// An ES256 token over raw JSON text (so duplicates survive).
    pub fn sign_raw(&self, header: &str, claims: &str) -> String {
        let input = Self::signing_input(header, claims);
        let sig = self
            .pair(&ECDSA_P256_SHA256_FIXED_SIGNING)
            .sign(&SystemRandom::new(), input.as_bytes())
            .unwrap();
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig.as_ref()))
    }

    /// Same, but the signature left in DER form (what KMS returns).
    pub fn sign_raw_der(&self, header: &str, claims: &str) -> String {
        let input = Self::signing_input(header, claims);
        let sig = self
            .pair(&ECDSA_P256_SHA256_ASN1_SIGNING)
            .sign(&SystemRandom::new(), input.as_bytes())
            .unwrap();
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig.as_ref()))
    }

    pub fn header(&self) -> Value {
        json!({"alg": "ES256", "typ": service_token::TOKEN_TYPE, "kid": self.kid})
    }

    pub fn sign(&self, header: &Value, claims: &Value) -> String {
        self.sign_raw(&header.to_string(), &claims.to_string())
    }

    pub fn token(&self, claims: &Value) -> String {
        self.sign(&self.header(), claims)
    }
}

/// Claims a good token has, issued at `NOW` for ten minutes.
pub fn good_claims() -> Value {
    json!({
        "iss": ISSUER,
        "sub": "tutor-service",
        "aud": [AUDIENCE],
        "exp": NOW + 600,
        "nbf": NOW,
        "iat": NOW,
        "jti": "0f8e6b2c-jti",
        "permissions": [{"apis": [AUDIENCE], "routes": ["GET /internal/users/*"]}],
        "proof": {"method": "api-key", "keyId": "kid_0123456789abcdef"}
    })
}

pub fn verifier() -> Verifier {
    Verifier::new(VerifierConfig::new(ISSUER))
}

pub fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// `claims` with `key` set to `value`.
pub fn with(mut claims: Value, key: &str, value: Value) -> Value {
    claims[key] = value;
    claims
}

/// `claims` without `key`.
pub fn without(mut claims: Value, key: &str) -> Value {
    claims.as_object_mut().unwrap().remove(key);
    claims
}

/// The algorithm-confusion forgery: `claims` "signed" HS256 with `key`'s public key
/// (its SPKI DER) as the HMAC secret, under `key`'s `kid`.
pub fn hs256_with_public_key(key: &TestKey, claims: &Value) -> String {
    let header =
        json!({"alg": "HS256", "typ": service_token::TOKEN_TYPE, "kid": key.kid}).to_string();
    let input = TestKey::signing_input(&header, &claims.to_string());
    let mac = aws_lc_rs::hmac::sign(
        &aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, &key.spki_der()),
        input.as_bytes(),
    );
    format!("{input}.{}", b64(mac.as_ref()))
}

/// `token` with its signature replaced by `sig`.
pub fn with_signature(token: &str, sig: &[u8]) -> String {
    let (input, _) = token.rsplit_once('.').unwrap();
    format!("{input}.{}", b64(sig))
}

/// `token` with its payload swapped for `claims` (signature kept).
pub fn tampered(token: &str, claims: &Value) -> String {
    let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
    parts[1] = b64(claims.to_string().as_bytes());
    parts.join(".")
}
