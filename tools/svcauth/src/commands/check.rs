//! `keys check`: would the store accept this key (read from stdin), and with which
//! permissions? Decided by `service_auth::decide`, the authorizer's own code.

use serde::Serialize;
use service_auth::decision::UnauthorizedReason;
use service_auth::store::parse_legacy_map;
use service_auth::{decide, AuthRequest, Decision, KeyStore, UnixTime};
use zeroize::Zeroizing;

use super::list::{grant_views, service_grant_views, GrantView, RouteView, WILDCARD_NOTE};
use super::{checked_apis, checked_service};
use crate::aws;
use crate::cli::CheckArgs;
use crate::error::Error;
use crate::{Ctx, Outcome};

/// The longest line read from stdin; keys are at most 128 bytes.
const MAX_INPUT: usize = 4096;

/// The answer. Holds the key id, never the key.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CheckAnswer {
    pub accepted: bool,
    /// The authorizer's reason code (`permitted`, `unknown_key`, `revoked_key`...), or
    /// `other_service` when the key belongs to another service.
    pub reason: String,
    pub key_id: Option<String>,
    pub service: Option<String>,
    /// With `--api`, the routes granted on it; without, every route granted on any
    /// API. As written.
    pub permissions: Vec<String>,
    /// The `--api` asked about.
    pub api: Option<String>,
    /// The routes per API, as written and as the policy applies them (`*` and
    /// `{param}` match any characters, `/` included).
    pub grants: Vec<GrantView>,
    /// A schema-1 document's permissions, which apply on no API.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub unscoped_permissions: Vec<RouteView>,
    pub expires: Option<UnixTime>,
    /// When the key was revoked, for a revoked key.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revoked_at: Option<UnixTime>,
    pub legacy: bool,
    /// With `--route`: whether that route is permitted (false means API Gateway 403).
    pub route_permitted: Option<bool>,
}

