//! How outbound calls prove who the caller is: an API key read once from the caller's
//! own SSM SecureString and cached, or a SigV4 signature made with the default AWS
//! credential chain (an ECS task role or a Lambda role: no secret to manage).

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use aws_credential_types::Credentials;
use aws_sigv4::http_request::{sign, SignableBody, SignableRequest, SigningSettings};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;
use http::header::{HeaderValue, AUTHORIZATION};
use service_auth::ApiKey;
use zeroize::Zeroizing;

use crate::clock::Clock;
use crate::error::ClientError;
use crate::token::{Held, IssuerCall, TokenAuth, TokenRequest, TokenSettings};

/// The header API keys travel in.
pub const API_KEY_HEADER: &str = "x-service-api-key";
/// The SigV4 signing name of API Gateway's invoke API.
pub const SIGV4_SERVICE: &str = "execute-api";
/// Refresh credentials this long before they expire.
const CREDENTIALS_MARGIN: Duration = Duration::from_secs(300);

/// Where the API key comes from.
pub enum KeySource {
    /// A SecureString parameter, read with decryption on first use.
    Ssm {
        client: aws_sdk_ssm::Client,
        parameter: String,
    },
    /// A key given directly (tests, local tools).
    Static(ApiKey),
}

impl fmt::Debug for KeySource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Ssm { parameter, .. } => {
                f.debug_struct("Ssm").field("parameter", parameter).finish()
            }
            // ApiKey's Debug shows its key id only.
            Self::Static(k) => f.debug_tuple("Static").field(k).finish(),
        }
    }
}

/// Where SigV4 credentials come from.
#[derive(Debug, Clone)]
pub enum CredentialsSource {
    /// A provider, normally `aws-config`'s default chain.
    Provider(SharedCredentialsProvider),
    /// Fixed credentials (tests).
    Static(Credentials),
}

/// How calls are authenticated.
pub enum AuthConfig {
    ApiKey {
        source: KeySource,
        /// After a 401/403, re-read the key (it may have been rotated) if the cached one
        /// is older than this. Bounds SSM reads during a storm of refusals.
        refresh_after_rejection: Duration,
    },
    SigV4 {
        region: String,
        credentials: CredentialsSource,
        clock: Option<Clock>,
    },
    /// A short-lived signed token from the token issuer, obtained with the proof of
    /// [`TokenConfig::proof`] (an API key or SigV4) and refreshed before it expires.
    Token(Box<TokenConfig>),
}

impl fmt::Debug for AuthConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::ApiKey { source, .. } => {
                f.debug_struct("ApiKey").field("source", source).finish()
            }
            Self::SigV4 { region, .. } => f.debug_struct("SigV4").field("region", region).finish(),
            Self::Token(t) => f.debug_tuple("Token").field(t).finish(),
        }
    }
}

impl AuthConfig {
    pub fn api_key(key: ApiKey) -> Self {
        Self::ApiKey {
            source: KeySource::Static(key),
            refresh_after_rejection: Duration::from_secs(60),
        }
    }

    pub fn api_key_from_ssm(client: aws_sdk_ssm::Client, parameter: impl Into<String>) -> Self {
        Self::ApiKey {
            source: KeySource::Ssm {
                client,
                parameter: parameter.into(),
            },
            refresh_after_rejection: Duration::from_secs(60),
        }
    }

    /// Token mode with the defaults of [`TokenConfig::new`].
    pub fn token(config: TokenConfig) -> Self {
        Self::Token(Box::new(config))
    }

    pub fn sigv4(region: impl Into<String>, provider: SharedCredentialsProvider) -> Self {
        Self::SigV4 {
            region: region.into(),
            credentials: CredentialsSource::Provider(provider),
            clock: None,
        }
    }
}

/// Where tokens come from and how they are asked for.
pub struct TokenConfig {
    /// Base URL of the token API, stage included (`https://{api}-{vpce}.execute-api.{region}.amazonaws.com/v1`).
    pub issuer_url: String,
    /// The proof traded for tokens: an `api-key` or `iam` [`AuthConfig`].
    pub proof: AuthConfig,
    pub request: TokenRequest,
    pub settings: TokenSettings,
    /// The clock tokens are scheduled with; tests fix it.
    pub clock: Option<Clock>,
}

impl fmt::Debug for TokenConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenConfig")
            .field("issuer_url", &self.issuer_url)
            .field("proof", &self.proof)
            .field("request", &self.request)
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl TokenConfig {
    pub fn new(issuer_url: impl Into<String>, proof: AuthConfig) -> Self {
        Self {
            issuer_url: issuer_url.into(),
            proof,
            request: TokenRequest::default(),
            settings: TokenSettings::default(),
            clock: None,
        }
    }
}

