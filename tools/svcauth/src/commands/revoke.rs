//! `keys revoke`: a key stops being accepted (now, or after `--after`).
//!
//! An immediate revocation first creates the key's revocation marker (create-only,
//! see keystore-ssm) and reports success only once it exists: from then on no load of
//! the authorizer accepts the key, whatever a concurrent or crashed writer leaves in
//! the document. `--after` writes the same marker holding the scheduled end: the key
//! ends then at the latest. The document is updated afterwards so `keys list` shows it.

use service_auth::{KeyId, KeyStatus, ServiceDocument, UnixTime};

use super::{checked_service, revoke_in, service_not_found, usable_keys};
use crate::cli::{RevokeArgs, FILE_REVOCATION_BOUND, REVOCATION_BOUND};
use crate::error::Error;
use crate::store::Store;
use crate::{Ctx, Outcome};

pub async fn revoke(ctx: &mut Ctx<'_, '_>, args: &RevokeArgs) -> Result<Outcome, Error> {
    let service = checked_service(&args.service)?;
    let Some(id) = KeyId::parse(args.key_id.trim()) else {
        return Err(Error::Usage(format!(
            "--key-id {:?} is not a key id: it is `kid_` and 16 hex digits, as `svcauth keys list --service {service}` shows",
            args.key_id
        )));
    };
    let store = ctx.store().await?;
    store.require_existing()?;
    store.check_writable()?;
    let Some(doc) = store.read_document(service).await? else {
        return Err(service_not_found(service, &store));
    };
    let Some(record) = doc.key(&id) else {
        return not_this_services_key(ctx, &store, service, &id).await;
    };
    let now = ctx.now;
    if record.status == KeyStatus::Revoked && args.after.is_none() {
        // Revoked in the document; make sure the marker exists too (a revocation
        // made before markers existed, or one interrupted between its two writes).
        if args.dry_run {
            ctx.status(format!(
                "dry run: key {id} of {service} is already revoked; would make sure its revocation marker exists; nothing was written"
            ));
            return Ok(Outcome::NothingToDo);
        }
        let created = store
            .mark_revoked(
                service,
                std::slice::from_ref(&id),
                now,
                "svcauth keys revoke",
            )
            .await?;
        if created > 0 {
            ctx.status(format!(
                "key {id} of {service} was revoked in its document (at {}) but had no revocation marker: wrote {}, so no later write can bring it back",
                super::when(record.revoked_at),
                store.marker_name(&id).unwrap_or_default()
            ));
            return Ok(Outcome::Done);
        }
        ctx.status(format!(
            "nothing to do: key {id} of {service} was already revoked at {}",
            super::when(record.revoked_at)
        ));
        return Ok(Outcome::NothingToDo);
    }
    if record.status == KeyStatus::Revoked {
        ctx.status(format!(
            "nothing to do: key {id} of {service} was already revoked at {}",
            super::when(record.revoked_at)
        ));
        return Ok(Outcome::NothingToDo);
    }
    let until = args.after.map(|d| now.plus(d));
    if let (Some(until), Some(expires)) = (until, record.expires) {
        if expires <= until {
            ctx.status(format!(
                "nothing to do: key {id} of {service} already expires at {}",
                expires.to_rfc3339()
            ));
            return Ok(Outcome::NothingToDo);
        }
    }
    let action = match until {
        Some(t) => format!("let key {id} of {service} expire at {}", t.to_rfc3339()),
        None => format!("revoke key {id} of {service}"),
    };
    if args.dry_run {
        let marker = match (until, store.marker_name(&id)) {
            (None, Some(m)) => format!(" (revocation marker {m} first)"),
            _ => String::new(),
        };
        ctx.status(format!(
            "dry run: would {action} in the {}{marker}; nothing was written",
            store.describe()
        ));
        // The same warning the real run gives, from the document as read now.
        let mut after = doc.clone();
        match until {
            Some(t) => {
                if let Some(k) = after.key_mut(&id) {
                    k.expires = Some(t);
                }
            }
            None => revoke_in(&mut after, &id, now),
        }
        warn_if_last(
            ctx,
            service,
            &id,
            &after,
            until.unwrap_or(now),
            until.is_some(),
        );
        return Ok(Outcome::Done);
    }
    // The marker first, and success only once it exists: from then on no write of the
    // document, by anyone, crashed or not, can undo this (issue 19 A2 for `--after`).
    match until {
        None => {
            store
                .mark_revoked(
                    service,
                    std::slice::from_ref(&id),
                    now,
                    "svcauth keys revoke",
                )
                .await?;
        }
        Some(t) => {
            let later = store
                .mark_expiring(
                    service,
                    std::slice::from_ref(&id),
                    t,
                    "svcauth keys revoke --after",
                )
                .await?;
            warn_later_markers(ctx, service, &later, t);
        }
    }
    let written = store
        .update_document(service, |doc| {
            match until {
                Some(t) => {
                    if let Some(k) = doc.key_mut(&id) {
                        if k.expires.is_none_or(|e| e > t) {
                            k.expires = Some(t);
                        }
                    }
                }
                None => revoke_in(doc, &id, now),
            }
            Ok(())
        })
        .await
        .map_err(|e| match (until, store.marker_name(&id)) {
            (None, Some(marker)) => e.with_note(format!(
                "the key IS revoked: its marker {marker} exists and every authorizer load refuses it; only its document still shows it active in `keys list`: run the same command again to record it there"
            )),
            (Some(t), Some(marker)) => e.with_note(format!(
                "the key DOES end at {}: its marker {marker} holds that time and every authorizer load applies it; only its document does not show it yet in `keys list`: run the same command again to record it there",
                t.to_rfc3339()
            )),
            _ => e,
        })?;
    super::create::report_merges(ctx, &written);
    ctx.status(format!("done: {action}"));
    if until.is_none() {
        let bound = match store.marker_name(&id) {
            Some(_) => REVOCATION_BOUND,
            None => FILE_REVOCATION_BOUND,
        };
        ctx.status(bound.replace('\n', " "));
    }
    warn_if_last(
        ctx,
        service,
        &id,
        &written.document,
        until.unwrap_or(now),
        until.is_some(),
    );
    Ok(Outcome::Done)
}

