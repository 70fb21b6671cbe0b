//! SSM failures injected at the SDK's HTTP edge: the request reaches moto_server as
//! usual, and for the operations a test chose, the response is replaced by the error
//! SSM sends (HTTP 400 with the awsJson `__type`), so the SDK and the code under test
//! see exactly what they would see from AWS. Also counts the calls per operation.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use crate::TestClock;
use aws_sdk_ssm::config::interceptors::{
    BeforeDeserializationInterceptorContextMut, BeforeTransmitInterceptorContextRef,
};
use aws_sdk_ssm::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_sdk_ssm::error::BoxError;
use aws_smithy_runtime_api::http::{Response, StatusCode};
use aws_smithy_types::body::SdkBody;
use aws_smithy_types::config_bag::{Storable, StoreReplace};

/// The fault chosen for one call when its request was seen (the request is gone by
/// the time the response is read).
#[derive(Debug, Clone)]
struct Pending(Fault, String);

impl Storable for Pending {
    type Storer = StoreReplace<Self>;
}

/// How an operation fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// `AccessDeniedException`: the caller's role lacks the permission.
    AccessDenied,
    /// `ThrottlingException`: the account's SSM throughput is used up.
    Throttling,
}

type Hook = Box<dyn FnOnce() + Send>;

#[derive(Default)]
struct State {
    /// Per operation: the fault, and the text the request body must hold for it
    /// (`None`: every call).
    faults: HashMap<String, Vec<(Option<String>, Fault)>>,
    calls: HashMap<String, u64>,
    hooks: HashMap<String, Hook>,
    /// The account's throughput: calls beyond it are throttled.
    rate: Option<Rate>,
    throttled: u64,
}

/// A token bucket of calls per second (burst = one second's worth), like SSM's
/// per-account throughput, refilled on the test's clock: the count of calls it admits
/// depends on how far the test moved the clock, not on how fast the machine is. Each
/// call moves that clock by `call_takes` (the time an SSM call takes), so a store
/// loaded page by page sees time pass as it would against SSM.
struct Rate {
    per_second: f64,
    tokens: f64,
    at: std::time::Instant,
    clock: TestClock,
    call_takes: std::time::Duration,
}

impl std::fmt::Debug for Rate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rate")
            .field("per_second", &self.per_second)
            .field("tokens", &self.tokens)
            .finish_non_exhaustive()
    }
}

impl Rate {
    fn admit(&mut self) -> bool {
        let now = self.clock.instant();
        self.clock
            .advance_millis(self.call_takes.as_millis().try_into().unwrap_or(u64::MAX));
        let refill = now.saturating_duration_since(self.at).as_secs_f64() * self.per_second;
        self.tokens = (self.tokens + refill).min(self.per_second);
        self.at = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

impl std::fmt::Debug for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("State")
            .field("faults", &self.faults)
            .field("calls", &self.calls)
            .field("rate", &self.rate)
            .field("throttled", &self.throttled)
            .finish_non_exhaustive()
    }
}

/// The faults a test injects and the calls it counts; clones share both.
#[derive(Debug, Clone, Default)]
pub struct SsmFaults(Arc<Mutex<State>>);

