//! Token mode: the client trades its own proof (an API key, or a SigV4 signature made
//! with its role) for a short-lived signed token at the token issuer and calls the API
//! with `Authorization: Bearer <token>`.
//!
//! * **Obtain**: `POST {issuer}/token` with the API key (`x-service-api-key`), or
//!   `POST {issuer}/token/iam` signed with SigV4: the issuer client is an ordinary
//!   [`ServiceClient`](crate::ServiceClient) in `api-key` or `iam` mode, with its timeout, retries and
//!   breaker. Issuing is safe to repeat, so its POST is retried like a GET.
//! * **Reuse and refresh** ([`Schedule`]): the authorizer refuses a token with less
//!   than its result-cache TTL left (`expires_within_cache_ttl`), so a token is
//!   *usable* until `expires - min_remaining - clock_skew`. A refresh is due a lead
//!   plus a random jitter before that, so a fleet does not refresh in the same second.
//!   While a due token is still usable, one caller refreshes and the others keep
//!   using it; if that refresh fails, the held token is kept and the next attempt waits
//!   [`TokenSettings::retry_after_failure`].
//! * **Single flight**: when no usable token is held, concurrent callers wait for one
//!   issuer call and share its result (a failure too: N waiting callers make one call).
//! * **A 401 from the API** drops the token it refused (only that one: a newer token
//!   obtained meanwhile is kept) and the call is retried once with a new token; a token
//!   younger than [`MIN_TOKEN_AGE_FOR_REFRESH`] is not replaced (a new one would be
//!   refused for the same reason), which bounds issuer calls under a persistent refusal.
//! * **Secrets**: the token lives in a `Zeroizing` string with a redacted `Debug`; it
//!   is never logged or put in an error. Its id (`tokenId`, the `jti`) is.

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::clock::Clock;
use crate::error::ClientError;
use crate::route::Route;

/// One call of the token issuer: `POST` the request body to the route (retried like an
/// idempotent call), answering the body. All the refresher needs of an HTTP client, so
/// it takes this instead of the client itself (`client.rs` makes one from a
/// `ServiceClient` for the issuer).
pub(crate) type IssuerCall = Box<
    dyn Fn(
            Route,
            Bytes,
        ) -> std::pin::Pin<
            Box<dyn std::future::Future<Output = Result<Bytes, ClientError>> + Send>,
        > + Send
        + Sync,
>;

/// The issuer's route for callers proving themselves with an API key.
pub const TOKEN_ROUTE: Route = Route::post("/token");
/// The issuer's route for callers proving themselves with SigV4 (`AWS_IAM`).
pub const TOKEN_IAM_ROUTE: Route = Route::post("/token/iam");
/// Longest token accepted from the issuer (the authorizer's own cap is 8 KiB).
pub const MAX_TOKEN_BYTES: usize = 8192;
/// A refused token younger than this is not replaced after a 401 (see the module doc).
pub const MIN_TOKEN_AGE_FOR_REFRESH: Duration = Duration::from_secs(10);

/// Narrowing asked of the issuer: the `POST /token` body. Everything is optional; the
/// issuer never widens what the caller's document grants.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TokenRequest {
    /// API names the token is for (a subset of the granted ones).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub audience: Option<Vec<String>>,
    /// Grants the token carries (a subset of the granted ones).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub permissions: Option<Vec<TokenGrant>>,
    /// Asked lifetime in seconds (the issuer's default 600, at most 3600).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lifetime_seconds: Option<u64>,
}

/// One grant of a token: routes on the named APIs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TokenGrant {
    pub apis: Vec<String>,
    pub routes: Vec<String>,
}

/// When tokens are refreshed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenSettings {
    /// The authorizer result-cache TTL of the called API (the authorizer's
    /// `SVCAUTH_TOKEN_MIN_REMAINING_SECS`): a token with less left is refused.
    pub min_remaining: Duration,
    /// Allowance for the difference between our clock and the authorizer's.
    pub clock_skew: Duration,
    /// A refresh is due this long before the token stops being usable...
    pub refresh_lead: Duration,
    /// ...plus a random extra of up to this, drawn per token.
    pub refresh_jitter: Duration,
    /// After a failed refresh while the held token is still usable, the next attempt
    /// waits this long.
    pub retry_after_failure: Duration,
}

impl Default for TokenSettings {
    fn default() -> Self {
        Self {
            min_remaining: Duration::from_secs(60),
            clock_skew: Duration::from_secs(10),
            refresh_lead: Duration::from_secs(60),
            refresh_jitter: Duration::from_secs(60),
            retry_after_failure: Duration::from_secs(5),
        }
    }
}

