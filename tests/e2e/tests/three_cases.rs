//! The original design's three end-to-end cases, over HTTP through the local gateway
//! with the real authorizer (development keys) and the real identity-service.

use svcauth_e2e::{dev_key, json, E2e, Keys, STUDENT};

#[tokio::test]
async fn no_key_is_401() {
    let e = E2e::start(Keys::Dev).await;
    let r = e.get_student(None).await;
    assert_eq!(r.status, 401);
    assert_eq!(json(&r), serde_json::json!({"message": "Unauthorized"}));
    // API Gateway refused it: the authorizer was not invoked.
    let log = e.last_access_log();
    assert_eq!(log["errorType"], "UNAUTHORIZED");
    assert_eq!(log["authorizerStatus"], "-");
}

#[tokio::test]
async fn valid_key_is_200_with_the_user() {
    let e = E2e::start(Keys::Dev).await;
    let r = e.get_student(Some(&dev_key("tutor-service"))).await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let user = json(&r);
    assert_eq!(user["id"], STUDENT);
    assert_eq!(user["email"], "ada.student@example.com");
    assert_eq!(user["role"], "student");
    assert_eq!(user["emailVerified"], true);
    let log = e.last_access_log();
    assert_eq!(log["status"], "200");
    assert_eq!(log["serviceId"], "tutor-service");
    assert_eq!(log["authenticatedBy"], "api-key");
    assert_eq!(log["keyId"], "kid_f94915a196acedcb");
}

#[tokio::test]
async fn invalid_key_is_401() {
    let e = E2e::start(Keys::Dev).await;
    let valid = dev_key("tutor-service");
    // One character changed: the checksum no longer matches.
    let mut typo = valid.clone().into_bytes();
    let last = typo.len() - 10;
    typo[last] = if typo[last] == b'a' { b'b' } else { b'a' };
    let typo = String::from_utf8(typo).unwrap();
    for key in [typo.as_str(), "svcauth_dev_not-a-real-key", "nope"] {
        let r = e.get_student(Some(key)).await;
        assert_eq!(r.status, 401, "{key}");
        assert_eq!(json(&r), serde_json::json!({"message": "Unauthorized"}));
        assert_eq!(e.last_access_log()["authorizerStatus"], "401");
    }
    // The revoked and expired development keys too.
    for name in ["tutor-service-revoked", "tutor-service-expired"] {
        assert_eq!(
            e.get_student(Some(&dev_key(name))).await.status,
            401,
            "{name}"
        );
    }
}
