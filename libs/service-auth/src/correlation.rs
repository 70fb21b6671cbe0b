//! Correlation ids: which request chain, not which caller.
//!
//! The one rule for the id that follows one request across services' logs: the header
//! it travels in ([`CORRELATION_ID_HEADER`]) and what is accepted from a caller
//! ([`is_valid`]). The authorizer reads it from its event (falling back to API
//! Gateway's request id, else `none`: it only logs it), backends resolve it with
//! [`CorrelationId::resolve`] (`service-identity-http`) and pass it on with
//! `service-client`, which sends it in the same header.

use std::fmt;

/// Header carrying the correlation id from service to service.
pub const CORRELATION_ID_HEADER: &str = "x-correlation-id";
/// Longest correlation id accepted from a caller.
pub const MAX_CORRELATION_ID_LEN: usize = 128;

/// Whether a presented id is accepted: 1 to [`MAX_CORRELATION_ID_LEN`] characters of
/// `A-Z a-z 0-9 . _ : -`, so a caller cannot forge log lines through it.
pub fn is_valid(s: &str) -> bool {
    (1..=MAX_CORRELATION_ID_LEN).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b".-_:".contains(&b))
}

/// An id shared by every call made on behalf of one incoming request, for following
/// it across services' logs. Only `A-Z a-z 0-9 . _ : -`, at most 128 characters, so a
/// caller cannot forge log lines through it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CorrelationId(String);

impl CorrelationId {
    /// Accepts a presented id when it is safe to log and forward ([`is_valid`]).
    pub fn parse(s: &str) -> Option<Self> {
        is_valid(s).then(|| Self(s.to_owned()))
    }

    /// A new random id: 32 hex digits.
    pub fn generate() -> Self {
        let mut b = [0u8; 16];
        if getrandom::fill(&mut b).is_err() {
            // Not a secret: uniqueness is all that matters, so fall back to the clock.
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0);
            b = nanos.to_le_bytes();
        }
        Self(b.iter().map(|x| format!("{x:02x}")).collect())
    }

    /// The caller's id when it sent a valid one, else API Gateway's request id, else a
    /// new one.
    pub fn resolve(header: Option<&str>, request_id: Option<&str>) -> Self {
        header
            .and_then(Self::parse)
            .or_else(|| request_id.and_then(Self::parse))
            .unwrap_or_else(Self::generate)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for CorrelationId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn correlation_ids_are_reused_when_safe_else_made() {
        let rid = "deef4878-7910-11e6-8f14-25afc3e9ae33";
        assert_eq!(
            CorrelationId::resolve(Some("corr-1"), Some(rid)).as_str(),
            "corr-1"
        );
        assert_eq!(CorrelationId::resolve(None, Some(rid)).as_str(), rid);
        assert_eq!(
            CorrelationId::resolve(Some("bad\nINFO forged"), Some(rid)).as_str(),
            rid
        );
        assert_eq!(CorrelationId::resolve(Some(""), Some(rid)).as_str(), rid);
        let long = "a".repeat(MAX_CORRELATION_ID_LEN + 1);
        assert!(CorrelationId::parse(&long).is_none());
        assert!(CorrelationId::parse(&long[1..]).is_some());
        let a = CorrelationId::resolve(Some("x y"), None);
        let b = CorrelationId::generate();
        assert_eq!(a.as_str().len(), 32);
        assert!(a.as_str().bytes().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
    }
}
