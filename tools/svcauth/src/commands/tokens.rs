//! `tokens keys add | remove | list` and `tokens brake`.
//!
//! The key set (JWKS) is one SSM `String` parameter. SSM has no compare-and-swap, so a
//! write is checked by version like the service documents (keystore-ssm): read version
//! `v`, apply the change, write, and expect `v + 1`. When another writer got in between,
//! its latest version is read back and the change (idempotent: "this key is in",
//! "that key is out") applied to it again, so neither writer's change is lost.

use std::time::Duration;

use jsonwebtoken::jwk::{Jwk, JwkSet};
use keystore_ssm::aws_sdk_ssm::types::{ParameterTier, ParameterType};
use keystore_ssm::aws_sdk_ssm::Client;
use keystore_ssm::put_next_version;
use serde::Serialize;
use service_auth::UnixTime;
use service_token::KeySet;
use token_kms::{KmsError, KmsSigner};

use super::{checked_service, service_not_found};
use crate::aws::aws_error;
use crate::cli::{BrakeArgs, JwksArgs, TokenKeyAddArgs, TokenKeyListArgs, TokenKeyRemoveArgs};
use crate::error::Error;
use crate::{Ctx, Outcome};

/// Attempts of a key-set write before giving up (each after another writer's change).
const MAX_WRITE_ATTEMPTS: u32 = 8;
/// A brake further ahead than this is refused as a likely typo.
const MAX_BRAKE_AHEAD: Duration = Duration::from_secs(7 * 86_400);

/// The key set parameter and signing alias these options name.
fn jwks_names(ctx: &Ctx<'_, '_>, args: &JwksArgs) -> (String, String) {
    let parameter = args.jwks_parameter.clone().unwrap_or_else(|| {
        let path = ctx
            .global
            .path
            .clone()
            .unwrap_or_else(|| format!("/svcauth/{}/keys", ctx.global.env));
        let parent = path
            .trim_end_matches('/')
            .rsplit_once('/')
            .map_or("", |(p, _)| p)
            .to_owned();
        format!("{parent}/token/jwks")
    });
    let alias = args
        .signing_alias
        .clone()
        .unwrap_or_else(|| format!("alias/svcauth-token-{}", ctx.global.env));
    (parameter, alias)
}

fn kms_error(e: KmsError, what: &str) -> Error {
    match &e {
        KmsError::Kms { code, .. } if code == "NotFoundException" => Error::NotFound(format!(
            "{what}: {e}; check the key id or alias and the region (--region / AWS_REGION)"
        )),
        KmsError::WrongKey { .. } => Error::Usage(format!("{what}: {e}")),
        _ => Error::Aws(format!(
            "{what}: {e}; the caller needs kms:DescribeKey and kms:GetPublicKey on the key"
        )),
    }
}

/// The key set stored in `name` and its version; `None` when there is none yet.
async fn read_jwks(client: &Client, name: &str) -> Result<Option<(JwkSet, i64)>, Error> {
    read_jwks_version(client, name, None).await
}

async fn read_jwks_version(
    client: &Client,
    name: &str,
    version: Option<i64>,
) -> Result<Option<(JwkSet, i64)>, Error> {
    let selector = match version {
        Some(v) => format!("{name}:{v}"),
        None => name.to_owned(),
    };
    let out = match client
        .get_parameter()
        .name(&selector)
        .with_decryption(false)
        .send()
        .await
    {
        Ok(out) => out,
        Err(e)
            if version.is_none()
                && e.as_service_error()
                    .is_some_and(|s| s.is_parameter_not_found()) =>
        {
            return Ok(None)
        }
        Err(e) => return Err(aws_error("GetParameter", name, client, e)),
    };
    let Some(p) = out.parameter() else {
        return Ok(None);
    };
    let value = p.value().unwrap_or_default();
    let set: JwkSet = serde_json::from_str(value).map_err(|e| {
        Error::Store(format!(
            "{name} (version {}) is not a JWKS ({e}): fix or delete it, then run `svcauth tokens keys add` for each signing key",
            p.version()
        ))
    })?;
    Ok(Some((set, p.version())))
}

fn kid_of(jwk: &Jwk) -> &str {
    jwk.common.key_id.as_deref().unwrap_or("")
}

