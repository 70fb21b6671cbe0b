//! `keys create` and `keys rotate`: a new key, its hash record stored first, then its
//! one delivery; a failed delivery revokes the record again.

use keystore_ssm::aws_sdk_ssm::Client;
use service_auth::record::{MAX_KEYS_PER_SERVICE, SCHEMA_VERSION};
use service_auth::{ApiGrant, ApiKey, KeyId, KeyRecord, ServiceDocument};

use super::{
    checked_apis, checked_permissions, checked_service, grants_text, has_permissions, list_ids,
    revoke_in, same_permissions, service_not_found, usable_keys, when,
};
use crate::aws;
use crate::cli::{CreateArgs, DeliverTo, RotateArgs, StoreKind};
use crate::error::Error;
use crate::store::{Store, Written};
use crate::{Ctx, Outcome};

const GRACE_ZERO_WARNING: &str =
    "warning: --grace 0: the old keys stop now, before callers can pick up the new key";

/// Where a new clear key goes.
enum Target {
    Ssm { client: Client, parameter: String },
    Stdout,
}

impl Target {
    fn describe(&self) -> String {
        match self {
            Self::Ssm { parameter, .. } => format!("SSM parameter {parameter}"),
            Self::Stdout => "stdout".into(),
        }
    }
}

async fn target(
    ctx: &mut Ctx<'_, '_>,
    deliver: Option<DeliverTo>,
    parameter: Option<&str>,
    service: &str,
) -> Result<Target, Error> {
    let kind = deliver.unwrap_or(match ctx.global.store {
        StoreKind::Ssm => DeliverTo::Ssm,
        StoreKind::File => DeliverTo::Stdout,
    });
    match kind {
        DeliverTo::Stdout if parameter.is_some() => Err(Error::Usage(
            "--delivery-parameter names an SSM parameter: use it with --deliver ssm".into(),
        )),
        DeliverTo::Stdout => Ok(Target::Stdout),
        DeliverTo::Ssm => {
            let parameter =
                parameter.map_or_else(|| ctx.delivery_parameter(service), str::to_owned);
            if !parameter.starts_with('/') || parameter.ends_with('/') {
                return Err(Error::Usage(format!(
                    "--delivery-parameter {parameter:?} must be a full parameter name, e.g. /prod/{service}/identity-service-api-key"
                )));
            }
            Ok(Target::Ssm {
                client: ctx.client().await?,
                parameter,
            })
        }
    }
}

/// Hands the clear key over: the only two places it is ever exposed.
async fn hand_over(
    ctx: &mut Ctx<'_, '_>,
    target: &Target,
    key: &ApiKey,
    overwrite: bool,
) -> Result<(), Error> {
    match target {
        Target::Ssm { client, parameter } => {
            let kms = ctx.kms_key_id()?;
            aws::put_secret(client, parameter, key.expose_secret(), overwrite, kms).await?;
            Ok(())
        }
        Target::Stdout => writeln!(ctx.io.stdout, "{}", key.expose_secret())
            .and_then(|()| ctx.io.stdout.flush())
            .map_err(|e| Error::Delivery(format!("writing the key to stdout failed: {e}"))),
    }
}

/// Delivers the key; if that fails, revokes its just-stored record so no key that
/// nobody holds stays active, and says exactly what happened.
async fn deliver_or_roll_back(
    ctx: &mut Ctx<'_, '_>,
    store: &Store,
    service: &str,
    key: &ApiKey,
    target: &Target,
    overwrite: bool,
) -> Result<(), Error> {
    let Err(error) = hand_over(ctx, target, key, overwrite).await else {
        return Ok(());
    };
    let id = key.key_id();
    let now = ctx.now;
    let failed = format!(
        "delivering the new key {id} of {service} to {} failed: {error}",
        target.describe()
    );
    let rolled_back = match store
        .mark_revoked(
            service,
            std::slice::from_ref(&id),
            now,
            "svcauth: delivery failed",
        )
        .await
    {
        Ok(_) => {
            store
                .update_document(service, |doc| {
                    revoke_in(doc, &id, now);
                    Ok(())
                })
                .await
        }
        Err(e) => Err(e),
    };
    Err(Error::Delivery(match rolled_back {
        Ok(_) => format!("{failed}\nits record was revoked again, so no undelivered key stays active; nothing else changed. Fix the cause and run the command again."),
        Err(e) => format!(
            "{failed}\nrevoking its record failed too ({e}): run `svcauth keys revoke --service {service} --key-id {id}` with the same store options"
        ),
    }))
}

