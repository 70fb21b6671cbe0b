//! The authorizer's integration tests, in one test binary so the workspace links
//! the AWS SDK into as few test executables as possible (CI disk and link time).
//! `logs.rs` is its own binary: it installs a thread-local tracing subscriber,
//! which must not share a process with tests that log without one.

mod common;
mod events;
mod metrics;
mod properties;
mod ssm;
