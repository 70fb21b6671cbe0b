//! The one clock a component reads, injected so that tests move time by hand instead
//! of sleeping.
//!
//! It gives two readings, because they answer different questions:
//!
//! * [`Clock::now`], wall-clock seconds: what is dated (TTLs of cached stores, key
//!   and token expiry, markers, what is logged);
//! * [`Clock::instant`], a monotonic instant: what paces calls (back-off after a
//!   failure, rate limits), which must not jump when the wall clock is set.
//!
//! Production uses [`SystemClock`]; tests use `test_support::TestClock`, which moves
//! both readings together. Measurements that only end up in a log line (how long a
//! load took) read `Instant::now()` directly: nothing is decided on them.

use std::sync::Arc;
use std::time::Instant;

use crate::record::UnixTime;

/// Where a component reads the time. See the module documentation.
pub trait Clock: Send + Sync {
    /// Wall-clock time, in whole seconds since the Unix epoch.
    fn now(&self) -> UnixTime;
    /// Monotonic time, for pauses and rates.
    fn instant(&self) -> Instant;
}

/// A clock shared by the parts of a component (and moved by a test through a clone).
pub type SharedClock = Arc<dyn Clock>;

/// The system's clocks: `SystemTime` and `Instant`.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> UnixTime {
        UnixTime::now()
    }

    fn instant(&self) -> Instant {
        Instant::now()
    }
}

impl SystemClock {
    /// The system clock, shared.
    pub fn shared() -> SharedClock {
        Arc::new(SystemClock)
    }
}
