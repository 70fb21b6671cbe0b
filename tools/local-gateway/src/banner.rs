//! What the gateway prints at start: its URLs, the development keys and credentials,
//! and `curl` lines to paste, each with the answer it gets.

use std::collections::BTreeMap;
use std::fmt::Write;

use crate::dev_signer::SampleTokens;
use crate::sigv4::LocalCredentials;
use crate::template::{EnvValue, Model, RouteAuth};
use crate::Site;

/// A `curl` line and the status it gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Example {
    pub what: String,
    pub expect: u16,
    pub command: String,
}

/// What the banner describes besides the model.
pub struct BannerInput<'a> {
    pub model: &'a Model,
    pub site: &'a Site,
    /// Clear development keys by name; empty when the key source is not `dev`.
    pub keys: &'a BTreeMap<String, String>,
    pub credentials: &'a LocalCredentials,
    pub region: &'a str,
    /// A user id that exists, for the examples.
    pub user_id: Option<&'a str>,
    /// How the key store and users are configured, one line each.
    pub key_source: &'a str,
    pub users: &'a str,
    pub result_ttl: Option<u64>,
    /// `dev`, `file` or `ssm`.
    pub key_source_kind: &'a str,
    /// The store file with `file`.
    pub keys_file: Option<&'a str>,
    /// Clear keys given with `--service-key-file`, by service.
    pub given_service_keys: &'a BTreeMap<String, String>,
    /// Token modes with the development key: the sample tokens it signed.
    pub sample_tokens: Option<&'a SampleTokens>,
}

/// Whether a route takes API keys: a REQUEST authorizer whose identity source is not
/// `Authorization` (`api-key`, `both`, `key-or-token`, the token API's key route).
fn route_takes_keys(auth: &RouteAuth) -> bool {
    matches!(auth, RouteAuth::Request(a) if !a.headers.iter().any(|h| h.eq_ignore_ascii_case("authorization")))
}

/// Whether an API's routes take API keys (`api-key`, `both`, `key-or-token`), not
/// only tokens (`token`: identity source `Authorization`).
fn takes_keys(model: &Model, api: &str) -> bool {
    model
        .routes
        .iter()
        .filter(|r| r.api == api)
        .any(|r| route_takes_keys(&r.auth))
}

/// Whether an API's authorizer has no identity source (`key-or-token`): API Gateway
/// then invokes it on every request, a request without credentials included.
fn authorizer_always_invoked(model: &Model, api: &str) -> bool {
    model.routes.iter().filter(|r| r.api == api).any(
        |r| matches!(&r.auth, RouteAuth::Request(a) if a.headers.is_empty() && a.query_strings.is_empty()),
    )
}

/// A route's authorization as the route listing shows it: the authorizer's name in the
/// template, its function, its identity source and result cache.
pub fn describe_auth(auth: &RouteAuth, result_ttl: Option<u64>) -> String {
    let RouteAuth::Request(a) = auth else {
        return auth.describe();
    };
    let sources: Vec<String> = a
        .headers
        .iter()
        .map(|h| format!("header {h}"))
        .chain(a.query_strings.iter().map(|q| format!("query string {q}")))
        .collect();
    if sources.is_empty() {
        return format!(
            "authorizer {} (REQUEST, {}), no identity source: invoked on every request, never cached",
            a.name, a.function
        );
    }
    format!(
        "authorizer {} (REQUEST, {}) on {}, results cached {} s",
        a.name,
        a.function,
        sources.join(", "),
        result_ttl.unwrap_or(a.ttl_secs)
    )
}

/// Whether an API other than the token API takes tokens (`token`, `key-or-token`): the
/// platform's token API exists in every mode, its lines are shown when they lead
/// somewhere (and the example's roles may call `POST /token/iam`).
fn takes_tokens(model: &Model) -> bool {
    model.routes.iter().filter(|r| r.api != "TokenApi").any(|r| {
        matches!(&r.auth, RouteAuth::Request(a) if model.functions.get(&a.function).is_some_and(|f| {
            matches!(f.env.get("SVCAUTH_ACCEPT"), Some(EnvValue::Text(t)) if t.split(',').any(|m| m.trim() == "token"))
        }))
    })
}

/// A shell line that trades `proof` (curl arguments) for a token at `token_url` and
/// keeps it in `$TOKEN`.
fn get_token(token_url: &str, route: &str, proof: &str) -> String {
    format!(
        "TOKEN=$(curl -s -X POST {} {proof} | sed -n 's/.*\"token\":\"\\([^\"]*\\)\".*/\\1/p'); ",
        quote(&format!("{token_url}{route}"))
    )
}