/// `--key-id` is not in `service`'s document: say whose key it is (the operator named
/// the wrong service), or that it was revoked and its record pruned, or that nobody has
/// it.
async fn not_this_services_key(
    ctx: &mut Ctx<'_, '_>,
    store: &Store,
    service: &str,
    id: &KeyId,
) -> Result<Outcome, Error> {
    let owner = store
        .load_documents()
        .await?
        .into_iter()
        .find(|d| d.key(id).is_some())
        .map(|d| d.service);
    if let Some(owner) = owner {
        return Err(Error::NotFound(format!(
            "key {id} is not a key of {service}: it belongs to {owner}. To revoke it: svcauth keys revoke --service {owner} --key-id {id}"
        )));
    }
    if store
        .revoked_among(std::slice::from_ref(id))
        .await?
        .contains(id)
    {
        ctx.status(format!(
            "nothing to do: key {id} is revoked for good (its revocation marker {} exists); its record is no longer in any document (`keys prune` removed it)",
            store.marker_name(id).unwrap_or_default()
        ));
        return Ok(Outcome::NothingToDo);
    }
    Err(Error::NotFound(format!(
        "no service has a key {id} in the {}: check --key-id; `svcauth keys list --service {service}` shows {service}'s keys",
        store.describe()
    )))
}

/// Warns when `doc` leaves the service no usable key at `at`. With `--after` the key
/// still works until then, so the warning speaks of that time, not of now.
fn warn_if_last(
    ctx: &mut Ctx<'_, '_>,
    service: &str,
    id: &KeyId,
    doc: &ServiceDocument,
    at: UnixTime,
    later: bool,
) {
    if usable_keys(doc, at).iter().any(|k| k != id) {
        return;
    }
    let when = if later {
        format!(
            "from {} (the key works until then), its callers are refused unless it gets a new key before",
            at.to_rfc3339()
        )
    } else {
        "its callers are refused until it gets one".to_owned()
    };
    ctx.status(format!(
        "warning: {service} has no other usable key: {when} (`svcauth keys create --service {service}`, or `svcauth keys rotate --service {service}` while a key still works)"
    ));
}

/// Says which keys kept an expiry marker later than `at` (set by an earlier command):
/// for them `at` is held by the document only, which a concurrent writer could lose.
pub(crate) fn warn_later_markers(
    ctx: &mut Ctx<'_, '_>,
    service: &str,
    later: &[(KeyId, UnixTime)],
    at: UnixTime,
) {
    for (id, marked) in later {
        ctx.status(format!(
            "note: key {id} already had a marker ending it at {}: it ends then whatever happens, and at {} as long as its document keeps this change (a writer that overwrites the document and crashes could lose it). To be certain, revoke it at {} (`svcauth keys revoke --service {service} --key-id {id}`)",
            marked.to_rfc3339(),
            at.to_rfc3339(),
            at.to_rfc3339()
        ));
    }
}
