//! Configuration from the environment, read once at start. Every variable and its
//! default is listed in docs/contracts.md, "Environment variables".

use std::path::PathBuf;
use std::time::Duration;

use service_auth::cache::RefreshPolicy;

use keystore_ssm::{StoreLayout, DEFAULT_KEY_PATH};

use crate::apis::{parse_api_names, ApiNamesConfig};

/// Where keys come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceConfig {
    /// SSM Parameter Store: documents under `path`, optional legacy map parameter.
    Ssm {
        path: String,
        legacy_parameter: Option<String>,
    },
    /// A JSON file of service documents (the development keys' hashes are one:
    /// `dev/dev-store.json`).
    File(PathBuf),
    /// The configuration could not be read: nothing is loaded, every request is
    /// refused and the reason logged.
    Invalid(String),
}

/// Which credentials the authorizer accepts (`SVCAUTH_ACCEPT`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Accept {
    /// `api-key` (the default): only `x-service-api-key`; `Authorization` is ignored.
    #[default]
    ApiKey,
    /// `token`: only `Authorization: Bearer`; no key-store load at start.
    Token,
    /// `api-key,token`: either one, never both on one request.
    Either,
}

impl Accept {
    pub fn keys(self) -> bool {
        matches!(self, Self::ApiKey | Self::Either)
    }

    pub fn tokens(self) -> bool {
        matches!(self, Self::Token | Self::Either)
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::ApiKey => "api-key",
            Self::Token => "token",
            Self::Either => "api-key,token",
        }
    }

    fn parse(text: &str) -> Result<Self, ConfigError> {
        let mut keys = false;
        let mut tokens = false;
        for part in text.split(',').map(str::trim) {
            match part {
                "api-key" => keys = true,
                "token" => tokens = true,
                _ => return Err(ConfigError::Accept(text.to_owned())),
            }
        }
        Ok(match (keys, tokens) {
            (true, false) => Self::ApiKey,
            (false, true) => Self::Token,
            (true, true) => Self::Either,
            (false, false) => return Err(ConfigError::Accept(text.to_owned())),
        })
    }
}

/// Where the key set (JWKS) that verifies tokens comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JwksConfig {
    /// An SSM `SecureString` parameter holding the JWKS (`SVCAUTH_TOKEN_JWKS_PARAMETER`).
    Ssm { parameter: String },
    /// A JWKS given inline (`SVCAUTH_TOKEN_JWKS`: tests and local runs). Checked when
    /// the configuration is read.
    Inline(String),
}

/// How tokens are verified; present when [`Accept::tokens`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenConfig {
    /// The `iss` every token must carry (`SVCAUTH_TOKEN_ISSUER`, e.g. `svcauth:dev`).
    pub issuer: String,
    pub jwks: JwksConfig,
    /// Least lifetime a token must have left (`SVCAUTH_TOKEN_MIN_REMAINING_SECS`):
    /// the API's authorizer result TTL, so a cached answer never outlives its token.
    pub min_remaining_secs: u64,
}

