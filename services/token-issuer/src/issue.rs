//! What token a caller gets, in plain Rust: no HTTP, no AWS.
//!
//! [`claims_for`] takes the caller's identity (as API Gateway established it), what
//! the store says about the caller now ([`Standing`]: its service document and whether
//! the proof key has a revocation marker), the request and the time, and either
//! returns the claims to sign or says why not. The rules:
//!
//! * the service must have a document with grants (schema 2); an API-key caller's key
//!   must be in it, usable now and without a revocation marker (a revoked, expired or
//!   unknown key gets no token, even through a cached authorizer answer);
//! * the grants are the document's, or a subset named in the request (`permissions`,
//!   `audience`): narrowed, never widened. A route is granted when a document grant
//!   names the same API and the same route pattern (exact text: a pattern is never
//!   read as covering another);
//! * every proof (an API key on `POST /token`, an IAM role on `POST /token/iam`) needs
//!   the grant [`TOKEN_ROUTE`] on API [`TOKEN_API`]: the key route's authorizer checks
//!   it for keys, and this module checks it again for every caller, so a role mapped in
//!   `SVCAUTH_IAM_ROLES` gets no token once its service's grant is removed;
//! * the lifetime is the configured default (600 s), or as asked, up to 3600 s and at
//!   least [`IssuerSettings::shortest_lifetime_secs`]: the verifiers refuse a token
//!   with less than their minimum left (`SVCAUTH_TOKEN_MIN_REMAINING_SECS`, the
//!   result-cache TTL of the APIs it is for) and clients stop using it
//!   [`CLIENT_MARGIN_SECS`] before that, so every token handed out must stay usable
//!   for [`MIN_USABLE_SECS`] past both;
//! * a brake (`tokensNotBefore`) in the future refuses every token until then.
//!
//! [`ReuseCache`] hands out a token already signed instead of signing again when that
//! is safe; [`RetryPolicy`] is the back-off for a throttled KMS.

use std::collections::{BTreeSet, HashMap};
use std::sync::Mutex;
use std::time::Duration;

use serde::Deserialize;
use service_auth::identity::{AuthMethod, ServiceIdentity};
use service_auth::{ApiGrant, ServiceDocument, UnixTime};
use service_token::{Permission, Proof, TokenClaims};

/// Default token lifetime (`SVCAUTH_TOKEN_DEFAULT_LIFETIME_SECS`).
pub const DEFAULT_LIFETIME_SECS: u64 = 10 * 60;
/// Longest token lifetime (also the verifier's limit).
pub const MAX_LIFETIME_SECS: u64 = service_token::verify::MAX_LIFETIME_SECS;
/// Shortest time a token handed out stays usable by its caller, past the verifiers'
/// minimum and the client's margin: shorter tokens only cost KMS signatures.
pub const MIN_USABLE_SECS: u64 = 60;
/// `SVCAUTH_TOKEN_MIN_REMAINING_SECS` when unset: the authorizer's own default (API
/// Gateway's default result TTL). Deployed, both get the template's `TokenResultTtl`.
pub const DEFAULT_MIN_REMAINING_SECS: u64 = 300;
/// How long before the verifiers' minimum a client stops presenting a token: its
/// allowance for clock differences (`service-client`'s `TokenSettings::clock_skew`).
pub const CLIENT_MARGIN_SECS: u64 = 10;
/// The API a service must be granted [`TOKEN_ROUTE`] on to get tokens: the token API's
/// registered name.
pub const TOKEN_API: &str = "token";
/// The route of [`TOKEN_API`] whose grant lets a service trade any proof for tokens.
pub const TOKEN_ROUTE: &str = "POST /token";
/// Most entries in a request's `audience` or `permissions` (a document has at most 32
/// routes; anything longer cannot be granted anyway).
pub const MAX_REQUEST_ITEMS: usize = 64;

/// `POST /token` body; every field optional (`{}` or no body asks for the defaults).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TokenRequest {
    /// API names to keep; default: every API the service's grants name.
    pub audience: Option<Vec<String>>,
    /// Grants to keep (`[{"apis":[..],"routes":[..]}]`); default: all of them.
    pub permissions: Option<Vec<ApiGrant>>,
    /// Seconds; default `SVCAUTH_TOKEN_DEFAULT_LIFETIME_SECS`, from
    /// [`IssuerSettings::shortest_lifetime_secs`] to 3600.
    pub lifetime_seconds: Option<u64>,
}

