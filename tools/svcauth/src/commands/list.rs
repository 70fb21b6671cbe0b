//! `keys list`: what keys exist, never a key or a hash.

use serde::Serialize;
use service_auth::{
    KeyId, KeyRecord, KeyStatus, RoutePattern, ServiceDocument, ServiceGrant, UnixTime,
};

use super::{documents_of, when};
use crate::cli::ListArgs;
use crate::error::Error;
use crate::{Ctx, Outcome, ROTATION_POLICY};

/// One line of the list. Holds no secret and no hash, by construction.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct KeyRow {
    pub service: String,
    pub key_id: KeyId,
    pub created: UnixTime,
    pub expires: Option<UnixTime>,
    /// `active`, `expired` or `revoked`.
    pub status: &'static str,
    pub revoked_at: Option<UnixTime>,
    /// When the key must be replaced: 90 days after it was created (the rotation
    /// policy), or its expiry when that comes first; none for a key that is not usable
    /// or that a newer usable key is already replacing (a rotation's grace period).
    pub rotation_due: Option<UnixTime>,
    /// Days until then, a part of a day counted as a day (a key made a minute ago is
    /// due in 90 days); 0 when due within the last day, negative when overdue.
    pub rotation_due_in_days: Option<i64>,
    /// The service's document schema: 1 means its permissions name no API (allowed
    /// nothing until `svcauth keys migrate`).
    pub schema: u32,
    /// What the service's keys may call: routes per API, as written and as applied.
    pub grants: Vec<GrantView>,
    /// Schema 1 only: permissions that name no API, so apply nowhere.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub unscoped_permissions: Vec<RouteView>,
    /// The service's API Gateway usage-plan key (not a credential), if it has one.
    pub usage_plan_key: Option<String>,
    /// The service's token brake: its tokens issued before this are refused.
    pub tokens_not_before: Option<UnixTime>,
}

/// Routes on some APIs, for display.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GrantView {
    pub apis: Vec<String>,
    pub routes: Vec<RouteView>,
}

/// A permission as written and as the policy applies it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RouteView {
    /// As written in the document, e.g. `GET /internal/users/{id}`.
    pub written: String,
    /// As the policy applies it, e.g. `GET /internal/users/*`: every `*` matches any
    /// characters, `/` included.
    pub effective: String,
}

impl RouteView {
    pub fn new(written: &str) -> Self {
        let effective = RoutePattern::parse(written)
            .map(|p| p.effective())
            .unwrap_or_else(|e| format!("invalid: {e}"));
        Self {
            written: written.to_owned(),
            effective,
        }
    }

    fn from_pattern(p: &RoutePattern) -> Self {
        Self {
            written: p.to_string(),
            effective: p.effective(),
        }
    }
}

/// A document's grants for display.
pub fn grant_views(doc: &ServiceDocument) -> Vec<GrantView> {
    doc.grants
        .iter()
        .map(|g| GrantView {
            apis: g.apis.clone(),
            routes: g.routes.iter().map(|r| RouteView::new(r)).collect(),
        })
        .collect()
}

/// A loaded service grant's routes on each API, for display.
pub fn service_grant_views(grant: &ServiceGrant) -> Vec<GrantView> {
    grant
        .apis
        .iter()
        .map(|a| GrantView {
            apis: vec![a.api.clone()],
            routes: a.routes.iter().map(RouteView::from_pattern).collect(),
        })
        .collect()
}

/// The note printed under every permissions table.
pub const WILDCARD_NOTE: &str = "EFFECTIVE is what the policy allows: `*` and a `{param}` segment match any characters, `/` included (GET /internal/users/{id} also allows GET /internal/users/42/anything). A permission applies only on the APIs named beside it.";

impl KeyRow {
    fn new(doc: &ServiceDocument, k: &KeyRecord, now: UnixTime) -> Self {
        let service = doc.service.as_str();
        let status = match k.status {
            KeyStatus::Revoked => "revoked",
            KeyStatus::Active if k.usable_at(now) => "active",
            KeyStatus::Active => "expired",
        };
        // A key that expires before the policy is due must be replaced by its expiry,
        // unless a newer usable key is already replacing it (a rotation's grace).
        let replaced = doc
            .keys
            .iter()
            .any(|o| o.created > k.created && o.usable_at(now));
        let policy = k.created.plus(ROTATION_POLICY);
        let due = match k.expires {
            _ if !k.usable_at(now) => None,
            Some(e) if e <= policy => (!replaced).then_some(e),
            _ => Some(policy),
        };
        Self {
            service: service.to_owned(),
            key_id: k.key_id.clone(),
            created: k.created,
            expires: k.expires,
            status,
            revoked_at: k.revoked_at,
            rotation_due: due,
            rotation_due_in_days: due.map(|d| days_rounded_up(now.seconds_until(d))),
            schema: doc.schema,
            grants: grant_views(doc),
            unscoped_permissions: doc.permissions.iter().map(|r| RouteView::new(r)).collect(),
            usage_plan_key: doc.usage_plan_key.clone(),
            tokens_not_before: doc.tokens_not_before,
        }
    }
}