/// Applies `change` (idempotent; `Ok(false)`: nothing to change) to the key set and
/// writes it without losing a concurrent write. Returns the key set as written, or
/// `None` when nothing had to change.
async fn update_jwks<F>(client: &Client, name: &str, mut change: F) -> Result<Option<JwkSet>, Error>
where
    F: FnMut(&mut JwkSet) -> Result<bool, Error>,
{
    let (mut set, mut base) = match read_jwks(client, name).await? {
        Some((s, v)) => (s, Some(v)),
        None => (JwkSet { keys: Vec::new() }, None),
    };
    // After a conflict our own write may have replaced another writer's version:
    // write the merged set even when it already holds our change.
    let mut must_write = false;
    for _ in 0..MAX_WRITE_ATTEMPTS {
        if !change(&mut set)? && !must_write {
            return Ok(None);
        }
        // Only what every verifier can use is written.
        KeySet::from_jwks(&set)
            .ok()
            .filter(|k| k.skipped() == 0)
            .ok_or_else(|| {
                Error::Store(format!(
                    "the key set for {name} would hold a key verifiers cannot use; nothing was written"
                ))
            })?;
        let value = serde_json::to_string(&set)
            .map_err(|e| Error::Store(format!("could not write the key set: {e}")))?;
        let put = client
            .put_parameter()
            .name(name)
            .value(value)
            .r#type(ParameterType::String)
            .tier(ParameterTier::Standard);
        let description =
            || "svcauth published token signing keys (JWKS); written by `svcauth tokens keys`";
        let written = match put_next_version(put, base, description).await {
            Ok(Some(version)) => version,
            Ok(None) => {
                // Someone created it first: apply the change to theirs.
                let Some((theirs, v)) = read_jwks(client, name).await? else {
                    continue;
                };
                (set, base, must_write) = (theirs, Some(v), false);
                continue;
            }
            Err(e) => return Err(aws_error("PutParameter", name, client, e)),
        };
        let expected = base.map_or(1, |v| v + 1);
        let (current, version) = if written == expected {
            // A later writer may have replaced ours at once: check the version now.
            match read_jwks(client, name).await? {
                Some((s, v)) if v != written => (s, v),
                _ => return Ok(Some(set)),
            }
        } else {
            // Versions expected..written-1 are another writer's; the last holds theirs.
            read_jwks_version(client, name, Some(written - 1))
                .await?
                .ok_or_else(|| Error::Store(format!("{name}: version {} vanished", written - 1)))?
        };
        let mut probe = current.clone();
        if written == expected && !change(&mut probe)? {
            // The newer version already holds our change.
            return Ok(Some(current));
        }
        must_write = written != expected;
        (set, base) = (current, Some(version.max(written)));
    }
    Err(Error::Store(format!(
        "{name} changed under {MAX_WRITE_ATTEMPTS} attempts in a row; nothing was lost, run the command again"
    )))
}

/// The key id the signing alias names now, `None` when the alias does not exist.
async fn signing_kid(
    kms: &token_kms::aws_sdk_kms::Client,
    alias: &str,
) -> Result<Option<String>, Error> {
    match KmsSigner::resolve(kms.clone(), alias).await {
        Ok(s) => Ok(Some(s.kid().to_owned())),
        Err(KmsError::Kms { code, .. }) if code == "NotFoundException" => Ok(None),
        // A key the alias names that cannot sign ES256 still is the alias's key.
        Err(e) => Err(kms_error(e, &format!("could not resolve {alias}"))),
    }
}

pub async fn add(ctx: &mut Ctx<'_, '_>, args: &TokenKeyAddArgs) -> Result<Outcome, Error> {
    let (parameter, alias) = jwks_names(ctx, &args.jwks);
    let key = args.key.trim();
    if key.is_empty() || key.len() > 2048 || !key.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(Error::Usage(format!(
            "--key {:?} is not a KMS key id, ARN or alias (e.g. alias/svcauth-token-dev)",
            args.key
        )));
    }
    let kms = ctx.aws.kms(ctx.global).await?;
    let set = token_kms::key_set(&kms, &[key])
        .await
        .map_err(|e| kms_error(e, &format!("could not read the public key of {key}")))?;
    let Some(jwk) = set.keys.into_iter().next() else {
        return Err(Error::Aws(format!("KMS returned no public key for {key}")));
    };
    let kid = kid_of(&jwk).to_owned();
    let client = ctx.client().await?;
    if args.dry_run {
        let present = read_jwks(&client, &parameter)
            .await?
            .is_some_and(|(s, _)| s.keys.iter().any(|k| kid_of(k) == kid));
        ctx.status(format!(
            "dry run: key {kid} ({key}) {} {parameter}; nothing was written",
            if present {
                "is already in"
            } else {
                "would be added to"
            }
        ));
        return Ok(if present {
            Outcome::NothingToDo
        } else {
            Outcome::Done
        });
    }
    let written = update_jwks(&client, &parameter, |set| {
        match set.keys.iter_mut().find(|k| kid_of(k) == kid) {
            Some(k) if *k == jwk => Ok(false),
            // Same kid, other content (a hand edit): KMS's public key is the truth.
            Some(k) => {
                *k = jwk.clone();
                Ok(true)
            }
            None => {
                set.keys.push(jwk.clone());
                Ok(true)
            }
        }
    })
    .await?;
    let Some(set) = written else {
        ctx.status(format!(
            "nothing to do: key {kid} is already published in {parameter}"
        ));
        return Ok(Outcome::NothingToDo);
    };
    ctx.status(format!(
        "published key {kid} ({key}) in {parameter}; it holds {} key(s): {}",
        set.keys.len(),
        set.keys.iter().map(kid_of).collect::<Vec<_>>().join(", ")
    ));
    ctx.status(format!(
        "verifiers pick it up within their key-set cache (the issuer's /.well-known/jwks.json: 300 s; the authorizer refetches on an unknown kid). If this is a new signing key, wait that long, then point {alias} at it: aws kms update-alias --alias-name {alias} --target-key-id {kid}"
    ));
    Ok(Outcome::Done)
}