pub(crate) enum Auth {
    ApiKey(ApiKeyAuth),
    SigV4(SigV4Auth),
    Token(TokenAuth),
}

/// The token a request was sent with, for what a 401 means.
pub(crate) type Applied = Option<Arc<Held>>;

impl Auth {
    /// `issuer_call` makes the token issuer's call in token mode from its URL and the
    /// proof (the client being built makes it with its own caller, timeout and
    /// retries).
    pub(crate) fn new(
        config: AuthConfig,
        issuer_call: impl FnOnce(String, AuthConfig) -> Result<IssuerCall, ClientError>,
    ) -> Result<Self, ClientError> {
        Ok(match config {
            AuthConfig::Token(t) => {
                let TokenConfig {
                    issuer_url,
                    proof,
                    request,
                    settings,
                    clock,
                } = *t;
                let iam = match &proof {
                    AuthConfig::ApiKey { .. } => false,
                    AuthConfig::SigV4 { .. } => true,
                    AuthConfig::Token(_) => {
                        return Err(ClientError::Config(
                            "a token is obtained with an API key or SigV4, not with a token".into(),
                        ))
                    }
                };
                let issuer = issuer_call(issuer_url, proof)?;
                Auth::Token(TokenAuth::new(issuer, iam, &request, settings, clock)?)
            }
            other => Self::plain(other)?,
        })
    }

    fn plain(config: AuthConfig) -> Result<Self, ClientError> {
        Ok(match config {
            AuthConfig::ApiKey {
                source,
                refresh_after_rejection,
            } => {
                let (origin, cached) = match source {
                    KeySource::Ssm { client, parameter } => (Some((client, parameter)), None),
                    KeySource::Static(k) => (None, Some((Arc::new(k), Instant::now()))),
                };
                Auth::ApiKey(ApiKeyAuth {
                    ssm: origin,
                    refresh_after_rejection,
                    cached: tokio::sync::Mutex::new(cached),
                })
            }
            AuthConfig::SigV4 {
                region,
                credentials,
                clock,
            } => {
                let provider = match credentials {
                    CredentialsSource::Provider(p) => p,
                    CredentialsSource::Static(c) => SharedCredentialsProvider::new(c),
                };
                Auth::SigV4(SigV4Auth {
                    region,
                    provider,
                    clock: clock.unwrap_or_else(|| Arc::new(SystemTime::now)),
                    cached: tokio::sync::Mutex::new(None),
                })
            }
            AuthConfig::Token(_) => {
                return Err(ClientError::Config(
                    "token mode needs its issuer client".into(),
                ))
            }
        })
    }

    pub(crate) fn mode(&self) -> &'static str {
        match self {
            Auth::ApiKey(_) => "api-key",
            Auth::SigV4(_) => "iam",
            Auth::Token(_) => "token",
        }
    }

    /// Adds the credentials to a fully built request (all other headers set).
    /// `service` names the called service in errors.
    pub(crate) async fn apply<B>(
        &self,
        req: &mut http::Request<B>,
        body: &[u8],
        service: &str,
    ) -> Result<Applied, ClientError> {
        let credentials = |reason: String| ClientError::Credentials {
            service: service.to_owned(),
            reason,
        };
        match self {
            Auth::ApiKey(a) => {
                let key = a.key().await.map_err(credentials)?;
                let mut v = HeaderValue::from_str(key.expose_secret())
                    .map_err(|_| credentials("the API key is not a valid header value".into()))?;
                v.set_sensitive(true);
                req.headers_mut().insert(API_KEY_HEADER, v);
                Ok(None)
            }
            Auth::SigV4(s) => {
                let creds = s.credentials().await.map_err(credentials)?;
                sign_request(req, body, &creds, &s.region, (s.clock)()).map_err(credentials)?;
                Ok(None)
            }
            Auth::Token(t) => {
                let held = t.token(service).await?;
                let mut v = HeaderValue::from_str(&format!("Bearer {}", held.expose_secret()))
                    .map_err(|_| credentials("the token is not a valid header value".into()))?;
                v.set_sensitive(true);
                req.headers_mut().insert(AUTHORIZATION, v);
                Ok(Some(held))
            }
        }
    }

    /// The called service refused our credentials with `status` (401/403). Returns
    /// whether the call is worth one more try with new credentials (token mode, 401).
    pub(crate) async fn rejected(&self, status: u16, applied: &Applied) -> bool {
        match (self, applied) {
            (Auth::ApiKey(a), _) => {
                a.rejected().await;
                false
            }
            // A 403 is the token's permissions: a new token would carry the same.
            (Auth::Token(t), Some(held)) if status == 401 => t.rejected(held),
            _ => false,
        }
    }
}

