//! One invocation: event → decision → response, and one audit line.
//!
//! [`Authorizer`] is the whole authorizer: the key store, which credentials it accepts
//! (`SVCAUTH_ACCEPT`) and, when it accepts tokens, the token verifier.
//! [`Authorizer::handle`] is its one entry: it takes the event read once ([`Event`]:
//! the Lambda payload, or built from JSON text or a `Value`), parses the method ARN
//! once and hands the parsed key or token and ARN to the path that decides. [`handle`]
//! is the same entry for an API-key authorizer over a borrowed store (the key tests,
//! the key tool's tests).

use lambda_runtime::Diagnostic;
use service_auth::context::{AUTHENTICATED_BY_API_KEY, AUTHENTICATED_BY_TOKEN};
use service_auth::decision::presented_key;
use service_auth::method_arn::MethodArnError;
use service_auth::refusal::Reason;
use service_auth::{decide_key, Decision, MethodArn, UnauthorizedReason};

use crate::config::Accept;
use crate::event::{Authorization, Event, RequestView, MAX_KEY_VALUES};
use crate::response::Response;
use crate::source::CachedStore;
use crate::token::{bearer, Refusal, SsmStandings, TokenAuth, TokenGrant};

/// EMF metric (no dimension) counting every 401, whatever its reason, key or token:
/// each is a function error for Lambda (the handler returns `Unauthorized`), so an
/// alarm on the authorizer's errors subtracts this one sum instead of one metric per
/// reason (a metric-math alarm reads at most 10 metrics; there are over 30 reasons).
pub const REFUSALS_METRIC: &str = "Refusals";

/// The only error the handler returns: API Gateway answers 401 when the message is
/// exactly `Unauthorized`. Carries nothing else, on purpose.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("Unauthorized")]
pub struct Unauthorized;

impl From<Unauthorized> for Diagnostic {
    fn from(_: Unauthorized) -> Self {
        Diagnostic {
            error_type: "Unauthorized".into(),
            error_message: "Unauthorized".into(),
        }
    }
}

/// [`Authorizer::handle`] for an authorizer that accepts API keys only, over a
/// borrowed store.
pub async fn handle(
    store: &CachedStore,
    event: impl Into<Event>,
) -> Result<Response, Unauthorized> {
    Parts {
        store,
        accept: Accept::ApiKey,
        tokens: None,
        standings: None,
    }
    .run(event.into())
    .await
}

/// The authorizer: its store, what it accepts and its token verifier.
pub struct Authorizer {
    pub store: CachedStore,
    accept: Accept,
    tokens: Option<TokenAuth>,
    /// Where a token's standing is read: per service from SSM when set, else from
    /// the store.
    standings: Option<SsmStandings>,
}

impl Authorizer {
    /// An authorizer that accepts API keys only.
    pub fn keys_only(store: CachedStore) -> Self {
        Self::new(store, Accept::ApiKey, None)
    }

    /// An authorizer that accepts what `accept` says, verifying tokens with `tokens`
    /// (without it, every token is refused as `token_verifier_unconfigured`).
    pub fn new(store: CachedStore, accept: Accept, tokens: Option<TokenAuth>) -> Self {
        Self {
            store,
            accept,
            tokens,
            standings: None,
        }
    }

    /// Reads a token's standing per service from SSM instead of from the store.
    pub fn with_standings(mut self, standings: SsmStandings) -> Self {
        self.standings = Some(standings);
        self
    }

    pub fn accept(&self) -> Accept {
        self.accept
    }

    pub fn tokens(&self) -> Option<&TokenAuth> {
        self.tokens.as_ref()
    }

    /// What start-up loads: for keys what [`CachedStore::init`] loads (a token-only
    /// authorizer reads nothing from the key store: a service's standing is read on its
    /// first token), and the key set when tokens are accepted. A failure is logged and
    /// retried on use.
    pub async fn init(&self) {
        if self.accept.keys() {
            self.store.init().await;
        }
        if let Some(t) = &self.tokens {
            t.prefetch(self.store.now()).await;
        }
    }

    /// Decides one event (the Lambda payload, JSON text or a `Value`), answers and
    /// audits it: the response of an allowed caller, else `Unauthorized`.
    pub async fn handle(&self, event: impl Into<Event>) -> Result<Response, Unauthorized> {
        Parts {
            store: &self.store,
            accept: self.accept,
            tokens: self.tokens.as_ref(),
            standings: self.standings.as_ref(),
        }
        .run(event.into())
        .await
    }
}

/// What one decision reads: the authorizer's parts, borrowed.
struct Parts<'a> {
    store: &'a CachedStore,
    accept: Accept,
    tokens: Option<&'a TokenAuth>,
    standings: Option<&'a SsmStandings>,
}

/// Which path decides a request.
enum Path {
    Key,
    Token,
    Refuse(Reason),
}

