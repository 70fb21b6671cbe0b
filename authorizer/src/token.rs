//! Signed service tokens (`Authorization: Bearer <token>`), verified offline.
//!
//! [`TokenAuth`] holds the verifier (issuer, leeway, and the least lifetime a token
//! must have left: the API's result-cache TTL) and the key-set cache. For one request
//! [`TokenAuth::decide`] runs, in order: the `Authorization` header ([`bearer`]), the
//! token's header and its `kid` in the key set (an unknown `kid` refetches the set at
//! most once per 30 s, single-flight), the signature and claims for the API the request
//! is for (its name is the audience), the standing of the token's service (brake,
//! proof key), then the policy. A token that verified before is answered from
//! [`VerifiedTokens`] (by its SHA-256): only the signature is skipped, the `kid`, the
//! audience, the times and the standing are checked again on every request.
//!
//! The policy allows the routes of the token's grants that name this API, on this
//! API stage, whatever route is called: a function of the caller only, so it is safe
//! in API Gateway's result cache, which never outlives the token (see
//! `VerifierConfig::min_remaining_secs`).
//!
//! The standing (`service_auth::Standing`: the service's document with its markers
//! applied) comes through [`StandingSource`], a narrow interface over the key store:
//! implemented on [`CachedStore`] (the whole store, file or dev) and on [`SsmStandings`]
//! (one service at a time from SSM, through keystore-ssm's `Standings`, the one cache
//! of standings). The policy allows only the token's routes that the service's current
//! document still grants on this API (issue 16): `svcauth keys grant --remove` ends a
//! token's routes within the standing's TTL (`SVCAUTH_CACHE_TTL_SECS`), not at the
//! token's expiry.
//!
//! Nothing here logs or returns any part of a token: refusals are [`Refusal`]s with a
//! reason code and, once the token verified, its id (`jti`) and service.

use std::borrow::Cow;
use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use keystore_ssm::aws_sdk_ssm::Client;
use keystore_ssm::{KeySetParameter, SsmKeyStore, StandingError, Standings};
use service_auth::cache::RefreshPolicy;
use service_auth::context::{self, TokenCaller};
use service_auth::policy::Policy;
use service_auth::refusal::Reason;
use service_auth::{MethodArn, RoutePattern, Standing, UnixTime};
use service_token::{
    check_standing, KeySet, KeySetCache, KeySetSource, Proof, Rejection, SourceError, TokenClaims,
    VerifiedToken, Verifier, VerifierConfig,
};
use sha2::{Digest, Sha256};

use crate::config::TokenConfig;
use crate::event::Authorization;
use crate::source::CachedStore;

/// EMF metric counting key-set (JWKS) fetches, by `Result` (`ok` or `failed`).
pub const KEYSET_LOADS_METRIC: &str = "TokenKeySetLoads";

/// Why a request's `Authorization` header gives no token to verify.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BearerError {
    /// No `Authorization` header.
    Missing,
    /// The header was sent more than once (or the two header maps disagree).
    Repeated,
    /// The header, or the token after `Bearer`, is empty.
    Empty,
    /// Another scheme than `Bearer` (e.g. `Basic`, a SigV4 signature).
    Scheme,
}

impl BearerError {
    /// The refusal reason, whose code logs and metrics carry.
    pub fn reason(self) -> Reason {
        match self {
            Self::Missing => Reason::MissingToken,
            Self::Repeated => Reason::DuplicateAuthorization,
            Self::Empty => Reason::EmptyAuthorization,
            Self::Scheme => Reason::UnsupportedAuthScheme,
        }
    }

    /// Stable reason code for logs and metrics ([`Reason::code`]).
    pub fn code(self) -> &'static str {
        self.reason().code()
    }
}

