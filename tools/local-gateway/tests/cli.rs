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
