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
/// clap's "unexpected argument"; (issue 19 B1) `500ms` and `1ns` stored a key already
/// expired. All are refused with what is accepted, and nothing is written.
#[tokio::test]
async fn non_positive_durations_are_refused_with_what_is_accepted() {
    let dir = TempDir::new("b2");
    let file = dir.path("keys.json");
    let aws = no_aws();
    for (value, says) in [
        ("0s", "shorter than 1 minute"),
        ("-5d", "negative"),
        ("500ms", "whole number of seconds"),
        ("1ns", "whole number of seconds"),
        ("30s", "shorter than 1 minute"),
    ] {
        let run = svcauth(
            &file_args(&file, &create_tutor(&["--expires-in", value])),
            &aws,
            NOW,
        )
        .await;
        expect(&run, exit::USAGE);
        assert!(run.stderr.contains(says), "{value}: {run:?}");
        assert!(
            ["1m", "1 minute", "45s"]
                .iter()
                .any(|m| run.stderr.contains(m))
                && run.stderr.contains("90d"),
            "{value}: {run:?}"
        );
        assert!(!run.stderr.contains("unexpected argument"), "{run:?}");
    }
    assert!(!std::path::Path::new(&file).exists(), "nothing was written");
    svcauth(&file_args(&file, &create_tutor(&[])), &aws, NOW).await;
    for value in ["0s", "1ns"] {
        let after = svcauth(
            &file_args(
                &file,
                &revoke_key("tutor-service", "kid_0123456789abcdef", &["--after", value]),
            ),
            &aws,
            NOW,
        )
        .await;
        expect(&after, exit::USAGE);
    }
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
        // Issue 19 B4: the `keys create` it suggests names its APIs (it needs --api).
        assert!(
            run.stderr
                .contains("keys create --service NAME --api API --permissions"),
            "{run:?}"
        );
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
    assert!(dry.stderr.contains("deliver it to stdout;"), "{dry:?}");
    assert!(dry.stderr.contains("(grace 1 day)"), "{dry:?}");
    assert!(!dry.stderr.contains("[none]"), "{dry:?}");
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

/// Issue 19 B5, the papercuts a newcomer met on the file store, one assertion each.
#[tokio::test]
async fn issue19_papercuts_on_the_file_store() {
    let dir = TempDir::new("i19b5");
    let file = dir.path("keys.json");
    let aws = no_aws();
    let run = |cmd: Vec<&str>| {
        let cmd: Vec<String> = cmd.iter().map(|s| s.to_string()).collect();
        let file = file.clone();
        let aws = aws.clone();
        async move {
            let cmd: Vec<&str> = cmd.iter().map(String::as_str).collect();
            svcauth(&file_args(&file, &cmd), &aws, NOW).await
        }
    };

    // No "did you mean" for a misspelt command or option.
    let typo = run(words("keys lsit")).await;
    expect(&typo, exit::USAGE);
    assert!(typo.stderr.contains("'list'"), "{typo:?}");
    let typo = run(words(
        "keys grant --service tutor-service --api identity --permission x",
    ))
    .await;
    expect(&typo, exit::USAGE);
    assert!(typo.stderr.contains("--permissions"), "{typo:?}");

    // `1y` is 365.25 days to humantime: refused, days asked for.
    let year = run(create_tutor(&["--expires-in", "1y"])).await;
    expect(&year, exit::USAGE);
    assert!(year.stderr.contains("365d"), "{year:?}");

    // ROTATION DUE of a key made with --expires-in 90d: when it expires, not `-`; the
    // usage-plan key and the brake are listed.
    let tutor = run(create_tutor(&[
        "--expires-in",
        "90d",
        "--usage-plan-key",
        "usage-plan-key-tutor-1",
    ]))
    .await;
    expect(&tutor, exit::OK);
    let tutor_id = key_id(&tutor.delivered_key());
    let admin = run(vec![
        "keys",
        "create",
        "--service",
        "admin-service",
        "--api",
        "identity",
        "--permissions",
        "POST /internal/users",
    ])
    .await;
    expect(&admin, exit::OK);
    let admin_id = key_id(&admin.delivered_key());
    expect(
        &run(words("tokens brake --service admin-service")).await,
        exit::OK,
    );
    let list = run(words("keys list")).await;
    expect(&list, exit::OK);
    let tutor_row = list
        .stdout
        .lines()
        .find(|l| l.contains(&tutor_id))
        .unwrap_or_else(|| panic!("{list:?}"));
    assert!(tutor_row.ends_with("in 90 days"), "{tutor_row}");
    assert!(list.stdout.contains("usage-plan-key-tutor-1"), "{list:?}");
    let brake = service_auth::UnixTime(NOW).to_rfc3339();
    assert!(
        list.stdout
            .lines()
            .any(|l| l.starts_with("admin-service") && l.contains(&brake)),
        "{list:?}"
    );

    // `keys grant --permissions ''` is a usage error (2), and `--remove` of an API the
    // service was never granted says so.
    let empty = run(vec![
        "keys",
        "grant",
        "--service",
        "tutor-service",
        "--api",
        "billing",
        "--permissions",
        "",
    ])
    .await;
    expect(&empty, exit::USAGE);
    assert!(empty.stderr.contains("names no route"), "{empty:?}");
    let remove = run(words(
        "keys grant --service tutor-service --api billing --remove",
    ))
    .await;
    expect(&remove, exit::NOT_ACCEPTED);
    assert!(
        remove
            .stderr
            .contains("tutor-service has no grant on billing"),
        "{remove:?}"
    );
    assert!(!remove.stderr.contains("already has"), "{remove:?}");

    // Revoking another service's key names its owner.
    let wrong = run(revoke_key("tutor-service", &admin_id, &[])).await;
    expect(&wrong, exit::NOT_FOUND);
    assert!(
        wrong.stderr.contains("belongs to admin-service")
            && wrong
                .stderr
                .contains(&format!("--service admin-service --key-id {admin_id}")),
        "{wrong:?}"
    );

    // A revocation in a store file says what holds for a store file: no SSM, no marker.
    let revoked = run(revoke_key("admin-service", &admin_id, &[])).await;
    expect(&revoked, exit::OK);
    assert!(
        revoked.stderr.contains("reloads the store file"),
        "{revoked:?}"
    );
    for ssm_only in ["SSM", "marker", "SVCAUTH_STALE_GRACE_SECS"] {
        assert!(
            !revoked.stderr.contains(ssm_only),
            "{ssm_only}: {revoked:?}"
        );
    }

    // `rotate --dry-run` of a service with no usable key: no "[none]".
    let dry = run(words("keys rotate --service admin-service --dry-run")).await;
    expect(&dry, exit::OK);
    assert!(!dry.stderr.contains("[none]"), "{dry:?}");
    assert!(dry.stderr.contains("no usable key to phase out"), "{dry:?}");

    // A delivery to an SSM that cannot be reached: a sentence, not the SDK's dump.
    let deliver = run(words(
        "keys create --service report-service --deliver ssm --delivery-parameter /test/report-service/key",
    ))
    .await;
    expect(&deliver, exit::AWS);
    assert!(
        deliver.stderr.contains("could not be reached"),
        "{deliver:?}"
    );
    for dump in ["DispatchFailure", "{", "ConnectorError"] {
        assert!(!deliver.stderr.contains(dump), "{dump}: {deliver:?}");
    }
}

/// Issue 19 B5 in SSM: after a legacy key is imported, revoked and its record pruned,
/// `import-legacy` says it is revoked (not "already in the store" next to "not
/// importing"), `keys check` says `revoked_key` (not `unknown_key`), and `keys revoke`
/// says it is revoked for good.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue19_a_pruned_legacy_key_is_reported_revoked() {
    let (_moto, c, aws) = moto_ssm();
    let legacy = "/test/identity-service/service-api-keys";
    let tutor_key = "Q".repeat(32) + &"7".repeat(32);
    put_legacy_map(&c, legacy, &[(&tutor_key, "tutor-service")]).await;
    let import = |at: u64| {
        let aws = aws.clone();
        async move {
            svcauth(
                &args(&[
                    "keys",
                    "import-legacy",
                    "--from-parameter",
                    legacy,
                    "--permissions",
                    "GET /internal/users/*",
                    "--api",
                    "identity",
                ]),
                &aws,
                at,
            )
            .await
        }
    };
    expect(&import(NOW).await, exit::OK);
    let list = svcauth(&args(&words("keys list --json")), &aws, NOW).await;
    let id = key_ids(&list.stdout, "tutor-service").remove(0);
    let revoke = |at: u64| {
        let aws = aws.clone();
        let id = id.clone();
        async move { svcauth(&args(&revoke_key("tutor-service", &id, &[])), &aws, at).await }
    };
    expect(&revoke(NOW).await, exit::OK);
    let prune = svcauth(&args(&words("keys prune --older-than 0s")), &aws, NOW + 10).await;
    expect(&prune, exit::OK);

    let again = import(NOW + 20).await;
    expect(&again, exit::NOT_ACCEPTED);
    assert!(
        again.stderr.contains("not importing 1 revoked key"),
        "{again:?}"
    );
    assert!(again.stderr.contains("revoked for good"), "{again:?}");
    assert!(!again.stderr.contains("already in the"), "{again:?}");

    let check = svcauth_stdin(
        &args(&words("keys check --service tutor-service --json")),
        &aws,
        NOW + 20,
        &tutor_key,
    )
    .await;
    expect(&check, exit::NOT_ACCEPTED);
    let answer: Value = serde_json::from_str(&check.stdout).unwrap();
    assert_eq!(answer["reason"], "revoked_key", "{check:?}");
    let text = svcauth_stdin(
        &args(&words("keys check --service tutor-service")),
        &aws,
        NOW + 20,
        &tutor_key,
    )
    .await;
    assert!(text.stdout.contains("its record was pruned"), "{text:?}");

    let gone = revoke(NOW + 20).await;
    expect(&gone, exit::NOT_ACCEPTED);
    assert!(gone.stderr.contains("revoked for good"), "{gone:?}");
}

