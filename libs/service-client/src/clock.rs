//! The clock SigV4 signatures and token schedules are made with; tests fix it. Its own
//! module so that `auth` and `token` share it without importing each other.

use std::sync::Arc;
use std::time::SystemTime;

/// Wall-clock time; `Arc::new(SystemTime::now)` in production.
pub type Clock = Arc<dyn Fn() -> SystemTime + Send + Sync>;
