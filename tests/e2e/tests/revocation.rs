//! A key revoked in the store keeps working until the caches in front of the store
//! expire, then fails, shown without sleeping: the gateway's authorizer result cache
//! (the template's `ReauthorizeEvery`, 300 s) and the authorizer's own store cache
//! (`SVCAUTH_CACHE_TTL_SECS`, 500 s here so both phases show) read the same clock, which
//! the test moves. The key and its revocation are written by `svcauth` into a store
//! file the authorizer reads (`SVCAUTH_KEY_SOURCE=file`).

use service_auth::{ApiKey, UnixTime};
use svcauth_e2e::{json, svcauth, E2e, Keys, TempDir, NOW, STUDENT};

#[tokio::test]
async fn a_revoked_key_works_until_the_ttls_end_then_fails() {
    let dir = TempDir::new("revocation");
    let file = dir.0.join("keys.json");
    let file_arg = file.display().to_string();
    let store = ["--store", "file", "--file", file_arg.as_str()];

    // A new key for tutor-service, delivered on stdout.
    let mut args = vec![
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
    ];
    args.extend(store);
    let key = svcauth(&args, UnixTime(NOW - 60)).await.trim().to_owned();
    let key_id = ApiKey::parse(&key)
        .expect("svcauth printed a key")
        .key_id()
        .to_string();

    let e = E2e::start(Keys::File {
        path: file.clone(),
        store_ttl_secs: 500,
    })
    .await;
    let call = |at: u64| {
        e.clock.set(at);
        e.get_student(Some(&key))
    };
    let r = call(NOW).await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(json(&r)["id"], STUDENT);
    assert_eq!(e.last_access_log()["keyId"], key_id);

    // Revoked one second later.
    let mut args = vec![
        "keys",
        "revoke",
        "--service",
        "tutor-service",
        "--key-id",
        key_id.as_str(),
    ];
    args.extend(store);
    svcauth(&args, UnixTime(NOW + 1)).await;
    let doc = std::fs::read_to_string(&file).unwrap();
    assert!(doc.contains("\"revoked\""), "{doc}");

    // Until the result cache ends, API Gateway does not ask the authorizer.
    assert_eq!(call(NOW + 299).await.status, 200);
    assert_eq!(e.last_access_log()["authorizerLatencyMs"], "-");
    // Then the authorizer is asked, but its store (loaded at NOW) is still fresh.
    assert_eq!(call(NOW + 300).await.status, 200);
    let log = e.last_access_log();
    assert_eq!(log["authorizerStatus"], "200");
    assert_ne!(log["authorizerLatencyMs"], "-");
    assert_eq!(call(NOW + 599).await.status, 200);
    // Both caches have ended: the store is read again and the key is refused.
    let r = call(NOW + 600).await;
    assert_eq!(r.status, 401);
    assert_eq!(json(&r), serde_json::json!({"message": "Unauthorized"}));
    assert_eq!(e.last_access_log()["authorizerStatus"], "401");
    // And stays refused (a refusal is not cached).
    assert_eq!(call(NOW + 601).await.status, 401);
    assert_eq!(e.last_access_log()["authorizerStatus"], "401");
}