/// The path for a request: with both credentials accepted, exactly one must be
/// presented (both: `ambiguous_credentials`, neither: `missing_credentials`); a
/// token-only authorizer refuses a request that also carries a key the same way.
fn path(accept: Accept, view: &RequestView) -> Path {
    let key = view
        .api_key_values
        .iter()
        .any(|v| !v.trim_matches(|c| c == ' ' || c == '\t').is_empty());
    let authorization = !matches!(view.authorization, Authorization::Absent);
    match accept {
        Accept::ApiKey => Path::Key,
        _ if key && authorization => Path::Refuse(Reason::AmbiguousCredentials),
        // A key alone is no credential here: refused as `missing_token`.
        Accept::Token => Path::Token,
        Accept::Either if key => Path::Key,
        Accept::Either if authorization => Path::Token,
        Accept::Either => Path::Refuse(Reason::MissingCredentials),
    }
}

impl Parts<'_> {
    /// The one place that decides, answers and audits.
    async fn run(&self, event: Event) -> Result<Response, Unauthorized> {
        let mut view = match event.0 {
            Ok(v) => v,
            Err(e) => {
                // Only the kind: serde's messages can quote a header value, a key included.
                tracing::warn!(
                    event = "malformed_event",
                    error_kind = e.kind(),
                    "refusing an event that is not a REST REQUEST authorizer event: {e}"
                );
                let decision = Decision::Unauthorized {
                    reason: UnauthorizedReason::MalformedEvent,
                    key_id: None,
                    service: None,
                };
                audit(&RequestView::default(), &decision);
                return Err(Unauthorized);
            }
        };
        // The method ARN is parsed here, once, for whichever path decides (each
        // refuses a malformed one at its own step); the audit line does not need it.
        let arn = MethodArn::parse_owned(view.method_arn.take().unwrap_or_default());
        match path(self.accept, &view) {
            Path::Key => self.decide_key(&view, arn).await,
            Path::Token => self.decide_token(&view, arn).await,
            Path::Refuse(reason) => {
                audit_token(&view, Err(&Refusal::reason(reason)));
                Err(Unauthorized)
            }
        }
    }

    /// The API-key path: the key is parsed once (a missing, repeated or malformed one
    /// is refused before anything is loaded, so it costs no SSM call however many
    /// arrive), then the method ARN is checked, then the store is read.
    async fn decide_key(
        &self,
        view: &RequestView,
        arn: Result<MethodArn, MethodArnError>,
    ) -> Result<Response, Unauthorized> {
        let refuse = |decision: Decision| {
            audit(view, &decision);
            Err(Unauthorized)
        };
        // The values as `&str`, on the stack: the reader refuses more than MAX_KEY_VALUES.
        let mut slots = [""; MAX_KEY_VALUES];
        let spilled: Vec<&str>;
        let values: &[&str] = if view.api_key_values.len() <= MAX_KEY_VALUES {
            for (slot, v) in slots.iter_mut().zip(&view.api_key_values) {
                *slot = v.as_str();
            }
            &slots[..view.api_key_values.len()]
        } else {
            spilled = view.api_key_values.iter().map(String::as_str).collect();
            &spilled
        };
        let key = match presented_key(values) {
            Ok(key) => key,
            Err(reason) => {
                return refuse(Decision::Unauthorized {
                    reason,
                    key_id: None,
                    service: None,
                })
            }
        };
        let arn = match arn {
            Ok(arn) => arn,
            Err(e) => {
                let reason = UnauthorizedReason::MalformedMethodArn(e);
                return refuse(Decision::refused(reason, &key, None));
            }
        };
        let store = self.store;
        let current = store.current_for(&key, &arn).await;
        let api_name = store.api_name(&arn).await;
        let decision = decide_key(
            current.as_deref(),
            &key,
            arn,
            api_name.as_deref(),
            store.now(),
        );
        audit(view, &decision);
        match decision {
            Decision::Allow(grant) => Ok(Response::key(grant)),
            Decision::Unauthorized { .. } => Err(Unauthorized),
        }
    }

    /// The token path: `Authorization: Bearer`, then [`TokenAuth::decide`].
    async fn decide_token(
        &self,
        view: &RequestView,
        arn: Result<MethodArn, MethodArnError>,
    ) -> Result<Response, Unauthorized> {
        let refuse = |reason: Reason| {
            audit_token(view, Err(&Refusal::reason(reason)));
            Err(Unauthorized)
        };
        let token = match bearer(&view.authorization) {
            Ok(t) => t,
            Err(e) => return refuse(e.reason()),
        };
        let Some(tokens) = self.tokens else {
            return refuse(Reason::TokenVerifierUnconfigured);
        };
        let Ok(arn) = arn else {
            return refuse(Reason::MalformedMethodArn);
        };
        let store = self.store;
        let api = store.api_name(&arn).await;
        let api = api.as_deref();
        let now = store.now();
        let decided = match self.standings {
            Some(s) => tokens.decide(token, api, &arn, s, now).await,
            None => tokens.decide(token, api, &arn, store, now).await,
        };
        match decided {
            Ok(grant) => {
                audit_token(view, Ok(&grant));
                Ok(Response::token(grant))
            }
            Err(refusal) => {
                audit_token(view, Err(&refusal));
                Err(Unauthorized)
            }
        }
    }
}