/// The token of `Authorization: Bearer <token>`; the scheme in any case, separated by
/// spaces or tabs, surrounding whitespace ignored.
pub fn bearer(authorization: &Authorization) -> Result<&str, BearerError> {
    let value = match authorization {
        Authorization::Absent => return Err(BearerError::Missing),
        Authorization::Repeated => return Err(BearerError::Repeated),
        Authorization::One(v) => v.trim_matches(|c| c == ' ' || c == '\t'),
    };
    if value.is_empty() {
        return Err(BearerError::Empty);
    }
    let (scheme, rest) = value.split_once([' ', '\t']).unwrap_or((value, ""));
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(BearerError::Scheme);
    }
    let token = rest.trim_matches(|c| c == ' ' || c == '\t');
    if token.is_empty() {
        return Err(BearerError::Empty);
    }
    Ok(token)
}

/// Where the key set comes from: a JWKS in the configuration, or in SSM.
pub enum JwksSource {
    Inline(KeySet),
    /// The SecureString parameter holding the JWKS, written by `svcauth tokens keys
    /// add` and read through keystore-ssm (a `String` one is never trusted).
    Ssm {
        client: Client,
        parameter: String,
    },
}

impl JwksSource {
    fn name(&self) -> &str {
        match self {
            Self::Inline(_) => "SVCAUTH_TOKEN_JWKS",
            Self::Ssm { parameter, .. } => parameter,
        }
    }

    async fn read(&self) -> Result<KeySet, SourceError> {
        let (client, parameter) = match self {
            Self::Inline(keys) => return Ok(keys.clone()),
            Self::Ssm { client, parameter } => (client, parameter),
        };
        let text = KeySetParameter::new(client.clone(), parameter)
            .read_trusted()
            .await
            .map_err(|e| SourceError(e.to_string()))?;
        KeySet::from_json(text.as_bytes())
            .map_err(|e| SourceError(format!("the parameter's value is not a usable JWKS: {e}")))
    }
}

impl KeySetSource for JwksSource {
    async fn fetch(&self) -> Result<KeySet, SourceError> {
        let result = self.read().await;
        match &result {
            Ok(keys) => {
                metrics::counter!(KEYSET_LOADS_METRIC, "Result" => "ok").increment(1);
                tracing::info!(
                    event = "token_keyset_loaded",
                    source = self.name(),
                    keys = keys.len(),
                    skipped_keys = keys.skipped(),
                    "token key set loaded"
                );
            }
            Err(e) => {
                metrics::counter!(KEYSET_LOADS_METRIC, "Result" => "failed").increment(1);
                tracing::error!(
                    event = "token_keyset_load_failed",
                    source = self.name(),
                    error = %e,
                    "token key set load failed: tokens whose kid is not already known are refused (keyset_unavailable or unknown_kid) until a load succeeds (a set loaded before keeps answering for the kids it holds); the next try is at most 30 s away"
                );
            }
        }
        result
    }
}

/// Why the key store cannot say anything about a service right now: refuse.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StandingUnavailable;

/// What the key store says about a token's service: its [`Standing`] (a service with
/// no usable document has `document: None`). The narrow interface between the token
/// path and the key store.
pub trait StandingSource: Sync {
    fn standing(
        &self,
        service: &str,
        proof_key: Option<&str>,
        now: UnixTime,
    ) -> impl Future<Output = Result<Arc<Standing>, StandingUnavailable>> + Send;
}

impl StandingSource for CachedStore {
    async fn standing(
        &self,
        service: &str,
        proof_key: Option<&str>,
        _now: UnixTime,
    ) -> Result<Arc<Standing>, StandingUnavailable> {
        let store = self.current().await.ok_or(StandingUnavailable)?;
        Ok(Arc::new(Standing::from_store(&store, service, proof_key)))
    }
}

/// A token's standing read per service from SSM, never the whole key store, through
/// keystore-ssm's [`Standings`] (the service's document, the proof key's markers and the
/// service's brakes: three calls at once), kept for the store's
/// TTL (and its stale grace while reads fail). What an authorizer reading SSM uses for
/// tokens, so a token costs no full key-store load however many services there are.
/// This type only logs and counts the reads.
pub struct SsmStandings {
    standings: Standings,
}

