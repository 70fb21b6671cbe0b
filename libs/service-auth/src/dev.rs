//! The development key store embedded in the binary, and the file format it shares
//! with `SVCAUTH_KEY_SOURCE=file`: a JSON array of service documents.
//!
//! The clear development keys are in `dev/dev-keys.json` and docs/authorizer.md, never
//! in this crate. They are accepted only where the development store is chosen
//! explicitly.

use crate::record::{DocumentError, ServiceDocument};

/// `dev/dev-store.json`: hashed records of the development keys.
pub const DEV_STORE_JSON: &str = include_str!("../../../dev/dev-store.json");

/// API id → name for the development store (`SVCAUTH_API_NAMES` overrides it): the
/// API id of the sample events in `events/`, and the local gateway's ids for the key
/// APIs of template.yaml (`IdentityKeyApi` → `identitykey`, named `identity` as the
/// template registers it; `TutorKeyApi` → `tutorkey`, `tutor`).
pub const DEV_API_NAMES: &str = "a1b2c3d4e5=identity,identitykey=identity,tutorkey=tutor";

/// Parses a JSON array of service documents and validates each.
pub fn parse_documents(json: &str) -> Result<Vec<ServiceDocument>, DocumentError> {
    let docs: Vec<ServiceDocument> =
        serde_json::from_str(json).map_err(|e| DocumentError::Json(e.to_string()))?;
    for d in &docs {
        d.validate()?;
    }
    Ok(docs)
}

/// The development store's documents.
pub fn dev_documents() -> Result<Vec<ServiceDocument>, DocumentError> {
    parse_documents(DEV_STORE_JSON)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::KeyStore;

    #[test]
    fn the_embedded_dev_store_is_valid() {
        let docs = dev_documents().unwrap();
        let store = KeyStore::build(&docs, &[]).unwrap();
        assert_eq!(store.service_count(), 3);
        assert_eq!(store.key_count(), 5);
    }

    #[test]
    fn bad_files_are_rejected() {
        assert!(parse_documents("{}").is_err());
        assert!(parse_documents(r#"[{"schema":1,"service":"BAD"}]"#).is_err());
        assert_eq!(parse_documents("[]").unwrap(), vec![]);
    }
}
