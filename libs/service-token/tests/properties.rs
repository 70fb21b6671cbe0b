//! Property tests for the verifier: good tokens verify to exactly their claims; any
//! one-character change of a good token is refused; arbitrary input never panics.

mod common;

use common::*;
use proptest::prelude::*;
use serde_json::json;
use service_auth::UnixTime;
use std::sync::OnceLock;

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
        perms in prop::collection::vec("(GET|POST) /[a-z]{1,10}(/\\*)?", 0..5),
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
        let claims = json!({"iss": ISSUER, "sub": sub, "aud": [AUDIENCE, "other"],
            "exp": NOW + lifetime, "nbf": NOW, "iat": NOW, "jti": jti,
            "permissions": perms, "proof": proof});
        let now = NOW + offset.min(lifetime - 1);
        let t = verifier().verify(&key().token(&claims), &key().key_set(), UnixTime(now)).unwrap();
        prop_assert_eq!(serde_json::to_value(&t.claims).unwrap(), claims);
    }

    #[test]
    fn any_one_character_change_is_refused(pos in any::<prop::sample::Index>(), c in prop::sample::select(B64URL)) {
        let token = key().token(&good_claims());
        let i = pos.index(token.len());
        prop_assume!(token.as_bytes()[i] != c);
        let mut bytes = token.into_bytes();
        bytes[i] = c;
        let changed = String::from_utf8(bytes).unwrap();
        prop_assert!(verifier().verify(&changed, &key().key_set(), UnixTime(NOW)).is_err());
    }

    #[test]
    fn arbitrary_input_is_refused_without_panicking(s in "\\PC{0,300}", dots in "[A-Za-z0-9_-]{0,40}\\.[A-Za-z0-9_-]{0,40}\\.[A-Za-z0-9_-]{0,90}") {
        prop_assert!(verifier().verify(&s, &key().key_set(), UnixTime(NOW)).is_err());
        prop_assert!(verifier().verify(&dots, &key().key_set(), UnixTime(NOW)).is_err());
    }
}
