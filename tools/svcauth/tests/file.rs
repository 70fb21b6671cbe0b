//! svcauth on the local store file (`--store file`, the `SVCAUTH_KEY_SOURCE=file`
//! format), checked with the real authorizer reading that file.

use std::io::{self, Write};
use std::path::PathBuf;
use std::sync::{Arc, Barrier};

use crate::common::*;
use authorizer::KeySource;
use serde_json::Value;
use svcauth::{exit, Aws};

/// No SSM at all: these commands must not need it.
fn no_aws() -> Aws {
    Aws::Client(moto_client("http://127.0.0.1:9"))
}

fn file_args<'a>(file: &'a str, cmd: &[&'a str]) -> Vec<&'a str> {
    let mut v = vec!["--env", "test", "--store", "file", "--file", file];
    v.extend_from_slice(cmd);
    v
}

fn file_authorizer(file: &str, clock: &TestClock) -> authorizer::CachedStore {
    authorizer(KeySource::File(PathBuf::from(file)), clock)
}

#[tokio::test]
async fn create_rotate_revoke_on_the_file_store_as_the_authorizer_reads_it() {
    let dir = TempDir::new("lifecycle");
    let file = dir.path("keys.json");
    let aws = no_aws();
    let run = svcauth(&file_args(&file, &create_tutor(&[])), &aws, NOW).await;
    expect(&run, exit::OK);
    let old = run.delivered_key(); // the file store delivers to stdout by default
    assert!(!std::fs::read_to_string(&file).unwrap().contains(&old));

    let run = svcauth(
        &file_args(
            &file,
            &words("keys rotate --service tutor-service --grace 2h"),
        ),
        &aws,
        NOW + 60,
    )
    .await;
    expect(&run, exit::OK);
    let new = run.delivered_key();
    let clock = TestClock::at(NOW + 120);
    let store = file_authorizer(&file, &clock);
    assert_accepted(&store, &old, "tutor-service").await;
    assert_accepted(&store, &new, "tutor-service").await;
    clock.set(NOW + 60 + 2 * 3600);
    assert_refused(&store, &old).await;
    assert_accepted(&store, &new, "tutor-service").await;

    let run = svcauth(
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
        NOW + 200,
    )
    .await;
    expect(&run, exit::OK);
    let store = file_authorizer(&file, &clock);
    assert_refused(&store, &new).await;
    assert!(
        !PathBuf::from(format!("{file}.lock")).exists(),
        "the lock file is removed"
    );
}

/// A writer that fails, like a closed pipe.
struct BrokenPipe;

impl Write for BrokenPipe {
    fn write(&mut self, _: &[u8]) -> io::Result<usize> {
        Err(io::Error::new(io::ErrorKind::BrokenPipe, "closed"))
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn a_full_document_refuses_a_rotation_until_prune_removes_ended_keys() {
    let dir = TempDir::new("prune");
    let file = dir.path("keys.json");
    let aws = no_aws();
    let day = 24 * 3600;
    let run = svcauth(&file_args(&file, &create_tutor(&[])), &aws, NOW).await;
    expect(&run, exit::OK);
    // One rotation a day with a one-hour grace: the document fills up.
    let rotate = words("keys rotate --service tutor-service --grace 1h");
    let mut t = NOW;
    let mut newest = run.delivered_key();
    for _ in 1..32 {
        t += day;
        let run = svcauth(&file_args(&file, &rotate), &aws, t).await;
        expect(&run, exit::OK);
        newest = run.delivered_key();
    }
    t += day;
    let full = svcauth(&file_args(&file, &rotate), &aws, t).await;
    expect(&full, exit::STORE);
    assert!(
        full.stderr
            .contains("svcauth keys prune --service tutor-service"),
        "{full:?}"
    );

    // The default keeps 30 days of ended records: of the 31 old keys only the first
    // (expired one hour after the first rotation) ended more than 30 days ago.
    let prune = words("keys prune --service tutor-service");
    let dry = svcauth(
        &file_args(&file, &[&prune[..], &["--dry-run"]].concat()),
        &aws,
        t,
    )
    .await;
    expect(&dry, exit::OK);
    assert!(dry.stderr.contains("would remove 1 record(s)"), "{dry:?}");
    let before = std::fs::read_to_string(&file).unwrap();
    let run = svcauth(&file_args(&file, &prune), &aws, t).await;
    expect(&run, exit::OK);
    assert!(run.stderr.contains("removed 1 record(s)"), "{run:?}");
    assert!(run.stderr.contains("31 left"), "{run:?}");
    assert_ne!(std::fs::read_to_string(&file).unwrap(), before);
    let again = svcauth(&file_args(&file, &prune), &aws, t).await;
    expect(&again, exit::NOT_ACCEPTED);
    assert!(again.stderr.contains("nothing to do"), "{again:?}");

    // Room again: the rotation goes through, and the authorizer takes the new key and
    // refuses a pruned one as unknown.
    let run = svcauth(&file_args(&file, &rotate), &aws, t).await;
    expect(&run, exit::OK);
    let rotated = run.delivered_key();
    let clock = TestClock::at(t + 60);
    let store = file_authorizer(&file, &clock);
    assert_accepted(&store, &rotated, "tutor-service").await;
    assert_accepted(&store, &newest, "tutor-service").await; // its grace period
    let everything = svcauth(
        &file_args(&file, &words("keys prune --older-than 0s")),
        &aws,
        t + 2 * 3600,
    )
    .await;
    expect(&everything, exit::OK);
    assert!(everything.stderr.contains("1 left"), "{everything:?}");
    let list = svcauth(&file_args(&file, &words("keys list --json")), &aws, t).await;
    assert_eq!(
        key_ids(&list.stdout, "tutor-service"),
        vec![key_id(&rotated)]
    );
    clock.set(t + 2 * 3600);
    assert_accepted(&store, &rotated, "tutor-service").await;
    assert_refused(&store, &newest).await;

    let nobody = svcauth(
        &file_args(&file, &words("keys prune --service nobody")),
        &aws,
        t,
    )
    .await;
    expect(&nobody, exit::NOT_FOUND);
}

#[tokio::test]
async fn a_failed_delivery_revokes_the_record_it_just_stored() {
    let dir = TempDir::new("delivery");
    let file = dir.path("keys.json");
    let aws = no_aws();
    let (code, stderr) = svcauth_with(
        &file_args(&file, &create_tutor(&[])),
        &aws,
        NOW,
        "",
        &mut BrokenPipe,
    )
    .await;
    assert_eq!(code, exit::DELIVERY, "{stderr}");
    assert!(stderr.contains("revoked again"), "{stderr}");
    let list = svcauth(&file_args(&file, &words("keys list --json")), &aws, NOW).await;
    let rows: Vec<Value> = serde_json::from_str(&list.stdout).unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(
        rows[0]["status"], "revoked",
        "no undelivered key stays active"
    );
}

#[test]
fn concurrent_writers_on_the_file_store_lose_no_key() {
    let dir = TempDir::new("concurrent");
    let file = dir.path("keys.json");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let first = rt.block_on(async {
        let run = svcauth(&file_args(&file, &create_tutor(&[])), &no_aws(), NOW).await;
        expect(&run, exit::OK);
        run.delivered_key()
    });

    const WRITERS: usize = 8;
    let start = Arc::new(Barrier::new(WRITERS + 1));
    let mut threads = Vec::new();
    for i in 0..=WRITERS {
        let (file, start, first_id) = (file.clone(), start.clone(), key_id(&first));
        threads.push(std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            start.wait();
            rt.block_on(async {
                if i == WRITERS {
                    svcauth(
                        &file_args(
                            &file,
                            &words(&format!(
                                "keys revoke --service tutor-service --key-id {first_id}"
                            )),
                        ),
                        &no_aws(),
                        NOW + 5,
                    )
                    .await
                } else {
                    svcauth(
                        &file_args(&file, &words("keys create --service tutor-service")),
                        &no_aws(),
                        NOW + 5,
                    )
                    .await
                }
            })
        }));
    }
    let runs: Vec<Run> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    let mut created = Vec::new();
    for (i, run) in runs.iter().enumerate() {
        expect(run, exit::OK);
        if i < WRITERS {
            created.push(run.delivered_key());
        }
    }

    rt.block_on(async {
        let clock = TestClock::at(NOW + 10);
        let store = file_authorizer(&file, &clock);
        for key in &created {
            assert_accepted(&store, key, "tutor-service").await;
        }
        assert_refused(&store, &first).await;
        let list = svcauth(
            &file_args(&file, &words("keys list --json")),
            &no_aws(),
            NOW + 10,
        )
        .await;
        assert_eq!(key_ids(&list.stdout, "tutor-service").len(), WRITERS + 1);
    });
}

#[tokio::test]
async fn import_legacy_from_a_file_takes_permissions_per_service_and_keeps_no_clear_value() {
    let dir = TempDir::new("import");
    let file = dir.path("keys.json");
    let legacy = dir.path("legacy.json");
    let tutor_key = "T".repeat(64);
    let admin_key = "A".repeat(64);
    std::fs::write(
        &legacy,
        format!(r#"{{"{tutor_key}": "tutor-service", "{admin_key}": "admin-service"}}"#),
    )
    .unwrap();
    let aws = no_aws();

    let run = svcauth(
        &file_args(
            &file,
            &[
                "keys",
                "import-legacy",
                "--from-file",
                &legacy,
                "--service",
                "tutor-service",
                "--permissions",
                TUTOR_PERMS,
                "--api",
                "identity",
            ],
        ),
        &aws,
        NOW,
    )
    .await;
    expect(&run, exit::OK);
    let run = svcauth(
        &file_args(&file, &["keys", "import-legacy", "--from-file", &legacy]),
        &aws,
        NOW,
    )
    .await;
    expect(&run, exit::OK);
    assert!(
        run.stderr
            .contains("warning: admin-service has no permissions"),
        "{run:?}"
    );

    let stored = std::fs::read_to_string(&file).unwrap();
    assert!(!stored.contains(&tutor_key) && !stored.contains(&admin_key));
    let clock = TestClock::at(NOW + 10);
    let store = file_authorizer(&file, &clock);
    assert_accepted(&store, &tutor_key, "tutor-service").await;
    // Authenticated, with no permissions: the policy allows nothing.
    let resp = authorize(&store, &admin_key).await.unwrap();
    assert_eq!(resp.principal_id.as_deref(), Some("admin-service"));

    let check = svcauth_stdin(
        &file_args(&file, &words("keys check --service tutor-service")),
        &aws,
        NOW,
        &tutor_key,
    )
    .await;
    expect(&check, exit::OK);
    assert!(check.stdout.contains("GET /internal/users/*"), "{check:?}");

    let again = svcauth(
        &file_args(&file, &["keys", "import-legacy", "--from-file", &legacy]),
        &aws,
        NOW,
    )
    .await;
    expect(&again, exit::NOT_ACCEPTED);
    let bad = dir.path("bad.json");
    std::fs::write(&bad, r#"["not a map"]"#).unwrap();
    let run = svcauth(
        &file_args(&file, &["keys", "import-legacy", "--from-file", &bad]),
        &aws,
        NOW,
    )
    .await;
    expect(&run, exit::USAGE);
}
