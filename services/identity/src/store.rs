//! Users in DynamoDB: table `USERS_TABLE`, partition key `id` (S), global secondary
//! index `email-index` on `email` (S).
//!
//! Emails are unique: a create writes the user and a guard item `id = "email#<email>"`
//! in one transaction, each conditional on not existing. Guard items have no `email`
//! attribute (so they are not in the index) and their id cannot pass
//! [`UserId::parse`](crate::user::UserId::parse), so the API never returns one.
//!
//! [`Users::in_memory`] keeps users in process instead, with the same answers (the
//! local gateway's development store).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use aws_sdk_dynamodb::error::{DisplayErrorContext, SdkError};
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, GlobalSecondaryIndex, KeySchemaElement,
    KeyType, Projection, ProjectionType, Put, ScalarAttributeType, TransactWriteItem,
};
use aws_sdk_dynamodb::Client;

use crate::user::{Email, User, UserId};

/// Name of the email index.
pub const EMAIL_INDEX: &str = "email-index";
const GUARD_PREFIX: &str = "email#";

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("a user with this email already exists")]
    EmailTaken,
    #[error("DynamoDB {op} on table {table} failed: {reason}")]
    Backend {
        op: &'static str,
        table: String,
        reason: String,
    },
    #[error("item {id:?} in table {table} is not a user: {reason}")]
    Corrupt {
        table: String,
        id: String,
        reason: &'static str,
    },
}

/// The users table.
#[derive(Debug, Clone)]
pub struct Users {
    backend: Backend,
    table: String,
}

#[derive(Debug, Clone)]
enum Backend {
    DynamoDb(Client),
    /// Local runs only: lost when the process ends.
    Memory(Arc<Mutex<Vec<User>>>),
}

type Item = HashMap<String, AttributeValue>;

impl Users {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            backend: Backend::DynamoDb(client),
            table: table.into(),
        }
    }

    /// Users kept in memory, starting with `users` (local development, no AWS).
    pub fn in_memory(users: Vec<User>) -> Self {
        Self {
            backend: Backend::Memory(Arc::new(Mutex::new(users))),
            table: "(in memory)".into(),
        }
    }

    fn client(&self) -> Result<&Client, &Mutex<Vec<User>>> {
        match &self.backend {
            Backend::DynamoDb(c) => Ok(c),
            Backend::Memory(m) => Err(m),
        }
    }

    pub fn table(&self) -> &str {
        &self.table
    }

    fn backend<E: std::error::Error>(&self, op: &'static str, e: E) -> StoreError {
        StoreError::Backend {
            op,
            table: self.table.clone(),
            reason: DisplayErrorContext(e).to_string(),
        }
    }

    /// The user with this id (strongly consistent read).
    pub async fn get(&self, id: &UserId) -> Result<Option<User>, StoreError> {
        let client = match self.client() {
            Ok(c) => c,
            Err(m) => {
                let users = m.lock().unwrap_or_else(|e| e.into_inner());
                return Ok(users.iter().find(|u| u.id == id.as_str()).cloned());
            }
        };
        let out = client
            .get_item()
            .table_name(&self.table)
            .key("id", AttributeValue::S(id.as_str().to_owned()))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| self.backend("GetItem", e))?;
        out.item().map(|i| self.user_from(i)).transpose()
    }

    /// The user with this email, through the email index. Works with any index
    /// projection: a projected item missing attributes is completed by id.
    pub async fn by_email(&self, email: &Email) -> Result<Option<User>, StoreError> {
        let client = match self.client() {
            Ok(c) => c,
            Err(m) => {
                let users = m.lock().unwrap_or_else(|e| e.into_inner());
                return Ok(users
                    .iter()
                    .find(|u| u.email.eq_ignore_ascii_case(email.as_str()))
                    .cloned());
            }
        };
        let out = client
            .query()
            .table_name(&self.table)
            .index_name(EMAIL_INDEX)
            .key_condition_expression("#e = :e")
            .expression_attribute_names("#e", "email")
            .expression_attribute_values(":e", AttributeValue::S(email.as_str().to_owned()))
            .limit(2)
            .send()
            .await
            .map_err(|e| self.backend("Query", e))?;
        let items = out.items();
        let Some(first) = items.first() else {
            return Ok(None);
        };
        if items.len() > 1 {
            return Err(StoreError::Corrupt {
                table: self.table.clone(),
                id: string_attr(first, "id").unwrap_or_default().to_owned(),
                reason: "two users share one email",
            });
        }
        match self.user_from(first) {
            Ok(u) => Ok(Some(u)),
            Err(_) => {
                let id = string_attr(first, "id").and_then(|s| UserId::parse(s).ok());
                match id {
                    Some(id) => self.get(&id).await,
                    None => Err(StoreError::Corrupt {
                        table: self.table.clone(),
                        id: String::new(),
                        reason: "index entry without a valid id",
                    }),
                }
            }
        }
    }

    /// Writes a new user; [`StoreError::EmailTaken`] when the email is in use.
    pub async fn create(&self, user: &User) -> Result<(), StoreError> {
        let client = match self.client() {
            Ok(c) => c,
            Err(m) => {
                let mut users = m.lock().unwrap_or_else(|e| e.into_inner());
                if users
                    .iter()
                    .any(|u| u.email.eq_ignore_ascii_case(&user.email))
                {
                    return Err(StoreError::EmailTaken);
                }
                users.push(user.clone());
                return Ok(());
            }
        };
        let item: Item = [
            ("id", AttributeValue::S(user.id.clone())),
            ("email", AttributeValue::S(user.email.clone())),
            ("role", AttributeValue::S(user.role.clone())),
            ("emailVerified", AttributeValue::Bool(user.email_verified)),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        let guard: Item = [
            (
                "id",
                AttributeValue::S(format!("{GUARD_PREFIX}{}", user.email)),
            ),
            ("userId", AttributeValue::S(user.id.clone())),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        let put = |item: Item| {
            Put::builder()
                .table_name(&self.table)
                .set_item(Some(item))
                .condition_expression("attribute_not_exists(id)")
                .build()
                .map(|p| TransactWriteItem::builder().put(p).build())
                .map_err(|e| self.backend("TransactWriteItems", e))
        };
        let result = client
            .transact_write_items()
            .transact_items(put(item)?)
            .transact_items(put(guard)?)
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(SdkError::ServiceError(se)) => match se.err() {
                TransactWriteItemsError::TransactionCanceledException(c)
                    if c.cancellation_reasons().get(1).and_then(|r| r.code())
                        == Some("ConditionalCheckFailed") =>
                {
                    Err(StoreError::EmailTaken)
                }
                other => Err(self.backend("TransactWriteItems", other)),
            },
            Err(e) => Err(self.backend("TransactWriteItems", e)),
        }
    }

    fn user_from(&self, item: &Item) -> Result<User, StoreError> {
        let id = string_attr(item, "id").unwrap_or_default();
        let corrupt = |reason| StoreError::Corrupt {
            table: self.table.clone(),
            id: id.to_owned(),
            reason,
        };
        let email = string_attr(item, "email").ok_or_else(|| corrupt("no email"))?;
        let role = string_attr(item, "role").ok_or_else(|| corrupt("no role"))?;
        let email_verified = match item.get("emailVerified") {
            Some(AttributeValue::Bool(b)) => *b,
            None => false,
            Some(_) => return Err(corrupt("emailVerified is not a boolean")),
        };
        if id.is_empty() {
            return Err(corrupt("no id"));
        }
        Ok(User {
            id: id.to_owned(),
            email: email.to_owned(),
            role: role.to_owned(),
            email_verified,
        })
    }
}

