/*!
The KMS edge of service tokens.

* [`KmsSigner`]: signs a token's claims with an asymmetric KMS key (`ECC_NIST_P256`,
  `SIGN_VERIFY`): `Sign` with `MessageType=RAW` and `ECDSA_SHA_256` (KMS hashes the
  signing input itself; moto double-hashes `DIGEST`, and RAW needs no hashing here),
  then KMS's DER signature becomes the JOSE `r||s` form
  ([`der_to_jose`], in [`signature`]: only this signer needs it). The header's `kid` is the KMS key id, resolved once
  from a key id, ARN or alias by `DescribeKey`, so a token names the key that signed it
  even while an alias is being repointed.
* [`key_set`]: the JWKS of one or more KMS keys, from `GetPublicKey`.
* [`retry_config`]: KMS allows about 300 ECC signs per second per account and Region;
  the SDK's adaptive retry (exponential back-off with jitter and a client-side rate
  limiter) suits the tools. The issuer signs with SDK retries off and its own
  back-off within a time budget ([`KmsError::is_retryable`] says which errors are
  worth another try).

It holds no private key (there is none outside KMS) and decides nothing about who may
get a token: the issuer does that.
*/
#![forbid(unsafe_code)]

use aws_sdk_kms::config::retry::RetryConfig;
use aws_sdk_kms::error::ProvideErrorMetadata;
use aws_sdk_kms::primitives::Blob;
// The deprecated CustomerMasterKeySpec is read only when KeySpec is absent (moto).
#[allow(deprecated)]
use aws_sdk_kms::types::CustomerMasterKeySpec;
use aws_sdk_kms::types::{KeySpec, KeyUsageType, MessageType, SigningAlgorithmSpec};
use aws_sdk_kms::Client;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use jsonwebtoken::jwk::JwkSet;
use serde::Serialize;
pub mod signature;

use service_token::{jwk_from_spki_der, TokenClaims, ALGORITHM, TOKEN_TYPE};
pub use signature::{der_to_jose, SignatureFormatError};

pub use aws_sdk_kms;

/// KMS `Sign` takes at most 4096 bytes of RAW message: the longest signing input
/// (`b64(header).b64(claims)`), so the longest token is about 4.2 KB.
pub const MAX_SIGNING_INPUT: usize = 4096;

/// Why a token could not be signed or a key set built. Never carries a token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KmsError {
    #[error("KMS {operation} was throttled after retries (ECC signing allows about 300/s per account and Region); retry later or raise the quota")]
    Throttled { operation: &'static str },
    #[error("KMS {operation} is unavailable ({code}); retry later")]
    Unavailable {
        operation: &'static str,
        code: String,
    },
    #[error("KMS {operation} failed: {code}: {message}")]
    Kms {
        operation: &'static str,
        code: String,
        message: String,
    },
    #[error("KMS key {key} is not usable for ES256 tokens: {why}; create it with KeySpec ECC_NIST_P256 and KeyUsage SIGN_VERIFY")]
    WrongKey { key: String, why: &'static str },
    #[error("KMS answered without {0}")]
    Incomplete(&'static str),
    #[error("KMS returned a signature that is not DER ECDSA: {0}")]
    Signature(#[from] SignatureFormatError),
    #[error("the token would be {0} bytes to sign, over KMS's {MAX_SIGNING_INPUT}: request fewer permissions or audiences")]
    TooLarge(usize),
    #[error("could not serialise the token claims: {0}")]
    Claims(String),
}

impl KmsError {
    /// Stable code for logs and metrics.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Throttled { .. } => "kms_throttled",
            Self::Unavailable { .. } => "kms_unavailable",
            Self::Kms { .. } => "kms_error",
            Self::WrongKey { .. } => "kms_wrong_key",
            Self::Incomplete(_) => "kms_incomplete",
            Self::Signature(_) => "kms_bad_signature",
            Self::TooLarge(_) => "token_too_large",
            Self::Claims(_) => "claims_error",
        }
    }

    /// Throttling or a transient KMS failure: worth another try after a back-off.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Throttled { .. } | Self::Unavailable { .. })
    }

    fn from_sdk<E: ProvideErrorMetadata>(operation: &'static str, e: &E) -> Self {
        let Some(code) = e.code() else {
            // No error code: the call never got an answer (connection, timeout).
            return Self::Unavailable {
                operation,
                code: "no answer".into(),
            };
        };
        if matches!(
            code,
            "ThrottlingException" | "Throttling" | "LimitExceededException"
        ) {
            return Self::Throttled { operation };
        }
        if matches!(code, "KMSInternalException" | "DependencyTimeoutException") {
            return Self::Unavailable {
                operation,
                code: code.to_owned(),
            };
        }
        Self::Kms {
            operation,
            code: code.to_owned(),
            message: e.message().unwrap_or("no message").to_owned(),
        }
    }
}

/// Retries for KMS calls: adaptive mode (back-off with jitter, plus a client-side rate
/// limiter that slows down once KMS throttles) and up to five attempts.
pub fn retry_config() -> RetryConfig {
    RetryConfig::adaptive().with_max_attempts(5)
}

/// The key id part of a KMS key ARN (`arn:aws:kms:…:key/<id>`), or the input if it is
/// already an id.
pub fn key_id_of(arn_or_id: &str) -> &str {
    arn_or_id
        .rsplit_once(":key/")
        .map_or(arn_or_id, |(_, id)| id)
}