/// Where the store at `ssm_path` keeps its siblings (`keystore_ssm::StoreLayout`, the
/// one owner of the layout): the default of `SVCAUTH_TOKEN_JWKS_PARAMETER` and
/// `SVCAUTH_API_PATH`. A path that is not a valid key path is refused where the store
/// is built; here it falls back to the default path's layout.
fn layout(ssm_path: Option<&str>) -> StoreLayout {
    ssm_path
        .and_then(|p| StoreLayout::new(p.trim()).ok())
        .or_else(|| StoreLayout::new(DEFAULT_KEY_PATH).ok())
        .expect("the default key path is valid")
}
/// `SVCAUTH_TOKEN_MIN_REMAINING_SECS` when unset: API Gateway's default result TTL.
pub const DEFAULT_MIN_REMAINING_SECS: u64 = 300;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub source: SourceConfig,
    /// Which credentials are accepted (`SVCAUTH_ACCEPT`).
    pub accept: Accept,
    /// Token verification, when tokens are accepted.
    pub token: Option<TokenConfig>,
    pub refresh: RefreshPolicy,
    /// Per SSM call attempt.
    pub ssm_attempt_timeout: Duration,
    /// Whole store load.
    pub load_timeout: Duration,
    pub metrics_namespace: String,
    /// Where the name of each API comes from (`SVCAUTH_API_NAMES`, else SSM under
    /// `SVCAUTH_API_PATH` for `ssm`, none for `file`).
    pub api_names: ApiNamesConfig,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("SVCAUTH_KEY_SOURCE is not set: set it to `ssm` (with SVCAUTH_SSM_PATH) or `file` (with SVCAUTH_KEYS_FILE; the development keys are the file dev/dev-store.json)")]
    MissingSource,
    #[error("SVCAUTH_KEY_SOURCE={0:?} is not one of `ssm`, `file`")]
    UnknownSource(String),
    /// No build embeds the development keys: they are a file like any other, which a
    /// deployed function does not have.
    #[error("SVCAUTH_KEY_SOURCE=dev: no build holds the development keys; for a local run read their file: SVCAUTH_KEY_SOURCE=file SVCAUTH_KEYS_FILE=dev/dev-store.json (and SVCAUTH_API_NAMES=a1b2c3d4e5=identity for the sample events); a deployed function uses ssm")]
    DevSource,
    #[error("SVCAUTH_KEY_SOURCE=file needs SVCAUTH_KEYS_FILE, the path of a JSON array of service documents")]
    MissingFile,
    #[error("{0}")]
    ApiNames(String),
    #[error("SVCAUTH_ACCEPT={0:?} is not `api-key`, `token` or `api-key,token`")]
    Accept(String),
    #[error("SVCAUTH_ACCEPT={0} needs SVCAUTH_TOKEN_ISSUER, the `iss` the token issuer writes (its SVCAUTH_TOKEN_ISSUER, e.g. svcauth:dev)")]
    MissingIssuer(&'static str),
    #[error("SVCAUTH_TOKEN_JWKS is not a usable JWKS ({0}): give the JSON of `GET /.well-known/jwks.json`, or unset it to read SVCAUTH_TOKEN_JWKS_PARAMETER")]
    InlineJwks(String),
    #[error("SVCAUTH_TOKEN_JWKS_PARAMETER={0:?} is not an SSM parameter name (it starts with /)")]
    JwksParameter(String),
    #[error("SVCAUTH_TOKEN_MIN_REMAINING_SECS={0} leaves no usable token (tokens live at most {max} s): set it to the API's authorizer result TTL (at most 3600, 60 recommended)", max = service_token::verify::MAX_LIFETIME_SECS)]
    MinRemaining(u64),
    #[error("{name}={value:?} is not a whole number {unit}")]
    Number {
        name: &'static str,
        value: String,
        unit: &'static str,
    },
}

impl Config {
    /// The configuration, or one whose source is [`SourceConfig::Invalid`] with the
    /// reason: the authorizer then starts, refuses everything and says why, instead of
    /// crash-looping.
    pub fn from_env() -> Self {
        Self::from_lookup_or_refusing(|k| std::env::var(k).ok())
    }

    /// [`Config::from_lookup`], or when it fails, the configuration that refuses every
    /// request and logs why (what [`Config::from_env`] reads).
    pub fn from_lookup_or_refusing(get: impl Fn(&str) -> Option<String>) -> Self {
        Self::from_lookup(get).unwrap_or_else(|e| Self {
            source: SourceConfig::Invalid(e.to_string()),
            // Refused through the key path, whose load at start logs the reason.
            accept: Accept::ApiKey,
            token: None,
            refresh: RefreshPolicy::default(),
            ssm_attempt_timeout: Duration::from_millis(1500),
            load_timeout: Duration::from_millis(4000),
            metrics_namespace: "ServiceAuth".to_owned(),
            api_names: ApiNamesConfig::Static(Default::default()),
        })
    }

