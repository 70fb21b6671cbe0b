//! identity-service behind the gateway with its users in DynamoDB, as configured by
//! `USERS_TABLE` / `--users-table` with the AWS SDK's default configuration: here a
//! moto_server on 127.0.0.1 named by `AWS_ENDPOINT_URL`.

use aws_sdk_dynamodb::types::AttributeValue;
use local_gateway::services::UsersSource;
use svcauth_e2e::{dev_key, json, E2e, Keys, STUDENT};
use test_support::MotoServer;

#[tokio::test]
async fn users_live_in_dynamodb_when_a_table_is_configured() {
    let moto = MotoServer::start();
    // This test binary has this one test: nothing else reads the environment.
    moto.point_process_sdk_here();
    let sdk = aws_config_defaults().await;
    let client = aws_sdk_dynamodb::Client::new(&sdk);
    identity_service::create_table(&client, "users-e2e")
        .await
        .unwrap();

    let e = E2e::start_with(Keys::Dev, |f| {
        f.users = UsersSource::DynamoDb {
            table: "users-e2e".into(),
        }
    })
    .await;
    let admin = dev_key("admin-service");
    let tutor = dev_key("tutor-service");
    // The development users are not in the table.
    assert_eq!(e.get_student(Some(&tutor)).await.status, 404);
    let r = e
        .call(
            "POST",
            "IdentityKeyApi",
            "/internal/users",
            &[
                ("x-service-api-key", admin.as_str()),
                ("content-type", "application/json"),
            ],
            br#"{"email":"in.dynamo@example.com","role":"student"}"#,
        )
        .await;
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    let id = json(&r)["id"].as_str().unwrap().to_owned();
    assert_ne!(id, STUDENT);
    let item = client
        .get_item()
        .table_name("users-e2e")
        .key("id", AttributeValue::S(id.clone()))
        .send()
        .await
        .unwrap();
    assert_eq!(
        item.item()
            .and_then(|i| i.get("email"))
            .and_then(|v| v.as_s().ok())
            .map(String::as_str),
        Some("in.dynamo@example.com")
    );
    let r = e
        .call(
            "GET",
            "IdentityKeyApi",
            "/internal/users/by-email/in.dynamo%40example.com",
            &[("x-service-api-key", tutor.as_str())],
            b"",
        )
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(json(&r)["id"], id.as_str());
}

async fn aws_config_defaults() -> aws_config::SdkConfig {
    aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await
}
