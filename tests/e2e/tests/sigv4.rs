//! `AWS_IAM` routes through the gateway: SigV4 verified against the development
//! credentials, the role's `execute-api` policy from the template applied, and the
//! backend's caller taken from the signing role.

use serde_json::json;
use service_auth::UnixTime;
use svcauth_e2e::{json, E2e, Keys, ADMIN_AKID, STUDENT, TUTOR_AKID};

#[tokio::test]
async fn sigv4_signed_call_by_the_tutor_role_is_200() {
    let e = E2e::start(Keys::Dev).await;
    let r = e
        .call_signed(
            TUTOR_AKID,
            "GET",
            "IdentityIamApi",
            &format!("/internal/users/{STUDENT}"),
            b"",
        )
        .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(json(&r)["id"], STUDENT);
    let log = e.last_access_log();
    assert_eq!(
        log["iamCaller"],
        "arn:aws:sts::123456789012:assumed-role/TutorServiceRole/local-session"
    );
    assert_eq!(log["serviceId"], "-");
    // Within the 15 minutes SigV4 allows.
    e.clock.advance(14 * 60);
    let r = e
        .call_signed(
            TUTOR_AKID,
            "GET",
            "IdentityIamApi",
            "/internal/users/by-email/ada.student%40example.com",
            b"",
        )
        .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
}

#[tokio::test]
async fn the_roles_iam_policies_decide_the_route() {
    let e = E2e::start(Keys::Dev).await;
    let body = br#"{"email":"iam.created@example.com","role":"student"}"#;
    let r = e
        .call_signed(
            TUTOR_AKID,
            "POST",
            "IdentityIamApi",
            "/internal/users",
            body,
        )
        .await;
    assert_eq!(r.status, 403);
    assert_eq!(
        json(&r),
        json!({"Message": "User: arn:aws:sts::123456789012:assumed-role/TutorServiceRole/local-session is not authorized to perform: execute-api:Invoke on resource: arn:aws:execute-api:us-east-1:123456789012:identityiam/v1/POST/internal/users"})
    );
    let r = e
        .call_signed(
            ADMIN_AKID,
            "POST",
            "IdentityIamApi",
            "/internal/users",
            body,
        )
        .await;
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(json(&r)["email"], "iam.created@example.com");
}

#[tokio::test]
async fn unsigned_and_badly_signed_calls_are_403() {
    let e = E2e::start(Keys::Dev).await;
    let path = format!("/internal/users/{STUDENT}");
    let r = e.call("GET", "IdentityIamApi", &path, &[], b"").await;
    assert_eq!(
        (r.status, json(&r)),
        (403, json!({"message": "Missing Authentication Token"}))
    );
    // A development API key is no credential on an IAM API.
    let key = svcauth_e2e::dev_key("tutor-service");
    let r = e
        .call(
            "GET",
            "IdentityIamApi",
            &path,
            &[("x-service-api-key", &key)],
            b"",
        )
        .await;
    assert_eq!(r.status, 403);
    // A signature made 16 minutes ago.
    let now = e.clock.now();
    e.clock.set(now - 16 * 60);
    let creds = local_gateway::LocalCredentials::dev()
        .credentials(TUTOR_AKID)
        .unwrap();
    let target = e.target("IdentityIamApi", &path);
    let mut headers = vec![("Host".to_owned(), e.gw.addr().to_string())];
    local_gateway::sigv4::sign_headers(
        "GET",
        &target,
        &mut headers,
        b"",
        &creds,
        "us-east-1",
        UnixTime(e.clock.now()),
    )
    .unwrap();
    e.clock.set(now);
    let hs: Vec<(&str, &str)> = headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let r = local_gateway::client::request(e.gw.addr(), "GET", &target, &hs, b"")
        .await
        .unwrap();
    assert_eq!(r.status, 403);
    assert!(json(&r)["message"]
        .as_str()
        .unwrap()
        .starts_with("Signature expired"));
    // The same signature on another path.
    let other = e.target("IdentityIamApi", "/internal/users/someone-else");
    let mut headers = vec![("Host".to_owned(), e.gw.addr().to_string())];
    local_gateway::sigv4::sign_headers(
        "GET",
        &other,
        &mut headers,
        b"",
        &creds,
        "us-east-1",
        UnixTime(e.clock.now()),
    )
    .unwrap();
    let hs: Vec<(&str, &str)> = headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let r = local_gateway::client::request(e.gw.addr(), "GET", &target, &hs, b"")
        .await
        .unwrap();
    assert_eq!(r.status, 403);
    assert!(json(&r)["message"]
        .as_str()
        .unwrap()
        .starts_with("The request signature we calculated"));
}
