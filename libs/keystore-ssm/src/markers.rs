//! Markers: what a change that must survive a lost document write leaves beside the
//! document, created with `Overwrite=false` (the one compare-and-swap SSM has) and
//! never changed or deleted by svcauth. A writer that overwrites a document with an
//! older version and dies before merging it back cannot undo them (issue 19 A2: brakes
//! and scheduled expiries get the guarantee revocations had).
//!
//! * `{parent}/revoked/{key id}`, a `String`: its existence revokes the key, unless its
//!   value holds a readable `expiresAt` (`keys revoke --after`, `keys rotate --grace`
//!   more than 0): then the key ends at that time at the latest. Any other value (the
//!   revocation markers of older versions included) is a revocation now.
//! * `{parent}/revoked/{key id}.now`: a revocation now of a key whose first marker
//!   already holds a scheduled end (a key revoked during its rotation grace). Read only
//!   for such keys, so a load reads one name per usable key, as before.
//! * `{parent}/brakes/{service}/{unix seconds}`: one `String` per brake, named by its
//!   time; a standing read lists them and takes the latest.
//!
//! The first scheduled end of a key is the one its marker holds; a later, earlier one
//! is in the document only (the writer says so; a revocation stops the key at once).
//! Every marker only ever takes access away: a forged one can refuse a key or a
//! service's tokens, never grant anything.

use aws_sdk_ssm::types::Parameter;
use service_auth::{KeyId, Markers, UnixTime};

use crate::{retry_throttled, sdk_error, SsmKeyStore, SsmStoreError};

/// What [`SsmKeyStore::put_expiry_marker`] found or did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExpiryMarked {
    /// This call created the marker: the key ends at the time asked, whatever any
    /// writer does to the document.
    Created,
    /// The key had a marker already: it ends at `at` at the latest (time 0: it is
    /// revoked). `at` may be later than the time asked: then only the document holds
    /// the earlier one.
    Exists { at: UnixTime },
}

/// The scheduled end a key's marker value holds (`{"expiresAt": "<RFC 3339>", ...}`);
/// `None`: the marker is a revocation now.
pub fn expiry_of(value: &str) -> Option<UnixTime> {
    serde_json::from_str::<serde_json::Value>(value)
        .ok()?
        .get("expiresAt")?
        .as_str()
        .and_then(UnixTime::parse_rfc3339)
}

impl SsmKeyStore {
    /// Records in `markers` what a marker parameter of one of `ids` says.
    pub(crate) fn read_marker(&self, ids: &[KeyId], p: &Parameter, markers: &mut Markers) {
        let name = p.name().unwrap_or_default();
        for id in ids {
            if self.layout.revocation_marker(id) == name {
                match expiry_of(p.value().unwrap_or_default()) {
                    Some(at) => {
                        let e = markers.expiries.entry(id.clone()).or_insert(at);
                        *e = (*e).min(at);
                    }
                    // Its existence is the revocation, whatever else its value says.
                    None => {
                        markers.revoked.insert(id.clone());
                    }
                }
            } else if self.layout.immediate_marker(id) == name {
                markers.revoked.insert(id.clone());
            }
        }
    }

    /// The markers of `ids`: `GetParameters`, 10 names a call; then, for the few keys
    /// whose marker holds a scheduled end, their immediate-revocation markers. Names
    /// that do not exist come back as invalid, not as an error.
    pub async fn markers_among(&self, ids: &[KeyId]) -> Result<Markers, SsmStoreError> {
        let mut markers = Markers::default();
        self.read_markers(ids, |id| self.layout.revocation_marker(id), &mut markers)
            .await?;
        let scheduled: Vec<KeyId> = ids
            .iter()
            .filter(|id| markers.expiries.contains_key(*id) && !markers.revoked.contains(*id))
            .cloned()
            .collect();
        self.read_markers(
            &scheduled,
            |id| self.layout.immediate_marker(id),
            &mut markers,
        )
        .await?;
        Ok(markers)
    }

    async fn read_markers(
        &self,
        ids: &[KeyId],
        name_of: impl Fn(&KeyId) -> String,
        markers: &mut Markers,
    ) -> Result<(), SsmStoreError> {
        for chunk in ids.chunks(10) {
            let names: Vec<String> = chunk.iter().map(&name_of).collect();
            let out = retry_throttled(|| {
                self.client
                    .get_parameters()
                    .set_names(Some(names.clone()))
                    .with_decryption(false)
                    .send()
            })
            .await
            .map_err(|e| sdk_error("GetParameters", &self.layout.revoked(), e))?;
            for p in out.parameters() {
                self.read_marker(chunk, p, markers);
            }
        }
        Ok(())
    }

    /// Creates `key_id`'s revocation marker if it has none (create-only, so no writer
    /// can ever replace or race it); when its marker holds a scheduled end, creates its
    /// immediate-revocation marker instead. `Ok(true)` when this call created one,
    /// `Ok(false)` when the key was revoked by a marker already. Either way the key is
    /// refused by every load from now on.
    pub async fn put_revocation_marker(
        &self,
        service: &str,
        key_id: &KeyId,
        at: UnixTime,
        why: &str,
    ) -> Result<bool, SsmStoreError> {
        let value = serde_json::json!({
            "service": service,
            "keyId": key_id,
            "revokedAt": at,
            "by": why,
        })
        .to_string();
        let description =
            "svcauth revocation marker: this key is refused for good; never delete it";
        if self
            .create_string(&self.marker_name(key_id), value.clone(), description)
            .await?
        {
            return Ok(true);
        }
        let markers = self.markers_among(std::slice::from_ref(key_id)).await?;
        if markers.revoked.contains(key_id) {
            return Ok(false);
        }
        self.create_string(&self.layout.immediate_marker(key_id), value, description)
            .await
    }

    /// Creates `key_id`'s marker with a scheduled end at `at`, if it has no marker
    /// (create-only).
    pub async fn put_expiry_marker(
        &self,
        service: &str,
        key_id: &KeyId,
        at: UnixTime,
        why: &str,
    ) -> Result<ExpiryMarked, SsmStoreError> {
        let value = serde_json::json!({
            "service": service,
            "keyId": key_id,
            "expiresAt": at,
            "by": why,
        })
        .to_string();
        let created = self
            .create_string(
                &self.marker_name(key_id),
                value,
                "svcauth key marker: this key ends at expiresAt at the latest; never delete it",
            )
            .await?;
        if created {
            return Ok(ExpiryMarked::Created);
        }
        let markers = self.markers_among(std::slice::from_ref(key_id)).await?;
        let at = match markers.revoked.contains(key_id) {
            true => UnixTime(0),
            false => markers.expiries.get(key_id).copied().unwrap_or(UnixTime(0)),
        };
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
    fn a_marker_is_a_revocation_unless_it_holds_a_readable_end() {
        assert_eq!(
            expiry_of(r#"{"expiresAt":"2026-12-01T10:00:00Z"}"#),
            UnixTime::parse_rfc3339("2026-12-01T10:00:00Z")
        );
        for revocation in [
            "",
            "x",
            "{}",
            r#"{"service":"s","keyId":"kid_0123456789abcdef","revokedAt":"2026-12-01T10:00:00Z"}"#,
            r#"{"expiresAt": 5}"#,
            r#"{"expiresAt":"soon"}"#,
        ] {
            assert_eq!(expiry_of(revocation), None, "{revocation}");
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