/// The issuer's fixed settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuerSettings {
    /// `iss` of every token (`SVCAUTH_TOKEN_ISSUER`).
    pub issuer: String,
    /// Lifetime when the request names none.
    pub default_lifetime_secs: u64,
    /// The least lifetime a verifier wants left on a token it accepts
    /// (`SVCAUTH_TOKEN_MIN_REMAINING_SECS`, the authorizers' setting of the same name):
    /// no token is issued or handed out again with less than this plus
    /// [`CLIENT_MARGIN_SECS`] and [`MIN_USABLE_SECS`] left.
    pub min_remaining_secs: u64,
}

impl IssuerSettings {
    /// Least lifetime a token must have left when it is handed out: the verifiers'
    /// minimum plus the client's margin.
    pub fn least_left_secs(&self) -> u64 {
        self.min_remaining_secs.saturating_add(CLIENT_MARGIN_SECS)
    }

    /// Shortest lifetime issued: usable for [`MIN_USABLE_SECS`] before
    /// [`IssuerSettings::least_left_secs`].
    pub fn shortest_lifetime_secs(&self) -> u64 {
        self.least_left_secs().saturating_add(MIN_USABLE_SECS)
    }
}

/// What the store says about the caller now: its service document with every marker
/// applied (revocation, expiry, brake) and whether its key has a revocation marker.
/// One type for the authorizer and the issuer (`service_auth::standing`).
pub use service_auth::Standing;

/// Why no token. Carries no secret (key ids, role ARNs and service names are not).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IssueError {
    #[error("service {0:?} has no service document; register it with `svcauth keys create`")]
    UnknownService(String),
    #[error("service {0:?} has no grants on any API (a schema-1 document or none granted); grant routes with `svcauth keys grant` or run `svcauth keys migrate`")]
    NoGrants(String),
    #[error("the service document of {0:?} cannot be used (see the issuer's logs); an operator must rewrite it with svcauth")]
    DocumentInvalid(String),
    #[error("key {0} is revoked, expired or unknown: no token is issued for it; use an active key of this service")]
    KeyNotUsable(String),
    #[error("tokens of service {service:?} are braked until {until}: no token is issued before then; ask the operator who pulled the brake (`svcauth tokens brake`)")]
    Braked { service: String, until: String },
    #[error("{0} is not granted to this service: a token can only narrow the service's grants (see `svcauth keys list`)")]
    NotGranted(String),
    #[error("service {0:?} is not granted {TOKEN_ROUTE} on API {TOKEN_API}, which every proof (API key or IAM role) needs to get tokens; grant it with `svcauth keys grant --service {0} --api {TOKEN_API} --permissions '{TOKEN_ROUTE}'`")]
    TokensNotGranted(String),
    #[error("{0}")]
    BadRequest(String),
    #[error("a token is not a proof for another token: call POST /token with the service's API key, or POST /token/iam signed with its IAM role")]
    TokenCaller,
}

impl IssueError {
    /// Stable code for logs and error bodies.
    pub fn code(&self) -> &'static str {
        match self {
            Self::UnknownService(_) => "unknown_service",
            Self::NoGrants(_) => "no_grants",
            Self::DocumentInvalid(_) => "document_invalid",
            Self::KeyNotUsable(_) => "key_not_usable",
            Self::Braked { .. } => "braked",
            Self::NotGranted(_) => "permission_not_granted",
            Self::TokensNotGranted(_) => "tokens_not_granted",
            Self::BadRequest(_) => "bad_request",
            Self::TokenCaller => "token_not_a_proof",
        }
    }

    /// HTTP status: 401 for a credential that no longer counts, 403 for a caller that
    /// is known but may not have this, 400 for a malformed request.
    pub fn status(&self) -> u16 {
        match self {
            Self::KeyNotUsable(_) | Self::TokenCaller => 401,
            Self::UnknownService(_) | Self::NoGrants(_) | Self::Braked { .. } => 403,
            Self::DocumentInvalid(_) => 403,
            Self::NotGranted(_) | Self::TokensNotGranted(_) => 403,
            Self::BadRequest(_) => 400,
        }
    }
}

/// The proof a caller gave, as a token records it; a token caller has none.
pub fn proof_of(caller: &ServiceIdentity) -> Result<Proof, IssueError> {
    match &caller.method {
        AuthMethod::ApiKey { key_id } => Ok(Proof::ApiKey {
            key_id: key_id.to_string(),
        }),
        AuthMethod::Iam { role_arn, .. } => Ok(Proof::Iam {
            role_arn: role_arn.to_string(),
        }),
        AuthMethod::Token { .. } => Err(IssueError::TokenCaller),
    }
}