/// Whole days, rounded up: 89 days and 23 hours is 90, -1.5 days is -1.
fn days_rounded_up(seconds: i64) -> i64 {
    -(-seconds).div_euclid(86_400)
}

pub fn rows(docs: &[ServiceDocument], now: UnixTime) -> Vec<KeyRow> {
    let mut rows: Vec<KeyRow> = docs
        .iter()
        .flat_map(|d| d.keys.iter().map(move |k| KeyRow::new(d, k, now)))
        .collect();
    rows.sort_by(|a, b| {
        a.service
            .cmp(&b.service)
            .then(a.created.cmp(&b.created))
            .then(a.key_id.cmp(&b.key_id))
    });
    rows
}

pub async fn list(ctx: &mut Ctx<'_, '_>, args: &ListArgs) -> Result<Outcome, Error> {
    let store = ctx.store().await?;
    store.require_existing()?;
    let mut docs = documents_of(&store, args.service.as_deref()).await?;
    // Markers (revocations, scheduled ends) win over what a document says, as in the
    // authorizer.
    let usable: Vec<service_auth::KeyId> = docs
        .iter()
        .flat_map(|d| d.keys.iter().filter(|k| k.usable_at(ctx.now)))
        .map(|k| k.key_id.clone())
        .collect();
    let markers = store.markers_among(&usable).await?;
    for d in &mut docs {
        markers.apply_to_document(d);
    }
    if docs.is_empty() {
        ctx.status(format!(
            "no service documents in the {}: if there should be, check {}",
            store.describe(),
            store.where_to_look()
        ));
    }
    let rows = rows(&docs, ctx.now);
    let out = if args.json {
        serde_json::to_string_pretty(&rows).unwrap_or_default() + "\n"
    } else {
        let mut out = table(&rows);
        if !docs.is_empty() {
            out.push('\n');
            out.push_str(&services_table(&docs, ctx.now));
            out.push('\n');
            out.push_str(&permissions_table(&docs));
        }
        out
    };
    ctx.io
        .stdout
        .write_all(out.as_bytes())
        .and_then(|()| ctx.io.stdout.flush())
        .map_err(|e| Error::Usage(format!("writing to stdout failed: {e}")))?;
    Ok(Outcome::Done)
}

/// One line per service: its usage-plan key and its token brake.
pub fn services_table(docs: &[ServiceDocument], now: UnixTime) -> String {
    let mut docs: Vec<&ServiceDocument> = docs.iter().collect();
    docs.sort_by(|a, b| a.service.cmp(&b.service));
    let cells: Vec<[String; 3]> = docs
        .iter()
        .map(|d| {
            let brake = match d.tokens_not_before {
                None => "-".to_owned(),
                Some(t) if t > now => format!(
                    "{}: no token issued until then, older ones refused",
                    t.to_rfc3339()
                ),
                Some(t) => format!("{}: tokens issued before refused", t.to_rfc3339()),
            };
            [
                d.service.clone(),
                d.usage_plan_key.clone().unwrap_or_else(|| "none".into()),
                brake,
            ]
        })
        .collect();
    render(&["SERVICE", "USAGE PLAN KEY", "TOKEN BRAKE"], &cells)
}

/// One line per permission: service, the APIs it applies on, as written, as applied.
pub fn permissions_table(docs: &[ServiceDocument]) -> String {
    let mut docs: Vec<&ServiceDocument> = docs.iter().collect();
    docs.sort_by(|a, b| a.service.cmp(&b.service));
    let mut cells: Vec<[String; 4]> = Vec::new();
    for d in docs {
        let mut any = false;
        for g in grant_views(d) {
            for r in g.routes {
                any = true;
                cells.push([d.service.clone(), g.apis.join(","), r.written, r.effective]);
            }
        }
        for r in d.permissions.iter().map(|r| RouteView::new(r)) {
            any = true;
            cells.push([
                d.service.clone(),
                "none (schema 1: run `svcauth keys migrate`)".into(),
                r.written,
                r.effective,
            ]);
        }
        if !any {
            cells.push([d.service.clone(), "-".into(), "none".into(), "-".into()]);
        }
    }
    let mut out = render(&["SERVICE", "APIS", "PERMISSION", "EFFECTIVE"], &cells);
    out.push_str(WILDCARD_NOTE);
    out.push('\n');
    out
}

