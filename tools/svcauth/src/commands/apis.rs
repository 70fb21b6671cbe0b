//! `apis register | list | show | remove`: the API registry (keystore-ssm's
//! `ApiRegistry`), which names each API for the grants and the authorizer.
//!
//! Registering an API is an operator's act: the entry is a SecureString under the
//! store's KMS key (`--kms-key-id`), which no deploy role needs to write; a name is
//! bound to one API id by a create-only claim, so a second id for a bound name is
//! refused. An entry written the old way (a `String`, by a stack) is shown as not
//! trusted, with the command that replaces it.

use keystore_ssm::{valid_api_id, ApiEntry, ApiRegistry, RegisterError, Registered};
use serde::Serialize;

use crate::cli::{ApiListArgs, ApiRegisterArgs, ApiRemoveArgs, ApiShowArgs};
use crate::error::Error;
use crate::{Ctx, Outcome};

/// The registry the global options name.
pub(crate) async fn registry(ctx: &mut Ctx<'_, '_>) -> Result<ApiRegistry, Error> {
    let api_path = ctx.global.api_path.clone();
    let store = ctx.ssm().await?;
    Ok(store.api_registry(api_path.as_deref()))
}

fn register_error(e: RegisterError) -> Error {
    match e {
        RegisterError::Ssm(e) => Error::Ssm(e),
        // Refused: nothing was written (at most the claim of a name for this same id).
        other => Error::Usage(other.to_string()),
    }
}

fn checked_id(id: &str) -> Result<&str, Error> {
    let id = id.trim();
    if valid_api_id(id) {
        Ok(id)
    } else {
        Err(Error::Usage(format!(
            "--api-id {id:?} is not an API id: 1-32 letters and digits, as in the API's execute-api URL (https://ID.execute-api.REGION.amazonaws.com)"
        )))
    }
}

fn checked_name(name: &str) -> Result<&str, Error> {
    let name = name.trim();
    if service_auth::record::valid_api_name(name) {
        Ok(name)
    } else {
        Err(Error::Usage(format!(
            "--name {name:?} is not an API name: 1-64 of a-z, 0-9 and -, e.g. billing"
        )))
    }
}

/// How an entry is shown: its name and whether it is trusted.
fn status(api_id: &str, entry: &ApiEntry) -> (String, String) {
    match entry {
        ApiEntry::Registered(name) => (name.clone(), "registered".into()),
        ApiEntry::Unregistered => ("-".into(), "not registered".into()),
        ApiEntry::Untrusted { name, .. } => (
            name.clone().unwrap_or_else(|| "-".into()),
            format!(
                "NOT TRUSTED: {}",
                entry.untrusted_reason(api_id).unwrap_or_default()
            ),
        ),
    }
}

pub async fn register(ctx: &mut Ctx<'_, '_>, args: &ApiRegisterArgs) -> Result<Outcome, Error> {
    let api_id = checked_id(&args.api_id)?;
    let name = checked_name(&args.name)?;
    let registry = registry(ctx).await?;
    if args.dry_run {
        let entry = registry.read(api_id).await?;
        let claim = registry.claim_of(name).await?;
        let plan = match (&entry, claim.as_deref()) {
            (_, Some(other)) if other != api_id => {
                return Err(register_error(RegisterError::NameTaken {
                    name: name.to_owned(),
                    other: other.to_owned(),
                    claim: registry.claim_name(name),
                }))
            }
            (ApiEntry::Registered(n), _) if n == name => {
                ctx.status(format!(
                    "nothing to do: API {api_id} is registered as {name}"
                ));
                return Ok(Outcome::NothingToDo);
            }
            (ApiEntry::Registered(current), _) => {
                return Err(register_error(RegisterError::Renamed {
                    api_id: api_id.to_owned(),
                    current: current.clone(),
                }))
            }
            (ApiEntry::Untrusted { found, .. }, _) => {
                format!("replace the untrusted {found} entry with a SecureString")
            }
            (ApiEntry::Unregistered, _) => "write a SecureString entry".into(),
        };
        ctx.status(format!(
            "dry run: would claim the name {name} ({}) and {plan} at {}; nothing was written",
            registry.claim_name(name),
            registry.entry_name(api_id)
        ));
        return Ok(Outcome::Done);
    }
    match registry
        .register(api_id, name)
        .await
        .map_err(register_error)?
    {
        Registered::Already => {
            ctx.status(format!(
                "nothing to do: API {api_id} is registered as {name} ({})",
                registry.entry_name(api_id)
            ));
            Ok(Outcome::NothingToDo)
        }
        Registered::Written { replaced } => {
            ctx.status(format!(
                "registered API {api_id} as {name}: {} (SecureString{}), name claimed at {}",
                registry.entry_name(api_id),
                ctx.kms_key_id()?
                    .map(|k| format!(", KMS key {k}"))
                    .unwrap_or_default(),
                registry.claim_name(name)
            ));
            if let Some(found) = replaced {
                ctx.status(format!(
                    "it replaced an untrusted {found} entry (the authorizer allowed nothing on this API while it was there)"
                ));
            }
            ctx.status(format!(
                "the authorizer reads it within its store TTL (SVCAUTH_CACHE_TTL_SECS, default 300 s); callers are allowed there what their grants on {name} say (`svcauth keys grant --service S --api {name} --permissions ...`)"
            ));
            Ok(Outcome::Done)
        }
    }
}