pub async fn check(ctx: &mut Ctx<'_, '_>, args: &CheckArgs) -> Result<Outcome, Error> {
    let service = checked_service(&args.service)?;
    let api = match &args.api {
        Some(a) => checked_apis(std::slice::from_ref(a))?.pop(),
        None => None,
    };
    let method_arn = synthetic_method_arn(args.route.as_deref())?;
    let key = read_key(ctx)?;
    if key.is_empty() {
        return Err(Error::Usage(format!(
            "no key on stdin: pipe it in, e.g. `aws ssm get-parameter --with-decryption --name /{}/{service}/identity-service-api-key --query Parameter.Value --output text | svcauth keys check --service {service}`",
            ctx.global.env
        )));
    }
    let store = ctx.store().await?;
    store.require_existing()?;
    let docs = store.load_documents().await?;
    let legacy = match &args.legacy_parameter {
        Some(name) if !name.is_empty() => {
            let client = ctx.client().await?;
            let text = aws::read_parameter(&client, name).await?;
            parse_legacy_map(&text)
                .map_err(|e| Error::Store(format!("legacy parameter {name}: {e}")))?
        }
        _ => Vec::new(),
    };
    let mut index = KeyStore::build(&docs, &legacy).map_err(|e| {
        Error::Store(format!(
            "the {} would not load in the authorizer: {e}; fix it before checking keys",
            store.describe()
        ))
    })?;
    // Markers (revocations, scheduled ends) win over documents, as in the authorizer.
    let markers = store.markers_among(&index.usable_key_ids(ctx.now)).await?;
    index.apply_markers(&markers);
    let values = [key.as_str()];
    let decision = decide(
        Some(&index),
        &AuthRequest {
            api_key_values: &values,
            method_arn: Some(&method_arn),
            api_name: api.as_deref(),
        },
        ctx.now,
    );
    drop(key);
    // A key whose record `keys prune` removed is unknown to every document, but its
    // revocation marker remains: it is revoked, and said so.
    let pruned = match &decision {
        Decision::Unauthorized {
            reason: UnauthorizedReason::UnknownKey,
            key_id: Some(id),
            ..
        } => store
            .revoked_among(std::slice::from_ref(id))
            .await?
            .contains(id),
        _ => false,
    };
    let answer = match decision {
        Decision::Allow(grant) => {
            let owner = grant.service.service.clone();
            let right_service = owner == service;
            let route_permitted = args.route.as_ref().map(|_| grant.route_permitted);
            let api_granted = api.is_none() || grant.api_index.is_some();
            let reason = if !right_service {
                "other_service"
            } else if !api_granted {
                "api_not_granted"
            } else if route_permitted == Some(false) {
                "route_not_permitted"
            } else {
                "permitted"
            };
            let permissions: Vec<String> = match &api {
                Some(_) => grant.routes().iter().map(ToString::to_string).collect(),
                None => {
                    let mut all: Vec<String> = grant
                        .service
                        .apis
                        .iter()
                        .flat_map(|a| a.routes.iter().map(ToString::to_string))
                        .collect();
                    all.sort();
                    all.dedup();
                    all
                }
            };
            CheckAnswer {
                accepted: right_service && api_granted && route_permitted != Some(false),
                reason: reason.into(),
                key_id: Some(grant.key_id.to_string()),
                service: Some(owner),
                permissions,
                api: api.clone(),
                grants: service_grant_views(&grant.service),
                unscoped_permissions: grant
                    .service
                    .unscoped
                    .iter()
                    .map(|p| RouteView::new(&p.to_string()))
                    .collect(),
                expires: grant.expires,
                revoked_at: None,
                legacy: grant.legacy,
                route_permitted,
            }
        }
        Decision::Unauthorized {
            reason,
            key_id,
            service: owner,
        } => {
            // A refused key that has a record (expired, revoked): show the record's
            // own values, not defaults.
            let doc = owner
                .as_deref()
                .and_then(|o| docs.iter().find(|d| d.service == o));
            let record = doc.zip(key_id.as_ref()).and_then(|(d, id)| d.key(id));
            let mut permissions: Vec<String> = doc
                .map(|d| {
                    d.grants
                        .iter()
                        .flat_map(|g| g.routes.iter().cloned())
                        .collect()
                })
                .unwrap_or_default();
            permissions.sort();
            permissions.dedup();
            let reason = if pruned {
                UnauthorizedReason::RevokedKey
            } else {
                reason
            };
            CheckAnswer {
                accepted: false,
                reason: reason.code().into(),
                key_id: key_id.map(|k| k.to_string()),
                service: owner.clone(),
                permissions,
                api: api.clone(),
                grants: doc.map(grant_views).unwrap_or_default(),
                unscoped_permissions: doc
                    .map(|d| d.permissions.iter().map(|p| RouteView::new(p)).collect())
                    .unwrap_or_default(),
                expires: record.and_then(|r| r.expires),
                revoked_at: record.and_then(|r| r.revoked_at),
                legacy: false,
                route_permitted: None,
            }
        }
    };
    let text = if args.json {
        serde_json::to_string_pretty(&answer).unwrap_or_default() + "\n"
    } else {
        human(&answer, service)
    };
    ctx.io
        .stdout
        .write_all(text.as_bytes())
        .and_then(|()| ctx.io.stdout.flush())
        .map_err(|e| Error::Usage(format!("writing to stdout failed: {e}")))?;
    Ok(if answer.accepted {
        Outcome::Done
    } else {
        Outcome::NotAccepted
    })
}

