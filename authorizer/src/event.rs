//! The REQUEST authorizer event, reduced to what a decision and its audit line need.
//!
//! The event is read once, straight from its JSON, into [`Event`]: only the fields of
//! [`RequestView`] are kept, every other field is skipped without being built. No
//! `serde_json::Value`, no `HeaderMap`, no error values on the way of a good event.
//! The Lambda runtime hands its payload type the invocation's bytes and wants an owned
//! value, so the kept strings are owned: a handful of short strings per event.
//!
//! Headers are read from both `headers` and `multiValueHeaders`, with their names
//! compared without case, and every value of the API key header is kept: a key
//! presented twice must be seen to be refused (a `HeaderMap` keeps only one of two
//! entries whose names differ in case).
//!
//! A malformed event is refused with an [`EventError`] whose message is fixed text:
//! serde's own messages can quote the offending value (a whole header value, a key),
//! so they are never kept, logged or returned.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use serde_json::Value;
use service_auth::correlation::{self, CORRELATION_ID_HEADER};

/// The header that carries a service API key.
pub const API_KEY_HEADER: &str = "x-service-api-key";
/// The header that carries a signed token (`Bearer`) when the authorizer accepts them.
pub const AUTHORIZATION_HEADER: &str = "authorization";
/// More header values than this for the key is not a real request.
pub const MAX_KEY_VALUES: usize = 8;

/// What the handler needs from one event.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RequestView {
    /// Every value of the API key header, from `headers` then `multiValueHeaders`.
    pub api_key_values: Vec<String>,
    /// The `Authorization` header: read only when the authorizer accepts tokens.
    pub authorization: Authorization,
    pub method_arn: Option<String>,
    pub http_method: Option<String>,
    /// The route template (`/internal/users/{id}`), never the concrete path, which can
    /// hold personal data such as an email address.
    pub resource: Option<String>,
    pub source_ip: Option<String>,
    pub request_id: Option<String>,
    /// The caller's `x-correlation-id` when the one correlation rule accepts it
    /// (`service_auth::correlation::is_valid`), else the request id when it does, else
    /// `none`: it is echoed into logs.
    pub correlation_id: String,
}

/// The `Authorization` header of an event, from `headers` and `multiValueHeaders`
/// (API Gateway copies a single header into both; that is one value).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub enum Authorization {
    /// No `Authorization` header.
    #[default]
    Absent,
    /// Exactly one value (possibly empty: refused as such by the token path).
    One(String),
    /// The header was sent more than once, or the two maps disagree: refused, never
    /// chosen from.
    Repeated,
}

/// One authorizer event, read once: its view, or why it could not be read. This is
/// the Lambda payload type: reading it never fails at the runtime's level (that would
/// be a 500 and a log line quoting serde's message); the handler refuses a malformed
/// event itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event(pub Result<RequestView, EventError>);

impl Event {
    /// Reads an event from its JSON text.
    pub fn from_slice(json: &[u8]) -> Self {
        Self(
            serde_json::from_slice::<RawEvent<'_>>(json)
                .map_err(|_| EventError::Shape)
                .and_then(RawEvent::into_view),
        )
    }

    /// Reads an event already parsed into a `serde_json::Value` (the local gateway
    /// and tests).
    pub fn from_value(event: &Value) -> Self {
        Self(
            RawEvent::deserialize(event)
                .map_err(|_| EventError::Shape)
                .and_then(RawEvent::into_view),
        )
    }
}

impl<'de> Deserialize<'de> for Event {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(Self(match RawEvent::deserialize(d) {
            Ok(raw) => raw.into_view(),
            Err(_) => Err(EventError::Shape),
        }))
    }
}

impl From<&Value> for Event {
    fn from(event: &Value) -> Self {
        Self::from_value(event)
    }
}

impl From<&[u8]> for Event {
    fn from(json: &[u8]) -> Self {
        Self::from_slice(json)
    }
}

/// Why an event cannot be read. Refused as `Unauthorized`. The messages are fixed
/// text and carry no part of the event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EventError {
    #[error("the event is not a REST REQUEST authorizer event: it is not a JSON object, or a field the authorizer reads has the wrong type")]
    Shape,
    #[error("the event's type is not REQUEST (a TOKEN authorizer is not supported)")]
    NotRequest,
    #[error("the API key or Authorization header has a value that is not a string")]
    HeaderType,
    #[error("the API key header is repeated more than {MAX_KEY_VALUES} times")]
    TooManyValues,
}

