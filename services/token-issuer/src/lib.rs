/*!
token-issuer: the token exchange, a `lambda_http` function behind API Gateway.

| route | auth | answer |
|---|---|---|
| `POST /token` | the API-key REQUEST authorizer | `{token, tokenType, expiresAt, expiresIn, tokenId}`, or a JSON error (400, 401, 403, 503) |
| `POST /token/iam` | `AWS_IAM` (SigV4), role mapped by `SVCAUTH_IAM_ROLES` | the same |
| `GET /.well-known/jwks.json` | none | the published key set (the `SVCAUTH_TOKEN_JWKS_PARAMETER` parameter), `Cache-Control: public, max-age=300` |

The caller's identity comes from [`service_identity_http::Caller`] (the authorizer's
context or the SigV4 caller), never from the body. Who gets which claims, and when a
token already signed is handed out again, is decided in [`issue`] (plain Rust);
signing is `token-kms` (KMS `Sign`, RAW, ES256); service documents and revocation
markers are read from SSM through `keystore-ssm`.

Publish before sign: the issuer signs only with a key whose public key is in the
published key set, so no verifier ever meets a token it cannot check. It holds no
private key and verifies no token (the authorizer does).

Local tools embed the same router with other parts ([`api::Parts`]): a signer in the
process ([`api::Signing::Local`], the local gateway's development key), documents from
memory ([`api::Documents::Fixed`]) and an inline key set ([`api::JwksSource::Inline`]).
The deployed binary (`main.rs`) builds only the KMS and SSM ones.
*/
#![forbid(unsafe_code)]

pub mod api;
pub mod issue;

pub use api::{router, AppState, Clock, Documents, JwksSource, LocalSigner, Parts, Signing};
pub use issue::{IssuerSettings, RetryPolicy, TokenRequest};

/// Start-up configuration, from the environment (docs/contracts.md, issuer rows).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// `SVCAUTH_TOKEN_KEY`: the KMS signing key, normally an alias
    /// (`alias/svcauth-token-dev`); re-resolved every few minutes so a repointed
    /// alias is followed without a cold start.
    pub signing_key: String,
    pub settings: IssuerSettings,
    /// `SVCAUTH_SSM_PATH`: where service documents are (default `/svcauth/dev/keys`).
    pub ssm_path: String,
    /// `SVCAUTH_TOKEN_JWKS_PARAMETER`: the published key set (default: the key path's
    /// sibling `token/jwks`, `/svcauth/dev/token/jwks`).
    pub jwks_parameter: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("{0} is not set: {1}")]
    Missing(&'static str, &'static str),
    #[error("{0} is invalid: {1}")]
    Invalid(&'static str, String),
}

/// The JWKS parameter next to a key store path: `/svcauth/dev/keys` →
/// `/svcauth/dev/token/jwks` (keystore-ssm's layout, the one owner of the paths).
/// `None` when the path is not a valid key store path.
pub fn default_jwks_parameter(ssm_path: &str) -> Option<String> {
    keystore_ssm::StoreLayout::new(ssm_path.trim_end_matches('/'))
        .ok()
        .map(|l| l.key_set())
}

