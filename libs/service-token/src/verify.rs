//! Offline verification of a service token against a key set.
//!
//! The order of checks is deliberate: the cheap, input-bounding ones first (length cap,
//! three parts, a strict header read by this module), then the signature (by
//! `jsonwebtoken` on aws-lc-rs, ES256 only), and only then the claims, so nothing of an
//! unsigned payload is trusted.
//!
//! `jsonwebtoken` checks `alg`, the signature, the presence of `exp`, `nbf`, `sub`,
//! `iss` and `aud`, and the issuer. The audience is checked here, per call: it is the
//! name of the API the request is for (one verifier serves every API behind the
//! authorizer, and a token names every API its service may call). The times are
//! checked here too, against the `now` passed in, because `jsonwebtoken` reads the
//! system clock itself and this crate never does (tests move a clock by hand). Its own
//! defaults are lax (60 s leeway, `nbf` not checked, no `aud`/`iss` required): all of
//! that is set here.

use std::fmt;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, Validation};
use serde::de::IgnoredAny;
use serde::Deserialize;
use service_auth::refusal::Reason;
use service_auth::UnixTime;

use crate::claims::{RawClaims, TokenClaims};
use crate::keyset::{valid_kid, KeySet};
use crate::{ALGORITHM, TOKEN_TYPE};

/// Default cap on a token's length, checked before anything is decoded. A token with
/// 32 full-length permissions would not fit: the issuer refuses to issue one that
/// does not (narrow the request instead).
pub const DEFAULT_MAX_TOKEN_LEN: usize = 8 * 1024;
/// Default clock leeway for `exp`, `nbf` and `iat`.
pub const DEFAULT_LEEWAY_SECS: u64 = 30;
/// Longest lifetime (`exp - iat`) a token may claim: the issuer's maximum, 60 minutes.
pub const MAX_LIFETIME_SECS: u64 = 60 * 60;

/// Why a token was refused. Each has a stable [`Rejection::code`] for logs and
/// metrics; none carries any part of the token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Rejection {
    #[error("the token is longer than the cap")]
    TooLong,
    #[error("the token is not a JWS compact serialisation (three base64url parts)")]
    Malformed,
    #[error("the token's alg is not ES256")]
    UnsupportedAlgorithm,
    #[error("the token header has a crit parameter; none is supported")]
    CritHeader,
    #[error("the token header has parameters other than alg, kid and typ")]
    UnsupportedHeader,
    #[error("the token header has no usable kid")]
    MissingKid,
    #[error("the token's typ header is missing or not at+jwt (this issuer's access tokens)")]
    WrongType,
    #[error("the token's kid is not in the key set")]
    UnknownKid,
    #[error("the key set could not be loaded")]
    KeySetUnavailable,
    #[error("the token's signature does not verify")]
    BadSignature,
    #[error(
        "the token's claims are not the expected JSON (unknown, duplicate or mistyped claims)"
    )]
    MalformedClaims,
    #[error("the token has no {0} claim")]
    MissingClaim(&'static str),
    #[error("the token was issued by another issuer")]
    WrongIssuer,
    #[error("the token is not meant for this API")]
    WrongAudience,
    #[error("the token has expired")]
    Expired,
    #[error(
        "the token expires sooner than the authorizer's result cache would keep it; refresh it"
    )]
    ExpiresWithinCacheTtl,
    #[error("the token is not valid yet (nbf)")]
    NotYetValid,
    #[error("the token claims to be issued in the future (iat)")]
    IssuedInFuture,
    #[error("the token's lifetime is longer than the issuer's maximum or not positive")]
    BadLifetime,
    #[error("the token's service is not known to this authorizer")]
    UnknownService,
    #[error("the key the token was obtained with has been revoked")]
    KeyRevoked,
    #[error("the service's tokens issued before its brake time are refused")]
    Braked,
}

impl Rejection {
    /// The authorizer's refusal reason for it, whose code logs and metrics carry.
    pub fn reason(&self) -> Reason {
        match self {
            Self::TooLong => Reason::TokenTooLong,
            Self::Malformed => Reason::MalformedToken,
            Self::UnsupportedAlgorithm => Reason::UnsupportedAlgorithm,
            Self::CritHeader => Reason::CritHeader,
            Self::UnsupportedHeader => Reason::UnsupportedHeader,
            Self::MissingKid => Reason::MissingKid,
            Self::WrongType => Reason::WrongType,
            Self::UnknownKid => Reason::UnknownKid,
            Self::KeySetUnavailable => Reason::KeySetUnavailable,
            Self::BadSignature => Reason::BadSignature,
            Self::MalformedClaims => Reason::MalformedClaims,
            Self::MissingClaim(_) => Reason::MissingClaim,
            Self::WrongIssuer => Reason::WrongIssuer,
            Self::WrongAudience => Reason::WrongAudience,
            Self::Expired => Reason::Expired,
            Self::ExpiresWithinCacheTtl => Reason::ExpiresWithinCacheTtl,
            Self::NotYetValid => Reason::NotYetValid,
            Self::IssuedInFuture => Reason::IssuedInFuture,
            Self::BadLifetime => Reason::BadLifetime,
            Self::UnknownService => Reason::UnknownService,
            Self::KeyRevoked => Reason::KeyRevoked,
            Self::Braked => Reason::Braked,
        }
    }