/// Storing a new key's record failed after SSM may have taken it (an overwrite that
/// could not be merged, conflicts, a lost answer): the key is never handed over, so
/// its revocation marker makes a record that did land inert.
async fn abandon(
    store: &Store,
    service: &str,
    id: &KeyId,
    now: service_auth::UnixTime,
    error: Error,
) -> Error {
    if !matches!(error, Error::Ssm(_) | Error::Aws(_)) {
        return error;
    }
    match store
        .mark_revoked(service, std::slice::from_ref(id), now, "svcauth: key never handed over")
        .await
    {
        Ok(_) => error.with_note(format!(
            "the new key {id} was not handed over to anyone, and it is revoked for good (revocation marker), so a record of it that may have landed is inert"
        )),
        Err(_) => error.with_note(format!(
            "the new key {id} was not handed over to anyone; if `svcauth keys list --service {service}` shows it, revoke it: `svcauth keys revoke --service {service} --key-id {id}`"
        )),
    }
}

/// Sets the permissions a create asked for (routes on APIs), unless the service has
/// different ones and replacing them was not asked for.
fn apply_permissions(
    doc: &mut ServiceDocument,
    set: Option<&ApiGrant>,
    replace: bool,
) -> Result<(), Error> {
    let Some(set) = set else { return Ok(()) };
    let same = doc.grants.len() == 1
        && same_permissions(&doc.grants[0].apis, &set.apis)
        && same_permissions(&doc.grants[0].routes, &set.routes);
    if !has_permissions(doc) || replace || same {
        doc.schema = SCHEMA_VERSION;
        doc.permissions.clear();
        doc.grants = vec![set.clone()];
        return Ok(());
    }
    Err(Error::Usage(format!(
        "service {} already has the permissions {} and every key of a service shares them: leave out --permissions to add a key with those, use `svcauth keys grant --service {} --api NAME --permissions ...` to add routes on an API, or add --replace-permissions to change them for all its keys",
        doc.service,
        grants_text(doc),
        doc.service
    )))
}

fn check_capacity(doc: &ServiceDocument) -> Result<(), Error> {
    if doc.keys.len() < MAX_KEYS_PER_SERVICE {
        return Ok(());
    }
    Err(Error::Store(format!(
        "service {} already has {} key records, the most one document holds: remove the records of its revoked and expired keys with `svcauth keys prune --service {}` (add `--older-than 1d` or less to take recent ones too), then try again",
        doc.service,
        doc.keys.len(),
        doc.service
    )))
}

fn generate(ctx: &Ctx<'_, '_>) -> Result<ApiKey, Error> {
    ApiKey::generate(Some(&ctx.global.env))
        .map_err(|e| Error::Store(format!("could not generate a key: {e}")))
}

