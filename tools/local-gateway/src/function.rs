//! Lambda functions as the gateway invokes them: a JSON event in, a JSON result or a
//! Lambda error out, exactly what crosses the Lambda Runtime API.
//!
//! [`LambdaHttp`] runs a `lambda_http` service (an axum `Router` wrapped the way the
//! service's `main` wraps it) through `lambda_http`'s own adapter, the code
//! `lambda_http::run` uses: the event is deserialized as `lambda_http` deserializes it,
//! and the response serialized as it serializes it. [`RequestAuthorizer`] runs the
//! `authorizer` crate's handler.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use serde_json::Value;
use tracing::Instrument;

/// A Lambda function error (`errorType`, `errorMessage`). API Gateway answers 401 to
/// an authorizer error whose message is exactly `Unauthorized`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{error_type}: {message}")]
pub struct FunctionError {
    pub error_type: String,
    pub message: String,
}

impl FunctionError {
    pub fn new(error_type: &str, message: impl Into<String>) -> Self {
        Self {
            error_type: error_type.to_owned(),
            message: message.into(),
        }
    }
}

pub type FunctionFuture<'a> =
    Pin<Box<dyn Future<Output = Result<Value, FunctionError>> + Send + 'a>>;

/// A function the gateway can invoke.
pub trait Function: Send + Sync {
    fn invoke(&self, event: Value, context: InvokeContext) -> FunctionFuture<'_>;
}

/// What Lambda tells a function about one invocation.
#[derive(Debug, Clone, Default)]
pub struct InvokeContext {
    /// Logical id of the function in the template.
    pub function: String,
    /// Lambda's request id (not API Gateway's).
    pub aws_request_id: String,
    /// `Root=1-...;Sampled=0`
    pub xray_trace_id: Option<String>,
    pub deadline_ms: u64,
    pub invoked_function_arn: String,
}

/// Any closure as a function (tests, stubs).
pub struct FnFunction<F>(pub F);

impl<F, Fut> Function for FnFunction<F>
where
    F: Fn(Value) -> Fut + Send + Sync,
    Fut: Future<Output = Result<Value, FunctionError>> + Send + 'static,
{
    fn invoke(&self, event: Value, _context: InvokeContext) -> FunctionFuture<'_> {
        Box::pin((self.0)(event))
    }
}

/// A `lambda_http` service as a Lambda function.
pub struct LambdaHttp<S> {
    service: S,
}

impl<S> LambdaHttp<S> {
    pub fn new(service: S) -> Self {
        Self { service }
    }
}

/// What `service_identity_http::lambda_service` returns, and every `main.rs` runs.
pub type LambdaService = lambda_http::tower::util::MapRequest<
    axum::Router,
    fn(lambda_http::Request) -> lambda_http::Request,
>;

impl LambdaHttp<LambdaService> {
    /// The router, wrapped exactly as the services' `main.rs` wraps it.
    pub fn router(router: axum::Router) -> Self {
        Self::new(service_identity_http::lambda_service(router))
    }
}

impl Function for LambdaHttp<LambdaService> {
    fn invoke(&self, event: Value, context: InvokeContext) -> FunctionFuture<'_> {
        let service = self.service.clone();
        Box::pin(async move {
            use lambda_http::tower::Service;
            let request: lambda_http::request::LambdaRequest = serde_json::from_value(event)
                .map_err(|e| FunctionError::new("Runtime.InvalidEvent", e.to_string()))?;
            let mut ctx = lambda_runtime::Context::default();
            ctx.request_id = context.aws_request_id.clone();
            ctx.xray_trace_id = context.xray_trace_id.clone();
            ctx.deadline = context.deadline_ms;
            ctx.invoked_function_arn = context.invoked_function_arn.clone();
            let span = tracing::info_span!(
                "lambda",
                function = %context.function,
                requestId = %context.aws_request_id
            );
            // A panic in the handler is a function error, as in Lambda.
            let task = tokio::spawn(
                async move {
                    // The adapter is not Send; its response future is.
                    let fut = {
                        let mut adapter = lambda_http::Adapter::from(service);
                        adapter.call(lambda_runtime::LambdaEvent::new(request, ctx))
                    };
                    fut.await
                }
                .instrument(span),
            );
            match task.await {
                Ok(Ok(response)) => serde_json::to_value(response)
                    .map_err(|e| FunctionError::new("Runtime.SerializationError", e.to_string())),
                Ok(Err(never)) => match never {},
                Err(join) => Err(FunctionError::new(
                    "Runtime.ExitError",
                    format!("the function panicked: {join}"),
                )),
            }
        })
    }
}

/// The `authorizer` crate's [`authorizer::Authorizer`]: its cached key store, what it
/// accepts (`SVCAUTH_ACCEPT`) and its token verifier.
pub struct RequestAuthorizer {
    authorizer: Arc<authorizer::Authorizer>,
}

impl RequestAuthorizer {
    pub fn new(authorizer: authorizer::Authorizer) -> Self {
        Self {
            authorizer: Arc::new(authorizer),
        }
    }

    pub fn authorizer(&self) -> &authorizer::Authorizer {
        &self.authorizer
    }
}

impl Function for RequestAuthorizer {
    fn invoke(&self, event: Value, context: InvokeContext) -> FunctionFuture<'_> {
        let authorizer = self.authorizer.clone();
        let span = tracing::info_span!(
            "lambda",
            function = %context.function,
            requestId = %context.aws_request_id
        );
        Box::pin(
            async move {
                let task =
                    tokio::spawn(async move { authorizer.handle(&event).await }.in_current_span());
                match task.await {
                    Ok(Ok(resp)) => serde_json::to_value(resp).map_err(|e| {
                        FunctionError::new("Runtime.SerializationError", e.to_string())
                    }),
                    // Display is exactly "Unauthorized", as the Lambda runtime reports it.
                    Ok(Err(e)) => Err(FunctionError::new("Unauthorized", e.to_string())),
                    Err(join) => Err(FunctionError::new(
                        "Runtime.ExitError",
                        format!("the function panicked: {join}"),
                    )),
                }
            }
            .instrument(span),
        )
    }
}