pub async fn remove(ctx: &mut Ctx<'_, '_>, args: &TokenKeyRemoveArgs) -> Result<Outcome, Error> {
    let (parameter, alias) = jwks_names(ctx, &args.jwks);
    let kid = args.kid.trim().to_owned();
    if !service_token::keyset::valid_kid(&kid) {
        return Err(Error::Usage(format!(
            "--kid {:?} is not a key id: give the kid as `svcauth tokens keys list` shows it",
            args.kid
        )));
    }
    let kms = ctx.aws.kms(ctx.global).await?;
    if signing_kid(&kms, &alias).await?.as_deref() == Some(kid.as_str()) {
        return Err(Error::Usage(format!(
            "key {kid} is the one {alias} points to: the issuer signs with it, and removing it would make every token it signs fail verification (and the issuer refuse to sign). Publish a new key (`svcauth tokens keys add --key NEW`), point the alias at it (`aws kms update-alias --alias-name {alias} --target-key-id NEW`), wait until the tokens signed by {kid} expired (65 minutes plus 5 for caches), then remove {kid}"
        )));
    }
    let client = ctx.client().await?;
    let present = read_jwks(&client, &parameter)
        .await?
        .is_some_and(|(s, _)| s.keys.iter().any(|k| kid_of(k) == kid));
    if !present {
        // Like an unknown key id in `keys revoke`: not found (4), not "nothing to do".
        return Err(Error::NotFound(format!(
            "key {kid} is not published in {parameter}: `svcauth tokens keys list` shows the published kids"
        )));
    }
    if args.dry_run {
        ctx.status(format!(
            "dry run: would remove key {kid} from {parameter}; nothing was written"
        ));
        return Ok(Outcome::Done);
    }
    let written = update_jwks(&client, &parameter, |set| {
        let before = set.keys.len();
        set.keys.retain(|k| kid_of(k) != kid);
        Ok(set.keys.len() != before)
    })
    .await?;
    match written {
        Some(set) => {
            ctx.status(format!(
                "removed key {kid} from {parameter}; it holds {} key(s). Tokens signed by {kid} stop verifying once verifiers refetch the key set (within 300 s)",
                set.keys.len()
            ));
            Ok(Outcome::Done)
        }
        None => {
            ctx.status(format!(
                "nothing to do: key {kid} is not published in {parameter}"
            ));
            Ok(Outcome::NothingToDo)
        }
    }
}

#[derive(Serialize)]
struct ListedKey<'a> {
    kid: &'a str,
    kty: &'static str,
    crv: &'static str,
    signing: Option<bool>,
}

pub async fn list(ctx: &mut Ctx<'_, '_>, args: &TokenKeyListArgs) -> Result<Outcome, Error> {
    let (parameter, alias) = jwks_names(ctx, &args.jwks);
    let client = ctx.client().await?;
    let Some((set, version)) = read_jwks(&client, &parameter).await? else {
        return Err(Error::NotFound(format!(
            "no key set is published at {parameter}: check --jwks-parameter, --env and the region, or publish the signing key with `svcauth tokens keys add --key {alias}`"
        )));
    };
    // Which key signs is a KMS question; the list is still useful without the answer.
    let signing = match ctx.aws.kms(ctx.global).await {
        Ok(kms) => match signing_kid(&kms, &alias).await {
            Ok(k) => Some(k),
            Err(e) => {
                ctx.status(format!("could not tell which key {alias} names: {e}"));
                None
            }
        },
        Err(e) => {
            ctx.status(format!("could not tell which key {alias} names: {e}"));
            None
        }
    };
    let rows: Vec<ListedKey<'_>> = set
        .keys
        .iter()
        .map(|k| {
            let kid = kid_of(k);
            let (kty, crv) = match &k.algorithm {
                jsonwebtoken::jwk::AlgorithmParameters::EllipticCurve(p)
                    if p.curve == jsonwebtoken::jwk::EllipticCurve::P256 =>
                {
                    ("EC", "P-256")
                }
                _ => ("other", "-"),
            };
            ListedKey {
                kid,
                kty,
                crv,
                signing: signing.as_ref().map(|s| s.as_deref() == Some(kid)),
            }
        })
        .collect();
    if args.json {
        let json = serde_json::to_string_pretty(&rows)
            .map_err(|e| Error::Store(format!("could not print the list: {e}")))?;
        let _ = writeln!(ctx.io.stdout, "{json}");
    } else {
        let _ = writeln!(
            ctx.io.stdout,
            "{:<40}  {:<5}  {:<5}  SIGNING",
            "KID", "KTY", "CRV"
        );
        for r in &rows {
            let signing = match r.signing {
                Some(true) => "yes",
                Some(false) => "no",
                None => "unknown",
            };
            let _ = writeln!(
                ctx.io.stdout,
                "{:<40}  {:<5}  {:<5}  {signing}",
                r.kid, r.kty, r.crv
            );
        }
    }
    ctx.status(format!(
        "{} key(s) in {parameter} (version {version}); SIGNING = the key {alias} names",
        rows.len()
    ));
    if let Some(None) = &signing {
        ctx.status(format!(
            "{alias} does not exist: the issuer cannot sign until it does"
        ));
    } else if let Some(Some(kid)) = &signing {
        if !rows.iter().any(|r| r.kid == kid) {
            ctx.status(format!(
                "{alias} names key {kid}, which is NOT published: the issuer refuses to sign; run `svcauth tokens keys add --key {kid}`"
            ));
        }
    }
    Ok(Outcome::Done)
}

