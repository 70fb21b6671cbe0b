//! The binary as a new user runs it: `--help` names every option, and the `curl`
//! lines it prints at start work as written (run through `sh`, with the system's
//! `curl`), each with the status it announces.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_local-gateway");

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn help_names_every_option() {
    let out = Command::new(BIN).arg("--help").output().unwrap();
    assert!(out.status.success());
    let help = String::from_utf8(out.stdout).unwrap();
    for opt in [
        "--port",
        "--auth-mode",
        "--template",
        "--parameter",
        "--region",
        "--authorizer-ttl",
        "--key-source",
        "--keys-file",
        "--store-ttl",
        "--credentials",
        "--users",
        "--users-table",
        "--log-format",
        "[default: 3000]",
        "[default: both]",
    ] {
        assert!(help.contains(opt), "--help does not mention {opt}:\n{help}");
    }
    let out = Command::new(BIN)
        .args(["--auth-mode", "sometimes"])
        .output()
        .unwrap();
    assert!(!out.status.success());
}

/// Starts the binary on a free port; returns it and its start-up text.
fn start(args: &[&str]) -> (Killed, String, mpsc::Receiver<String>) {
    let port = test_support::free_port().to_string();
    let child = Command::new(BIN)
        .args(["--port", &port])
        .args(args)
        .env_remove("SVCAUTH_KEY_SOURCE")
        .env_remove("USERS_TABLE")
        .env_remove("SVCAUTH_KEYS_FILE")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut child = Killed(child);
    let stdout = child.0.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { return };
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    let mut banner = String::new();
    loop {
        let line = rx
            .recv_timeout(Duration::from_secs(60))
            .unwrap_or_else(|_| panic!("no start-up text; so far:\n{banner}"));
        banner.push_str(&line);
        banner.push('\n');
        if line.contains("Ctrl-C stops") {
            break;
        }
    }
    (child, banner, rx)
}

#[test]
fn the_printed_curl_lines_work_as_written() {
    let (_child, banner, access_log) = start(&[]);
    let examples = local_gateway::banner::parse_examples(&banner);
    assert!(examples.len() >= 8, "{banner}");
    assert!(banner.contains("--aws-sigv4"), "{banner}");
    let mut statuses = Vec::new();
    for (expect, command) in &examples {
        let out = Command::new("sh")
            .args(["-c", &format!("{command} -sS --max-time 10")])
            .output()
            .expect("sh and curl are needed to run the printed lines");
        let text = String::from_utf8_lossy(&out.stdout);
        let status: u16 = text
            .lines()
            .next()
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                panic!(
                    "{command}\nprinted no status line: {text}{}",
                    String::from_utf8_lossy(&out.stderr)
                )
            });
        assert_eq!(status, *expect, "{command}\n{text}");
        statuses.push(status);
    }
    assert!(statuses.contains(&200) && statuses.contains(&401) && statuses.contains(&403));
    // One access log line per call at least (the chain example makes two).
    let mut lines = Vec::new();
    while let Ok(l) = access_log.recv_timeout(Duration::from_secs(2)) {
        if l.trim().is_empty() {
            continue;
        }
        lines.push(l);
        if lines.len() > examples.len() {
            break;
        }
    }
    assert!(lines.len() > examples.len(), "{lines:#?}");
    for l in &lines {
        let v: serde_json::Value = serde_json::from_str(l).unwrap();
        assert!(v["requestId"].as_str().unwrap().len() == 36, "{l}");
    }
}

