//! Shared by svcauth's integration tests: run a command in-process with an injected
//! clock, SSM client and streams; drive the real authorizer against what it wrote.
#![allow(dead_code)]

use std::io::{self, Write};
use std::time::Duration;

use authorizer::{handle, AuthorizerResponse, CachedStore, KeySource, Unauthorized};
use clap::Parser;
use keystore_ssm::aws_sdk_ssm::Client;
use keystore_ssm::SsmKeyStore;
use serde_json::{json, Value};
use service_auth::cache::RefreshPolicy;
use service_auth::UnixTime;
use svcauth::{Aws, Cli, Io};

/// 2026-11-29T12:00:00Z.
pub const NOW: u64 = 1_795_953_600;
pub const PATH: &str = "/svcauth/test/keys";
pub const TUTOR_PERMS: &str = "GET /internal/users/*,GET /internal/users/by-email/*";

/// A command line split on whitespace, for arguments that hold no spaces.
pub fn words(line: &str) -> Vec<&str> {
    line.split_whitespace().collect()
}

/// `--env test --path PATH`, then `cmd`: a command on the test store in SSM.
pub fn args<'a>(cmd: &[&'a str]) -> Vec<&'a str> {
    let mut v = vec!["--env", "test", "--path", PATH];
    v.extend_from_slice(cmd);
    v
}

/// Runs `cmd` (on the test store, at `now`) on a thread and runtime of its own, with
/// the clients `clients` makes for `endpoint`: another operator's command, started
/// from a fault hook while this test's command waits between its read and its write.
pub fn run_elsewhere(cmd: String, endpoint: String, clients: fn(&str) -> Aws, now: u64) -> Run {
    std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(svcauth(&args(&words(&cmd)), &clients(&endpoint), now))
    })
    .join()
    .unwrap()
}

/// `keys create --service tutor-service --permissions TUTOR_PERMS --api identity`, then
/// `extra`.
pub fn create_tutor<'a>(extra: &[&'a str]) -> Vec<&'a str> {
    let mut v = vec![
        "keys",
        "create",
        "--service",
        "tutor-service",
        "--permissions",
        TUTOR_PERMS,
        "--api",
        "identity",
    ];
    v.extend_from_slice(extra);
    v
}

pub use test_support::moto_ssm_client as moto_client;

/// `keys revoke --service SERVICE --key-id ID`, then `extra`.
pub fn revoke_key<'a>(service: &'a str, key_id: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut v = vec!["keys", "revoke", "--service", service, "--key-id", key_id];
    v.extend_from_slice(extra);
    v
}

/// A moto_server of the test's own, an SSM client for it and the [`Aws`] that hands
/// that client to svcauth: what every SSM test starts with. Keep the server bound
/// (`_moto`) for as long as the test runs.
pub fn moto_ssm() -> (test_support::MotoServer, Client, Aws) {
    let moto = test_support::MotoServer::start();
    let client = moto_client(&moto.endpoint());
    let aws = Aws::Client(client.clone());
    (moto, client, aws)
}

/// The original design's map of clear key to service, written as its SecureString
/// parameter `name` (what `keys import-legacy --from-parameter` reads).
pub async fn put_legacy_map(client: &Client, name: &str, entries: &[(&str, &str)]) {
    let map: serde_json::Map<String, Value> = entries
        .iter()
        .map(|(key, service)| (key.to_string(), json!(service)))
        .collect();
    client
        .put_parameter()
        .name(name)
        .value(Value::Object(map).to_string())
        .r#type(keystore_ssm::aws_sdk_ssm::types::ParameterType::SecureString)
        .send()
        .await
        .unwrap();
}

/// tutor-service's key from [`create_tutor`] with `--deliver stdout` at `now`,
/// asserting it was made.
pub async fn new_tutor_key(aws: &Aws, now: u64) -> String {
    let run = svcauth(&args(&create_tutor(&["--deliver", "stdout"])), aws, now).await;
    expect(&run, svcauth::exit::OK);
    run.delivered_key()
}

/// What one command did.
#[derive(Debug)]
pub struct Run {
    pub code: u8,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// The only line on stdout: the key a `--deliver stdout` printed.
    pub fn delivered_key(&self) -> String {
        let lines: Vec<&str> = self.stdout.lines().collect();
        assert_eq!(lines.len(), 1, "stdout holds exactly the key: {self:?}");
        lines[0].to_owned()
    }
}

/// Runs `svcauth ARGS` in-process at time `now`, with `stdin` as its input.
pub async fn svcauth_with<W: Write + Send>(
    args: &[&str],
    aws: &Aws,
    now: u64,
    stdin: &str,
    stdout: &mut W,
) -> (u8, String) {
    let cli = match Cli::try_parse_from(std::iter::once("svcauth").chain(args.iter().copied())) {
        Ok(c) => c,
        Err(e) => return (svcauth::exit::USAGE, e.to_string()),
    };
    let mut input = io::Cursor::new(stdin.as_bytes().to_vec());
    let mut err = Vec::new();
    let mut io = Io {
        stdin: &mut input,
        stdout,
        stderr: &mut err,
    };
    let result = svcauth::run(&cli, aws, UnixTime(now), &mut io).await;
    let mut stderr = String::from_utf8(err).unwrap();
    if let Err(e) = &result {
        stderr.push_str(&format!("error: {e}\n"));
    }
    (svcauth::exit_code(&result), stderr)
}

