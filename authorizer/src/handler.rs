//! One invocation: event → request view → decision → response, and one audit line.
//!
//! [`Authorizer`] is the whole authorizer: the key store, which credentials it accepts
//! (`SVCAUTH_ACCEPT`) and, when it accepts tokens, the token verifier. The free
//! functions [`handle`], [`handle_json`] and [`handle_view`] are the API-key-only
//! authorizer over a store (the local gateway and the key tests).

use aws_lambda_events::apigw::{
    ApiGatewayCustomAuthorizerPolicy, ApiGatewayCustomAuthorizerResponse,
};
use aws_lambda_events::iam::{IamPolicyEffect, IamPolicyStatement};
use lambda_runtime::Diagnostic;
use serde_json::{Map, Value};
use service_auth::policy::{Effect, Policy, INVOKE_ACTION, POLICY_VERSION};
use service_auth::{context, decide, AuthRequest, Decision, Grant, UnauthorizedReason};

use service_auth::MethodArn;

use crate::config::Accept;
use crate::event::{Authorization, EventError, RequestView, MAX_KEY_VALUES};
use crate::source::CachedStore;
use crate::token::{bearer, Refusal, SsmStandings, TokenAuth, TokenGrant, AUTHENTICATED_BY_TOKEN};

/// EMF metric (no dimension) counting every 401, whatever its reason, key or token:
/// each is a function error for Lambda (the handler returns `Unauthorized`), so an
/// alarm on the authorizer's errors subtracts this one sum instead of one metric per
/// reason (a metric-math alarm reads at most 10 metrics; there are over 30 reasons).
pub const REFUSALS_METRIC: &str = "Refusals";

/// The response API Gateway reads.
pub type AuthorizerResponse = ApiGatewayCustomAuthorizerResponse<Value>;

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

/// Handles one REQUEST authorizer event given as a `serde_json::Value` (the local
/// gateway, tests).
pub async fn handle(
    store: &CachedStore,
    event: &Value,
) -> Result<AuthorizerResponse, Unauthorized> {
    handle_view(store, RequestView::from_event(event)).await
}

/// Handles one REQUEST authorizer event given as its JSON text, read once.
pub async fn handle_json(
    store: &CachedStore,
    json: &[u8],
) -> Result<AuthorizerResponse, Unauthorized> {
    handle_view(store, RequestView::from_slice(json)).await
}

/// Handles one event already read into a [`RequestView`] (or refused while reading:
/// see [`crate::event::Payload`]), accepting API keys only.
pub async fn handle_view(
    store: &CachedStore,
    view: Result<RequestView<'_>, EventError>,
) -> Result<AuthorizerResponse, Unauthorized> {
    run(store, Accept::ApiKey, None, None, view).await
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
        Self {
            store,
            accept: Accept::ApiKey,
            tokens: None,
            standings: None,
        }
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

    pub async fn handle_view(
        &self,
        view: Result<RequestView<'_>, EventError>,
    ) -> Result<AuthorizerResponse, Unauthorized> {
        run(
            &self.store,
            self.accept,
            self.tokens.as_ref(),
            self.standings.as_ref(),
            view,
        )
        .await
    }

    pub async fn handle_json(&self, json: &[u8]) -> Result<AuthorizerResponse, Unauthorized> {
        self.handle_view(RequestView::from_slice(json)).await
    }

    pub async fn handle(&self, event: &Value) -> Result<AuthorizerResponse, Unauthorized> {
        self.handle_view(RequestView::from_event(event)).await
    }
}

