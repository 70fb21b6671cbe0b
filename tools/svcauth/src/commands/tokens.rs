//! `tokens keys add | remove | list` and `tokens brake`.
//!
//! The key set (JWKS) is one SSM `SecureString` under the store's KMS key
//! (`--kms-key-id`), read and written through keystore-ssm's `KeySetParameter`: a
//! version-checked write that loses no concurrent change. A key set written the old
//! way (a `String`, which anyone allowed to write parameters there could forge) is not
//! trusted by any verifier: `tokens keys add` replaces it with a SecureString holding
//! only the key it adds (its other keys are listed, to be added again one by one:
//! none of them is carried over unchecked).
//!
//! A brake is written twice: first a create-only marker
//! (`{parent}/brakes/{service}/{time}`, which no later write of the document can undo,
//! like a revocation marker), then the document's `tokensNotBefore` (for `keys list`).

use std::time::Duration;

use jsonwebtoken::jwk::{Jwk, JwkSet};
use keystore_ssm::{KeySetParameter, StoredKeySet};
use serde::Serialize;
use service_auth::UnixTime;
use service_token::cache::DEFAULT_MAX_AGE;
use service_token::KeySet;
use token_kms::{KmsError, KmsSigner};

use super::{checked_service, service_not_found};
use crate::cli::{BrakeArgs, JwksArgs, TokenKeyAddArgs, TokenKeyListArgs, TokenKeyRemoveArgs};
use crate::error::Error;
use crate::{Ctx, Outcome};

/// A brake further ahead than this is refused as a likely typo.
const MAX_BRAKE_AHEAD: Duration = Duration::from_secs(7 * 86_400);

/// How long a verifier may still trust a key removed from the key set: the
/// authorizer's key-set cache ([`DEFAULT_MAX_AGE`]) plus the API's authorizer result
/// TTL (API Gateway reuses an answer it cached). Printed by `tokens keys remove`.
pub fn removal_bound() -> String {
    format!(
        "within {} s (the authorizer's key-set cache) plus the API's authorizer result TTL (AuthorizerResultTtl); the issuer stops handing out its held tokens within 300 s",
        DEFAULT_MAX_AGE.as_secs()
    )
}

/// The form of the platform's signing alias, for messages when none was given. It has no
/// default: the platform names it after its own stack (`alias/{stack}/token-signing`),
/// which a nested deploy generates, so only the stack's output can tell it.
const ALIAS_FORM: &str = "alias/PLATFORM_STACK/token-signing";

/// The key set parameter and the signing alias (when given) these options name.
async fn key_set(
    ctx: &mut Ctx<'_, '_>,
    args: &JwksArgs,
) -> Result<(KeySetParameter, Option<String>), Error> {
    let store = ctx.ssm().await?;
    let parameter = store.key_set(args.jwks_parameter.as_deref());
    let alias = args
        .signing_alias
        .as_deref()
        .map(str::trim)
        .filter(|a| !a.is_empty())
        .map(str::to_owned);
    Ok((parameter, alias))
}

