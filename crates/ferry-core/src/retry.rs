//! Retry policy: how many attempts, and how long to wait between them.
//!
//! Retries are durable: the runtime turns the policy's delay into a `not_before` and
//! hands the message back to the driver, so a retry survives a crash. Nothing waits in
//! process memory.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

/// How long to wait before attempt `n + 1` after attempt `n` failed.
#[derive(Clone)]
pub enum Backoff {
    /// `initial * 2^(attempt-1)`, capped at `max`; with `jitter`, a random value in
    /// the upper half of that (so retries of a burst spread out but never come early).
    Exponential {
        /// Delay after the first failed attempt.
        initial: Duration,
        /// Upper bound.
        max: Duration,
        /// Randomize within [d/2, d].
        jitter: bool,
    },
    /// The same delay every time.
    Fixed(Duration),
    /// A user function of the failed attempt number (1-based); `None` means stop
    /// retrying and dead-letter.
    Custom(Arc<dyn Fn(u32) -> Option<Duration> + Send + Sync>),
}

impl fmt::Debug for Backoff {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Backoff::Exponential {
                initial,
                max,
                jitter,
            } => f
                .debug_struct("Exponential")
                .field("initial", initial)
                .field("max", max)
                .field("jitter", jitter)
                .finish(),
            Backoff::Fixed(d) => f.debug_tuple("Fixed").field(d).finish(),
            Backoff::Custom(_) => f.write_str("Custom(..)"),
        }
    }
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff::Exponential {
            initial: Duration::from_secs(1),
            max: Duration::from_secs(600),
            jitter: true,
        }
    }
}

/// Max attempts and backoff.
///
/// ```
/// use std::time::Duration;
/// use ferry_core::{Backoff, RetryPolicy};
/// let p = RetryPolicy::default()
///     .with_max_attempts(3)
///     .with_backoff(Backoff::Fixed(Duration::from_secs(5)));
/// assert_eq!(p.delay_after(1, 10), Some(Duration::from_secs(5)));
/// assert_eq!(p.delay_after(3, 10), None); // third attempt was the last
/// ```
#[derive(Debug, Clone, Default)]
pub struct RetryPolicy {
    /// Attempts before dead-lettering; `None` uses the queue's setting.
    pub max_attempts: Option<u32>,
    /// The delay schedule.
    pub backoff: Backoff,
}

impl RetryPolicy {
    /// Sets max attempts (at least 1).
    pub fn with_max_attempts(mut self, n: u32) -> Self {
        self.max_attempts = Some(n.max(1));
        self
    }

    /// Sets the backoff.
    pub fn with_backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = backoff;
        self
    }

    /// The delay before the next attempt after attempt `attempt` failed, or `None` if
    /// the message should be dead-lettered. `queue_max` applies when the policy sets none.
    pub fn delay_after(&self, attempt: u32, queue_max: u32) -> Option<Duration> {
        let max = self.max_attempts.unwrap_or(queue_max);
        if attempt >= max {
            return None;
        }
        match &self.backoff {
            Backoff::Fixed(d) => Some(*d),
            Backoff::Custom(f) => f(attempt),
            Backoff::Exponential {
                initial,
                max,
                jitter,
            } => {
                let shift = attempt.saturating_sub(1).min(32);
                let d = initial.saturating_mul(1u32 << shift.min(31)).min(*max);
                if *jitter && !d.is_zero() {
                    let half = d / 2;
                    let extra = half.as_nanos() as f64 * fastrand::f64();
                    Some(half + Duration::from_nanos(extra as u64))
                } else {
                    Some(d)
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exponential_grows_and_caps() {
        let p = RetryPolicy::default().with_backoff(Backoff::Exponential {
            initial: Duration::from_secs(1),
            max: Duration::from_secs(10),
            jitter: false,
        });
        let delays: Vec<_> = (1..7).map(|a| p.delay_after(a, 100)).collect();
        let secs: Vec<u64> = delays
            .iter()
            .map(|d| d.map_or(0, |d| d.as_secs()))
            .collect();
        assert_eq!(secs, [1, 2, 4, 8, 10, 10]);
    }

    #[test]
    fn jitter_stays_in_upper_half() {
        let p = RetryPolicy::default();
        for attempt in 1..20 {
            let full = Duration::from_secs(1)
                .saturating_mul(1 << (attempt - 1).min(31))
                .min(Duration::from_secs(600));
            let d = p.delay_after(attempt, 100).expect("not last");
            assert!(d >= full / 2 && d <= full, "attempt {attempt}: {d:?}");
        }
    }

    #[test]
    fn custom_none_stops() {
        let p = RetryPolicy::default().with_backoff(Backoff::Custom(Arc::new(|a| {
            (a < 2).then_some(Duration::from_millis(5))
        })));
        assert_eq!(p.delay_after(1, 10), Some(Duration::from_millis(5)));
        assert_eq!(p.delay_after(2, 10), None);
    }

    #[test]
    fn huge_attempt_numbers_do_not_overflow() {
        let p = RetryPolicy::default();
        assert!(p.delay_after(u32::MAX - 1, u32::MAX).is_some());
    }
}