/// Which path decides a request.
enum Path {
    Key,
    Token,
    Refuse(&'static str),
}

/// The path for a request: with both credentials accepted, exactly one must be
/// presented (both: `ambiguous_credentials`, neither: `missing_credentials`); a
/// token-only authorizer refuses a request that also carries a key the same way.
fn path(accept: Accept, view: &RequestView<'_>) -> Path {
    let key = view
        .api_key_values
        .iter()
        .any(|v| !v.trim_matches(|c| c == ' ' || c == '\t').is_empty());
    let authorization = !matches!(view.authorization, Authorization::Absent);
    match accept {
        Accept::ApiKey => Path::Key,
        _ if key && authorization => Path::Refuse("ambiguous_credentials"),
        // A key alone is no credential here: refused as `missing_token`.
        Accept::Token => Path::Token,
        Accept::Either if key => Path::Key,
        Accept::Either if authorization => Path::Token,
        Accept::Either => Path::Refuse("missing_credentials"),
    }
}

/// The one place that decides, answers and audits.
async fn run(
    store: &CachedStore,
    accept: Accept,
    tokens: Option<&TokenAuth>,
    standings: Option<&SsmStandings>,
    view: Result<RequestView<'_>, EventError>,
) -> Result<AuthorizerResponse, Unauthorized> {
    let view = match view {
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
    match path(accept, &view) {
        Path::Key => decide_key(store, &view).await,
        Path::Token => decide_token(store, tokens, standings, &view).await,
        Path::Refuse(reason) => {
            audit_token(&view, Err(&Refusal::reason(reason)));
            Err(Unauthorized)
        }
    }
}

/// The token path: `Authorization: Bearer`, then [`TokenAuth::decide`].
async fn decide_token(
    store: &CachedStore,
    tokens: Option<&TokenAuth>,
    standings: Option<&SsmStandings>,
    view: &RequestView<'_>,
) -> Result<AuthorizerResponse, Unauthorized> {
    let refuse = |reason: &'static str| {
        audit_token(view, Err(&Refusal::reason(reason)));
        Err(Unauthorized)
    };
    let token = match bearer(&view.authorization) {
        Ok(t) => t,
        Err(e) => return refuse(e.code()),
    };
    let Some(tokens) = tokens else {
        return refuse("token_verifier_unconfigured");
    };
    let Ok(arn) = MethodArn::parse(view.method_arn.as_deref().unwrap_or_default()) else {
        return refuse("malformed_method_arn");
    };
    let api = store.api_name(view.method_arn.as_deref()).await;
    let api = api.as_deref();
    let now = store.now();
    let decided = match standings {
        Some(s) => tokens.decide(token, api, &arn, s, now).await,
        None => tokens.decide(token, api, &arn, store, now).await,
    };
    match decided {
        Ok(grant) => {
            audit_token(view, Ok(&grant));
            Ok(token_response(&grant))
        }
        Err(refusal) => {
            audit_token(view, Err(&refusal));
            Err(Unauthorized)
        }
    }
}

/// The policy, principal and context for a token caller.
fn token_response(grant: &TokenGrant) -> AuthorizerResponse {
    let mut policy = ApiGatewayCustomAuthorizerPolicy::default();
    policy.version = Some(POLICY_VERSION.to_owned());
    policy.statement = iam_statements(grant.policy.clone());
    let mut resp = AuthorizerResponse::default();
    resp.principal_id = Some(grant.claims.sub.clone());
    resp.policy_document = policy;
    resp.context = Value::Object(grant.context());
    resp.usage_identifier_key = grant.usage_plan_key.clone();
    resp
}

/// The API-key path.
async fn decide_key(
    store: &CachedStore,
    view: &RequestView<'_>,
) -> Result<AuthorizerResponse, Unauthorized> {
    // The values as `&str`, on the stack: the reader refuses more than MAX_KEY_VALUES.
    let mut slots = [""; MAX_KEY_VALUES];
    let spilled: Vec<&str>;
    let values: &[&str] = if view.api_key_values.len() <= MAX_KEY_VALUES {
        for (slot, v) in slots.iter_mut().zip(&view.api_key_values) {
            *slot = v.as_ref();
        }
        &slots[..view.api_key_values.len()]
    } else {
        spilled = view.api_key_values.iter().map(|v| v.as_ref()).collect();
        &spilled
    };
    let current = match refuse_malformed(values) {
        Ok(key) => store.current_for(&key, view.method_arn.as_deref()).await,
        Err(reason) => {
            let refused = Decision::Unauthorized {
                reason,
                key_id: None,
                service: None,
            };
            audit(view, &refused);
            return Err(Unauthorized);
        }
    };
    let api_name = store.api_name(view.method_arn.as_deref()).await;
    let decision = decide(
        current.as_deref(),
        &AuthRequest {
            api_key_values: values,
            method_arn: view.method_arn.as_deref(),
            api_name: api_name.as_deref(),
        },
        store.now(),
    );
    audit(view, &decision);
    match decision {
        Decision::Allow(grant) => Ok(response(&grant)),
        Decision::Unauthorized { .. } => Err(Unauthorized),
    }
}

/// Refuses a missing, repeated or malformed key (format, length, checksum) before
/// anything is loaded: such a request costs no SSM call, however many arrive.
fn refuse_malformed(values: &[&str]) -> Result<service_auth::ApiKey, UnauthorizedReason> {
    service_auth::decision::presented_key(values)
}

/// The policy, principal and context for an allowed caller.
pub fn response(grant: &Grant) -> AuthorizerResponse {
    let mut policy = ApiGatewayCustomAuthorizerPolicy::default();
    policy.version = Some(POLICY_VERSION.to_owned());
    policy.statement = iam_statements(grant.policy());
    let context: Map<String, Value> = context::for_grant(grant)
        .into_iter()
        .map(|(k, v)| (k.to_owned(), Value::String(v)))
        .collect();
    let mut resp = AuthorizerResponse::default();
    resp.principal_id = Some(grant.service.service.clone());
    resp.policy_document = policy;
    resp.context = Value::Object(context);
    resp.usage_identifier_key = grant.service.usage_plan_key.clone();
    resp
}

/// Our policy as `aws_lambda_events` statements, moving its resource strings. The
/// effect is always set from ours: `IamPolicyEffect::default()` is Allow, so no
/// statement is ever built from Default.
fn iam_statements(policy: Policy) -> Vec<IamPolicyStatement> {
    policy
        .statements
        .into_iter()
        .map(|s| {
            let mut st = IamPolicyStatement::default();
            st.effect = match s.effect {
                Effect::Allow => IamPolicyEffect::Allow,
                Effect::Deny => IamPolicyEffect::Deny,
            };
            st.action = vec![INVOKE_ACTION.to_owned()];
            st.resource = s.resources;
            st
        })
        .collect()
}

/// The one audit line per key decision, and its metrics. Never the key: only its id.
fn audit(view: &RequestView<'_>, decision: &Decision) {
    let line = match decision {
        Decision::Allow(g) => AuditLine {
            outcome: if g.route_permitted { "allow" } else { "deny" },
            reason: if g.route_permitted {
                "permitted"
            } else {
                "route_not_permitted"
            },
            authenticated_by: service_auth::context::AUTHENTICATED_BY_API_KEY,
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
            outcome: UNAUTHORIZED_OUTCOME,
            reason: reason.code(),
            authenticated_by: service_auth::context::AUTHENTICATED_BY_API_KEY,
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
fn audit_token(view: &RequestView<'_>, result: Result<&TokenGrant, &Refusal>) {
    let line = match result {
        Ok(g) => AuditLine {
            outcome: if g.route_permitted { "allow" } else { "deny" },
            reason: match (g.route_permitted, g.api_registered) {
                (true, _) => "permitted",
                (false, true) => "route_not_permitted",
                (false, false) => "api_not_registered",
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
            outcome: UNAUTHORIZED_OUTCOME,
            reason: r.reason,
            authenticated_by: AUTHENTICATED_BY_TOKEN,
            service: r.service.as_deref(),
            key_id: None,
            token: Some((r.token_id.as_deref().unwrap_or(""), "")),
            legacy_key: None,
        },
    };
    record_decision(view, &line);
}

/// The `decision` of a refused request in logs and metrics.
const UNAUTHORIZED_OUTCOME: &str = "unauthorized";

/// What one decision's audit line says besides the request, key and token paths alike.
/// A field one path does not have (`None`) is left out of its line.
struct AuditLine<'a> {
    outcome: &'static str,
    reason: &'static str,
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
fn record_decision(view: &RequestView<'_>, line: &AuditLine<'_>) {
    let (token_id, signing_kid) = line.token.unzip();
    tracing::info!(
        event = "authorizer_decision",
        decision = line.outcome,
        reason = line.reason,
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
        correlation_id = view.correlation_id.as_ref(),
        "authorizer decision"
    );
    let service_dim = line.service.unwrap_or("unknown").to_owned();
    metrics::counter!("Decisions", "Outcome" => line.outcome, "Service" => service_dim)
        .increment(1);
    if line.outcome == UNAUTHORIZED_OUTCOME {
        metrics::counter!("Unauthorized", "Reason" => line.reason).increment(1);
        metrics::counter!(REFUSALS_METRIC).increment(1);
    }
}