/// The alias for a message: the one given, else its form.
fn alias_or_form(alias: &Option<String>) -> &str {
    alias.as_deref().unwrap_or(ALIAS_FORM)
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

/// A stored key set as a JWKS (an unparseable one is an error naming the fix).
fn parse_jwks(name: &str, stored: &StoredKeySet) -> Result<JwkSet, Error> {
    serde_json::from_str(&stored.text).map_err(|e| {
        Error::Store(format!(
            "{name} (version {}) is not a JWKS ({e}): fix or delete it, then run `svcauth tokens keys add` for each signing key",
            stored.version
        ))
    })
}

/// The key set verifiers trust now: `None` when there is none, or only an untrusted
/// (`String`) one, whose kids are the second value.
async fn read_trusted(parameter: &KeySetParameter) -> Result<(Option<JwkSet>, Vec<String>), Error> {
    match parameter.read().await? {
        None => Ok((None, Vec::new())),
        Some(s) if s.trusted() => Ok((Some(parse_jwks(parameter.name(), &s)?), Vec::new())),
        Some(s) => Ok((
            None,
            parse_jwks(parameter.name(), &s)
                .map(|set| set.keys.iter().map(|k| kid_of(k).to_owned()).collect())
                .unwrap_or_default(),
        )),
    }
}

fn kid_of(jwk: &Jwk) -> &str {
    jwk.common.key_id.as_deref().unwrap_or("")
}

/// Applies `change` (idempotent; `Ok(false)`: nothing to change) to the trusted key set
/// and writes it as a SecureString without losing a concurrent write. An untrusted
/// (`String`) key set counts as none: it is replaced, never carried over. Returns the
/// key set as written, or `None` when nothing had to change.
async fn update_jwks<F>(parameter: &KeySetParameter, mut change: F) -> Result<Option<JwkSet>, Error>
where
    F: FnMut(&mut JwkSet) -> Result<bool, Error>,
{
    let name = parameter.name().to_owned();
    let written = parameter
        .update(|stored| {
            let trusted = stored.filter(|s| s.trusted());
            let mut set = match trusted {
                Some(s) => parse_jwks(&name, s)?,
                None => JwkSet { keys: Vec::new() },
            };
            let changed = change(&mut set)?;
            // An untrusted set is replaced even when the change is already in it.
            if !changed && (trusted.is_some() || stored.is_none()) {
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
            serde_json::to_string(&set)
                .map(Some)
                .map_err(|e| Error::Store(format!("could not write the key set: {e}")))
        })
        .await??;
    written
        .map(|text| {
            serde_json::from_str(&text)
                .map_err(|e| Error::Store(format!("could not read back the key set: {e}")))
        })
        .transpose()
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
    let (parameter, alias) = key_set(ctx, &args.jwks).await?;
    let key = args.key.trim();
    if key.is_empty() || key.len() > 2048 || !key.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(Error::Usage(format!(
            "--key {:?} is not a KMS key id, ARN or alias (e.g. {ALIAS_FORM})",
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
    let (trusted, untrusted_kids) = read_trusted(&parameter).await?;
    let was_untrusted = trusted.is_none() && parameter.read().await?.is_some();
    if args.dry_run {
        let present = trusted
            .as_ref()
            .is_some_and(|s| s.keys.iter().any(|k| kid_of(k) == kid));
        ctx.status(format!(
            "dry run: key {kid} ({key}) {} {}; nothing was written",
            if present {
                "is already in"
            } else {
                "would be added to"
            },
            parameter.name()
        ));
        if was_untrusted {
            ctx.status(untrusted_note(
                parameter.name(),
                &untrusted_kids,
                &kid,
                true,
            ));
        }
        return Ok(if present {
            Outcome::NothingToDo
        } else {
            Outcome::Done
        });
    }
    let written = update_jwks(&parameter, |set| {
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
            "nothing to do: key {kid} is already published in {}",
            parameter.name()
        ));
        return Ok(Outcome::NothingToDo);
    };
    ctx.status(format!(
        "published key {kid} ({key}) in {} (SecureString{}); it holds {} key(s): {}",
        parameter.name(),
        ctx.kms_key_id()?
            .map(|k| format!(", KMS key {k}"))
            .unwrap_or_default(),
        set.keys.len(),
        set.keys.iter().map(kid_of).collect::<Vec<_>>().join(", ")
    ));
    if was_untrusted {
        ctx.status(untrusted_note(
            parameter.name(),
            &untrusted_kids,
            &kid,
            false,
        ));
    }
    let alias = alias_or_form(&alias);
    ctx.status(format!(
        "verifiers pick it up within their key-set cache (the issuer's /.well-known/jwks.json: 300 s; the authorizer refetches on an unknown kid, and every {} s). If this is a new signing key, wait that long, then point the signing alias (the platform's TokenSigningKeyAlias output) at it: aws kms update-alias --alias-name {alias} --target-key-id {kid}",
        DEFAULT_MAX_AGE.as_secs()
    ));
    Ok(Outcome::Done)
}

/// What replacing an untrusted (`String`) key set means, and what to run next.
fn untrusted_note(name: &str, kids: &[String], added: &str, dry_run: bool) -> String {
    let others: Vec<&str> = kids
        .iter()
        .map(String::as_str)
        .filter(|k| *k != added)
        .collect();
    let carried = if others.is_empty() {
        String::new()
    } else {
        format!(
            " It held other keys, not carried over (they could have been forged): {}. Add each one you published with `svcauth tokens keys add --key KID`.",
            others.join(", ")
        )
    };
    format!(
        "{name} {} a String parameter, which verifiers do not trust (anyone allowed to write it could add a signing key): {} a SecureString holding only the key added.{carried}",
        if dry_run { "is" } else { "was" },
        if dry_run { "it would be replaced by" } else { "it is replaced by" }
    )
}

pub async fn remove(ctx: &mut Ctx<'_, '_>, args: &TokenKeyRemoveArgs) -> Result<Outcome, Error> {
    let (parameter, alias) = key_set(ctx, &args.jwks).await?;
    let kid = args.kid.trim().to_owned();
    if !service_token::keyset::valid_kid(&kid) {
        return Err(Error::Usage(format!(
            "--kid {:?} is not a key id: give the kid as `svcauth tokens keys list` shows it",
            args.kid
        )));
    }
    // Without the alias nobody can tell whether this is the key the issuer signs with:
    // never remove blind.
    let Some(alias) = alias else {
        return Err(Error::Usage(format!(
            "svcauth cannot tell whether {kid} is the key the issuer signs with: pass --signing-alias (the issuer's SVCAUTH_TOKEN_KEY; the platform's TokenSigningKeyAlias output, {ALIAS_FORM})"
        )));
    };
    let kms = ctx.aws.kms(ctx.global).await?;
    let Some(signing) = signing_kid(&kms, &alias).await? else {
        return Err(Error::Usage(format!(
            "the signing alias {alias} does not exist, so svcauth cannot tell whether {kid} is the key the issuer signs with: pass --signing-alias (the issuer's SVCAUTH_TOKEN_KEY; the platform's TokenSigningKeyAlias output, {ALIAS_FORM})"
        )));
    };
    if signing == kid {
        return Err(Error::Usage(format!(
            "key {kid} is the one {alias} points to: the issuer signs with it, and removing it would make every token it signs fail verification (and the issuer refuse to sign). Publish a new key (`svcauth tokens keys add --key NEW`), point the alias at it (`aws kms update-alias --alias-name {alias} --target-key-id NEW`), wait until the tokens signed by {kid} expired (65 minutes plus {} s for caches), then remove {kid}",
            DEFAULT_MAX_AGE.as_secs()
        )));
    }
    let (trusted, untrusted_kids) = read_trusted(&parameter).await?;
    let Some(trusted) = trusted else {
        if parameter.read().await?.is_some() {
            return Err(Error::Store(format!(
                "{} is a String parameter, which verifiers do not trust: no key in it is accepted{}. Replace it with `svcauth tokens keys add --key {alias}` (a SecureString holding the signing key)",
                parameter.name(),
                if untrusted_kids.contains(&kid) { format!(", {kid} included") } else { String::new() }
            )));
        }
        // Like an unknown key id in `keys revoke`: not found (4), not "nothing to do".
        return Err(Error::NotFound(format!(
            "key {kid} is not published in {}: there is no key set there (check --jwks-parameter, --env and the region)",
            parameter.name()
        )));
    };
    if !trusted.keys.iter().any(|k| kid_of(k) == kid) {
        // Like an unknown key id in `keys revoke`: not found (4), not "nothing to do".
        return Err(Error::NotFound(format!(
            "key {kid} is not published in {}: `svcauth tokens keys list` shows the published kids",
            parameter.name()
        )));
    }
    if args.dry_run {
        ctx.status(format!(
            "dry run: would remove key {kid} from {}; nothing was written",
            parameter.name()
        ));
        return Ok(Outcome::Done);
    }
    let written = update_jwks(&parameter, |set| {
        let before = set.keys.len();
        set.keys.retain(|k| kid_of(k) != kid);
        Ok(set.keys.len() != before)
    })
    .await?;
    match written {
        Some(set) => {
            ctx.status(format!(
                "removed key {kid} from {}; it holds {} key(s). Tokens signed by {kid} stop verifying {}",
                parameter.name(),
                set.keys.len(),
                removal_bound()
            ));
            Ok(Outcome::Done)
        }
        None => {
            ctx.status(format!(
                "nothing to do: key {kid} is not published in {}",
                parameter.name()
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
    let (key_set, given) = key_set(ctx, &args.jwks).await?;
    let alias = alias_or_form(&given);
    let parameter = key_set.name().to_owned();
    let Some(stored) = key_set.read().await? else {
        return Err(Error::NotFound(format!(
            "no key set is published at {parameter}: check --jwks-parameter, --env and the region, or publish the signing key with `svcauth tokens keys add --key {alias}`"
        )));
    };
    let set = parse_jwks(&parameter, &stored)?;
    let version = stored.version;
    if !stored.trusted() {
        ctx.status(format!(
            "warning: {parameter} is a {} parameter: verifiers do NOT trust it (anyone allowed to write it could add a signing key), so no token signed by these keys is accepted. Replace it with `svcauth tokens keys add --key {alias}` (a SecureString)",
            stored.found
        ));
    }
    // Which key signs is a KMS question; the list is still useful without the answer.
    let signing = match (&given, ctx.aws.kms(ctx.global).await) {
        (None, _) => {
            ctx.status(format!(
                "SIGNING is unknown without --signing-alias (the platform's TokenSigningKeyAlias output, {ALIAS_FORM})"
            ));
            None
        }
        (Some(_), Ok(kms)) => match signing_kid(&kms, alias).await {
            Ok(k) => Some(k),
            Err(e) => {
                ctx.status(format!("could not tell which key {alias} names: {e}"));
                None
            }
        },
        (Some(_), Err(e)) => {
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
    // The marker first: once it exists no write of the document, by anyone, crashed or
    // not, can take the brake back (issue 19 A2).
    let marker = store
        .mark_brake(&service, at, "svcauth tokens brake")
        .await?;
    let written = store
        .update_document(&service, |d| {
            d.tokens_not_before = d.tokens_not_before.max(Some(at));
            Ok(())
        })
        .await
        .map_err(|e| match &marker {
            Some(m) => e.with_note(format!(
                "the brake IS in force: its marker {m} exists and every authorizer and issuer read applies it; only the document does not show it yet in `keys list`: run the same command again to record it there"
            )),
            None => e,
        })?;
    super::create::report_merges(ctx, &written);
    let until = written.document.tokens_not_before.unwrap_or(at);
    ctx.status(format!(
        "braked: tokens of {service} issued before {} are refused by the authorizer within its store TTL (SVCAUTH_CACHE_TTL_SECS, default 300 s) plus the API's authorizer result TTL; the issuer issues none before then (it sees this within 15 s). Callers get a new token with their current key or role.{}",
        until.to_rfc3339(),
        marker
            .map(|m| format!(" Held by the marker {m}, which no later write of the document can undo."))
            .unwrap_or_default()
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
