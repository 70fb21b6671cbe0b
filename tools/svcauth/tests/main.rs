//! svcauth's integration tests, in one test binary (fewer executables that link
//! the AWS SDK: CI disk and link time).

mod access;
mod apis;
mod cli;
mod common;
mod file;
mod first_hour;
mod lifecycle;
mod ssm;
mod tokens;