#[allow(deprecated)]
fn is_p256(spec: Option<&KeySpec>, legacy: Option<&CustomerMasterKeySpec>) -> bool {
    // moto answers GetPublicKey with only the deprecated CustomerMasterKeySpec.
    match spec {
        Some(s) => *s == KeySpec::EccNistP256,
        None => legacy == Some(&CustomerMasterKeySpec::EccNistP256),
    }
}

#[derive(Serialize)]
struct Header<'a> {
    alg: &'static str,
    typ: &'static str,
    kid: &'a str,
}

/// Signs tokens with one KMS key.
#[derive(Debug, Clone)]
pub struct KmsSigner {
    client: Client,
    key_id: String,
}

impl KmsSigner {
    /// Resolves `key` (key id, key ARN, alias name or alias ARN) to the key it names now
    /// and checks that it can sign ES256.
    pub async fn resolve(client: Client, key: &str) -> Result<Self, KmsError> {
        let out = client
            .describe_key()
            .key_id(key)
            .send()
            .await
            .map_err(|e| KmsError::from_sdk("DescribeKey", &e))?;
        let meta = out
            .key_metadata()
            .ok_or(KmsError::Incomplete("KeyMetadata"))?;
        let wrong = |why| KmsError::WrongKey {
            key: key.to_owned(),
            why,
        };
        if meta.key_usage() != Some(&KeyUsageType::SignVerify) {
            return Err(wrong("its KeyUsage is not SIGN_VERIFY"));
        }
        #[allow(deprecated)]
        let legacy = meta.customer_master_key_spec();
        if !is_p256(meta.key_spec(), legacy) {
            return Err(wrong("its KeySpec is not ECC_NIST_P256"));
        }
        if !meta.enabled() {
            return Err(wrong("it is disabled"));
        }
        Ok(Self {
            client,
            key_id: meta.key_id().to_owned(),
        })
    }

    /// The key id, which is the tokens' `kid`.
    pub fn kid(&self) -> &str {
        &self.key_id
    }

    /// The signing input `b64(header).b64(claims)` for these claims.
    pub fn signing_input(&self, claims: &TokenClaims) -> Result<String, KmsError> {
        let header = Header {
            alg: ALGORITHM,
            typ: TOKEN_TYPE,
            kid: &self.key_id,
        };
        let header = serde_json::to_vec(&header).map_err(|e| KmsError::Claims(e.to_string()))?;
        let claims = serde_json::to_vec(claims).map_err(|e| KmsError::Claims(e.to_string()))?;
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header),
            URL_SAFE_NO_PAD.encode(claims)
        );
        if input.len() > MAX_SIGNING_INPUT {
            return Err(KmsError::TooLarge(input.len()));
        }
        Ok(input)
    }

    /// A signed token (compact JWS) for `claims`.
    pub async fn sign(&self, claims: &TokenClaims) -> Result<String, KmsError> {
        let input = self.signing_input(claims)?;
        let out = self
            .client
            .sign()
            .key_id(&self.key_id)
            .message(Blob::new(input.as_bytes()))
            .message_type(MessageType::Raw)
            .signing_algorithm(SigningAlgorithmSpec::EcdsaSha256)
            .send()
            .await
            .map_err(|e| KmsError::from_sdk("Sign", &e))?;
        let der = out.signature().ok_or(KmsError::Incomplete("Signature"))?;
        let jose = der_to_jose(der.as_ref())?;
        Ok(format!("{input}.{}", URL_SAFE_NO_PAD.encode(jose)))
    }
}

/// The JWKS of `keys` (ids, ARNs or aliases), each published under its key id.
pub async fn key_set(client: &Client, keys: &[&str]) -> Result<JwkSet, KmsError> {
    let mut set = JwkSet { keys: Vec::new() };
    for key in keys {
        let out = client
            .get_public_key()
            .key_id(*key)
            .send()
            .await
            .map_err(|e| KmsError::from_sdk("GetPublicKey", &e))?;
        let wrong = |why| KmsError::WrongKey {
            key: (*key).to_owned(),
            why,
        };
        if out.key_usage() != Some(&KeyUsageType::SignVerify) {
            return Err(wrong("its KeyUsage is not SIGN_VERIFY"));
        }
        #[allow(deprecated)]
        let legacy = out.customer_master_key_spec();
        if !is_p256(out.key_spec(), legacy) {
            return Err(wrong("its KeySpec is not ECC_NIST_P256"));
        }
        let kid = key_id_of(out.key_id().ok_or(KmsError::Incomplete("KeyId"))?);
        let der = out.public_key().ok_or(KmsError::Incomplete("PublicKey"))?;
        let jwk = jwk_from_spki_der(kid, der.as_ref())
            .map_err(|_| wrong("its public key is not a P-256 SubjectPublicKeyInfo"))?;
        set.keys.push(jwk);
    }
    Ok(set)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_ids_from_arns() {
        assert_eq!(
            key_id_of(
                "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
            ),
            "1234abcd-12ab-34cd-56ef-1234567890ab"
        );
        assert_eq!(key_id_of("1234abcd"), "1234abcd");
    }

    #[test]
    #[allow(deprecated)]
    fn key_specs() {
        assert!(is_p256(Some(&KeySpec::EccNistP256), None));
        assert!(!is_p256(
            Some(&KeySpec::EccNistP384),
            Some(&CustomerMasterKeySpec::EccNistP256)
        ));
        assert!(is_p256(None, Some(&CustomerMasterKeySpec::EccNistP256)));
        assert!(!is_p256(None, None));
    }
}