/// Issue 19 B5: the route listing docs/local.md shows is what the gateway prints (it
/// said `ServiceKeyAuthorizer` where the gateway printed `both on x-service-api-key`).
#[test]
fn the_route_listing_is_the_one_docs_local_md_shows() {
    let (_child, banner, _log) = start(&[]);
    let port = banner
        .split("127.0.0.1:")
        .nth(1)
        .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
        .unwrap()
        .to_owned();
    let docs =
        std::fs::read_to_string(test_support::workspace_root().join("docs/local.md")).unwrap();
    let routes: Vec<&str> = docs
        .lines()
        .filter(|l| l.starts_with("    ") && l.contains("  -> "))
        .collect();
    assert!(routes.len() >= 5, "{routes:#?}");
    for line in routes {
        let here = line.replace("127.0.0.1:3000", &format!("127.0.0.1:{port}"));
        assert!(
            banner.lines().any(|l| l == here),
            "docs/local.md shows a route line the gateway does not print:\n{line}\n{banner}"
        );
    }
}

/// Issue 19 B5: with `--auth-mode iam` no route takes a key: no development keys.
#[test]
fn iam_mode_lists_no_development_keys() {
    let (_child, banner, _log) = start(&["--auth-mode", "iam"]);
    assert!(!banner.contains("Development keys"), "{banner}");
    assert!(!banner.contains("svcauth_dev_"), "{banner}");
    assert!(
        banner.contains("unused: no internal API of this AuthMode takes a key or a token"),
        "{banner}"
    );
}

#[test]
fn api_key_mode_serves_only_the_key_apis() {
    let (_child, banner, _log) = start(&["--auth-mode", "api-key", "--authorizer-ttl", "0"]);
    assert!(banner.contains("/identitykey/v1"), "{banner}");
    assert!(!banner.contains("/identityiam/v1"), "{banner}");
    assert!(!banner.contains("--aws-sigv4"), "{banner}");
    assert!(banner.contains("results cached 0 s"), "{banner}");
    for (expect, command) in local_gateway::banner::parse_examples(&banner) {
        let out = Command::new("sh")
            .args([
                "-c",
                &format!("{command} -sS -o /dev/null -w '%{{http_code}}' --max-time 10"),
            ])
            .output()
            .unwrap();
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            expect.to_string(),
            "{command}"
        );
    }
}

/// The token modes' lines: a token for a key and for a SigV4 signature, calls with a
/// token (also through tutor-service, which trades its role for a token of its own),
/// the expired and the tampered sample tokens refused.
#[test]
fn token_modes_print_curl_lines_that_work_as_written() {
    for mode in ["token", "key-or-token"] {
        let (_child, banner, _log) = start(&["--auth-mode", mode]);
        assert!(banner.contains("/token/v1"), "{banner}");
        let examples = local_gateway::banner::parse_examples(&banner);
        for needle in [
            "/token/v1/token'",
            "/token/v1/token/iam'",
            "Authorization: Bearer $TOKEN",
            "Authorization: Bearer eyJ",
        ] {
            assert!(
                examples.iter().any(|(_, c)| c.contains(needle)),
                "{mode}: no example with {needle} in {banner}"
            );
        }
        for what in ["an expired token", "a tampered token"] {
            assert!(banner.contains(what), "{mode}: no {what} in {banner}");
        }
        // Issue 19 B3: in key-or-token the authorizer has no identity source, so API
        // Gateway invokes it for a request without credentials; the listing says so.
        if mode == "key-or-token" {
            assert!(banner.contains("(missing_credentials)"), "{banner}");
            assert!(
                !banner.contains("no key: refused by API Gateway"),
                "{banner}"
            );
            assert!(
                banner.contains("no identity source: invoked on every request"),
                "{banner}"
            );
            assert!(!banner.contains(" on  "), "{banner}");
        }
        for (expect, command) in &examples {
            assert_eq!(status_of(command), *expect, "{mode}: {command}");
        }
    }
}

/// Runs the binary expecting it to refuse to start; returns its stderr.
fn refused(args: &[&str]) -> String {
    let mut child = Command::new(BIN)
        .args(["--port", "0"])
        .args(args)
        .env_remove("SVCAUTH_KEY_SOURCE")
        .env_remove("SVCAUTH_KEYS_FILE")
        .env_remove("USERS_TABLE")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // A gateway that starts instead of refusing would run until killed.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while child.try_wait().unwrap().is_none() {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("{args:?}: the gateway started instead of refusing the options");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
    assert!(out.stdout.is_empty(), "{args:?} printed a banner");
    stderr
}

