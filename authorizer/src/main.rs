//! Lambda entry point: configuration, key store, runtime. Everything else is in the
//! library (`authorizer::handle`).

use authorizer::{api_names, handle, key_source, system_clock, CachedStore, Config};
use lambda_runtime::{service_fn, Error, LambdaEvent};
use serde_json::Value;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let config = Config::from_env();
    let metrics = metrics_cloudwatch_embedded::Builder::new()
        .cloudwatch_namespace(config.metrics_namespace.clone())
        .init()?;
    let source = key_source(&config).await;
    let apis = api_names(&config, &source);
    let store = CachedStore::new(source, config.refresh, config.load_timeout, system_clock())
        .with_api_names(apis);
    // Load during init, before the first request waits; a failure is logged and the
    // first invocation retries.
    store.reload_now().await;
    let store = &store;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        let result = handle(store, &event.payload).await;
        let _ = metrics.flush(std::io::stdout());
        result
    }))
    .await
}