/// `--at`: `now` or RFC 3339, at most [`MAX_BRAKE_AHEAD`] ahead.
fn brake_time(at: &str, now: UnixTime) -> Result<UnixTime, Error> {
    let at = at.trim();
    let t = if at.eq_ignore_ascii_case("now") {
        now
    } else {
        UnixTime::parse_rfc3339(at).ok_or_else(|| {
            Error::Usage(format!(
                "--at {at:?} is not `now` or an RFC 3339 time like 2026-12-01T10:00:00Z"
            ))
        })?
    };
    if t.0 > now.0 + MAX_BRAKE_AHEAD.as_secs() {
        return Err(Error::Usage(format!(
            "--at {at} is more than 7 days ahead: the service would get no token until then. Give `now` or a nearer time"
        )));
    }
    Ok(t)
}

pub async fn brake(ctx: &mut Ctx<'_, '_>, args: &BrakeArgs) -> Result<Outcome, Error> {
    let service = checked_service(&args.service)?.to_owned();
    let at = brake_time(&args.at, ctx.now)?;
    let store = ctx.store().await?;
    store.require_existing()?;
    store.check_writable()?;
    let Some(doc) = store.read_document(&service).await? else {
        return Err(service_not_found(&service, &store));
    };
    if let Some(t) = doc.tokens_not_before.filter(|t| *t >= at) {
        ctx.status(format!(
            "nothing to do: tokens of {service} issued before {} are already refused (the brake only moves later)",
            t.to_rfc3339()
        ));
        return Ok(Outcome::NothingToDo);
    }
    if args.dry_run {
        ctx.status(format!(
            "dry run: would refuse tokens of {service} issued before {}; nothing was written",
            at.to_rfc3339()
        ));
        return Ok(Outcome::Done);
    }
    let written = store
        .update_document(&service, |d| {
            d.tokens_not_before = d.tokens_not_before.max(Some(at));
            Ok(())
        })
        .await?;
    let until = written.document.tokens_not_before.unwrap_or(at);
    ctx.status(format!(
        "braked: tokens of {service} issued before {} are refused by the authorizer within its store TTL (SVCAUTH_CACHE_TTL_SECS, default 300 s) plus the API's authorizer result TTL; the issuer issues none before then (it sees this within 15 s). Callers get a new token with their current key or role.",
        until.to_rfc3339()
    ));
    if until.0 > ctx.now.0 {
        ctx.status(format!(
            "the brake is ahead of now: {service} gets no token at all until {}",
            until.to_rfc3339()
        ));
    }
    Ok(Outcome::Done)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn brake_times() {
        let now = UnixTime(1_795_953_600);
        assert_eq!(brake_time("now", now).unwrap(), now);
        assert_eq!(brake_time(" NOW ", now).unwrap(), now);
        assert_eq!(
            brake_time("2026-11-29T12:00:00Z", now).unwrap(),
            UnixTime(1_795_953_600)
        );
        assert!(
            brake_time("2026-11-29T11:00:00Z", now).is_ok(),
            "the past is fine"
        );
        for bad in [
            "tomorrow",
            "",
            "2026-13-01T00:00:00Z",
            "2027-01-01T00:00:00Z",
        ] {
            assert!(
                matches!(brake_time(bad, now), Err(Error::Usage(_))),
                "{bad}"
            );
        }
    }
}
