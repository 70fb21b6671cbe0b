//! The authorizer's integration tests, in one test binary so the workspace links
//! the AWS SDK into as few test executables as possible (CI disk and link time).
//! Two are binaries of their own, because each installs something process-wide that
//! the other tests would write into: `logs.rs` a tracing subscriber, `metrics.rs` the
//! metrics recorder whose counts it checks.

mod common;
mod dev_store;
mod events;
mod flood;
mod properties;
mod ssm;
