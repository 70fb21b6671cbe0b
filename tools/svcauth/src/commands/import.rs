//! `keys import-legacy`: the original design's `{"<key>": "<service>"}` map becomes
//! hashed records. The clear keys are hashed as they are parsed and wiped; only hashes
//! and key ids go any further.

use std::collections::BTreeMap;

use service_auth::record::SCHEMA_VERSION;
use service_auth::store::{parse_legacy_map, LegacyEntry};
use service_auth::{ApiGrant, KeyRecord, KeyStatus};
use zeroize::Zeroizing;

use super::{checked_apis, checked_permissions, checked_service, has_permissions, list_ids};
use crate::aws;
use crate::cli::ImportLegacyArgs;
use crate::error::Error;
use crate::{Ctx, Outcome};

pub async fn import_legacy(
    ctx: &mut Ctx<'_, '_>,
    args: &ImportLegacyArgs,
) -> Result<Outcome, Error> {
    let only = args.service.as_deref().map(checked_service).transpose()?;
    let permissions = checked_permissions(&args.permissions)?;
    let apis = checked_apis(&args.api)?;
    if !permissions.is_empty() && apis.is_empty() {
        return Err(Error::Usage(
            "--permissions needs --api: name the APIs they apply to, e.g. --api identity".into(),
        ));
    }
    let (source, entries) = read_map(ctx, args).await?;
    let mut by_service: BTreeMap<String, Vec<LegacyEntry>> = BTreeMap::new();
    for e in entries {
        if only.is_none_or(|s| s == e.service) {
            by_service.entry(e.service.clone()).or_default().push(e);
        }
    }
    if by_service.is_empty() {
        return Err(match only {
            Some(s) => Error::NotFound(format!("{source} has no key of service {s}")),
            None => Error::NotFound(format!("{source} holds no keys")),
        });
    }

    let store = ctx.store().await?;
    store.check_writable()?;
    let docs = store.load_documents().await?;
    // A key the store already has under another service: the store would refuse to
    // load. Stop before writing anything.
    for (service, entries) in &by_service {
        for e in entries {
            if let Some(other) = docs
                .iter()
                .find(|d| &d.service != service && d.keys.iter().any(|k| k.sha256 == e.hash))
            {
                return Err(Error::Store(format!(
                    "{source} maps key {} to {service}, but the store already has it as a key of {}; revoke or fix one of them first",
                    e.key_id, other.service
                )));
            }
        }
    }

    // A key that was revoked (or pruned after it ended) has a revocation marker: it is
    // never imported again, even when its record is gone from the document.
    let candidates: Vec<_> = by_service
        .values()
        .flatten()
        .map(|e| e.key_id.clone())
        .collect();
    let revoked = store.revoked_among(&candidates).await?;

    // What each service needs.
    struct Plan {
        service: String,
        new: Vec<LegacyEntry>,
        present: usize,
        revoked: Vec<service_auth::KeyId>,
        set_permissions: bool,
    }
    let mut plans = Vec::new();
    for (service, entries) in by_service {
        let doc = docs.iter().find(|d| d.service == service);
        let (gone, entries): (Vec<_>, Vec<_>) = entries
            .into_iter()
            .partition(|e| revoked.contains(&e.key_id));
        let (new, present): (Vec<_>, Vec<_>) = entries
            .into_iter()
            .partition(|e| doc.is_none_or(|d| d.key(&e.key_id).is_none()));
        let has_permissions = doc.is_some_and(has_permissions);
        plans.push(Plan {
            service,
            new,
            present: present.len(),
            revoked: gone.into_iter().map(|e| e.key_id).collect(),
            set_permissions: !has_permissions && !permissions.is_empty(),
        });
    }
    for plan in plans.iter().filter(|p| !p.revoked.is_empty()) {
        ctx.status(format!(
            "{}: not importing {} revoked key(s) [{}]: they have revocation markers and are refused for good",
            plan.service,
            plan.revoked.len(),
            list_ids(&plan.revoked)
        ));
    }
    if plans.iter().all(|p| p.new.is_empty() && !p.set_permissions) {
        let present: usize = plans.iter().map(|p| p.present).sum();
        let revoked: usize = plans.iter().map(|p| p.revoked.len()).sum();
        let what = match (present, revoked) {
            (_, 0) => format!(
                "every key in {source} is already in the {}",
                store.describe()
            ),
            (0, _) => format!("every key in {source} is revoked for good (above)"),
            _ => format!(
                "of the keys in {source}, {present} are already in the {} and {revoked} are revoked for good (above)",
                store.describe()
            ),
        };
        ctx.status(format!("nothing to do: {what}"));
        return Ok(Outcome::NothingToDo);
    }

    let verb = if args.dry_run {
        "would import"
    } else {
        "imported"
    };
    let now = ctx.now;
    for plan in &plans {
        let ids: Vec<_> = plan.new.iter().map(|e| e.key_id.clone()).collect();
        if !args.dry_run {
            let written = store
                .update_document(&plan.service, |doc| {
                    for e in &plan.new {
                        if doc.key(&e.key_id).is_none() {
                            doc.keys.push(KeyRecord {
                                key_id: e.key_id.clone(),
                                sha256: e.hash,
                                created: now,
                                expires: None,
                                status: KeyStatus::Active,
                                revoked_at: None,
                            });
                        }
                    }
                    // Existing permissions are never changed.
                    if !has_permissions(doc) && !permissions.is_empty() {
                        doc.schema = SCHEMA_VERSION;
                        doc.grants = vec![ApiGrant {
                            apis: apis.clone(),
                            routes: permissions.clone(),
                        }];
                    }
                    Ok(())
                })
                .await
                .map_err(|e| {
                    e.with_note(format!(
                        "services before {} in name order were imported; run the command again to finish (it skips what is already there)",
                        plan.service
                    ))
                })?;
            super::create::report_merges(ctx, &written);
        }
        let perms = if plan.set_permissions {
            format!(
                "; permissions set to [{}] on {}",
                permissions.join(", "),
                apis.join(", ")
            )
        } else {
            String::new()
        };
        ctx.status(format!(
            "{}: {verb} {} key(s) [{}], {} already present{perms}",
            plan.service,
            ids.len(),
            list_ids(&ids),
            plan.present
        ));
        let had_permissions = docs
            .iter()
            .any(|d| d.service == plan.service && has_permissions(d));
        if !had_permissions && !plan.set_permissions {
            ctx.status(format!(
                "warning: {} has no permissions: its keys authenticate but may call no route; run again with --service {} --permissions 'METHOD /path' --api NAME",
                plan.service, plan.service
            ));
        }
    }
    if args.dry_run {
        ctx.status(format!(
            "dry run: nothing was written to the {}",
            store.describe()
        ));
    } else {
        let left = if args.from_file.is_some() {
            format!(
                "{source} was left in place (the authorizer never reads a file; it reads the legacy map only from the SSM parameter SVCAUTH_LEGACY_PARAMETER names): it holds clear keys, so delete it"
            )
        } else {
            format!(
                "{source} was left in place: the authorizer reads it only while SVCAUTH_LEGACY_PARAMETER names it, and the imported records work without it; delete it once every caller uses a new key"
            )
        };
        ctx.status(format!(
            "no clear key was written anywhere. {left}. Rotate the imported keys (`svcauth keys rotate --service NAME`): a rotation moves each caller to a product key"
        ));
    }
    Ok(Outcome::Done)
}

