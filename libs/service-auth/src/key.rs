//! Service API keys: the secret type, the product's key format, hashing and key ids.
//!
//! Format of a product key:
//!
//! ```text
//! svcauth_[<env>_]<body: 43 base62 chars><checksum: 6 base62 chars>
//! ```
//!
//! * `svcauth_` names the product, so secret scanners can match it; `<env>` (1 to 12
//!   chars of `a-z0-9`) is optional and names the environment (`dev`, `prod`, ...).
//! * The body is 43 characters drawn uniformly from the 62 base62 characters with the
//!   OS CSPRNG: 43 × log2(62) ≈ 256 bits.
//! * The checksum is CRC-32 (IEEE) of everything before it, as 6 base62 digits. It lets
//!   the authorizer and scanners reject a typo'd or invented key without a lookup. It
//!   is not a MAC: it protects against mistakes, not attackers (the 256-bit body does).
//!
//! Keys of the original design (exactly 64 ASCII alphanumerics, no prefix) are accepted
//! as [`KeyFormat::Legacy`] so that imported keys keep working during a migration.

use std::fmt;

use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

/// The product prefix every new key starts with.
pub const PRODUCT_PREFIX: &str = "svcauth_";
/// Number of random base62 characters in a product key.
pub const BODY_LEN: usize = 43;
/// Number of base62 characters of the checksum.
pub const CHECKSUM_LEN: usize = 6;
/// Length of a key of the original design.
pub const LEGACY_LEN: usize = 64;
/// Longest environment tag.
pub const MAX_ENV_LEN: usize = 12;
/// Anything longer than this is rejected before any other work.
pub const MAX_KEY_LEN: usize = 128;

const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
const KEY_ID_DOMAIN: &[u8] = b"svcauth-key-id/v1\0";

/// Why a presented string is not a key. Carries no part of the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyFormatError {
    #[error("the key is empty")]
    Empty,
    #[error("the key is longer than {MAX_KEY_LEN} bytes")]
    TooLong,
    #[error("the key has characters outside the key alphabet")]
    BadCharacter,
    #[error("the key has neither the product format nor the legacy format")]
    UnknownFormat,
    #[error("the environment tag is empty, too long or not [a-z0-9]")]
    BadEnvironment,
    #[error("the key's checksum does not match: it was mistyped or invented")]
    BadChecksum,
}

/// Why a key could not be generated.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyGenError {
    #[error("the environment tag must be 1 to {MAX_ENV_LEN} characters of a-z and 0-9")]
    BadEnvironment,
    #[error("the operating system's random number generator failed: {0}")]
    Random(getrandom::Error),
}

/// Which format a parsed key has.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyFormat {
    /// `svcauth_[env_]...` with a valid checksum.
    Product { env: Option<String> },
    /// 64 alphanumerics from the original design.
    Legacy,
}

/// A service API key in clear. Redacted `Debug`, no `Display`, no `Serialize`, wiped
/// from memory on drop. [`ApiKey::expose_secret`] is the one way to read it.
pub struct ApiKey {
    secret: Zeroizing<String>,
    /// Of the original design ([`KeyFormat::Legacy`]); else a product key, whose
    /// environment tag is read from the key when asked ([`ApiKey::format`]).
    legacy: bool,
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiKey")
            .field("key_id", &self.key_id())
            .field("format", &self.format())
            .finish_non_exhaustive()
    }
}

impl ApiKey {
    /// Parses and validates a presented key (format, alphabet, checksum). Does no lookup.
    pub fn parse(presented: &str) -> Result<Self, KeyFormatError> {
        let legacy = check_format(presented)? == Checked::Legacy;
        Ok(Self {
            secret: Zeroizing::new(presented.to_owned()),
            legacy,
        })
    }

    /// Generates a new product key from the OS CSPRNG.
    pub fn generate(env: Option<&str>) -> Result<Self, KeyGenError> {
        if let Some(env) = env {
            if !valid_env(env) {
                return Err(KeyGenError::BadEnvironment);
            }
        }
        let mut key = Zeroizing::new(String::with_capacity(
            PRODUCT_PREFIX.len() + MAX_ENV_LEN + 1 + BODY_LEN + CHECKSUM_LEN,
        ));
        key.push_str(PRODUCT_PREFIX);
        if let Some(env) = env {
            key.push_str(env);
            key.push('_');
        }
        // Rejection sampling keeps every character uniform: bytes >= 248 (= 4 * 62)
        // are drawn again instead of folding them onto the first characters.
        let mut filled = 0;
        let mut buf = Zeroizing::new([0u8; 64]);
        while filled < BODY_LEN {
            getrandom::fill(buf.as_mut()).map_err(KeyGenError::Random)?;
            for &b in buf.iter() {
                if filled == BODY_LEN {
                    break;
                }
                if b < 248 {
                    key.push(BASE62[(b % 62) as usize] as char);
                    filled += 1;
                }
            }
        }
        let checksum = checksum(key.as_bytes());
        key.extend(checksum.iter().map(|&b| char::from(b)));
        Ok(Self {
            secret: key,
            legacy: false,
        })
    }

