//! Lambda entry point: configuration, the authorizer, runtime. Everything else is in
//! the library (`authorizer::Authorizer`).

use authorizer::output::InvocationOutput;
use authorizer::{system_clock, Config, Event};
use lambda_runtime::{service_fn, Error, LambdaEvent};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    // The runtime's JSON logs, written once per invocation with the metrics.
    let output = InvocationOutput::default();
    lambda_runtime::tracing::init_default_subscriber_with_writer(output.clone());
    let config = Config::from_env();
    let metrics = metrics_cloudwatch_embedded::Builder::new()
        .cloudwatch_namespace(config.metrics_namespace.clone())
        .init()?;
    let authorizer = authorizer::authorizer(&config, system_clock()).await;
    // Load during init what the configuration needs (the key store when keys are
    // accepted, the key set when tokens are), before the first request waits; a
    // failure is logged and retried on use.
    authorizer.init().await;
    let authorizer = &authorizer;
    // The runtime reads the event once, into the fields the decision needs.
    let output = &output;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Event>| async move {
        output.begin();
        let result = authorizer.handle(event.payload).await;
        // The audit line and the metrics documents go out in one write.
        let _ = output.end(&mut std::io::stdout().lock(), |buf| {
            let _ = metrics.flush(buf);
        });
        result
    }))
    .await
}