/// The one audit line per key decision, and its metrics. Never the key: only its id.
fn audit(view: &RequestView, decision: &Decision) {
    let line = match decision {
        Decision::Allow(g) => AuditLine {
            outcome: if g.route_permitted {
                Outcome::Allow
            } else {
                Outcome::Deny("route_not_permitted")
            },
            authenticated_by: AUTHENTICATED_BY_API_KEY,
            service: Some(g.service.service.as_str()),
            key_id: Some(g.key_id.as_str()),
            token: None,
            legacy_key: Some(g.legacy),
        },
        Decision::Unauthorized {
            reason,
            key_id,
            service,
        } => AuditLine {
            outcome: Outcome::Refused(reason.reason()),
            authenticated_by: AUTHENTICATED_BY_API_KEY,
            service: service.as_deref(),
            key_id: key_id.as_ref().map(|k| k.as_str()),
            token: None,
            legacy_key: Some(false),
        },
    };
    record_decision(view, &line);
}

/// The audit line and metrics of a token decision (or of a request refused before a
/// path was chosen). Never the token: its id (`jti`) once it verified.
fn audit_token(view: &RequestView, result: Result<&TokenGrant, &Refusal>) {
    let line = match result {
        Ok(g) => AuditLine {
            outcome: match (g.route_permitted, g.api_registered) {
                (true, _) => Outcome::Allow,
                (false, true) => Outcome::Deny("route_not_permitted"),
                (false, false) => Outcome::Deny("api_not_registered"),
            },
            authenticated_by: AUTHENTICATED_BY_TOKEN,
            service: Some(g.claims.sub.as_str()),
            key_id: match &g.claims.proof {
                service_token::Proof::ApiKey { key_id } => Some(key_id.as_str()),
                service_token::Proof::Iam { .. } => None,
            },
            token: Some((g.claims.jti.as_str(), g.kid.as_str())),
            legacy_key: None,
        },
        Err(r) => AuditLine {
            outcome: Outcome::Refused(r.reason),
            authenticated_by: AUTHENTICATED_BY_TOKEN,
            service: r.service.as_deref(),
            key_id: None,
            token: Some((r.token_id.as_deref().unwrap_or(""), "")),
            legacy_key: None,
        },
    };
    record_decision(view, &line);
}

/// A decision's outcome: its `decision` and `reason` in logs and metrics.
#[derive(Clone, Copy)]
enum Outcome {
    /// Allowed, and the policy covers the route called (`permitted`).
    Allow,
    /// Allowed, but the policy does not cover the route called (API Gateway answers
    /// 403): why. Not a refusal.
    Deny(&'static str),
    /// Refused (401): every refusal is logged and counted by its [`Reason`].
    Refused(Reason),
}

impl Outcome {
    fn decision(self) -> &'static str {
        match self {
            Self::Allow => "allow",
            Self::Deny(_) => "deny",
            Self::Refused(_) => "unauthorized",
        }
    }

    fn reason(self) -> &'static str {
        match self {
            Self::Allow => "permitted",
            Self::Deny(why) => why,
            Self::Refused(reason) => reason.code(),
        }
    }
}

/// What one decision's audit line says besides the request, key and token paths alike.
/// A field one path does not have (`None`) is left out of its line.
struct AuditLine<'a> {
    outcome: Outcome,
    authenticated_by: &'static str,
    service: Option<&'a str>,
    key_id: Option<&'a str>,
    /// Token decisions only: the token's id and its signing key's id (`""` when the
    /// token did not verify).
    token: Option<(&'a str, &'a str)>,
    /// Key decisions only: whether the key came from the legacy map.
    legacy_key: Option<bool>,
}

/// Writes one decision's audit line and counts it (`Decisions`; a refusal also in
/// `Unauthorized` by reason and in [`REFUSALS_METRIC`]).
fn record_decision(view: &RequestView, line: &AuditLine<'_>) {
    let (token_id, signing_kid) = line.token.unzip();
    tracing::info!(
        event = "authorizer_decision",
        decision = line.outcome.decision(),
        reason = line.outcome.reason(),
        authenticated_by = line.authenticated_by,
        service_id = line.service.unwrap_or(""),
        token_id,
        key_id = line.key_id.unwrap_or(""),
        signing_kid,
        legacy_key = line.legacy_key,
        http_method = view.http_method.as_deref().unwrap_or(""),
        resource_path = view.resource.as_deref().unwrap_or(""),
        source_ip = view.source_ip.as_deref().unwrap_or(""),
        request_id = view.request_id.as_deref().unwrap_or(""),
        correlation_id = view.correlation_id.as_str(),
        "authorizer decision"
    );
    let service_dim = line.service.unwrap_or("unknown").to_owned();
    metrics::counter!("Decisions", "Outcome" => line.outcome.decision(), "Service" => service_dim)
        .increment(1);
    if let Outcome::Refused(reason) = line.outcome {
        metrics::counter!("Unauthorized", "Reason" => reason.code()).increment(1);
        metrics::counter!(REFUSALS_METRIC).increment(1);
    }
}