pub(crate) struct ApiKeyAuth {
    /// Where to (re)read the key; `None` for a key given directly.
    ssm: Option<(aws_sdk_ssm::Client, String)>,
    refresh_after_rejection: Duration,
    cached: tokio::sync::Mutex<Option<(Arc<ApiKey>, Instant)>>,
}

impl ApiKeyAuth {
    async fn key(&self) -> Result<Arc<ApiKey>, String> {
        // One reader at a time: concurrent first calls share one SSM read.
        let mut cached = self.cached.lock().await;
        if let Some((k, _)) = cached.as_ref() {
            return Ok(k.clone());
        }
        let Some((client, parameter)) = &self.ssm else {
            return Err("no API key configured".to_owned());
        };
        let out = client
            .get_parameter()
            .name(parameter)
            .with_decryption(true)
            .send()
            .await
            .map_err(|e| {
                format!(
                    "reading SSM parameter {parameter}: {}",
                    aws_sdk_ssm::error::DisplayErrorContext(e)
                )
            })?;
        let value = Zeroizing::new(
            out.parameter
                .and_then(|p| p.value)
                .ok_or_else(|| format!("SSM parameter {parameter} has no value"))?,
        );
        let key = ApiKey::parse(value.trim())
            .map_err(|e| format!("SSM parameter {parameter} does not hold a service key: {e}"))?;
        let key = Arc::new(key);
        tracing::info!(parameter = %parameter, key_id = %key.key_id(), "service API key loaded");
        *cached = Some((key.clone(), Instant::now()));
        Ok(key)
    }

    async fn rejected(&self) {
        if self.ssm.is_none() {
            return;
        }
        let mut cached = self.cached.lock().await;
        if let Some((k, at)) = cached.as_ref() {
            if at.elapsed() >= self.refresh_after_rejection {
                tracing::warn!(key_id = %k.key_id(), "service API key refused; it will be read again");
                *cached = None;
            }
        }
    }
}

pub(crate) struct SigV4Auth {
    region: String,
    provider: SharedCredentialsProvider,
    clock: Clock,
    cached: tokio::sync::Mutex<Option<Credentials>>,
}

impl SigV4Auth {
    /// Credentials from the provider, cached until 5 minutes before they expire (the
    /// default chain does not cache by itself).
    async fn credentials(&self) -> Result<Credentials, String> {
        let mut cached = self.cached.lock().await;
        let now = (self.clock)();
        if let Some(c) = cached.as_ref() {
            if c.expiry().is_none_or(|e| now + CREDENTIALS_MARGIN < e) {
                return Ok(c.clone());
            }
        }
        let c = self.provider.provide_credentials().await.map_err(|e| {
            format!(
                "AWS credentials: {}",
                aws_sdk_ssm::error::DisplayErrorContext(e)
            )
        })?;
        *cached = Some(c.clone());
        Ok(c)
    }
}

/// Signs `req` in place with SigV4 for API Gateway (`execute-api`): adds `x-amz-date`,
/// `x-amz-security-token` (temporary credentials) and `authorization`, signing every
/// header already on the request except `user-agent` and `x-amzn-trace-id`.
pub fn sign_request<B>(
    req: &mut http::Request<B>,
    body: &[u8],
    creds: &Credentials,
    region: &str,
    time: SystemTime,
) -> Result<(), String> {
    let identity: Identity = creds.clone().into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name(SIGV4_SERVICE)
        .time(time)
        .settings(SigningSettings::default())
        .build()
        .map_err(|e| format!("SigV4 parameters: {e}"))?
        .into();
    let headers = req
        .headers()
        .iter()
        .map(|(k, v)| v.to_str().map(|v| (k.as_str(), v)))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| "a header value is not visible ASCII; it cannot be signed".to_owned())?;
    let uri = req.uri().to_string();
    let signable = SignableRequest::new(
        req.method().as_str(),
        uri,
        headers.into_iter(),
        SignableBody::Bytes(body),
    )
    .map_err(|e| format!("SigV4: {e}"))?;
    let (instructions, _) = sign(signable, &params)
        .map_err(|e| format!("SigV4: {e}"))?
        .into_parts();
    instructions.apply_to_request_http1x(req);
    for name in [AUTHORIZATION.as_str(), "x-amz-security-token"] {
        if let Some(v) = req.headers_mut().get_mut(name) {
            v.set_sensitive(true);
        }
    }
    Ok(())
}
