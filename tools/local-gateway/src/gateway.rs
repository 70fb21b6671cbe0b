//! One request through the gateway, as API Gateway REST handles it for a Lambda proxy
//! integration:
//!
//! 1. the API and stage from the URL (`/{apiId}/{stage}/...`), the resource and method
//!    from the template's routes: no route is 403 `Missing Authentication Token`;
//! 2. the route's authorization: a REQUEST authorizer (identity sources, result cache,
//!    invocation, policy against the method ARN) or `AWS_IAM` (SigV4, then the role's
//!    IAM policies from the template against the method ARN);
//! 3. the backend function with a v1 proxy event, its proxy response back to HTTP;
//! 4. one access log line in the API's `AccessLogSetting.Format`.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::{json, Map, Value};
use service_auth::UnixTime;

use crate::cache::{AuthorizerResult, ResultCache};
use crate::function::{Function, FunctionError, InvokeContext};
use crate::http::{Handler, Request, Response};
use crate::policy::{self, Outcome};
use crate::routes;
use crate::sigv4::{self, LocalCredentials};
use crate::template::{ApiDef, AuthorizerDef, Model, RouteAuth, RouteDef};
use crate::util;

/// The gateway's clock (the authorizer's clock type): whole seconds and a monotonic
/// instant.
pub type Clock = authorizer::Clock;
/// Where access log lines go.
pub type AccessLogSink = Arc<dyn Fn(&str) + Send + Sync>;

/// The access log format used when an API sets none: the template's fields.
pub const DEFAULT_ACCESS_LOG_FORMAT: &str = r#"{"requestId":"$context.requestId", "extendedRequestId":"$context.extendedRequestId", "time":"$context.requestTime", "apiId":"$context.apiId", "stage":"$context.stage", "httpMethod":"$context.httpMethod", "route":"$context.resourcePath", "path":"$context.path", "status":"$context.status", "latencyMs":"$context.responseLatency", "integrationLatencyMs":"$context.integration.latency", "serviceId":"$context.authorizer.serviceId", "authenticatedBy":"$context.authorizer.authenticatedBy", "keyId":"$context.authorizer.keyId", "authorizerStatus":"$context.authorizer.status", "authorizerLatencyMs":"$context.authorizer.latency", "iamCaller":"$context.identity.userArn", "usagePlanKeyId":"$context.identity.apiKeyId", "vpceId":"$context.identity.vpceId", "sourceIp":"$context.identity.sourceIp", "errorType":"$context.error.responseType", "xrayTraceId":"$context.xrayTraceId"}"#;

/// API Gateway's REST quota "Total combined size of all header values": 10240 bytes.
/// AWS documents the quota, not the answer to a request over it: locally 431.
pub const MAX_HEADER_VALUES_BYTES: usize = 10_240;

/// API Gateway's quota on the method ARN of a method with authorization: 1600 bytes;
/// AWS documents a 414 for a request whose path makes it longer.
pub const MAX_METHOD_ARN_BYTES: usize = 1600;

/// The gateway: the template's model, the functions behind it, and its state.
pub struct Gateway {
    pub(crate) model: Arc<Model>,
    pub(crate) functions: BTreeMap<String, Arc<dyn Function>>,
    pub(crate) cache: ResultCache,
    pub(crate) credentials: LocalCredentials,
    pub(crate) clock: Clock,
    pub(crate) region: String,
    pub(crate) account: String,
    pub(crate) ttl_override: Option<u64>,
    pub(crate) access_log: AccessLogSink,
    pub(crate) port: u16,
}

/// `$context` variables of one request, for the access log.
#[derive(Default)]
struct Vars(BTreeMap<String, String>);

impl Vars {
    fn set(&mut self, k: &str, v: impl Into<String>) {
        self.0.insert(k.to_owned(), v.into());
    }
}

/// A gateway-generated answer (not the backend's).
struct GatewayAnswer {
    status: u16,
    body: Value,
    /// `x-amzn-ErrorType`
    error_type: &'static str,
    /// `$context.error.responseType`
    response_type: &'static str,
}

impl GatewayAnswer {
    fn message(
        status: u16,
        key: &str,
        msg: Value,
        error_type: &'static str,
        response_type: &'static str,
    ) -> Self {
        let mut body = Map::new();
        body.insert(key.to_owned(), msg);
        Self {
            status,
            body: Value::Object(body),
            error_type,
            response_type,
        }
    }

    fn missing_token() -> Self {
        Self::message(
            403,
            "message",
            json!("Missing Authentication Token"),
            "MissingAuthenticationTokenException",
            "MISSING_AUTHENTICATION_TOKEN",
        )
    }

    fn unauthorized() -> Self {
        Self::message(
            401,
            "message",
            json!("Unauthorized"),
            "UnauthorizedException",
            "UNAUTHORIZED",
        )
    }

    fn authorizer_error() -> Self {
        Self::message(
            500,
            "message",
            Value::Null,
            "AuthorizerConfigurationException",
            "AUTHORIZER_CONFIGURATION_ERROR",
        )
    }

