//! The key set: ES256 public keys by exact `kid`, from a JWKS document.
//!
//! [`KeySet::from_jwks`] keeps only keys that can verify ES256 (`kty` EC, `crv` P-256,
//! `alg` ES256 or absent, `use` sig or absent) and have a `kid`; a set that names one
//! `kid` twice is refused whole, since it would make a lookup ambiguous.
//! [`jwk_from_spki_der`] builds the JWK of a KMS key from its `GetPublicKey` answer.

use std::collections::HashMap;
use std::fmt;

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::signature::{ParsedPublicKey, ECDSA_P256_SHA256_FIXED};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use jsonwebtoken::jwk::{
    AlgorithmParameters, CommonParameters, EllipticCurve, EllipticCurveKeyParameters,
    EllipticCurveKeyType, Jwk, JwkSet, KeyAlgorithm, PublicKeyUse,
};
use jsonwebtoken::DecodingKey;

/// Longest `kid` accepted, in a header or a key set.
pub const MAX_KID_LEN: usize = 128;
/// Most keys one set may hold (normally one, two during a rotation).
pub const MAX_KEYS: usize = 16;

/// The DER SubjectPublicKeyInfo prefix of every uncompressed P-256 public key
/// (id-ecPublicKey, prime256v1, a 66-byte BIT STRING); the 65-byte point follows.
const P256_SPKI_PREFIX: [u8; 26] = [
    0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a,
    0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
];

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeySetError {
    #[error("the key set is not JWKS JSON")]
    NotJwks,
    #[error("the key set names kid {0:?} more than once")]
    DuplicateKid(String),
    #[error("the key set has more than {MAX_KEYS} usable keys")]
    TooManyKeys,
    #[error("the public key is not a P-256 SubjectPublicKeyInfo (is the KMS key ECC_NIST_P256?)")]
    NotP256,
    #[error("kid must be 1-{MAX_KID_LEN} printable ASCII characters")]
    BadKid,
}

/// Usable ES256 verification keys by `kid`.
#[derive(Clone, Default)]
pub struct KeySet {
    keys: HashMap<String, DecodingKey>,
    /// Keys of the document that were not usable for ES256 (other types, no kid).
    skipped: usize,
}

impl fmt::Debug for KeySet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut kids: Vec<&str> = self.keys.keys().map(String::as_str).collect();
        kids.sort_unstable();
        f.debug_struct("KeySet")
            .field("kids", &kids)
            .field("skipped", &self.skipped)
            .finish()
    }
}

impl KeySet {
    /// From a JWKS JSON document (`{"keys":[...]}`).
    pub fn from_json(json: &[u8]) -> Result<Self, KeySetError> {
        let set: JwkSet = serde_json::from_slice(json).map_err(|_| KeySetError::NotJwks)?;
        Self::from_jwks(&set)
    }

    pub fn from_jwks(set: &JwkSet) -> Result<Self, KeySetError> {
        let mut keys = HashMap::new();
        let mut skipped = 0;
        for jwk in &set.keys {
            let Some(kid) = usable_es256_kid(jwk) else {
                skipped += 1;
                continue;
            };
            let Ok(key) = DecodingKey::from_jwk(jwk) else {
                skipped += 1;
                continue;
            };
            if keys.insert(kid.to_owned(), key).is_some() {
                return Err(KeySetError::DuplicateKid(kid.to_owned()));
            }
            if keys.len() > MAX_KEYS {
                return Err(KeySetError::TooManyKeys);
            }
        }
        Ok(Self { keys, skipped })
    }

    pub fn get(&self, kid: &str) -> Option<&DecodingKey> {
        self.keys.get(kid)
    }