impl SsmStandings {
    pub fn new(store: SsmKeyStore, policy: RefreshPolicy, timeout: Duration) -> Self {
        Self {
            standings: Standings::new(store, policy, timeout),
        }
    }
}

impl StandingSource for SsmStandings {
    async fn standing(
        &self,
        service: &str,
        proof_key: Option<&str>,
        now: UnixTime,
    ) -> Result<Arc<Standing>, StandingUnavailable> {
        let (standing, read) = self.standings.get(service, proof_key, now).await;
        if let Some(read) = &read {
            let elapsed_ms = read.elapsed.as_millis() as u64;
            match &read.error {
                None => tracing::info!(
                    event = "token_standing_loaded",
                    service_id = service,
                    known = read.known,
                    elapsed_ms,
                    "token standing read"
                ),
                Some(error) => {
                    metrics::counter!(crate::source::LOADS_METRIC, "Result" => "failed")
                        .increment(1);
                    tracing::error!(
                        event = "key_store_load_failed",
                        read = "token_standing",
                        service_id = service,
                        error = error.as_str(),
                        elapsed_ms,
                        "reading a token's service standing failed: its tokens are decided with what is cached (within TTL and stale grace), else refused (store_unavailable)"
                    );
                }
            }
        }
        match standing {
            Ok(s) => Ok(s),
            // A document that cannot be used is no service (as a load judges it).
            Err(StandingError::Unusable(rejected)) => {
                if read.is_some() {
                    tracing::error!(
                        event = "key_store_parameter_rejected",
                        parameter = rejected.parameter.as_str(),
                        service_id = service,
                        reason_code = rejected.reason.code(),
                        reason = %rejected.reason,
                        "key store parameter rejected: every token of service {service} is refused until it is fixed"
                    );
                }
                Ok(Arc::new(Standing::default()))
            }
            Err(StandingError::Unavailable(_)) => Err(StandingUnavailable),
        }
    }
}

/// A refused token: the reason and, when the token verified, who it was for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub reason: Reason,
    pub service: Option<String>,
    pub token_id: Option<String>,
}

impl Refusal {
    /// A refusal before the token verified: only the reason is known.
    pub fn reason(reason: Reason) -> Self {
        Self {
            reason,
            service: None,
            token_id: None,
        }
    }
}

impl From<Rejection> for Refusal {
    fn from(r: Rejection) -> Self {
        Self::reason(r.reason())
    }
}

/// Default most tokens kept in [`VerifiedTokens`].
pub const DEFAULT_VERIFIED_CACHE_CAPACITY: usize = 1024;

/// Tokens whose signature and claims verified, by the SHA-256 of the exact token text
/// (the token itself is never kept), with their claims and signing `kid`.
///
/// Only what the signature settles is remembered: that these claims were signed by
/// the key `kid`. Everything else is checked again on every use (see
/// [`TokenAuth::decide`]). Only tokens the verifier accepted are inserted, so filling
/// it takes validly signed tokens, never made-up ones.
///
/// Bounded, and O(1) when full: entries are kept in the order they were inserted
/// (tokens of one issuer live about as long as each other, so that is roughly the
/// order they expire in). An insert into a full cache drops expired entries from the
/// oldest end, at most [`EXPIRED_SWEEP`] of them, and when none was expired the
/// oldest entry.
pub struct VerifiedTokens {
    capacity: usize,
    /// Entries stay usable until `exp + leeway`.
    leeway_secs: u64,
    entries: Mutex<Entries>,
}

/// Most expired entries one insert drops (each insert's work stays bounded; every
/// entry is dropped once, so the sweeps cost O(1) per insert overall).
pub const EXPIRED_SWEEP: usize = 8;

/// The map, and its keys from oldest to newest insert (each key once).
#[derive(Default)]
struct Entries {
    map: HashMap<[u8; 32], Arc<VerifiedToken>>,
    order: VecDeque<[u8; 32]>,
}