    /// Reads the configuration through `get` (the process environment in `main`).
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let get = |k: &str| get(k).filter(|v| !v.trim().is_empty());
        let source = match get("SVCAUTH_KEY_SOURCE").as_deref().map(str::trim) {
            None => return Err(ConfigError::MissingSource),
            Some("ssm") => SourceConfig::Ssm {
                path: get("SVCAUTH_SSM_PATH").unwrap_or_else(|| DEFAULT_KEY_PATH.to_owned()),
                legacy_parameter: get("SVCAUTH_LEGACY_PARAMETER"),
            },
            Some("file") => SourceConfig::File(
                get("SVCAUTH_KEYS_FILE")
                    .ok_or(ConfigError::MissingFile)?
                    .into(),
            ),
            Some("dev") => return Err(ConfigError::DevSource),
            Some(other) => return Err(ConfigError::UnknownSource(other.to_owned())),
        };
        let number =
            |name: &'static str, default: u64, unit: &'static str| -> Result<u64, ConfigError> {
                match get(name) {
                    None => Ok(default),
                    Some(v) => v.trim().parse().map_err(|_| ConfigError::Number {
                        name,
                        value: v,
                        unit,
                    }),
                }
            };
        let refresh = RefreshPolicy {
            ttl: Duration::from_secs(number("SVCAUTH_CACHE_TTL_SECS", 300, "of seconds")?),
            stale_grace: Duration::from_secs(number(
                "SVCAUTH_STALE_GRACE_SECS",
                900,
                "of seconds",
            )?),
            retry_interval: Duration::from_secs(number(
                "SVCAUTH_RETRY_INTERVAL_SECS",
                30,
                "of seconds",
            )?),
        };
        let api_names = match (get("SVCAUTH_API_NAMES"), &source) {
            (Some(text), _) => {
                ApiNamesConfig::Static(parse_api_names(&text).map_err(ConfigError::ApiNames)?)
            }
            (None, SourceConfig::Ssm { path, .. }) => ApiNamesConfig::Ssm {
                path: get("SVCAUTH_API_PATH").unwrap_or_else(|| layout(Some(path)).apis()),
            },
            (None, _) => ApiNamesConfig::Static(Default::default()),
        };
        let accept = match get("SVCAUTH_ACCEPT") {
            None => Accept::ApiKey,
            Some(text) => Accept::parse(&text)?,
        };
        let token = if accept.tokens() {
            let issuer = get("SVCAUTH_TOKEN_ISSUER")
                .map(|v| v.trim().to_owned())
                .ok_or(ConfigError::MissingIssuer(accept.name()))?;
            let jwks = match get("SVCAUTH_TOKEN_JWKS") {
                Some(json) => {
                    let keys = service_token::KeySet::from_json(json.as_bytes())
                        .map_err(|e| ConfigError::InlineJwks(e.to_string()))?;
                    if keys.is_empty() {
                        return Err(ConfigError::InlineJwks("it has no ES256 key".into()));
                    }
                    JwksConfig::Inline(json)
                }
                None => {
                    let parameter = get("SVCAUTH_TOKEN_JWKS_PARAMETER")
                        .map(|v| v.trim().to_owned())
                        .unwrap_or_else(|| layout(get("SVCAUTH_SSM_PATH").as_deref()).key_set());
                    if !parameter.starts_with('/') || parameter.contains(char::is_whitespace) {
                        return Err(ConfigError::JwksParameter(parameter));
                    }
                    JwksConfig::Ssm { parameter }
                }
            };
            let min_remaining_secs = number(
                "SVCAUTH_TOKEN_MIN_REMAINING_SECS",
                DEFAULT_MIN_REMAINING_SECS,
                "of seconds",
            )?;
            if min_remaining_secs >= service_token::verify::MAX_LIFETIME_SECS {
                return Err(ConfigError::MinRemaining(min_remaining_secs));
            }
            Some(TokenConfig {
                issuer,
                jwks,
                min_remaining_secs,
            })
        } else {
            None
        };
        Ok(Self {
            accept,
            token,
            api_names,
            source,
            refresh,
            ssm_attempt_timeout: Duration::from_millis(number(
                "SVCAUTH_SSM_TIMEOUT_MS",
                1500,
                "of milliseconds",
            )?),
            load_timeout: Duration::from_millis(number(
                "SVCAUTH_LOAD_TIMEOUT_MS",
                4000,
                "of milliseconds",
            )?),
            metrics_namespace: get("SVCAUTH_METRICS_NAMESPACE")
                .unwrap_or_else(|| "ServiceAuth".to_owned()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn cfg(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_lookup(|k| map.get(k).cloned())
    }

    #[test]
    fn source_must_be_chosen_explicitly() {
        assert_eq!(cfg(&[]), Err(ConfigError::MissingSource));
        assert_eq!(
            cfg(&[("SVCAUTH_KEY_SOURCE", " ")]),
            Err(ConfigError::MissingSource)
        );
        assert_eq!(
            cfg(&[("SVCAUTH_KEY_SOURCE", "vault")]),
            Err(ConfigError::UnknownSource("vault".into()))
        );
        assert_eq!(
            cfg(&[("SVCAUTH_KEY_SOURCE", "file")]),
            Err(ConfigError::MissingFile)
        );
        // The development keys are a file: `dev` names no source, and says which.
        let dev = cfg(&[("SVCAUTH_KEY_SOURCE", "dev")]);
        assert_eq!(dev, Err(ConfigError::DevSource));
        let msg = dev.unwrap_err().to_string();
        assert!(
            msg.contains("SVCAUTH_KEYS_FILE=dev/dev-store.json"),
            "{msg}"
        );
    }

    #[test]
    fn api_names_come_from_ssm_or_the_environment() {
        let c = cfg(&[("SVCAUTH_KEY_SOURCE", "ssm")]).unwrap();
        assert_eq!(
            c.api_names,
            ApiNamesConfig::Ssm {
                path: "/svcauth/dev/apis".into()
            }
        );
        let c = cfg(&[
            ("SVCAUTH_KEY_SOURCE", "ssm"),
            ("SVCAUTH_API_PATH", "/svcauth/prod/apis"),
        ])
        .unwrap();
        assert_eq!(
            c.api_names,
            ApiNamesConfig::Ssm {
                path: "/svcauth/prod/apis".into()
            }
        );
        // Unset: beside the key store path, wherever that is.
        let c = cfg(&[
            ("SVCAUTH_KEY_SOURCE", "ssm"),
            ("SVCAUTH_SSM_PATH", "/svcauth/stage/keys"),
        ])
        .unwrap();
        assert_eq!(
            c.api_names,
            ApiNamesConfig::Ssm {
                path: "/svcauth/stage/apis".into()
            }
        );
        let c = cfg(&[
            ("SVCAUTH_KEY_SOURCE", "file"),
            ("SVCAUTH_KEYS_FILE", "k.json"),
            ("SVCAUTH_API_NAMES", "abc=identity"),
        ])
        .unwrap();
        assert!(matches!(c.api_names, ApiNamesConfig::Static(m) if m["abc"] == "identity"));
        let c = cfg(&[("SVCAUTH_KEY_SOURCE", "file"), ("SVCAUTH_KEYS_FILE", "k")]).unwrap();
        assert_eq!(c.api_names, ApiNamesConfig::Static(Default::default()));
        assert!(matches!(
            cfg(&[("SVCAUTH_KEY_SOURCE", "ssm"), ("SVCAUTH_API_NAMES", "nope")]),
            Err(ConfigError::ApiNames(_))
        ));
    }

    #[test]
    fn accepted_credentials_and_token_settings() {
        let c = cfg(&[("SVCAUTH_KEY_SOURCE", "ssm")]).unwrap();
        assert_eq!((c.accept, c.token), (Accept::ApiKey, None));
        let c = cfg(&[
            ("SVCAUTH_KEY_SOURCE", "ssm"),
            ("SVCAUTH_ACCEPT", " token , api-key"),
            ("SVCAUTH_TOKEN_ISSUER", "svcauth:prod"),
        ])
        .unwrap();
        assert_eq!(c.accept, Accept::Either);
        assert_eq!(
            c.token,
            Some(TokenConfig {
                issuer: "svcauth:prod".into(),
                jwks: JwksConfig::Ssm {
                    parameter: "/svcauth/dev/token/jwks".into()
                },
                min_remaining_secs: 300,
            })
        );
        let c = cfg(&[
            ("SVCAUTH_KEY_SOURCE", "ssm"),
            ("SVCAUTH_ACCEPT", "token"),
            ("SVCAUTH_TOKEN_ISSUER", "svcauth:prod"),
            ("SVCAUTH_SSM_PATH", "/svcauth/prod/keys"),
            ("SVCAUTH_TOKEN_MIN_REMAINING_SECS", "60"),
        ])
        .unwrap();
        assert_eq!(c.accept, Accept::Token);
        let t = c.token.unwrap();
        assert_eq!(t.min_remaining_secs, 60);
        assert_eq!(
            t.jwks,
            JwksConfig::Ssm {
                parameter: "/svcauth/prod/token/jwks".into()
            }
        );
        let c = cfg(&[
            ("SVCAUTH_KEY_SOURCE", "ssm"),
            ("SVCAUTH_ACCEPT", "token"),
            ("SVCAUTH_TOKEN_ISSUER", "svcauth:prod"),
            ("SVCAUTH_SSM_PATH", "/svcauth/prod/keys"),
            ("SVCAUTH_TOKEN_JWKS_PARAMETER", "/shared/jwks"),
        ])
        .unwrap();
        assert_eq!(
            c.token.unwrap().jwks,
            JwksConfig::Ssm {
                parameter: "/shared/jwks".into()
            }
        );
        // Only api-key: the token settings are not read at all.
        let c = cfg(&[
            ("SVCAUTH_KEY_SOURCE", "ssm"),
            ("SVCAUTH_ACCEPT", "api-key"),
            ("SVCAUTH_TOKEN_JWKS", "nonsense"),
        ])
        .unwrap();
        assert_eq!(c.token, None);
        let token = |extra: &[(&'static str, &'static str)]| {
            let mut v = vec![
                ("SVCAUTH_KEY_SOURCE", "ssm"),
                ("SVCAUTH_ACCEPT", "token"),
                ("SVCAUTH_TOKEN_ISSUER", "svcauth:dev"),
            ];
            v.extend_from_slice(extra);
            cfg(&v)
        };
        assert!(token(&[]).is_ok());
        for (vars, want) in [
            (vec![("SVCAUTH_ACCEPT", "tokens")], "Accept"),
            (vec![("SVCAUTH_ACCEPT", "api-key,")], "Accept"),
            (vec![("SVCAUTH_ACCEPT", "iam")], "Accept"),
            (vec![("SVCAUTH_TOKEN_JWKS", "{\"keys\": 5}")], "InlineJwks"),
            (vec![("SVCAUTH_TOKEN_JWKS", "{\"keys\": []}")], "InlineJwks"),
            (
                vec![("SVCAUTH_TOKEN_JWKS_PARAMETER", "svcauth/jwks")],
                "JwksParameter",
            ),
            (
                vec![("SVCAUTH_TOKEN_MIN_REMAINING_SECS", "3600")],
                "MinRemaining",
            ),
            (vec![("SVCAUTH_TOKEN_MIN_REMAINING_SECS", "5m")], "Number"),
        ] {
            let err = token(&vars).unwrap_err();
            assert!(format!("{err:?}").starts_with(want), "{vars:?}: {err:?}");
        }
        let no_issuer = cfg(&[
            ("SVCAUTH_KEY_SOURCE", "ssm"),
            ("SVCAUTH_ACCEPT", "api-key,token"),
        ]);
        assert_eq!(no_issuer, Err(ConfigError::MissingIssuer("api-key,token")));
        // A bad token setting refuses everything, and says why, like any other.
        let msg = no_issuer.unwrap_err().to_string();
        assert!(msg.contains("SVCAUTH_TOKEN_ISSUER"), "{msg}");
    }

    #[test]
    fn defaults_and_overrides() {
        let c = cfg(&[("SVCAUTH_KEY_SOURCE", "ssm")]).unwrap();
        assert_eq!(
            c.source,
            SourceConfig::Ssm {
                path: "/svcauth/dev/keys".into(),
                legacy_parameter: None
            }
        );
        assert_eq!(c.refresh, RefreshPolicy::default());
        assert_eq!(c.ssm_attempt_timeout, Duration::from_millis(1500));
        assert_eq!(c.load_timeout, Duration::from_millis(4000));
        let c = cfg(&[
            ("SVCAUTH_KEY_SOURCE", "ssm"),
            ("SVCAUTH_SSM_PATH", "/svcauth/prod/keys"),
            (
                "SVCAUTH_LEGACY_PARAMETER",
                "/prod/identity-service/service-api-keys",
            ),
            ("SVCAUTH_CACHE_TTL_SECS", "60"),
        ])
        .unwrap();
        assert_eq!(c.refresh.ttl, Duration::from_secs(60));
        assert!(matches!(
            c.source,
            SourceConfig::Ssm {
                legacy_parameter: Some(_),
                ..
            }
        ));
        assert!(matches!(
            cfg(&[
                ("SVCAUTH_KEY_SOURCE", "ssm"),
                ("SVCAUTH_CACHE_TTL_SECS", "5m")
            ]),
            Err(ConfigError::Number {
                name: "SVCAUTH_CACHE_TTL_SECS",
                ..
            })
        ));
    }
}