pub async fn create(ctx: &mut Ctx<'_, '_>, args: &CreateArgs) -> Result<Outcome, Error> {
    let service = checked_service(&args.service)?;
    let permissions = checked_permissions(&args.permissions)?;
    let apis = checked_apis(&args.api)?;
    if !permissions.is_empty() && apis.is_empty() {
        return Err(Error::Usage(
            "--permissions needs --api: name the APIs they apply to, e.g. --api identity (a permission applies on no other API)".into(),
        ));
    }
    let set_permissions = (!permissions.is_empty()).then_some(ApiGrant {
        apis,
        routes: permissions,
    });
    let store = ctx.store().await?;
    store.check_writable()?;
    let existing = store.read_document(service).await?;
    let mut preview = existing
        .clone()
        .unwrap_or_else(|| ServiceDocument::new(service, Vec::new()));
    apply_permissions(
        &mut preview,
        set_permissions.as_ref(),
        args.replace_permissions,
    )?;
    if let Some(k) = &args.usage_plan_key {
        preview.usage_plan_key = Some(k.clone());
    }
    check_capacity(&preview)?;
    preview
        .validate()
        .map_err(|e| Error::Usage(format!("--usage-plan-key: {e}")))?;

    let target = target(
        ctx,
        args.deliver,
        args.delivery_parameter.as_deref(),
        service,
    )
    .await?;
    if let Target::Ssm { client, parameter } = &target {
        if !args.overwrite_delivery && aws::parameter_exists(client, parameter).await? {
            return Err(Error::Usage(format!(
                "{parameter} already holds a key: use `svcauth keys rotate --service {service}` to replace it with a grace period, pass --overwrite-delivery, or choose --delivery-parameter / --deliver stdout"
            )));
        }
    }
    let expires = args.expires_in.map(|d| ctx.now.plus(d));
    let plan = format!(
        "a new key for {service} in the {} (permissions: {}; expires: {})",
        store.describe(),
        grants_text(&preview),
        when(expires)
    );
    if args.dry_run {
        ctx.status(format!(
            "dry run: would store {plan} and deliver it to {}; nothing was written",
            target.describe()
        ));
        return Ok(Outcome::Done);
    }

    let key = generate(ctx)?;
    let record = KeyRecord::for_key(&key, ctx.now, expires);
    let id = record.key_id.clone();
    let written = store
        .update_document(service, |doc| {
            apply_permissions(doc, set_permissions.as_ref(), args.replace_permissions)?;
            if let Some(k) = &args.usage_plan_key {
                doc.usage_plan_key = Some(k.clone());
            }
            if doc.key(&id).is_none() {
                check_capacity(doc)?;
                doc.keys.push(record.clone());
            }
            Ok(())
        })
        .await;
    let written = match written {
        Ok(w) => w,
        Err(e) => return Err(abandon(&store, service, &id, ctx.now, e).await),
    };
    ctx.status(format!("stored key {id}: {plan}"));
    report_merges(ctx, &written);
    deliver_or_roll_back(ctx, &store, service, &key, &target, args.overwrite_delivery).await?;
    drop(key);
    ctx.status(format!("delivered key {id} to {}", target.describe()));
    if written.document.is_unscoped() {
        ctx.status(format!(
            "warning: {service}'s document is schema 1: its permissions name no API, so its keys are allowed nothing until you run `svcauth keys migrate --service {service} --api NAME`"
        ));
    } else if !has_permissions(&written.document) {
        ctx.status(format!(
            "warning: {service} has no permissions: its keys authenticate but may call no route; grant some with `svcauth keys grant --service {service} --api NAME --permissions 'METHOD /path'`"
        ));
    }
    Ok(Outcome::Done)
}

