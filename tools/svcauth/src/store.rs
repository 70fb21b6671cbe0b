//! The two stores a command can write: SSM (through `keystore-ssm`'s conflict-safe
//! writes) and a local JSON file (a lock file plus an atomic rename).

use std::fs::{self, OpenOptions};
use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use keystore_ssm::{ExpiryMarked, SsmKeyStore, SsmStoreError};
use std::collections::HashSet;

use service_auth::record::parse_documents;
use service_auth::{KeyId, KeyStore, Markers, ServiceDocument, UnixTime};

use crate::error::Error;

/// How many more times a whole SSM update is tried after keystore-ssm gave up on
/// conflicts (each time after a longer random pause).
const SSM_CONFLICT_ROUNDS: u32 = 4;

/// How long a writer waits for another writer's lock on the store file.
const FILE_LOCK_WAIT: Duration = Duration::from_secs(15);

/// A store of service documents.
#[derive(Debug, Clone)]
pub enum Store {
    Ssm { store: SsmKeyStore, region: String },
    File(FileStore),
}

/// What a write did.
#[derive(Debug, Clone)]
pub struct Written {
    /// The document as written.
    pub document: ServiceDocument,
    /// How many concurrent writes by others were merged in.
    pub merged_conflicts: usize,
    /// How many times the whole update was run again after conflicts kept coming.
    pub retried_rounds: u32,
    /// What went wrong writing the document's key id index entries, if anything (the
    /// document is written either way).
    pub index_warning: Option<String>,
}

/// What `keys reindex` found (and wrote, unless a dry run) for one document.
#[derive(Debug, Clone, Default)]
pub struct Reindexed {
    /// Keys that had no entry: created, or would be in a dry run.
    pub missing: Vec<KeyId>,
    /// Entries that name another service (never overwritten).
    pub conflicts: Vec<(KeyId, String)>,
}

impl Store {
    /// Where the store is, for messages: `SSM path /svcauth/dev/keys (region us-east-1)`.
    pub fn describe(&self) -> String {
        match self {
            Self::Ssm { store, region } => format!("SSM path {} (region {region})", store.path()),
            Self::File(f) => format!("store file {}", f.path.display()),
        }
    }

