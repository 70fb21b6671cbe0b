//! The local token issuer's development signing key: an ephemeral P-256 key made when
//! the gateway starts (aws-lc-rs), signing ES256 through `jsonwebtoken`, and the JWKS
//! that publishes it. It lives only in this process and only in this binary: the
//! deployed issuer signs with KMS alone (`token-issuer`'s `main.rs` never builds a
//! [`token_issuer::api::Signing::Local`]). Tokens it signed die with the process.

use std::fmt;

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use service_token::TokenClaims;
use token_issuer::api::LocalSigner;

/// The ephemeral development key.
pub struct DevSigner {
    kid: String,
    key: EncodingKey,
    jwks: String,
}

impl fmt::Debug for DevSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DevSigner")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

impl DevSigner {
    /// A new key; its `kid` is `local-dev-` and 8 random hex digits, so a token from an
    /// earlier run is refused as `unknown_kid`, not mistaken for this run's.
    pub fn generate() -> Result<Self, String> {
        let pair = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING)
            .map_err(|_| "generating the development signing key failed".to_owned())?;
        let pkcs8 = pair
            .to_pkcs8v1()
            .map_err(|_| "encoding the development signing key failed".to_owned())?;
        let spki = pair
            .public_key()
            .as_der()
            .map_err(|_| "encoding the development public key failed".to_owned())?;
        let mut id = [0u8; 4];
        getrandom::fill(&mut id).map_err(|e| format!("random kid: {e}"))?;
        let kid = format!(
            "local-dev-{}",
            id.iter().map(|b| format!("{b:02x}")).collect::<String>()
        );
        let jwk = service_token::jwk_from_spki_der(&kid, spki.as_ref())
            .map_err(|e| format!("the development public key as a JWK: {e}"))?;
        let jwks = serde_json::json!({ "keys": [jwk] }).to_string();
        Ok(Self {
            kid,
            key: EncodingKey::from_ec_der(pkcs8.as_ref()),
            jwks,
        })
    }

    /// The JWKS publishing this key (what the local issuer serves and the local
    /// authorizer verifies with, as `SVCAUTH_TOKEN_JWKS`).
    pub fn jwks(&self) -> &str {
        &self.jwks
    }
}

/// Tokens for the start-up examples: one expired an hour ago and one whose payload
/// was changed after signing (both refused by the authorizer).
#[derive(Debug, Clone)]
pub struct SampleTokens {
    pub expired: String,
    pub tampered: String,
}

impl DevSigner {
    /// Signs the two sample tokens for `service` (grants `permissions`, proof
    /// `proof`), issuer `iss`, at `now` (seconds).
    pub fn samples(
        &self,
        iss: &str,
        service: &str,
        permissions: Vec<service_token::Permission>,
        proof: service_token::Proof,
        now: u64,
    ) -> Result<SampleTokens, String> {
        use base64::Engine;
        let claims = |iat: u64, exp: u64, jti: &str, sub: &str| TokenClaims {
            iss: iss.to_owned(),
            sub: sub.to_owned(),
            aud: TokenClaims::audience_of(&permissions),
            exp,
            nbf: iat,
            iat,
            jti: jti.to_owned(),
            permissions: permissions.clone(),
            proof: proof.clone(),
        };
        let expired = self.sign(&claims(
            now.saturating_sub(7200),
            now.saturating_sub(3600),
            "local-sample-expired",
            service,
        ))?;
        // A valid token whose payload then names another service: the signature no
        // longer matches.
        let valid = self.sign(&claims(now, now + 600, "local-sample-tampered", service))?;
        let forged = claims(now, now + 600, "local-sample-tampered", "admin-service");
        let payload = serde_json::to_vec(&forged).map_err(|e| e.to_string())?;
        let mut parts = valid.split('.');
        let (Some(header), Some(_), Some(signature)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err("a signed token is not three parts".into());
        };
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let tampered = format!("{header}.{}.{signature}", b64.encode(payload));
        Ok(SampleTokens { expired, tampered })
    }
}

impl LocalSigner for DevSigner {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_start_has_its_own_key_and_the_jwks_publishes_only_the_public_part() {
        let a = DevSigner::generate().unwrap();
        let b = DevSigner::generate().unwrap();
        assert_ne!(a.kid(), b.kid());
        let jwks: serde_json::Value = serde_json::from_str(a.jwks()).unwrap();
        let key = &jwks["keys"][0];
        assert_eq!(key["kid"], a.kid());
        assert_eq!(key["kty"], "EC");
        assert!(key.get("d").is_none(), "no private part: {key}");
        assert!(!format!("{a:?}").contains("key:"));
        assert!(service_token::KeySet::from_json(a.jwks().as_bytes())
            .unwrap()
            .contains(a.kid()));
    }

    #[test]
    fn the_sample_tokens_are_refused_for_the_reasons_they_show() {
        let s = DevSigner::generate().unwrap();
        let now = 1_795_953_600;
        let samples = s
            .samples(
                "svcauth:dev",
                "tutor-service",
                vec![service_token::Permission::new(
                    ["identity"],
                    ["GET /internal/users/*"],
                )],
                service_token::Proof::ApiKey {
                    key_id: "kid_0123456789abcdef".into(),
                },
                now,
            )
            .unwrap();
        let keys = service_token::KeySet::from_json(s.jwks().as_bytes()).unwrap();
        let verifier =
            service_token::Verifier::new(service_token::VerifierConfig::new("svcauth:dev"));
        let check = |t: &str| {
            verifier
                .verify(t, &keys, "identity", service_auth::UnixTime(now))
                .map(|_| ())
                .unwrap_err()
                .code()
        };
        assert_eq!(check(&samples.expired), "expired");
        assert_eq!(check(&samples.tampered), "bad_signature");
    }
}
