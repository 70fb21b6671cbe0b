//! `keys reindex`: write the key id index entries a store lacks, so that the
//! authorizer answers those keys with two SSM calls instead of a full load.

use super::{checked_service, documents_of, list_ids};
use crate::cli::ReindexArgs;
use crate::error::Error;
use crate::store::Store;
use crate::{Ctx, Outcome};

pub async fn reindex(ctx: &mut Ctx<'_, '_>, args: &ReindexArgs) -> Result<Outcome, Error> {
    let service = args.service.as_deref().map(checked_service).transpose()?;
    let store = ctx.store().await?;
    store.require_existing()?;
    if let Store::File(_) = store {
        ctx.status(format!(
            "nothing to do: the {} has no index (the authorizer reads the file whole)",
            store.describe()
        ));
        return Ok(Outcome::NothingToDo);
    }
    if !args.dry_run {
        store.check_writable()?;
    }
    let docs = documents_of(&store, service).await?;
    let (mut missing, mut keys) = (0, 0);
    for doc in &docs {
        keys += doc.keys.len();
        let found = store.reindex(doc, args.dry_run).await?;
        if !found.missing.is_empty() {
            missing += found.missing.len();
            ctx.status(format!(
                "{} {} index entr{} of {}: {}",
                if args.dry_run {
                    "dry run: would write"
                } else {
                    "wrote"
                },
                found.missing.len(),
                if found.missing.len() == 1 { "y" } else { "ies" },
                doc.service,
                list_ids(&found.missing)
            ));
        }
        for (id, other) in &found.conflicts {
            ctx.status(format!(
                "warning: the index entry of {id} (a key of {}) names {other:?} and is left alone: that key is answered through the authorizer's full load only. If {other:?} does not hold it either, delete the entry by hand (it grants nothing: the document holding the key's hash does) and run this again",
                doc.service
            ));
        }
    }
    if missing == 0 {
        ctx.status(format!(
            "nothing to do: all {keys} key(s) of {} service(s) in the {} are indexed",
            docs.len(),
            store.describe()
        ));
        return Ok(Outcome::NothingToDo);
    }
    Ok(Outcome::Done)
}
