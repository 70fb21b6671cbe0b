//! The client: one per called service, built once per process and shared.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{
    HeaderValue, ACCEPT, CONTENT_LENGTH, CONTENT_TYPE, HOST, RETRY_AFTER, USER_AGENT,
};
use http::{Method, StatusCode, Uri};
use http_body_util::{BodyExt, Full, Limited};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use serde::de::DeserializeOwned;
use serde::Serialize;
use service_auth::correlation::{CorrelationId, CORRELATION_ID_HEADER};

use crate::auth::{Applied, Auth, AuthConfig};
use service_auth::clock::{SharedClock, SystemClock};

use crate::breaker::{Admission, Breaker, BreakerConfig};
use crate::error::ClientError;
use crate::retry::{Outcome, RetryPolicy};
use crate::route::Route;
use crate::token::IssuerCall;

/// Everything a client needs. [`ClientConfig::new`] fills the defaults: 5 s timeout,
/// 3 attempts, breaker opening after 5 consecutive failures for 30 s, 1 MiB answers.
pub struct ClientConfig {
    /// Name of the called service, for errors and logs (`identity-service`).
    pub service: String,
    /// Base URL of the API, stage included (`https://…/prod`). `https`, or `http` to a
    /// loopback address only.
    pub base_url: String,
    /// Our own service name, sent in `user-agent`.
    pub caller: String,
    pub auth: AuthConfig,
    /// Bound on each attempt: connect, send, and read the whole answer.
    pub timeout: Duration,
    pub retry: RetryPolicy,
    pub breaker: BreakerConfig,
    pub max_response_bytes: usize,
    /// The clock the breaker's cool-down runs on (its monotonic reading): the system's
    /// in production; a test moves its own instead of sleeping.
    pub clock: SharedClock,
}

impl std::fmt::Debug for ClientConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientConfig")
            .field("service", &self.service)
            .field("base_url", &self.base_url)
            .field("caller", &self.caller)
            .field("auth", &self.auth)
            .field("timeout", &self.timeout)
            .field("retry", &self.retry)
            .field("breaker", &self.breaker)
            .field("max_response_bytes", &self.max_response_bytes)
            .finish_non_exhaustive()
    }
}

impl ClientConfig {
    pub fn new(
        service: impl Into<String>,
        base_url: impl Into<String>,
        caller: impl Into<String>,
        auth: AuthConfig,
    ) -> Self {
        Self {
            service: service.into(),
            base_url: base_url.into(),
            caller: caller.into(),
            auth,
            timeout: Duration::from_secs(5),
            retry: RetryPolicy::default(),
            breaker: BreakerConfig::default(),
            max_response_bytes: 1 << 20,
            clock: SystemClock::shared(),
        }
    }
}

type Http = HyperClient<HttpsConnector<HttpConnector>, Full<Bytes>>;

/// A client for one internal service. Cheap to clone; clones share the connection
/// pool, the cached credentials and the circuit breaker.
#[derive(Clone)]
pub struct ServiceClient {
    inner: Arc<Inner>,
}

struct Inner {
    service: String,
    /// `scheme://authority`
    origin: String,
    authority: HeaderValue,
    /// Path of the base URL without a trailing slash (`/prod`), or empty.
    prefix: String,
    user_agent: HeaderValue,
    auth: Auth,
    http: Http,
    timeout: Duration,
    retry: RetryPolicy,
    breaker: Breaker,
    clock: SharedClock,
    max_response_bytes: usize,
}

impl std::fmt::Debug for ServiceClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceClient")
            .field("service", &self.inner.service)
            .field(
                "base",
                &format_args!("{}{}", self.inner.origin, self.inner.prefix),
            )
            .field("auth", &self.inner.auth.mode())
            .finish_non_exhaustive()
    }
}

fn is_loopback(host: &str) -> bool {
    matches!(host, "localhost" | "[::1]") || host.starts_with("127.")
}

