//! The floor of a warm invocation: a Lambda on the same runtime crate and the same
//! set-up as the authorizer (tokio current-thread runtime, the runtime's default
//! tracing subscriber) that answers a constant without reading its event.
//!
//! `authorizer/benches/startup.py --floor` runs it side by side with the authorizer in
//! one run and reports the authorizer's warm invocation time above this floor: what the
//! authorizer itself adds (event parsing, decision, response, audit line, metrics).

use lambda_runtime::{service_fn, Error, LambdaEvent};
use serde::{Deserialize, Deserializer, Serialize};

/// An event that is never read: deserialising it consumes nothing.
struct Unread;

impl<'de> Deserialize<'de> for Unread {
    fn deserialize<D: Deserializer<'de>>(_: D) -> Result<Self, D::Error> {
        Ok(Unread)
    }
}

/// A constant answer.
#[derive(Serialize)]
struct Constant {
    #[serde(rename = "principalId")]
    principal_id: &'static str,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    lambda_runtime::run(service_fn(|_: LambdaEvent<Unread>| async {
        Ok::<_, Error>(Constant {
            principal_id: "floor",
        })
    }))
    .await
}