impl Config {
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let get = |k: &str| {
            get(k)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        let ssm_path =
            get("SVCAUTH_SSM_PATH").unwrap_or_else(|| keystore_ssm::DEFAULT_KEY_PATH.to_owned());
        let mut settings = IssuerSettings {
            issuer: String::new(),
            default_lifetime_secs: issue::DEFAULT_LIFETIME_SECS,
            min_remaining_secs: issue::DEFAULT_MIN_REMAINING_SECS,
        };
        if let Some(v) = get("SVCAUTH_TOKEN_MIN_REMAINING_SECS") {
            settings.min_remaining_secs = v
                .parse::<u64>()
                .ok()
                .filter(|m| {
                    let s = IssuerSettings {
                        min_remaining_secs: *m,
                        ..settings.clone()
                    };
                    s.shortest_lifetime_secs() <= issue::MAX_LIFETIME_SECS
                })
                .ok_or_else(|| {
                    ConfigError::Invalid(
                        "SVCAUTH_TOKEN_MIN_REMAINING_SECS",
                        format!(
                            "{v:?}: give whole seconds from 0 to {}, the authorizers' SVCAUTH_TOKEN_MIN_REMAINING_SECS (the template's TokenResultTtl in AuthMode token, 0 otherwise)",
                            issue::MAX_LIFETIME_SECS
                                - issue::CLIENT_MARGIN_SECS
                                - issue::MIN_USABLE_SECS
                        ),
                    )
                })?;
        }
        if let Some(v) = get("SVCAUTH_TOKEN_DEFAULT_LIFETIME_SECS") {
            let shortest = settings.shortest_lifetime_secs();
            settings.default_lifetime_secs = v
                .parse::<u64>()
                .ok()
                .filter(|s| (shortest..=issue::MAX_LIFETIME_SECS).contains(s))
                .ok_or_else(|| {
                    ConfigError::Invalid(
                        "SVCAUTH_TOKEN_DEFAULT_LIFETIME_SECS",
                        format!(
                            "{v:?}: give whole seconds from {shortest} (SVCAUTH_TOKEN_MIN_REMAINING_SECS {} + {} s client margin + {} s of use) to {}",
                            settings.min_remaining_secs,
                            issue::CLIENT_MARGIN_SECS,
                            issue::MIN_USABLE_SECS,
                            issue::MAX_LIFETIME_SECS
                        ),
                    )
                })?;
        }
        if settings.default_lifetime_secs < settings.shortest_lifetime_secs() {
            return Err(ConfigError::Invalid(
                "SVCAUTH_TOKEN_MIN_REMAINING_SECS",
                format!(
                    "{} leaves the default lifetime ({} s) too short to be used: set SVCAUTH_TOKEN_DEFAULT_LIFETIME_SECS to at least {}",
                    settings.min_remaining_secs,
                    settings.default_lifetime_secs,
                    settings.shortest_lifetime_secs()
                ),
            ));
        }
        let jwks_parameter = match get("SVCAUTH_TOKEN_JWKS_PARAMETER") {
            Some(p) => p,
            None => default_jwks_parameter(&ssm_path).ok_or_else(|| {
                ConfigError::Invalid(
                    "SVCAUTH_SSM_PATH",
                    format!("{ssm_path:?}: give the key store path, e.g. /svcauth/prod/keys"),
                )
            })?,
        };
        if !jwks_parameter.starts_with('/') {
            return Err(ConfigError::Invalid(
                "SVCAUTH_TOKEN_JWKS_PARAMETER",
                format!("{jwks_parameter:?}: give a full SSM parameter name starting with /"),
            ));
        }
        Ok(Self {
            signing_key: get("SVCAUTH_TOKEN_KEY").ok_or(ConfigError::Missing(
                "SVCAUTH_TOKEN_KEY",
                "name the KMS signing key (for example alias/svcauth-token-dev)",
            ))?,
            settings: IssuerSettings {
                issuer: get("SVCAUTH_TOKEN_ISSUER").ok_or(ConfigError::Missing(
                    "SVCAUTH_TOKEN_ISSUER",
                    "set the issuer id every verifier expects in `iss` (for example svcauth:dev)",
                ))?,
                ..settings
            },
            ssm_path,
            jwks_parameter,
        })
    }

    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |k: &str| {
            pairs
                .iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn configuration_from_the_environment() {
        let c = Config::from_lookup(env(&[
            ("SVCAUTH_TOKEN_KEY", "alias/svcauth-token-dev"),
            ("SVCAUTH_TOKEN_ISSUER", "svcauth:dev"),
            ("SVCAUTH_SSM_PATH", "/svcauth/prod/keys"),
        ]))
        .unwrap();
        assert_eq!(c.settings.default_lifetime_secs, 600);
        assert_eq!(c.jwks_parameter, "/svcauth/prod/token/jwks");
        assert_eq!(c.signing_key, "alias/svcauth-token-dev");
        let c = Config::from_lookup(env(&[
            ("SVCAUTH_TOKEN_KEY", "k"),
            ("SVCAUTH_TOKEN_ISSUER", "i"),
            ("SVCAUTH_TOKEN_JWKS_PARAMETER", "/x/jwks"),
            ("SVCAUTH_TOKEN_DEFAULT_LIFETIME_SECS", "900"),
        ]))
        .unwrap();
        assert_eq!(
            (c.jwks_parameter.as_str(), c.settings.default_lifetime_secs),
            ("/x/jwks", 900)
        );
        assert_eq!(c.ssm_path, "/svcauth/dev/keys");
        assert_eq!(
            c.settings.min_remaining_secs, 300,
            "the authorizer's default"
        );
        for bad in ["369", "3601", "ten", "-1"] {
            let lookup = move |k: &str| match k {
                "SVCAUTH_TOKEN_DEFAULT_LIFETIME_SECS" => Some(bad.to_owned()),
                "SVCAUTH_TOKEN_KEY" | "SVCAUTH_TOKEN_ISSUER" => Some("x".to_owned()),
                _ => None,
            };
            let err = Config::from_lookup(lookup).unwrap_err();
            assert!(err.to_string().contains("from 370 "), "{err}");
            assert!(err.to_string().contains("to 3600"), "{err}");
        }
        let c = Config::from_lookup(env(&[
            ("SVCAUTH_TOKEN_KEY", "k"),
            ("SVCAUTH_TOKEN_ISSUER", "i"),
            ("SVCAUTH_TOKEN_MIN_REMAINING_SECS", "60"),
            ("SVCAUTH_TOKEN_DEFAULT_LIFETIME_SECS", "130"),
        ]))
        .unwrap();
        assert_eq!(c.settings.shortest_lifetime_secs(), 130);
        type Case = (&'static str, &'static str, &'static str);
        let refused: [Case; 4] = [
            ("3600", "600", "SVCAUTH_TOKEN_MIN_REMAINING_SECS"),
            ("soon", "600", "SVCAUTH_TOKEN_MIN_REMAINING_SECS"),
            ("60", "129", "from 130 "),
            ("550", "", "at least 620"),
        ];
        for (min, lifetime, want) in refused {
            let lookup = move |k: &str| match k {
                "SVCAUTH_TOKEN_MIN_REMAINING_SECS" => Some(min.to_owned()),
                "SVCAUTH_TOKEN_DEFAULT_LIFETIME_SECS" => Some(lifetime.to_owned()),
                "SVCAUTH_TOKEN_KEY" | "SVCAUTH_TOKEN_ISSUER" => Some("x".to_owned()),
                _ => None,
            };
            let err = Config::from_lookup(lookup).unwrap_err();
            assert!(err.to_string().contains(want), "{min}/{lifetime}: {err}");
        }
        let err = Config::from_lookup(env(&[("SVCAUTH_TOKEN_ISSUER", "i")])).unwrap_err();
        assert!(err.to_string().contains("SVCAUTH_TOKEN_KEY"), "{err}");
        let err = Config::from_lookup(env(&[("SVCAUTH_TOKEN_KEY", "k")])).unwrap_err();
        assert!(err.to_string().contains("SVCAUTH_TOKEN_ISSUER"), "{err}");
        assert_eq!(
            default_jwks_parameter("/svcauth/dev/keys").as_deref(),
            Some("/svcauth/dev/token/jwks")
        );
        assert_eq!(default_jwks_parameter("keys"), None);
    }
}