pub async fn svcauth(args: &[&str], aws: &Aws, now: u64) -> Run {
    svcauth_stdin(args, aws, now, "").await
}

pub async fn svcauth_stdin(args: &[&str], aws: &Aws, now: u64, stdin: &str) -> Run {
    let mut out = Vec::new();
    let (code, stderr) = svcauth_with(args, aws, now, stdin, &mut out).await;
    Run {
        code,
        stdout: String::from_utf8(out).unwrap(),
        stderr,
    }
}

/// Asserts a command's exit code, showing its output when it differs.
#[track_caller]
pub fn expect(run: &Run, code: u8) {
    assert_eq!(run.code, code, "{run:#?}");
}

pub use test_support::TestClock;

/// The real authorizer over a key source, with the production refresh policy
/// (300 s cache TTL) and the test's clock.
/// The authorizer over `source`, naming API ids as the development store does (the
/// sample event's `a1b2c3d4e5` is `identity`).
pub fn authorizer(source: KeySource, clock: &TestClock) -> CachedStore {
    CachedStore::new(
        source,
        RefreshPolicy::default(),
        Duration::from_secs(30),
        clock.unix_clock(),
    )
    .with_api_names(authorizer::ApiNames::fixed(
        authorizer::apis::parse_api_names(service_auth::dev::DEV_API_NAMES).unwrap(),
    ))
}

pub fn ssm_authorizer(client: &Client, clock: &TestClock) -> CachedStore {
    authorizer(
        KeySource::Ssm(SsmKeyStore::new(client.clone(), PATH).unwrap()),
        clock,
    )
}

/// A REST REQUEST authorizer event for `GET /internal/users/42` with `key`.
pub fn request(key: &str) -> Value {
    let path = test_support::workspace_root().join("events/authorizer-valid-key.json");
    let mut ev: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    ev["headers"]["x-service-api-key"] = json!(key);
    ev["multiValueHeaders"]["x-service-api-key"] = json!([key]);
    ev
}

pub async fn authorize(store: &CachedStore, key: &str) -> Result<AuthorizerResponse, Unauthorized> {
    handle(store, &request(key))
        .await
        .map(AuthorizerResponse::from)
}

/// Asserts the authorizer lets `key` in as `service`, on a route tutor-service may call.
pub async fn assert_accepted(store: &CachedStore, key: &str, service: &str) {
    let resp = authorize(store, key)
        .await
        .unwrap_or_else(|_| panic!("the authorizer refused a key of {service}"));
    assert_eq!(resp.principal_id.as_deref(), Some(service));
}

pub async fn assert_refused(store: &CachedStore, key: &str) {
    assert!(
        authorize(store, key).await.is_err(),
        "the authorizer accepted a key it should refuse"
    );
}

/// A parameter's decrypted value.
pub async fn read_param(client: &Client, name: &str) -> String {
    client
        .get_parameter()
        .name(name)
        .with_decryption(true)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{name}: {e}"))
        .parameter()
        .and_then(|p| p.value())
        .unwrap()
        .to_owned()
}

/// Every parameter in moto: (name, decrypted value, type).
pub async fn all_params(client: &Client) -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    let mut pages = client
        .get_parameters_by_path()
        .path("/")
        .recursive(true)
        .with_decryption(true)
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        for p in page.unwrap().parameters() {
            out.push((
                p.name().unwrap().to_owned(),
                p.value().unwrap().to_owned(),
                p.r#type()
                    .map(|t| t.as_str().to_owned())
                    .unwrap_or_default(),
            ));
        }
    }
    out
}

/// The key id printed for a key, read back from `keys list --json`.
pub fn key_ids(list_json: &str, service: &str) -> Vec<String> {
    let rows: Vec<Value> = serde_json::from_str(list_json).unwrap();
    rows.iter()
        .filter(|r| r["service"] == service)
        .map(|r| r["keyId"].as_str().unwrap().to_owned())
        .collect()
}

/// The non-secret key id of a clear key.
pub fn key_id(key: &str) -> String {
    service_auth::ApiKey::parse(key)
        .unwrap()
        .key_id()
        .to_string()
}

/// A temporary directory of its own for one test, removed on drop.
pub struct TempDir(pub std::path::PathBuf);

impl TempDir {
    pub fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("svcauth-test-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }
    pub fn path(&self, file: &str) -> String {
        self.0.join(file).display().to_string()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// SSM and KMS clients for a `MotoServer` endpoint.
pub fn moto_clients(endpoint: &str) -> Aws {
    Aws::Clients {
        ssm: moto_client(endpoint),
        kms: test_support::moto_kms_client(endpoint),
    }
}

/// What API Gateway does with the returned policy for this method ARN: an explicit
/// Deny wins, else an Allow must match.
pub fn gateway_allows(resp: &AuthorizerResponse, arn: &str) -> bool {
    // Read back from the JSON API Gateway receives.
    let policy = serde_json::to_value(resp).unwrap()["policyDocument"].clone();
    let statements = policy["Statement"].as_array().cloned().unwrap_or_default();
    let matching = |effect: &str| {
        statements.iter().any(|s| {
            s["Effect"] == effect
                && s["Resource"].as_array().into_iter().flatten().any(|r| {
                    service_auth::permissions::wildcard_match(
                        r.as_str().unwrap_or("").as_bytes(),
                        arn.as_bytes(),
                    )
                })
        })
    };
    !matching("Deny") && matching("Allow")
}
