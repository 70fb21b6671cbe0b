//! The built `svcauth` binary: every command's `--help` names its options, and run as
//! an operator would (aws-config's chain pointed at moto_server by AWS_ENDPOINT_URL),
//! the key goes alone to stdout and the exit codes are the documented ones.

use std::io::Write;
use std::process::{Command, Output, Stdio};

use test_support::MotoServer;

const BIN: &str = env!("CARGO_BIN_EXE_svcauth");

const GLOBAL: &[&str] = &[
    "--store",
    "--file",
    "--path",
    "--env",
    "--region",
    "--profile",
];

/// Each command and the options its help must name.
const COMMANDS: &[(&[&str], &[&str])] = &[
    (&[], &["keys"]),
    (
        &["keys"],
        &[
            "create",
            "rotate",
            "revoke",
            "list",
            "import-legacy",
            "check",
            "prune",
            "grant",
            "migrate",
        ],
    ),
    (
        &["keys", "create"],
        &[
            "--service",
            "--permissions",
            "--api",
            "`/` included",
            "--replace-permissions",
            "--expires-in",
            "--usage-plan-key",
            "--deliver",
            "--delivery-parameter",
            "--overwrite-delivery",
            "--dry-run",
            "/{env}/{service}/identity-service-api-key",
        ],
    ),
    (
        &["keys", "rotate"],
        &[
            "--service",
            "--grace",
            "24h",
            "--deliver",
            "--delivery-parameter",
            "--dry-run",
            "cold start",
        ],
    ),
    (
        &["keys", "revoke"],
        &[
            "--service",
            "--key-id",
            "--after",
            "--dry-run",
            "SVCAUTH_CACHE_TTL_SECS",
            "AuthorizerResultTtl",
            "10 minutes",
        ],
    ),
    (&["keys", "list"], &["--service", "--json", "90"]),
    (
        &["keys", "import-legacy"],
        &[
            "--from-parameter",
            "--from-file",
            "--service",
            "--permissions",
            "--api",
            "--dry-run",
        ],
    ),
    (
        &["keys", "grant"],
        &[
            "--service",
            "--api",
            "--permissions",
            "--remove",
            "--dry-run",
            "SVCAUTH_API_PATH",
            "`/` included",
        ],
    ),
    (
        &["keys", "migrate"],
        &[
            "--service",
            "--api",
            "--dry-run",
            "schema-1",
            "unscoped_documents",
        ],
    ),
    (
        &["keys", "prune"],
        &["--service", "--older-than", "30d", "--dry-run", "32"],
    ),
    (
        &["keys", "check"],
        &[
            "--service",
            "--route",
            "--legacy-parameter",
            "--json",
            "stdin",
        ],
    ),
];

fn svcauth(args: &[&str], envs: &[(&str, &str)], stdin: &str) -> Output {
    let mut cmd = Command::new(BIN);
    cmd.args(args)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", std::env::temp_dir())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn every_command_documents_its_options_and_the_exit_codes_in_help() {
    for (command, options) in COMMANDS {
        let mut args = command.to_vec();
        args.push("--help");
        let out = svcauth(&args, &[], "");
        let help = text(&out.stdout);
        assert!(out.status.success(), "{args:?}: {}", text(&out.stderr));
        for option in options.iter().chain(GLOBAL) {
            assert!(
                help.contains(option),
                "`svcauth {}` help does not name {option}:\n{help}",
                args.join(" ")
            );
        }
        for code in [
            "Exit codes:",
            "  0  done",
            "  2  usage",
            "  3  AWS access",
            "  4  not found",
            "  5  store",
            "  6  delivery",
        ] {
            assert!(
                help.contains(code),
                "`svcauth {}` help lacks {code:?}",
                args.join(" ")
            );
        }
    }
}

#[test]
fn usage_errors_exit_2() {
    for args in [
        &["keys", "create"][..],
        &["keys", "rotate", "--service", "x", "--grace", "soon"],
        &[
            "keys",
            "import-legacy",
            "--from-file",
            "a",
            "--from-parameter",
            "b",
        ],
        &["keys", "list", "--store", "file"],
        &["--env", "Prod!", "keys", "list"],
    ] {
        let out = svcauth(args, &[], "");
        assert_eq!(
            out.status.code(),
            Some(2),
            "{args:?}: {}",
            text(&out.stderr)
        );
        assert!(out.stdout.is_empty());
    }
}

#[test]
fn the_binary_against_moto_pipes_the_key_alone_and_exits_with_the_documented_codes() {
    let moto = MotoServer::start();
    let endpoint = moto.endpoint();
    let env = [
        ("AWS_ENDPOINT_URL", endpoint.as_str()),
        ("AWS_REGION", "us-east-1"),
        ("AWS_ACCESS_KEY_ID", "testing"),
        ("AWS_SECRET_ACCESS_KEY", "testing"),
        ("SVCAUTH_ENV", "test"),
        ("AWS_EC2_METADATA_DISABLED", "true"),
    ];
    let create = svcauth(
        &[
            "keys",
            "create",
            "--service",
            "tutor-service",
            "--permissions",
            "GET /internal/users/*",
            "--api",
            "identity",
            "--deliver",
            "stdout",
        ],
        &env,
        "",
    );
    assert_eq!(create.status.code(), Some(0), "{}", text(&create.stderr));
    let stdout = text(&create.stdout);
    let key = stdout.strip_suffix('\n').expect("one line");
    assert!(
        !key.contains('\n') && key.starts_with("svcauth_test_"),
        "stdout holds the key alone"
    );
    assert!(!text(&create.stderr).contains(key));
    assert!(
        text(&create.stderr).contains("/svcauth/test/keys"),
        "{}",
        text(&create.stderr)
    );

    let check = svcauth(
        &["keys", "check", "--service", "tutor-service"],
        &env,
        &format!("{key}\n"),
    );
    assert_eq!(check.status.code(), Some(0), "{}", text(&check.stderr));
    assert!(text(&check.stdout).contains("accepted"));
    let refused = svcauth(&["keys", "check", "--service", "admin-service"], &env, key);
    assert_eq!(refused.status.code(), Some(1));

    let missing = svcauth(&["keys", "rotate", "--service", "nobody"], &env, "");
    assert_eq!(missing.status.code(), Some(4), "{}", text(&missing.stderr));
    assert!(text(&missing.stderr).contains("keys create"));

    // Nothing listening: an AWS access error that names what to check.
    let mut unreachable = env;
    let dead = format!("http://127.0.0.1:{}", test_support::free_port());
    unreachable[0] = ("AWS_ENDPOINT_URL", &dead);
    let out = svcauth(&["keys", "list"], &unreachable, "");
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("AWS_ENDPOINT_URL"),
        "{}",
        text(&out.stderr)
    );

    // No region anywhere.
    let no_region: Vec<_> = env
        .iter()
        .filter(|(k, _)| *k != "AWS_REGION")
        .copied()
        .collect();
    let out = svcauth(&["keys", "list"], &no_region, "");
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("--region"),
        "{}",
        text(&out.stderr)
    );
}
