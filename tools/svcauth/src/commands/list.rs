//! `keys list`: what keys exist, never a key or a hash.

use serde::Serialize;
use service_auth::{KeyId, KeyRecord, KeyStatus, ServiceDocument, UnixTime};

use super::{checked_service, service_not_found, when};
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
    /// When the 90-day rotation policy is due (for usable keys that do not expire
    /// before then).
    pub rotation_due: Option<UnixTime>,
    /// Whole days until then; negative when overdue.
    pub rotation_due_in_days: Option<i64>,
}

impl KeyRow {
    fn new(service: &str, k: &KeyRecord, now: UnixTime) -> Self {
        let status = match k.status {
            KeyStatus::Revoked => "revoked",
            KeyStatus::Active if k.usable_at(now) => "active",
            KeyStatus::Active => "expired",
        };
        // Keys that expire before the policy is due (say, after a rotation) need none.
        let due = Some(k.created.plus(ROTATION_POLICY))
            .filter(|due| k.usable_at(now) && k.expires.is_none_or(|e| e > *due));
        Self {
            service: service.to_owned(),
            key_id: k.key_id.clone(),
            created: k.created,
            expires: k.expires,
            status,
            revoked_at: k.revoked_at,
            rotation_due: due,
            rotation_due_in_days: due.map(|d| now.seconds_until(d).div_euclid(86_400)),
        }
    }
}

pub fn rows(docs: &[ServiceDocument], now: UnixTime) -> Vec<KeyRow> {
    let mut rows: Vec<KeyRow> = docs
        .iter()
        .flat_map(|d| d.keys.iter().map(move |k| KeyRow::new(&d.service, k, now)))
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
    let docs = match &args.service {
        Some(service) => {
            let service = checked_service(service)?;
            match store.read_document(service).await? {
                Some(d) => vec![d],
                None => return Err(service_not_found(service, &store)),
            }
        }
        None => store.load_documents().await?,
    };
    // A revocation marker wins over what a document says, as in the authorizer.
    let mut docs = docs;
    let usable: Vec<service_auth::KeyId> = docs
        .iter()
        .flat_map(|d| d.keys.iter().filter(|k| k.usable_at(ctx.now)))
        .map(|k| k.key_id.clone())
        .collect();
    let revoked = store.revoked_among(&usable).await?;
    for k in docs.iter_mut().flat_map(|d| d.keys.iter_mut()) {
        if revoked.contains(&k.key_id) {
            k.status = service_auth::KeyStatus::Revoked;
        }
    }
    if docs.is_empty() {
        ctx.status(format!(
            "no service documents in the {}: if there should be, check --env, --path and the region",
            store.describe()
        ));
    }
    let rows = rows(&docs, ctx.now);
    let out = if args.json {
        serde_json::to_string_pretty(&rows).unwrap_or_default() + "\n"
    } else {
        table(&rows)
    };
    ctx.io
        .stdout
        .write_all(out.as_bytes())
        .and_then(|()| ctx.io.stdout.flush())
        .map_err(|e| Error::Usage(format!("writing to stdout failed: {e}")))?;
    Ok(Outcome::Done)
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
                    Some(d) if d < 0 => format!("overdue by {} days", -d),
                    Some(d) => format!("in {d} days"),
                    None => "-".into(),
                },
            ]
        })
        .collect();
    let mut widths = header.map(str::len);
    for row in &cells {
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
    line(&header);
    for row in &cells {
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
