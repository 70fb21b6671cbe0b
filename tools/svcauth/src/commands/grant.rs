//! `keys grant` (routes on an API, or `--remove` an API) and `keys migrate` (schema-1
//! documents, whose permissions name no API, to schema 2 with the APIs named).

use service_auth::ServiceDocument;

use super::{
    checked_apis, checked_permissions, checked_service, documents_of, grants_text,
    service_not_found,
};
use crate::cli::{GrantArgs, MigrateArgs};
use crate::error::Error;
use crate::store::Store;
use crate::{Ctx, Outcome};

pub async fn grant(ctx: &mut Ctx<'_, '_>, args: &GrantArgs) -> Result<Outcome, Error> {
    let service = checked_service(&args.service)?;
    let api = checked_apis(std::slice::from_ref(&args.api))?
        .pop()
        .ok_or_else(|| Error::Usage("--api is empty: name the API, e.g. --api billing".into()))?;
    let routes = checked_permissions(&args.permissions)?;
    if !args.remove && routes.is_empty() {
        return Err(Error::Usage(format!(
            "--permissions names no route: give routes on {api} as `METHOD /path`, e.g. --permissions 'GET /internal/{api}/*' (or --remove to take {api} away)"
        )));
    }
    let store = ctx.store().await?;
    let Some(doc) = store.read_document(service).await? else {
        return Err(service_not_found(service, &store));
    };
    if doc.is_unscoped() {
        return Err(Error::Usage(format!(
            "{service}'s document is schema 1 (its permissions name no API): run `svcauth keys migrate --service {service} --api NAME` first, naming the APIs its permissions are for"
        )));
    }
    if !args.remove {
        if let Some(warning) = unregistered(ctx, &store, &api).await {
            ctx.status(warning);
        }
    }
    let change = |d: &mut ServiceDocument| {
        if args.remove {
            d.ungrant(&api);
        } else {
            d.grant(&api, &routes);
        }
    };
    let mut preview = doc.clone();
    change(&mut preview);
    if preview == doc {
        let what = if args.remove {
            format!("{service} has no grant on {api}")
        } else {
            format!("{service} already has that on {api}")
        };
        ctx.status(format!("nothing to do: {what} ({})", grants_text(&doc)));
        return Ok(Outcome::NothingToDo);
    }
    preview
        .validate()
        .map_err(|e| Error::Usage(format!("{service}: {e}")))?;
    if args.dry_run {
        ctx.status(format!(
            "dry run: {service} would have: {}; nothing was written to the {}",
            grants_text(&preview),
            store.describe()
        ));
        return Ok(Outcome::Done);
    }
    let written = store
        .update_document(service, |d| {
            if d.is_unscoped() {
                return Err(Error::Usage(format!(
                    "{service}'s document became schema 1 meanwhile: run `svcauth keys migrate --service {service} --api NAME`"
                )));
            }
            change(d);
            Ok(())
        })
        .await?;
    super::create::report_merges(ctx, &written);
    ctx.status(format!(
        "{service} now has: {}. The authorizer applies it within its store TTL (SVCAUTH_CACHE_TTL_SECS, default 300 s), for API keys and for tokens already issued alike (a token's routes are cut to the service's current grants), and API Gateway's cached policies within AuthorizerResultTtl more",
        grants_text(&written.document)
    ));
    Ok(Outcome::Done)
}

/// A warning when `api` is not a registered API name (SSM only: the file store has no
/// registry; the authorizer reading it takes names from SVCAUTH_API_NAMES). A grant on
/// a name no API has applies nowhere until an operator registers one under it.
async fn unregistered(ctx: &mut Ctx<'_, '_>, store: &Store, api: &str) -> Option<String> {
    let Store::Ssm { .. } = store else {
        return None;
    };
    let registry = match super::apis::registry(ctx).await {
        Ok(r) => r,
        Err(e) => {
            return Some(format!(
                "warning: could not check that {api} is a registered API: {e}"
            ))
        }
    };
    let registered = match registry.claim_of(api).await {
        Ok(Some(id)) => match registry.read(&id).await {
            Ok(entry) => entry.name() == Some(api),
            Err(e) => {
                return Some(format!(
                    "warning: could not check that {api} is a registered API: {e}"
                ))
            }
        },
        Ok(None) => false,
        Err(e) => {
            return Some(format!(
                "warning: could not check that {api} is a registered API: {e}"
            ))
        }
    };
    (!registered).then(|| {
        format!(
            "warning: no API is registered as {api} under {}: this grant applies nowhere until an operator runs `svcauth apis register --api-id ID --name {api}` (check the spelling: `svcauth apis list` shows the registered names)",
            registry.path()
        )
    })
}

pub async fn migrate(ctx: &mut Ctx<'_, '_>, args: &MigrateArgs) -> Result<Outcome, Error> {
    let apis = checked_apis(&args.api)?;
    if apis.is_empty() {
        return Err(Error::Usage(
            "--api is empty: name the APIs the old permissions are for, e.g. --api identity --api tutor".into(),
        ));
    }
    let store = ctx.store().await?;
    let docs = documents_of(&store, args.service.as_deref()).await?;
    let old: Vec<&ServiceDocument> = docs.iter().filter(|d| d.is_unscoped()).collect();
    if old.is_empty() {
        ctx.status(format!(
            "nothing to do: every document in the {} is already on schema 2",
            store.describe()
        ));
        return Ok(Outcome::NothingToDo);
    }
    for doc in old {
        let service = doc.service.as_str();
        let mut preview = doc.clone();
        preview.migrate(&apis);
        if args.dry_run {
            ctx.status(format!(
                "dry run: {service} would have: {}",
                grants_text(&preview)
            ));
            continue;
        }
        let written = store
            .update_document(service, |d| {
                d.migrate(&apis);
                Ok(())
            })
            .await
            .map_err(|e| {
                e.with_note(format!(
                    "services before {service} in name order were migrated; run the command again to finish (it skips schema-2 documents)"
                ))
            })?;
        super::create::report_merges(ctx, &written);
        ctx.status(format!(
            "{service}: schema 2, {}",
            grants_text(&written.document)
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
