//! The commands, and the checks they share.

pub mod check;
pub mod create;
pub mod import;
pub mod list;
pub mod prune;
pub mod revoke;

use service_auth::record::valid_service_name;
use service_auth::{KeyId, KeyStatus, RoutePattern, ServiceDocument, UnixTime};

use crate::error::Error;
use crate::store::Store;

/// A service name the store accepts, or a usage error saying what one looks like.
pub(crate) fn checked_service(name: &str) -> Result<&str, Error> {
    if valid_service_name(name) {
        Ok(name)
    } else {
        Err(Error::Usage(format!(
            "service name {name:?} is invalid: use 1-64 characters of a-z, 0-9 and -, starting with a letter or digit, e.g. tutor-service"
        )))
    }
}

/// Permissions as typed, trimmed and each checked.
pub(crate) fn checked_permissions(patterns: &[String]) -> Result<Vec<String>, Error> {
    let mut out: Vec<String> = Vec::new();
    for p in patterns.iter().map(|p| p.trim()).filter(|p| !p.is_empty()) {
        RoutePattern::parse(p).map_err(|e| Error::Usage(format!("permission {p:?}: {e}")))?;
        if !out.iter().any(|q| q == p) {
            out.push(p.to_owned());
        }
    }
    Ok(out)
}

/// Whether two permission lists are the same set.
pub(crate) fn same_permissions(a: &[String], b: &[String]) -> bool {
    let mut a = a.to_vec();
    let mut b = b.to_vec();
    a.sort();
    b.sort();
    a == b
}

pub(crate) fn service_not_found(service: &str, store: &Store) -> Error {
    Error::NotFound(format!(
        "service {service} has no document in the {}: check --service, {}; `svcauth keys list` shows the services there, `svcauth keys create` makes a service's first key",
        store.describe(),
        store.where_to_look()
    ))
}

/// Revokes `key_id` in `doc` at `now` (idempotent; an earlier revocation stays).
pub(crate) fn revoke_in(doc: &mut ServiceDocument, key_id: &KeyId, now: UnixTime) {
    if let Some(k) = doc.key_mut(key_id) {
        if k.status != KeyStatus::Revoked {
            k.status = KeyStatus::Revoked;
            k.revoked_at = Some(now);
        }
    }
}

/// Ids of the keys usable at `now`.
pub(crate) fn usable_keys(doc: &ServiceDocument, now: UnixTime) -> Vec<KeyId> {
    doc.keys
        .iter()
        .filter(|k| k.usable_at(now))
        .map(|k| k.key_id.clone())
        .collect()
}

pub(crate) fn list_ids(ids: &[KeyId]) -> String {
    if ids.is_empty() {
        return "none".into();
    }
    ids.iter().map(KeyId::as_str).collect::<Vec<_>>().join(", ")
}

pub(crate) fn when(t: Option<UnixTime>) -> String {
    t.map_or_else(|| "never".into(), UnixTime::to_rfc3339)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permissions_are_checked_and_deduplicated() {
        let got = checked_permissions(&[
            " GET /a/* ".into(),
            "".into(),
            "GET /a/*".into(),
            "* /b".into(),
        ])
        .unwrap();
        assert_eq!(got, vec!["GET /a/*".to_string(), "* /b".to_string()]);
        let err = checked_permissions(&["FETCH /x".into()]).unwrap_err();
        assert!(matches!(err, Error::Usage(_)), "{err}");
        assert!(same_permissions(
            &["b".into(), "a".into()],
            &["a".into(), "b".into()]
        ));
    }

    #[test]
    fn service_names_are_checked() {
        assert!(checked_service("tutor-service").is_ok());
        assert!(checked_service("Tutor")
            .unwrap_err()
            .to_string()
            .contains("e.g. tutor-service"));
    }
}