#[derive(Serialize)]
struct Row {
    #[serde(rename = "apiId")]
    api_id: String,
    name: Option<String>,
    trusted: bool,
    status: String,
}

fn row(api_id: &str, entry: &ApiEntry) -> Row {
    let (name, status) = status(api_id, entry);
    Row {
        api_id: api_id.to_owned(),
        name: (name != "-").then_some(name),
        trusted: matches!(entry, ApiEntry::Registered(_)),
        status,
    }
}

fn print(ctx: &mut Ctx<'_, '_>, rows: &[Row], json: bool) -> Result<(), Error> {
    if json {
        let text = serde_json::to_string_pretty(rows)
            .map_err(|e| Error::Store(format!("could not print the list: {e}")))?;
        let _ = writeln!(ctx.io.stdout, "{text}");
        return Ok(());
    }
    let _ = writeln!(ctx.io.stdout, "{:<32}  {:<24}  STATUS", "API ID", "NAME");
    for r in rows {
        let _ = writeln!(
            ctx.io.stdout,
            "{:<32}  {:<24}  {}",
            r.api_id,
            r.name.as_deref().unwrap_or("-"),
            r.status
        );
    }
    Ok(())
}

pub async fn list(ctx: &mut Ctx<'_, '_>, args: &ApiListArgs) -> Result<Outcome, Error> {
    let registry = registry(ctx).await?;
    let entries = registry.list().await?;
    let rows: Vec<Row> = entries.iter().map(|(id, e)| row(id, e)).collect();
    print(ctx, &rows, args.json)?;
    let untrusted = rows.iter().filter(|r| !r.trusted).count();
    ctx.status(format!(
        "{} API(s) under {}{}",
        rows.len(),
        registry.path(),
        if untrusted > 0 {
            format!("; {untrusted} NOT TRUSTED (the authorizer allows nothing on them): register each with `svcauth apis register`")
        } else {
            String::new()
        }
    ));
    Ok(Outcome::Done)
}

pub async fn show(ctx: &mut Ctx<'_, '_>, args: &ApiShowArgs) -> Result<Outcome, Error> {
    let registry = registry(ctx).await?;
    let api_id = match (&args.api_id, &args.name) {
        (Some(id), _) => checked_id(id)?.to_owned(),
        (None, Some(name)) => {
            let name = checked_name(name)?;
            registry.claim_of(name).await?.ok_or_else(|| {
                Error::NotFound(format!(
                    "no API is registered as {name} under {}: `svcauth apis list` shows the registered ones; `svcauth apis register --api-id ID --name {name}` registers one",
                    registry.path()
                ))
            })?
        }
        (None, None) => return Err(Error::Usage("give --api-id or --name".into())),
    };
    let entry = registry.read(&api_id).await?;
    if entry == ApiEntry::Unregistered {
        return Err(Error::NotFound(format!(
            "API {api_id} is not registered under {}: `svcauth apis register --api-id {api_id} --name NAME` registers it",
            registry.path()
        )));
    }
    print(ctx, &[row(&api_id, &entry)], false)?;
    Ok(Outcome::Done)
}

pub async fn remove(ctx: &mut Ctx<'_, '_>, args: &ApiRemoveArgs) -> Result<Outcome, Error> {
    let api_id = checked_id(&args.api_id)?;
    let registry = registry(ctx).await?;
    if args.dry_run {
        let entry = registry.read(api_id).await?;
        ctx.status(format!(
            "dry run: would delete {} ({}) and the name claims naming {api_id}; nothing was written",
            registry.entry_name(api_id),
            status(api_id, &entry).1
        ));
        return Ok(Outcome::Done);
    }
    let removed = registry.remove(api_id).await.map_err(register_error)?;
    if removed.entry.is_none() && removed.claims.is_empty() {
        ctx.status(format!("nothing to do: API {api_id} is not registered"));
        return Ok(Outcome::NothingToDo);
    }
    ctx.status(format!(
        "unregistered API {api_id}{}: the authorizer allows nothing on it from its next read of the entry (within SVCAUTH_CACHE_TTL_SECS); released name(s): {}",
        match &removed.entry {
            Some(ApiEntry::Registered(n)) => format!(" (was {n})"),
            _ => String::new(),
        },
        if removed.claims.is_empty() {
            "none".to_owned()
        } else {
            removed.claims.join(", ")
        }
    ));
    Ok(Outcome::Done)
}