/// Reads and hashes the legacy map; the clear text is wiped on return.
async fn read_map(
    ctx: &mut Ctx<'_, '_>,
    args: &ImportLegacyArgs,
) -> Result<(String, Vec<LegacyEntry>), Error> {
    let (source, text): (String, Zeroizing<String>) = match (&args.from_parameter, &args.from_file)
    {
        (Some(name), None) => {
            let client = ctx.client().await?;
            (
                format!("parameter {name}"),
                aws::read_parameter(&client, name).await?,
            )
        }
        (None, Some(path)) => {
            let text = std::fs::read_to_string(path).map_err(|e| {
                let what = format!("reading {}: {e}", path.display());
                if e.kind() == std::io::ErrorKind::NotFound {
                    Error::NotFound(format!("{what}; check --from-file"))
                } else {
                    Error::Usage(what)
                }
            })?;
            (format!("file {}", path.display()), Zeroizing::new(text))
        }
        _ => {
            return Err(Error::Usage(
                "give exactly one of --from-parameter and --from-file".into(),
            ))
        }
    };
    let entries = parse_legacy_map(&text).map_err(|e| {
        Error::Usage(format!(
            "{source} is not the original design's map of key to service (e.g. {{\"<64 alphanumerics>\": \"tutor-service\"}}): {e}"
        ))
    })?;
    Ok((source, entries))
}