/// Which key a calling service's function (tutor-service) sends through the gateway,
/// and, when it has none, why and what to run. Empty when no function calls with a
/// key in this `AuthMode`.
pub fn caller_key_lines(i: &BannerInput<'_>) -> Vec<String> {
    let mut out = Vec::new();
    for (id, def) in &i.model.functions {
        let text = |name: &str| match def.env.get(name) {
            Some(EnvValue::Text(t)) => Some(t.as_str()),
            _ => None,
        };
        let Some(service) = text(service_client::SERVICE_NAME_ENV) else {
            continue;
        };
        if text(service_client::AUTH_MODE_ENV) == Some("token") {
            let proof = text(service_client::TOKEN_PROOF_ENV).unwrap_or("api-key");
            let with = if proof == "iam" {
                "a SigV4 signature of its role (POST /token/iam)"
            } else {
                "its key (POST /token)"
            };
            out.push(format!(
                "{service} ({id}) calls through this gateway with tokens it gets from the token API for {with}, reused until due for refresh"
            ));
            continue;
        }
        if text(service_client::AUTH_MODE_ENV) != Some("api-key") {
            continue;
        }
        let parameter = text(service_client::API_KEY_PARAMETER_ENV).unwrap_or("-");
        let line = if i.given_service_keys.contains_key(service) {
            format!(
                "{service} ({id}) calls through this gateway with the key from --service-key-file"
            )
        } else {
            match i.key_source_kind {
                "dev" => format!(
                    "{service} ({id}) calls through this gateway with its development key"
                ),
                "ssm" => format!(
                    "{service} ({id}) calls through this gateway with the key in SSM parameter {parameter} (its SERVICE_API_KEY_PARAMETER, where `svcauth keys create --service {service}` delivers it), read as in Lambda"
                ),
                _ => {
                    let file = i.keys_file.unwrap_or("PATH");
                    format!(
                        "{service} ({id}) has no key to send: the store file holds only hashes, so its routes answer 502 and no example calls them. To call them, create its key and give it here:
      svcauth --store file --file {file} keys create --service {service} --api identity --permissions 'GET /internal/users/*,GET /internal/users/by-email/*' > {service}.key
      then add --service-key-file {service}={service}.key"
                    )
                }
            }
        };
        out.push(line);
    }
    out
}

fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// The examples for the APIs that exist.
pub fn examples(i: &BannerInput<'_>) -> Vec<Example> {
    let mut out = Vec::new();
    let user = i.user_id.unwrap_or("6b1f0c52-3f0e-4a8e-9d55-2f1f4c3c9a10");
    let url = |api: &str| i.site.api_url(api).map(str::to_owned);
    let tutor = i.keys.get("tutor-service");
    let admin = i.keys.get("admin-service");
    let keys_accepted = takes_keys(i.model, "IdentityKeyApi");
    if let Some(base) = url("IdentityKeyApi").filter(|_| !keys_accepted) {
        let get = format!("{base}/internal/users/{user}");
        out.push(Example {
            what: "no token: refused by API Gateway (identity source Authorization), the authorizer is not invoked".into(),
            expect: 401,
            command: format!("curl -i {}", quote(&get)),
        });
        if let Some(k) = tutor {
            out.push(Example {
                what: "a key and a token on one request: refused by the authorizer (ambiguous_credentials)".into(),
                expect: 401,
                command: format!(
                    "curl -i {} -H {} -H 'Authorization: Bearer not-a-token'",
                    quote(&get),
                    quote(&format!("x-service-api-key: {k}"))
                ),
            });
        }
    }
    if let Some(base) = url("IdentityKeyApi").filter(|_| keys_accepted) {
        let get = format!("{base}/internal/users/{user}");
        if let Some(k) = tutor {
            out.push(Example {
                what: "tutor-service key: the user".into(),
                expect: 200,
                command: format!(
                    "curl -i {} -H {}",
                    quote(&get),
                    quote(&format!("x-service-api-key: {k}"))
                ),
            });
        }
        let what = if authorizer_always_invoked(i.model, "IdentityKeyApi") {
            "no key and no token: refused by the authorizer (missing_credentials), which API Gateway invokes on every request here (no identity source)"
        } else {
            "no key: refused by API Gateway, the authorizer is not invoked"
        };
        out.push(Example {
            what: what.into(),
            expect: 401,
            command: format!("curl -i {}", quote(&get)),
        });
        out.push(Example {
            what: "wrong key: refused by the authorizer".into(),
            expect: 401,
            command: format!(
                "curl -i {} -H {}",
                quote(&get),
                quote("x-service-api-key: svcauth_dev_not-a-real-key")
            ),
        });
        if let Some(k) = tutor {
            out.push(Example {
                what: "tutor-service key on the admin-only route: the policy does not cover it".into(),
                expect: 403,
                command: format!(
                    "curl -i -X POST {} -H {} -H 'content-type: application/json' -d '{{\"email\":\"new.student@example.com\",\"role\":\"student\"}}'",
                    quote(&format!("{base}/internal/users")),
                    quote(&format!("x-service-api-key: {k}"))
                ),
            });
        }
    }
    if let (Some(token_url), true) = (url("TokenApi"), takes_tokens(i.model)) {
        out.extend(token_examples(i, &token_url, user));
    }
    if let (Some(base), Some(k), true) = (
        url("TutorKeyApi"),
        admin,
        takes_keys(i.model, "TutorKeyApi"),
    ) {
        out.push(Example {
            what: "admin-service calls tutor-service, which calls identity-service through this gateway with its own key".into(),
            expect: 200,
            command: format!(
                "curl -i {} -H {} -H 'x-correlation-id: try-the-chain-1'",
                quote(&format!("{base}/internal/tutor/students/{user}/profile")),
                quote(&format!("x-service-api-key: {k}"))
            ),
        });
    }
    if let Some(base) = url("IdentityIamApi") {
        let get = format!("{base}/internal/users/{user}");
        if let Some((akid, c)) = i.credentials.for_role("TutorServiceRole") {
            out.push(Example {
                what: "SigV4 as TutorServiceRole: the user, the caller is the role".into(),
                expect: 200,
                command: format!(
                    "curl -i --aws-sigv4 {} --user {} {}",
                    quote(&format!("aws:amz:{}:execute-api", i.region)),
                    quote(&format!("{akid}:{}", c.secret_access_key)),
                    quote(&get)
                ),
            });
            out.push(Example {
                what: "SigV4 as TutorServiceRole on the admin-only route: denied by the role's IAM policy".into(),
                expect: 403,
                command: format!(
                    "curl -i --aws-sigv4 {} --user {} -X POST {} -H 'content-type: application/json' -d '{{\"email\":\"new.student@example.com\",\"role\":\"student\"}}'",
                    quote(&format!("aws:amz:{}:execute-api", i.region)),
                    quote(&format!("{akid}:{}", c.secret_access_key)),
                    quote(&format!("{base}/internal/users"))
                ),
            });
        }
        out.push(Example {
            what: "unsigned call to an AWS_IAM route".into(),
            expect: 403,
            command: format!("curl -i {}", quote(&get)),
        });
    }
    out
}