    fn integration_error() -> Self {
        Self::message(
            502,
            "message",
            json!("Internal server error"),
            "InternalServerErrorException",
            "DEFAULT_5XX",
        )
    }
}

/// Header maps as API Gateway builds them: names as first received, every value in
/// `multiValueHeaders`, the last one in `headers`.
fn header_maps(headers: &[(String, String)]) -> (Map<String, Value>, Map<String, Value>) {
    let mut order: Vec<(String, Vec<String>)> = Vec::new();
    for (k, v) in headers {
        match order.iter_mut().find(|(n, _)| n.eq_ignore_ascii_case(k)) {
            Some((_, vals)) => vals.push(v.clone()),
            None => order.push((k.clone(), vec![v.clone()])),
        }
    }
    let mut single = Map::new();
    let mut multi = Map::new();
    for (k, vals) in order {
        single.insert(k.clone(), json!(vals.last().cloned().unwrap_or_default()));
        multi.insert(k, json!(vals));
    }
    (single, multi)
}

/// Query parameters, decoded: last value and all values.
fn query_maps(query: Option<&str>) -> (Map<String, Value>, Map<String, Value>) {
    let mut order: Vec<(String, Vec<String>)> = Vec::new();
    for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let (k, v) = (util::percent_decode(k), util::percent_decode(v));
        match order.iter_mut().find(|(n, _)| *n == k) {
            Some((_, vals)) => vals.push(v),
            None => order.push((k, vec![v])),
        }
    }
    let mut single = Map::new();
    let mut multi = Map::new();
    for (k, vals) in order {
        single.insert(k.clone(), json!(vals.last().cloned().unwrap_or_default()));
        multi.insert(k, json!(vals));
    }
    (single, multi)
}

fn object_or(m: Map<String, Value>, empty: Value) -> Value {
    if m.is_empty() {
        empty
    } else {
        Value::Object(m)
    }
}

/// Reads an authorizer's response as API Gateway does; `Err` is a 500.
pub fn read_authorizer_response(v: &Value) -> Result<AuthorizerResult, String> {
    let o = v.as_object().ok_or("the response is not a JSON object")?;
    let principal_id = match o.get("principalId") {
        Some(Value::String(s)) if !s.is_empty() => s.clone(),
        _ => return Err("principalId is missing".into()),
    };
    let doc = o.get("policyDocument").ok_or("policyDocument is missing")?;
    let statements = policy::parse_document(doc).map_err(|e| e.to_string())?;
    let mut context = Vec::new();
    match o.get("context") {
        None | Some(Value::Null) => {}
        Some(Value::Object(m)) => {
            for (k, v) in m {
                let s = match v {
                    Value::String(s) => s.clone(),
                    Value::Number(n) => n.to_string(),
                    Value::Bool(b) => b.to_string(),
                    Value::Null => continue,
                    Value::Array(_) | Value::Object(_) => {
                        return Err(format!(
                            "context value {k:?} is an array or object; only strings, numbers and booleans are allowed"
                        ))
                    }
                };
                context.push((k.clone(), s));
            }
        }
        Some(_) => return Err("context is not an object".into()),
    }
    let usage_identifier_key = match o.get("usageIdentifierKey") {
        Some(Value::String(s)) => Some(s.clone()),
        _ => None,
    };
    Ok(AuthorizerResult {
        principal_id,
        statements,
        context,
        usage_identifier_key,
    })
}

/// Turns a Lambda proxy response into HTTP, as API Gateway does; `Err` is a 502.
pub fn read_proxy_response(v: &Value) -> Result<Response, String> {
    let o = v.as_object().ok_or("the response is not a JSON object")?;
    let status = match o.get("statusCode") {
        Some(Value::Number(n)) => n.as_u64(),
        Some(Value::String(s)) => s.parse().ok(),
        _ => None,
    }
    .filter(|s| (100..=599).contains(s))
    .ok_or("statusCode is missing or not an HTTP status")? as u16;
    let mut headers: Vec<(String, String)> = Vec::new();
    if let Some(m) = o.get("multiValueHeaders").filter(|v| !v.is_null()) {
        let m = m.as_object().ok_or("multiValueHeaders is not an object")?;
        for (k, vals) in m {
            let vals = vals
                .as_array()
                .ok_or("a multiValueHeaders entry is not a list")?;
            for v in vals {
                headers.push((
                    k.clone(),
                    scalar_string(v).ok_or("a header value is not a string")?,
                ));
            }
        }
    }
    if let Some(m) = o.get("headers").filter(|v| !v.is_null()) {
        let m = m.as_object().ok_or("headers is not an object")?;
        for (k, v) in m {
            if headers.iter().any(|(n, _)| n.eq_ignore_ascii_case(k)) {
                continue;
            }
            headers.push((
                k.clone(),
                scalar_string(v).ok_or("a header value is not a string")?,
            ));
        }
    }
    let b64 = matches!(o.get("isBase64Encoded"), Some(Value::Bool(true)));
    let body = match o.get("body") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::String(s)) if b64 => base64::engine::general_purpose::STANDARD
            .decode(s)
            .map_err(|_| "body is not valid base64")?,
        Some(Value::String(s)) => s.clone().into_bytes(),
        Some(_) => return Err("body is not a string".into()),
    };
    Ok(Response {
        status,
        headers,
        body,
    })
}

