//! Why the authorizer refuses a request (API Gateway's 401): one [`Reason`] per cause,
//! key and token paths alike, each with its stable code.
//!
//! The code is what the audit line's `reason` and the `Unauthorized{Reason}` metric
//! carry, so dashboards, alarms and `docs/contracts.md` name it. This table is the one
//! place the codes are written: the key path's [`UnauthorizedReason`], the token
//! verifier's `service_token::Rejection` and the authorizer's own checks (the
//! `Authorization` header, the choice between credentials) each map onto a [`Reason`]
//! and take their code from it, and the checks on the platform template's dashboard and
//! alarms read their lists from [`Reason::ALL`].
//!
//! Not here: outcomes that are not a 401 (`route_not_permitted`, `api_not_registered`,
//! a Deny of the stage), and the token issuer's own HTTP error codes.
//!
//! [`UnauthorizedReason`]: crate::decision::UnauthorizedReason

/// Which requests a [`Reason`] can refuse.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Path {
    /// Only a request decided on its API key.
    ApiKey,
    /// Only a request decided on its token, or refused while choosing between a key
    /// and a token (the dashboard's token refusal widget lists exactly these).
    Token,
    /// Either path, or before one is chosen (the store, the event, the method ARN).
    Any,
}

macro_rules! reasons {
    ($( $(#[doc = $doc:literal])* $variant:ident => $code:literal, $path:ident, forgery: $forgery:literal; )*) => {
        /// Why a request is refused. See the module documentation.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Reason {
            $( $(#[doc = $doc])* $variant, )*
        }

        impl Reason {
            /// Every reason, in the order of the table.
            pub const ALL: &'static [Reason] = &[$(Reason::$variant),*];

            /// Stable code for logs and metrics (`Unauthorized{Reason}`).
            pub const fn code(self) -> &'static str {
                match self {
                    $( Reason::$variant => $code, )*
                }
            }

            /// Which requests it can refuse.
            pub const fn path(self) -> Path {
                match self {
                    $( Reason::$variant => Path::$path, )*
                }
            }

            /// Whether the forged-token alarm counts it: a token whose signature,
            /// algorithm, header or key id no issuer of this platform produces.
            pub const fn forgery_signal(self) -> bool {
                match self {
                    $( Reason::$variant => $forgery, )*
                }
            }
        }
    };
}

// One row per reason: `Variant => "code", path, forgery: counted by the forged-token
// alarm;` (tests/template reads these rows too). `wrong_typ` is not a forgery signal:
// `typ` is checked before the key is looked up, so it says nothing about the signature,
// and honest tokens carry the wrong type (every token signed before explicit typing,
// for one token lifetime after the upgrade; another JWT sent by mistake); a forger who
// could succeed must write `at+jwt` and then meets `unknown_kid` or `bad_signature`,
// which are counted. (The alarm also reads at most 10 metrics: 5 reasons x 2 instances.)
reasons! {
    // API keys
    /// No `x-service-api-key` header (or only empty values).
    MissingKey => "missing_key", ApiKey, forgery: false;
    /// More than one key value.
    DuplicateKey => "duplicate_key", ApiKey, forgery: false;
    /// Not the `svcauth_` format, or a bad checksum.
    MalformedKey => "malformed_key", ApiKey, forgery: false;
    /// A well-formed key no service holds.
    UnknownKey => "unknown_key", ApiKey, forgery: false;
    RevokedKey => "revoked_key", ApiKey, forgery: false;
    ExpiredKey => "expired_key", ApiKey, forgery: false;
    // Either path
    /// The key store (or a token's standing) could not be read, and nothing usable is
    /// cached.
    StoreUnavailable => "store_unavailable", Any, forgery: false;
    /// The event is not a REST REQUEST authorizer event.
    MalformedEvent => "malformed_event", Any, forgery: false;
    MalformedMethodArn => "malformed_method_arn", Any, forgery: false;
    // Choosing the credential (tokens accepted)
    /// A key and an `Authorization` header on one request.
    AmbiguousCredentials => "ambiguous_credentials", Token, forgery: false;
    /// `api-key,token` accepted, neither presented.
    MissingCredentials => "missing_credentials", Token, forgery: false;
    /// `token` accepted, no `Authorization` header.
    MissingToken => "missing_token", Token, forgery: false;
    /// `Authorization` sent twice, or the two header maps disagree.
    DuplicateAuthorization => "duplicate_authorization", Token, forgery: false;
    EmptyAuthorization => "empty_authorization", Token, forgery: false;
    /// Not `Bearer`.
    UnsupportedAuthScheme => "unsupported_auth_scheme", Token, forgery: false;
    /// Tokens accepted but no verifier configured.
    TokenVerifierUnconfigured => "token_verifier_unconfigured", Token, forgery: false;
    // Tokens, in verification order
    TokenTooLong => "token_too_long", Token, forgery: false;
    MalformedToken => "malformed_token", Token, forgery: false;
    /// `alg` other than ES256 (`none`, `HS256`, ...).
    UnsupportedAlgorithm => "unsupported_alg", Token, forgery: true;
    CritHeader => "crit_header", Token, forgery: true;
    /// Header parameters other than `alg`, `kid`, `typ` (`jku`, `jwk`, `x5u`, ...).
    UnsupportedHeader => "unsupported_header", Token, forgery: true;
    MissingKid => "missing_kid", Token, forgery: false;
    /// `typ` missing or not `at+jwt`.
    WrongType => "wrong_typ", Token, forgery: false;
    /// The `kid` is not in the published key set.
    UnknownKid => "unknown_kid", Token, forgery: true;
    KeySetUnavailable => "keyset_unavailable", Token, forgery: false;
    BadSignature => "bad_signature", Token, forgery: true;
    MalformedClaims => "malformed_claims", Token, forgery: false;
    MissingClaim => "missing_claim", Token, forgery: false;
    WrongIssuer => "wrong_issuer", Token, forgery: false;
    WrongAudience => "wrong_audience", Token, forgery: false;
    Expired => "expired", Token, forgery: false;
    /// Less lifetime left than the API's result-cache TTL.
    ExpiresWithinCacheTtl => "expires_within_cache_ttl", Token, forgery: false;
    NotYetValid => "not_yet_valid", Token, forgery: false;
    IssuedInFuture => "issued_in_future", Token, forgery: false;
    BadLifetime => "bad_lifetime", Token, forgery: false;
    // A verified token's service standing
    UnknownService => "unknown_service", Token, forgery: false;
    /// The key the token was obtained with is revoked, expired, gone or another's.
    KeyRevoked => "key_revoked", Token, forgery: false;
    /// Issued before the service's brake (`tokensNotBefore`).
    Braked => "braked", Token, forgery: false;
}

impl Reason {
    /// Every code, in the order of the table.
    pub fn codes() -> impl Iterator<Item = &'static str> {
        Self::ALL.iter().map(|r| r.code())
    }

    /// The reason with this code.
    pub fn from_code(code: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|r| r.code() == code)
    }
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.code())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    #[test]
    fn codes_are_unique_snake_case_and_read_back() {
        let codes: BTreeSet<&str> = Reason::codes().collect();
        assert_eq!(codes.len(), Reason::ALL.len());
        for r in Reason::ALL {
            assert!(r
                .code()
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b == b'_'));
            assert_eq!(Reason::from_code(r.code()), Some(*r));
            assert_eq!(r.to_string(), r.code());
        }
        assert_eq!(Reason::from_code("permitted"), None);
    }

    /// The forged-token alarm reads one metric per reason and token-taking instance,
    /// at most 10 in all (CloudWatch's limit for a metric-math alarm).
    #[test]
    fn forgery_signals_are_token_reasons_the_alarm_can_read() {
        let forged: Vec<Reason> = Reason::ALL
            .iter()
            .copied()
            .filter(|r| r.forgery_signal())
            .collect();
        assert!(forged.iter().all(|r| r.path() == Path::Token));
        assert!(forged.len() * 2 <= 10, "{forged:?}");
        assert!(forged.contains(&Reason::BadSignature) && forged.contains(&Reason::UnknownKid));
        assert!(!Reason::WrongType.forgery_signal());
    }

    /// The key path's reasons are exactly the table's API-key and either-path rows.
    #[test]
    fn every_key_reason_is_an_api_key_or_either_path_row() {
        use crate::decision::UnauthorizedReason as U;
        use crate::key::KeyFormatError;
        use crate::method_arn::MethodArnError;
        let all = [
            U::MissingKey,
            U::DuplicateKey,
            U::MalformedKey(KeyFormatError::Empty),
            U::UnknownKey,
            U::RevokedKey,
            U::ExpiredKey,
            U::StoreUnavailable,
            U::MalformedEvent,
            U::MalformedMethodArn(MethodArnError::Missing),
        ];
        let mapped: BTreeSet<&str> = all.iter().map(|u| u.code()).collect();
        let rows: BTreeSet<&str> = Reason::ALL
            .iter()
            .filter(|r| r.path() != Path::Token)
            .map(|r| r.code())
            .collect();
        assert_eq!(mapped, rows);
    }
}