/// The claims to sign for `caller`, or why not.
pub fn claims_for(
    caller: &ServiceIdentity,
    standing: &Standing,
    req: &TokenRequest,
    settings: &IssuerSettings,
    now: UnixTime,
    jti: String,
) -> Result<TokenClaims, IssueError> {
    let doc = standing
        .document
        .as_ref()
        .filter(|d| d.service == caller.service)
        .ok_or_else(|| IssueError::UnknownService(caller.service.clone()))?;
    if let AuthMethod::ApiKey { key_id } = &caller.method {
        let usable = doc.key(key_id).is_some_and(|k| k.usable_at(now));
        if !usable || standing.proof_key_revoked {
            return Err(IssueError::KeyNotUsable(key_id.to_string()));
        }
    }
    if let Some(t) = doc.tokens_not_before.filter(|t| *t > now) {
        return Err(IssueError::Braked {
            service: doc.service.clone(),
            until: t.to_rfc3339(),
        });
    }
    let lifetime = req
        .lifetime_seconds
        .unwrap_or(settings.default_lifetime_secs);
    let shortest = settings.shortest_lifetime_secs();
    if !(shortest..=MAX_LIFETIME_SECS).contains(&lifetime) {
        return Err(IssueError::BadRequest(format!(
            "lifetimeSeconds must be between {shortest} and {MAX_LIFETIME_SECS}: the APIs' authorizers refuse a token with less than {} s left, clients stop using it {CLIENT_MARGIN_SECS} s before that, and a token must stay usable for at least {MIN_USABLE_SECS} s",
            settings.min_remaining_secs
        )));
    }
    if doc.is_unscoped() || doc.grants.is_empty() {
        return Err(IssueError::NoGrants(doc.service.clone()));
    }
    if !grants_tokens(doc)? {
        return Err(IssueError::TokensNotGranted(doc.service.clone()));
    }
    let mut permissions = match &req.permissions {
        None => doc
            .grants
            .iter()
            .map(|g| Permission::new(g.apis.iter().cloned(), g.routes.iter().cloned()))
            .collect(),
        Some(asked) => narrow_to_granted(&doc.grants, asked)?,
    };
    if let Some(audience) = &req.audience {
        permissions = narrow_to_audience(permissions, audience)?;
    }
    let aud = TokenClaims::audience_of(&permissions);
    Ok(TokenClaims {
        iss: settings.issuer.clone(),
        sub: doc.service.clone(),
        aud,
        exp: now.0 + lifetime,
        nbf: now.0,
        iat: now.0,
        jti,
        permissions,
        proof: proof_of(caller)?,
    })
}

/// Whether `doc` grants [`TOKEN_ROUTE`] on [`TOKEN_API`], matched as the key route's
/// authorizer matches it (a pattern such as `POST /*` on `token` covers it too).
fn grants_tokens(doc: &ServiceDocument) -> Result<bool, IssueError> {
    let suffix = TOKEN_ROUTE.replacen(' ', "", 1);
    let scoped = doc
        .scoped_routes()
        .map_err(|_| IssueError::DocumentInvalid(doc.service.clone()))?;
    Ok(scoped.iter().any(|(apis, routes)| {
        apis.iter().any(|a| a == TOKEN_API) && routes.iter().any(|r| r.matches_suffix(&suffix))
    }))
}

/// The asked grants, each (API, route) pair checked against the document's grants.
fn narrow_to_granted(
    granted: &[ApiGrant],
    asked: &[ApiGrant],
) -> Result<Vec<Permission>, IssueError> {
    if asked.is_empty() || asked.len() > MAX_REQUEST_ITEMS {
        return Err(IssueError::BadRequest(format!(
            "permissions, when given, must list 1-{MAX_REQUEST_ITEMS} grants"
        )));
    }
    let mut out: Vec<Permission> = Vec::with_capacity(asked.len());
    for g in asked {
        if g.apis.is_empty()
            || g.routes.is_empty()
            || g.apis.len() + g.routes.len() > MAX_REQUEST_ITEMS
        {
            return Err(IssueError::BadRequest(
                "each requested grant must name at least one API and one route".into(),
            ));
        }
        let apis = dedup(&g.apis);
        let routes = dedup(&g.routes);
        for api in &apis {
            for route in &routes {
                let ok = granted
                    .iter()
                    .any(|d| d.apis.contains(api) && d.routes.contains(route));
                if !ok {
                    return Err(IssueError::NotGranted(format!(
                        "route {route:?} on API {api:?}"
                    )));
                }
            }
        }
        let p = Permission::new(apis, routes);
        if !out.contains(&p) {
            out.push(p);
        }
    }
    Ok(out)
}

