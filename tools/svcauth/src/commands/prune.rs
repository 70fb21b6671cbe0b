//! `keys prune`: remove the records of keys that stopped working long ago, so a
//! service that is rotated often never fills its document.
//!
//! A record leaves its document only after its key's revocation marker exists: the
//! record was the only thing saying the key had ended, and without it a legacy-map
//! entry for the same key (or a stale copy a crashed writer put back) would make it
//! usable again. The marker moves the tombstone out of the 32-record document.

use std::collections::HashSet;

use service_auth::{KeyId, UnixTime};

use super::{checked_service, documents_of, list_ids};
use crate::cli::PruneArgs;
use crate::error::Error;
use crate::{Ctx, Outcome};

pub async fn prune(ctx: &mut Ctx<'_, '_>, args: &PruneArgs) -> Result<Outcome, Error> {
    let service = args.service.as_deref().map(checked_service).transpose()?;
    let store = ctx.store().await?;
    store.require_existing()?;
    store.check_writable()?;
    let docs = documents_of(&store, service).await?;
    let now = ctx.now;
    let cutoff = UnixTime(now.0.saturating_sub(args.older_than.as_secs()));
    // What would go, read first so that services with nothing to remove are not
    // written at all.
    let plan: Vec<(String, Vec<KeyId>)> = docs
        .into_iter()
        .filter_map(|mut doc| {
            let ids = doc.remove_ended(now, cutoff);
            (!ids.is_empty()).then_some((doc.service, ids))
        })
        .collect();
    if plan.is_empty() {
        ctx.status(format!(
            "nothing to do: no key in the {} stopped working before {}",
            store.describe(),
            cutoff.to_rfc3339()
        ));
        return Ok(Outcome::NothingToDo);
    }
    for (service, ids) in &plan {
        if args.dry_run {
            ctx.status(format!(
                "dry run: would remove {} record(s) of {service}: {}",
                ids.len(),
                list_ids(ids)
            ));
            continue;
        }
        store
            .mark_revoked(service, ids, now, "svcauth keys prune: the key had ended")
            .await
            .map_err(|e| {
                e.with_note(format!(
                    "nothing of {service} was removed: a record leaves its document only after its key's revocation marker exists; run the command again"
                ))
            })?;
        let marked: HashSet<&KeyId> = ids.iter().collect();
        // Runs again on a newer version after a concurrent write: the last run is
        // what was written. Only records whose marker exists are removed.
        let mut removed = Vec::new();
        let written = store
            .update_document(service, |doc| {
                let mut probe = doc.clone();
                removed = probe
                    .remove_ended(now, cutoff)
                    .into_iter()
                    .filter(|id| marked.contains(id))
                    .collect();
                doc.keys.retain(|k| !removed.contains(&k.key_id));
                Ok(())
            })
            .await?;
        super::create::report_merges(ctx, &written);
        ctx.status(format!(
            "removed {} record(s) of {service}: {}; {} left",
            removed.len(),
            list_ids(&removed),
            written.document.keys.len()
        ));
    }
    if args.dry_run {
        ctx.status(format!(
            "dry run: nothing was written to the {}",
            store.describe()
        ));
    }
    Ok(Outcome::Done)
}