impl EventError {
    /// Stable code for logs: the only thing about a malformed event that is logged.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Shape => "shape",
            Self::NotRequest => "not_request",
            Self::HeaderType => "header_type",
            Self::TooManyValues => "too_many_values",
        }
    }
}

/// The fields read from the event; serde skips every other one without building it.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawEvent<'a> {
    #[serde(rename = "type", borrow)]
    type_: Option<Text<'a>>,
    #[serde(borrow)]
    method_arn: Option<Text<'a>>,
    #[serde(borrow)]
    http_method: Option<Text<'a>>,
    #[serde(borrow)]
    resource: Option<Text<'a>>,
    #[serde(borrow)]
    headers: Option<Headers<'a>>,
    #[serde(borrow)]
    multi_value_headers: Option<Headers<'a>>,
    #[serde(borrow)]
    request_context: Option<RawContext<'a>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawContext<'a> {
    #[serde(borrow)]
    request_id: Option<Text<'a>>,
    #[serde(borrow)]
    identity: Option<RawIdentity<'a>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawIdentity<'a> {
    #[serde(borrow)]
    source_ip: Option<Text<'a>>,
}

impl RawEvent<'_> {
    /// The view, owning the strings it keeps (every other one was only borrowed).
    fn into_view(self) -> Result<RequestView, EventError> {
        if self.type_.as_ref().is_some_and(|t| t.0 != "REQUEST") {
            return Err(EventError::NotRequest);
        }
        let headers = self.headers.unwrap_or_default();
        let multi = self.multi_value_headers.unwrap_or_default();
        if headers.key_type_error || multi.key_type_error {
            return Err(EventError::HeaderType);
        }
        if headers.authorization_type_error || multi.authorization_type_error {
            return Err(EventError::HeaderType);
        }
        let authorization = match (headers.authorization, multi.authorization) {
            (h, m) if h.len() > 1 || m.len() > 1 => Authorization::Repeated,
            (mut h, mut m) => match (h.pop(), m.pop()) {
                (None, None) => Authorization::Absent,
                (Some(v), None) | (None, Some(v)) => Authorization::One(v.into_owned()),
                (Some(a), Some(b)) if a == b => Authorization::One(a.into_owned()),
                (Some(_), Some(_)) => Authorization::Repeated,
            },
        };
        if headers.api_key.len() + multi.api_key.len() > MAX_KEY_VALUES {
            return Err(EventError::TooManyValues);
        }
        let api_key_values = headers
            .api_key
            .into_iter()
            .chain(multi.api_key)
            .map(Cow::into_owned)
            .collect();
        let (request_id, source_ip) = match self.request_context {
            Some(ctx) => (
                ctx.request_id.map(Text::into_inner),
                ctx.identity.and_then(|i| i.source_ip).map(Text::into_inner),
            ),
            None => (None, None),
        };
        // The first correlation header value, as before: from `headers`, else from
        // `multiValueHeaders`; ignored when any of its values is not a string.
        let correlation = if headers.correlation_type_error || multi.correlation_type_error {
            None
        } else {
            headers.correlation.or(multi.correlation)
        };
        let correlation_id = correlation
            .filter(|v| correlation::is_valid(v))
            .or_else(|| request_id.clone().filter(|v| correlation::is_valid(v)))
            .unwrap_or(Cow::Borrowed("none"))
            .into_owned();
        let http_method = self.http_method.map(Text::into_inner);
        if http_method.as_deref().is_some_and(|m| !valid_method(m)) {
            return Err(EventError::Shape);
        }
        let own = |v: Option<Cow<'_, str>>| v.map(Cow::into_owned);
        Ok(RequestView {
            api_key_values,
            authorization,
            method_arn: own(self.method_arn.map(Text::into_inner)),
            http_method: own(http_method),
            resource: own(self.resource.map(Text::into_inner)),
            source_ip: own(source_ip),
            request_id: own(request_id),
            correlation_id,
        })
    }
}

/// A JSON string, borrowed when it has no escapes. Anything else is a type error.
struct Text<'a>(Cow<'a, str>);

impl<'a> Text<'a> {
    fn into_inner(self) -> Cow<'a, str> {
        self.0
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Text<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Text<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Text(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Text(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(Text(Cow::Owned(v)))
            }
        }
        d.deserialize_str(V)
    }
}

/// What one of the two header maps holds for the headers the authorizer reads.
#[derive(Default)]
struct Headers<'a> {
    api_key: Vec<Cow<'a, str>>,
    key_type_error: bool,
    correlation: Option<Cow<'a, str>>,
    correlation_type_error: bool,
    /// Every `Authorization` value in this map (at most two are kept: more is
    /// repeated all the same).
    authorization: Vec<Cow<'a, str>>,
    authorization_type_error: bool,
}

