//! Shared by the authorizer's integration tests.
#![allow(dead_code)]

use std::path::PathBuf;
use std::time::Duration;

use authorizer::apis::parse_api_names;
use authorizer::{ApiNames, CachedStore, KeySource};
use serde_json::Value;
use service_auth::cache::RefreshPolicy;

/// 2026-11-29T12:00:00Z: after the dev store's expired key expired.
pub const NOW: u64 = 1_795_953_600;

pub fn repo_root() -> PathBuf {
    test_support::workspace_root()
}

pub fn read_json(path: &std::path::Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

pub fn event(name: &str) -> Value {
    read_json(&repo_root().join("events").join(format!("{name}.json")))
}

/// The clear development keys, by name.
pub fn dev_keys() -> Vec<(String, String)> {
    let v = read_json(&repo_root().join("dev/dev-keys.json"));
    v.as_object()
        .unwrap()
        .iter()
        .filter(|(k, _)| !k.starts_with('_'))
        .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_owned()))
        .collect()
}

pub fn dev_key(name: &str) -> String {
    dev_keys().into_iter().find(|(k, _)| k == name).unwrap().1
}

pub use test_support::TestClock;

/// A cached store over `source`, naming API ids as the development store does
/// (the sample events' `a1b2c3d4e5` is `identity`).
pub fn store(source: KeySource, clock: &TestClock) -> CachedStore {
    CachedStore::new(
        source,
        RefreshPolicy::default(),
        Duration::from_secs(30),
        clock.unix_clock(),
    )
    .with_api_names(ApiNames::fixed(
        parse_api_names(service_auth::dev::DEV_API_NAMES).unwrap(),
    ))
}

/// The development keys' hashes, read as a file (`dev/dev-store.json`), as every
/// local run reads them.
pub fn dev_store_file() -> PathBuf {
    repo_root().join("dev/dev-store.json")
}

pub fn dev_store() -> CachedStore {
    store(KeySource::File(dev_store_file()), &TestClock::at(NOW))
}

/// What the log subscriber of [`capture`] writes, kept for the test to read.
#[derive(Clone, Default)]
struct Buffer(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Buffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Runs `f` on a current-thread runtime with the JSON log format lambda_runtime
/// installs under AWS_LAMBDA_LOG_FORMAT=json, and returns its output and what was
/// logged.
pub fn capture<T, F: std::future::Future<Output = T>>(f: F) -> (T, String) {
    let buf = Buffer::default();
    let writer = buf.clone();
    let subscriber = tracing_subscriber::fmt()
        .json()
        .with_target(false)
        .without_time()
        .with_max_level(tracing::Level::DEBUG)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let out = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f);
    let logs = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
    (out, logs)
}

/// The log lines (each JSON) whose `event` field is `event`.
pub fn lines(logs: &str, event: &str) -> Vec<Value> {
    logs.lines()
        .map(|l| serde_json::from_str::<Value>(l).expect("every log line is JSON"))
        .filter(|v| v["fields"]["event"] == event)
        .collect()
}
