/*!
The end-to-end harness: the local gateway (`local-gateway`) started in process on a free
127.0.0.1 port with the real authorizer and the real identity-service and
tutor-service, a clock the test moves by hand (the gateway's result cache, the
authorizer's store cache and SigV4 dates all read it), the access log and the
functions' log output captured, and plain HTTP calls.
*/
#![forbid(unsafe_code)]

use std::io::Write;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use local_gateway::client::request;
use local_gateway::http::Response;
use local_gateway::services::RealFunctions;
use local_gateway::{default_template, start, LocalCredentials, Options, Running};
use serde_json::Value;
use service_auth::UnixTime;

/// 2026-11-29T12:00:00Z, after the development store's expired key expired.
pub const NOW: u64 = 1_795_953_600;
/// A user of dev/dev-users.json.
pub const STUDENT: &str = "6b1f0c52-3f0e-4a8e-9d55-2f1f4c3c9a10";
pub const TUTOR_AKID: &str = "AKIAIOSFODNN7EXAMPLE";
pub const ADMIN_AKID: &str = "AKIAI44QH8DHBEXAMPLE";

pub use test_support::TestClock;

/// Where the authorizer's keys come from.
pub enum Keys {
    /// The embedded development store.
    Dev,
    /// A store file (`SVCAUTH_KEY_SOURCE=file`) with this store TTL.
    File { path: PathBuf, store_ttl_secs: u64 },
}

/// A running gateway with the real functions.
pub struct E2e {
    pub gw: Running,
    pub clock: TestClock,
    access_log: Arc<Mutex<Vec<String>>>,
}

impl E2e {
    pub async fn start(keys: Keys) -> Self {
        Self::start_with(keys, |_| {}).await
    }

    /// Starts with the real functions changed by `customize` first.
    pub async fn start_with(keys: Keys, customize: impl FnOnce(&mut RealFunctions)) -> Self {
        Self::start_in_mode("both", keys, customize).await
    }

    /// Starts with the template's `AuthMode` set to `mode` (`token`, `key-or-token`...).
    pub async fn start_in_mode(
        mode: &str,
        keys: Keys,
        customize: impl FnOnce(&mut RealFunctions),
    ) -> Self {
        let clock = TestClock::at(NOW);
        let access_log: Arc<Mutex<Vec<String>>> = Arc::default();
        let mut o = Options::new(default_template());
        o.bind = "127.0.0.1:0".parse().unwrap();
        o.clock = clock.unix_clock();
        o.env.parameters.insert("AuthMode".into(), mode.into());
        let sink = access_log.clone();
        o.access_log = Arc::new(move |l| sink.lock().unwrap().push(l.to_owned()));
        let mut functions = RealFunctions::dev(clock.unix_clock());
        if let Keys::File {
            path,
            store_ttl_secs,
        } = &keys
        {
            let path = path.display().to_string();
            let ttl = store_ttl_secs.to_string();
            functions.authorizer_env = Arc::new(move |k| match k {
                "SVCAUTH_KEY_SOURCE" => Some("file".into()),
                "SVCAUTH_KEYS_FILE" => Some(path.clone()),
                "SVCAUTH_CACHE_TTL_SECS" => Some(ttl.clone()),
                "SVCAUTH_API_NAMES" => Some(local_gateway::services::LOCAL_API_NAMES.into()),
                _ => None,
            });
        }
        customize(&mut functions);
        let gw = start(o, &functions).await.expect("the gateway starts");
        Self {
            gw,
            clock,
            access_log,
        }
    }

    /// The path part of an API's URL plus `path`: `/identitykey/v1/internal/...`.
    pub fn target(&self, api: &str, path: &str) -> String {
        let base = self.gw.url(api);
        let (_, prefix) = base.split_once(&self.gw.addr().to_string()).unwrap();
        format!("{prefix}{path}")
    }

