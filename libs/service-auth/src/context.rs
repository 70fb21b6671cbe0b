//! The authorizer context: the caller's identity as API Gateway hands it to backends
//! (`requestContext.authorizer.*`). Values are strings only: API Gateway turns every
//! context value into a string for the backend, and fails the request with a 500 on an
//! array or object.
//!
//! The one owner of its shape: the authorizer writes it with [`entries`] (API-key
//! callers) and [`token_entries`] (token callers), and backends read it with
//! [`crate::identity::identify`], both through the keys and values below. Documented
//! for users in `docs/contracts.md` ("Authorizer response context"); the templates'
//! access-log formats name the keys as `$context.authorizer.<key>`.

use std::borrow::Cow;

use crate::decision::Grant;
use crate::record::UnixTime;

/// Calling service name.
pub const SERVICE_ID: &str = "serviceId";
/// How the caller proved who it is to the authorizer: [`AUTHENTICATED_BY_API_KEY`] or
/// [`AUTHENTICATED_BY_TOKEN`] (an IAM caller has no authorizer context).
pub const AUTHENTICATED_BY: &str = "authenticatedBy";
/// Non-secret id of the key used.
pub const KEY_ID: &str = "keyId";
/// RFC 3339 expiry of the key used, when it has one.
pub const KEY_EXPIRES_AT: &str = "keyExpiresAt";

/// `authenticatedBy` (and `tokenProof`): an API key.
pub const AUTHENTICATED_BY_API_KEY: &str = "api-key";
/// `tokenProof`: a SigV4 signature of an IAM role (also how
/// [`crate::identity::ServiceIdentity::method_name`] names native IAM callers).
pub const AUTHENTICATED_BY_IAM: &str = "iam";
/// A signed service token (`Authorization: Bearer`) verified by the authorizer.
pub const AUTHENTICATED_BY_TOKEN: &str = "token";
/// Token callers: the token's id (`jti`).
pub const TOKEN_ID: &str = "tokenId";
/// Token callers: RFC 3339 expiry of the token.
pub const TOKEN_EXPIRES_AT: &str = "tokenExpiresAt";
/// Token callers: how the caller proved itself to the issuer, `api-key` (then `keyId`
/// is that key's id) or `iam`.
pub const TOKEN_PROOF: &str = "tokenProof";

/// An API-key caller, as its context describes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyCaller<'a> {
    pub service: &'a str,
    /// The key's non-secret id.
    pub key_id: &'a str,
    /// The key's expiry, when it has one.
    pub expires_at: Option<UnixTime>,
}

/// The context entries for an allowed API-key caller: `serviceId`, `authenticatedBy`
/// `api-key`, `keyId`, and `keyExpiresAt` when the key has an expiry.
pub fn key_entries(caller: KeyCaller<'_>) -> impl Iterator<Item = (&'static str, Cow<'_, str>)> {
    [
        Some((SERVICE_ID, Cow::Borrowed(caller.service))),
        Some((AUTHENTICATED_BY, Cow::Borrowed(AUTHENTICATED_BY_API_KEY))),
        Some((KEY_ID, Cow::Borrowed(caller.key_id))),
        caller
            .expires_at
            .map(|e| (KEY_EXPIRES_AT, Cow::Owned(e.to_rfc3339()))),
    ]
    .into_iter()
    .flatten()
}

/// [`key_entries`] for an allowed caller, borrowed from its grant. Depends on the
/// caller only, so it is safe to cache with the policy.
pub fn entries(grant: &Grant) -> impl Iterator<Item = (&'static str, Cow<'_, str>)> {
    key_entries(KeyCaller {
        service: grant.service.service.as_str(),
        key_id: grant.key_id.as_str(),
        expires_at: grant.expires,
    })
}

/// A token caller, as its context describes it: borrowed from the verified claims.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenCaller<'a> {
    /// The token's service (`sub`).
    pub service: &'a str,
    /// The token's id (`jti`).
    pub token_id: &'a str,
    /// The token's expiry (`exp`).
    pub expires_at: UnixTime,
    /// The id of the API key the token was obtained with; `None` when it was obtained
    /// with IAM.
    pub proof_key_id: Option<&'a str>,
}

