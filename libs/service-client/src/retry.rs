//! When to try again, and after how long. Plain decisions, tested without a network.
//!
//! Only idempotent methods (GET, HEAD, OPTIONS, PUT, DELETE, TRACE) are retried, and
//! only after a connection error, a 429 or a 5xx. A timeout is not retried: the
//! service is slow, and more calls would make it slower. The delay is exponential with
//! "equal jitter" (half fixed, half random) so that callers spread out, and a
//! `Retry-After` longer than `max_delay` ends the retries at once.

use std::time::Duration;

use http::Method;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included. 1 disables retries.
    pub max_attempts: u32,
    pub base_delay: Duration,
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 3,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(2),
        }
    }
}

/// How an attempt ended, as far as retrying is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    ConnectionError,
    Timeout,
    Status(u16),
}

impl Outcome {
    /// Whether this outcome says the service is unwell (counts against the breaker).
    pub fn is_failure(self) -> bool {
        match self {
            Outcome::ConnectionError | Outcome::Timeout => true,
            Outcome::Status(s) => s == 429 || s >= 500,
        }
    }
}

impl RetryPolicy {
    /// The delay before attempt `attempt + 1`, or `None` to stop. `attempt` is the
    /// 1-based number of the attempt that just ended; `random` is in `[0, 1)`.
    pub fn next_delay(
        &self,
        method: &Method,
        attempt: u32,
        outcome: Outcome,
        retry_after: Option<Duration>,
        random: f64,
    ) -> Option<Duration> {
        self.next_delay_if(
            method.is_idempotent(),
            attempt,
            outcome,
            retry_after,
            random,
        )
    }

    /// [`RetryPolicy::next_delay`] for a call whose repetition is known to be safe
    /// (`idempotent`) or not, whatever its method (a token request is a safe POST).
    pub fn next_delay_if(
        &self,
        idempotent: bool,
        attempt: u32,
        outcome: Outcome,
        retry_after: Option<Duration>,
        random: f64,
    ) -> Option<Duration> {
        let retryable = match outcome {
            Outcome::ConnectionError => true,
            Outcome::Timeout => false,
            Outcome::Status(s) => s == 429 || s >= 500,
        };
        if !retryable || !idempotent || attempt >= self.max_attempts {
            return None;
        }
        let exp = self
            .base_delay
            .saturating_mul(1u32 << (attempt - 1).min(16))
            .min(self.max_delay);
        let jittered = exp / 2 + exp.mul_f64(random.clamp(0.0, 1.0) / 2.0);
        match retry_after {
            Some(ra) if ra > self.max_delay => None,
            Some(ra) => Some(ra.max(jittered)),
            None => Some(jittered),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const P: RetryPolicy = RetryPolicy {
        max_attempts: 3,
        base_delay: Duration::from_millis(100),
        max_delay: Duration::from_millis(300),
    };

    #[test]
    fn only_idempotent_methods_on_connection_errors_429_and_5xx() {
        let get = Method::GET;
        assert!(P
            .next_delay(&get, 1, Outcome::ConnectionError, None, 0.5)
            .is_some());
        assert!(P
            .next_delay(&get, 1, Outcome::Status(429), None, 0.5)
            .is_some());
        assert!(P
            .next_delay(&get, 1, Outcome::Status(500), None, 0.5)
            .is_some());
        assert!(P
            .next_delay(&get, 1, Outcome::Status(503), None, 0.5)
            .is_some());
        assert!(P
            .next_delay(&Method::PUT, 1, Outcome::Status(503), None, 0.5)
            .is_some());
        for s in [200, 400, 401, 403, 404, 409] {
            assert!(
                P.next_delay(&get, 1, Outcome::Status(s), None, 0.5)
                    .is_none(),
                "{s}"
            );
        }
        assert!(P.next_delay(&get, 1, Outcome::Timeout, None, 0.5).is_none());
        assert!(P
            .next_delay(&Method::POST, 1, Outcome::ConnectionError, None, 0.5)
            .is_none());
        assert!(P
            .next_delay(&Method::POST, 1, Outcome::Status(503), None, 0.5)
            .is_none());
        assert!(P
            .next_delay(&Method::PATCH, 1, Outcome::Status(503), None, 0.5)
            .is_none());
    }

    #[test]
    fn attempts_are_bounded_and_delays_grow_with_jitter_up_to_the_cap() {
        let get = Method::GET;
        let d = |attempt, r| P.next_delay(&get, attempt, Outcome::Status(503), None, r);
        assert_eq!(d(1, 0.0), Some(Duration::from_millis(50)));
        assert_eq!(d(1, 0.999_999).map(|d| d.as_millis()), Some(99));
        assert_eq!(d(2, 0.0), Some(Duration::from_millis(100)));
        assert_eq!(d(3, 0.0), None, "third attempt was the last");
        let long = RetryPolicy {
            max_attempts: 40,
            ..P
        };
        let capped = long.next_delay(&get, 30, Outcome::Status(503), None, 1.0);
        assert_eq!(capped, Some(Duration::from_millis(300)));
    }

    #[test]
    fn retry_after_is_honoured_or_ends_the_retries() {
        let get = Method::GET;
        let s = Outcome::Status(429);
        assert_eq!(
            P.next_delay(&get, 1, s, Some(Duration::from_millis(250)), 0.0),
            Some(Duration::from_millis(250))
        );
        assert_eq!(
            P.next_delay(&get, 1, s, Some(Duration::from_secs(0)), 0.0),
            Some(Duration::from_millis(50))
        );
        assert_eq!(
            P.next_delay(&get, 1, s, Some(Duration::from_secs(60)), 0.0),
            None
        );
    }

    #[test]
    fn failures_for_the_breaker() {
        assert!(Outcome::Timeout.is_failure());
        assert!(Outcome::ConnectionError.is_failure());
        assert!(Outcome::Status(502).is_failure());
        assert!(Outcome::Status(429).is_failure());
        assert!(!Outcome::Status(404).is_failure());
        assert!(!Outcome::Status(403).is_failure());
    }
}
