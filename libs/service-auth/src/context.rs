//! The authorizer context: the caller's identity as API Gateway hands it to backends
//! (`requestContext.authorizer.*`). Values are strings only: API Gateway turns every
//! context value into a string for the backend, and fails the request with a 500 on an
//! array or object.

use std::borrow::Cow;

use crate::decision::Grant;

/// Calling service name.
pub const SERVICE_ID: &str = "serviceId";
/// How the caller proved who it is: [`AUTHENTICATED_BY_API_KEY`] or `iam`.
pub const AUTHENTICATED_BY: &str = "authenticatedBy";
/// Non-secret id of the key used.
pub const KEY_ID: &str = "keyId";
/// RFC 3339 expiry of the key used, when it has one.
pub const KEY_EXPIRES_AT: &str = "keyExpiresAt";

pub const AUTHENTICATED_BY_API_KEY: &str = "api-key";
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

/// The context entries for an allowed caller, borrowed from its grant (only the key's
/// expiry is written out). Depends on the caller only, so it is safe to cache with the
/// policy.
pub fn entries(grant: &Grant) -> impl Iterator<Item = (&'static str, Cow<'_, str>)> {
    [
        Some((SERVICE_ID, Cow::Borrowed(grant.service.service.as_str()))),
        Some((AUTHENTICATED_BY, Cow::Borrowed(AUTHENTICATED_BY_API_KEY))),
        Some((KEY_ID, Cow::Borrowed(grant.key_id.as_str()))),
        grant
            .expires
            .map(|e| (KEY_EXPIRES_AT, Cow::Owned(e.to_rfc3339()))),
    ]
    .into_iter()
    .flatten()
}

/// [`entries`], owned.
pub fn for_grant(grant: &Grant) -> Vec<(&'static str, String)> {
    entries(grant).map(|(k, v)| (k, v.into_owned())).collect()
}
