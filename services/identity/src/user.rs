//! Users and the validation of what callers send: ids, emails, roles. Plain Rust.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Longest email accepted (RFC 5321 path limit).
pub const MAX_EMAIL_LEN: usize = 254;
/// Longest user id accepted.
pub const MAX_ID_LEN: usize = 64;

/// A user as the internal API returns it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct User {
    pub id: String,
    pub email: String,
    pub role: String,
    pub email_verified: bool,
}

/// `POST /internal/users` body.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NewUser {
    pub email: String,
    pub role: String,
    #[serde(default)]
    pub email_verified: bool,
}

/// Why an input was refused. The message never repeats the input (it may be an email).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum InvalidInput {
    #[error("a user id is 1-64 characters of A-Z a-z 0-9 _ -")]
    Id,
    #[error("not a valid email address")]
    Email,
    #[error("a role is 1-32 characters of a-z 0-9 _ -, starting with a letter")]
    Role,
}

/// A validated user id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserId(String);

impl UserId {
    pub fn parse(s: &str) -> Result<Self, InvalidInput> {
        let ok = (1..=MAX_ID_LEN).contains(&s.len())
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        ok.then(|| Self(s.to_owned())).ok_or(InvalidInput::Id)
    }

    /// A new random id in UUID v4 form.
    pub fn generate() -> Result<Self, getrandom::Error> {
        let mut b = [0u8; 16];
        getrandom::fill(&mut b)?;
        b[6] = (b[6] & 0x0f) | 0x40;
        b[8] = (b[8] & 0x3f) | 0x80;
        let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
        Ok(Self(format!(
            "{}-{}-{}-{}-{}",
            &h[0..8],
            &h[8..12],
            &h[12..16],
            &h[16..20],
            &h[20..32]
        )))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A validated email address, lower-cased (lookups are case-insensitive). Its `Debug`
/// shows only [`Email::log_hash`]: an email is personal data.
#[derive(Clone, PartialEq, Eq)]
pub struct Email(String);

impl std::fmt::Debug for Email {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Email(sha256:{})", self.log_hash())
    }
}

impl Email {
    /// A deliberately plain subset of RFC 5321: `local@domain`, local part of
    /// letters, digits and ``.!#$&'*+=?^_`{|}~-`` (no leading, trailing or double dot),
    /// domain of at least two dot-separated labels of letters, digits and inner hyphens.
    pub fn parse(s: &str) -> Result<Self, InvalidInput> {
        let bad = Err(InvalidInput::Email);
        if s.len() > MAX_EMAIL_LEN {
            return bad;
        }
        let Some((local, domain)) = s.split_once('@') else {
            return bad;
        };
        let local_ok = (1..=64).contains(&local.len())
            && !local.starts_with('.')
            && !local.ends_with('.')
            && !local.contains("..")
            && local
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b".!#$&'*+=?^_`{|}~-".contains(&b));
        let labels: Vec<&str> = domain.split('.').collect();
        let domain_ok = labels.len() >= 2
            && labels.iter().all(|l| {
                (1..=63).contains(&l.len())
                    && !l.starts_with('-')
                    && !l.ends_with('-')
                    && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            });
        if !(local_ok && domain_ok) {
            return bad;
        }
        Ok(Self(s.to_ascii_lowercase()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// What logs show instead of the address: the first 16 hex digits of its SHA-256.
    /// Enough to correlate lines about one address; not a secret (a guessed address
    /// can be hashed and compared), so logs keep the access rules of personal data.
    pub fn log_hash(&self) -> String {
        Sha256::digest(self.0.as_bytes())[..8]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }
}

/// Validates a role name.
pub fn valid_role(s: &str) -> bool {
    let b = s.as_bytes();
    (1..=32).contains(&b.len())
        && b[0].is_ascii_lowercase()
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'_' || *c == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids() {
        assert!(UserId::parse("u-1_A").is_ok());
        for bad in ["", "a/b", "a b", "email#x", "é", &"a".repeat(65)] {
            assert_eq!(UserId::parse(bad), Err(InvalidInput::Id), "{bad:?}");
        }
        let g = UserId::generate().unwrap();
        assert_eq!(g.as_str().len(), 36);
        assert_eq!(&g.as_str()[14..15], "4");
        assert!(UserId::parse(g.as_str()).is_ok());
        assert_ne!(g, UserId::generate().unwrap());
    }

    #[test]
    fn emails() {
        assert_eq!(
            Email::parse("Ada.Lovelace+maths@Example.COM")
                .unwrap()
                .as_str(),
            "ada.lovelace+maths@example.com"
        );
        assert!(Email::parse("o'brien@sub.example.co.uk").is_ok());
        for bad in [
            "",
            "ada",
            "@example.com",
            "ada@",
            "ada@example",
            "ada@@example.com",
            "ada@exa_mple.com",
            "ada@-example.com",
            ".ada@example.com",
            "ada.@example.com",
            "a..da@example.com",
            "a da@example.com",
            "ada/../x@example.com",
            "ada%40@example.com",
            "ada@example..com",
            "ada\n@example.com",
        ] {
            assert!(Email::parse(bad).is_err(), "{bad:?}");
        }
        assert!(Email::parse(&format!("{}@example.com", "a".repeat(65))).is_err());
        assert!(Email::parse(&format!("a@{}.com", "d".repeat(64))).is_err());
    }

    #[test]
    fn email_debug_and_log_hash_hide_the_address() {
        let e = Email::parse("ada@example.com").unwrap();
        let dbg = format!("{e:?}");
        assert!(!dbg.contains("ada"), "{dbg}");
        assert_eq!(e.log_hash().len(), 16);
        assert_eq!(
            e.log_hash(),
            Email::parse("ADA@example.com").unwrap().log_hash()
        );
        // `printf %s ada@example.com | sha256sum | cut -c1-16`
        assert_eq!(e.log_hash(), "b5fc85e55755f9e0");
        assert!(dbg.contains("b5fc85e55755f9e0"));
    }

    #[test]
    fn roles() {
        assert!(valid_role("student"));
        assert!(valid_role("tutor_admin-2"));
        for bad in ["", "Student", "2nd", "a b", &"a".repeat(33)] {
            assert!(!valid_role(bad), "{bad:?}");
        }
    }

    #[test]
    fn new_user_bodies() {
        let n: NewUser =
            serde_json::from_str(r#"{"email":"a@b.co","role":"student","emailVerified":true}"#)
                .unwrap();
        assert!(n.email_verified);
        let n: NewUser = serde_json::from_str(r#"{"email":"a@b.co","role":"student"}"#).unwrap();
        assert!(!n.email_verified);
        assert!(
            serde_json::from_str::<NewUser>(r#"{"email":"a@b.co","role":"student","id":"x"}"#)
                .is_err()
        );
    }
}