/// Keeps only the APIs in `audience`; a grant left with no API is dropped. Every API
/// asked for must be named by some grant.
fn narrow_to_audience(
    permissions: Vec<Permission>,
    audience: &[String],
) -> Result<Vec<Permission>, IssueError> {
    if audience.is_empty() || audience.len() > MAX_REQUEST_ITEMS {
        return Err(IssueError::BadRequest(format!(
            "audience, when given, must name 1-{MAX_REQUEST_ITEMS} APIs"
        )));
    }
    for api in audience {
        if !permissions.iter().any(|p| p.names_api(api)) {
            return Err(IssueError::NotGranted(format!("API {api:?}")));
        }
    }
    Ok(permissions
        .into_iter()
        .filter_map(|mut p| {
            p.apis.retain(|a| audience.contains(a));
            (!p.apis.is_empty()).then_some(p)
        })
        .collect())
}

/// Sorted, without repeats.
fn dedup(items: &[String]) -> Vec<String> {
    items
        .iter()
        .cloned()
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect()
}

/// A new token id: 128 random bits, hex.
pub fn new_jti() -> Result<String, getrandom::Error> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes)?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// Most tokens held for reuse; past that, expired ones are dropped and then the cache
/// is cleared (a reuse miss only costs a signature).
pub const REUSE_CAPACITY: usize = 1024;

/// What makes two requests ask for the same token.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct ReuseKey {
    iss: String,
    sub: String,
    proof: Proof,
    aud: Vec<String>,
    permissions: Vec<Permission>,
}

#[derive(Clone)]
struct Held {
    token: String,
    iat: u64,
    exp: u64,
    jti: String,
    kid: String,
}

/// A token handed out again.
#[derive(Clone, PartialEq, Eq)]
pub struct Reused {
    pub token: String,
    pub exp: u64,
    pub jti: String,
    /// The key that signed it.
    pub kid: String,
}

impl std::fmt::Debug for Reused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reused")
            .field("token", &"<redacted>")
            .field("exp", &self.exp)
            .field("jti", &self.jti)
            .field("kid", &self.kid)
            .finish()
    }
}

/// Tokens already signed, by what they grant. A held token is handed out again for
/// claims just computed by [`claims_for`] (so the caller's standing was checked now)
/// when it is for the same issuer, service, proof, audience and grants, was issued at
/// or after the brake, has no more than the asked lifetime left (a caller never gets a
/// longer-lived token than it asked for), and stays usable for at least half as long as
/// a new one would: usable means with more than `least_left` seconds left
/// ([`IssuerSettings::least_left_secs`]), below which verifiers or clients drop it.
#[derive(Default)]
pub struct ReuseCache {
    held: Mutex<HashMap<ReuseKey, Held>>,
}

impl ReuseCache {
    /// A held token for exactly these `claims`, safe to hand out again at `now` to a
    /// caller whose verifiers and client drop a token with `least_left` seconds left.
    pub fn find(
        &self,
        claims: &TokenClaims,
        brake: Option<UnixTime>,
        now: UnixTime,
        least_left: u64,
    ) -> Option<Reused> {
        let asked = claims.exp.saturating_sub(claims.iat);
        let held = self.lock().get(&key_of(claims)).cloned()?;
        let left = held.exp.saturating_sub(now.0);
        let braked = brake.is_some_and(|t| held.iat < t.0);
        let usable_left = left.checked_sub(least_left).filter(|u| *u > 0);
        let half_of_new = asked.saturating_sub(least_left).div_ceil(2);
        let usable = !braked
            && held.iat <= now.0
            && left <= asked
            && usable_left.is_some_and(|u| u >= half_of_new);
        usable.then_some(Reused {
            token: held.token,
            exp: held.exp,
            jti: held.jti,
            kid: held.kid,
        })
    }