    /// Stable reason code for logs and metrics ([`Reason::code`]).
    pub fn code(&self) -> &'static str {
        self.reason().code()
    }
}

/// What a verifier accepts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifierConfig {
    /// The issuer id every token must carry in `iss`.
    pub issuer: String,
    pub leeway_secs: u64,
    pub max_token_len: usize,
    /// Tokens with less lifetime left than this are refused: set it to API Gateway's
    /// authorizer result TTL, so a cached allow never outlives the token it was made
    /// for (a cache entry made at `t` lives until `t + ttl <= exp`). No leeway here.
    pub min_remaining_secs: u64,
}

impl VerifierConfig {
    pub fn new(issuer: impl Into<String>) -> Self {
        Self {
            issuer: issuer.into(),
            leeway_secs: DEFAULT_LEEWAY_SECS,
            max_token_len: DEFAULT_MAX_TOKEN_LEN,
            min_remaining_secs: 0,
        }
    }
}

/// The parts of a token header this product writes. Anything else is refused.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct HeaderFields {
    alg: String,
    kid: Option<String>,
    typ: Option<String>,
    crit: Option<IgnoredAny>,
    /// RFC 7797 unencoded payloads; named so that `crit: ["b64"]` is reported as `crit`.
    b64: Option<IgnoredAny>,
}

/// A token's header after the strict checks: the key it names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenHeader {
    pub kid: String,
}

/// A token that verified: its claims and the key that signed it.
#[derive(Clone, PartialEq, Eq)]
pub struct VerifiedToken {
    pub kid: String,
    pub claims: TokenClaims,
}

impl fmt::Debug for VerifiedToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VerifiedToken")
            .field("kid", &self.kid)
            .field("jti", &self.claims.jti)
            .field("sub", &self.claims.sub)
            .finish_non_exhaustive()
    }
}

/// Verifies tokens of one issuer, for any API (the audience is an argument of
/// [`Verifier::verify`]). Build once; cheap to share.
#[derive(Debug, Clone)]
pub struct Verifier {
    config: VerifierConfig,
    validation: Validation,
}

impl Verifier {
    pub fn new(config: VerifierConfig) -> Self {
        let mut validation = Validation::new(Algorithm::ES256);
        validation.set_required_spec_claims(&["exp", "nbf", "sub", "iss", "aud"]);
        validation.set_issuer(&[config.issuer.as_str()]);
        // `aud` stays required (above); whether it names the API is checked per call.
        validation.validate_aud = false;
        // Times are checked in `check_times` against the `now` passed in.
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.leeway = 0;
        Self { config, validation }
    }

    pub fn config(&self) -> &VerifierConfig {
        &self.config
    }

    /// The length cap and the header checks, before any key is looked up: ES256, a
    /// `kid`, `typ` [`TOKEN_TYPE`], no `crit`, nothing but `alg`, `kid` and `typ`.
    pub fn header(&self, token: &str) -> Result<TokenHeader, Rejection> {
        if token.len() > self.config.max_token_len {
            return Err(Rejection::TooLong);
        }
        let mut parts = token.split('.');
        let (Some(header), Some(_), Some(_), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(Rejection::Malformed);
        };
        let json = URL_SAFE_NO_PAD
            .decode(header)
            .map_err(|_| Rejection::Malformed)?;
        let fields: HeaderFields = match serde_json::from_slice(&json) {
            Ok(f) => f,
            // A well-formed JSON object with other parameters (jku, jwk, x5u, b64, ...)
            // is refused as such; anything else is malformed.
            Err(e) if e.is_data() => return Err(Rejection::UnsupportedHeader),
            Err(_) => return Err(Rejection::Malformed),
        };
        if fields.crit.is_some() {
            return Err(Rejection::CritHeader);
        }
        if fields.b64.is_some() {
            return Err(Rejection::UnsupportedHeader);
        }
        if fields.alg != ALGORITHM {
            return Err(Rejection::UnsupportedAlgorithm);
        }
        let kid = match fields.kid {
            Some(kid) if valid_kid(&kid) => kid,
            _ => return Err(Rejection::MissingKid),
        };
        if !fields.typ.as_deref().is_some_and(is_token_type) {
            return Err(Rejection::WrongType);
        }
        Ok(TokenHeader { kid })
    }

    /// Verifies `token` against `keys` at `now`, for the API named `audience` (the
    /// authorizer's name of the API the request is for): `aud` must contain it.
    pub fn verify(
        &self,
        token: &str,
        keys: &KeySet,
        audience: &str,
        now: UnixTime,
    ) -> Result<VerifiedToken, Rejection> {
        self.verify_inner(token, keys, Some(audience), now)
    }

