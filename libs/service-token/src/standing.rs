//! Whether a calling service may still use the tokens it holds.
//!
//! A token stays valid until it expires (the revocation bound is its lifetime), unless
//! the authorizer knows better from the key store it has loaded anyway: the service is
//! gone, the key the token was obtained with is revoked, or an operator pulled the
//! service's emergency brake ("tokens issued before T are refused").

use service_auth::UnixTime;

use crate::claims::TokenClaims;
use crate::verify::Rejection;

/// What the key store says about a token's service (`sub`), built by the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Standing {
    /// Tokens issued (`iat`) before this time are refused.
    pub tokens_not_before: Option<UnixTime>,
    /// The API key named in the token's proof is revoked (false for IAM proofs).
    pub proof_key_revoked: bool,
}

/// `standing` is `None` when the store has no document for the service.
pub fn check_standing(claims: &TokenClaims, standing: Option<&Standing>) -> Result<(), Rejection> {
    let standing = standing.ok_or(Rejection::UnknownService)?;
    if standing.proof_key_revoked {
        return Err(Rejection::KeyRevoked);
    }
    if standing.tokens_not_before.is_some_and(|t| claims.iat < t.0) {
        return Err(Rejection::Braked);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::claims::Proof;

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
                key_id: "kid_0123456789abcdef".into(),
            },
        }
    }

    #[test]
    fn standing_table() {
        let brake = Some(UnixTime(1_000));
        type Case = (&'static str, u64, Option<Standing>, Result<(), Rejection>);
        let cases: Vec<Case> = vec![
            ("unknown service", 999, None, Err(Rejection::UnknownService)),
            ("no brake", 999, Some(Standing::default()), Ok(())),
            (
                "issued before the brake",
                999,
                Some(Standing {
                    tokens_not_before: brake,
                    proof_key_revoked: false,
                }),
                Err(Rejection::Braked),
            ),
            (
                "issued at the brake time",
                1_000,
                Some(Standing {
                    tokens_not_before: brake,
                    proof_key_revoked: false,
                }),
                Ok(()),
            ),
            (
                "revoked key",
                2_000,
                Some(Standing {
                    tokens_not_before: None,
                    proof_key_revoked: true,
                }),
                Err(Rejection::KeyRevoked),
            ),
        ];
        for (name, iat, standing, want) in cases {
            assert_eq!(
                check_standing(&claims(iat), standing.as_ref()),
                want,
                "{name}"
            );
        }
    }
}