impl ServiceClient {
    pub fn new(config: ClientConfig) -> Result<Self, ClientError> {
        let bad = |why: &str| ClientError::Config(format!("base URL of {}: {why}", config.service));
        let uri: Uri = config.base_url.parse().map_err(|_| bad("not a URL"))?;
        let scheme = uri.scheme_str().ok_or_else(|| bad("no scheme"))?;
        let authority = uri.authority().ok_or_else(|| bad("no host"))?;
        if authority.as_str().contains('@') {
            return Err(bad("credentials in a URL are not allowed"));
        }
        match scheme {
            "https" => {}
            "http" if is_loopback(authority.host()) => {}
            "http" => return Err(bad("http is allowed to loopback addresses only; use https")),
            _ => return Err(bad("the scheme must be https")),
        }
        if uri.query().is_some() {
            return Err(bad("no query string allowed"));
        }
        let prefix = uri.path().trim_end_matches('/').to_owned();
        let user_agent = HeaderValue::from_str(&format!(
            "service-client/{} ({})",
            env!("CARGO_PKG_VERSION"),
            config.caller
        ))
        .map_err(|_| ClientError::Config("the caller name is not a valid header value".into()))?;

        let (caller, timeout, retry) = (config.caller.clone(), config.timeout, config.retry);
        let auth = Auth::new(config.auth, |url, proof| {
            let mut c = ClientConfig::new("token-issuer", url, caller, proof);
            c.timeout = timeout;
            c.retry = retry;
            let issuer = ServiceClient::new(c)?;
            // Boxed: the issuer's client is called from within this client's `send`.
            let call: IssuerCall = Box::new(move |route, body| {
                let issuer = issuer.clone();
                Box::pin(async move {
                    issuer
                        .send(&route, &[], body, &CorrelationId::generate(), true)
                        .await
                })
            });
            Ok(call)
        })?;

        let mut connector = HttpConnector::new();
        connector.enforce_http(false);
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(config.timeout));
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_provider_and_native_roots(rustls::crypto::aws_lc_rs::default_provider())
            .map_err(|e| ClientError::Config(format!("TLS root certificates: {e}")))?
            .https_or_http()
            .enable_http1()
            .wrap_connector(connector);
        let http = HyperClient::builder(TokioExecutor::new())
            // Lambda freezes between invocations; do not trust a connection idle for long.
            .pool_idle_timeout(Duration::from_secs(30))
            .pool_timer(TokioTimer::new())
            .build(https);