    /// The key in clear. Call it only to hand the key to its owner or to send it.
    pub fn expose_secret(&self) -> &str {
        &self.secret
    }

    pub fn format(&self) -> KeyFormat {
        if self.legacy {
            return KeyFormat::Legacy;
        }
        // A product key: `svcauth_[env_]body`, the body holding no `_`.
        let rest = self.secret.strip_prefix(PRODUCT_PREFIX).unwrap_or_default();
        KeyFormat::Product {
            env: rest.split_once('_').map(|(env, _)| env.to_owned()),
        }
    }

    /// SHA-256 of the key: the only form a key is ever stored in.
    pub fn hash(&self) -> KeyHash {
        hash_of(&self.secret)
    }

    /// The non-secret id shown in logs, lists and the authorizer context.
    pub fn key_id(&self) -> KeyId {
        key_id_of(&self.secret)
    }
}

/// A key as presented in a request, checked as [`ApiKey::parse`] checks it (format,
/// alphabet, checksum) and borrowed from the request, never copied: what the
/// authorizer decides with. Redacted `Debug`, no `Display`, no `Serialize`.
#[derive(Clone, Copy)]
pub struct PresentedKey<'a>(&'a str);

impl fmt::Debug for PresentedKey<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("PresentedKey").field(&self.key_id()).finish()
    }
}

impl<'a> PresentedKey<'a> {
    /// Checks a presented key (format, alphabet, checksum). Does no lookup.
    pub fn parse(presented: &'a str) -> Result<Self, KeyFormatError> {
        check_format(presented)?;
        Ok(Self(presented))
    }

    /// SHA-256 of the key, as [`ApiKey::hash`].
    pub fn hash(&self) -> KeyHash {
        hash_of(self.0)
    }

    /// The non-secret id, as [`ApiKey::key_id`].
    pub fn key_id(&self) -> KeyId {
        key_id_of(self.0)
    }
}

fn hash_of(key: &str) -> KeyHash {
    KeyHash(Sha256::digest(key.as_bytes()).into())
}

fn key_id_of(key: &str) -> KeyId {
    let digest = Sha256::new()
        .chain_update(KEY_ID_DOMAIN)
        .chain_update(key.as_bytes())
        .finalize();
    KeyId::from_digest_prefix(&digest[..8])
}

/// Which format a presented key passed as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Checked {
    Product,
    Legacy,
}

/// Checks a presented key without keeping it (or allocating).
fn check_format(presented: &str) -> Result<Checked, KeyFormatError> {
    if presented.is_empty() {
        return Err(KeyFormatError::Empty);
    }
    if presented.len() > MAX_KEY_LEN {
        return Err(KeyFormatError::TooLong);
    }
    let bytes = presented.as_bytes();
    // One pass: the alphabet, and where the first two `_` are (and how many there are).
    let mut underscores = 0;
    let mut at = [0usize; 2];
    for (i, &b) in bytes.iter().enumerate() {
        if b == b'_' {
            if let Some(slot) = at.get_mut(underscores) {
                *slot = i;
            }
            underscores += 1;
        } else if !b.is_ascii_alphanumeric() {
            return Err(KeyFormatError::BadCharacter);
        }
    }
    if presented.starts_with(PRODUCT_PREFIX) {
        // `svcauth_` is the first `_`; a second one ends the environment tag.
        let tail_start = if underscores >= 2 {
            if !valid_env(&presented[PRODUCT_PREFIX.len()..at[1]]) {
                return Err(KeyFormatError::BadEnvironment);
            }
            at[1] + 1
        } else {
            PRODUCT_PREFIX.len()
        };
        // A third `_` would be in the body.
        if bytes.len() - tail_start != BODY_LEN + CHECKSUM_LEN || underscores > 2 {
            return Err(KeyFormatError::UnknownFormat);
        }
        let split = presented.len() - CHECKSUM_LEN;
        let expected = checksum(&bytes[..split]);
        // Not secret (anyone can compute it), so an ordinary comparison is fine.
        if expected[..] != bytes[split..] {
            return Err(KeyFormatError::BadChecksum);
        }
        return Ok(Checked::Product);
    }
    if presented.len() == LEGACY_LEN && underscores == 0 {
        return Ok(Checked::Legacy);
    }
    Err(KeyFormatError::UnknownFormat)
}

