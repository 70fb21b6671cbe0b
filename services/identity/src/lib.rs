/*!
identity-service: the internal user API, a `lambda_http` function behind API Gateway.

| route | who | answer |
|---|---|---|
| `GET /internal/users/{id}` | any authenticated service the policy allows | `{id, email, role, emailVerified}`, 404, 400 |
| `GET /internal/users/by-email/{email}` | same; the email percent-encoded in the path | same |
| `POST /internal/users` | admin services only | 201 with the user, 400, 403, 409 |

Every handler requires the caller's identity ([`service_identity_http::Caller`]): the
API-key authorizer's context or the `AWS_IAM` caller. Requests without one get a JSON
401. Each lookup is logged with the calling service, how it authenticated, the
correlation id and the user id; an email only as a hash.

Users live in DynamoDB ([`store::Users`]). This crate does not authenticate or
authorize callers (API Gateway, the authorizer and IAM do), and reads no secret.
*/
#![forbid(unsafe_code)]

pub mod api;
pub mod store;
pub mod user;

use std::sync::Arc;

pub use api::{router, AppState};
use service_identity_http::IdentityConfig;
pub use store::{create_table, StoreError, Users};
pub use user::{Email, NewUser, User, UserId};

/// Environment variable naming the users table.
pub const USERS_TABLE_ENV: &str = "USERS_TABLE";
/// Environment variable listing the services allowed to create users (comma
/// separated); default `admin-service`.
pub const ADMIN_SERVICES_ENV: &str = "IDENTITY_ADMIN_SERVICES";

/// Start-up configuration, from the environment.
#[derive(Debug, Clone)]
pub struct Config {
    pub table: String,
    pub identity: IdentityConfig,
    pub admin_services: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{USERS_TABLE_ENV} is not set: name the DynamoDB users table")]
    NoTable,
    #[error("SVCAUTH_IAM_ROLES is invalid: {0}")]
    Roles(#[from] service_auth::identity::RoleMapError),
    #[error("{ADMIN_SERVICES_ENV} lists an invalid service name {0:?}")]
    AdminService(String),
}

impl Config {
    pub fn from_env() -> Result<Self, ConfigError> {
        let table = std::env::var(USERS_TABLE_ENV)
            .ok()
            .filter(|t| !t.trim().is_empty())
            .ok_or(ConfigError::NoTable)?;
        let admins = std::env::var(ADMIN_SERVICES_ENV).unwrap_or_else(|_| "admin-service".into());
        Ok(Self {
            table,
            identity: IdentityConfig::from_env()?,
            admin_services: parse_services(&admins)?,
        })
    }
}

fn parse_services(list: &str) -> Result<Vec<String>, ConfigError> {
    list.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            service_auth::record::valid_service_name(s)
                .then(|| s.to_owned())
                .ok_or_else(|| ConfigError::AdminService(s.to_owned()))
        })
        .collect()
}

impl AppState {
    pub fn new(users: Users, identity: IdentityConfig, admin_services: Vec<String>) -> Self {
        Self {
            users,
            identity,
            admin_services: Arc::new(admin_services),
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn admin_service_lists() {
        assert_eq!(
            super::parse_services(" admin-service, ops ,").unwrap(),
            ["admin-service", "ops"]
        );
        assert!(super::parse_services("Admin").is_err());
    }
}
