//! The commands, and the checks they share.

pub mod access;
pub mod apis;
pub mod check;
pub mod create;
pub mod grant;
pub mod import;
pub mod list;
pub mod prune;
pub mod reindex;
pub mod revoke;
pub mod tokens;

use service_auth::record::{valid_api_name, valid_service_name};
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

/// API names as typed, trimmed, each checked, without repeats.
pub(crate) fn checked_apis(names: &[String]) -> Result<Vec<String>, Error> {
    let mut out: Vec<String> = Vec::new();
    for n in names.iter().map(|n| n.trim()).filter(|n| !n.is_empty()) {
        if !valid_api_name(n) {
            return Err(Error::Usage(format!(
                "API name {n:?} is invalid: use the name the API's stack registered (1-64 of a-z, 0-9 and -), e.g. identity"
            )));
        }
        if !out.iter().any(|q| q == n) {
            out.push(n.to_owned());
        }
    }
    Ok(out)
}

/// Whether a document grants any route (or, schema 1, lists any permission).
pub(crate) fn has_permissions(doc: &ServiceDocument) -> bool {
    !doc.grants.is_empty() || !doc.permissions.is_empty()
}

/// A document's permissions for messages: `GET /a, GET /b on identity; ...`.
pub(crate) fn grants_text(doc: &ServiceDocument) -> String {
    if doc.is_unscoped() && !doc.permissions.is_empty() {
        return format!(
            "[{}] on no API (schema 1: run `svcauth keys migrate --service {} --api NAME`)",
            doc.permissions.join(", "),
            doc.service
        );
    }
    if doc.grants.is_empty() {
        return "none".into();
    }
    doc.grants
        .iter()
        .map(|g| format!("{} on {}", g.routes.join(", "), g.apis.join(", ")))
        .collect::<Vec<_>>()
        .join("; ")
}

/// Whether two permission lists are the same set.
pub(crate) fn same_permissions(a: &[String], b: &[String]) -> bool {
    let mut a = a.to_vec();
    let mut b = b.to_vec();
    a.sort();
    b.sort();
    a == b
}

/// The documents a command works on: `service`'s alone (checked; no document is
/// [`service_not_found`]) when named, else every document in the store.
pub(crate) async fn documents_of(
    store: &Store,
    service: Option<&str>,
) -> Result<Vec<ServiceDocument>, Error> {
    let Some(service) = service else {
        return store.load_documents().await;
    };
    let service = checked_service(service)?;
    match store.read_document(service).await? {
        Some(doc) => Ok(vec![doc]),
        None => Err(service_not_found(service, store)),
    }
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

    /// Issue 9 item 3, on write: a malformed pattern is a usage error, nothing written.
    #[test]
    fn malformed_permissions_are_refused_on_write() {
        for bad in [
            "GET /internal/users/{id/profile",
            "GET /internal//users",
            "GET /internal/users/",
            "GET /a%zz",
        ] {
            let err = checked_permissions(&[bad.into()]).unwrap_err();
            assert!(matches!(err, Error::Usage(_)), "{bad}: {err}");
        }
    }

    #[test]
    fn api_names_are_checked_and_deduplicated() {
        assert_eq!(
            checked_apis(&["identity".into(), " tutor ".into(), "identity".into()]).unwrap(),
            ["identity", "tutor"]
        );
        assert!(checked_apis(&["Identity".into()]).is_err());
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
