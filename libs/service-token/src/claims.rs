//! The claims of a service token.
//!
//! ```json
//! {"iss":"svcauth:dev","sub":"tutor-service","aud":["identity"],
//!  "exp":1764600600,"nbf":1764600000,"iat":1764600000,"jti":"7f3c…",
//!  "permissions":[{"apis":["identity"],"routes":["GET /internal/users/*"]}],
//!  "proof":{"method":"api-key","keyId":"kid_0123456789abcdef"}}
//! ```
//!
//! `permissions` mirrors the grants of the schema-2 service document: each grant names
//! the APIs (by API name) its routes apply on. `aud` is the union of the grants' APIs;
//! the authorizer requires the API it guards in `aud` and allows only the routes of
//! the grants that name that API, so a grant never leaks onto another API.
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

/// One grant: `METHOD /path` route patterns allowed on the named APIs, as in the
/// service document.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Permission {
    /// API names (the authorizer's names, e.g. `identity`), not API ids.
    pub apis: Vec<String>,
    /// `METHOD /path` patterns, as in the service document.
    pub routes: Vec<String>,
}

impl Permission {
    pub fn new<A: Into<String>, R: Into<String>>(
        apis: impl IntoIterator<Item = A>,
        routes: impl IntoIterator<Item = R>,
    ) -> Self {
        Self {
            apis: apis.into_iter().map(Into::into).collect(),
            routes: routes.into_iter().map(Into::into).collect(),
        }
    }

    /// Whether this grant applies on `api` (exact name).
    pub fn names_api(&self, api: &str) -> bool {
        self.apis.iter().any(|a| a == api)
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
    /// The API names the token may be presented to: the sorted, de-duplicated union
    /// of the grants' `apis`.
    pub aud: Vec<String>,
    pub exp: u64,
    pub nbf: u64,
    pub iat: u64,
    /// Unique token id (also the id in logs). The token string is not unique: an
    /// ECDSA signature has a second valid (high-S) form.
    pub jti: String,
    /// The grants, as in the service document (possibly narrowed by the request).
    pub permissions: Vec<Permission>,
    pub proof: Proof,
}

impl TokenClaims {
    /// Whether `api` (an API name) is in `aud`. The verifier checks this for the API
    /// a request is for; a token is one token for every API its service may call.
    pub fn audience_includes(&self, api: &str) -> bool {
        self.aud.iter().any(|a| a == api)
    }

    /// The route patterns of the grants that name `api`, in grant order (may repeat).
    pub fn routes_for<'a>(&'a self, api: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.permissions
            .iter()
            .filter(move |p| p.names_api(api))
            .flat_map(|p| p.routes.iter().map(String::as_str))
    }

    /// The audience a token with these grants gets: the sorted, de-duplicated union of
    /// their APIs (what the issuer writes in `aud`).
    pub fn audience_of(permissions: &[Permission]) -> Vec<String> {
        let set: std::collections::BTreeSet<&str> = permissions
            .iter()
            .flat_map(|p| p.apis.iter().map(String::as_str))
            .collect();
        set.into_iter().map(str::to_owned).collect()
    }
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
    pub permissions: Option<Vec<Permission>>,
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
        let dup_custom = r#"{"permissions":[],"permissions":[{"apis":["a"],"routes":["GET /x"]}]}"#;
        assert!(serde_json::from_str::<RawClaims>(dup_custom).is_err());
        assert!(serde_json::from_str::<RawClaims>(r#"{"admin":true}"#).is_err());
    }

    #[test]
    fn permission_json_shape_is_strict() {
        let p: Permission =
            serde_json::from_str(r#"{"apis":["identity"],"routes":["GET /internal/users/*"]}"#)
                .unwrap();
        assert_eq!(p, Permission::new(["identity"], ["GET /internal/users/*"]));
        for bad in [
            r#"{"apis":["identity"],"routes":["GET /x"],"effect":"deny"}"#,
            r#"{"routes":["GET /x"]}"#,
            r#"{"apis":["identity"]}"#,
            r#"{"apis":"identity","routes":["GET /x"]}"#,
            r#""GET /x""#,
            r#"{"apis":["a"],"apis":["b"],"routes":[]}"#,
        ] {
            assert!(serde_json::from_str::<Permission>(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn routes_are_those_of_the_grants_naming_the_api() {
        let c = TokenClaims {
            iss: "i".into(),
            sub: "tutor-service".into(),
            aud: vec!["billing".into(), "identity".into()],
            exp: 2,
            nbf: 1,
            iat: 1,
            jti: "j".into(),
            permissions: vec![
                Permission::new(["identity"], ["GET /internal/users/*"]),
                Permission::new(["billing", "identity"], ["POST /internal/charges"]),
                Permission::new(["billing"], ["GET /internal/invoices/*"]),
            ],
            proof: Proof::Iam {
                role_arn: "arn:aws:iam::123456789012:role/tutor".into(),
            },
        };
        let identity: Vec<&str> = c.routes_for("identity").collect();
        assert_eq!(
            identity,
            ["GET /internal/users/*", "POST /internal/charges"]
        );
        assert_eq!(c.routes_for("audit").count(), 0);
        assert!(c.audience_includes("billing") && !c.audience_includes("bill"));
        assert_eq!(
            TokenClaims::audience_of(&c.permissions),
            ["billing", "identity"]
        );
    }
}