fn scalar_string(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// API Gateway passes a backend's `Location` through unchanged; on an execute-api host
/// (one API per host) a path that starts with the stage (`/v1/...`, built from
/// `requestContext.path`) then leads back to the API. Locally every API lives under
/// its id on one host (`/{apiId}/v1/...`), so such a path gets the `/{apiId}` prefix:
/// the client that follows it reaches what it would reach in AWS. Any other value
/// (a full URL, a path outside the stage) is left as it is.
pub fn local_location(res: &mut Response, api: &ApiDef) {
    let stage = format!("/{}", api.stage);
    for (k, v) in &mut res.headers {
        if !(k.eq_ignore_ascii_case("location") || k.eq_ignore_ascii_case("content-location")) {
            continue;
        }
        let under_stage = v.as_str() == stage
            || v.strip_prefix(&stage)
                .is_some_and(|r| r.starts_with(['/', '?']));
        if under_stage {
            *v = format!("/{}{v}", api.api_id);
        }
    }
}

/// Replaces `$context.x.y` in an access log format.
pub fn render_access_log(format: &str, vars: &BTreeMap<String, String>) -> String {
    let mut out = String::with_capacity(format.len() + 128);
    let mut rest = format;
    while let Some(i) = rest.find("$context.") {
        out.push_str(&rest[..i]);
        let after = &rest[i + "$context.".len()..];
        let mut end = after
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '.' || c == '_'))
            .unwrap_or(after.len());
        while end > 0 && after.as_bytes()[end - 1] == b'.' {
            end -= 1;
        }
        let name = &after[..end];
        let value = vars
            .get(name)
            .filter(|v| !v.is_empty())
            .map(String::as_str)
            .unwrap_or("-");
        // Inside a JSON string: escape as JSON does.
        let quoted = serde_json::to_string(value).unwrap_or_default();
        out.push_str(&quoted[1..quoted.len() - 1]);
        rest = &after[end..];
    }
    out.push_str(rest);
    out
}

/// Everything known about one request while it is handled.
struct Call<'a> {
    req: &'a Request,
    api: &'a ApiDef,
    route: &'a RouteDef,
    path: String,
    path_parameters: Vec<(String, String)>,
    method_arn: String,
    request_id: String,
    extended_id: String,
    trace_id: String,
    now: UnixTime,
    epoch_ms: u64,
    /// Received headers plus those API Gateway adds.
    headers: Vec<(String, String)>,
}

impl Gateway {
    fn now(&self) -> UnixTime {
        self.clock.now()
    }

    pub fn model(&self) -> &Model {
        &self.model
    }

    pub fn cache(&self) -> &ResultCache {
        &self.cache
    }

    /// Handles one request.
    pub async fn handle_request(&self, req: Request) -> Response {
        let started = Instant::now();
        let now = self.now();
        let subsec = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_millis() as u64)
            .unwrap_or(0);
        let mut vars = Vars::default();
        let request_id = util::request_id();
        let extended_id = util::extended_request_id();
        let trace_id = req
            .header("x-amzn-trace-id")
            .and_then(|v| v.split(';').find_map(|p| p.strip_prefix("Root=")))
            .map(str::to_owned)
            .unwrap_or_else(|| util::xray_trace_id(now));
        vars.set("requestId", &request_id);
        vars.set("extendedRequestId", &extended_id);
        vars.set("requestTime", util::clf_time(now));
        vars.set("requestTimeEpoch", (now.0 * 1000 + subsec).to_string());
        vars.set("httpMethod", &req.method);
        vars.set("identity.sourceIp", req.peer.ip().to_string());
        vars.set("identity.userAgent", req.header("user-agent").unwrap_or(""));
        vars.set("protocol", "HTTP/1.1");
        vars.set("xrayTraceId", &trace_id);
        vars.set("domainName", req.header("host").unwrap_or(""));