/// A shell line as its words: single and double quotes group, a backslash-newline
/// continues; enough for the documented command lines.
fn shell_words(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word: Option<String> = None;
    let mut quote: Option<char> = None;
    for c in line.chars() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), c) => word.get_or_insert_with(String::new).push(c),
            (None, '\'' | '"') => {
                quote = Some(c);
                word.get_or_insert_with(String::new);
            }
            (None, c) if c.is_whitespace() => words.extend(word.take()),
            (None, c) => word.get_or_insert_with(String::new).push(c),
        }
    }
    words.extend(word);
    words
}

/// The `svcauth ... keys create` lines of docs/local.md, continuation lines joined.
fn documented_create_lines() -> Vec<String> {
    let text =
        std::fs::read_to_string(test_support::workspace_root().join("docs/local.md")).unwrap();
    let mut lines = Vec::new();
    let mut current: Option<String> = None;
    for line in text.lines().map(str::trim) {
        match current.take() {
            Some(mut c) => {
                c.push(' ');
                c.push_str(line.trim_end_matches('\\'));
                if line.ends_with('\\') {
                    current = Some(c);
                } else {
                    lines.push(c);
                }
            }
            None if line.starts_with("svcauth ") && line.contains("keys create") => {
                if line.ends_with('\\') {
                    current = Some(line.trim_end_matches('\\').to_owned());
                } else {
                    lines.push(line.to_owned());
                }
            }
            None => {}
        }
    }
    lines
}

