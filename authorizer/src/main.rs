//! Lambda entry point: configuration, key store, runtime. Everything else is in the
//! library (`authorizer::handle_view`).

use authorizer::event::Payload;
use authorizer::output::InvocationOutput;
use authorizer::{api_names, handle_view, key_source, system_clock, CachedStore, Config};
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
    let source = key_source(&config).await;
    let apis = api_names(&config, &source);
    let store = CachedStore::new(source, config.refresh, config.load_timeout, system_clock())
        .with_api_names(apis);
    // Load during init what the first request needs in any case (see
    // `CachedStore::init`); a failure is logged and the first invocation retries.
    store.init().await;
    let store = &store;
    // The runtime reads the event once, into the fields the decision needs.
    let output = &output;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Payload>| async move {
        output.begin();
        let result = handle_view(store, event.payload.0).await;
        // The audit line and the metrics documents go out in one write.
        let _ = output.end(&mut std::io::stdout().lock(), |buf| {
            let _ = metrics.flush(buf);
        });
        result
    }))
    .await
}