/// When a token obtained at `obtained` and expiring at `expires` stops being usable
/// and when its refresh is due. A plain decision, tested without a network.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Schedule {
    pub usable_until: SystemTime,
    pub refresh_at: SystemTime,
}

impl Schedule {
    /// `jitter` in `[0, 1)` picks the random extra lead. `None`: the token would be
    /// refused by the authorizer from the start (its lifetime is shorter than the
    /// cache TTL plus the skew allowance).
    pub fn new(
        settings: &TokenSettings,
        obtained: SystemTime,
        expires: SystemTime,
        jitter: f64,
    ) -> Option<Self> {
        let usable_until = expires
            .checked_sub(settings.min_remaining)?
            .checked_sub(settings.clock_skew)?;
        let usable_for = usable_until.duration_since(obtained).ok()?;
        if usable_for.is_zero() {
            return None;
        }
        let lead = settings.refresh_lead + settings.refresh_jitter.mul_f64(jitter.clamp(0.0, 1.0));
        // A short-lived token (lead longer than its usable time) is refreshed halfway.
        let refresh_at = if lead < usable_for {
            usable_until - lead
        } else {
            obtained + usable_for / 2
        };
        Some(Self {
            usable_until,
            refresh_at,
        })
    }
}

/// The issuer's answer.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct IssuedToken {
    token: String,
    #[serde(default)]
    token_type: Option<String>,
    expires_in: u64,
    #[serde(default)]
    expires_at: Option<serde_json::Value>,
    #[serde(default)]
    token_id: Option<String>,
}

/// A token held for reuse.
pub(crate) struct Held {
    token: Zeroizing<String>,
    /// The `jti`: what logs and errors name.
    pub(crate) id: Arc<str>,
    obtained: SystemTime,
    schedule: Schedule,
}

impl fmt::Debug for Held {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Held")
            .field("token", &"<redacted>")
            .field("id", &self.id)
            .field("schedule", &self.schedule)
            .finish()
    }
}

impl Held {
    pub(crate) fn expose_secret(&self) -> &str {
        &self.token
    }
}

/// Why no token could be had; shared by the callers that waited for the same call.
#[derive(Debug, Clone)]
struct FetchFailure {
    reason: String,
    status: Option<u16>,
    code: Option<String>,
    retry_after: Option<Duration>,
    unavailable: bool,
}

impl FetchFailure {
    fn into_error(self, service: &str) -> ClientError {
        ClientError::Token {
            service: service.to_owned(),
            reason: self.reason,
            status: self.status,
            code: self.code,
            retry_after: self.retry_after,
            unavailable: self.unavailable,
        }
    }
}

#[derive(Default)]
struct State {
    held: Option<Arc<Held>>,
    /// No refresh of a still-usable token before this (after a failed one).
    quiet_until: Option<SystemTime>,
    /// Bumped at the end of every issuer call.
    generation: u64,
    last_failure: Option<(u64, FetchFailure)>,
}

pub(crate) struct TokenAuth {
    issuer: IssuerCall,
    route: Route,
    body: Bytes,
    settings: TokenSettings,
    clock: Clock,
    state: Mutex<State>,
    flight: tokio::sync::Mutex<()>,
}