    pub async fn call(
        &self,
        method: &str,
        api: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Response {
        request(
            self.gw.addr(),
            method,
            &self.target(api, path),
            headers,
            body,
        )
        .await
        .expect("the gateway answers")
    }

    /// `GET /internal/users/{STUDENT}` on the key API with `key`.
    pub async fn get_student(&self, key: Option<&str>) -> Response {
        let headers: Vec<(&str, &str)> =
            key.map(|k| ("x-service-api-key", k)).into_iter().collect();
        self.call(
            "GET",
            "IdentityKeyApi",
            &format!("/internal/users/{STUDENT}"),
            &headers,
            b"",
        )
        .await
    }

    /// A SigV4-signed call with the development credentials of `akid`, signed at the
    /// gateway's clock.
    pub async fn call_signed(
        &self,
        akid: &str,
        method: &str,
        api: &str,
        path: &str,
        body: &[u8],
    ) -> Response {
        let creds = LocalCredentials::dev()
            .credentials(akid)
            .expect("a development access key");
        let target = self.target(api, path);
        let mut headers = vec![
            ("Host".to_owned(), self.gw.addr().to_string()),
            ("Content-Type".to_owned(), "application/json".to_owned()),
        ];
        local_gateway::sigv4::sign_headers(
            method,
            &target,
            &mut headers,
            body,
            &creds,
            "us-east-1",
            UnixTime(self.clock.now()),
        )
        .unwrap();
        let hs: Vec<(&str, &str)> = headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        request(self.gw.addr(), method, &target, &hs, body)
            .await
            .unwrap()
    }

    /// Access log lines so far, parsed.
    pub fn access_log(&self) -> Vec<Value> {
        self.access_log
            .lock()
            .unwrap()
            .iter()
            .map(|l| serde_json::from_str(l).expect("an access log line is JSON"))
            .collect()
    }

    pub fn last_access_log(&self) -> Value {
        self.access_log().pop().expect("no access log line")
    }
}

/// The development keys (dev/dev-keys.json), by name.
pub fn dev_key(name: &str) -> String {
    local_gateway::services::dev_keys()
        .remove(name)
        .unwrap_or_else(|| panic!("no development key {name}"))
}

pub fn json(r: &Response) -> Value {
    serde_json::from_slice(&r.body)
        .unwrap_or_else(|_| panic!("not JSON: {}", String::from_utf8_lossy(&r.body)))
}

/// Everything the functions log (JSON lines, as with AWS_LAMBDA_LOG_FORMAT=json),
/// captured for the whole test binary.
#[derive(Clone, Default)]
pub struct Logs(Arc<Mutex<Vec<u8>>>);

struct LogWriter(Arc<Mutex<Vec<u8>>>);

impl Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Logs {
    /// Installs the capture (once per test binary) and returns it.
    pub fn capture() -> Logs {
        static LOGS: OnceLock<Logs> = OnceLock::new();
        LOGS.get_or_init(|| {
            let logs = Logs::default();
            let buf = logs.0.clone();
            tracing_subscriber::fmt()
                .json()
                .with_env_filter(tracing_subscriber::EnvFilter::new("info"))
                .with_writer(move || LogWriter(buf.clone()))
                .init();
            logs
        })
        .clone()
    }

    /// Log lines (parsed) whose text contains `needle`.
    pub fn lines_with(&self, needle: &str) -> Vec<Value> {
        let text = String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned();
        text.lines()
            .filter(|l| l.contains(needle))
            .map(|l| serde_json::from_str(l).expect("a log line is JSON"))
            .collect()
    }
}

/// Waits a little for log lines written by tasks that may still be finishing.
pub async fn settle() {
    tokio::time::sleep(Duration::from_millis(50)).await;
}

/// A fresh directory under the system's temp dir, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(name: &str) -> Self {
        let mut b = [0u8; 8];
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        b.copy_from_slice(&(nanos as u64).to_le_bytes());
        let dir = std::env::temp_dir().join(format!(
            "svcauth-e2e-{name}-{}-{:x}",
            std::process::id(),
            u64::from_le_bytes(b)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Runs `svcauth` (the key management tool's library, as its binary does) at time
/// `now`; returns its stdout.
pub async fn svcauth(args: &[&str], now: UnixTime) -> String {
    use clap::Parser;
    let cli = svcauth::Cli::try_parse_from(std::iter::once("svcauth").chain(args.iter().copied()))
        .unwrap_or_else(|e| panic!("svcauth {args:?}: {e}"));
    let mut stdin: &[u8] = b"";
    let mut stdout = Vec::new();
    let mut stderr = Vec::new();
    let result = svcauth::run(
        &cli,
        &svcauth::Aws::FromEnvironment,
        now,
        &mut svcauth::Io {
            stdin: &mut stdin,
            stdout: &mut stdout,
            stderr: &mut stderr,
        },
    )
    .await;
    assert!(
        matches!(result, Ok(svcauth::Outcome::Done)),
        "svcauth {args:?}: {result:?}\n{}",
        String::from_utf8_lossy(&stderr)
    );
    String::from_utf8(stdout).unwrap()
}