    /// What to check when something is not in this store: the options that name it.
    pub fn where_to_look(&self) -> &'static str {
        match self {
            Self::Ssm { .. } => "--env, --path and the region",
            Self::File(_) => "--file (or SVCAUTH_KEYS_FILE)",
        }
    }

    /// For commands that read what must already be there (`list`, `check`, `revoke`,
    /// `rotate`, `prune`): a store file that does not exist is "not found", not an
    /// empty store (a typo in --file would otherwise look like a store with no keys).
    pub fn require_existing(&self) -> Result<(), Error> {
        match self {
            Self::Ssm { .. } => Ok(()),
            Self::File(f) => match fs::metadata(&f.path) {
                Ok(m) if m.is_file() => Ok(()),
                Ok(_) => Err(Error::Usage(format!(
                    "{} is not a file: --file names the store file itself, e.g. dev/my-store.json",
                    f.path.display()
                ))),
                Err(e) if e.kind() == ErrorKind::NotFound => Err(Error::NotFound(format!(
                    "store file {} does not exist: check --file (or SVCAUTH_KEYS_FILE); `svcauth --store file --file {} keys create --service NAME --api API --permissions 'METHOD /path'` creates it",
                    f.path.display(),
                    f.path.display()
                ))),
                Err(e) => Err(Error::Store(format!("reading {}: {e}", f.path.display()))),
            },
        }
    }

    /// What a write needs before it starts, checked by real runs and dry runs alike
    /// (a dry run must fail where the real run would): for a store file, that its
    /// directory exists and is writable, and that the file, if there, is a valid
    /// store and writable.
    pub fn check_writable(&self) -> Result<(), Error> {
        let Self::File(f) = self else { return Ok(()) };
        let dir = match f.path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        match fs::metadata(&dir) {
            Ok(m) if m.is_dir() && !m.permissions().readonly() => {}
            Ok(m) if m.is_dir() => {
                return Err(Error::Store(format!(
                    "the directory {} of store file {} is read-only: choose another --file or make it writable",
                    dir.display(),
                    f.path.display()
                )))
            }
            Ok(_) => {
                return Err(Error::Usage(format!(
                    "{} is not a directory, so store file {} cannot be written there: check --file",
                    dir.display(),
                    f.path.display()
                )))
            }
            Err(_) => {
                return Err(Error::NotFound(format!(
                    "the directory {} of store file {} does not exist: create it (mkdir -p {}) or check --file",
                    dir.display(),
                    f.path.display(),
                    dir.display()
                )))
            }
        }
        match fs::metadata(&f.path) {
            Ok(m) if m.is_dir() => Err(Error::Usage(format!(
                "{} is a directory: --file names the store file itself, e.g. {}/keys.json",
                f.path.display(),
                f.path.display()
            ))),
            Ok(m) if m.permissions().readonly() => Err(Error::Store(format!(
                "store file {} is read-only: make it writable or choose another --file",
                f.path.display()
            ))),
            // Also parses it: a broken file fails here, before anything is planned.
            _ => f.read_all().map(drop),
        }
    }

    /// Every service document. A missing store file is an empty store.
    pub async fn load_documents(&self) -> Result<Vec<ServiceDocument>, Error> {
        match self {
            Self::Ssm { store, region } => store
                .load_documents()
                .await
                .map_err(|e| ssm_error(e, region)),
            Self::File(f) => f.read_all(),
        }
    }

    /// One service's document, `None` when it has none.
    pub async fn read_document(&self, service: &str) -> Result<Option<ServiceDocument>, Error> {
        match self {
            Self::Ssm { store, region } => Ok(store
                .read_document(service)
                .await
                .map_err(|e| ssm_error(e, region))?
                .map(|(d, _)| d)),
            Self::File(f) => Ok(f.read_all()?.into_iter().find(|d| d.service == service)),
        }
    }

    /// Creates the revocation markers of `ids` (create-only, see keystore-ssm): from
    /// the moment this returns, no load of the authorizer accepts those keys, whatever
    /// any document says or any writer does. Returns how many markers were new. The
    /// store file needs none: its lock serialises writers, so no write is lost.
    pub async fn mark_revoked(
        &self,
        service: &str,
        ids: &[KeyId],
        now: UnixTime,
        why: &str,
    ) -> Result<usize, Error> {
        let Self::Ssm { store, region } = self else {
            return Ok(0);
        };
        let mut created = 0;
        for id in ids {
            if store
                .put_revocation_marker(service, id, now, why)
                .await
                .map_err(|e| ssm_error(e, region))?
            {
                created += 1;
            }
        }
        Ok(created)
    }

    /// Creates the markers of `ids` with a scheduled end at `at` (create-only, see
    /// keystore-ssm):
    /// from the moment this returns, every load ends those keys at `at` at the latest,
    /// whatever any document says or any writer does. Returns the keys whose marker
    /// existed already with a later time (for them `at` is in the document only). The
    /// store file needs none: its lock serialises writers.
    pub async fn mark_expiring(
        &self,
        service: &str,
        ids: &[KeyId],
        at: UnixTime,
        why: &str,
    ) -> Result<Vec<(KeyId, UnixTime)>, Error> {
        let Self::Ssm { store, region } = self else {
            return Ok(Vec::new());
        };
        let mut later = Vec::new();
        for id in ids {
            match store
                .put_expiry_marker(service, id, at, why)
                .await
                .map_err(|e| ssm_error(e, region))?
            {
                ExpiryMarked::Exists { at: marked } if marked > at => {
                    later.push((id.clone(), marked))
                }
                _ => {}
            }
        }
        Ok(later)
    }

    /// Creates `service`'s brake marker at `at` (create-only): from the moment this
    /// returns, every standing read refuses the service's tokens issued before `at`.
    /// Returns the marker's name (`None` for the store file, which needs none).
    pub async fn mark_brake(
        &self,
        service: &str,
        at: UnixTime,
        why: &str,
    ) -> Result<Option<String>, Error> {
        let Self::Ssm { store, region } = self else {
            return Ok(None);
        };
        store
            .put_brake_marker(service, at, why)
            .await
            .map_err(|e| ssm_error(e, region))?;
        Ok(Some(store.brake_marker_name(service, at)))
    }

    /// Which of `ids` have a revocation marker (none in a store file).
    pub async fn revoked_among(&self, ids: &[KeyId]) -> Result<HashSet<KeyId>, Error> {
        Ok(self.markers_among(ids).await?.revoked)
    }

    /// The markers of `ids`: revocations and scheduled ends (none in a store file).
    pub async fn markers_among(&self, ids: &[KeyId]) -> Result<Markers, Error> {
        match self {
            Self::Ssm { store, region } => store
                .markers_among(ids)
                .await
                .map_err(|e| ssm_error(e, region)),
            Self::File(_) => Ok(Markers::default()),
        }
    }

    /// Where a key's revocation marker is, for messages.
    pub fn marker_name(&self, id: &KeyId) -> Option<String> {
        match self {
            Self::Ssm { store, .. } => Some(store.marker_name(id)),
            Self::File(_) => None,
        }
    }

    /// Applies an idempotent `change` to `service`'s document (a new, empty one when it
    /// has none) and writes it without losing a concurrent write. An error from
    /// `change` aborts without writing.
    pub async fn update_document<F>(&self, service: &str, mut change: F) -> Result<Written, Error>
    where
        F: FnMut(&mut ServiceDocument) -> Result<(), Error>,
    {
        match self {
            Self::Ssm { store, region } => {
                // keystore-ssm merges and retries at once, up to 8 times; when many
                // writers hit one service together they can keep overtaking each
                // other. `change` is idempotent, so run the whole update again after
                // a random pause that spreads the writers out.
                let mut round = 0u32;
                loop {
                    match store.update_document(service, &mut change).await {
                        Ok(outcome) => {
                            let outcome = outcome?;
                            return Ok(Written {
                                index_warning: index_warning(
                                    &outcome.document.service,
                                    &outcome.index,
                                ),
                                document: outcome.document,
                                merged_conflicts: outcome.merged_conflicts,
                                retried_rounds: round,
                            });
                        }
                        Err(SsmStoreError::TooManyConflicts(_)) if round < SSM_CONFLICT_ROUNDS => {
                            round += 1;
                            tokio::time::sleep(jitter(Duration::from_millis(200) * round)).await;
                        }
                        Err(e) => return Err(ssm_error(e, region)),
                    }
                }
            }
            Self::File(f) => f.update(service, change).await,
        }
    }
}