    /// Remembers a freshly signed token.
    pub fn keep(&self, claims: &TokenClaims, token: &str, kid: &str, now: UnixTime) {
        let mut held = self.lock();
        if held.len() >= REUSE_CAPACITY {
            held.retain(|_, h| h.exp > now.0);
            if held.len() >= REUSE_CAPACITY {
                held.clear();
            }
        }
        held.insert(
            key_of(claims),
            Held {
                token: token.to_owned(),
                iat: claims.iat,
                exp: claims.exp,
                jti: claims.jti.clone(),
                kid: kid.to_owned(),
            },
        );
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<ReuseKey, Held>> {
        self.held.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn key_of(c: &TokenClaims) -> ReuseKey {
    let mut permissions = c.permissions.clone();
    permissions.sort_by(|a, b| (&a.apis, &a.routes).cmp(&(&b.apis, &b.routes)));
    ReuseKey {
        iss: c.iss.clone(),
        sub: c.sub.clone(),
        proof: c.proof.clone(),
        aud: c.aud.clone(),
        permissions,
    }
}

/// Back-off for KMS throttling: full jitter over an exponential ceiling, within a time
/// budget. KMS allows about 300 ECC signs per second per account and Region; a short
/// burst over that is absorbed here, a sustained one becomes 503 + `Retry-After`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Ceiling of the first delay; doubles per retry.
    pub base: Duration,
    /// Largest ceiling.
    pub cap: Duration,
    /// Total time a request may spend retrying.
    pub budget: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            base: Duration::from_millis(50),
            cap: Duration::from_millis(800),
            budget: Duration::from_millis(2_500),
        }
    }
}

impl RetryPolicy {
    /// The delay before retry number `retry` (0 for the first), given a uniform random
    /// fraction `unit` in [0, 1].
    pub fn delay(&self, retry: u32, unit: f64) -> Duration {
        let ceiling = self
            .base
            .saturating_mul(1u32.checked_shl(retry.min(20)).unwrap_or(u32::MAX))
            .min(self.cap);
        ceiling.mul_f64(unit.clamp(0.0, 1.0))
    }

