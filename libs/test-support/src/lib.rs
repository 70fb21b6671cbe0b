/*!
Test helpers shared by the workspace's integration tests.

[`MotoServer::start`] runs a real `moto_server` (the AWS protocol emulator from
`pip install "moto[server]"`) on a free port of 127.0.0.1 and stops it when dropped, so
tests exercise the real AWS SDK against a real protocol server and need nothing
started by hand. The binary is found through `MOTO_SERVER`, then the workspace's
`.venv/bin/moto_server` (made by `scripts/setup-tools.sh`), then `PATH`.

It does not install moto: a missing binary fails the test with the command to run.

[`TestClock`] is the hand-moved clock the cache and expiry tests share, and, with the
`ssm` feature, [`moto_ssm_client`] is an SSM client for a `MotoServer` and
[`SsmFaults`] one whose chosen operations fail the way SSM fails (access denied,
throttling) and that counts the calls it makes. With the `kms` feature,
[`moto_kms_client`] (or [`moto_kms_config`], to add retries or interceptors) is a KMS
client for a `MotoServer` and [`create_kms_key`] makes a key in it.

With the `tokens` feature, [`token_signer`] signs test tokens by hand (every
malformed shape can be made) with a P-256 key made by aws-lc-rs.

[`python_verify_es256`] checks a token with the workspace's independent verifier
(Python `cryptography`, OpenSSL), which shares no code with the Rust one.
*/
#![forbid(unsafe_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use service_auth::UnixTime;

#[cfg(feature = "tokens")]
pub mod token_signer;

#[cfg(feature = "ssm")]
mod faults;
#[cfg(feature = "ssm")]
pub use faults::{Fault, SsmFaults};

/// A running `moto_server`, killed on drop.
pub struct MotoServer {
    child: Child,
    addr: SocketAddr,
}

impl MotoServer {
    /// Starts a fresh server (empty state) and waits until it answers.
    pub fn start() -> Self {
        let bin = moto_binary();
        let port = free_port();
        let child = Command::new(&bin)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "could not start {} ({e}); run scripts/setup-tools.sh or set MOTO_SERVER",
                    bin.display()
                )
            });
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let server = Self { child, addr };
        server.wait_ready(Duration::from_secs(30));
        server
    }

    /// `http://127.0.0.1:PORT`, for `AWS_ENDPOINT_URL` / `endpoint_url`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Points the AWS SDK's default configuration of this whole process at this
    /// server: `AWS_ENDPOINT_URL`, region us-east-1 and dummy credentials in the
    /// environment. Only for a test binary that holds one test: nothing else may read
    /// the environment meanwhile.
    pub fn point_process_sdk_here(&self) {
        std::env::set_var("AWS_ENDPOINT_URL", self.endpoint());
        std::env::set_var("AWS_REGION", "us-east-1");
        std::env::set_var("AWS_ACCESS_KEY_ID", "test");
        std::env::set_var("AWS_SECRET_ACCESS_KEY", "test");
    }

    /// Stops the server now (to simulate AWS going away mid-test).
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    fn wait_ready(&self, limit: Duration) {
        let start = Instant::now();
        while start.elapsed() < limit {
            if let Ok(mut s) = TcpStream::connect_timeout(&self.addr, Duration::from_millis(200)) {
                let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
                let req = format!(
                    "GET /moto-api/ HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
                    self.addr
                );
                if s.write_all(req.as_bytes()).is_ok() {
                    let mut buf = [0u8; 12];
                    if s.read_exact(&mut buf).is_ok() && buf.starts_with(b"HTTP/1.") {
                        return;
                    }
                }
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!(
            "moto_server did not answer on {} within {limit:?}",
            self.addr
        );
    }
}

impl Drop for MotoServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A port that was free a moment ago on 127.0.0.1.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("no free port on 127.0.0.1")
}

/// The workspace root (where `Cargo.lock` is).
pub fn workspace_root() -> PathBuf {
    let mut dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    while !dir.join("Cargo.lock").exists() {
        if !dir.pop() {
            return PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        }
    }
    dir
}

fn moto_binary() -> PathBuf {
    if let Some(p) = std::env::var_os("MOTO_SERVER") {
        return PathBuf::from(p);
    }
    let venv = workspace_root().join(".venv/bin/moto_server");
    if venv.exists() {
        return venv;
    }
    Path::new("moto_server").to_path_buf()
}

/// A clock the test moves by hand, in seconds since the Unix epoch. Clones share
/// one time: the code under test reads a clone, the test moves another.
#[derive(Clone, Debug)]
pub struct TestClock(Arc<AtomicU64>);

impl TestClock {
    pub fn at(t: u64) -> Self {
        Self(Arc::new(AtomicU64::new(t)))
    }
    pub fn now(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }
    pub fn set(&self, t: u64) {
        self.0.store(t, Ordering::SeqCst)
    }
    pub fn advance(&self, secs: u64) {
        self.0.fetch_add(secs, Ordering::SeqCst);
    }
    /// The clock the authorizer and the local gateway take (`authorizer::Clock`),
    /// reading this one.
    pub fn unix_clock(&self) -> Arc<dyn Fn() -> UnixTime + Send + Sync> {
        let t = self.clone();
        Arc::new(move || UnixTime(t.now()))
    }
}

