//! The development keys: only their file reads them, and no build holds them.

use crate::common::*;

use authorizer::{handle, key_source, Config, ConfigError, LoadError};

/// The hex SHA-256 hashes of the development keys (`dev/dev-store.json`).
fn dev_key_hashes() -> Vec<String> {
    let docs = read_json(&dev_store_file());
    let hashes: Vec<String> = docs
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|d| d["keys"].as_array().unwrap().iter())
        .map(|k| k["sha256"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(hashes.len(), 5, "the development store's five keys");
    hashes
}

/// Every run of exactly 64 lowercase hex digits in `bytes`.
fn hex64_runs(bytes: &[u8]) -> std::collections::HashSet<&[u8]> {
    let mut runs = std::collections::HashSet::new();
    let mut start = 0;
    for (i, b) in bytes.iter().chain(std::iter::once(&0)).enumerate() {
        if !matches!(b, b'0'..=b'9' | b'a'..=b'f') {
            if i - start == 64 {
                runs.insert(&bytes[start..i]);
            }
            start = i + 1;
        }
    }
    runs
}

/// The development keys are never in a build. The authorizer binary (this
/// crate's only binary, the one `sam build` packages alone) holds none of their
/// hashes: the development store is a file (`dev/dev-store.json`), read like any
/// store file, and a deployed function has no such file. (It used to be embedded
/// behind a cargo feature, kept out of the deployed build by the workspace's
/// `default-members`; this crate's tests enabled it, so this binary held them.)
#[test]
fn no_build_holds_the_development_keys() {
    let binary = std::fs::read(env!("CARGO_BIN_EXE_authorizer")).expect("the authorizer binary");
    let runs = hex64_runs(&binary);
    for hash in dev_key_hashes() {
        assert!(
            !runs.contains(hash.as_bytes()),
            "the authorizer binary holds the development key hash {hash}"
        );
    }
    // The scan finds a hash where there is one.
    let text = std::fs::read(dev_store_file()).unwrap();
    assert_eq!(hex64_runs(&text).len(), 5);
}

/// `SVCAUTH_KEY_SOURCE=dev` names no store in any build: the authorizer starts,
/// refuses every request, the development keys included, and says how to read them
/// for a local run (the file).
#[tokio::test]
async fn the_dev_source_refuses_everything_and_says_why() {
    let lookup = |k: &str| (k == "SVCAUTH_KEY_SOURCE").then(|| "dev".to_owned());
    assert_eq!(Config::from_lookup(lookup), Err(ConfigError::DevSource));
    let config = Config::from_lookup_or_refusing(lookup);
    let source = key_source(&config).await;
    match source.load(service_auth::UnixTime::now()).await {
        Err(LoadError::Misconfigured(msg)) => {
            assert_eq!(msg, ConfigError::DevSource.to_string());
            assert!(
                msg.contains("SVCAUTH_KEYS_FILE=dev/dev-store.json"),
                "{msg}"
            );
        }
        other => panic!("SVCAUTH_KEY_SOURCE=dev loaded {other:?}"),
    }
    let store = store(source, &TestClock::at(NOW));
    store.reload_now().await;
    for name in [
        "authorizer-valid-key",
        "authorizer-admin-key",
        "authorizer-legacy-key",
    ] {
        assert!(handle(&store, &event(name)).await.is_err(), "{name}");
    }
    // The same events with the development store read as its file: allowed.
    for name in ["authorizer-valid-key", "authorizer-admin-key"] {
        assert!(handle(&dev_store(), &event(name)).await.is_ok(), "{name}");
    }
}