    /// The next delay, or `None` when it would end past the budget (`spent` so far).
    pub fn next_delay(&self, retry: u32, spent: Duration, unit: f64) -> Option<Duration> {
        let d = self.delay(retry, unit);
        (spent + d <= self.budget).then_some(d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use service_auth::identity::{AssumedRoleArn, RoleArn};
    use service_auth::{ApiKey, KeyId, KeyRecord, KeyStatus};

    const NOW: u64 = 1_764_600_000;

    fn settings() -> IssuerSettings {
        IssuerSettings {
            issuer: "svcauth:test".into(),
            default_lifetime_secs: 600,
            min_remaining_secs: 0,
        }
    }

    fn doc(key: &ApiKey) -> ServiceDocument {
        let mut d = ServiceDocument::new(
            "tutor-service",
            vec![
                ApiGrant::new(&["identity"], &["GET /internal/users/*"]),
                ApiGrant::new(&["billing", "identity"], &["POST /internal/charges"]),
                ApiGrant::new(&["token"], &["POST /token"]),
            ],
        );
        d.keys
            .push(KeyRecord::for_key(key, UnixTime(NOW - 100), None));
        d
    }

    fn key_caller(id: KeyId) -> ServiceIdentity {
        ServiceIdentity {
            service: "tutor-service".into(),
            method: AuthMethod::ApiKey { key_id: id },
        }
    }

    fn iam_caller() -> ServiceIdentity {
        ServiceIdentity {
            service: "tutor-service".into(),
            method: AuthMethod::Iam {
                role_arn: RoleArn::parse("arn:aws:iam::123456789012:role/tutor-task-role").unwrap(),
                caller_arn: AssumedRoleArn::parse(
                    "arn:aws:sts::123456789012:assumed-role/tutor-task-role/task-1",
                )
                .unwrap(),
            },
        }
    }

    fn standing(d: ServiceDocument) -> Standing {
        Standing {
            document: Some(d),
            proof_key_revoked: false,
        }
    }

    fn req(json: &str) -> TokenRequest {
        serde_json::from_str(json).unwrap()
    }

    fn issue(
        caller: &ServiceIdentity,
        s: &Standing,
        body: &str,
    ) -> Result<TokenClaims, IssueError> {
        claims_for(
            caller,
            s,
            &req(body),
            &settings(),
            UnixTime(NOW),
            "j".into(),
        )
    }

    #[test]
    fn default_claims_carry_every_grant_and_their_apis() {
        let key = ApiKey::generate(Some("dev")).unwrap();
        let c = issue(&key_caller(key.key_id()), &standing(doc(&key)), "{}").unwrap();
        assert_eq!(c.aud, ["billing", "identity", "token"]);
        assert_eq!(c.permissions.len(), 3);
        assert_eq!((c.iat, c.nbf, c.exp), (NOW, NOW, NOW + 600));
        assert_eq!(c.sub, "tutor-service");
        assert_eq!(c.iss, "svcauth:test");
        let c = issue(&iam_caller(), &standing(doc(&key)), "{}").unwrap();
        assert_eq!(
            c.proof,
            Proof::Iam {
                role_arn: "arn:aws:iam::123456789012:role/tutor-task-role".into()
            }
        );
    }

    #[test]
    fn requests_narrow_and_never_widen() {
        let key = ApiKey::generate(Some("dev")).unwrap();
        let s = standing(doc(&key));
        let caller = key_caller(key.key_id());
        let c = issue(&caller, &s, r#"{"audience":["billing"]}"#).unwrap();
        assert_eq!(c.aud, ["billing"]);
        assert_eq!(
            c.permissions,
            [Permission::new(["billing"], ["POST /internal/charges"])]
        );
        let c = issue(
            &caller,
            &s,
            r#"{"permissions":[{"apis":["identity","identity"],"routes":["POST /internal/charges","GET /internal/users/*"]}]}"#,
        )
        .unwrap();
        assert_eq!(c.aud, ["identity"]);
        assert_eq!(
            c.permissions,
            [Permission::new(
                ["identity"],
                ["GET /internal/users/*", "POST /internal/charges"]
            )]
        );
        type Case = (&'static str, &'static str);
        let refused: [Case; 10] = [
            (r#"{"audience":["tutor"]}"#, "permission_not_granted"),
            (
                r#"{"permissions":[{"apis":["billing"],"routes":["GET /internal/users/*"]}]}"#,
                "permission_not_granted",
            ),
            (
                r#"{"permissions":[{"apis":["identity"],"routes":["GET /internal/*"]}]}"#,
                "permission_not_granted",
            ),
            (
                r#"{"permissions":[{"apis":["identity"],"routes":["GET /internal/users/42"]}]}"#,
                "permission_not_granted",
            ),
            (
                r#"{"permissions":[{"apis":["billing"],"routes":["POST /internal/charges"]}],"audience":["identity"]}"#,
                "permission_not_granted",
            ),
            (r#"{"permissions":[]}"#, "bad_request"),
            (r#"{"audience":[]}"#, "bad_request"),
            (
                r#"{"permissions":[{"apis":[],"routes":["POST /token"]}]}"#,
                "bad_request",
            ),
            (r#"{"lifetimeSeconds":59}"#, "bad_request"),
            (r#"{"lifetimeSeconds":3601}"#, "bad_request"),
        ];
        for (body, code) in refused {
            let e = issue(&caller, &s, body).unwrap_err();
            assert_eq!(e.code(), code, "{body}: {e}");
        }
        assert!(serde_json::from_str::<TokenRequest>(r#"{"admin":true}"#).is_err());
        assert!(serde_json::from_str::<TokenRequest>(
            r#"{"permissions":[{"apis":["a"],"routes":["b"],"x":1}]}"#
        )
        .is_err());
        assert!(serde_json::from_str::<TokenRequest>(r#"{"lifetimeSeconds":-1}"#).is_err());
    }

    #[test]
    fn refused_callers() {
        let key = ApiKey::generate(Some("dev")).unwrap();
        let other = ApiKey::generate(Some("dev")).unwrap();
        let good = doc(&key);
        let mut revoked = good.clone();
        revoked.keys[0].status = KeyStatus::Revoked;
        let mut expired = good.clone();
        expired.keys[0].expires = Some(UnixTime(NOW));
        let mut braked = good.clone();
        braked.tokens_not_before = Some(UnixTime(NOW + 1));
        let mut past_brake = good.clone();
        past_brake.tokens_not_before = Some(UnixTime(NOW));
        let mut schema1 = good.clone();
        schema1.grants.clear();
        let mut wrong_name = good.clone();
        wrong_name.service = "reports-service".into();
        let marker = Standing {
            document: Some(good.clone()),
            proof_key_revoked: true,
        };
        let caller = key_caller(key.key_id());
        let stranger = key_caller(other.key_id());
        let cases: Vec<(&str, &ServiceIdentity, Standing, Option<&str>)> = vec![
            (
                "revoked",
                &caller,
                standing(revoked),
                Some("key_not_usable"),
            ),
            (
                "expired",
                &caller,
                standing(expired),
                Some("key_not_usable"),
            ),
            ("marker", &caller, marker, Some("key_not_usable")),
            (
                "unknown key",
                &stranger,
                standing(good.clone()),
                Some("key_not_usable"),
            ),
            (
                "no document",
                &caller,
                Standing::default(),
                Some("unknown_service"),
            ),
            (
                "other document",
                &caller,
                standing(wrong_name),
                Some("unknown_service"),
            ),
            ("brake ahead", &caller, standing(braked), Some("braked")),
            ("brake passed", &caller, standing(past_brake), None),
            ("no grants", &caller, standing(schema1), Some("no_grants")),
        ];
        for (name, caller, s, want) in cases {
            let got = issue(caller, &s, "{}").map(|_| ()).map_err(|e| e.code());
            assert_eq!(got, want.map_or(Ok(()), Err), "{name}");
        }
        let e = issue(
            &caller,
            &Standing {
                document: Some(good),
                proof_key_revoked: true,
            },
            "{}",
        )
        .unwrap_err();
        assert_eq!(e.status(), 401);
        assert!(!e.to_string().contains(key.expose_secret()));
    }

    fn claims(iat: u64, lifetime: u64, jti: &str) -> TokenClaims {
        TokenClaims {
            iss: "svcauth:test".into(),
            sub: "tutor-service".into(),
            aud: vec!["identity".into()],
            exp: iat + lifetime,
            nbf: iat,
            iat,
            jti: jti.into(),
            permissions: vec![Permission::new(["identity"], ["GET /internal/users/*"])],
            proof: Proof::ApiKey {
                key_id: "kid_0123456789abcdef".into(),
            },
        }
    }

    #[test]
    fn reuse_only_while_safe() {
        let cache = ReuseCache::default();
        cache.keep(&claims(NOW, 600, "a"), "tok-a", "k1", UnixTime(NOW));
        let at = |t: u64, lifetime: u64, brake: Option<u64>| {
            cache
                .find(
                    &claims(t, lifetime, "new"),
                    brake.map(UnixTime),
                    UnixTime(t),
                    0,
                )
                .map(|r| r.jti)
        };
        assert_eq!(at(NOW + 300, 600, None).as_deref(), Some("a"));
        assert_eq!(at(NOW + 301, 600, None), None, "less than half left");
        assert_eq!(at(NOW + 10, 60, None), None, "longer than asked");
        assert_eq!(
            at(NOW + 10, 600, Some(NOW + 1)),
            None,
            "issued before the brake"
        );
        assert_eq!(at(NOW + 10, 600, Some(NOW)).as_deref(), Some("a"));
        let mut other = claims(NOW + 10, 600, "x");
        other.proof = Proof::ApiKey {
            key_id: "kid_fedcba9876543210".into(),
        };
        assert!(
            cache.find(&other, None, UnixTime(NOW + 10), 0).is_none(),
            "other proof"
        );
        let mut narrower = claims(NOW + 10, 600, "x");
        narrower.permissions[0].routes = vec!["GET /internal/users/by-email/*".into()];
        assert!(cache.find(&narrower, None, UnixTime(NOW + 10), 0).is_none());
        assert!(!format!(
            "{:?}",
            cache.find(&claims(NOW, 600, "n"), None, UnixTime(NOW), 0)
        )
        .contains("tok-a"));
        for i in 0..REUSE_CAPACITY + 5 {
            let mut c = claims(NOW, 600, "b");
            c.sub = format!("s{i}");
            cache.keep(&c, "t", "k1", UnixTime(NOW));
        }
        assert!(cache.len() <= REUSE_CAPACITY);
    }

    /// Issue 19 A1: the `POST /token` grant is required for every proof, IAM included
    /// (only the key route's authorizer checked it before).
    #[test]
    fn every_proof_needs_the_token_grant() {
        let key = ApiKey::generate(Some("dev")).unwrap();
        let mut ungranted = doc(&key);
        ungranted.ungrant("token");
        let mut elsewhere = ungranted.clone();
        elsewhere.grant("identity", &["POST /token".into()]);
        let mut wildcard = ungranted.clone();
        wildcard.grant("token", &["POST /*".into()]);
        let mut other_route = ungranted.clone();
        other_route.grant("token", &["GET /token".into()]);
        for caller in [key_caller(key.key_id()), iam_caller()] {
            for (name, d, want) in [
                ("no token grant", &ungranted, Some("tokens_not_granted")),
                (
                    "POST /token on another API",
                    &elsewhere,
                    Some("tokens_not_granted"),
                ),
                (
                    "GET /token on token",
                    &other_route,
                    Some("tokens_not_granted"),
                ),
                ("POST /* on token", &wildcard, None),
                ("POST /token on token", &doc(&key), None),
            ] {
                let got = issue(&caller, &standing(d.clone()), "{}")
                    .map(|_| ())
                    .map_err(|e| e.code());
                assert_eq!(
                    got,
                    want.map_or(Ok(()), Err),
                    "{}: {name}",
                    caller.method_name()
                );
            }
        }
        let e = issue(&iam_caller(), &standing(ungranted), "{}").unwrap_err();
        assert_eq!(e.status(), 403);
        assert!(
            e.to_string().contains("svcauth keys grant --service tutor-service --api token --permissions 'POST /token'"),
            "{e}"
        );
    }

    /// Issue 19 B2: with verifiers that refuse a token with less than 60 s left, a
    /// lifetime that leaves no use after that (and the client's margin) is refused, and
    /// a held token is handed out again only while it stays usable for at least half as
    /// long as a new one.
    #[test]
    fn tokens_handed_out_outlive_the_verifiers_minimum() {
        let key = ApiKey::generate(Some("dev")).unwrap();
        let s = standing(doc(&key));
        let caller = key_caller(key.key_id());
        let strict = IssuerSettings {
            min_remaining_secs: 60,
            ..settings()
        };
        assert_eq!(
            (strict.least_left_secs(), strict.shortest_lifetime_secs()),
            (70, 130)
        );
        let ask = |lifetime: u64| {
            claims_for(
                &caller,
                &s,
                &req(&format!(r#"{{"lifetimeSeconds":{lifetime}}}"#)),
                &strict,
                UnixTime(NOW),
                "j".into(),
            )
            .map(|c| c.exp - c.iat)
            .map_err(|e| (e.code(), e.to_string()))
        };
        for refused in [60, 100, 129] {
            let (code, message) = ask(refused).unwrap_err();
            assert_eq!(code, "bad_request", "{refused}");
            assert!(message.contains("between 130 and 3600"), "{message}");
        }
        assert_eq!(ask(130), Ok(130));
        let cache = ReuseCache::default();
        let at = |t: u64, lifetime: u64| {
            cache
                .find(&claims(t, lifetime, "new"), None, UnixTime(t), 70)
                .map(|r| r.jti)
        };
        // The issue's case: a 100 s token asked for again 48 s later has 52 s left,
        // less than the authorizer's 60: never handed out again.
        cache.keep(&claims(NOW, 100, "short"), "tok", "k1", UnixTime(NOW));
        assert_eq!(at(NOW + 48, 100), None);
        // 200 s asked: a new one is usable 130 s; the held one while it has 65 left.
        cache.keep(&claims(NOW, 200, "long"), "tok", "k1", UnixTime(NOW));
        assert_eq!(at(NOW + 65, 200).as_deref(), Some("long"));
        assert_eq!(at(NOW + 66, 200), None);
        // Whatever it is asked, a token handed out has more than 70 s left.
        for t in NOW..NOW + 200 {
            if cache
                .find(&claims(t, 200, "n"), None, UnixTime(t), 70)
                .is_some()
            {
                assert!(NOW + 200 - t > 70, "{t}");
            }
        }
    }

    #[test]
    fn back_off_grows_with_jitter_inside_the_budget() {
        let p = RetryPolicy {
            base: Duration::from_millis(50),
            cap: Duration::from_millis(800),
            budget: Duration::from_millis(1_000),
        };
        assert_eq!(p.delay(0, 1.0), Duration::from_millis(50));
        assert_eq!(p.delay(3, 1.0), Duration::from_millis(400));
        assert_eq!(p.delay(10, 1.0), Duration::from_millis(800));
        assert_eq!(p.delay(u32::MAX, 1.0), Duration::from_millis(800));
        assert_eq!(p.delay(3, 0.5), Duration::from_millis(200));
        assert_eq!(p.delay(3, 0.0), Duration::ZERO);
        assert_eq!(
            p.next_delay(4, Duration::from_millis(100), 1.0),
            Some(Duration::from_millis(800))
        );
        assert_eq!(p.next_delay(4, Duration::from_millis(201), 1.0), None);
    }
}