fn valid_env(env: &str) -> bool {
    !env.is_empty()
        && env.len() <= MAX_ENV_LEN
        && env
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
}

/// CRC-32 of `data` as exactly six base62 digits (62^6 > 2^32).
fn checksum(data: &[u8]) -> [u8; CHECKSUM_LEN] {
    let mut n = crc32fast::hash(data) as u64;
    let mut out = [b'0'; CHECKSUM_LEN];
    for slot in out.iter_mut().rev() {
        *slot = BASE62[(n % 62) as usize];
        n /= 62;
    }
    out
}

/// SHA-256 of a key. Safe to store and compare: keys have 256 bits of entropy (legacy
/// keys about 381), so the hash cannot be reversed by guessing.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct KeyHash([u8; 32]);

impl KeyHash {
    /// Parses 64 lowercase or uppercase hex digits.
    pub fn from_hex(hex: &str) -> Option<Self> {
        let bytes = hex.as_bytes();
        if bytes.len() != 64 {
            return None;
        }
        let mut out = [0u8; 32];
        for (i, pair) in bytes.chunks_exact(2).enumerate() {
            out[i] = (hex_val(pair[0])? << 4) | hex_val(pair[1])?;
        }
        Some(Self(out))
    }

    pub fn to_hex(&self) -> String {
        to_hex(&self.0)
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Constant-time equality, for places that compare a presented key's hash with one
    /// stored hash instead of looking it up in an index.
    pub fn ct_eq(&self, other: &KeyHash) -> bool {
        subtle::ConstantTimeEq::ct_eq(&self.0[..], &other.0[..]).into()
    }
}

impl fmt::Debug for KeyHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Not secret, but long and useless in logs: show a short prefix.
        write!(f, "KeyHash({}…)", &self.to_hex()[..8])
    }
}

/// A non-secret key id: `kid_` and 16 hex digits of a domain-separated SHA-256 of the
/// key, so it reveals nothing about the stored hash. Held inline (it has a fixed
/// length): copying one into a grant allocates nothing.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyId([u8; KeyId::LEN]);

impl KeyId {
    pub const PREFIX: &'static str = "kid_";
    /// `kid_` and 16 hex digits.
    const LEN: usize = 20;

    fn from_digest_prefix(bytes: &[u8]) -> Self {
        let mut id = [0u8; Self::LEN];
        id[..4].copy_from_slice(Self::PREFIX.as_bytes());
        for (pair, b) in id[4..].chunks_exact_mut(2).zip(bytes) {
            pair[0] = HEX[(b >> 4) as usize];
            pair[1] = HEX[(b & 0xf) as usize];
        }
        Self(id)
    }

    /// Validates a key id read from a record or typed by an operator.
    pub fn parse(s: &str) -> Option<Self> {
        let hex = s.strip_prefix(Self::PREFIX)?;
        let valid = hex.len() == 16 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
        valid.then(|| Self(s.as_bytes().try_into().unwrap_or([0; Self::LEN])))
    }

    pub fn as_str(&self) -> &str {
        // ASCII by construction (both constructors write only `kid_` and hex digits).
        std::str::from_utf8(&self.0).unwrap_or_default()
    }
}

impl fmt::Debug for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl serde::Serialize for KeyId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> serde::Deserialize<'de> for KeyId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        KeyId::parse(&s)
            .ok_or_else(|| serde::de::Error::custom("a key id is kid_ and 16 hex digits"))
    }
}

