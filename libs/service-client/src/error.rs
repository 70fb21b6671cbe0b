//! What went wrong with a call, saying which service, which route and why. Never holds
//! key material, a signature or a response body beyond its short error code.

use std::time::Duration;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    #[error("{service} {route}: no complete answer within {timeout:?}")]
    Timeout {
        service: String,
        route: String,
        timeout: Duration,
    },
    #[error("{service} {route}: connection failed: {reason}")]
    Connection {
        service: String,
        route: String,
        reason: String,
    },
    #[error("{service} {route}: not called, the circuit is open after repeated failures (retry in {retry_after:?})")]
    CircuitOpen {
        service: String,
        route: String,
        retry_after: Duration,
    },
    #[error("{service} {route}: answered HTTP {status}{}", code.as_deref().map(|c| format!(" ({c})")).unwrap_or_default())]
    Status {
        service: String,
        route: String,
        status: u16,
        /// The `error` field of a JSON error body, when short and plain.
        code: Option<String>,
        /// `Retry-After` in seconds, when sent.
        retry_after: Option<Duration>,
    },
    #[error("{service} {route}: the answer is not the expected JSON: {reason}")]
    Decode {
        service: String,
        route: String,
        reason: String,
    },
    #[error("{service}: no credentials to call it with: {reason}")]
    Credentials { service: String, reason: String },
    /// Token mode: no usable token could be obtained from the token issuer.
    #[error("{service}: no token to call it with: {reason}")]
    Token {
        service: String,
        /// The issuer call's own error (never the token).
        reason: String,
        /// The issuer's HTTP status, when it answered.
        status: Option<u16>,
        /// The `error` field of the issuer's JSON error body.
        code: Option<String>,
        retry_after: Option<Duration>,
        /// The issuer was unavailable (timeout, connection, open circuit, 429, 5xx).
        unavailable: bool,
    },
    #[error("{service} {route}: request not sent: {reason}")]
    Request {
        service: String,
        route: String,
        reason: String,
    },
    #[error("service client configuration: {0}")]
    Config(String),
}

impl ClientError {
    /// The HTTP status the service answered, if it answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Status { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// True when the service is unavailable or too slow (timeouts, connection
    /// failures, open circuit, 429 and 5xx): worth telling our caller to retry later.
    pub fn is_unavailable(&self) -> bool {
        match self {
            Self::Timeout { .. } | Self::Connection { .. } | Self::CircuitOpen { .. } => true,
            Self::Status { status, .. } => *status == 429 || *status >= 500,
            Self::Token { unavailable, .. } => *unavailable,
            _ => false,
        }
    }

    /// How long to wait before trying again, when known.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::CircuitOpen { retry_after, .. } => Some(*retry_after),
            Self::Status { retry_after, .. } | Self::Token { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
}
