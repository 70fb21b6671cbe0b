//! The REQUEST authorizer event, reduced to what a decision and its audit line need.
//!
//! The API key header is read from the raw JSON, not from `aws_lambda_events`'
//! `HeaderMap`: that map keeps only one of two `headers` entries whose names differ in
//! case, and a duplicated key must be seen to be refused.

use aws_lambda_events::apigw::ApiGatewayCustomAuthorizerRequestTypeRequest;
use serde::Deserialize;
use serde_json::Value;

/// The header that carries a service API key.
pub const API_KEY_HEADER: &str = "x-service-api-key";
/// The caller's correlation id header.
pub const CORRELATION_HEADER: &str = "x-correlation-id";
/// More header values than this for the key is not a real request.
const MAX_KEY_VALUES: usize = 8;
const MAX_CORRELATION_LEN: usize = 128;

/// What the handler needs from one event.
#[derive(Debug, Default)]
pub struct RequestView {
    pub api_key_values: Vec<String>,
    pub method_arn: Option<String>,
    pub http_method: Option<String>,
    /// The route template (`/internal/users/{id}`), never the concrete path, which can
    /// hold personal data such as an email address.
    pub resource: Option<String>,
    pub source_ip: Option<String>,
    pub request_id: Option<String>,
    pub correlation_id: String,
}

/// Why an event cannot be read. Refused as `Unauthorized`.
#[derive(Debug, thiserror::Error)]
pub enum EventError {
    #[error("the event is not a REST REQUEST authorizer event: {0}")]
    Shape(String),
    #[error("the API key header has a value that is not a string")]
    HeaderType,
    #[error("the API key header is repeated more than {MAX_KEY_VALUES} times")]
    TooManyValues,
}

impl RequestView {
    pub fn from_event(event: &Value) -> Result<Self, EventError> {
        let typed = ApiGatewayCustomAuthorizerRequestTypeRequest::deserialize(event)
            .map_err(|e| EventError::Shape(e.to_string()))?;
        if typed.type_.as_deref().is_some_and(|t| t != "REQUEST") {
            return Err(EventError::Shape("type is not REQUEST".into()));
        }
        let api_key_values = header_values(event, API_KEY_HEADER)?;
        let ctx = &typed.request_context;
        let request_id = ctx.request_id.clone();
        let correlation_id = header_values(event, CORRELATION_HEADER)
            .ok()
            .and_then(|v| v.into_iter().next())
            .filter(|v| valid_correlation_id(v))
            .or_else(|| request_id.clone().filter(|v| valid_correlation_id(v)))
            .unwrap_or_else(|| "none".to_owned());
        Ok(Self {
            api_key_values,
            method_arn: typed.method_arn.clone(),
            http_method: typed.http_method.as_ref().map(|m| m.to_string()),
            resource: typed.resource.clone(),
            source_ip: ctx.identity.as_ref().and_then(|i| i.source_ip.clone()),
            request_id,
            correlation_id,
        })
    }
}

/// Every value of header `name` (any case) in `headers` and `multiValueHeaders`.
fn header_values(event: &Value, name: &str) -> Result<Vec<String>, EventError> {
    let mut out = Vec::new();
    for map in ["headers", "multiValueHeaders"] {
        let Some(obj) = event.get(map).and_then(Value::as_object) else {
            continue;
        };
        for (k, v) in obj {
            if !k.eq_ignore_ascii_case(name) {
                continue;
            }
            match v {
                Value::Null => {}
                Value::String(s) => out.push(s.clone()),
                Value::Array(items) => {
                    for item in items {
                        match item {
                            Value::String(s) => out.push(s.clone()),
                            Value::Null => {}
                            _ => return Err(EventError::HeaderType),
                        }
                    }
                }
                _ => return Err(EventError::HeaderType),
            }
            if out.len() > MAX_KEY_VALUES {
                return Err(EventError::TooManyValues);
            }
        }
    }
    Ok(out)
}

/// Correlation ids are echoed into logs: keep them short and plain.
fn valid_correlation_id(v: &str) -> bool {
    !v.is_empty()
        && v.len() <= MAX_CORRELATION_LEN
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn event(headers: Value, multi: Value) -> Value {
        json!({
            "type": "REQUEST",
            "methodArn": "arn:aws:execute-api:us-east-1:123456789012:abc/prod/GET/x",
            "resource": "/x",
            "headers": headers,
            "multiValueHeaders": multi,
            "requestContext": {"requestId": "req-1", "identity": {"sourceIp": "10.0.0.1"}}
        })
    }

    #[test]
    fn header_values_are_found_in_any_case_and_both_maps() {
        let v = RequestView::from_event(&event(
            json!({"X-Service-Api-Key": "a", "x-service-api-key": "b"}),
            json!({"X-SERVICE-API-KEY": ["a", "c"]}),
        ))
        .unwrap();
        let mut got = v.api_key_values.clone();
        got.sort();
        assert_eq!(got, vec!["a", "a", "b", "c"]);
        assert_eq!(v.source_ip.as_deref(), Some("10.0.0.1"));
        assert_eq!(v.correlation_id, "req-1");
    }

    #[test]
    fn correlation_id_is_taken_when_plain_else_the_request_id() {
        let v =
            RequestView::from_event(&event(json!({"X-Correlation-Id": "abc-123"}), json!(null)))
                .unwrap();
        assert_eq!(v.correlation_id, "abc-123");
        let v = RequestView::from_event(&event(
            json!({"x-correlation-id": "bad value; DROP"}),
            json!(null),
        ))
        .unwrap();
        assert_eq!(v.correlation_id, "req-1");
    }

    #[test]
    fn malformed_events_are_errors() {
        assert!(RequestView::from_event(&json!("hello")).is_err());
        assert!(RequestView::from_event(&json!({"type": "TOKEN", "requestContext": {}})).is_err());
        assert!(
            RequestView::from_event(&event(json!(null), json!({"x-service-api-key": [1]})))
                .is_err()
        );
        assert!(RequestView::from_event(&event(
            json!({"x-service-api-key": {"a": 1}}),
            json!(null)
        ))
        .is_err());
        let many: Vec<String> = (0..20).map(|i| i.to_string()).collect();
        assert!(matches!(
            RequestView::from_event(&event(json!(null), json!({"x-service-api-key": many}))),
            Err(EventError::TooManyValues)
        ));
    }
}