fn human(a: &CheckAnswer, asked: &str) -> String {
    let decision = if a.accepted { "accepted" } else { "refused" };
    let mut out = format!("decision:    {decision}\nreason:      {}\n", a.reason);
    if a.reason == "other_service" {
        out.push_str(&format!(
            "note:        the key is a key of {}, not of {asked}\n",
            a.service.as_deref().unwrap_or("?")
        ));
    }
    out.push_str(&format!(
        "service:     {}\n",
        a.service.as_deref().unwrap_or("-")
    ));
    out.push_str(&format!(
        "key id:      {}\n",
        a.key_id.as_deref().unwrap_or("-")
    ));
    if a.service.is_some() && a.reason != "unknown_key" {
        out.push_str(&format!(
            "expires:     {}\n",
            a.expires
                .map_or_else(|| "never".into(), UnixTime::to_rfc3339)
        ));
        if a.grants.is_empty() && a.unscoped_permissions.is_empty() {
            out.push_str("permissions: none\n");
        } else {
            out.push_str("permissions: (API: as written -> effective)\n");
        }
        for g in &a.grants {
            for r in &g.routes {
                out.push_str(&format!(
                    "  {}: {} -> {}\n",
                    g.apis.join(","),
                    r.written,
                    r.effective
                ));
            }
        }
        for r in &a.unscoped_permissions {
            out.push_str(&format!(
                "  no API (schema 1: run `svcauth keys migrate --service {} --api NAME`): {} -> {}\n",
                a.service.as_deref().unwrap_or("?"),
                r.written,
                r.effective
            ));
        }
        if !a.grants.is_empty() || !a.unscoped_permissions.is_empty() {
            out.push_str(&format!("note:        {WILDCARD_NOTE}\n"));
        }
    }
    if a.reason == "api_not_granted" {
        out.push_str(&format!(
            "api:         {} is not granted on {}: API Gateway answers 403 there for every route (grant it with `svcauth keys grant`)\n",
            a.service.as_deref().unwrap_or("?"),
            a.api.as_deref().unwrap_or("?")
        ));
    }
    if let Some(t) = a.revoked_at {
        out.push_str(&format!("revoked:     {}\n", t.to_rfc3339()));
    } else if a.reason == "revoked_key" && a.service.is_none() {
        out.push_str("note:        its record was pruned (`keys prune`); its revocation marker keeps it refused for good\n");
    }
    if a.legacy {
        out.push_str("legacy:      yes (from the legacy map; import and rotate it)\n");
    }
    if let Some(p) = a.route_permitted {
        out.push_str(&format!(
            "route:       {}\n",
            if p {
                "permitted"
            } else {
                "not permitted (API Gateway answers 403)"
            }
        ));
    }
    out
}

/// The first line of stdin, at most [`MAX_INPUT`] bytes, trimmed; wiped on drop.
fn read_key(ctx: &mut Ctx<'_, '_>) -> Result<Zeroizing<String>, Error> {
    let mut buf = Zeroizing::new(Vec::with_capacity(256));
    let mut byte = [0u8; 1];
    loop {
        match ctx.io.stdin.read(&mut byte) {
            Ok(0) => break,
            Ok(_) if byte[0] == b'\n' => break,
            Ok(_) => {
                if buf.len() == MAX_INPUT {
                    return Err(Error::Usage(format!(
                        "the first line of stdin is longer than {MAX_INPUT} bytes: that is not a key"
                    )));
                }
                buf.push(byte[0]);
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => {
                return Err(Error::Usage(format!(
                    "reading the key from stdin failed: {e}"
                )))
            }
        }
    }
    let text = std::str::from_utf8(&buf)
        .map_err(|_| Error::Usage("the key on stdin is not text".into()))?;
    Ok(Zeroizing::new(text.trim().to_owned()))
}

/// A method ARN on a placeholder API for the route to check (`GET /` by default): the
/// decision needs one, and only its route part matters.
fn synthetic_method_arn(route: Option<&str>) -> Result<String, Error> {
    let route = route.unwrap_or("GET /").trim();
    let bad = || {
        Error::Usage(format!(
            "--route {route:?} is not `METHOD /path`, e.g. `GET /internal/users/42`"
        ))
    };
    let (verb, path) = route.split_once(' ').ok_or_else(bad)?;
    let path = path.trim().strip_prefix('/').ok_or_else(bad)?;
    let arn = format!(
        "arn:aws:execute-api:us-east-1:000000000000:svcauthcheck/check/{}/{path}",
        verb.to_ascii_uppercase()
    );
    service_auth::MethodArn::parse(&arn)
        .map_err(|e| Error::Usage(format!("--route {route:?}: {e}")))?;
    Ok(arn)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_become_method_arns() {
        assert!(synthetic_method_arn(None).unwrap().ends_with("/check/GET/"));
        assert!(synthetic_method_arn(Some("get /internal/users/42"))
            .unwrap()
            .ends_with("/check/GET/internal/users/42"));
        assert!(synthetic_method_arn(Some("GET internal")).is_err());
        assert!(synthetic_method_arn(Some("FETCH /x")).is_err());
    }
}
