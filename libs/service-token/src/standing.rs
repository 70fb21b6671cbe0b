//! Whether a calling service may still use the tokens it holds.
//!
//! A token stays valid until it expires (the revocation bound is its lifetime), unless
//! the authorizer knows better from the key store: the service is gone, the key the
//! token was obtained with is revoked or ended, or an operator pulled the service's
//! emergency brake ("tokens issued before T are refused"). What the store says is a
//! [`Standing`] (`service_auth::standing`, one type for every reader), markers applied.

use service_auth::{Standing, UnixTime};

use crate::claims::{Proof, TokenClaims};
use crate::verify::Rejection;

/// Checks a verified token against its service's standing at `now`.
pub fn check_standing(
    claims: &TokenClaims,
    standing: &Standing,
    now: UnixTime,
) -> Result<(), Rejection> {
    if !standing.known() {
        return Err(Rejection::UnknownService);
    }
    if let Proof::ApiKey { key_id } = &claims.proof {
        if !standing.proof_key_usable(key_id, now) {
            return Err(Rejection::KeyRevoked);
        }
    }
    if standing
        .tokens_not_before()
        .is_some_and(|t| claims.iat < t.0)
    {
        return Err(Rejection::Braked);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use service_auth::ServiceDocument;

    const KEY_ID: &str = "kid_0123456789abcdef";

    fn claims(iat: u64) -> TokenClaims {
        TokenClaims {
            iss: "i".into(),
            sub: "tutor-service".into(),
            aud: vec!["identity".into()],
            exp: iat + 600,
            nbf: iat,
            iat,
            jti: "j".into(),
            permissions: vec![],
            proof: Proof::ApiKey {
                key_id: KEY_ID.into(),
            },
        }
    }

    /// tutor-service's document with the proof key (`status`, `expires`) and a brake.
    fn standing(status: &str, expires: Option<u64>, brake: Option<u64>) -> Standing {
        let json = serde_json::json!({
            "schema": 2, "service": "tutor-service",
            "grants": [{"apis": ["identity"], "routes": ["GET /x"]}],
            "keys": [{"keyId": KEY_ID, "sha256": "0".repeat(64),
                      "created": "2026-01-01T00:00:00Z",
                      "expires": expires.map(|e| UnixTime(e).to_rfc3339()),
                      "status": status}],
            "tokensNotBefore": brake.map(|b| UnixTime(b).to_rfc3339()),
        });
        Standing {
            document: Some(ServiceDocument::from_json(&json.to_string()).unwrap()),
            proof_key_revoked: false,
        }
    }

    #[test]
    fn standing_table() {
        let now = UnixTime(1_900_000_000);
        let iat = now.0 - 10;
        let marked = Standing {
            proof_key_revoked: true,
            ..standing("active", None, None)
        };
        type Case = (&'static str, Standing, Result<(), Rejection>);
        let cases: Vec<Case> = vec![
            (
                "unknown service",
                Standing::default(),
                Err(Rejection::UnknownService),
            ),
            ("no brake", standing("active", None, None), Ok(())),
            (
                "issued before the brake",
                standing("active", None, Some(iat + 1)),
                Err(Rejection::Braked),
            ),
            (
                "issued at the brake time",
                standing("active", None, Some(iat)),
                Ok(()),
            ),
            (
                "revoked key",
                standing("revoked", None, None),
                Err(Rejection::KeyRevoked),
            ),
            ("revocation marker", marked, Err(Rejection::KeyRevoked)),
            (
                "expired key",
                standing("active", Some(now.0), None),
                Err(Rejection::KeyRevoked),
            ),
            (
                "key ends later",
                standing("active", Some(now.0 + 1), None),
                Ok(()),
            ),
        ];
        for (name, s, want) in cases {
            assert_eq!(check_standing(&claims(iat), &s, now), want, "{name}");
        }
        // A key of another service, or none: the proof key is not this service's.
        let mut other = standing("active", None, None);
        other.document.as_mut().unwrap().keys.clear();
        assert_eq!(
            check_standing(&claims(iat), &other, now),
            Err(Rejection::KeyRevoked)
        );
    }
}