impl<'de: 'a, 'a> Deserialize<'de> for Headers<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_map(HeadersVisitor)
    }
}

struct HeadersVisitor;

impl<'de> Visitor<'de> for HeadersVisitor {
    type Value = Headers<'de>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a map of header names to values")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut out = Headers::default();
        while let Some(name) = map.next_key::<Text<'de>>()? {
            if name.0.eq_ignore_ascii_case(API_KEY_HEADER) {
                let values = map.next_value::<HeaderValues<'de>>()?;
                out.key_type_error |= values.type_error;
                // Bounded: a flood of values is refused, not collected.
                if out.api_key.len() <= MAX_KEY_VALUES {
                    out.api_key.extend(values.values);
                }
            } else if name.0.eq_ignore_ascii_case(AUTHORIZATION_HEADER) {
                let values = map.next_value::<HeaderValues<'de>>()?;
                out.authorization_type_error |= values.type_error;
                for v in values.values {
                    if out.authorization.len() < 2 {
                        out.authorization.push(v);
                    }
                }
            } else if name.0.eq_ignore_ascii_case(CORRELATION_ID_HEADER) {
                let values = map.next_value::<HeaderValues<'de>>()?;
                out.correlation_type_error |= values.type_error;
                if out.correlation.is_none() {
                    out.correlation = values.values.into_iter().next();
                }
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(out)
    }
}

/// The values of one header entry: a string, a list of strings, or null. Any other
/// shape is noted, not failed on, so the refusal says what was wrong.
struct HeaderValues<'a> {
    values: Vec<Cow<'a, str>>,
    type_error: bool,
    /// Read from a list (inside a list, that is a type error).
    list: bool,
}

impl<'de: 'a, 'a> Deserialize<'de> for HeaderValues<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(HeaderValuesVisitor)
    }
}

struct HeaderValuesVisitor;

impl HeaderValuesVisitor {
    fn one<'a>(v: Cow<'a, str>) -> HeaderValues<'a> {
        HeaderValues {
            values: vec![v],
            type_error: false,
            list: false,
        }
    }
    fn none<'a>(type_error: bool) -> HeaderValues<'a> {
        HeaderValues {
            values: Vec::new(),
            type_error,
            list: false,
        }
    }
}

impl<'de> Visitor<'de> for HeaderValuesVisitor {
    type Value = HeaderValues<'de>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a header value")
    }
    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Self::one(Cow::Borrowed(v)))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Self::one(Cow::Owned(v.to_owned())))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
        Ok(Self::one(Cow::Owned(v)))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Self::none(false))
    }
    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Self::none(false))
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
        Ok(Self::none(true))
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
        Ok(Self::none(true))
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
        Ok(Self::none(true))
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
        Ok(Self::none(true))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Self::none(true))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut out = Self::none(false);
        out.list = true;
        while let Some(item) = seq.next_element::<HeaderValues<'de>>()? {
            // A list holds strings (or nulls, skipped), not lists.
            if item.type_error || item.list {
                out.type_error = true;
            } else if out.values.len() <= MAX_KEY_VALUES {
                out.values.extend(item.values);
            }
        }
        Ok(out)
    }
}

