//! One invocation: event → request view → decision → response, and one audit line.

use aws_lambda_events::apigw::{
    ApiGatewayCustomAuthorizerPolicy, ApiGatewayCustomAuthorizerResponse,
};
use aws_lambda_events::iam::{IamPolicyEffect, IamPolicyStatement};
use lambda_runtime::Diagnostic;
use serde_json::{Map, Value};
use service_auth::policy::{Effect, Policy, INVOKE_ACTION, POLICY_VERSION};
use service_auth::{context, decide, AuthRequest, Decision, Grant, UnauthorizedReason};

use crate::event::{EventError, RequestView, MAX_KEY_VALUES};
use crate::source::CachedStore;

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
/// see [`crate::event::Payload`]). The one place that decides, answers and audits.
pub async fn handle_view(
    store: &CachedStore,
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
            audit(&view, &refused);
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
    audit(&view, &decision);
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

/// The one audit line per decision, and its metrics. Never the key: only its id.
fn audit(view: &RequestView<'_>, decision: &Decision) {
    let (outcome, reason, service, key_id, legacy) = match decision {
        Decision::Allow(g) => (
            if g.route_permitted { "allow" } else { "deny" },
            if g.route_permitted {
                "permitted"
            } else {
                "route_not_permitted"
            },
            Some(g.service.service.as_str()),
            Some(g.key_id.as_str()),
            g.legacy,
        ),
        Decision::Unauthorized {
            reason,
            key_id,
            service,
        } => (
            "unauthorized",
            reason.code(),
            service.as_deref(),
            key_id.as_ref().map(|k| k.as_str()),
            false,
        ),
    };
    tracing::info!(
        event = "authorizer_decision",
        decision = outcome,
        reason,
        service_id = service.unwrap_or(""),
        key_id = key_id.unwrap_or(""),
        legacy_key = legacy,
        http_method = view.http_method.as_deref().unwrap_or(""),
        resource_path = view.resource.as_deref().unwrap_or(""),
        source_ip = view.source_ip.as_deref().unwrap_or(""),
        request_id = view.request_id.as_deref().unwrap_or(""),
        correlation_id = view.correlation_id.as_ref(),
        "authorizer decision"
    );
    let service_dim = service.unwrap_or("unknown").to_owned();
    metrics::counter!("Decisions", "Outcome" => outcome, "Service" => service_dim).increment(1);
    if let Decision::Unauthorized { reason, .. } = decision {
        metrics::counter!("Unauthorized", "Reason" => reason.code()).increment(1);
    }
}