/// The context entries for an allowed token caller: `serviceId` and `authenticatedBy`
/// as for key callers, the token's id, expiry and proof, and `keyId` only when the
/// proof was an API key (its id, never the key).
pub fn token_entries(
    caller: TokenCaller<'_>,
) -> impl Iterator<Item = (&'static str, Cow<'_, str>)> {
    let proof = match caller.proof_key_id {
        Some(_) => AUTHENTICATED_BY_API_KEY,
        None => AUTHENTICATED_BY_IAM,
    };
    [
        Some((SERVICE_ID, Cow::Borrowed(caller.service))),
        Some((AUTHENTICATED_BY, Cow::Borrowed(AUTHENTICATED_BY_TOKEN))),
        Some((TOKEN_ID, Cow::Borrowed(caller.token_id))),
        Some((TOKEN_EXPIRES_AT, Cow::Owned(caller.expires_at.to_rfc3339()))),
        Some((TOKEN_PROOF, Cow::Borrowed(proof))),
        caller.proof_key_id.map(|k| (KEY_ID, Cow::Borrowed(k))),
    ]
    .into_iter()
    .flatten()
}

/// [`entries`], owned.
pub fn for_grant(grant: &Grant) -> Vec<(&'static str, String)> {
    entries(grant).map(|(k, v)| (k, v.into_owned())).collect()
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::decision::{decide, AuthRequest, Decision};
    use crate::identity::{identify, AuthMethod, IamRoleMap, ServiceIdentity, TokenProof};
    use crate::{ApiGrant, ApiKey, KeyRecord, KeyStore, ServiceDocument};

    /// What a backend reads back from `entries`, through the reader backends use.
    fn read_back<'a>(
        entries: impl Iterator<Item = (&'static str, Cow<'a, str>)>,
    ) -> ServiceIdentity {
        let context: HashMap<&str, String> = entries.map(|(k, v)| (k, v.into_owned())).collect();
        identify(
            |k| context.get(k).map(String::as_str),
            None,
            &IamRoleMap::default(),
        )
        .unwrap()
    }

    fn grant(expires: Option<UnixTime>) -> (ApiKey, Grant) {
        let key = ApiKey::generate(None).unwrap();
        let mut doc = ServiceDocument::new(
            "tutor-service",
            vec![ApiGrant::new(&["identity"], &["GET /x"])],
        );
        doc.keys
            .push(KeyRecord::for_key(&key, UnixTime(1), expires));
        let store = KeyStore::build(&[doc], &[]).unwrap();
        let decision = decide(
            Some(&store),
            &AuthRequest {
                api_key_values: &[key.expose_secret()],
                method_arn: Some(
                    "arn:aws:execute-api:us-east-1:123456789012:a1b2c3d4e5/prod/GET/x",
                ),
                api_name: Some("identity"),
            },
            UnixTime(100),
        );
        let Decision::Allow(grant) = decision else {
            panic!("not allowed")
        };
        (key, grant)
    }

    #[test]
    fn an_api_key_callers_context_reads_back_as_that_key() {
        for expires in [None, Some(UnixTime(1_000_000))] {
            let (key, grant) = grant(expires);
            let id = read_back(entries(&grant));
            assert_eq!(id.service, "tutor-service");
            assert_eq!(
                id.method,
                AuthMethod::ApiKey {
                    key_id: key.key_id()
                }
            );
            assert_eq!(id.method_name(), AUTHENTICATED_BY_API_KEY);
            let owned = for_grant(&grant);
            assert_eq!(
                owned.iter().any(|(k, _)| *k == KEY_EXPIRES_AT),
                expires.is_some()
            );
            let again = read_back(owned.into_iter().map(|(k, v)| (k, Cow::Owned(v))));
            assert_eq!(again, id);
        }
    }

    #[test]
    fn a_token_callers_context_reads_back_for_each_proof() {
        let key_id = "kid_0123456789abcdef";
        for proof_key_id in [Some(key_id), None] {
            let caller = TokenCaller {
                service: "tutor-service",
                token_id: "0f8e6b2c-jti",
                expires_at: UnixTime(1_796_000_000),
                proof_key_id,
            };
            let id = read_back(token_entries(caller));
            let proof = match proof_key_id {
                Some(k) => TokenProof::ApiKey {
                    key_id: crate::KeyId::parse(k).unwrap(),
                },
                None => TokenProof::Iam,
            };
            assert_eq!(
                id,
                ServiceIdentity {
                    service: "tutor-service".into(),
                    method: AuthMethod::Token {
                        token_id: "0f8e6b2c-jti".into(),
                        expires_at: UnixTime(1_796_000_000),
                        proof,
                    },
                }
            );
            assert_eq!(id.method_name(), AUTHENTICATED_BY_TOKEN);
        }
    }
}