/// The token API's examples: tokens for a key and for a SigV4 signature, calls with
/// a token, an expired and a tampered token.
fn token_examples(i: &BannerInput<'_>, token_url: &str, user: &str) -> Vec<Example> {
    let mut out = Vec::new();
    let tutor = i.keys.get("tutor-service");
    let admin = i.keys.get("admin-service");
    let identity = i.site.api_url("IdentityKeyApi");
    if let Some(k) = tutor {
        out.push(Example {
            what: "tutor-service trades its key for a token (POST /token): {token, tokenType, expiresAt, expiresIn, tokenId}".into(),
            expect: 200,
            command: format!(
                "curl -i -X POST {} -H {}",
                quote(&format!("{token_url}/token")),
                quote(&format!("x-service-api-key: {k}"))
            ),
        });
    }
    if let Some((akid, c)) = i.credentials.for_role("TutorServiceRole") {
        out.push(Example {
            what: "tutor-service trades a SigV4 signature of its role for a token (POST /token/iam; `local-gateway sign -X POST URL` prints the same)".into(),
            expect: 200,
            command: format!(
                "curl -i --aws-sigv4 {} --user {} -X POST {}",
                quote(&format!("aws:amz:{}:execute-api", i.region)),
                quote(&format!("{akid}:{}", c.secret_access_key)),
                quote(&format!("{token_url}/token/iam"))
            ),
        });
    }
    out.push(Example {
        what:
            "the key set the authorizer verifies with (GET /.well-known/jwks.json, no credentials)"
                .into(),
        expect: 200,
        command: format!(
            "curl -i {}",
            quote(&format!("{token_url}/.well-known/jwks.json"))
        ),
    });
    if let (Some(k), Some(base)) = (tutor, identity) {
        let get = format!("{base}/internal/users/{user}");
        out.push(Example {
            what:
                "a token for the key, then identity-service called with it (authenticatedBy=token)"
                    .into(),
            expect: 200,
            command: format!(
                "{}curl -i {} -H \"Authorization: Bearer $TOKEN\"",
                get_token(
                    token_url,
                    "/token",
                    &format!("-H {}", quote(&format!("x-service-api-key: {k}")))
                ),
                quote(&get)
            ),
        });
        if let Some(samples) = i.sample_tokens {
            out.push(Example {
                what: "an expired token (signed by this run's key, expired an hour ago): refused by the authorizer (expired)".into(),
                expect: 401,
                command: format!(
                    "curl -i {} -H {}",
                    quote(&get),
                    quote(&format!("Authorization: Bearer {}", samples.expired))
                ),
            });
            out.push(Example {
                what: "a tampered token (payload changed to admin-service after signing): refused by the authorizer (bad_signature)".into(),
                expect: 401,
                command: format!(
                    "curl -i {} -H {}",
                    quote(&get),
                    quote(&format!("Authorization: Bearer {}", samples.tampered))
                ),
            });
        }
    }
    if let (Some(k), Some(base)) = (admin, i.site.api_url("TutorKeyApi")) {
        out.push(Example {
            what: "admin-service calls tutor-service with a token; tutor-service calls identity-service with a token of its own (traded for its role)".into(),
            expect: 200,
            command: format!(
                "{}curl -i {} -H \"Authorization: Bearer $TOKEN\" -H 'x-correlation-id: try-the-token-chain-1'",
                get_token(token_url, "/token", &format!("-H {}", quote(&format!("x-service-api-key: {k}")))),
                quote(&format!("{base}/internal/tutor/students/{user}/profile"))
            ),
        });
    }
    out
}