/// An HTTP method token (RFC 9110), as the `http` crate accepted it before: it is
/// logged.
fn valid_method(m: &str) -> bool {
    !m.is_empty()
        && m.len() <= 32
        && m.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
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

    /// The three ways of reading an event agree: its JSON text, a `Value`, and the
    /// runtime's deserialisation of the payload type.
    fn both(ev: &Value) -> Result<RequestView, EventError> {
        let bytes = serde_json::to_vec(ev).unwrap();
        let from_bytes = Event::from_slice(&bytes).0;
        let from_value = Event::from_value(ev).0;
        assert_eq!(from_bytes, from_value);
        let payload: Event = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(payload.0, from_value);
        from_value
    }

    #[test]
    fn header_values_are_found_in_any_case_and_both_maps() {
        let v = both(&event(
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
    fn authorization_is_one_value_absent_or_repeated() {
        let one = Authorization::One("Bearer t".into());
        let cases = [
            (json!(null), json!(null), Authorization::Absent),
            (
                json!({"Authorization": "Bearer t"}),
                json!(null),
                one.clone(),
            ),
            (
                json!(null),
                json!({"authorization": ["Bearer t"]}),
                one.clone(),
            ),
            // API Gateway copies one header into both maps.
            (
                json!({"AUTHORIZATION": "Bearer t"}),
                json!({"Authorization": ["Bearer t"]}),
                one.clone(),
            ),
            (
                json!({"Authorization": ""}),
                json!(null),
                Authorization::One(String::new()),
            ),
            // Sent twice, even with the same value, or the maps disagree.
            (
                json!(null),
                json!({"Authorization": ["Bearer t", "Bearer t"]}),
                Authorization::Repeated,
            ),
            (
                json!({"Authorization": "Bearer t", "authorization": "Bearer u"}),
                json!(null),
                Authorization::Repeated,
            ),
            (
                json!({"Authorization": "Bearer t"}),
                json!({"Authorization": ["Bearer u"]}),
                Authorization::Repeated,
            ),
            (
                json!({"Authorization": null}),
                json!(null),
                Authorization::Absent,
            ),
        ];
        for (headers, multi, want) in cases {
            let v = both(&event(headers.clone(), multi.clone())).unwrap();
            assert_eq!(v.authorization, want, "{headers} {multi}");
        }
        assert_eq!(
            both(&event(json!({"Authorization": 5}), json!(null))),
            Err(EventError::HeaderType)
        );
        assert_eq!(
            both(&event(json!(null), json!({"Authorization": [{"a": 1}]}))),
            Err(EventError::HeaderType)
        );
        let many: Vec<String> = (0..100).map(|i| format!("Bearer {i}")).collect();
        let v = both(&event(json!(null), json!({"Authorization": many}))).unwrap();
        assert_eq!(v.authorization, Authorization::Repeated);
    }

    #[test]
    fn a_json_key_repeated_in_one_map_is_two_values() {
        // serde_json::Value keeps the last of two equal keys; the raw text has both.
        let json =
            br#"{"type":"REQUEST","headers":{"x-service-api-key":"a","x-service-api-key":"b"}}"#;
        let v = Event::from_slice(json).0.unwrap();
        assert_eq!(v.api_key_values, ["a", "b"]);
    }

    #[test]
    fn escaped_strings_are_read_unescaped() {
        let json = br#"{"type":"REQUEST","resource":"/a\/b","headers":{"x-service-api-key":"k"},"methodArn":"arn"}"#;
        let v = Event::from_slice(json).0.unwrap();
        assert_eq!(v.api_key_values, ["k"]);
        assert_eq!(v.method_arn.as_deref(), Some("arn"));
        assert_eq!(v.resource.as_deref(), Some("/a/b"));
    }

    #[test]
    fn correlation_id_is_taken_when_plain_else_the_request_id() {
        let v = both(&event(json!({"X-Correlation-Id": "abc-123"}), json!(null))).unwrap();
        assert_eq!(v.correlation_id, "abc-123");
        let v = both(&event(
            json!({"x-correlation-id": "bad value; DROP"}),
            json!(null),
        ))
        .unwrap();
        assert_eq!(v.correlation_id, "req-1");
        let v = both(&event(json!({"x-correlation-id": 7}), json!(null))).unwrap();
        assert_eq!(v.correlation_id, "req-1");
    }

    #[test]
    fn malformed_events_are_errors() {
        assert_eq!(both(&json!("hello")), Err(EventError::Shape));
        assert_eq!(
            both(&json!({"type": "TOKEN", "requestContext": {}})),
            Err(EventError::NotRequest)
        );
        assert_eq!(
            both(&event(json!(null), json!({"x-service-api-key": [1]}))),
            Err(EventError::HeaderType)
        );
        assert_eq!(
            both(&event(json!({"x-service-api-key": {"a": 1}}), json!(null))),
            Err(EventError::HeaderType)
        );
        assert_eq!(
            both(&event(json!(null), json!({"x-service-api-key": [["a"]]}))),
            Err(EventError::HeaderType)
        );
        assert_eq!(
            both(&json!({"methodArn": 5, "headers": {}})),
            Err(EventError::Shape)
        );
        assert_eq!(both(&json!({"headers": "x"})), Err(EventError::Shape));
        assert_eq!(
            both(&json!({"httpMethod": "GET /x"})),
            Err(EventError::Shape)
        );
        let many: Vec<String> = (0..20).map(|i| i.to_string()).collect();
        assert_eq!(
            both(&event(json!(null), json!({"x-service-api-key": many}))),
            Err(EventError::TooManyValues)
        );
        assert_eq!(Event::from_slice(b"{\"type\":").0, Err(EventError::Shape));
        assert_eq!(Event::from_slice(b"{} x").0, Err(EventError::Shape));
    }
}
