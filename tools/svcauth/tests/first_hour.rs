//! The first hour with `svcauth`, as a new user meets it (issue 12 B1, B2, B5-B7): on
//! the file store, no AWS needed. Each test is one thing a newcomer tripped over.

use serde_json::Value;
use svcauth::{exit, Aws};

use crate::common::*;

fn no_aws() -> Aws {
    Aws::Client(moto_client("http://127.0.0.1:9"))
}

fn file_args<'a>(file: &'a str, cmd: &[&'a str]) -> Vec<&'a str> {
    let mut v = vec!["--env", "test", "--store", "file", "--file", file];
    v.extend_from_slice(cmd);
    v
}

/// B1: a refused key (expired after a rotation's grace, or revoked) shows its record's
/// expiry and its service's permissions, in text and JSON, not `never` and `none`.
#[tokio::test]
async fn check_on_a_refused_key_shows_the_records_real_values() {
    let dir = TempDir::new("b1");
    let file = dir.path("keys.json");
    let aws = no_aws();
    let old = svcauth(&file_args(&file, &create_tutor(&[])), &aws, NOW)
        .await
        .delivered_key();
    let rotate = svcauth(
        &file_args(
            &file,
            &words("keys rotate --service tutor-service --grace 1h"),
        ),
        &aws,
        NOW,
    )
    .await;
    expect(&rotate, exit::OK);
    let new = rotate.delivered_key();
    let later = NOW + 2 * 3600;
    let expiry = service_auth::UnixTime(NOW + 3600).to_rfc3339();

    let check = |json: bool| {
        let mut cmd = words("keys check --service tutor-service");
        if json {
            cmd.push("--json");
        }
        cmd
    };
    let text = svcauth_stdin(&file_args(&file, &check(false)), &aws, later, &old).await;
    expect(&text, exit::NOT_ACCEPTED);
    assert!(text.stdout.contains("expired_key"), "{text:?}");
    assert!(
        text.stdout.contains(&format!("expires:     {expiry}")),
        "{text:?}"
    );
    assert!(
        text.stdout
            .contains("identity: GET /internal/users/by-email/* -> GET /internal/users/by-email/*"),
        "{text:?}"
    );
    assert!(!text.stdout.contains("never") && !text.stdout.contains("none"));
    let json = svcauth_stdin(&file_args(&file, &check(true)), &aws, later, &old).await;
    let v: Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(v["reason"], "expired_key");
    assert_eq!(v["expires"], expiry);
    assert_eq!(v["permissions"][1], "GET /internal/users/by-email/*");

    let revoke = svcauth(
        &file_args(
            &file,
            &[
                "keys",
                "revoke",
                "--service",
                "tutor-service",
                "--key-id",
                &key_id(&new),
            ],
        ),
        &aws,
        later,
    )
    .await;
    expect(&revoke, exit::OK);
    let json = svcauth_stdin(&file_args(&file, &check(true)), &aws, later + 1, &new).await;
    let v: Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(v["reason"], "revoked_key", "{json:?}");
    assert_eq!(v["permissions"][0], "GET /internal/users/*");
    assert_eq!(v["expires"], Value::Null, "the record has no expiry");
    assert_eq!(
        v["revokedAt"],
        service_auth::UnixTime(later).to_rfc3339(),
        "{json:?}"
    );
    assert!(!json.stdout.contains(&new));
}

/// B2: `--expires-in 0s` would store a key that is expired at once; `-5d` used to get
/// clap's "unexpected argument". Both are refused with what is accepted, and nothing
/// is written.
#[tokio::test]
async fn non_positive_durations_are_refused_with_what_is_accepted() {
    let dir = TempDir::new("b2");
    let file = dir.path("keys.json");
    let aws = no_aws();
    for (value, says) in [("0s", "is zero"), ("-5d", "negative")] {
        let run = svcauth(
            &file_args(&file, &create_tutor(&["--expires-in", value])),
            &aws,
            NOW,
        )
        .await;
        expect(&run, exit::USAGE);
        assert!(run.stderr.contains(says), "{value}: {run:?}");
        assert!(
            run.stderr.contains("more than zero") && run.stderr.contains("90d"),
            "{value}: {run:?}"
        );
        assert!(!run.stderr.contains("unexpected argument"), "{run:?}");
    }
    assert!(!std::path::Path::new(&file).exists(), "nothing was written");
    svcauth(&file_args(&file, &create_tutor(&[])), &aws, NOW).await;
    let after = svcauth(
        &file_args(
            &file,
            &words("keys revoke --service tutor-service --key-id kid_0123456789abcdef --after 0s"),
        ),
        &aws,
        NOW,
    )
    .await;
    expect(&after, exit::USAGE);
    let grace = svcauth(
        &file_args(
            &file,
            &words("keys rotate --service tutor-service --grace -1h"),
        ),
        &aws,
        NOW,
    )
    .await;
    expect(&grace, exit::USAGE);
    assert!(grace.stderr.contains("negative"), "{grace:?}");
    // Positive durations still work.
    let ok = svcauth(
        &file_args(&file, &create_tutor(&["--expires-in", "12h"])),
        &aws,
        NOW,
    )
    .await;
    expect(&ok, exit::OK);
}

/// B5: `keys list` (and the other reading commands) on a store file that does not
/// exist is "not found" (4) with a message about the file, not an empty list with
/// advice about --env, --path and the region.
#[tokio::test]
async fn a_missing_store_file_is_not_found_and_named() {
    let dir = TempDir::new("b5");
    let file = dir.path("typo.json");
    let aws = no_aws();
    for cmd in [
        words("keys list"),
        words("keys list --json"),
        words("keys rotate --service tutor-service"),
        words("keys prune"),
    ] {
        let run = svcauth(&file_args(&file, &cmd), &aws, NOW).await;
        expect(&run, exit::NOT_FOUND);
        assert!(
            run.stderr
                .contains(&format!("store file {file} does not exist")),
            "{cmd:?}: {run:?}"
        );
        assert!(run.stderr.contains("--file"), "{run:?}");
        assert!(!run.stderr.contains("region"), "{run:?}");
        assert!(run.stdout.is_empty());
    }
    let check = svcauth_stdin(
        &file_args(&file, &words("keys check --service tutor-service")),
        &aws,
        NOW,
        "svcauth_test_x",
    )
    .await;
    expect(&check, exit::NOT_FOUND);
    // A service missing from an existing file: the hint names --file, not the region.
    let real = dir.path("keys.json");
    svcauth(&file_args(&real, &create_tutor(&[])), &aws, NOW).await;
    let run = svcauth(
        &file_args(&real, &words("keys rotate --service nobody")),
        &aws,
        NOW,
    )
    .await;
    expect(&run, exit::NOT_FOUND);
    assert!(run.stderr.contains("--file"), "{run:?}");
    assert!(!run.stderr.contains("region"), "{run:?}");
}

/// B6: a dry run checks what the real run checks: a store file in a directory that
/// does not exist fails both, with the same exit code and a message naming the
/// directory; a broken store file too.
#[tokio::test]
async fn dry_runs_fail_where_the_real_run_fails() {
    let dir = TempDir::new("b6");
    let file = dir.path("no-such-dir/keys.json");
    let aws = no_aws();
    let dry = svcauth(&file_args(&file, &create_tutor(&["--dry-run"])), &aws, NOW).await;
    let real = svcauth(&file_args(&file, &create_tutor(&[])), &aws, NOW).await;
    expect(&dry, exit::NOT_FOUND);
    expect(&real, exit::NOT_FOUND);
    for run in [&dry, &real] {
        assert!(
            run.stderr.contains("no-such-dir") && run.stderr.contains("does not exist"),
            "{run:?}"
        );
        assert!(run.stdout.is_empty(), "no key was delivered");
    }
    let legacy = dir.path("legacy.json");
    std::fs::write(
        &legacy,
        format!("{{\"{}\": \"tutor-service\"}}", "a".repeat(64)),
    )
    .unwrap();
    let import = svcauth(
        &file_args(
            &file,
            &["keys", "import-legacy", "--from-file", &legacy, "--dry-run"],
        ),
        &aws,
        NOW,
    )
    .await;
    expect(&import, exit::NOT_FOUND);

    let broken = dir.path("broken.json");
    std::fs::write(&broken, "{not json").unwrap();
    for cmd in [create_tutor(&["--dry-run"]), create_tutor(&[])] {
        let run = svcauth(&file_args(&broken, &cmd), &aws, NOW).await;
        expect(&run, exit::STORE);
        assert!(run.stderr.contains(&broken), "{run:?}");
    }
    assert_eq!(std::fs::read_to_string(&broken).unwrap(), "{not json");
}

/// B7: the wording a newcomer tripped over.
#[tokio::test]
async fn messages_say_what_is_true() {
    let dir = TempDir::new("b7");
    let file = dir.path("keys.json");
    let aws = no_aws();
    let key = svcauth(&file_args(&file, &create_tutor(&[])), &aws, NOW)
        .await
        .delivered_key();

    // The rotation countdown of a key made a minute ago.
    let list = svcauth(&file_args(&file, &words("keys list")), &aws, NOW + 60).await;
    assert!(list.stdout.contains("in 90 days"), "{list:?}");
    let json = svcauth(
        &file_args(&file, &words("keys list --json")),
        &aws,
        NOW + 60,
    )
    .await;
    let rows: Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(rows[0]["rotationDueInDays"], 90);

    // Revoke --after: the key still works until then; the dry run warns as well.
    let id = key_id(&key);
    let revoke_after = |dry: bool| {
        let mut v = vec![
            "keys",
            "revoke",
            "--service",
            "tutor-service",
            "--key-id",
            id.as_str(),
            "--after",
            "1day",
        ];
        if dry {
            v.push("--dry-run");
        }
        v
    };
    let dry = svcauth(&file_args(&file, &revoke_after(true)), &aws, NOW).await;
    expect(&dry, exit::OK);
    let until = service_auth::UnixTime(NOW + 86_400).to_rfc3339();
    assert!(
        dry.stderr
            .contains(&format!("from {until} (the key works until then)")),
        "{dry:?}"
    );
    assert!(!dry.stderr.contains("refused until"), "{dry:?}");
    let dry_now = svcauth(
        &file_args(
            &file,
            &[
                "keys",
                "revoke",
                "--service",
                "tutor-service",
                "--key-id",
                &id,
                "--dry-run",
            ],
        ),
        &aws,
        NOW,
    )
    .await;
    assert!(
        dry_now
            .stderr
            .contains("warning: tutor-service has no other usable key: its callers are refused until it gets one"),
        "{dry_now:?}"
    );
    let real = svcauth(&file_args(&file, &revoke_after(false)), &aws, NOW).await;
    expect(&real, exit::OK);
    assert!(
        real.stderr
            .contains(&format!("from {until} (the key works until then)")),
        "{real:?}"
    );

    // Rotate: "1 day", not "1day"; no "replacing what it holds" for stdout.
    let dry = svcauth(
        &file_args(
            &file,
            &words("keys rotate --service tutor-service --grace 1day --dry-run"),
        ),
        &aws,
        NOW,
    )
    .await;
    expect(&dry, exit::OK);
    assert!(dry.stderr.contains("deliver it to stdout, then"), "{dry:?}");
    assert!(!dry.stderr.contains("replacing"), "{dry:?}");
    let real = svcauth(
        &file_args(
            &file,
            &words("keys rotate --service tutor-service --grace 90m"),
        ),
        &aws,
        NOW,
    )
    .await;
    expect(&real, exit::OK);
    assert!(
        real.stderr.contains("(grace 1 hour 30 minutes)"),
        "{real:?}"
    );
    assert!(!real.stderr.contains("1day"), "{real:?}");

    // import-legacy: entries counted from 1 with their service; after --from-file no
    // talk of a file the authorizer would read.
    let legacy = dir.path("legacy.json");
    std::fs::write(
        &legacy,
        format!(
            "{{\"{}\": \"admin-service\", \"short\": \"report-service\"}}",
            "b".repeat(64)
        ),
    )
    .unwrap();
    let bad = svcauth(
        &file_args(&file, &["keys", "import-legacy", "--from-file", &legacy]),
        &aws,
        NOW,
    )
    .await;
    expect(&bad, exit::USAGE);
    assert!(
        bad.stderr
            .contains("legacy entry 2 (of service \"report-service\")"),
        "{bad:?}"
    );
    assert!(
        !bad.stderr.contains("short"),
        "no key text in messages: {bad:?}"
    );
    std::fs::write(
        &legacy,
        format!("{{\"{}\": \"admin-service\"}}", "b".repeat(64)),
    )
    .unwrap();
    let ok = svcauth(
        &file_args(
            &file,
            &[
                "keys",
                "import-legacy",
                "--from-file",
                &legacy,
                "--permissions",
                "POST /internal/users",
                "--api",
                "identity",
            ],
        ),
        &aws,
        NOW,
    )
    .await;
    expect(&ok, exit::OK);
    assert!(ok.stderr.contains("never reads a file"), "{ok:?}");
    assert!(!ok.stderr.contains("reads it only while"), "{ok:?}");
}
