/*!
Service identity for internal AWS APIs, in plain Rust.

This crate holds every decision of the product and no AWS I/O:

* [`key`]: the secret key type, the `svcauth_` key format with its checksum, hashing
  and non-secret key ids;
* [`record`]: key records and the per-service document they are stored in, with a
  merge that never loses a concurrent change;
* [`permissions`] and [`method_arn`]: `METHOD /path` patterns and the `methodArn` they
  are matched against;
* [`store`]: the in-memory index the authorizer looks keys up in, and the markers
  that only take access away;
* [`standing`]: what the store says about a calling service, for its tokens;
* [`cache`]: when to reload the store and when to stop trusting an old one;
* [`clock`]: the clock a component reads (wall-clock seconds and a monotonic
  instant), injected so tests move time by hand;
* [`decision`], [`policy`] and [`context`]: what the authorizer answers, and
  [`refusal`]: why it refuses (every reason code, key and token paths alike);
* [`identity`]: who called a backend, read back from that context (or IAM), and
  [`correlation`]: the correlation id's header and rule, for the authorizer, backends
  and clients alike.

It does not talk to AWS (see `keystore-ssm`), does not parse Lambda events (see the
`authorizer` crate), and decides nothing on a clock it reads itself: time is passed
in, or read from the injected [`clock::Clock`].
*/
#![forbid(unsafe_code)]

pub mod cache;

/// What the one-pass parsers' property tests share: edits applied to a valid input.
#[cfg(test)]
mod test_edits {
    /// Applies `(position, operation, character)` edits in turn: 0 replaces the
    /// character at the position, 1 inserts before it, 2 removes it, 3 does nothing.
    /// Positions past the end are clamped to it.
    pub(crate) fn apply(text: &mut String, edits: Vec<(usize, u8, String)>) {
        for (at, op, c) in edits {
            let at = at.min(text.len());
            match op {
                0 if at < text.len() => text.replace_range(at..at + 1, &c),
                1 => text.insert_str(at, &c),
                2 if at < text.len() => {
                    text.remove(at);
                }
                _ => {}
            }
        }
    }
}
pub mod clock;
pub mod context;
pub mod correlation;
pub mod decision;
pub mod identity;
pub mod key;
pub mod method_arn;
pub mod permissions;
pub mod policy;
pub mod record;
pub mod refusal;
pub mod standing;
pub mod store;

pub use decision::{decide, decide_key, AuthRequest, Decision, Grant, UnauthorizedReason};
pub use key::{ApiKey, KeyFormat, KeyFormatError, KeyHash, KeyId, PresentedKey};
pub use method_arn::MethodArn;
pub use permissions::RoutePattern;
pub use policy::{Effect, Policy, StagePolicy, Statement};
pub use record::{ApiGrant, KeyRecord, KeyStatus, ServiceDocument, UnixTime};
pub use standing::Standing;
pub use store::{ApiRoutes, KeyStore, LegacyEntry, Markers, ServiceGrant};