pub async fn rotate(ctx: &mut Ctx<'_, '_>, args: &RotateArgs) -> Result<Outcome, Error> {
    let service = checked_service(&args.service)?;
    let store = ctx.store().await?;
    store.require_existing()?;
    store.check_writable()?;
    let Some(doc) = store.read_document(service).await? else {
        return Err(service_not_found(service, &store));
    };
    check_capacity(&doc)?;
    let now = ctx.now;
    let until = now.plus(args.grace);
    let grace = crate::cli::human_duration(args.grace);
    // Fixed now, so a key another operator adds meanwhile is never phased out by us.
    let old: Vec<KeyId> = doc
        .keys
        .iter()
        .filter(|k| k.usable_at(now) && k.expires.is_none_or(|e| e > until))
        .map(|k| k.key_id.clone())
        .collect();
    let target = target(
        ctx,
        args.deliver,
        args.delivery_parameter.as_deref(),
        service,
    )
    .await?;
    if args.dry_run {
        let replacing = match &target {
            Target::Ssm { .. } => " (overwriting the key it holds)",
            Target::Stdout => "",
        };
        let usable = usable_keys(&doc, now);
        let phase_out = if usable.is_empty() {
            format!("; {service} has no usable key to phase out")
        } else if old.is_empty() {
            format!(
                "; its usable keys [{}] already stop by {} (grace {grace}), so none is phased out",
                list_ids(&usable),
                until.to_rfc3339()
            )
        } else {
            format!(
                ", then let the old keys [{}] expire at {} (grace {grace})",
                list_ids(&old),
                until.to_rfc3339()
            )
        };
        ctx.status(format!(
            "dry run: would store a new key for {service} in the {} (permissions: {}), deliver it to {}{replacing}{phase_out}; nothing was written",
            store.describe(),
            grants_text(&doc),
            target.describe(),
        ));
        if args.grace.is_zero() {
            ctx.status(GRACE_ZERO_WARNING);
        }
        return Ok(Outcome::Done);
    }
    if args.grace.is_zero() {
        ctx.status(GRACE_ZERO_WARNING);
    }

    // 1. The new record. 2. Its delivery. 3. Only then the old keys' expiry: if the
    // delivery fails, the old keys are untouched.
    let key = generate(ctx)?;
    let record = KeyRecord::for_key(&key, now, None);
    let id = record.key_id.clone();
    let written = store
        .update_document(service, |doc| {
            if doc.key(&id).is_none() {
                check_capacity(doc)?;
                doc.keys.push(record.clone());
            }
            Ok(())
        })
        .await;
    let written = match written {
        Ok(w) => w,
        Err(e) => return Err(abandon(&store, service, &id, now, e).await),
    };
    ctx.status(format!(
        "stored new key {id} of {service} in the {}",
        store.describe()
    ));
    report_merges(ctx, &written);
    deliver_or_roll_back(ctx, &store, service, &key, &target, true).await?;
    drop(key);
    ctx.status(format!("delivered key {id} to {}", target.describe()));

    // --grace 0 is a revocation: the old keys get their markers first, so no
    // concurrent or crashed writer can bring them back (see `keys revoke`).
    if args.grace.is_zero() && !old.is_empty() {
        store
            .mark_revoked(service, &old, now, "svcauth keys rotate --grace 0")
            .await
            .map_err(|e| {
                e.with_note(format!(
                    "the new key {id} is stored and delivered, but the old keys are not revoked yet: run `svcauth keys revoke --service {service} --key-id ID` for each of: {}",
                    list_ids(&old)
                ))
            })?;
    }
    let not_expired = |e: Error| {
        e.with_note(format!(
            "the new key {id} is stored and delivered, but the old keys were not given their expiry: run `svcauth keys revoke --service {service} --key-id ID --after {}s` for each of: {}",
            args.grace.as_secs().max(1),
            list_ids(&old)
        ))
    };
    // --grace > 0: the old keys' markers (holding their end) first, for the same
    // reason (issue 19 A2): from then on they end at `until` whatever any writer does.
    if !args.grace.is_zero() && !old.is_empty() {
        let later = store
            .mark_expiring(service, &old, until, "svcauth keys rotate --grace")
            .await
            .map_err(not_expired)?;
        super::revoke::warn_later_markers(ctx, service, &later, until);
    }
    let expired = store
        .update_document(service, |doc| {
            for old_id in &old {
                if let Some(k) = doc.key_mut(old_id) {
                    if k.expires.is_none_or(|e| e > until) {
                        k.expires = Some(until);
                    }
                }
            }
            Ok(())
        })
        .await
        .map_err(not_expired)?;
    report_merges(ctx, &expired);
    if old.is_empty() {
        ctx.status(format!("{service} had no other usable key to phase out"));
    } else {
        ctx.status(format!(
            "old keys [{}] keep working until {} (grace {grace}), then the authorizer refuses them; nothing has to run then",
            list_ids(&old),
            until.to_rfc3339()
        ));
    }
    ctx.status(format!(
        "callers that cache their key pick up the new one on their next cold start or key-cache refresh: make sure that happens before {}",
        until.to_rfc3339()
    ));
    Ok(Outcome::Done)
}

pub(crate) fn report_merges(ctx: &mut Ctx<'_, '_>, written: &Written) {
    if let Some(warning) = &written.index_warning {
        ctx.status(format!("warning: {warning}"));
    }
    if written.merged_conflicts > 0 || written.retried_rounds > 0 {
        ctx.status(format!(
            "others wrote to the same service meanwhile: merged {} concurrent change(s), retried {} time(s); nothing was lost",
            written.merged_conflicts, written.retried_rounds
        ));
    }
}
