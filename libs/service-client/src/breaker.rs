//! A circuit breaker per called service. Time is passed in, so it is tested without
//! sleeping.
//!
//! * Closed: calls go through; each failed attempt (connection error, timeout, 429,
//!   5xx) adds to a count that any success resets.
//! * Open after `failure_threshold` consecutive failures: calls fail at once, without
//!   touching the network, for `cool_down`.
//! * Half-open after the cool-down: one call goes through as a probe; the others still
//!   fail fast. The probe's success closes the circuit, its failure opens it again.

use std::sync::Mutex;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BreakerConfig {
    pub failure_threshold: u32,
    pub cool_down: Duration,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        Self {
            failure_threshold: 5,
            cool_down: Duration::from_secs(30),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Closed { failures: u32 },
    Open { until: Instant },
    HalfOpen,
}

/// Whether an attempt may go out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Go; `probe` when this attempt decides whether the circuit closes.
    Go { probe: bool },
    /// Do not call; try again after this long.
    Refuse { retry_after: Duration },
}

#[derive(Debug)]
pub struct Breaker {
    config: BreakerConfig,
    state: Mutex<State>,
}

/// How long a caller refused during a probe should wait.
const PROBE_WAIT: Duration = Duration::from_secs(1);

impl Breaker {
    pub fn new(config: BreakerConfig) -> Self {
        Self {
            config,
            state: Mutex::new(State::Closed { failures: 0 }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding this lock cannot leave the state half-written.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn state(&self) -> State {
        *self.lock()
    }

    pub fn admit(&self, now: Instant) -> Admission {
        let mut s = self.lock();
        match *s {
            State::Closed { .. } => Admission::Go { probe: false },
            State::Open { until } if now < until => Admission::Refuse {
                retry_after: until - now,
            },
            State::Open { .. } => {
                *s = State::HalfOpen;
                Admission::Go { probe: true }
            }
            State::HalfOpen => Admission::Refuse {
                retry_after: PROBE_WAIT,
            },
        }
    }

    /// The service answered well enough (2xx, or a 4xx that is the caller's business).
    pub fn success(&self) {
        *self.lock() = State::Closed { failures: 0 };
    }

    /// The attempt failed in a way that says the service is unwell. Returns true when
    /// this failure opened the circuit.
    pub fn failure(&self, now: Instant) -> bool {
        let mut s = self.lock();
        let open = State::Open {
            until: now + self.config.cool_down,
        };
        match *s {
            State::Closed { failures } if failures + 1 >= self.config.failure_threshold => {
                *s = open;
                true
            }
            State::Closed { failures } => {
                *s = State::Closed {
                    failures: failures + 1,
                };
                false
            }
            State::HalfOpen => {
                *s = open;
                true
            }
            State::Open { .. } => false,
        }
    }

    /// A probe that ended without an answer either way (cancelled, or failed on our
    /// side): let the next call probe at once.
    pub fn abandon_probe(&self, now: Instant) {
        let mut s = self.lock();
        if *s == State::HalfOpen {
            *s = State::Open { until: now };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn breaker() -> Breaker {
        Breaker::new(BreakerConfig {
            failure_threshold: 3,
            cool_down: Duration::from_secs(10),
        })
    }

    #[test]
    fn opens_after_consecutive_failures_only() {
        let b = breaker();
        let t = Instant::now();
        assert!(!b.failure(t));
        assert!(!b.failure(t));
        b.success();
        assert!(!b.failure(t));
        assert!(!b.failure(t));
        assert_eq!(b.admit(t), Admission::Go { probe: false });
        assert!(b.failure(t));
        assert_eq!(
            b.admit(t + Duration::from_secs(4)),
            Admission::Refuse {
                retry_after: Duration::from_secs(6)
            }
        );
    }

    #[test]
    fn one_probe_after_the_cool_down_then_closes_or_reopens() {
        let b = breaker();
        let t = Instant::now();
        for _ in 0..3 {
            b.failure(t);
        }
        let later = t + Duration::from_secs(10);
        assert_eq!(b.admit(later), Admission::Go { probe: true });
        // Everyone else waits while the probe is out.
        assert_eq!(
            b.admit(later),
            Admission::Refuse {
                retry_after: PROBE_WAIT
            }
        );
        // The probe fails: open for another cool-down.
        assert!(b.failure(later));
        assert!(matches!(
            b.admit(later + Duration::from_secs(9)),
            Admission::Refuse { .. }
        ));
        // Next probe succeeds: closed, everyone goes.
        let again = later + Duration::from_secs(10);
        assert_eq!(b.admit(again), Admission::Go { probe: true });
        b.success();
        assert_eq!(b.state(), State::Closed { failures: 0 });
        assert_eq!(b.admit(again), Admission::Go { probe: false });
    }

    #[test]
    fn an_abandoned_probe_lets_the_next_call_probe() {
        let b = breaker();
        let t = Instant::now();
        for _ in 0..3 {
            b.failure(t);
        }
        let later = t + Duration::from_secs(11);
        assert_eq!(b.admit(later), Admission::Go { probe: true });
        b.abandon_probe(later);
        assert_eq!(b.admit(later), Admission::Go { probe: true });
    }
}