/// An SSM client for a [`MotoServer`] endpoint: fixed test credentials, one attempt
/// and a generous timeout (moto's first call can take seconds).
#[cfg(feature = "ssm")]
pub fn moto_ssm_client(endpoint: &str) -> aws_sdk_ssm::Client {
    aws_sdk_ssm::Client::from_conf(moto_ssm_config(endpoint).build())
}

#[cfg(feature = "ssm")]
fn moto_ssm_config(endpoint: &str) -> aws_sdk_ssm::config::Builder {
    moto_config!(aws_sdk_ssm, endpoint)
}

/// Writes `doc` as its service's document under `path` (`{path}/{service}`, a
/// SecureString, replacing what is there), without the key id index entries svcauth
/// also writes.
#[cfg(feature = "ssm")]
pub async fn put_service_document(
    ssm: &aws_sdk_ssm::Client,
    path: &str,
    doc: &service_auth::ServiceDocument,
) {
    ssm.put_parameter()
        .name(format!("{path}/{}", doc.service))
        .value(doc.to_json())
        .r#type(aws_sdk_ssm::types::ParameterType::SecureString)
        .overwrite(true)
        .send()
        .await
        .expect("moto PutParameter");
}

/// Writes `name` = `value` as a SecureString (overwriting): how svcauth writes what
/// verifiers trust beside the documents (an API's registry entry `{apis}/{apiId}`, the
/// token key set), for tests that set them up without svcauth.
#[cfg(feature = "ssm")]
pub async fn put_secure(ssm: &aws_sdk_ssm::Client, name: &str, value: &str) {
    ssm.put_parameter()
        .name(name)
        .value(value)
        .r#type(aws_sdk_ssm::types::ParameterType::SecureString)
        .overwrite(true)
        .send()
        .await
        .expect("moto PutParameter");
}

/// The configuration every SDK client of a [`MotoServer`] gets, for the SDK crate
/// `$sdk` (each crate has config types of its own): the endpoint, us-east-1, fixed
/// test credentials, one attempt and a generous timeout (moto's first call can take
/// seconds).
#[cfg(any(feature = "ssm", feature = "kms"))]
macro_rules! moto_config {
    ($sdk:ident, $endpoint:expr) => {{
        use $sdk::config::{retry::RetryConfig, timeout::TimeoutConfig};
        use $sdk::config::{BehaviorVersion, Credentials, Region};
        $sdk::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .endpoint_url($endpoint)
            .region(Region::new("us-east-1"))
            .credentials_provider(Credentials::new("testing", "testing", None, None, "test"))
            .timeout_config(
                TimeoutConfig::builder()
                    .operation_attempt_timeout(Duration::from_secs(30))
                    .build(),
            )
            .retry_config(RetryConfig::standard().with_max_attempts(1))
    }};
}
#[cfg(any(feature = "ssm", feature = "kms"))]
use moto_config;

/// A KMS client for a [`MotoServer`] endpoint: fixed test credentials, one attempt and
/// a generous timeout (moto's first call can take seconds).
#[cfg(feature = "kms")]
pub fn moto_kms_client(endpoint: &str) -> aws_sdk_kms::Client {
    aws_sdk_kms::Client::from_conf(moto_kms_config(endpoint).build())
}

/// The configuration of [`moto_kms_client`], for a test that sets its own retries or
/// adds an interceptor before building the client.
#[cfg(feature = "kms")]
pub fn moto_kms_config(endpoint: &str) -> aws_sdk_kms::config::Builder {
    moto_config!(aws_sdk_kms, endpoint)
}

/// Creates a KMS key of `spec` for `usage` and returns its key id (panics when KMS
/// refuses: test setup).
#[cfg(feature = "kms")]
pub async fn create_kms_key(
    kms: &aws_sdk_kms::Client,
    spec: aws_sdk_kms::types::KeySpec,
    usage: aws_sdk_kms::types::KeyUsageType,
) -> String {
    kms.create_key()
        .key_spec(spec)
        .key_usage(usage)
        .send()
        .await
        .expect("moto CreateKey")
        .key_metadata()
        .expect("CreateKey answers the key's metadata")
        .key_id()
        .to_owned()
}

/// Checks `token` against the key set `jwks` (JWKS JSON) with the independent verifier
/// `libs/token-kms/tests/verify_es256.py` (Python `cryptography`, OpenSSL) in the
/// workspace's `.venv`; its answer's first word is `valid` or `invalid:`.
pub fn python_verify_es256(token: &str, jwks: &serde_json::Value) -> String {
    let root = workspace_root();
    let python = root.join(".venv/bin/python");
    let script = root.join("libs/token-kms/tests/verify_es256.py");
    let mut child = Command::new(&python)
        .arg(&script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap_or_else(|e| {
            panic!(
                "could not run {} ({e}); run scripts/setup-tools.sh",
                python.display()
            )
        });
    let input = serde_json::json!({"token": token, "jwks": jwks}).to_string();
    child
        .stdin
        .take()
        .expect("piped stdin")
        .write_all(input.as_bytes())
        .expect("writing to verify_es256.py");
    let out = child.wait_with_output().expect("verify_es256.py ran");
    assert!(out.status.success(), "verify_es256.py failed");
    String::from_utf8(out.stdout)
        .expect("verify_es256.py answers UTF-8")
        .trim()
        .to_owned()
}