impl SsmFaults {
    pub fn new() -> Self {
        Self::default()
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// From now on every `operation` call (e.g. `GetParameterHistory`) fails so.
    pub fn fail(&self, operation: &str, fault: Fault) {
        self.state()
            .faults
            .insert(operation.to_owned(), vec![(None, fault)]);
    }

    /// From now on the `operation` calls whose JSON request body contains `text` (a
    /// parameter name, `"WithDecryption":true`...) fail so; other calls work.
    pub fn fail_when(&self, operation: &str, text: &str, fault: Fault) {
        self.state()
            .faults
            .entry(operation.to_owned())
            .or_default()
            .push((Some(text.to_owned()), fault));
    }

    /// Runs `hook` once, just before the next `operation` call is sent, and waits for
    /// it: a test puts another writer's whole command between two steps of the code
    /// under test. It blocks the calling thread, so run `hook`'s async work on a
    /// thread and runtime of its own.
    pub fn before_next(&self, operation: &str, hook: impl FnOnce() + Send + 'static) {
        self.state()
            .hooks
            .insert(operation.to_owned(), Box::new(hook));
    }

    /// From now on, calls beyond `per_second` of `clock` (every operation together,
    /// as SSM counts an account's transactions) fail with `ThrottlingException`, and
    /// each call moves `clock` by `call_takes`. The rate is measured on the test's
    /// clock, so the test, not the machine's speed, decides how much time passes
    /// between calls.
    pub fn throttle_above(&self, per_second: u32, clock: &TestClock, call_takes: Duration) {
        let per_second = f64::from(per_second.max(1));
        self.state().rate = Some(Rate {
            per_second,
            tokens: per_second,
            at: clock.instant(),
            clock: clock.clone(),
            call_takes,
        });
    }

    /// Calls answered `ThrottlingException` by [`SsmFaults::throttle_above`].
    pub fn throttled(&self) -> u64 {
        self.state().throttled
    }

    /// `operation` works again.
    pub fn heal(&self, operation: &str) {
        self.state().faults.remove(operation);
    }

    /// Calls of `operation` sent so far, failed ones included.
    pub fn calls(&self, operation: &str) -> u64 {
        self.state().calls.get(operation).copied().unwrap_or(0)
    }

    /// Every call sent so far.
    pub fn total_calls(&self) -> u64 {
        self.state().calls.values().sum()
    }

    pub fn reset_counts(&self) {
        self.state().calls.clear();
    }

    /// An SSM client for a `MotoServer` endpoint (as `moto_ssm_client`) that goes
    /// through these faults.
    pub fn client(&self, endpoint: &str) -> aws_sdk_ssm::Client {
        aws_sdk_ssm::Client::from_conf(
            crate::moto_ssm_config(endpoint)
                .interceptor(Injector(self.clone()))
                .build(),
        )
    }
}

#[derive(Debug)]
struct Injector(SsmFaults);

/// `GetParameterHistory` from the awsJson target header `AmazonSSM.GetParameterHistory`.
fn operation(headers: &aws_smithy_runtime_api::http::Headers) -> String {
    let target = headers.get("x-amz-target").unwrap_or_default();
    target.rsplit('.').next().unwrap_or(target).to_owned()
}

impl Intercept for Injector {
    fn name(&self) -> &'static str {
        "SsmFaults"
    }

    fn read_before_transmit(
        &self,
        context: &BeforeTransmitInterceptorContextRef<'_>,
        _: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let request = context.request();
        let op = operation(request.headers());
        let body = request
            .body()
            .bytes()
            .map(|b| String::from_utf8_lossy(b).into_owned())
            .unwrap_or_default();
        let (hook, fault) = {
            let mut state = self.0.state();
            *state.calls.entry(op.clone()).or_default() += 1;
            let mut fault = state.faults.get(&op).and_then(|rules| {
                rules
                    .iter()
                    .find(|(text, _)| text.as_ref().is_none_or(|t| body.contains(t.as_str())))
                    .map(|(_, f)| *f)
            });
            if fault.is_none() && state.rate.as_mut().is_some_and(|r| !r.admit()) {
                state.throttled += 1;
                fault = Some(Fault::Throttling);
            }
            (state.hooks.remove(&op), fault)
        };
        if let Some(fault) = fault {
            cfg.interceptor_state().store_put(Pending(fault, op));
        }
        if let Some(hook) = hook {
            hook();
        }
        Ok(())
    }

    fn modify_before_deserialization(
        &self,
        context: &mut BeforeDeserializationInterceptorContextMut<'_>,
        _: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let Some(Pending(fault, op)) = cfg.load::<Pending>().cloned() else {
            return Ok(());
        };
        let (kind, message) = match fault {
            Fault::AccessDenied => (
                "AccessDeniedException",
                format!("User is not authorized to perform: ssm:{op} (injected by the test)"),
            ),
            Fault::Throttling => ("ThrottlingException", "Rate exceeded".to_owned()),
        };
        let body = format!(r#"{{"__type":"{kind}","message":"{message}"}}"#);
        let mut resp = Response::new(StatusCode::try_from(400u16)?, SdkBody::from(body));
        resp.headers_mut()
            .insert("content-type", "application/x-amz-json-1.1");
        *context.response_mut() = resp;
        Ok(())
    }
}