/// What to tell the operator when a document's key id index entries were not all
/// written: the keys work either way (the authorizer's full load answers them).
fn index_warning(
    service: &str,
    index: &Result<keystore_ssm::IndexOutcome, String>,
) -> Option<String> {
    match index {
        Err(e) => Some(format!(
            "the key id index of {service} could not be written ({e}); its keys still work, through the authorizer's full load (more SSM calls per cold start): run `svcauth keys reindex` once SSM answers"
        )),
        Ok(out) if !out.conflicts.is_empty() => Some(format!(
            "key id index entries of {service} name another service and were left alone: {}; those keys are answered through the authorizer's full load only. Run `svcauth keys reindex --dry-run` to list them",
            out.conflicts
                .iter()
                .map(|(id, other)| format!("{id} -> {other:?}"))
                .collect::<Vec<_>>()
                .join(", ")
        )),
        Ok(_) => None,
    }
}

impl Store {
    /// The key id index entries `doc` lacks, written unless `dry_run` (SSM only: the
    /// store file needs no index, the authorizer reads it whole).
    pub async fn reindex(&self, doc: &ServiceDocument, dry_run: bool) -> Result<Reindexed, Error> {
        let Self::Ssm { store, region } = self else {
            return Ok(Reindexed::default());
        };
        let ids: Vec<KeyId> = doc.keys.iter().map(|k| k.key_id.clone()).collect();
        if dry_run {
            let mut out = Reindexed::default();
            for (id, found) in store
                .index_entries(&ids)
                .await
                .map_err(|e| ssm_error(e, region))?
            {
                match found {
                    None => out.missing.push(id),
                    Some(s) if s == doc.service => {}
                    Some(other) => out.conflicts.push((id, other)),
                }
            }
            return Ok(out);
        }
        let done = store
            .ensure_index(doc)
            .await
            .map_err(|e| ssm_error(e, region))?;
        Ok(Reindexed {
            missing: done.created,
            conflicts: done.conflicts,
        })
    }
}

