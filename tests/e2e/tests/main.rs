//! End-to-end tests through the local gateway, in one test binary so the workspace
//! links the gateway, both services and the AWS SDK into as few executables as
//! possible (CI disk and link time). `dynamodb.rs` is its own binary because it sets
//! process environment variables.

mod authorization;
mod chain;
mod revocation;
mod sigv4;
mod three_cases;
