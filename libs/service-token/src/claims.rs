//! The claims of a service token.
//!
//! ```json
//! {"iss":"https://svcauth.internal/dev","sub":"tutor-service","aud":["identity-api"],
//!  "exp":1764600600,"nbf":1764600000,"iat":1764600000,"jti":"7f3c…",
//!  "permissions":["GET /internal/users/*"],
//!  "proof":{"method":"api-key","keyId":"kid_0123456789abcdef"}}
//! ```
//!
//! Unknown claims and duplicate claims are refused when a token is decoded (the struct
//! denies unknown fields and serde refuses a repeated field), so a token means exactly
//! what these types say.

use serde::{Deserialize, Serialize};

/// How the caller proved who it is when the token was issued.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "method", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Proof {
    /// An API key, by its non-secret key id.
    #[serde(rename_all = "camelCase")]
    ApiKey { key_id: String },
    /// A SigV4 signature made with credentials of this IAM role.
    #[serde(rename_all = "camelCase")]
    Iam { role_arn: String },
}

impl Proof {
    /// `api-key` or `iam`, as in the authorizer context.
    pub fn method_name(&self) -> &'static str {
        match self {
            Proof::ApiKey { .. } => "api-key",
            Proof::Iam { .. } => "iam",
        }
    }

    /// The non-secret credential id: the key id or the role ARN.
    pub fn credential_id(&self) -> &str {
        match self {
            Proof::ApiKey { key_id } => key_id,
            Proof::Iam { role_arn } => role_arn,
        }
    }
}

/// The claims of a verified token. Times are seconds since the Unix epoch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenClaims {
    /// Who issued the token (the issuer's configured id).
    pub iss: String,
    /// The calling service's name.
    pub sub: String,
    /// The APIs the token may be presented to.
    pub aud: Vec<String>,
    pub exp: u64,
    pub nbf: u64,
    pub iat: u64,
    /// Unique token id (also the id in logs). The token string is not unique: an
    /// ECDSA signature has a second valid (high-S) form.
    pub jti: String,
    /// `METHOD /path` patterns, as in the service document (possibly narrowed).
    pub permissions: Vec<String>,
    pub proof: Proof,
}

/// What a token is decoded into before the checks that need names: registered claims
/// optional, so a missing one is reported as missing instead of as malformed JSON.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawClaims {
    pub iss: Option<String>,
    pub sub: Option<String>,
    pub aud: Option<Vec<String>>,
    pub exp: Option<u64>,
    pub nbf: Option<u64>,
    pub iat: Option<u64>,
    pub jti: Option<String>,
    pub permissions: Option<Vec<String>>,
    pub proof: Option<Proof>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proof_json_shape() {
        let p = Proof::ApiKey {
            key_id: "kid_0123456789abcdef".into(),
        };
        assert_eq!(
            serde_json::to_string(&p).unwrap(),
            r#"{"method":"api-key","keyId":"kid_0123456789abcdef"}"#
        );
        let p = Proof::Iam {
            role_arn: "arn:aws:iam::123456789012:role/tutor".into(),
        };
        assert_eq!(
            serde_json::to_string(&p).unwrap(),
            r#"{"method":"iam","roleArn":"arn:aws:iam::123456789012:role/tutor"}"#
        );
        assert_eq!(p.method_name(), "iam");
        assert!(serde_json::from_str::<Proof>(r#"{"method":"magic"}"#).is_err());
        assert!(serde_json::from_str::<Proof>(r#"{"method":"iam","roleArn":"a","x":1}"#).is_err());
    }

    #[test]
    fn duplicate_and_unknown_claims_are_refused() {
        let dup = r#"{"sub":"a","sub":"b"}"#;
        assert!(serde_json::from_str::<RawClaims>(dup).is_err());
        let dup_custom = r#"{"permissions":[],"permissions":["GET /x"]}"#;
        assert!(serde_json::from_str::<RawClaims>(dup_custom).is_err());
        assert!(serde_json::from_str::<RawClaims>(r#"{"admin":true}"#).is_err());
    }
}