    pub fn contains(&self, kid: &str) -> bool {
        self.keys.contains_key(kid)
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Keys of the source document that were left out as unusable for ES256.
    pub fn skipped(&self) -> usize {
        self.skipped
    }
}

/// Whether `kid` has the shape this product gives key ids (and so can be logged).
pub fn valid_kid(kid: &str) -> bool {
    !kid.is_empty() && kid.len() <= MAX_KID_LEN && kid.bytes().all(|b| b.is_ascii_graphic())
}

fn usable_es256_kid(jwk: &Jwk) -> Option<&str> {
    let AlgorithmParameters::EllipticCurve(ec) = &jwk.algorithm else {
        return None;
    };
    let use_ok = matches!(
        jwk.common.public_key_use,
        None | Some(PublicKeyUse::Signature)
    );
    let alg_ok = matches!(jwk.common.key_algorithm, None | Some(KeyAlgorithm::ES256));
    let kid = jwk.common.key_id.as_deref().filter(|k| valid_kid(k))?;
    (ec.curve == EllipticCurve::P256 && use_ok && alg_ok).then_some(kid)
}

/// The JWK (`kty` EC, `crv` P-256, `alg` ES256, `use` sig) of a public key given as DER
/// SubjectPublicKeyInfo, as KMS `GetPublicKey` returns it. aws-lc-rs checks that the
/// bytes are a P-256 key and a point on the curve before the coordinates are taken.
pub fn jwk_from_spki_der(kid: &str, spki_der: &[u8]) -> Result<Jwk, KeySetError> {
    if !valid_kid(kid) {
        return Err(KeySetError::BadKid);
    }
    let parsed = ParsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, spki_der)
        .map_err(|_| KeySetError::NotP256)?;
    // Re-encoded by aws-lc, so the point is uncompressed whatever the input's form.
    let der = parsed.as_der().map_err(|_| KeySetError::NotP256)?;
    let der = der.as_ref();
    let point = der
        .strip_prefix(&P256_SPKI_PREFIX[..])
        .filter(|p| p.len() == 65 && p[0] == 0x04)
        .ok_or(KeySetError::NotP256)?;
    Ok(Jwk {
        common: CommonParameters {
            public_key_use: Some(PublicKeyUse::Signature),
            key_algorithm: Some(KeyAlgorithm::ES256),
            key_id: Some(kid.to_owned()),
            ..CommonParameters::default()
        },
        algorithm: AlgorithmParameters::EllipticCurve(EllipticCurveKeyParameters {
            key_type: EllipticCurveKeyType::EC,
            curve: EllipticCurve::P256,
            x: URL_SAFE_NO_PAD.encode(&point[1..33]),
            y: URL_SAFE_NO_PAD.encode(&point[33..]),
        }),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_lc_rs::rand::SystemRandom;
    use aws_lc_rs::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};

    fn p256_spki() -> Vec<u8> {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
        let pair =
            EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref()).unwrap();
        pair.public_key().as_der().unwrap().as_ref().to_vec()
    }

    #[test]
    fn jwk_from_spki_has_the_point_and_parses_back() {
        let spki = p256_spki();
        let jwk = jwk_from_spki_der("key-1", &spki).unwrap();
        let json = serde_json::to_value(&jwk).unwrap();
        assert_eq!(json["kty"], "EC");
        assert_eq!(json["crv"], "P-256");
        assert_eq!(json["alg"], "ES256");
        assert_eq!(json["use"], "sig");
        assert_eq!(json["kid"], "key-1");
        let x = URL_SAFE_NO_PAD.decode(json["x"].as_str().unwrap()).unwrap();
        assert_eq!(x, spki[27..59]);
        let set = KeySet::from_jwks(&JwkSet { keys: vec![jwk] }).unwrap();
        assert!(set.contains("key-1"));
        assert_eq!(set.len(), 1);
    }

    #[test]
    fn non_p256_public_keys_are_refused() {
        let spki = p256_spki();
        assert_eq!(jwk_from_spki_der("k", b"nope"), Err(KeySetError::NotP256));
        let mut off_curve = spki.clone();
        off_curve[60] ^= 1;
        assert_eq!(
            jwk_from_spki_der("k", &off_curve),
            Err(KeySetError::NotP256)
        );
        assert_eq!(jwk_from_spki_der("", &spki), Err(KeySetError::BadKid));
        assert_eq!(jwk_from_spki_der("a b", &spki), Err(KeySetError::BadKid));
    }

    #[test]
    fn only_es256_keys_with_a_kid_are_kept() {
        let good = serde_json::to_value(jwk_from_spki_der("good", &p256_spki()).unwrap()).unwrap();
        let mut no_kid = good.clone();
        no_kid.as_object_mut().unwrap().remove("kid");
        let mut wrong_alg = good.clone();
        wrong_alg["alg"] = "ES384".into();
        wrong_alg["kid"] = "wrong-alg".into();
        let mut enc = good.clone();
        enc["use"] = "enc".into();
        enc["kid"] = "enc".into();
        let hmac = serde_json::json!({"kty":"oct","k":"c2VjcmV0","kid":"hmac"});
        let rsa = serde_json::json!({"kty":"RSA","n":"AQAB","e":"AQAB","kid":"rsa"});
        let doc = serde_json::json!({"keys":[good, no_kid, wrong_alg, enc, hmac, rsa]});
        let set = KeySet::from_json(doc.to_string().as_bytes()).unwrap();
        assert_eq!(set.len(), 1, "{set:?}");
        assert!(set.contains("good"));
        assert_eq!(set.skipped(), 5);
    }

    #[test]
    fn a_duplicate_kid_refuses_the_set() {
        let a = jwk_from_spki_der("same", &p256_spki()).unwrap();
        let b = jwk_from_spki_der("same", &p256_spki()).unwrap();
        assert_eq!(
            KeySet::from_jwks(&JwkSet { keys: vec![a, b] }).unwrap_err(),
            KeySetError::DuplicateKid("same".into())
        );
        assert_eq!(
            KeySet::from_json(b"{\"keys\":3}").unwrap_err(),
            KeySetError::NotJwks
        );
    }
}
