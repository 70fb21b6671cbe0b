//! Authorization through the gateway: the authorizer's policy covers the service's
//! routes only, and the cached policy answers later calls with the same key.

use serde_json::json;
use svcauth_e2e::{dev_key, json, settle, E2e, Keys, Logs, STUDENT};

#[tokio::test]
async fn tutor_key_on_the_admin_only_route_is_403_also_from_the_cache() {
    let logs = Logs::capture();
    let e = E2e::start(Keys::Dev).await;
    let tutor = dev_key("tutor-service");
    let body = br#"{"email":"new.student@example.com","role":"student"}"#;
    let headers = [
        ("x-service-api-key", tutor.as_str()),
        ("content-type", "application/json"),
        ("x-correlation-id", "e2e-admin-route-403"),
    ];
    let first = e
        .call("POST", "IdentityKeyApi", "/internal/users", &headers, body)
        .await;
    let first_log = e.last_access_log();
    let second = e
        .call("POST", "IdentityKeyApi", "/internal/users", &headers, body)
        .await;
    let second_log = e.last_access_log();
    let denied = json!({"Message": "User is not authorized to access this resource"});
    assert_eq!((first.status, json(&first)), (403, denied.clone()));
    assert_eq!((second.status, json(&second)), (403, denied));
    // The first call invoked the authorizer, the second was decided from its cache.
    assert_eq!(first_log["authorizerStatus"], "403");
    assert!(first_log["authorizerLatencyMs"]
        .as_str()
        .unwrap()
        .parse::<u64>()
        .is_ok());
    assert_eq!(second_log["authorizerStatus"], "403");
    assert_eq!(second_log["authorizerLatencyMs"], "-");
    assert_eq!(second_log["serviceId"], "tutor-service");
    assert_eq!(second_log["errorType"], "ACCESS_DENIED");
    settle().await;
    let decisions: Vec<_> = logs
        .lines_with("e2e-admin-route-403")
        .into_iter()
        .filter(|l| l["fields"]["event"] == "authorizer_decision")
        .collect();
    assert_eq!(decisions.len(), 1, "{decisions:?}");
    // The authorizer allowed the service (its policy does not cover this route).
    assert_eq!(decisions[0]["fields"]["decision"], "deny");
    assert_eq!(decisions[0]["fields"]["reason"], "route_not_permitted");
    // The user was not created.
    let r = e
        .call(
            "GET",
            "IdentityKeyApi",
            "/internal/users/by-email/new.student%40example.com",
            &[("x-service-api-key", tutor.as_str())],
            b"",
        )
        .await;
    assert_eq!(r.status, 404);
}

#[tokio::test]
async fn one_cached_policy_serves_every_route_of_the_service() {
    let logs = Logs::capture();
    let e = E2e::start(Keys::Dev).await;
    let tutor = dev_key("tutor-service");
    let h = [
        ("x-service-api-key", tutor.as_str()),
        ("x-correlation-id", "e2e-one-policy"),
    ];
    let by_id = e
        .call(
            "GET",
            "IdentityKeyApi",
            &format!("/internal/users/{STUDENT}"),
            &h,
            b"",
        )
        .await;
    let by_email = e
        .call(
            "GET",
            "IdentityKeyApi",
            "/internal/users/by-email/ada.student%40example.com",
            &h,
            b"",
        )
        .await;
    assert_eq!(by_id.status, 200);
    assert_eq!(by_email.status, 200);
    assert_eq!(json(&by_email)["id"], STUDENT);
    settle().await;
    let decisions = logs
        .lines_with("e2e-one-policy")
        .into_iter()
        .filter(|l| l["fields"]["event"] == "authorizer_decision")
        .count();
    assert_eq!(decisions, 1);
}

#[tokio::test]
async fn the_admin_service_creates_a_user_the_tutor_service_then_reads() {
    let e = E2e::start(Keys::Dev).await;
    let admin = dev_key("admin-service");
    let r = e
        .call(
            "POST",
            "IdentityKeyApi",
            "/internal/users",
            &[
                ("x-service-api-key", admin.as_str()),
                ("content-type", "application/json"),
            ],
            br#"{"email":"Grace.New@Example.com","role":"tutor","emailVerified":true}"#,
        )
        .await;
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    let created = json(&r);
    assert_eq!(created["email"], "grace.new@example.com");
    assert!(r
        .header("location")
        .unwrap()
        .ends_with(created["id"].as_str().unwrap()));
    let tutor = dev_key("tutor-service");
    let r = e
        .call(
            "GET",
            "IdentityKeyApi",
            &format!("/internal/users/{}", created["id"].as_str().unwrap()),
            &[("x-service-api-key", tutor.as_str())],
            b"",
        )
        .await;
    assert_eq!((r.status, json(&r)), (200, created));
}