        let (mut res, api) = self
            .route_and_run(
                &req,
                &mut vars,
                now,
                now.0 * 1000 + subsec,
                &request_id,
                &extended_id,
                &trace_id,
            )
            .await;
        res.headers
            .push(("x-amzn-RequestId".into(), request_id.clone()));
        res.headers
            .push(("x-amz-apigw-id".into(), extended_id.clone()));
        res.headers.push((
            "X-Amzn-Trace-Id".into(),
            format!("Root={trace_id};Sampled=0"),
        ));
        if res.header("content-type").is_none() {
            res.headers
                .push(("Content-Type".into(), "application/json".into()));
        }
        vars.set("status", res.status.to_string());
        vars.set("responseLength", res.body.len().to_string());
        vars.set("responseLatency", started.elapsed().as_millis().to_string());
        let format = api
            .and_then(|a| a.access_log_format.as_deref())
            .unwrap_or(DEFAULT_ACCESS_LOG_FORMAT);
        let line = render_access_log(format, &vars.0);
        (self.access_log)(&line);
        res
    }

    #[allow(clippy::too_many_arguments)]
    async fn route_and_run<'a>(
        &'a self,
        req: &'a Request,
        vars: &mut Vars,
        now: UnixTime,
        epoch_ms: u64,
        request_id: &str,
        extended_id: &str,
        trace_id: &str,
    ) -> (Response, Option<&'a ApiDef>) {
        let path = req.path();
        if path == "/" && req.method == "GET" {
            return (self.index(), None);
        }
        let header_bytes: usize = req.headers.iter().map(|(_, v)| v.len()).sum();
        if header_bytes > MAX_HEADER_VALUES_BYTES {
            let a = GatewayAnswer::message(
                431,
                "message",
                json!("Request Header Fields Too Large"),
                "",
                "DEFAULT_4XX",
            );
            return (self.answer(a, vars), None);
        }
        let mut segs = path.trim_start_matches('/').splitn(3, '/');
        let (api_id, stage, rest) = (
            segs.next().unwrap_or(""),
            segs.next().unwrap_or(""),
            segs.next().unwrap_or(""),
        );
        let Some(api) = self.model.api_by_id(api_id).filter(|a| a.stage == stage) else {
            let a = GatewayAnswer::message(
                403,
                "message",
                json!("Forbidden"),
                "ForbiddenException",
                "DEFAULT_4XX",
            );
            return (self.answer(a, vars), None);
        };
        vars.set("apiId", &api.api_id);
        vars.set("domainPrefix", &api.api_id);
        vars.set("stage", &api.stage);
        let resource_path = format!("/{rest}");
        vars.set("path", format!("/{}{}", api.stage, resource_path));
        let api_routes: Vec<&RouteDef> = self
            .model
            .routes
            .iter()
            .filter(|r| r.api == api.logical_id)
            .collect();
        let Some(m) = routes::find(&api_routes, &req.method, &resource_path) else {
            return (self.answer(GatewayAnswer::missing_token(), vars), Some(api));
        };
        vars.set("resourcePath", &m.route.path);
        vars.set("resourceId", util::resource_id(&m.route.path));
        let method_arn = format!(
            "arn:aws:execute-api:{}:{}:{}/{}/{}/{}",
            self.region, self.account, api.api_id, api.stage, req.method, rest
        );
        if !matches!(m.route.auth, RouteAuth::None) && method_arn.len() > MAX_METHOD_ARN_BYTES {
            let a = GatewayAnswer::message(
                414,
                "message",
                json!("Request URI too long"),
                "",
                "DEFAULT_4XX",
            );
            return (self.answer(a, vars), Some(api));
        }

        // Headers API Gateway adds before the authorizer and the backend see them.
        let mut headers = req.headers.clone();
        let ip = req.peer.ip().to_string();
        match headers
            .iter_mut()
            .find(|(k, _)| k.eq_ignore_ascii_case("x-forwarded-for"))
        {
            Some((_, v)) => *v = format!("{v}, {ip}"),
            None => headers.push(("X-Forwarded-For".into(), ip)),
        }
        headers.retain(|(k, _)| {
            !k.eq_ignore_ascii_case("x-forwarded-port")
                && !k.eq_ignore_ascii_case("x-forwarded-proto")
                && !k.eq_ignore_ascii_case("x-amzn-trace-id")
        });
        headers.push(("X-Forwarded-Port".into(), self.port.to_string()));
        headers.push(("X-Forwarded-Proto".into(), "http".into()));
        headers.push((
            "X-Amzn-Trace-Id".into(),
            format!("Root={trace_id};Sampled=0"),
        ));

        let call = Call {
            req,
            api,
            route: m.route,
            path: resource_path,
            path_parameters: m.path_parameters,
            method_arn,
            request_id: request_id.to_owned(),
            extended_id: extended_id.to_owned(),
            trace_id: trace_id.to_owned(),
            now,
            epoch_ms,
            headers,
        };
        let mut authorizer_block = None;
        let mut identity_block = None;
        match &m.route.auth {
            RouteAuth::None => {}
            RouteAuth::Request(def) => match self.authorize(&call, def, vars).await {
                Ok(block) => authorizer_block = Some(block),
                Err(a) => return (self.answer(a, vars), Some(api)),
            },
            RouteAuth::Iam => match self.authorize_iam(&call, vars) {
                Ok(block) => identity_block = Some(block),
                Err(a) => return (self.answer(a, vars), Some(api)),
            },
        }
        let res = self
            .integrate(&call, authorizer_block, identity_block, vars)
            .await;
        (res, Some(api))
    }

    fn answer(&self, a: GatewayAnswer, vars: &mut Vars) -> Response {
        vars.set("error.responseType", a.response_type);
        let msg = a
            .body
            .as_object()
            .and_then(|o| o.values().next())
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned();
        vars.set("error.message", &msg);
        vars.set("error.messageString", format!("\"{msg}\""));
        let mut headers = vec![("Content-Type".into(), "application/json".into())];
        // No `x-amzn-ErrorType` where AWS documents none.
        if !a.error_type.is_empty() {
            headers.push(("x-amzn-ErrorType".into(), a.error_type.into()));
        }
        Response {
            status: a.status,
            headers,
            body: a.body.to_string().into_bytes(),
        }
    }

    /// `GET /`: what this gateway serves (local only; API Gateway has no such page).
    fn index(&self) -> Response {
        let apis: Vec<Value> = self
            .model
            .apis
            .iter()
            .map(|a| {
                let routes: Vec<Value> = self
                    .model
                    .routes
                    .iter()
                    .filter(|r| r.api == a.logical_id)
                    .map(|r| json!({"method": r.method, "path": r.path, "auth": r.auth.describe(), "function": r.function}))
                    .collect();
                json!({"api": a.logical_id, "url": format!("http://127.0.0.1:{}/{}/{}", self.port, a.api_id, a.stage), "routes": routes})
            })
            .collect();
        Response {
            status: 200,
            headers: vec![("Content-Type".into(), "application/json".into())],
            body: serde_json::to_vec_pretty(&json!({ "apis": apis })).unwrap_or_default(),
        }
    }

    fn request_context(&self, call: &Call<'_>) -> Map<String, Value> {
        let mut ctx = Map::new();
        ctx.insert(
            "resourceId".into(),
            json!(util::resource_id(&call.route.path)),
        );
        ctx.insert("resourcePath".into(), json!(call.route.path));
        ctx.insert("httpMethod".into(), json!(call.req.method));
        ctx.insert("extendedRequestId".into(), json!(call.extended_id));
        ctx.insert("requestTime".into(), json!(util::clf_time(call.now)));
        ctx.insert(
            "path".into(),
            json!(format!("/{}{}", call.api.stage, call.path)),
        );
        ctx.insert("accountId".into(), json!(self.account));
        ctx.insert("protocol".into(), json!("HTTP/1.1"));
        ctx.insert("stage".into(), json!(call.api.stage));
        ctx.insert("domainPrefix".into(), json!(call.api.api_id));
        ctx.insert("requestTimeEpoch".into(), json!(call.epoch_ms));
        ctx.insert("requestId".into(), json!(call.request_id));
        ctx.insert(
            "domainName".into(),
            json!(call.req.header("host").unwrap_or("")),
        );
        ctx.insert("apiId".into(), json!(call.api.api_id));
        ctx
    }

    fn invoke_context(&self, function: &str, timeout: Duration, call: &Call<'_>) -> InvokeContext {
        InvokeContext {
            function: function.to_owned(),
            aws_request_id: util::request_id(),
            xray_trace_id: Some(format!("Root={};Sampled=0", call.trace_id)),
            deadline_ms: call.epoch_ms + timeout.as_millis() as u64,
            invoked_function_arn: format!(
                "arn:aws:lambda:{}:{}:function:{function}",
                self.region, self.account
            ),
        }
    }

    /// Invokes a function with its timeout.
    async fn invoke(
        &self,
        function: &str,
        event: Value,
        call: &Call<'_>,
    ) -> Result<Value, FunctionError> {
        let Some(f) = self.functions.get(function) else {
            tracing::error!(function, "no local implementation for this function");
            return Err(FunctionError::new(
                "ResourceNotFoundException",
                format!("function {function} has no local implementation"),
            ));
        };
        let timeout = Duration::from_secs(
            self.model
                .functions
                .get(function)
                .map(|d| d.timeout_secs)
                .unwrap_or(3),
        );
        let ctx = self.invoke_context(function, timeout, call);
        match tokio::time::timeout(timeout, f.invoke(event, ctx)).await {
            Ok(r) => r,
            Err(_) => Err(FunctionError::new(
                "Sandbox.Timedout",
                format!("Task timed out after {:.2} seconds", timeout.as_secs_f64()),
            )),
        }
    }

    /// The REQUEST authorizer: `Ok` is the backend's `requestContext.authorizer`.
    async fn authorize(
        &self,
        call: &Call<'_>,
        def: &AuthorizerDef,
        vars: &mut Vars,
    ) -> Result<Map<String, Value>, GatewayAnswer> {
        // Identity sources: all present and non-empty, else 401 without invoking.
        let mut sources = Vec::new();
        for h in &def.headers {
            let vals: Vec<&str> = call.req.header_values(h).collect();
            if vals.is_empty() || vals.iter().all(|v| v.is_empty()) {
                return Err(GatewayAnswer::unauthorized());
            }
            sources.push(vals.join(","));
        }
        let (query, _) = query_maps(call.req.query());
        for q in &def.query_strings {
            match query.get(q).and_then(Value::as_str) {
                Some(v) if !v.is_empty() => sources.push(v.to_owned()),
                _ => return Err(GatewayAnswer::unauthorized()),
            }
        }
        let key = sources.join("\u{1f}");
        let cache_name = format!("{}/{}/{}", call.api.api_id, call.api.stage, def.name);
        let ttl = self.ttl_override.unwrap_or(def.ttl_secs);
        let mut latency_ms = None;
        let result = match (ttl > 0)
            .then(|| self.cache.get(&cache_name, &key, call.now))
            .flatten()
        {
            Some(r) => r,
            None => {
                let event = self.authorizer_event(call);
                let started = Instant::now();
                let out = self.invoke(&def.function, event, call).await;
                let ms = started.elapsed().as_millis();
                latency_ms = Some(ms);
                vars.set("authorizer.latency", ms.to_string());
                vars.set("authorizer.integrationLatency", ms.to_string());
                match out {
                    Err(e) if e.message == "Unauthorized" => {
                        vars.set("authorizer.status", "401");
                        return Err(GatewayAnswer::unauthorized());
                    }
                    Err(e) => {
                        tracing::error!(authorizer = %def.name, function = %def.function, error = %e,
                            "authorizer failed (API Gateway answers 500)");
                        vars.set("authorizer.status", "500");
                        return Err(GatewayAnswer::authorizer_error());
                    }
                    Ok(v) => match read_authorizer_response(&v) {
                        Ok(r) => {
                            let r = Arc::new(r);
                            self.cache.put(&cache_name, &key, r.clone(), call.now, ttl);
                            r
                        }
                        Err(why) => {
                            tracing::error!(authorizer = %def.name, function = %def.function, error = %why,
                                "authorizer response rejected (API Gateway answers 500)");
                            vars.set("authorizer.status", "500");
                            return Err(GatewayAnswer::authorizer_error());
                        }
                    },
                }
            }
        };
        vars.set("authorizer.principalId", &result.principal_id);
        for (k, v) in &result.context {
            vars.set(&format!("authorizer.{k}"), v);
        }
        match policy::evaluate(&result.statements, &call.method_arn) {
            Outcome::Allow => {}
            Outcome::ExplicitDeny => {
                vars.set("authorizer.status", "403");
                return Err(GatewayAnswer::message(
                    403,
                    "Message",
                    json!("User is not authorized to access this resource with an explicit deny"),
                    "AccessDeniedException",
                    "ACCESS_DENIED",
                ));
            }
            Outcome::ImplicitDeny => {
                vars.set("authorizer.status", "403");
                return Err(GatewayAnswer::message(
                    403,
                    "Message",
                    json!("User is not authorized to access this resource"),
                    "AccessDeniedException",
                    "ACCESS_DENIED",
                ));
            }
        }
        vars.set("authorizer.status", "200");
        let mut block = Map::new();
        for (k, v) in &result.context {
            block.insert(k.clone(), json!(v));
        }
        block.insert("principalId".into(), json!(result.principal_id));
        if let Some(ms) = latency_ms {
            block.insert("integrationLatency".into(), json!(ms as u64));
        } else {
            block.insert("integrationLatency".into(), json!(0));
        }
        Ok(block)
    }

    fn authorizer_event(&self, call: &Call<'_>) -> Value {
        let (headers, multi) = header_maps(&call.headers);
        let (qs, mqs) = query_maps(call.req.query());
        let params = string_map(call.path_parameters.iter().map(|(k, v)| (k, v)));
        let vars = string_map(&call.api.variables);
        let mut ctx = self.request_context(call);
        ctx.insert(
            "identity".into(),
            json!({"apiKey": "", "sourceIp": call.req.peer.ip().to_string(), "clientCert": null}),
        );
        json!({
            "type": "REQUEST",
            "methodArn": call.method_arn,
            "resource": call.route.path,
            "path": call.path,
            "httpMethod": call.req.method,
            "headers": headers,
            "multiValueHeaders": multi,
            "queryStringParameters": qs,
            "multiValueQueryStringParameters": mqs,
            "pathParameters": params,
            "stageVariables": vars,
            "requestContext": ctx,
        })
    }

    /// `AWS_IAM`: SigV4, then the caller role's policies. `Ok` is the backend's
    /// `requestContext.identity` IAM fields.
    fn authorize_iam(
        &self,
        call: &Call<'_>,
        vars: &mut Vars,
    ) -> Result<sigv4::Caller, GatewayAnswer> {
        let caller =
            sigv4::verify(call.req, &self.credentials, &self.region, call.now).map_err(|e| {
                GatewayAnswer::message(
                    403,
                    "message",
                    json!(e.to_string()),
                    e.error_type(),
                    e.response_type(),
                )
            })?;
        vars.set("identity.userArn", &caller.user_arn);
        vars.set("identity.caller", &caller.caller);
        vars.set("identity.user", &caller.caller);
        vars.set("identity.accountId", &caller.account);
        vars.set("identity.accessKey", &caller.access_key);
        let statements = self
            .model
            .role_by_name(&caller.role_name)
            .map(|r| r.statements.clone())
            .unwrap_or_default();
        let outcome = policy::evaluate(&statements, &call.method_arn);
        if outcome != Outcome::Allow {
            let suffix = if outcome == Outcome::ExplicitDeny {
                " with an explicit deny"
            } else {
                ""
            };
            return Err(GatewayAnswer::message(
                403,
                "Message",
                json!(format!(
                    "User: {} is not authorized to perform: execute-api:Invoke on resource: {}{suffix}",
                    caller.user_arn, call.method_arn
                )),
                "AccessDeniedException",
                "ACCESS_DENIED",
            ));
        }
        Ok(caller)
    }

    fn proxy_event(
        &self,
        call: &Call<'_>,
        authorizer: Option<Map<String, Value>>,
        iam: Option<sigv4::Caller>,
    ) -> Value {
        let (headers, multi) = header_maps(&call.headers);
        let (qs, mqs) = query_maps(call.req.query());
        let params = string_map(call.path_parameters.iter().map(|(k, v)| (k, v)));
        let vars = string_map(&call.api.variables);
        let mut ctx = self.request_context(call);
        let (caller, user, user_arn, access_key, account) = match &iam {
            Some(c) => (
                json!(c.caller),
                json!(c.caller),
                json!(c.user_arn),
                json!(c.access_key),
                json!(c.account),
            ),
            None => (
                Value::Null,
                Value::Null,
                Value::Null,
                Value::Null,
                Value::Null,
            ),
        };
        ctx.insert(
            "identity".into(),
            json!({
                "cognitoIdentityPoolId": null,
                "accountId": account,
                "cognitoIdentityId": null,
                "caller": caller,
                "sourceIp": call.req.peer.ip().to_string(),
                "principalOrgId": null,
                "accessKey": access_key,
                "cognitoAuthenticationType": null,
                "cognitoAuthenticationProvider": null,
                "userArn": user_arn,
                "userAgent": call.req.header("user-agent"),
                "user": user,
                "apiKey": null,
                "apiKeyId": null,
                "clientCert": null,
            }),
        );
        if let Some(a) = authorizer {
            ctx.insert("authorizer".into(), Value::Object(a));
        }
        let (body, b64) = if call.req.body.is_empty() {
            (Value::Null, false)
        } else {
            match std::str::from_utf8(&call.req.body) {
                Ok(s) => (json!(s), false),
                Err(_) => (
                    json!(base64::engine::general_purpose::STANDARD.encode(&call.req.body)),
                    true,
                ),
            }
        };
        json!({
            "resource": call.route.path,
            "path": call.path,
            "httpMethod": call.req.method,
            "headers": object_or(headers, Value::Null),
            "multiValueHeaders": object_or(multi, Value::Null),
            "queryStringParameters": object_or(qs, Value::Null),
            "multiValueQueryStringParameters": object_or(mqs, Value::Null),
            "pathParameters": object_or(params, Value::Null),
            "stageVariables": object_or(vars, Value::Null),
            "requestContext": ctx,
            "body": body,
            "isBase64Encoded": b64,
        })
    }

    async fn integrate(
        &self,
        call: &Call<'_>,
        authorizer: Option<Map<String, Value>>,
        iam: Option<sigv4::Caller>,
        vars: &mut Vars,
    ) -> Response {
        let event = self.proxy_event(call, authorizer, iam);
        let started = Instant::now();
        let out = self.invoke(&call.route.function, event, call).await;
        let ms = started.elapsed().as_millis().to_string();
        vars.set("integration.latency", &ms);
        vars.set("integrationLatency", &ms);
        match out {
            Ok(v) => match read_proxy_response(&v) {
                Ok(mut res) => {
                    vars.set("integration.status", "200");
                    vars.set("integrationStatus", "200");
                    local_location(&mut res, call.api);
                    res
                }
                Err(why) => {
                    tracing::error!(function = %call.route.function, error = %why,
                        "malformed Lambda proxy response (API Gateway answers 502)");
                    vars.set("integration.status", "200");
                    self.answer(GatewayAnswer::integration_error(), vars)
                }
            },
            Err(e) => {
                tracing::error!(function = %call.route.function, error = %e,
                    "backend function failed (API Gateway answers 502)");
                vars.set("integration.status", "200");
                vars.set("integration.error", &e.message);
                self.answer(GatewayAnswer::integration_error(), vars)
            }
        }
    }
}

