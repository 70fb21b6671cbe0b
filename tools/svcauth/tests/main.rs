//! svcauth's integration tests, in one test binary (fewer executables that link
//! the AWS SDK: CI disk and link time).

mod cli;
mod common;
mod file;
mod lifecycle;
mod ssm;
