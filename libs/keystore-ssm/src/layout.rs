//! Where everything of one store lives in SSM: the ONE place the paths are derived.
//!
//! Everything hangs off the key store path (`SVCAUTH_SSM_PATH`, `/svcauth/{env}/keys`):
//! its parent holds the siblings, so one path configures all of them.
//!
//! | what | parameter | type | written by |
//! |---|---|---|---|
//! | service documents | `{parent}/keys/{service}` | SecureString (store key) | svcauth |
//! | revocation and expiry markers | `{parent}/revoked/{key id}` (and `{key id}.now`) | String, create-only | svcauth |
//! | brake markers | `{parent}/brakes/{service}/{unix seconds}` | String, create-only | svcauth |
//! | key id index | `{parent}/index/{key id}` | String, create-only | svcauth |
//! | API registry | `{parent}/apis/{api id}` | SecureString (store key) | `svcauth apis register` |
//! | API name claims | `{parent}/api-names/{name}` | String, create-only | `svcauth apis register` |
//! | token key set | `{parent}/token/jwks` | SecureString (store key) | `svcauth tokens keys` |
//!
//! What is trusted for a grant (documents, registry entries, the key set) is a
//! SecureString under the store's KMS key; a String there is never trusted. What is a
//! String is either a marker (it only takes access away) or a pointer (the index and
//! the name claims: they say where to look, or refuse a registration).

use crate::SsmStoreError;
use service_auth::KeyId;
use service_auth::UnixTime;

/// The environment when none is given.
pub const DEFAULT_ENV: &str = "dev";
/// The key store path when none is given: `/svcauth/dev/keys`.
pub const DEFAULT_KEY_PATH: &str = "/svcauth/dev/keys";

/// Last segments a key store path may not have: they name its siblings, and the key
/// path is listed without recursion, so a sibling must never be it.
const SIBLINGS: [&str; 6] = ["revoked", "index", "brakes", "apis", "api-names", "token"];

/// The key store path of an environment: `/svcauth/{env}/keys`.
pub fn default_key_path(env: &str) -> String {
    format!("/svcauth/{env}/keys")
}

/// Every parameter name of one store, derived from its key path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreLayout {
    keys: String,
    parent: String,
}

impl StoreLayout {
    /// The layout around `key_path` (`/svcauth/prod/keys`). The path must start with
    /// `/`, not end with `/`, use only `a-z A-Z 0-9 _ . - /`, and not end in a
    /// sibling's name.
    pub fn new(key_path: &str) -> Result<Self, SsmStoreError> {
        let ok = key_path.starts_with('/')
            && !key_path.ends_with('/')
            && key_path.len() <= 900
            && key_path
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"/_.-".contains(&b));
        let (parent, last) = key_path.rsplit_once('/').unwrap_or(("", key_path));
        if !ok || last.is_empty() || SIBLINGS.contains(&last) {
            return Err(SsmStoreError::BadPath(key_path.to_owned()));
        }
        Ok(Self {
            keys: key_path.to_owned(),
            parent: parent.to_owned(),
        })
    }

    /// The layout of an environment's default path.
    pub fn for_env(env: &str) -> Result<Self, SsmStoreError> {
        Self::new(&default_key_path(env))
    }

    /// The key store path (documents directly under it).
    pub fn keys(&self) -> &str {
        &self.keys
    }

    /// The parameter holding `service`'s document.
    pub fn document(&self, service: &str) -> String {
        format!("{}/{service}", self.keys)
    }

    /// Where revocation markers live.
    pub fn revoked(&self) -> String {
        format!("{}/revoked", self.parent)
    }

    /// A key's marker: it revokes the key, or (its value holds `expiresAt`) ends it
    /// then at the latest.
    pub fn revocation_marker(&self, key_id: &KeyId) -> String {
        format!("{}/revoked/{key_id}", self.parent)
    }

    /// A key's immediate-revocation marker, written only when its
    /// [`StoreLayout::revocation_marker`] holds a scheduled end already.
    pub fn immediate_marker(&self, key_id: &KeyId) -> String {
        format!("{}/revoked/{key_id}.now", self.parent)
    }

    /// Where `service`'s brake markers live (one per brake, named by its time).
    pub fn brakes(&self, service: &str) -> String {
        format!("{}/brakes/{service}", self.parent)
    }

    pub fn brake_marker(&self, service: &str, at: UnixTime) -> String {
        format!("{}/brakes/{service}/{}", self.parent, at.0)
    }

    /// Where the key id index lives.
    pub fn index(&self) -> String {
        format!("{}/index", self.parent)
    }

    pub fn index_entry(&self, key_id: &KeyId) -> String {
        format!("{}/index/{key_id}", self.parent)
    }

    /// The API registry (`SVCAUTH_API_PATH` when that is not set).
    pub fn apis(&self) -> String {
        format!("{}/apis", self.parent)
    }

    /// The token key set (`SVCAUTH_TOKEN_JWKS_PARAMETER` when that is not set).
    pub fn key_set(&self) -> String {
        format!("{}/token/jwks", self.parent)
    }
}

/// The name claims of an API registry at `apis_path`: its sibling `api-names`.
pub fn api_name_claims(apis_path: &str) -> String {
    let apis = apis_path.trim_end_matches('/');
    let parent = apis.rsplit_once('/').map_or("", |(p, _)| p);
    format!("{parent}/api-names")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_path_derives_from_the_key_path() {
        let l = StoreLayout::new("/svcauth/prod/keys").unwrap();
        let id = KeyId::parse("kid_0123456789abcdef").unwrap();
        assert_eq!(l.document("tutor"), "/svcauth/prod/keys/tutor");
        assert_eq!(
            l.revocation_marker(&id),
            "/svcauth/prod/revoked/kid_0123456789abcdef"
        );
        assert_eq!(
            l.immediate_marker(&id),
            "/svcauth/prod/revoked/kid_0123456789abcdef.now"
        );
        assert_eq!(
            l.brake_marker("tutor", UnixTime(1_800_000_000)),
            "/svcauth/prod/brakes/tutor/1800000000"
        );
        assert_eq!(
            l.index_entry(&id),
            "/svcauth/prod/index/kid_0123456789abcdef"
        );
        assert_eq!(l.apis(), "/svcauth/prod/apis");
        assert_eq!(l.key_set(), "/svcauth/prod/token/jwks");
        assert_eq!(api_name_claims(&l.apis()), "/svcauth/prod/api-names");
        assert_eq!(
            StoreLayout::for_env(DEFAULT_ENV).unwrap().keys(),
            DEFAULT_KEY_PATH
        );
        for bad in [
            "svcauth/keys",
            "/svcauth/keys/",
            "/svcauth/dev/revoked",
            "/svcauth/dev/index",
            "/svcauth/dev/apis",
            "/svcauth/dev/token",
            "/svcauth/dev/brakes",
            "/svcauth/dev/api-names",
            "/svcauth/dev/k eys",
            "/",
        ] {
            assert!(StoreLayout::new(bad).is_err(), "{bad}");
        }
        // A key path at the root has siblings at the root.
        assert_eq!(StoreLayout::new("/keys").unwrap().key_set(), "/token/jwks");
    }
}