fn hex_val(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Lowercase hex digits.
const HEX: &[u8; 16] = b"0123456789abcdef";

fn to_hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(HEX[(b >> 4) as usize] as char);
        s.push(HEX[(b & 0xf) as usize] as char);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_parse_and_have_the_documented_shape() {
        let key = ApiKey::generate(Some("dev")).unwrap();
        let s = key.expose_secret();
        assert!(s.starts_with("svcauth_dev_"));
        assert_eq!(s.len(), "svcauth_dev_".len() + BODY_LEN + CHECKSUM_LEN);
        let parsed = ApiKey::parse(s).unwrap();
        assert_eq!(
            parsed.format(),
            KeyFormat::Product {
                env: Some("dev".into())
            }
        );
        assert_eq!(parsed.hash(), key.hash());
        assert_eq!(parsed.key_id(), key.key_id());

        let plain = ApiKey::generate(None).unwrap();
        assert_eq!(plain.expose_secret().len(), PRODUCT_PREFIX.len() + 49);
        assert_eq!(
            ApiKey::parse(plain.expose_secret()).unwrap().format(),
            KeyFormat::Product { env: None }
        );
    }

    #[test]
    fn a_presented_key_is_checked_and_hashed_as_an_owned_one() {
        for key in [
            ApiKey::generate(Some("dev")).unwrap(),
            ApiKey::generate(None).unwrap(),
        ] {
            let presented = PresentedKey::parse(key.expose_secret()).unwrap();
            assert_eq!(presented.hash(), key.hash());
            assert_eq!(presented.key_id(), key.key_id());
            assert!(!format!("{presented:?}").contains(key.expose_secret()));
        }
        for bad in ["", "svcauth_dev_nope", "svcauth_x"] {
            assert_eq!(
                PresentedKey::parse(bad).map(|k| k.key_id()),
                ApiKey::parse(bad).map(|k| k.key_id())
            );
        }
    }

    #[test]
    fn generated_keys_differ() {
        let a = ApiKey::generate(None).unwrap();
        let b = ApiKey::generate(None).unwrap();
        assert_ne!(a.expose_secret(), b.expose_secret());
        assert_ne!(a.key_id(), b.key_id());
    }

    #[test]
    fn body_characters_are_spread_over_the_whole_alphabet() {
        // 200 keys × 43 chars = 8600 draws over 62 symbols: every symbol appears.
        let mut seen = [0u32; 128];
        for _ in 0..200 {
            let k = ApiKey::generate(None).unwrap();
            let s = k.expose_secret();
            for b in s[PRODUCT_PREFIX.len()..s.len() - CHECKSUM_LEN].bytes() {
                seen[b as usize] += 1;
            }
        }
        for &c in BASE62 {
            let n = seen[c as usize];
            assert!((60..=240).contains(&n), "{} seen {n} times", c as char);
        }
    }

    #[test]
    fn a_single_changed_character_fails_the_checksum() {
        let key = ApiKey::generate(Some("prod")).unwrap();
        let s = key.expose_secret().to_owned();
        for i in "svcauth_prod_".len()..s.len() {
            let mut bytes = s.clone().into_bytes();
            bytes[i] = if bytes[i] == b'a' { b'b' } else { b'a' };
            let typo = String::from_utf8(bytes).unwrap();
            assert_eq!(
                ApiKey::parse(&typo).unwrap_err(),
                KeyFormatError::BadChecksum
            );
        }
    }

    #[test]
    fn malformed_keys_are_rejected_with_a_reason() {
        let long = "a".repeat(MAX_KEY_LEN + 1);
        let legacy_63 = "a".repeat(63);
        let cases: &[(&str, KeyFormatError)] = &[
            ("", KeyFormatError::Empty),
            (&long, KeyFormatError::TooLong),
            ("svcauth_dev_abc def", KeyFormatError::BadCharacter),
            ("svcauth_dev_abc,def", KeyFormatError::BadCharacter),
            ("svcauth_dev_é", KeyFormatError::BadCharacter),
            ("not-a-key", KeyFormatError::BadCharacter),
            ("svcauth_", KeyFormatError::UnknownFormat),
            ("svcauth_DEV_abc", KeyFormatError::BadEnvironment),
            ("svcauth__abc", KeyFormatError::BadEnvironment),
            (
                "svcauth_averyverylongenv_abc",
                KeyFormatError::BadEnvironment,
            ),
            ("svcauth_dev_short", KeyFormatError::UnknownFormat),
            (&legacy_63, KeyFormatError::UnknownFormat),
            ("sk_live_abc", KeyFormatError::UnknownFormat),
        ];
        for (input, want) in cases {
            assert_eq!(ApiKey::parse(input).unwrap_err(), *want, "input {input:?}");
        }
    }

    #[test]
    fn legacy_keys_are_accepted() {
        let legacy = "Ab3".repeat(21) + "x";
        let key = ApiKey::parse(&legacy).unwrap();
        assert_eq!(key.format(), KeyFormat::Legacy);
    }

    #[test]
    fn hash_is_sha256_hex_and_round_trips() {
        let key = ApiKey::parse(&"a".repeat(64)).unwrap();
        // sha256("a" * 64), computed independently with `printf 'a%.0s' {1..64} | sha256sum`
        assert_eq!(
            key.hash().to_hex(),
            "ffe054fe7ae0cb6dc65c3af9b61d5209f439851db43d0ba5997337df154668eb"
        );
        assert_eq!(KeyHash::from_hex(&key.hash().to_hex()), Some(key.hash()));
        assert!(key.hash().ct_eq(&key.hash()));
        assert_eq!(KeyHash::from_hex("zz"), None);
        assert_eq!(KeyHash::from_hex(&"g".repeat(64)), None);
    }

    #[test]
    fn key_id_is_not_derived_from_the_stored_hash_and_parses() {
        let key = ApiKey::generate(None).unwrap();
        let id = key.key_id();
        assert!(id.as_str().starts_with("kid_"));
        assert_eq!(id.as_str().len(), 20);
        assert!(!key.hash().to_hex().contains(&id.as_str()[4..]));
        assert_eq!(KeyId::parse(id.as_str()), Some(id));
        assert_eq!(KeyId::parse("kid_XYZ"), None);
        assert_eq!(KeyId::parse("kid_0123456789abcdef0"), None);
    }

    #[test]
    fn debug_never_shows_the_secret() {
        let key = ApiKey::generate(Some("dev")).unwrap();
        let shown = format!("{key:?} {:?}", key.hash());
        assert!(!shown.contains(&key.expose_secret()[PRODUCT_PREFIX.len() + 4..]));
        assert!(!shown.contains(&key.hash().to_hex()));
        assert!(shown.contains(key.key_id().as_str()));
    }

    #[test]
    fn generate_rejects_bad_env() {
        assert!(matches!(
            ApiKey::generate(Some("Prod")),
            Err(KeyGenError::BadEnvironment)
        ));
        assert!(matches!(
            ApiKey::generate(Some("")),
            Err(KeyGenError::BadEnvironment)
        ));
    }

    /// The format check as first written (splits and searches), kept as the reference
    /// the one-pass check must agree with.
    fn reference_check(presented: &str) -> Result<Checked, KeyFormatError> {
        if presented.is_empty() {
            return Err(KeyFormatError::Empty);
        }
        if presented.len() > MAX_KEY_LEN {
            return Err(KeyFormatError::TooLong);
        }
        let bytes = presented.as_bytes();
        if !bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || *b == b'_')
        {
            return Err(KeyFormatError::BadCharacter);
        }
        if let Some(rest) = presented.strip_prefix(PRODUCT_PREFIX) {
            let tail = match rest.split_once('_') {
                Some((env, _)) if !valid_env(env) => return Err(KeyFormatError::BadEnvironment),
                Some((_, tail)) => tail,
                None => rest,
            };
            if tail.len() != BODY_LEN + CHECKSUM_LEN || tail.contains('_') {
                return Err(KeyFormatError::UnknownFormat);
            }
            let split = presented.len() - CHECKSUM_LEN;
            if checksum(&bytes[..split])[..] != bytes[split..] {
                return Err(KeyFormatError::BadChecksum);
            }
            return Ok(Checked::Product);
        }
        if presented.len() == LEGACY_LEN && bytes.iter().all(u8::is_ascii_alphanumeric) {
            return Ok(Checked::Legacy);
        }
        Err(KeyFormatError::UnknownFormat)
    }

    proptest::proptest! {
        /// Valid product and legacy keys with characters changed, inserted or removed
        /// (`_` and spaces among them) are judged exactly as the reference judges them.
        #[test]
        fn the_one_pass_format_check_agrees_with_the_reference(
            env in proptest::option::of("[a-z0-9]{1,12}"),
            legacy in proptest::option::of("[a-zA-Z0-9]{64}"),
            edits in proptest::collection::vec((0usize..80, 0u8..4, "[a-zA-Z0-9_ ]"), 0..4),
        ) {
            let mut text = match legacy {
                Some(legacy) => legacy,
                None => ApiKey::generate(env.as_deref()).unwrap().expose_secret().to_owned(),
            };
            crate::test_edits::apply(&mut text, edits);
            proptest::prop_assert_eq!(check_format(&text), reference_check(&text), "{}", text);
        }
    }
}
