//! tutor-service calling identity-service through the gateway, over HTTP, with its own
//! credentials: the authorizer sees the tutor's key (or IAM the tutor's role), and one
//! correlation id runs through both services' logs.

use serde_json::Value;
use svcauth_e2e::{dev_key, json, settle, E2e, Keys, Logs, ADMIN_AKID, STUDENT};

#[tokio::test]
async fn tutor_service_calls_identity_service_through_the_gateway() {
    let logs = Logs::capture();
    let e = E2e::start(Keys::Dev).await;
    let admin = dev_key("admin-service");
    let r = e
        .call(
            "GET",
            "TutorKeyApi",
            &format!("/internal/tutor/students/{STUDENT}/profile"),
            &[
                ("x-service-api-key", admin.as_str()),
                ("x-correlation-id", "e2e-chain-key-7"),
            ],
            b"",
        )
        .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let profile = json(&r);
    assert_eq!(profile["studentId"], STUDENT);
    assert_eq!(profile["email"], "ada.student@example.com");
    assert_eq!(r.header("x-correlation-id"), Some("e2e-chain-key-7"));

    // Two requests passed the gateway: tutor-service's call to identity-service (with
    // tutor-service's key) inside admin-service's call to tutor-service.
    let log = e.access_log();
    assert_eq!(log.len(), 2, "{log:?}");
    let (inner, outer) = (&log[0], &log[1]);
    assert_eq!(inner["apiId"], "identitykey");
    assert_eq!(inner["route"], "/internal/users/{id}");
    assert_eq!(inner["serviceId"], "tutor-service");
    assert_eq!(inner["status"], "200");
    assert_eq!(outer["apiId"], "tutorkey");
    assert_eq!(outer["serviceId"], "admin-service");
    assert_eq!(outer["status"], "200");

    // The correlation id in the backends' own log lines.
    settle().await;
    let lines = logs.lines_with("e2e-chain-key-7");
    let by = |msg: &str| -> Vec<&Value> {
        lines
            .iter()
            .filter(|l| l["fields"]["message"] == msg)
            .collect()
    };
    let identity = by("user requested by id");
    assert_eq!(identity.len(), 1, "{lines:#?}");
    assert_eq!(identity[0]["fields"]["correlation_id"], "e2e-chain-key-7");
    assert_eq!(identity[0]["fields"]["caller"], "tutor-service");
    assert_eq!(identity[0]["fields"]["auth"], "api-key");
    assert_eq!(identity[0]["span"]["function"], "IdentityServiceFunction");
    let tutor = by("student profile served");
    assert_eq!(tutor.len(), 1, "{lines:#?}");
    assert_eq!(tutor[0]["fields"]["caller"], "admin-service");
    assert_eq!(tutor[0]["span"]["function"], "TutorServiceFunction");
    // Both authorizer decisions carry it too.
    let decisions = lines
        .iter()
        .filter(|l| l["fields"]["event"] == "authorizer_decision")
        .count();
    assert_eq!(decisions, 2);
}

#[tokio::test]
async fn with_iam_the_tutor_signs_its_call_as_its_role() {
    let logs = Logs::capture();
    let e = E2e::start(Keys::Dev).await;
    let r = e
        .call_signed(
            ADMIN_AKID,
            "GET",
            "TutorIamApi",
            &format!("/internal/tutor/students/{STUDENT}/profile"),
            b"",
        )
        .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(json(&r)["studentId"], STUDENT);
    let cid = r.header("x-correlation-id").unwrap().to_owned();
    let log = e.access_log();
    assert_eq!(log.len(), 2, "{log:?}");
    assert_eq!(log[0]["apiId"], "identityiam");
    assert_eq!(
        log[0]["iamCaller"],
        "arn:aws:sts::123456789012:assumed-role/TutorFunctionRole/local-session"
    );
    assert_eq!(log[1]["apiId"], "tutoriam");
    assert_eq!(
        log[1]["iamCaller"],
        "arn:aws:sts::123456789012:assumed-role/AdminServiceRole/local-session"
    );
    settle().await;
    let identity: Vec<Value> = logs
        .lines_with(&cid)
        .into_iter()
        .filter(|l| l["fields"]["message"] == "user requested by id")
        .collect();
    assert_eq!(identity.len(), 1);
    assert_eq!(identity[0]["fields"]["auth"], "iam");
    assert_eq!(
        identity[0]["fields"]["credential"],
        "arn:aws:iam::123456789012:role/TutorFunctionRole"
    );
}

#[tokio::test]
async fn a_caller_without_permission_on_the_tutor_api_is_refused_before_any_backend() {
    let e = E2e::start(Keys::Dev).await;
    let tutor = dev_key("tutor-service");
    let r = e
        .call(
            "GET",
            "TutorKeyApi",
            &format!("/internal/tutor/students/{STUDENT}/profile"),
            &[("x-service-api-key", tutor.as_str())],
            b"",
        )
        .await;
    assert_eq!(r.status, 403);
    assert_eq!(e.access_log().len(), 1);
}