fn table(rows: &[KeyRow]) -> String {
    let header = [
        "SERVICE",
        "KEY ID",
        "CREATED",
        "EXPIRES",
        "STATUS",
        "ROTATION DUE",
    ];
    let cells: Vec<[String; 6]> = rows
        .iter()
        .map(|r| {
            [
                r.service.clone(),
                r.key_id.to_string(),
                r.created.to_rfc3339(),
                when(r.expires),
                r.status.to_owned(),
                match r.rotation_due_in_days {
                    Some(d) if d < -1 => format!("overdue by {} days", -d),
                    Some(-1) => "overdue by 1 day".into(),
                    Some(0) => "due today".into(),
                    Some(1) => "in 1 day".into(),
                    Some(d) => format!("in {d} days"),
                    None => "-".into(),
                },
            ]
        })
        .collect();
    render(&header, &cells)
}

/// Left-aligned columns, two spaces apart, no trailing spaces.
fn render<const N: usize>(header: &[&str; N], cells: &[[String; N]]) -> String {
    let mut widths = header.map(str::len);
    for row in cells {
        for (w, c) in widths.iter_mut().zip(row) {
            *w = (*w).max(c.len());
        }
    }
    let mut out = String::new();
    let mut line = |cols: &[&str]| {
        let mut l = String::new();
        for (i, (c, w)) in cols.iter().zip(widths).enumerate() {
            if i + 1 == cols.len() {
                l.push_str(c);
            } else {
                l.push_str(&format!("{c:<w$}  "));
            }
        }
        out.push_str(l.trim_end());
        out.push('\n');
    };
    line(header);
    for row in cells {
        line(&row.each_ref().map(String::as_str));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use service_auth::ApiKey;

    #[test]
    fn rows_show_status_and_rotation_and_never_a_hash() {
        let now = UnixTime(100 * 86_400);
        let fresh = ApiKey::generate(None).unwrap();
        let old = ApiKey::generate(None).unwrap();
        let gone = ApiKey::generate(None).unwrap();
        let mut doc = ServiceDocument::new("svc", vec![]);
        doc.keys.push(KeyRecord::for_key(
            &fresh,
            UnixTime(now.0 - 10 * 86_400),
            None,
        ));
        doc.keys.push(KeyRecord::for_key(
            &old,
            UnixTime(0),
            Some(UnixTime(now.0 - 1)),
        ));
        let mut r = KeyRecord::for_key(&gone, UnixTime(5), None);
        r.status = KeyStatus::Revoked;
        doc.keys.push(r);
        let rows = rows(&[doc], now);
        assert_eq!(
            rows.iter().map(|r| r.status).collect::<Vec<_>>(),
            ["expired", "revoked", "active"]
        );
        assert_eq!(rows[2].rotation_due_in_days, Some(80));
        let text = table(&rows) + &serde_json::to_string(&rows).unwrap();
        for k in [&fresh, &old, &gone] {
            assert!(!text.contains(k.expose_secret()));
            assert!(!text.contains(&k.hash().to_hex()));
            assert!(text.contains(k.key_id().as_str()));
        }
        assert!(text.contains("in 80 days"), "{text}");
    }

    /// Issue 9 item 3: the list shows what each permission really allows beside what
    /// was written, and on which APIs.
    #[test]
    fn permissions_show_the_effective_pattern_next_to_the_written_one() {
        let mut doc = ServiceDocument::new(
            "tutor-service",
            vec![service_auth::ApiGrant::new(
                &["identity"],
                &["GET /internal/users/{id}", "POST /internal/users"],
            )],
        );
        doc.keys.push(KeyRecord::for_key(
            &ApiKey::generate(None).unwrap(),
            UnixTime(1),
            None,
        ));
        let old = ServiceDocument::from_json(
            r#"{"schema":1,"service":"old-service","permissions":["* /internal/*"]}"#,
        )
        .unwrap();
        let text = permissions_table(&[doc.clone(), old]);
        let line = text
            .lines()
            .find(|l| l.contains("{id}"))
            .unwrap_or_else(|| panic!("{text}"));
        assert!(line.contains("identity"), "{line}");
        assert!(line.ends_with("GET /internal/users/*"), "{line}");
        assert!(text.contains("none (schema 1"), "{text}");
        assert!(text.contains("`/` included"), "{text}");
        let rows = rows(&[doc], UnixTime(2));
        let json = serde_json::to_value(&rows).unwrap();
        assert_eq!(json[0]["schema"], 2);
        assert_eq!(json[0]["grants"][0]["apis"][0], "identity");
        assert_eq!(
            json[0]["grants"][0]["routes"][0],
            serde_json::json!({"written": "GET /internal/users/{id}", "effective": "GET /internal/users/*"})
        );
    }

    #[test]
    fn a_key_made_a_minute_ago_is_due_in_90_days() {
        let created = UnixTime(1_000_000);
        let k = ApiKey::generate(None).unwrap();
        let mut doc = ServiceDocument::new("svc", vec![]);
        doc.keys.push(KeyRecord::for_key(&k, created, None));
        let at = |secs: u64| rows(std::slice::from_ref(&doc), UnixTime(created.0 + secs));
        assert_eq!(at(60)[0].rotation_due_in_days, Some(90));
        assert!(table(&at(60)).contains("in 90 days"));
        assert!(table(&at(89 * 86_400 + 60)).contains("in 1 day"));
        assert!(table(&at(90 * 86_400)).contains("due today"));
        assert!(table(&at(90 * 86_400 + 3600)).contains("due today"));
        assert!(table(&at(91 * 86_400 + 3600)).contains("overdue by 1 day"));
        assert_eq!(days_rounded_up(-36 * 3600), -1);
        assert_eq!(days_rounded_up(1), 1);
    }

    /// Issue 19 B5: a key created with `--expires-in 90d` is due when it expires (not
    /// `-`), a key in a rotation's grace period is not due, and the service's brake and
    /// usage-plan key are shown.
    #[test]
    fn expiring_keys_are_due_and_brakes_and_plan_keys_are_shown() {
        let now = UnixTime(1_000_000);
        let day = 86_400;
        let mut doc = ServiceDocument::new("svc", vec![]);
        doc.keys.push(KeyRecord::for_key(
            &ApiKey::generate(None).unwrap(),
            now,
            Some(now.plus(ROTATION_POLICY)),
        ));
        let r = rows(std::slice::from_ref(&doc), now);
        assert_eq!(r[0].rotation_due_in_days, Some(90));
        assert!(table(&r).contains("in 90 days"), "{}", table(&r));
        // A rotation: the old key expires in a day, the new one is due in 90.
        let mut rotated = ServiceDocument::new("svc", vec![]);
        rotated.keys.push(KeyRecord::for_key(
            &ApiKey::generate(None).unwrap(),
            UnixTime(now.0 - 10 * day),
            Some(UnixTime(now.0 + day)),
        ));
        rotated.keys.push(KeyRecord::for_key(
            &ApiKey::generate(None).unwrap(),
            now,
            None,
        ));
        let r = rows(std::slice::from_ref(&rotated), now);
        assert_eq!(
            r.iter().map(|r| r.rotation_due_in_days).collect::<Vec<_>>(),
            [None, Some(90)]
        );
        doc.usage_plan_key = Some("plan-key-value-1".into());
        doc.tokens_not_before = Some(UnixTime(now.0 + 3600));
        let text = services_table(std::slice::from_ref(&doc), now);
        assert!(text.contains("plan-key-value-1"), "{text}");
        assert!(
            text.contains(&UnixTime(now.0 + 3600).to_rfc3339())
                && text.contains("no token issued until then"),
            "{text}"
        );
        let json = serde_json::to_value(rows(std::slice::from_ref(&doc), now)).unwrap();
        assert_eq!(json[0]["usagePlanKey"], "plan-key-value-1");
        assert_eq!(
            json[0]["tokensNotBefore"],
            UnixTime(now.0 + 3600).to_rfc3339()
        );
        let text = services_table(&[rotated], now);
        assert!(
            text.lines()
                .any(|l| l.starts_with("svc ") && l.contains(" none")),
            "{text}"
        );
    }

    #[test]
    fn overdue_rotation_is_negative() {
        let now = UnixTime(200 * 86_400);
        let k = ApiKey::generate(None).unwrap();
        let mut doc = ServiceDocument::new("svc", vec![]);
        doc.keys
            .push(KeyRecord::for_key(&k, UnixTime(100 * 86_400), None));
        let rows = rows(&[doc], now);
        assert_eq!(rows[0].rotation_due_in_days, Some(-10));
        assert!(table(&rows).contains("overdue by 10 days"));
    }
}