        Ok(Self {
            inner: Arc::new(Inner {
                origin: format!("{scheme}://{authority}"),
                authority: HeaderValue::from_str(authority.as_str())
                    .map_err(|_| bad("the host is not a valid header value"))?,
                service: config.service,
                prefix,
                user_agent,
                auth,
                http,
                timeout: config.timeout,
                retry: config.retry,
                breaker: Breaker::new(config.breaker),
                clock: config.clock,
                max_response_bytes: config.max_response_bytes,
            }),
        })
    }

    /// The called service's name.
    pub fn service(&self) -> &str {
        &self.inner.service
    }

    /// `GET` a route and decode its JSON answer.
    pub async fn get_json<T: DeserializeOwned>(
        &self,
        route: &Route,
        params: &[&str],
        correlation: Option<&CorrelationId>,
    ) -> Result<T, ClientError> {
        self.send_json::<(), T>(route, params, None, correlation)
            .await
    }

    /// Calls a route with an optional JSON body and decodes the JSON answer. `params`
    /// fill the route's `{…}` in order, each percent-encoded as one path segment. The
    /// correlation id is sent as `x-correlation-id`; without one a new id is made.
    pub async fn send_json<B: Serialize, T: DeserializeOwned>(
        &self,
        route: &Route,
        params: &[&str],
        body: Option<&B>,
        correlation: Option<&CorrelationId>,
    ) -> Result<T, ClientError> {
        let made;
        let correlation = match correlation {
            Some(c) => c,
            None => {
                made = CorrelationId::generate();
                &made
            }
        };
        let inner = &*self.inner;
        let body = match body {
            Some(b) => Bytes::from(serde_json::to_vec(b).map_err(|e| ClientError::Request {
                service: inner.service.clone(),
                route: route.name(),
                reason: e.to_string(),
            })?),
            None => Bytes::new(),
        };
        let bytes = self
            .send(
                route,
                params,
                body,
                correlation,
                route.method.is_idempotent(),
            )
            .await?;
        serde_json::from_slice(&bytes).map_err(|e| ClientError::Decode {
            service: self.inner.service.clone(),
            route: route.name(),
            reason: e.to_string(),
        })
    }

    async fn send(
        &self,
        route: &Route,
        params: &[&str],
        body: Bytes,
        correlation: &CorrelationId,
        idempotent: bool,
    ) -> Result<Bytes, ClientError> {
        let inner = &*self.inner;
        let request_error = |reason: String| ClientError::Request {
            service: inner.service.clone(),
            route: route.name(),
            reason,
        };
        let path = route
            .path(params)
            .map_err(|e| request_error(e.to_string()))?;
        let uri: Uri = format!("{}{}{}", inner.origin, inner.prefix, path)
            .parse()
            .map_err(|_| request_error("the URL is invalid".into()))?;
        let correlation_header = HeaderValue::from_str(correlation.as_str())
            .map_err(|_| request_error("invalid correlation id".into()))?;

        let mut attempt = 0;
        let mut auth_retried = false;
        loop {
            attempt += 1;
            let probe = match inner.breaker.admit(inner.clock.instant()) {
                Admission::Go { probe } => probe,
                Admission::Refuse { retry_after } => {
                    tracing::warn!(service = %inner.service, route = %route.template,
                        correlation_id = %correlation, "circuit open: call not made");
                    return Err(ClientError::CircuitOpen {
                        service: inner.service.clone(),
                        route: route.name(),
                        retry_after,
                    });
                }
            };
            let mut guard = ProbeGuard {
                breaker: &inner.breaker,
                clock: &inner.clock,
                armed: probe,
            };

            let mut req = http::Request::builder()
                .method(route.method.clone())
                .uri(uri.clone())
                .header(HOST, inner.authority.clone())
                .header(ACCEPT, "application/json")
                .header(USER_AGENT, inner.user_agent.clone())
                .header(CORRELATION_ID_HEADER, correlation_header.clone());
            if !body.is_empty() || route.method == Method::POST || route.method == Method::PUT {
                req = req
                    .header(CONTENT_TYPE, "application/json")
                    .header(CONTENT_LENGTH, body.len());
            }
            let mut req = req
                .body(Full::new(body.clone()))
                .map_err(|e| request_error(e.to_string()))?;
            // Credentials are applied on every attempt: a SigV4 signature carries the time.
            let applied: Applied = inner.auth.apply(&mut req, &body, &inner.service).await?;

            let result = tokio::time::timeout(inner.timeout, self.exchange(req)).await;
            let (outcome, error) = match result {
                Ok(Ok((status, _, bytes))) if status.is_success() => {
                    guard.armed = false;
                    inner.breaker.success();
                    return Ok(bytes);
                }
                Ok(Ok((status, headers, bytes))) => {
                    let retry_after = headers
                        .get(RETRY_AFTER)
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.trim().parse::<u64>().ok())
                        .map(Duration::from_secs);
                    if (status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN)
                        && inner.auth.rejected(status.as_u16(), &applied).await
                        && !auth_retried
                    {
                        // A refused token: one more try with a new one, not counted as
                        // an attempt (the service answered; it is not failing).
                        tracing::info!(service = %inner.service, route = %route.template,
                            correlation_id = %correlation, "token refused; retrying once with a new one");
                        auth_retried = true;
                        guard.armed = false;
                        inner.breaker.success();
                        attempt -= 1;
                        continue;
                    }
                    (
                        Outcome::Status(status.as_u16()),
                        ClientError::Status {
                            service: inner.service.clone(),
                            route: route.name(),
                            status: status.as_u16(),
                            code: error_code(&bytes),
                            retry_after,
                        },
                    )
                }
                Ok(Err(reason)) => (
                    Outcome::ConnectionError,
                    ClientError::Connection {
                        service: inner.service.clone(),
                        route: route.name(),
                        reason,
                    },
                ),
                Err(_) => (
                    Outcome::Timeout,
                    ClientError::Timeout {
                        service: inner.service.clone(),
                        route: route.name(),
                        timeout: inner.timeout,
                    },
                ),
            };
            guard.armed = false;
            if outcome.is_failure() {
                if inner.breaker.failure(inner.clock.instant()) {
                    tracing::warn!(service = %inner.service, "circuit opened after repeated failures");
                }
            } else {
                inner.breaker.success();
            }
            let delay = inner.retry.next_delay_if(
                idempotent,
                attempt,
                outcome,
                error.retry_after(),
                fastrand::f64(),
            );
            match delay {
                Some(d) if !probe => {
                    tracing::warn!(service = %inner.service, route = %route.template,
                        correlation_id = %correlation, attempt, delay_ms = d.as_millis() as u64,
                        "retrying: {error}");
                    tokio::time::sleep(d).await;
                }
                _ => {
                    tracing::warn!(service = %inner.service, route = %route.template,
                        correlation_id = %correlation, attempt, "call failed: {error}");
                    return Err(error);
                }
            }
        }
    }

    /// One HTTP exchange: send, then read the whole (bounded) answer.
    async fn exchange(
        &self,
        req: http::Request<Full<Bytes>>,
    ) -> Result<(StatusCode, http::HeaderMap, Bytes), String> {
        let res = self
            .inner
            .http
            .request(req)
            .await
            .map_err(|e| error_chain(&e))?;
        let (parts, body) = res.into_parts();
        let bytes = Limited::new(body, self.inner.max_response_bytes)
            .collect()
            .await
            .map_err(|e| format!("reading the answer: {e}"))?
            .to_bytes();
        Ok((parts.status, parts.headers, bytes))
    }
}

/// Releases a half-open probe when an attempt ends without a verdict (cancelled).
struct ProbeGuard<'a> {
    breaker: &'a Breaker,
    clock: &'a SharedClock,
    armed: bool,
}

impl Drop for ProbeGuard<'_> {
    fn drop(&mut self) {
        if self.armed {
            self.breaker.abandon_probe(self.clock.instant());
        }
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(inner) = src {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        src = inner.source();
    }
    s
}

/// The `error` field of a JSON error body, when it is a short plain code.
fn error_code(body: &[u8]) -> Option<String> {
    let v: serde_json::Value = serde_json::from_slice(body).ok()?;
    let code = v.get("error")?.as_str()?;
    (code.len() <= 64
        && code
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-'))
    .then(|| code.to_owned())
}