/// Issue 19 B4: docs/local.md's `keys create` lines (file store and SSM) work as
/// written: exit 0 and a key delivered, not exit 2 and an empty key file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_keys_create_lines_of_docs_local_md_work_as_written() {
    let lines = documented_create_lines();
    assert!(
        lines.iter().any(|l| l.contains("--store file"))
            && lines.iter().any(|l| !l.contains("--store file")),
        "{lines:#?}"
    );
    let dir = TempDir::new("i19b4");
    let (_moto, _, aws) = moto_ssm();
    for line in lines {
        let mut words = shell_words(&line);
        // `> tutor-service.key`: the key on stdout, which this run captures.
        let redirect = words.iter().position(|w| w == ">");
        if let Some(at) = redirect {
            words.truncate(at);
        }
        for w in words.iter_mut().filter(|w| w.ends_with(".json")) {
            *w = dir.path(w);
        }
        assert_eq!(words[0], "svcauth", "{line}");
        let argv: Vec<&str> = words[1..].iter().map(String::as_str).collect();
        let run = svcauth(&argv, &aws, NOW).await;
        expect(&run, exit::OK);
        if redirect.is_some() {
            assert!(
                service_auth::ApiKey::parse(&run.delivered_key()).is_ok(),
                "{line}"
            );
        }
    }
}
