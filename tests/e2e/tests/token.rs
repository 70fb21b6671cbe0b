//! Signed service tokens end to end, `AuthMode=token`, with the signing key in KMS on
//! a moto_server (as deployed, no development key): the key published into the key set
//! in moto's SSM with `svcauth tokens keys add`, a token issued by the real
//! token-issuer through the gateway's token API (for a key and for a SigV4 signature),
//! verified by the real authorizer reading that key set from SSM, and a backend
//! reached with it that sees a token caller; a tampered and an expired token refused.
//! Its own process: it points the AWS SDK at moto through environment variables.

use base64::Engine;
use local_gateway::services::TokenSigning;
use serde_json::Value;
use service_auth::UnixTime;
use svcauth_e2e::{dev_key, json, settle, svcauth, E2e, Keys, Logs, STUDENT, TUTOR_AKID};
use test_support::MotoServer;
use token_kms::aws_sdk_kms;

const ALIAS: &str = "alias/svcauth-token-dev";

/// Part `index` of a compact JWS (0 the header, 1 the claims), decoded.
fn part_of(token: &str, index: usize) -> Value {
    let part = token.split('.').nth(index).unwrap();
    serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(part)
            .unwrap(),
    )
    .unwrap()
}

/// The token in an issuer answer.
fn token_of(r: &local_gateway::http::Response) -> String {
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    json(r)["token"].as_str().unwrap().to_owned()
}

/// `POST /token` with `key`: the issuer's answer.
async fn trade_key(e: &E2e, key: &str) -> local_gateway::http::Response {
    e.call(
        "POST",
        "TokenApi",
        "/token",
        &[("x-service-api-key", key)],
        b"",
    )
    .await
}

/// `GET /internal/users/{STUDENT}` on the identity API with one header.
async fn get_student_with(e: &E2e, header: (&str, &str)) -> local_gateway::http::Response {
    e.call(
        "GET",
        "IdentityKeyApi",
        &format!("/internal/users/{STUDENT}"),
        &[header],
        b"",
    )
    .await
}

#[tokio::test]
async fn a_kms_signed_token_is_verified_by_the_authorizer_and_the_backend_sees_a_token_caller() {
    let moto = MotoServer::start();
    // This test binary has this one test: nothing else reads the environment.
    moto.point_process_sdk_here();
    let logs = Logs::capture();
    let sdk = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let kms = aws_sdk_kms::Client::new(&sdk);
    let key_id = test_support::create_kms_key(
        &kms,
        aws_sdk_kms::types::KeySpec::EccNistP256,
        aws_sdk_kms::types::KeyUsageType::SignVerify,
    )
    .await;
    kms.create_alias()
        .alias_name(ALIAS)
        .target_key_id(&key_id)
        .send()
        .await
        .unwrap();
    // Published before it signs (the issuer refuses to sign with an unpublished key).
    svcauth(
        &["--env", "dev", "tokens", "keys", "add", "--key", ALIAS],
        UnixTime(svcauth_e2e::NOW),
    )
    .await;
    let listed = svcauth(
        &["--env", "dev", "tokens", "keys", "list"],
        UnixTime(svcauth_e2e::NOW),
    )
    .await;
    assert!(listed.contains(&key_id), "{listed}");

    let e = E2e::start_in_mode("token", Keys::Dev, |f| {
        f.token_signing = TokenSigning::Kms {
            key: ALIAS.to_owned(),
        }
    })
    .await;
    let tutor_key = dev_key("tutor-service");

    // A token for tutor-service's key, signed by KMS: its kid is the KMS key id, its
    // type at+jwt.
    let r = trade_key(&e, &tutor_key).await;
    let token = token_of(&r);
    let issued = json(&r);
    assert_eq!(issued["tokenType"], "Bearer");
    assert_eq!(issued["expiresIn"], 600);
    let header = part_of(&token, 0);
    assert_eq!(header["kid"], key_id.as_str());
    assert_eq!(header["alg"], "ES256");
    assert_eq!(header["typ"], "at+jwt");

    // The key alone is no credential on a token-only API: API Gateway refuses it
    // (identity source Authorization missing) before the authorizer.
    let r = get_student_with(&e, ("x-service-api-key", &tutor_key)).await;
    assert_eq!(r.status, 401);

    // Verified by the authorizer against the key set in SSM; the backend sees a token
    // caller.
    let bearer = format!("Bearer {token}");
    let r = get_student_with(&e, ("Authorization", &bearer)).await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(json(&r)["id"], STUDENT);
    let log = e.last_access_log();
    assert_eq!(log["serviceId"], "tutor-service", "{log}");
    assert_eq!(log["authenticatedBy"], "token", "{log}");
    settle().await;
    let seen = logs.lines_with("user requested by id");
    let line = seen.last().expect("identity-service logged the call");
    assert_eq!(line["fields"]["caller"], "tutor-service", "{line}");
    assert_eq!(line["fields"]["auth"], "token", "{line}");

    // A token whose payload was changed after signing (another service): 401.
    let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let mut claims = part_of(&token, 1);
    claims["sub"] = "admin-service".into();
    parts[1] = b64.encode(serde_json::to_vec(&claims).unwrap());
    let tampered = format!("Bearer {}", parts.join("."));
    let r = get_student_with(&e, ("Authorization", &tampered)).await;
    assert_eq!(r.status, 401);
    settle().await;
    let refused = logs.lines_with("bad_signature");
    assert!(
        !refused.is_empty(),
        "the authorizer logged no bad_signature"
    );
    for l in logs.lines_with("authorizer_decision") {
        let text = l.to_string();
        assert!(
            !text.contains(&token) && !text.contains(&parts[2]),
            "a token in a log line: {text}"
        );
    }

    // A token for tutor-service's role, through SigV4 on POST /token/iam.
    let r = e
        .call_signed(TUTOR_AKID, "POST", "TokenApi", "/token/iam", b"")
        .await;
    let iam_token = token_of(&r);
    let claims = part_of(&iam_token, 1);
    assert_eq!(claims["sub"], "tutor-service");
    assert_eq!(claims["proof"]["method"], "iam");

    // admin-service calls tutor-service with a token; tutor-service (token mode by
    // its template configuration) trades its role for a token of its own and calls
    // identity-service with it.
    let admin = token_of(&trade_key(&e, &dev_key("admin-service")).await);
    let r = e
        .call(
            "GET",
            "TutorKeyApi",
            &format!("/internal/tutor/students/{STUDENT}/profile"),
            &[("Authorization", format!("Bearer {admin}").as_str())],
            b"",
        )
        .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(json(&r)["studentId"], STUDENT);

    // Expired: past its exp (and the 60 s result cache), the same token is refused.
    e.clock.advance(600 + 31);
    let r = get_student_with(&e, ("Authorization", &bearer)).await;
    assert_eq!(r.status, 401);
    settle().await;
    assert!(
        !logs.lines_with("\"expired\"").is_empty(),
        "the authorizer logged no expired refusal"
    );
}