impl TokenAuth {
    pub(crate) fn new(
        issuer: IssuerCall,
        iam: bool,
        request: &TokenRequest,
        settings: TokenSettings,
        clock: Option<Clock>,
    ) -> Result<Self, ClientError> {
        let body = serde_json::to_vec(request)
            .map_err(|e| ClientError::Config(format!("the token request: {e}")))?;
        Ok(Self {
            issuer,
            route: if iam { TOKEN_IAM_ROUTE } else { TOKEN_ROUTE },
            body: Bytes::from(body),
            settings,
            clock: clock.unwrap_or_else(|| Arc::new(SystemTime::now)),
            state: Mutex::new(State::default()),
            flight: tokio::sync::Mutex::new(()),
        })
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A token to send now. `service` names the called service in errors.
    pub(crate) async fn token(&self, service: &str) -> Result<Arc<Held>, ClientError> {
        let now = (self.clock)();
        let (held, quiet) = {
            let s = self.state();
            (s.held.clone(), s.quiet_until.is_some_and(|q| now < q))
        };
        if let Some(h) = held.filter(|h| now < h.schedule.usable_until) {
            if now < h.schedule.refresh_at || quiet {
                return Ok(h);
            }
            // Due but usable: one caller refreshes, the others keep the held token.
            let Ok(_flight) = self.flight.try_lock() else {
                return Ok(h);
            };
            if let Some(newer) = self.current_if_fresh(now, &h) {
                return Ok(newer);
            }
            return match self.fetch(now).await {
                Ok(new) => Ok(new),
                Err(f) => {
                    tracing::warn!(service, token_id = %h.id, status = ?f.status,
                        "token refresh failed; the held token is used until it must be replaced: {}",
                        f.reason);
                    self.state().quiet_until = Some(now + self.settings.retry_after_failure);
                    Ok(h)
                }
            };
        }
        // Nothing usable: wait for the one issuer call.
        let waited_from = self.state().generation;
        let _flight = self.flight.lock().await;
        let now = (self.clock)();
        {
            let s = self.state();
            if let Some(h) = s.held.as_ref().filter(|h| now < h.schedule.usable_until) {
                return Ok(h.clone());
            }
            // A call made while we waited failed: share its answer, do not call again.
            if let Some((g, f)) = &s.last_failure {
                if *g > waited_from {
                    return Err(f.clone().into_error(service));
                }
            }
        }
        self.fetch(now).await.map_err(|f| f.into_error(service))
    }

    /// The held token if it is newer than `seen` and not due (someone refreshed).
    fn current_if_fresh(&self, now: SystemTime, seen: &Held) -> Option<Arc<Held>> {
        let s = self.state();
        s.held
            .as_ref()
            .filter(|h| h.id != seen.id && now < h.schedule.refresh_at)
            .cloned()
    }

    /// One issuer call; the caller holds the flight lock.
    async fn fetch(&self, now: SystemTime) -> Result<Arc<Held>, FetchFailure> {
        let result = self.call_issuer(now).await;
        let mut s = self.state();
        s.generation += 1;
        match result {
            Ok(h) => {
                tracing::info!(token_id = %h.id, expires_in_secs = h.schedule.usable_until
                    .duration_since(now).map(|d| d.as_secs()).unwrap_or(0)
                    + (self.settings.min_remaining + self.settings.clock_skew).as_secs(),
                    "service token obtained");
                let h = Arc::new(h);
                s.held = Some(h.clone());
                s.quiet_until = None;
                s.last_failure = None;
                Ok(h)
            }
            Err(f) => {
                s.last_failure = Some((s.generation, f.clone()));
                Err(f)
            }
        }
    }

    async fn call_issuer(&self, now: SystemTime) -> Result<Held, FetchFailure> {
        let plain = |reason: String| FetchFailure {
            reason,
            status: None,
            code: None,
            retry_after: None,
            unavailable: false,
        };
        let bytes = (self.issuer)(self.route.clone(), self.body.clone())
            .await
            .map_err(|e| FetchFailure {
                unavailable: e.is_unavailable(),
                status: e.status(),
                code: match &e {
                    ClientError::Status { code, .. } => code.clone(),
                    _ => None,
                },
                retry_after: e.retry_after(),
                reason: e.to_string(),
            })?;
        // serde's message could quote a value: only its category and position are kept.
        let issued: IssuedToken = serde_json::from_slice(&bytes).map_err(|e| {
            plain(format!(
                "the token issuer's answer is not {{token, expiresIn, ...}} ({:?} error at column {})",
                e.classify(),
                e.column()
            ))
        })?;
        if let Some(t) = issued.token_type.as_deref() {
            if !t.eq_ignore_ascii_case("bearer") {
                return Err(plain(format!(
                    "the token issuer answered tokenType {:?}, not Bearer",
                    t.chars().take(16).collect::<String>()
                )));
            }
        }
        let token = Zeroizing::new(issued.token);
        if token.is_empty()
            || token.len() > MAX_TOKEN_BYTES
            || !token
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        {
            return Err(plain(
                "the token issuer's token is empty, too long or not a compact JWS".into(),
            ));
        }
        let id: Arc<str> = issued
            .token_id
            .filter(|i| {
                !i.is_empty()
                    && i.len() <= 64
                    && i.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            })
            .unwrap_or_else(|| "unknown".into())
            .into();
        // The earlier of the two expiries the issuer states: `expiresIn` from our clock,
        // and `expiresAt` (seconds or RFC 3339) from its own.
        let mut expires = now + Duration::from_secs(issued.expires_in);
        let at = match &issued.expires_at {
            Some(serde_json::Value::Number(n)) => n.as_u64(),
            Some(serde_json::Value::String(s)) => {
                service_auth::UnixTime::parse_rfc3339(s).map(|t| t.0)
            }
            _ => None,
        };
        if let Some(at) = at.map(|s| UNIX_EPOCH + Duration::from_secs(s)) {
            expires = expires.min(at);
        }
        let schedule = Schedule::new(&self.settings, now, expires, fastrand::f64()).ok_or_else(|| {
            plain(format!(
                "token {id} lives {} s, not more than the called API's authorizer cache TTL ({} s) plus {} s: ask for a longer lifetimeSeconds or lower SERVICE_TOKEN_MIN_REMAINING_SECS to the API's AuthorizerResultTtl",
                expires.duration_since(now).map(|d| d.as_secs()).unwrap_or(0),
                self.settings.min_remaining.as_secs(),
                self.settings.clock_skew.as_secs(),
            ))
        })?;
        Ok(Held {
            token,
            id,
            obtained: now,
            schedule,
        })
    }

    /// The API answered 401 to the token `refused`. Returns whether one retry is worth
    /// it: a newer token is already held, or the refused one was dropped for a new one.
    pub(crate) fn rejected(&self, refused: &Held) -> bool {
        let now = (self.clock)();
        let mut s = self.state();
        match s.held.as_ref() {
            Some(h) if h.id != refused.id || h.obtained != refused.obtained => true,
            Some(h) => {
                let age = now.duration_since(h.obtained).unwrap_or_default();
                if age < MIN_TOKEN_AGE_FOR_REFRESH {
                    tracing::warn!(token_id = %h.id, age_secs = age.as_secs(),
                        "a token obtained moments ago was refused; not replacing it (a new one would be refused too)");
                    return false;
                }
                tracing::warn!(token_id = %h.id, "service token refused; a new one will be obtained");
                s.held = None;
                s.quiet_until = None;
                true
            }
            None => true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(s)
    }

    #[test]
    fn a_token_is_refreshed_before_the_authorizer_would_refuse_it() {
        let s = TokenSettings::default();
        // 600 s token, TTL 60 + skew 10: usable until 530; due at 470 minus 0..60 s.
        let early = Schedule::new(&s, at(0), at(600), 0.0).unwrap();
        assert_eq!(early.usable_until, at(530));
        assert_eq!(early.refresh_at, at(470));
        let late = Schedule::new(&s, at(0), at(600), 0.999_999).unwrap();
        assert_eq!(
            late.refresh_at.duration_since(at(0)).unwrap().as_secs(),
            410
        );
        // Never presented past usable_until: the authorizer's expires_within_cache_ttl.
        for j in [0.0, 0.5, 0.9] {
            let sch = Schedule::new(&s, at(0), at(600), j).unwrap();
            assert!(sch.refresh_at < sch.usable_until);
            assert!(
                at(600).duration_since(sch.usable_until).unwrap() >= s.min_remaining + s.clock_skew
            );
        }
    }

    #[test]
    fn short_tokens_are_refreshed_halfway_and_too_short_ones_refused() {
        let s = TokenSettings::default();
        let sch = Schedule::new(&s, at(0), at(130), 0.5).unwrap();
        assert_eq!(sch.usable_until, at(60));
        assert_eq!(sch.refresh_at, at(30));
        assert_eq!(Schedule::new(&s, at(0), at(70), 0.0), None);
        assert_eq!(Schedule::new(&s, at(100), at(50), 0.0), None);
        assert_eq!(Schedule::new(&s, at(0), at(5), 0.0), None);
    }

    #[test]
    fn the_request_body_names_only_what_is_asked() {
        let r = TokenRequest::default();
        assert_eq!(serde_json::to_string(&r).unwrap(), "{}");
        let r = TokenRequest {
            audience: Some(vec!["identity".into()]),
            permissions: Some(vec![TokenGrant {
                apis: vec!["identity".into()],
                routes: vec!["GET /internal/users/*".into()],
            }]),
            lifetime_seconds: Some(300),
        };
        assert_eq!(
            serde_json::to_string(&r).unwrap(),
            r#"{"audience":["identity"],"permissions":[{"apis":["identity"],"routes":["GET /internal/users/*"]}],"lifetimeSeconds":300}"#
        );
    }

    #[test]
    fn a_held_token_debug_is_redacted() {
        let h = Held {
            token: Zeroizing::new("eyJhbGciOiJFUzI1NiJ9.secret-payload.sig".into()),
            id: "jti-1".into(),
            obtained: at(0),
            schedule: Schedule::new(&TokenSettings::default(), at(0), at(600), 0.0).unwrap(),
        };
        let shown = format!("{h:?}");
        assert!(!shown.contains("secret-payload"), "{shown}");
        assert!(shown.contains("jti-1"), "{shown}");
    }
}
