//! Property tests for the verifier: good tokens verify to exactly their claims; any
//! one-character change of a good token is refused; arbitrary input never panics.

use proptest::prelude::*;
use serde_json::json;
use service_auth::UnixTime;
use service_token::{Permission, Rejection, TokenClaims};
use std::sync::OnceLock;
use test_support::token_signer::*;

fn key() -> &'static TestKey {
    static KEY: OnceLock<TestKey> = OnceLock::new();
    KEY.get_or_init(|| TestKey::new("prop-key"))
}

const B64URL: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.";

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn good_tokens_verify_to_their_claims(
        sub in "[a-z0-9][a-z0-9-]{0,30}",
        grants in prop::collection::vec(
            (prop::sample::subsequence(vec![AUDIENCE, "billing", "audit"], 1..=3),
             prop::collection::vec("(GET|POST) /[a-z]{1,10}(/\\*)?", 0..4)),
            0..4),
        lifetime in 1u64..=3600,
        offset in 0u64..=3600,
        jti in "[a-f0-9]{8,32}",
        iam in any::<bool>(),
    ) {
        let proof = if iam {
            json!({"method": "iam", "roleArn": "arn:aws:iam::123456789012:role/r"})
        } else {
            json!({"method": "api-key", "keyId": "kid_0123456789abcdef"})
        };
        let permissions: Vec<Permission> =
            grants.iter().map(|(apis, routes)| Permission::new(apis.clone(), routes.clone())).collect();
        let mut aud = TokenClaims::audience_of(&permissions);
        if !aud.iter().any(|a| a == AUDIENCE) {
            aud.push(AUDIENCE.to_owned());
        }
        let claims = json!({"iss": ISSUER, "sub": sub, "aud": aud,
            "exp": NOW + lifetime, "nbf": NOW, "iat": NOW, "jti": jti,
            "permissions": permissions, "proof": proof});
        let now = NOW + offset.min(lifetime - 1);
        let token = key().token(&claims);
        let t = verifier().verify(&token, &key().key_set(), AUDIENCE, UnixTime(now)).unwrap();
        prop_assert_eq!(serde_json::to_value(&t.claims).unwrap(), claims);
        // The same token is refused for an API it does not name.
        prop_assert_eq!(
            verifier().verify(&token, &key().key_set(), "payroll", UnixTime(now)).map(|_| ()),
            Err(Rejection::WrongAudience)
        );
        // Its routes on an API are exactly those of the grants naming that API.
        let want: Vec<&str> = grants.iter().filter(|(apis, _)| apis.contains(&AUDIENCE))
            .flat_map(|(_, routes)| routes.iter().map(String::as_str)).collect();
        prop_assert_eq!(t.claims.routes_for(AUDIENCE).collect::<Vec<_>>(), want);
    }

    #[test]
    fn any_one_character_change_is_refused(pos in any::<prop::sample::Index>(), c in prop::sample::select(B64URL)) {
        let token = key().token(&good_claims());
        let i = pos.index(token.len());
        prop_assume!(token.as_bytes()[i] != c);
        let mut bytes = token.into_bytes();
        bytes[i] = c;
        let changed = String::from_utf8(bytes).unwrap();
        prop_assert!(verifier().verify(&changed, &key().key_set(), AUDIENCE, UnixTime(NOW)).is_err());
    }

    #[test]
    fn arbitrary_input_is_refused_without_panicking(s in "\\PC{0,300}", dots in "[A-Za-z0-9_-]{0,40}\\.[A-Za-z0-9_-]{0,40}\\.[A-Za-z0-9_-]{0,90}") {
        prop_assert!(verifier().verify(&s, &key().key_set(), AUDIENCE, UnixTime(NOW)).is_err());
        prop_assert!(verifier().verify(&dots, &key().key_set(), AUDIENCE, UnixTime(NOW)).is_err());
    }
}