    /// Every check of [`Verifier::verify`] but the audience: only for a request on an
    /// API that has no name (not registered), where nothing may be allowed, so the
    /// caller's answer is a Deny of the stage whatever the token names. It lets that
    /// answer name the authenticated caller, as it does for a key.
    pub fn verify_without_audience(
        &self,
        token: &str,
        keys: &KeySet,
        now: UnixTime,
    ) -> Result<VerifiedToken, Rejection> {
        self.verify_inner(token, keys, None, now)
    }

    fn verify_inner(
        &self,
        token: &str,
        keys: &KeySet,
        audience: Option<&str>,
        now: UnixTime,
    ) -> Result<VerifiedToken, Rejection> {
        let header = self.header(token)?;
        let key = keys.get(&header.kid).ok_or(Rejection::UnknownKid)?;
        let raw = jsonwebtoken::decode::<RawClaims>(token, key, &self.validation)
            .map_err(|e| map_error(e.kind()))?
            .claims;
        let claims = complete(raw)?;
        self.check_claims(&claims, audience, now)?;
        Ok(VerifiedToken {
            kid: header.kid,
            claims,
        })
    }

    /// The checks of [`Verifier::verify`] that follow the signature: the audience
    /// (`None`: not checked, as [`Verifier::verify_without_audience`]) and the times
    /// against `now`. For claims that verified earlier (a cache of verified tokens),
    /// which must pass them again on every use.
    pub fn check_claims(
        &self,
        claims: &TokenClaims,
        audience: Option<&str>,
        now: UnixTime,
    ) -> Result<(), Rejection> {
        if audience.is_some_and(|api| !claims.audience_includes(api)) {
            return Err(Rejection::WrongAudience);
        }
        self.check_times(claims, now)
    }

    fn check_times(&self, c: &TokenClaims, now: UnixTime) -> Result<(), Rejection> {
        let leeway = self.config.leeway_secs;
        let lifetime = c.exp.checked_sub(c.iat).ok_or(Rejection::BadLifetime)?;
        if lifetime == 0 || lifetime > MAX_LIFETIME_SECS || c.nbf >= c.exp {
            return Err(Rejection::BadLifetime);
        }
        if now.0 >= c.exp.saturating_add(leeway) {
            return Err(Rejection::Expired);
        }
        if self.config.min_remaining_secs > 0
            && now.0.saturating_add(self.config.min_remaining_secs) > c.exp
        {
            return Err(Rejection::ExpiresWithinCacheTtl);
        }
        if c.nbf > now.0.saturating_add(leeway) {
            return Err(Rejection::NotYetValid);
        }
        if c.iat > now.0.saturating_add(leeway) {
            return Err(Rejection::IssuedInFuture);
        }
        Ok(())
    }
}

/// Whether a `typ` header names [`TOKEN_TYPE`]: a media type, so compared without
/// regard to case, with or without its `application/` prefix (RFC 7515 4.1.9).
fn is_token_type(typ: &str) -> bool {
    let short = match typ.get(..12) {
        Some(prefix) if prefix.eq_ignore_ascii_case("application/") => &typ[12..],
        _ => typ,
    };
    short.eq_ignore_ascii_case(TOKEN_TYPE)
}

/// The claims `jsonwebtoken` does not know as required must be present too.
fn complete(raw: RawClaims) -> Result<TokenClaims, Rejection> {
    fn need<T>(v: Option<T>, name: &'static str) -> Result<T, Rejection> {
        v.ok_or(Rejection::MissingClaim(name))
    }
    let claims = TokenClaims {
        iss: need(raw.iss, "iss")?,
        sub: need(raw.sub, "sub")?,
        aud: need(raw.aud, "aud")?,
        exp: need(raw.exp, "exp")?,
        nbf: need(raw.nbf, "nbf")?,
        iat: need(raw.iat, "iat")?,
        jti: need(raw.jti, "jti")?,
        permissions: need(raw.permissions, "permissions")?,
        proof: need(raw.proof, "proof")?,
    };
    if !service_auth::record::valid_service_name(&claims.sub) || claims.jti.is_empty() {
        return Err(Rejection::MalformedClaims);
    }
    Ok(claims)
}

fn map_error(kind: &ErrorKind) -> Rejection {
    match kind {
        ErrorKind::InvalidSignature | ErrorKind::InvalidEcdsaKey => Rejection::BadSignature,
        ErrorKind::InvalidAlgorithm
        | ErrorKind::MissingAlgorithm
        | ErrorKind::UnsupportedAlgorithm
        | ErrorKind::InvalidAlgorithmName => Rejection::UnsupportedAlgorithm,
        ErrorKind::MissingRequiredClaim(c) => Rejection::MissingClaim(match c.as_str() {
            "exp" => "exp",
            "nbf" => "nbf",
            "sub" => "sub",
            "iss" => "iss",
            "aud" => "aud",
            _ => "required",
        }),
        ErrorKind::InvalidClaimFormat(_) | ErrorKind::Json(_) => Rejection::MalformedClaims,
        ErrorKind::InvalidIssuer => Rejection::WrongIssuer,
        ErrorKind::InvalidAudience => Rejection::WrongAudience,
        ErrorKind::ExpiredSignature => Rejection::Expired,
        ErrorKind::ImmatureSignature => Rejection::NotYetValid,
        _ => Rejection::Malformed,
    }
}