/// keystore-ssm's errors, with the next step spelled out for the SDK failures an
/// operator meets most: no credentials, SSM unreachable.
pub(crate) fn ssm_error(e: SsmStoreError, region: &str) -> Error {
    let SsmStoreError::Sdk {
        operation,
        name,
        message,
    } = e
    else {
        return Error::Ssm(e);
    };
    let hint = if message.contains("credential") {
        "no usable AWS credentials: run `aws sso login`, pick a profile with --profile / AWS_PROFILE, or set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
    } else if message.contains("dispatch failure")
        || message.contains("timeout")
        || message.contains("timed out")
    {
        "SSM could not be reached: check the network, the region (--region / AWS_REGION) and AWS_ENDPOINT_URL"
    } else {
        "SSM refused the call: check the region, the credentials and --path"
    };
    // The SDK appends a Debug dump after the readable part: keep the readable part.
    let first = message.lines().next().unwrap_or_default();
    let short = first.split(" (DispatchFailure(").next().unwrap_or(first);
    Error::Aws(format!(
        "{hint}
({operation} on {name} in region {region}: {short})"
    ))
}

/// A random pause between `max / 2` and `max`, from std's randomly keyed hasher (no
/// extra dependency; this only spreads writers out, nothing secret).
fn jitter(max: Duration) -> Duration {
    use std::hash::{BuildHasher, Hasher};
    let r = std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish();
    let half = max.as_millis() as u64 / 2;
    Duration::from_millis(half + r % (half + 1))
}

/// A JSON array of service documents on disk: the `SVCAUTH_KEY_SOURCE=file` format.
///
/// Writers take `{file}.lock` (created with `create_new`, so exactly one writer holds
/// it), read, change, validate the whole store and replace the file by an atomic
/// rename: readers (the authorizer) see the old or the new file, never half of one.
#[derive(Debug, Clone)]
pub struct FileStore {
    path: PathBuf,
}

impl FileStore {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self { path: path.into() }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn read_all(&self) -> Result<Vec<ServiceDocument>, Error> {
        let json = match fs::read_to_string(&self.path) {
            Ok(s) => s,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => {
                return Err(Error::Store(format!(
                    "reading {}: {e}",
                    self.path.display()
                )))
            }
        };
        parse_documents(&json).map_err(|e| {
            Error::Store(format!(
                "{} is not a valid store file (a JSON array of service documents): {e}; fix or restore it",
                self.path.display()
            ))
        })
    }

    async fn update<F>(&self, service: &str, mut change: F) -> Result<Written, Error>
    where
        F: FnMut(&mut ServiceDocument) -> Result<(), Error>,
    {
        let _lock = FileLock::acquire(&self.path).await?;
        let mut docs = self.read_all()?;
        let index = docs.iter().position(|d| d.service == service);
        let mut doc = match index {
            Some(i) => docs[i].clone(),
            None => ServiceDocument::new(service, Vec::new()),
        };
        change(&mut doc)?;
        doc.validate().map_err(|e| {
            Error::Store(format!(
                "the change would make {service}'s document invalid: {e}"
            ))
        })?;
        match index {
            Some(i) => docs[i] = doc.clone(),
            None => docs.push(doc.clone()),
        }
        // The authorizer refuses the whole file if any part is wrong: never write one.
        KeyStore::build(&docs, &[]).map_err(|e| {
            Error::Store(format!(
                "the change would make {} unusable: {e}",
                self.path.display()
            ))
        })?;
        self.replace(&docs)?;
        Ok(Written {
            document: doc,
            merged_conflicts: 0,
            retried_rounds: 0,
            index_warning: None,
        })
    }