impl VerifiedTokens {
    /// A cache of at most `capacity` tokens (0: nothing is cached).
    pub fn new(capacity: usize, leeway_secs: u64) -> Self {
        Self {
            capacity,
            leeway_secs,
            entries: Mutex::new(Entries {
                map: HashMap::with_capacity(capacity),
                order: VecDeque::with_capacity(capacity),
            }),
        }
    }

    /// The cache key of a token: its SHA-256.
    pub fn digest(token: &str) -> [u8; 32] {
        Sha256::digest(token.as_bytes()).into()
    }

    pub fn get(&self, digest: &[u8; 32]) -> Option<Arc<VerifiedToken>> {
        self.lock().map.get(digest).cloned()
    }

    pub fn insert(&self, digest: [u8; 32], verified: Arc<VerifiedToken>, now: UnixTime) {
        if self.capacity == 0 {
            return;
        }
        let mut entries = self.lock();
        let Entries { map, order } = &mut *entries;
        if let Some(slot) = map.get_mut(&digest) {
            *slot = verified;
            return;
        }
        if map.len() >= self.capacity {
            let leeway = self.leeway_secs;
            let expired = |v: &VerifiedToken| now.0 >= v.claims.exp.saturating_add(leeway);
            let mut dropped = 0;
            while dropped < EXPIRED_SWEEP {
                match order.front().and_then(|d| map.get(d)) {
                    Some(v) if expired(v) => {}
                    _ => break,
                }
                if let Some(oldest) = order.pop_front() {
                    map.remove(&oldest);
                }
                dropped += 1;
            }
            if dropped == 0 {
                if let Some(oldest) = order.pop_front() {
                    map.remove(&oldest);
                }
            }
        }
        map.insert(digest, verified);
        order.push_back(digest);
    }

