//! Expiry and brake markers: what `keys revoke --after`, `keys rotate --grace` and
//! `tokens brake` write beside the document, so that a concurrent writer that
//! overwrites the document (and dies before merging it back) cannot lose them: the
//! same guarantee revocation markers give revocations (issue 19 A2).
//!
//! * `{parent}/expiries/{key id}`: a `String`, created with `Overwrite=false`, whose
//!   value holds `expiresAt`; every load ends the key then at the latest. The first
//!   expiry set for a key is the one its marker holds; a later, earlier one is in the
//!   document only (the writer says so), and a revocation stops the key at once.
//! * `{parent}/brakes/{service}/{unix seconds}`: one `String` per brake, created with
//!   `Overwrite=false`, named by its time; a standing read lists them and takes the
//!   latest.
//!
//! Like revocation markers, they only ever take access away: a forged one can refuse
//! a key or a service's tokens, never grant anything. A value that cannot be read as a
//! time ends the key at once.

use aws_sdk_ssm::types::Parameter;
use service_auth::{KeyId, UnixTime};

use crate::{retry_throttled, sdk_error, SsmKeyStore, SsmStoreError};

/// What [`SsmKeyStore::put_expiry_marker`] found or did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExpiryMarked {
    /// This call created the marker: the key ends at the time asked, whatever any
    /// writer does to the document.
    Created,
    /// A marker exists already: the key ends at `at` at the latest (it may be later
    /// than the time asked: then only the document holds the earlier one).
    Exists { at: UnixTime },
}

/// The time an expiry marker's value says (`{"expiresAt": "<RFC 3339>", ...}`); a
/// value that says no readable time ends the key at once (time 0).
pub fn expiry_of(value: &str) -> UnixTime {
    serde_json::from_str::<serde_json::Value>(value)
        .ok()
        .and_then(|v| {
            v.get("expiresAt")
                .and_then(|t| t.as_str())
                .and_then(UnixTime::parse_rfc3339)
        })
        .unwrap_or(UnixTime(0))
}

impl SsmKeyStore {
    /// The expiry marker of a key.
    pub fn expiry_marker_name(&self, key_id: &KeyId) -> String {
        self.layout.expiry_marker(key_id)
    }

    /// Creates `key_id`'s expiry marker (`at`) if it has none (create-only).
    pub async fn put_expiry_marker(
        &self,
        service: &str,
        key_id: &KeyId,
        at: UnixTime,
        why: &str,
    ) -> Result<ExpiryMarked, SsmStoreError> {
        let name = self.expiry_marker_name(key_id);
        let value = serde_json::json!({
            "service": service,
            "keyId": key_id,
            "expiresAt": at,
            "by": why,
        })
        .to_string();
        let created = self
            .create_string(
                &name,
                value,
                "svcauth expiry marker: this key ends at expiresAt at the latest; never delete it",
            )
            .await?;
        if created {
            return Ok(ExpiryMarked::Created);
        }
        let markers = self.markers_among(std::slice::from_ref(key_id)).await?;
        let at = markers
            .expiries
            .get(key_id)
            .copied()
            .unwrap_or(UnixTime(0));
        Ok(ExpiryMarked::Exists { at })
    }

    /// The brake marker of `service` at `at`.
    pub fn brake_marker_name(&self, service: &str, at: UnixTime) -> String {
        self.layout.brake_marker(service, at)
    }

    /// Creates `service`'s brake marker at `at` (create-only; `Ok(false)`: it existed).
    pub async fn put_brake_marker(
        &self,
        service: &str,
        at: UnixTime,
        why: &str,
    ) -> Result<bool, SsmStoreError> {
        let name = self.brake_marker_name(service, at);
        let value = serde_json::json!({
            "service": service,
            "tokensNotBefore": at,
            "by": why,
        })
        .to_string();
        self.create_string(
            &name,
            value,
            "svcauth brake marker: tokens of this service issued before this time are refused; never delete it",
        )
        .await
    }

    /// The latest of `service`'s brake markers (`None`: it has none):
    /// `GetParametersByPath`, 10 a call. A marker whose name is not a time is
    /// ignored (svcauth never writes one; it could only come from someone else).
    pub async fn brake_of(&self, service: &str) -> Result<Option<UnixTime>, SsmStoreError> {
        let path = self.layout.brakes(service);
        let mut latest: Option<UnixTime> = None;
        let mut token: Option<String> = None;
        loop {
            let page = retry_throttled(|| {
                self.client
                    .get_parameters_by_path()
                    .path(&path)
                    .recursive(false)
                    .with_decryption(false)
                    .max_results(10)
                    .set_next_token(token.clone())
                    .send()
            })
            .await
            .map_err(|e| sdk_error("GetParametersByPath", &path, e))?;
            for p in page.parameters() {
                latest = latest.max(brake_time(p));
            }
            match page.next_token {
                Some(t) if !t.is_empty() => token = Some(t),
                _ => break,
            }
        }
        Ok(latest)
    }
}

/// The time a brake marker is named by.
fn brake_time(p: &Parameter) -> Option<UnixTime> {
    let last = p.name()?.rsplit('/').next()?;
    if last.is_empty() || last.len() > 12 || !last.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    last.parse().ok().map(UnixTime)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expiry_values_that_say_no_time_end_the_key_at_once() {
        assert_eq!(
            expiry_of(r#"{"expiresAt":"2026-12-01T10:00:00Z"}"#),
            UnixTime::parse_rfc3339("2026-12-01T10:00:00Z").unwrap()
        );
        for bad in ["", "x", "{}", r#"{"expiresAt": 5}"#, r#"{"expiresAt":"soon"}"#] {
            assert_eq!(expiry_of(bad), UnixTime(0), "{bad}");
        }
    }

    #[test]
    fn brake_markers_are_named_by_their_time() {
        let p = |name: &str| Parameter::builder().name(name).build();
        assert_eq!(
            brake_time(&p("/svcauth/dev/brakes/tutor/1800000000")),
            Some(UnixTime(1_800_000_000))
        );
        for bad in [
            "/svcauth/dev/brakes/tutor/soon",
            "/svcauth/dev/brakes/tutor/",
            "/svcauth/dev/brakes/tutor/-1",
            "/svcauth/dev/brakes/tutor/99999999999999",
        ] {
            assert_eq!(brake_time(&p(bad)), None, "{bad}");
        }
    }
}