    fn replace(&self, docs: &[ServiceDocument]) -> Result<(), Error> {
        let name = self
            .path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let tmp = self
            .path
            .with_file_name(format!(".{name}.svcauth-{}.tmp", std::process::id()));
        let json = serde_json::to_string_pretty(docs).unwrap_or_default() + "\n";
        let written = (|| {
            let mut f = fs::File::create(&tmp)?;
            f.write_all(json.as_bytes())?;
            f.sync_all()?;
            fs::rename(&tmp, &self.path)
        })();
        written.map_err(|e| {
            let _ = fs::remove_file(&tmp);
            Error::Store(format!(
                "writing {}: {e}; check that its directory exists and is writable",
                self.path.display()
            ))
        })
    }
}

/// `{file}.lock`, held while one writer changes the file; removed on drop.
struct FileLock {
    path: PathBuf,
}

impl FileLock {
    async fn acquire(store: &Path) -> Result<Self, Error> {
        let mut path = store.as_os_str().to_owned();
        path.push(".lock");
        let path = PathBuf::from(path);
        let started = Instant::now();
        let mut pause = Duration::from_millis(5);
        loop {
            match OpenOptions::new().write(true).create_new(true).open(&path) {
                Ok(mut f) => {
                    let _ = writeln!(f, "{}", std::process::id());
                    return Ok(Self { path });
                }
                Err(e) if e.kind() == ErrorKind::AlreadyExists => {
                    if started.elapsed() > FILE_LOCK_WAIT {
                        return Err(Error::Store(format!(
                            "{} has been locked for {}s by another svcauth writing the store; if none is running, delete the lock file and try again",
                            path.display(),
                            FILE_LOCK_WAIT.as_secs()
                        )));
                    }
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_millis(100));
                }
                Err(e) => {
                    return Err(Error::Store(format!(
                        "cannot create the lock file {}: {e}; check that the store's directory exists and is writable",
                        path.display()
                    )))
                }
            }
        }
    }
}

impl Drop for FileLock {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmp_path(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("svcauth-store-{}-{name}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        dir.join("keys.json")
    }

    #[tokio::test]
    async fn a_missing_file_is_an_empty_store_and_the_first_write_creates_it() {
        let path = tmp_path("create");
        let _ = fs::remove_file(&path);
        let store = FileStore::new(&path);
        assert!(store.read_all().unwrap().is_empty());
        store
            .update("svc", |d| {
                d.grant("identity", &["GET /x".into()]);
                Ok(())
            })
            .await
            .unwrap();
        let docs = parse_documents(&fs::read_to_string(&path).unwrap()).unwrap();
        assert_eq!(docs.len(), 1);
        assert!(
            !Path::new(&format!("{}.lock", path.display())).exists(),
            "lock released"
        );
        let _ = fs::remove_dir_all(path.parent().unwrap());
    }

    #[tokio::test]
    async fn an_invalid_change_writes_nothing_and_releases_the_lock() {
        let path = tmp_path("invalid");
        fs::write(&path, "[]").unwrap();
        let store = FileStore::new(&path);
        let err = store
            .update("svc", |d| {
                d.grant("identity", &["nope".into()]);
                Ok(())
            })
            .await
            .unwrap_err();
        assert!(err.to_string().contains("invalid"), "{err}");
        assert_eq!(fs::read_to_string(&path).unwrap(), "[]");
        store.update("svc", |_| Ok(())).await.unwrap();
        let _ = fs::remove_dir_all(path.parent().unwrap());
    }
}