/// A directory of its own for one test, removed on drop.
struct TempDir(std::path::PathBuf);

impl TempDir {
    fn new(name: &str) -> Self {
        let d = std::env::temp_dir().join(format!("lgw-cli-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        Self(d)
    }
    fn path(&self, f: &str) -> String {
        self.0.join(f).display().to_string()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn contradictory_missing_or_broken_options_are_refused_by_name() {
    let e = refused(&["--auth-mode", "api-key", "--parameter", "AuthMode=iam"]);
    assert!(
        e.contains("--auth-mode api-key") && e.contains("AuthMode=iam"),
        "{e}"
    );
    let e = refused(&["--parameter", "AuthMode=sometimes"]);
    assert!(e.contains("api-key, iam, both"), "{e}");
    let e = refused(&["--parameter", "Environment"]);
    assert!(e.contains("NAME=VALUE"), "{e}");
    let e = refused(&["--key-source", "file"]);
    assert!(e.contains("--keys-file"), "{e}");
    let dir = TempDir::new("broken");
    let broken = dir.path("keys.json");
    std::fs::write(&broken, "[{\"service\": 1}]").unwrap();
    let e = refused(&["--key-source", "file", "--keys-file", &broken]);
    assert!(e.contains(&broken), "{e}");
    let missing = dir.path("missing.json");
    let e = refused(&["--key-source", "file", "--keys-file", &missing]);
    assert!(e.contains(&missing), "{e}");
    let e = refused(&["--service-key-file", "tutor-service"]);
    assert!(e.contains("SERVICE=PATH"), "{e}");
    // Issue 19 B5: options that were silently ignored are refused by name.
    let e = refused(&["--keys-file", &broken]);
    assert!(e.contains("--key-source file"), "{e}");
    let key_file = dir.path("tutor.key");
    let key = service_auth::ApiKey::generate(Some("dev")).unwrap();
    std::fs::write(&key_file, key.expose_secret()).unwrap();
    let e = refused(&["--service-key-file", &format!("tutor-servce={key_file}")]);
    assert!(
        e.contains("tutor-servce") && e.contains("tutor-service"),
        "{e}"
    );
    // Agreeing options are fine: only the key APIs.
    let (_child, banner, _log) =
        start(&["--auth-mode", "api-key", "--parameter", "AuthMode=api-key"]);
    assert!(banner.contains("(AuthMode=api-key)"), "{banner}");
}

/// The HTTP status of a command line run through `sh`.
fn status_of(command: &str) -> u16 {
    let out = Command::new("sh")
        .args([
            "-c",
            &format!("{command} -sS -o /dev/null -w '%{{http_code}}' --max-time 10"),
        ])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .parse()
        .unwrap_or_else(|_| panic!("{command}: {}", String::from_utf8_lossy(&out.stderr)))
}

/// The base URL of an API in the banner.
fn api_url(banner: &str, api: &str) -> String {
    banner
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{api}  ")))
        .unwrap_or_else(|| panic!("no {api} in {banner}"))
        .trim()
        .to_owned()
}

const USER: &str = "6b1f0c52-3f0e-4a8e-9d55-2f1f4c3c9a10";

/// Service documents for tutor-service (reads users) and admin-service (calls the
/// tutor API), each with one fresh key: (documents, tutor key, admin key).
fn store_with_fresh_keys() -> (Vec<service_auth::ServiceDocument>, String, String) {
    use service_auth::{ApiGrant, ApiKey, KeyRecord, ServiceDocument, UnixTime};
    let tutor = ApiKey::generate(Some("dev")).unwrap();
    let admin = ApiKey::generate(Some("dev")).unwrap();
    let mut t = ServiceDocument::new(
        "tutor-service",
        vec![ApiGrant::new(
            &["identity"],
            &["GET /internal/users/*", "GET /internal/users/by-email/*"],
        )],
    );
    t.keys
        .push(KeyRecord::for_key(&tutor, UnixTime::now(), None));
    let mut a = ServiceDocument::new(
        "admin-service",
        vec![ApiGrant::new(&["identity", "tutor"], &["* /internal/*"])],
    );
    a.keys
        .push(KeyRecord::for_key(&admin, UnixTime::now(), None));
    (
        vec![t, a],
        tutor.expose_secret().to_owned(),
        admin.expose_secret().to_owned(),
    )
}

fn chain_call(banner: &str, admin_key: &str) -> String {
    format!(
        "curl -i '{}/internal/tutor/students/{USER}/profile' -H 'x-service-api-key: {admin_key}'",
        api_url(banner, "TutorKeyApi")
    )
}

/// B3: with `--key-source file` the store holds only hashes: tutor-service calls
/// identity-service with the key given by `--service-key-file`; without one the
/// banner says why the chain answers 502 and what to run.
#[test]
fn the_chain_works_with_a_file_store_when_tutors_key_is_given() {
    let dir = TempDir::new("chain-file");
    let (docs, tutor, admin) = store_with_fresh_keys();
    let store = dir.path("keys.json");
    std::fs::write(&store, serde_json::to_string(&docs).unwrap()).unwrap();
    let key_file = dir.path("tutor.key");
    std::fs::write(&key_file, format!("{tutor}\n")).unwrap();

    let (_child, banner, _log) = start(&[
        "--auth-mode",
        "api-key",
        "--key-source",
        "file",
        "--keys-file",
        &store,
        "--service-key-file",
        &format!("tutor-service={key_file}"),
    ]);
    assert!(
        banner.contains("with the key from --service-key-file"),
        "{banner}"
    );
    assert!(!banner.contains(&tutor), "the key is not printed");
    assert_eq!(status_of(&chain_call(&banner, &admin)), 200, "{banner}");
    drop(_child);

    let (_child, banner, _log) = start(&[
        "--auth-mode",
        "api-key",
        "--key-source",
        "file",
        "--keys-file",
        &store,
    ]);
    assert!(
        banner.contains("tutor-service (TutorServiceFunction) has no key to send"),
        "{banner}"
    );
    assert!(
        banner.contains(&format!(
            "svcauth --store file --file {store} keys create --service tutor-service"
        )) && banner.contains("--service-key-file tutor-service=tutor-service.key"),
        "{banner}"
    );
    assert_eq!(status_of(&chain_call(&banner, &admin)), 502);
}

/// B3: with `--key-source ssm` tutor-service reads its key from its delivery
/// parameter (`SERVICE_API_KEY_PARAMETER`), as in Lambda: here on moto_server.
#[test]
fn the_chain_works_with_the_ssm_store_reading_tutors_delivered_key() {
    let moto = test_support::MotoServer::start();
    let endpoint = moto.endpoint();
    let (docs, tutor, admin) = store_with_fresh_keys();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let conf = aws_sdk_ssm::Config::builder()
            .endpoint_url(&endpoint)
            .region(aws_sdk_ssm::config::Region::new("us-east-1"))
            .credentials_provider(aws_credential_types::Credentials::new(
                "testing", "testing", None, None, "test",
            ))
            .behavior_version_latest()
            .build();
        let c = aws_sdk_ssm::Client::from_conf(conf);
        let mut put = vec![(
            "/dev/tutor-service/identity-service-api-key".to_owned(),
            tutor.clone(),
        )];
        for d in &docs {
            put.push((
                format!("/svcauth/dev/keys/{}", d.service),
                serde_json::to_string(d).unwrap(),
            ));
        }
        for (name, value) in put {
            c.put_parameter()
                .name(name)
                .value(value)
                .r#type(aws_sdk_ssm::types::ParameterType::SecureString)
                .send()
                .await
                .unwrap();
        }
    });
    let port = test_support::free_port().to_string();
    let child = Command::new(BIN)
        .args([
            "--port",
            &port,
            "--auth-mode",
            "api-key",
            "--key-source",
            "ssm",
        ])
        .env_remove("SVCAUTH_KEYS_FILE")
        .env_remove("USERS_TABLE")
        .env_remove("SVCAUTH_SSM_PATH")
        .env("AWS_ENDPOINT_URL", &endpoint)
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut child = Killed(child);
    let stdout = child.0.stdout.take().unwrap();
    let mut banner = String::new();
    for line in BufReader::new(stdout).lines() {
        let line = line.unwrap();
        banner.push_str(&line);
        banner.push('\n');
        if line.contains("Ctrl-C stops") {
            break;
        }
    }
    assert!(
        banner.contains("SSM parameter /dev/tutor-service/identity-service-api-key"),
        "{banner}"
    );
    assert_eq!(status_of(&chain_call(&banner, &admin)), 200, "{banner}");
}

/// B4: `curl --aws-sigv4` signs an `@` in the path differently from AWS; the line
/// `local-gateway sign` prints is signed as the SDKs sign it and gets 200.
#[test]
fn sign_prints_a_curl_line_that_works_for_an_email_path() {
    let (_child, banner, _log) = start(&["--auth-mode", "iam"]);
    let users = format!("{}/internal/users", api_url(&banner, "IdentityIamApi"));
    let email = local_gateway::services::dev_users()[0].email.clone();
    assert!(email.contains('@'));
    let url = format!("{users}/by-email/{email}");
    let out = Command::new(BIN).args(["sign", &url]).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line = String::from_utf8(out.stdout).unwrap();
    assert!(line.starts_with("curl ") && line.contains("%40"), "{line}");
    assert_eq!(status_of(line.trim()), 200, "{line}");
    // Signed as the admin role, a POST with a body.
    let out = Command::new(BIN)
        .args([
            "sign",
            "-X",
            "POST",
            "--role",
            "AdminServiceRole",
            "--data",
            r#"{"email":"new.person@example.com","role":"student"}"#,
            &users,
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line = String::from_utf8(out.stdout).unwrap();
    assert_eq!(status_of(line.trim()), 201, "{line}");
    // Refusals name what is wrong.
    let out = Command::new(BIN)
        .args(["sign", "--role", "NoSuchRole", &url])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("TutorServiceRole"));
}

/// The identity service's `Location` after a create, followed as a client would,
/// leads to the new user through the gateway (the stage and the local API prefix
/// kept), as it would on the execute-api host.
#[test]
fn the_location_of_a_created_user_leads_back_to_it() {
    let (_child, banner, _log) = start(&["--auth-mode", "api-key"]);
    let keys = local_gateway::services::dev_keys();
    let base = api_url(&banner, "IdentityKeyApi");
    let out = Command::new("curl")
        .args([
            "-sS",
            "-i",
            "--max-time",
            "10",
            "-X",
            "POST",
            &format!("{base}/internal/users"),
            "-H",
            &format!("x-service-api-key: {}", keys["admin-service"]),
            "-H",
            "content-type: application/json",
            "-d",
            r#"{"email":"located.person@example.com","role":"student"}"#,
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(text.starts_with("HTTP/1.1 201"), "{text}");
    let location = text
        .lines()
        .find_map(|l| {
            l.split_once(':')
                .filter(|(k, _)| k.eq_ignore_ascii_case("location"))
                .map(|(_, v)| v.trim().to_owned())
        })
        .unwrap_or_else(|| panic!("no Location: {text}"));
    assert!(
        location.starts_with("/identitykey/v1/internal/users/"),
        "{location}"
    );
    let origin = base.split("/identitykey").next().unwrap();
    let get = format!(
        "curl -i '{origin}{location}' -H 'x-service-api-key: {}'",
        keys["tutor-service"]
    );
    assert_eq!(status_of(&get), 200, "{get}");
}