/// The whole start-up text.
pub fn render(i: &BannerInput<'_>) -> String {
    let mut s = String::new();
    let mode = i
        .model
        .parameters
        .get("AuthMode")
        .map(String::as_str)
        .unwrap_or("-");
    let _ = writeln!(
        s,
        "local-gateway: the internal APIs of template.yaml (AuthMode={mode}), served like API Gateway REST on {} only",
        i.site.addr
    );
    let _ = writeln!(s);
    for api in &i.model.apis {
        let url = i.site.api_url(&api.logical_id).unwrap_or("-");
        let _ = writeln!(s, "{}  {url}", api.logical_id);
        for r in i.model.routes.iter().filter(|r| r.api == api.logical_id) {
            let auth = describe_auth(&r.auth, i.result_ttl);
            let _ = writeln!(
                s,
                "    {:<6} {:<44} {auth}  -> {}",
                r.method, r.path, r.function
            );
        }
    }
    let _ = writeln!(s);
    // No internal API takes a key or a token (AuthMode=iam; the token API's key route
    // alone gives tokens nothing accepts): the keys would only mislead.
    let keys_used = takes_tokens(i.model)
        || i.model
            .routes
            .iter()
            .any(|r| r.api != "TokenApi" && route_takes_keys(&r.auth));
    let unused = if keys_used {
        ""
    } else {
        " (unused: no internal API of this AuthMode takes a key or a token)"
    };
    let _ = writeln!(s, "Key store: {}{unused}", i.key_source);
    if !i.keys.is_empty() && keys_used {
        let _ = writeln!(
            s,
            "Development keys (dev/dev-keys.json; accepted only with the development key store):"
        );
        for (name, key) in i.keys {
            let _ = writeln!(s, "    {name:<26} {key}");
        }
    }
    let _ = writeln!(
        s,
        "SigV4 development credentials (dev/local-credentials.json; fake, valid nowhere in AWS):"
    );
    for (akid, c) in &i.credentials.by_access_key {
        let _ = writeln!(
            s,
            "    {:<26} {akid}:{}",
            c.role_arn.rsplit('/').next().unwrap_or(""),
            c.secret_access_key
        );
    }
    for line in caller_key_lines(i) {
        let _ = writeln!(s, "Calling services: {line}");
    }
    let _ = writeln!(s, "Users: {}", i.users);
    let _ = writeln!(s);
    let _ = writeln!(
        s,
        "Try (each line works as written while the gateway runs):"
    );
    for e in examples(i) {
        let _ = writeln!(s, "  # {} -> {}", e.what, e.expect);
        let _ = writeln!(s, "  {}", e.command);
    }
    let _ = writeln!(s);
    let _ = writeln!(
        s,
        "One access log line per request follows on stdout (the template's access log format); function logs go to stderr. Ctrl-C stops."
    );
    s
}

/// The `(expected status, command)` pairs in a rendered banner, for tests: `curl`
/// lines, and lines that get a token first (`TOKEN=$(curl ...); curl ...`).
pub fn parse_examples(text: &str) -> Vec<(u16, String)> {
    let mut out = Vec::new();
    let mut expect = None;
    for line in text.lines() {
        let t = line.trim();
        if let Some(c) = t.strip_prefix("# ") {
            expect = c.rsplit_once(" -> ").and_then(|(_, n)| n.parse().ok());
        } else if t.starts_with("curl ") || t.starts_with("TOKEN=$(curl ") {
            if let Some(e) = expect.take() {
                out.push((e, t.to_owned()));
            }
        }
    }
    out
}
