/*!
Short-lived signed service tokens (ES256 JWTs), verified offline.

A service proves itself once (API key or IAM role) to the token issuer and then calls
internal APIs with a token that expires in minutes and carries its permissions. This
crate holds the parts every party agrees on, in plain Rust:

* [`claims`]: the typed claims ([`TokenClaims`]), the grants they carry
  ([`Permission`]: routes on named APIs) and how the caller proved itself ([`Proof`]);
* [`verify`]: [`Verifier`], which checks a token against a key set: a length cap
  before anything is decoded, a strict header (`alg` ES256 only, a `kid`, `typ`
  [`TOKEN_TYPE`], no `crit`),
  the signature (by `jsonwebtoken` on the aws-lc-rs backend), the required claims,
  issuer, the audience (the API name passed per call) and times with a small leeway. Each refusal is a [`Rejection`] with a
  stable reason code and never carries the token;
* [`standing`]: whether the calling service may still use its tokens (unknown service,
  revoked key, the per-service emergency brake);
* [`keyset`]: the key set (JWKS) of ES256 public keys by exact `kid`, and building a
  JWK from a KMS `GetPublicKey` answer (SubjectPublicKeyInfo DER);
* [`cache`]: [`KeySetCache`], which refetches the key set on an unknown `kid` at most
  once per interval, single-flight.

It does not talk to AWS (the issuer does), does not read the clock (time is passed
in), and never signs with a local private key: production signatures come from KMS.
*/
#![forbid(unsafe_code)]

pub mod cache;
pub mod claims;
pub mod keyset;
pub mod standing;
pub mod verify;

pub use cache::{KeySetCache, KeySetSource, SourceError};
pub use claims::{Permission, Proof, TokenClaims};
pub use keyset::{jwk_from_spki_der, KeySet, KeySetError};
pub use standing::check_standing;
pub use verify::{Rejection, TokenHeader, VerifiedToken, Verifier, VerifierConfig};

/// The only signing algorithm: ECDSA P-256 with SHA-256, as KMS `ECC_NIST_P256` signs.
pub const ALGORITHM: &str = "ES256";
/// The `typ` header every token carries and every verifier requires (RFC 8725 3.11,
/// explicit typing): RFC 9068's media type for JWT access tokens, so a token of this
/// issuer is never confused with an ID token or another JWT signed by the same key, and
/// standard OAuth 2.0 resource servers can take it later. Verifiers also accept the
/// long form `application/at+jwt` and any letter case (RFC 7515 4.1.9, RFC 9068 4).
pub const TOKEN_TYPE: &str = "at+jwt";