    /// Tokens held now.
    pub fn len(&self) -> usize {
        self.lock().map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Entries> {
        // The entries are consistent after any panic (no call can panic between the
        // changes of one insert): keep them.
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The verifier and key set of one authorizer.
pub struct TokenAuth {
    verifier: Verifier,
    keys: KeySetCache<JwksSource>,
    verified: VerifiedTokens,
    /// Signature verifications run (cache misses that reached the verifier).
    verifications: AtomicU64,
}

impl TokenAuth {
    pub fn new(config: &TokenConfig, source: JwksSource) -> Self {
        let mut vc = VerifierConfig::new(config.issuer.clone());
        vc.min_remaining_secs = config.min_remaining_secs;
        let leeway = vc.leeway_secs;
        Self {
            verifier: Verifier::new(vc),
            keys: KeySetCache::new(source),
            verified: VerifiedTokens::new(DEFAULT_VERIFIED_CACHE_CAPACITY, leeway),
            verifications: AtomicU64::new(0),
        }
    }

    /// The same with a cache of at most `capacity` verified tokens (0: none, every
    /// token is verified on every request).
    pub fn with_verified_cache(mut self, capacity: usize) -> Self {
        self.verified = VerifiedTokens::new(capacity, self.verifier.config().leeway_secs);
        self
    }

    /// Signature verifications run so far (for tests and benches).
    pub fn verifications(&self) -> u64 {
        self.verifications.load(Ordering::Relaxed)
    }

    /// Verified tokens held in the cache now.
    pub fn cached_tokens(&self) -> usize {
        self.verified.len()
    }

    /// Loads the key set now (at start): the first token then waits for nothing.
    pub async fn prefetch(&self, now: UnixTime) {
        // The outcome is logged by the source.
        let _ = self.keys.prefetch(now).await;
    }

    /// Key-set fetches tried so far.
    pub fn keyset_fetches(&self) -> u64 {
        self.keys.fetches()
    }

    /// Decides one token for the API named `api` (`None`: not registered, so the
    /// policy allows nothing) called through `arn`.
    pub async fn decide<S: StandingSource>(
        &self,
        token: &str,
        api: Option<&str>,
        arn: &MethodArn,
        standing: &S,
        now: UnixTime,
    ) -> Result<TokenGrant, Refusal> {
        let verified = self.verified_token(token, api, now).await?;
        let claims = &verified.claims;
        let refuse = |reason: Reason| Refusal {
            reason,
            service: Some(claims.sub.clone()),
            token_id: Some(claims.jti.clone()),
        };
        let proof_key = match &claims.proof {
            Proof::ApiKey { key_id } => Some(key_id.as_str()),
            Proof::Iam { .. } => None,
        };
        let found = standing
            .standing(&claims.sub, proof_key, now)
            .await
            .map_err(|_| refuse(Reason::StoreUnavailable))?;
        check_standing(claims, &found, now).map_err(|r| refuse(r.reason()))?;
        let usage_plan_key = found.usage_plan_key().map(str::to_owned);
        // The token's routes on this API that the service's document still grants:
        // a grant removed since the token was issued ends its routes at the standing's
        // next read, not at the token's expiry.
        let routes = match api {
            Some(api) => claims
                .routes_for(api)
                .map(|r| RoutePattern::parse(r).map(|p| (r, p)))
                .collect::<Result<Vec<_>, _>>()
                // A route the issuer could not have written: refuse the whole token.
                .map_err(|_| refuse(Rejection::MalformedClaims.reason()))?
                .into_iter()
                .filter(|(text, _)| found.grants(api, text))
                .map(|(_, p)| p)
                .collect(),
            None => Vec::new(),
        };
        let suffix = arn.route_suffix();
        let route_permitted = routes.iter().any(|p| p.matches_suffix(suffix));
        Ok(TokenGrant {
            policy: Policy::for_service(&routes, arn),
            route_permitted,
            api_registered: api.is_some(),
            usage_plan_key,
            kid: verified.kid.clone(),
            claims: claims.clone(),
        })
    }

    /// The token's verified claims for `api` at `now`: from the cache when this exact
    /// token verified before, else from the verifier (and then cached). A cached
    /// token's signature is not checked again, but everything else is: its `kid` must
    /// still be in the current key set (a key removed from the JWKS ends its tokens
    /// when the set is refetched), and the audience and times are checked for this
    /// request as the verifier checks them.
    async fn verified_token(
        &self,
        token: &str,
        api: Option<&str>,
        now: UnixTime,
    ) -> Result<Arc<VerifiedToken>, Rejection> {
        let digest = VerifiedTokens::digest(token);
        // The lock is released here, before any await.
        let cached = self.verified.get(&digest);
        if let Some(verified) = cached {
            self.keys.keys_for(&verified.kid, now).await?;
            self.verifier.check_claims(&verified.claims, api, now)?;
            return Ok(verified);
        }
        let header = self.verifier.header(token)?;
        let keys = self.keys.keys_for(&header.kid, now).await?;
        self.verifications.fetch_add(1, Ordering::Relaxed);
        let verified = Arc::new(match api {
            Some(api) => self.verifier.verify(token, &keys, api, now)?,
            None => self.verifier.verify_without_audience(token, &keys, now)?,
        });
        self.verified.insert(digest, verified.clone(), now);
        Ok(verified)
    }
}

/// A verified token caller and what it may call on this API stage.
#[derive(Debug, Clone)]
pub struct TokenGrant {
    pub claims: TokenClaims,
    /// The signing key's id (the KMS key id).
    pub kid: String,
    pub policy: Policy,
    /// Whether the policy covers the route being called. Logged only: the policy
    /// never depends on it.
    pub route_permitted: bool,
    pub api_registered: bool,
    /// The service's usage-plan API key value, when its document names one.
    pub usage_plan_key: Option<String>,
}

impl TokenGrant {
    /// The context backends read ([`context::token_entries`]).
    pub fn context_entries(&self) -> impl Iterator<Item = (&'static str, Cow<'_, str>)> {
        let c = &self.claims;
        context::token_entries(TokenCaller {
            service: &c.sub,
            token_id: &c.jti,
            expires_at: UnixTime(c.exp),
            proof_key_id: match &c.proof {
                Proof::ApiKey { key_id } => Some(key_id),
                Proof::Iam { .. } => None,
            },
        })
    }
}

/// Shared handle.
pub type SharedTokenAuth = Arc<TokenAuth>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_table() {
        let one = |s: &'static str| Authorization::One(s.into());
        let cases: Vec<(Authorization, Result<&str, BearerError>)> = vec![
            (one("Bearer abc.def.ghi"), Ok("abc.def.ghi")),
            (one("bearer abc"), Ok("abc")),
            (one("BEARER\tabc "), Ok("abc")),
            (one("  Bearer   abc  "), Ok("abc")),
            (Authorization::Absent, Err(BearerError::Missing)),
            (Authorization::Repeated, Err(BearerError::Repeated)),
            (one(""), Err(BearerError::Empty)),
            (one("   "), Err(BearerError::Empty)),
            (one("Bearer"), Err(BearerError::Empty)),
            (one("Bearer   "), Err(BearerError::Empty)),
            (one("Basic dXNlcjpwYXNz"), Err(BearerError::Scheme)),
            (
                one("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20261201/us-east-1/execute-api/aws4_request"),
                Err(BearerError::Scheme),
            ),
            (one("Bearerabc"), Err(BearerError::Scheme)),
            (one("abc.def.ghi"), Err(BearerError::Scheme)),
        ];
        for (auth, want) in cases {
            assert_eq!(bearer(&auth), want, "{auth:?}");
        }
        let codes: std::collections::BTreeSet<&str> = [
            BearerError::Missing,
            BearerError::Repeated,
            BearerError::Empty,
            BearerError::Scheme,
        ]
        .iter()
        .map(|e| e.code())
        .collect();
        assert_eq!(codes.len(), 4);
    }

    fn verified(n: u64, exp: u64) -> Arc<VerifiedToken> {
        Arc::new(VerifiedToken {
            kid: "key-2026-12".into(),
            claims: TokenClaims {
                iss: "svcauth:dev".into(),
                sub: "tutor-service".into(),
                aud: vec!["identity".into()],
                exp,
                nbf: exp - 600,
                iat: exp - 600,
                jti: format!("jti-{n}"),
                permissions: Vec::new(),
                proof: Proof::Iam {
                    role_arn: "arn:aws:iam::123456789012:role/t".into(),
                },
            },
        })
    }

    #[test]
    fn the_verified_token_cache_stays_bounded_and_evicts_expired_first() {
        let now = UnixTime(10_000);
        let cache = VerifiedTokens::new(DEFAULT_VERIFIED_CACHE_CAPACITY, 30);
        for n in 0..5_000u64 {
            let token = format!("token-{n}");
            cache.insert(VerifiedTokens::digest(&token), verified(n, 10_600), now);
            assert!(cache.len() <= DEFAULT_VERIFIED_CACHE_CAPACITY, "{n}");
        }
        assert_eq!(cache.len(), DEFAULT_VERIFIED_CACHE_CAPACITY);
        // The newest is always kept.
        assert!(cache.get(&VerifiedTokens::digest("token-4999")).is_some());

        // Full of expired entries (exp + leeway passed) but one: the expired go first.
        let small = VerifiedTokens::new(4, 30);
        for n in 0..3u64 {
            small.insert(
                VerifiedTokens::digest(&format!("old-{n}")),
                verified(n, 9_970),
                now,
            );
        }
        small.insert(VerifiedTokens::digest("live"), verified(9, 10_600), now);
        small.insert(VerifiedTokens::digest("new"), verified(10, 10_600), now);
        assert_eq!(small.len(), 2);
        assert!(small.get(&VerifiedTokens::digest("live")).is_some());
        assert!(small.get(&VerifiedTokens::digest("new")).is_some());
        // The key is the digest, never the token text.
        assert!(small.get(&VerifiedTokens::digest("live ")).is_none());

        let none = VerifiedTokens::new(0, 30);
        none.insert(VerifiedTokens::digest("t"), verified(0, 10_600), now);
        assert!(none.is_empty());
    }

    /// When full, an insert drops the oldest entry (none expired), or the expired ones
    /// at the oldest end, never more than EXPIRED_SWEEP at once; a token inserted again
    /// is one entry.
    #[test]
    fn a_full_verified_token_cache_drops_from_its_oldest_end() {
        let now = UnixTime(10_000);
        let d = |name: &str| VerifiedTokens::digest(name);
        let cache = VerifiedTokens::new(2, 30);
        for _ in 0..3 {
            cache.insert(d("a"), verified(1, 10_600), now);
        }
        cache.insert(d("b"), verified(2, 10_600), now);
        assert_eq!(cache.len(), 2);
        cache.insert(d("c"), verified(3, 10_600), now);
        assert!(cache.get(&d("a")).is_none(), "the oldest goes");
        assert!(cache.get(&d("b")).is_some() && cache.get(&d("c")).is_some());
        cache.insert(d("d"), verified(4, 10_600), now);
        assert!(cache.get(&d("b")).is_none());
        assert_eq!(cache.len(), 2);

        // Twenty expired entries, then a full cache's inserts: each drops at most
        // EXPIRED_SWEEP of them.
        let full = VerifiedTokens::new(20, 30);
        for n in 0..20u64 {
            full.insert(d(&format!("old-{n}")), verified(n, 9_970), now);
        }
        full.insert(d("new-1"), verified(100, 10_600), now);
        assert_eq!(full.len(), 20 - EXPIRED_SWEEP + 1);
        full.insert(d("new-2"), verified(101, 10_600), now);
        assert_eq!(full.len(), 20 - EXPIRED_SWEEP + 2);
        assert!(full.get(&d("new-1")).is_some() && full.get(&d("new-2")).is_some());
    }

    #[test]
    fn standing_follows_the_store() {
        use service_auth::{ApiGrant, ApiKey, KeyRecord, KeyStatus, KeyStore, ServiceDocument};
        let active = ApiKey::generate(None).unwrap();
        let revoked = ApiKey::generate(None).unwrap();
        let expired = ApiKey::generate(None).unwrap();
        let other = ApiKey::generate(None).unwrap();
        let mut doc = ServiceDocument::new(
            "tutor-service",
            vec![ApiGrant::new(&["identity"], &["GET /x"])],
        );
        doc.tokens_not_before = Some(UnixTime(50));
        doc.usage_plan_key = Some("tutor-usage-plan-key".into());
        doc.keys
            .push(KeyRecord::for_key(&active, UnixTime(1), None));
        let mut r = KeyRecord::for_key(&revoked, UnixTime(1), None);
        r.status = KeyStatus::Revoked;
        doc.keys.push(r);
        doc.keys.push(KeyRecord::for_key(
            &expired,
            UnixTime(1),
            Some(UnixTime(90)),
        ));
        let mut billing = ServiceDocument::new("billing", vec![]);
        billing
            .keys
            .push(KeyRecord::for_key(&other, UnixTime(1), None));
        let mut store = KeyStore::build(&[doc, billing], &[]).unwrap();
        let now = UnixTime(100);
        let id = |k: &ApiKey| k.key_id().as_str().to_owned();
        let s =
            |store: &KeyStore, key: Option<&str>| Standing::from_store(store, "tutor-service", key);
        let good = s(&store, Some(&id(&active)));
        assert!(good.proof_key_usable(&id(&active), now));
        assert_eq!(good.tokens_not_before(), Some(UnixTime(50)));
        assert_eq!(good.usage_plan_key(), Some("tutor-usage-plan-key"));
        assert!(good.grants("identity", "GET /x"));
        for bad in [
            id(&revoked),
            id(&expired),
            id(&other),
            "kid_0000000000000000".to_owned(),
        ] {
            assert!(!s(&store, Some(&bad)).proof_key_usable(&bad, now), "{bad}");
        }
        assert!(!Standing::from_store(&store, "nobody", None).known());
        // A marker applied to the store wins over the document.
        store.revoke_ids(&std::iter::once(active.key_id()).collect());
        assert!(!s(&store, Some(&id(&active))).proof_key_usable(&id(&active), now));
    }
}