fn string_attr<'a>(item: &'a Item, name: &str) -> Option<&'a str> {
    match item.get(name) {
        Some(AttributeValue::S(s)) => Some(s),
        _ => None,
    }
}

/// Creates the users table with its email index (on-demand billing). For tests and
/// local tools; deployed tables come from the template.
pub async fn create_table(client: &Client, table: &str) -> Result<(), StoreError> {
    let backend = |e: &dyn std::fmt::Display| StoreError::Backend {
        op: "CreateTable",
        table: table.to_owned(),
        reason: e.to_string(),
    };
    let attr = |name: &str| {
        AttributeDefinition::builder()
            .attribute_name(name)
            .attribute_type(ScalarAttributeType::S)
            .build()
    };
    let hash = |name: &str| {
        KeySchemaElement::builder()
            .attribute_name(name)
            .key_type(KeyType::Hash)
            .build()
    };
    let index = GlobalSecondaryIndex::builder()
        .index_name(EMAIL_INDEX)
        .key_schema(hash("email").map_err(|e| backend(&e))?)
        .projection(
            Projection::builder()
                .projection_type(ProjectionType::All)
                .build(),
        )
        .build()
        .map_err(|e| backend(&e))?;
    client
        .create_table()
        .table_name(table)
        .attribute_definitions(attr("id").map_err(|e| backend(&e))?)
        .attribute_definitions(attr("email").map_err(|e| backend(&e))?)
        .key_schema(hash("id").map_err(|e| backend(&e))?)
        .global_secondary_indexes(index)
        .billing_mode(BillingMode::PayPerRequest)
        .send()
        .await
        .map_err(|e| backend(&DisplayErrorContext(e)))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_in_memory_store_answers_like_the_table() {
        let ada = User {
            id: "u1".into(),
            email: "ada@example.com".into(),
            role: "student".into(),
            email_verified: true,
        };
        let users = Users::in_memory(vec![ada.clone()]);
        assert_eq!(
            users.get(&UserId::parse("u1").unwrap()).await.unwrap(),
            Some(ada.clone())
        );
        assert_eq!(
            users.get(&UserId::parse("u2").unwrap()).await.unwrap(),
            None
        );
        let email = Email::parse("ADA@example.com").unwrap();
        assert_eq!(users.by_email(&email).await.unwrap(), Some(ada.clone()));
        let dup = User {
            id: "u2".into(),
            ..ada.clone()
        };
        assert!(matches!(
            users.create(&dup).await,
            Err(StoreError::EmailTaken)
        ));
        let bob = User {
            id: "u3".into(),
            email: "bob@example.com".into(),
            ..ada
        };
        users.create(&bob).await.unwrap();
        // Clones share the store.
        let again = users.clone();
        assert_eq!(
            again.get(&UserId::parse("u3").unwrap()).await.unwrap(),
            Some(bob)
        );
    }
}