impl Handler for Gateway {
    fn handle(&self, req: Request) -> Pin<Box<dyn Future<Output = Response> + Send + '_>> {
        Box::pin(self.handle_request(req))
    }
}

/// Path parameters and stage variables as the JSON objects both events carry.
fn string_map<'a>(pairs: impl IntoIterator<Item = (&'a String, &'a String)>) -> Map<String, Value> {
    pairs
        .into_iter()
        .map(|(k, v)| (k.clone(), json!(v)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_group_any_case_and_keep_every_value() {
        let (single, multi) = header_maps(&[
            ("X-Service-Api-Key".into(), "a".into()),
            ("Accept".into(), "*/*".into()),
            ("x-service-api-key".into(), "b".into()),
        ]);
        assert_eq!(single["X-Service-Api-Key"], json!("b"));
        assert_eq!(multi["X-Service-Api-Key"], json!(["a", "b"]));
        assert_eq!(multi.len(), 2);
        let (q, mq) = query_maps(Some("a=1&b=x%20y&a=2&flag"));
        assert_eq!(q["a"], json!("2"));
        assert_eq!(mq["a"], json!(["1", "2"]));
        assert_eq!(q["b"], json!("x y"));
        assert_eq!(q["flag"], json!(""));
    }

    #[test]
    fn authorizer_responses_are_checked_like_api_gateway() {
        let ok = json!({"principalId": "svc", "policyDocument": {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "execute-api:Invoke", "Resource": "*"}]},
            "context": {"s": "x", "n": 1, "b": true, "z": null}, "usageIdentifierKey": "k"});
        let r = read_authorizer_response(&ok).unwrap();
        assert_eq!(
            r.context,
            vec![
                ("b".into(), "true".into()),
                ("n".into(), "1".into()),
                ("s".into(), "x".into())
            ]
        );
        assert_eq!(r.usage_identifier_key.as_deref(), Some("k"));
        for (field, bad) in [
            ("context", json!({"o": {"a": 1}})),
            ("context", json!({"a": [1]})),
            ("context", json!("s")),
            ("principalId", json!(null)),
            ("policyDocument", json!({})),
        ] {
            let mut v = ok.clone();
            v[field] = bad.clone();
            assert!(read_authorizer_response(&v).is_err(), "{field}: {bad}");
        }
    }

    #[test]
    fn a_location_under_the_stage_gets_the_local_api_prefix() {
        let api = ApiDef {
            logical_id: "IdentityKeyApi".into(),
            api_id: "identitykey".into(),
            stage: "v1".into(),
            description: String::new(),
            variables: BTreeMap::new(),
            ..Default::default()
        };
        let mut res = Response {
            status: 201,
            headers: vec![
                ("location".into(), "/v1/internal/users/42".into()),
                ("Content-Location".into(), "/v1".into()),
                ("x-other".into(), "/v1/internal".into()),
            ],
            body: Vec::new(),
        };
        local_location(&mut res, &api);
        assert_eq!(
            res.header("location"),
            Some("/identitykey/v1/internal/users/42")
        );
        assert_eq!(res.header("content-location"), Some("/identitykey/v1"));
        assert_eq!(res.header("x-other"), Some("/v1/internal"));
        for untouched in [
            "/internal/users/42",
            "/v10/x",
            "https://example.com/v1/x",
            "users/42",
        ] {
            let mut r = Response {
                status: 201,
                headers: vec![("Location".into(), untouched.into())],
                body: Vec::new(),
            };
            local_location(&mut r, &api);
            assert_eq!(r.header("location"), Some(untouched));
        }
    }

    #[test]
    fn proxy_responses_become_http() {
        let r = read_proxy_response(&json!({"statusCode": 201, "headers": {"a": "1"},
            "multiValueHeaders": {"set-cookie": ["x=1", "y=2"], "A": ["0"]}, "body": "hi", "isBase64Encoded": false}))
        .unwrap();
        assert_eq!(r.status, 201);
        assert_eq!(r.body, b"hi");
        assert_eq!(
            r.headers,
            vec![
                ("A".into(), "0".into()),
                ("set-cookie".into(), "x=1".into()),
                ("set-cookie".into(), "y=2".into())
            ]
        );
        let r = read_proxy_response(
            &json!({"statusCode": 200, "body": "aGk=", "isBase64Encoded": true}),
        )
        .unwrap();
        assert_eq!(r.body, b"hi");
        for bad in [
            json!({"body": "x"}),
            json!({"statusCode": 99}),
            json!({"statusCode": 200, "body": {"a": 1}}),
            json!({"statusCode": 200, "headers": {"a": ["x"]}}),
            json!([]),
        ] {
            assert!(read_proxy_response(&bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn access_log_lines_are_the_format_filled_in() {
        let mut vars = BTreeMap::new();
        vars.insert("requestId".to_owned(), "r1".to_owned());
        vars.insert("authorizer.serviceId".to_owned(), "tutor\"x".to_owned());
        let line = render_access_log(DEFAULT_ACCESS_LOG_FORMAT, &vars);
        let v: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["requestId"], "r1");
        assert_eq!(v["serviceId"], "tutor\"x");
        assert_eq!(v["iamCaller"], "-");
        assert_eq!(
            render_access_log("a $context.stage. b", &BTreeMap::new()),
            "a -. b"
        );
    }
}
