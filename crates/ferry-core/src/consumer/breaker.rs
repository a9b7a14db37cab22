//! A circuit breaker that pauses a consumer's fetch loop while its handler keeps failing.
//!
//! When a handler's dependency is down (a database, a mail server), every attempt fails and
//! burns one of the message's retries. The breaker watches the outcome of the most recent
//! attempts; once too many of them failed it *opens*, and the consumer stops receiving from
//! the queue for a cool-down, so messages wait safely in the backend instead of walking
//! towards the dead letters. After the cool-down it is *half-open*: exactly one probe attempt
//! runs; its success closes the breaker, its failure opens it for another cool-down.
//!
//! ```text
//!            failures ≥ ratio (≥ min samples)         cool-down over
//!   Closed ─────────────────────────────────▶ Open ───────────────────▶ HalfOpen
//!     ▲                                        ▲                           │
//!     │               probe failed             └───────────────────────────┤
//!     └────────────────────────────────────────────────── probe succeeded ─┘
//! ```
//!
//! It is hand-written rather than taken from a crate: the breaker has to *pause a queue's
//! fetch loop* (the runtime awaits [`CircuitBreaker::wait_until_allowed`] before each
//! receive), not wrap a `tower::Service` call and fail it fast, which is what the
//! tower-based breakers do; and `failsafe`, the other candidate, is dormant. The state
//! machine is small and synchronous (a mutex that is never held across an `.await`), and all
//! timing uses tokio's clock, so tests run it with paused time.
//!
//! ```
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! use std::time::Duration;
//! use ferry_core::consumer::{BreakerConfig, BreakerState, CircuitBreaker};
//!
//! let breaker = CircuitBreaker::new(BreakerConfig {
//!     window: 4,
//!     min_samples: 4,
//!     failure_ratio: 0.5,
//!     cool_down: Duration::from_millis(20),
//! });
//! breaker.wait_until_allowed().await; // closed: returns at once
//! for ok in [true, false, true, false] {
//!     breaker.record(ok);
//! }
//! assert_eq!(breaker.state().as_str(), "open");
//!
//! breaker.wait_until_allowed().await; // sleeps out the cool-down, then probes
//! assert_eq!(breaker.state(), BreakerState::HalfOpen);
//! breaker.record(true); // the probe succeeded
//! assert_eq!(breaker.state().to_string(), "closed");
//! # });
//! ```

use std::collections::VecDeque;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

/// When a [`CircuitBreaker`] opens and for how long.
#[derive(Debug, Clone, PartialEq)]
pub struct BreakerConfig {
    /// How many of the most recent attempts are considered (default 20; at least 1).
    pub window: usize,
    /// Fewest attempts in the window before the breaker may open (default 10; at least 1,
    /// at most `window`).
    pub min_samples: usize,
    /// Share of failed attempts in the window at which the breaker opens, from 0.0 to 1.0
    /// (default 0.5: it opens when half or more of the attempts failed). At least one
    /// attempt must have failed; a ratio above 1.0 (or NaN) never opens it.
    pub failure_ratio: f64,
    /// How long the breaker stays open before it lets one probe attempt through
    /// (default 30 s).
    pub cool_down: Duration,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        Self {
            window: 20,
            min_samples: 10,
            failure_ratio: 0.5,
            cool_down: Duration::from_secs(30),
        }
    }
}

/// The state of a [`CircuitBreaker`], as reported by [`CircuitBreaker::state`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    /// Attempts run normally and their outcomes are counted.
    Closed,
    /// Too many attempts failed: nothing runs until `until`.
    Open {
        /// When the cool-down ends and one probe attempt may run.
        until: Instant,
    },
    /// The cool-down is over: one probe attempt decides whether the breaker closes or opens
    /// again.
    HalfOpen,
}

impl BreakerState {
    /// `"closed"`, `"open"` or `"half_open"`: the name used in logs, metrics and the API.
    pub fn as_str(&self) -> &'static str {
        match self {
            BreakerState::Closed => "closed",
            BreakerState::Open { .. } => "open",
            BreakerState::HalfOpen => "half_open",
        }
    }

    /// The cool-down left while open (zero once it is over); `None` when not open.
    pub fn remaining(&self) -> Option<Duration> {
        match self {
            BreakerState::Open { until } => Some(until.saturating_duration_since(Instant::now())),
            _ => None,
        }
    }
}

impl fmt::Display for BreakerState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What [`CircuitBreaker::wait_until_allowed`] let through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// The breaker is closed: run attempts normally.
    Allowed,
    /// The breaker is half-open and the caller holds its single probe: run exactly one
    /// attempt and [`record`](CircuitBreaker::record) its outcome, or, if no attempt ran
    /// (nothing was received), call [`release_probe`](CircuitBreaker::release_probe).
    Probe,
}

/// A three-state circuit breaker for one queue's consumer.
///
/// It counts the outcomes of the most recent attempts ([`record`](Self::record)); when the
/// share of failures reaches [`BreakerConfig::failure_ratio`] it *opens*, and
/// [`wait_until_allowed`](Self::wait_until_allowed), which the fetch loop awaits before each
/// receive, holds the loop for [`BreakerConfig::cool_down`]. Then it is *half-open*: one
/// probe attempt runs; success closes it, failure opens it again.
///
/// Cloning is cheap and every clone shares the same state, so the fetch loop can wait on it
/// while handler tasks record their outcomes.
#[derive(Clone)]
pub struct CircuitBreaker {
    inner: Arc<Inner>,
}

struct Inner {
    config: BreakerConfig,
    name: Option<String>,
    core: Mutex<Core>,
    /// Woken whenever the breaker leaves the half-open probing state.
    changed: Notify,
}

struct Core {
    phase: Phase,
    /// Outcomes of the most recent attempts while closed: `true` is a failure.
    window: VecDeque<bool>,
    failures: usize,
}

#[derive(Debug, Clone, Copy)]
enum Phase {
    Closed,
    Open {
        until: Instant,
    },
    /// `probe` is when the current probe was handed out, if one is running.
    HalfOpen {
        probe: Option<Instant>,
    },
}

impl fmt::Debug for CircuitBreaker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CircuitBreaker")
            .field("name", &self.inner.name)
            .field("config", &self.inner.config)
            .field("state", &self.state())
            .finish()
    }
}

impl Default for CircuitBreaker {
    fn default() -> Self {
        Self::new(BreakerConfig::default())
    }
}

impl CircuitBreaker {
    /// A closed breaker with the given configuration.
    pub fn new(config: BreakerConfig) -> Self {
        Self::build(None, config)
    }

    /// A closed breaker whose log lines carry `name` (typically the queue's name).
    pub fn named(name: impl Into<String>, config: BreakerConfig) -> Self {
        Self::build(Some(name.into()), config)
    }

    fn build(name: Option<String>, mut config: BreakerConfig) -> Self {
        config.window = config.window.max(1);
        config.min_samples = config.min_samples.clamp(1, config.window);
        Self {
            inner: Arc::new(Inner {
                core: Mutex::new(Core {
                    phase: Phase::Closed,
                    window: VecDeque::with_capacity(config.window),
                    failures: 0,
                }),
                config,
                name,
                changed: Notify::new(),
            }),
        }
    }

    /// The configuration in force (with `window` and `min_samples` brought into range).
    pub fn config(&self) -> &BreakerConfig {
        &self.inner.config
    }

    /// The current state. An open breaker whose cool-down is over reports
    /// [`BreakerState::HalfOpen`].
    pub fn state(&self) -> BreakerState {
        let mut core = self.lock();
        self.refresh(&mut core, Instant::now());
        match core.phase {
            Phase::Closed => BreakerState::Closed,
            Phase::Open { until } => BreakerState::Open { until },
            Phase::HalfOpen { .. } => BreakerState::HalfOpen,
        }
    }

    /// Records the outcome of one attempt; call it after every attempt the breaker let
    /// through.
    ///
    /// While closed, the outcome joins the window and may open the breaker. While half-open,
    /// it is the probe's result: success closes the breaker (with an empty window), failure
    /// opens it for another cool-down. While open it is ignored: it belongs to an attempt
    /// that started before the breaker opened.
    pub fn record(&self, success: bool) {
        let now = Instant::now();
        let mut core = self.lock();
        self.refresh(&mut core, now);
        match core.phase {
            Phase::Closed => {
                let cfg = &self.inner.config;
                core.window.push_back(!success);
                core.failures += usize::from(!success);
                while core.window.len() > cfg.window {
                    if core.window.pop_front() == Some(true) {
                        core.failures -= 1;
                    }
                }
                let samples = core.window.len();
                // Counts are far below 2^52, so the conversion to f64 is exact.
                let ratio = core.failures as f64 / samples as f64;
                if samples >= cfg.min_samples && core.failures > 0 && ratio >= cfg.failure_ratio {
                    let failures = core.failures;
                    self.open(&mut core, now);
                    tracing::warn!(
                        breaker = self.inner.name.as_deref().unwrap_or_default(),
                        failures,
                        samples,
                        cool_down_ms = duration_ms(cfg.cool_down),
                        "circuit breaker opened: too many failed attempts; pausing"
                    );
                }
            }
            Phase::Open { .. } => {}
            Phase::HalfOpen { .. } => {
                if success {
                    core.phase = Phase::Closed;
                    core.window.clear();
                    core.failures = 0;
                    tracing::info!(
                        breaker = self.inner.name.as_deref().unwrap_or_default(),
                        "circuit breaker closed: probe attempt succeeded; resuming"
                    );
                } else {
                    self.open(&mut core, now);
                    tracing::warn!(
                        breaker = self.inner.name.as_deref().unwrap_or_default(),
                        cool_down_ms = duration_ms(self.inner.config.cool_down),
                        "circuit breaker re-opened: probe attempt failed"
                    );
                }
                drop(core);
                self.inner.changed.notify_waiters();
            }
        }
    }

    /// Hands back the half-open probe without an outcome, for a caller that got
    /// [`Admission::Probe`] but ran no attempt (it received nothing). Another caller may
    /// then probe. Does nothing in any other state.
    pub fn release_probe(&self) {
        let mut core = self.lock();
        if let Phase::HalfOpen { probe: Some(_) } = core.phase {
            core.phase = Phase::HalfOpen { probe: None };
            drop(core);
            self.inner.changed.notify_waiters();
        }
    }

    /// Waits until an attempt may run.
    ///
    /// Returns at once while closed. While open, sleeps until the cool-down ends; the
    /// breaker then turns half-open and the first caller gets the single
    /// [`Admission::Probe`]. Later callers wait until the probe's outcome is recorded (or
    /// the probe is released) and then follow the new state. A probe whose outcome is not
    /// recorded within one cool-down is presumed lost, and another caller may probe.
    ///
    /// Cancel-safe: dropping the future gives up nothing, except that a caller dropped
    /// after it was handed the probe still holds it (see above).
    pub async fn wait_until_allowed(&self) -> Admission {
        loop {
            let changed = self.inner.changed.notified();
            tokio::pin!(changed);
            // Register before looking at the state, so no wake-up is missed.
            changed.as_mut().enable();
            let now = Instant::now();
            let deadline = {
                let mut core = self.lock();
                self.refresh(&mut core, now);
                match core.phase {
                    Phase::Closed => return Admission::Allowed,
                    Phase::Open { until } => until,
                    Phase::HalfOpen { probe: None } => {
                        core.phase = Phase::HalfOpen { probe: Some(now) };
                        return Admission::Probe;
                    }
                    Phase::HalfOpen {
                        probe: Some(started),
                    } => {
                        let lost = started + self.inner.config.cool_down;
                        if now >= lost {
                            tracing::warn!(
                                breaker = self.inner.name.as_deref().unwrap_or_default(),
                                "circuit breaker probe recorded no outcome; probing again"
                            );
                            core.phase = Phase::HalfOpen { probe: Some(now) };
                            return Admission::Probe;
                        }
                        lost
                    }
                }
            };
            tokio::select! {
                _ = &mut changed => {}
                _ = tokio::time::sleep_until(deadline) => {}
            }
        }
    }

    /// Opens the breaker for one cool-down, starting now.
    fn open(&self, core: &mut Core, now: Instant) {
        core.phase = Phase::Open {
            until: now + self.inner.config.cool_down,
        };
        core.window.clear();
        core.failures = 0;
    }

    /// Turns an open breaker whose cool-down is over half-open.
    fn refresh(&self, core: &mut Core, now: Instant) {
        if let Phase::Open { until } = core.phase
            && now >= until
        {
            core.phase = Phase::HalfOpen { probe: None };
            tracing::info!(
                breaker = self.inner.name.as_deref().unwrap_or_default(),
                "circuit breaker half-open: cool-down over; probing with one attempt"
            );
        }
    }

    fn lock(&self) -> MutexGuard<'_, Core> {
        // The state stays consistent even if a holder panicked: every update is complete
        // before anything that could panic.
        self.inner
            .core
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

fn duration_ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn breaker() -> CircuitBreaker {
        CircuitBreaker::named(
            "test",
            BreakerConfig {
                window: 10,
                min_samples: 4,
                failure_ratio: 0.5,
                cool_down: Duration::from_secs(30),
            },
        )
    }

    fn open(b: &CircuitBreaker) {
        for _ in 0..4 {
            b.record(false);
        }
        assert_eq!(b.state().as_str(), "open");
    }

    /// Whether `fut` completes without time having to pass.
    async fn ready_now<F: std::future::Future>(fut: F) -> Option<F::Output> {
        tokio::select! {
            biased;
            out = fut => Some(out),
            _ = tokio::task::yield_now() => None,
        }
    }

    #[test]
    fn defaults() {
        let c = BreakerConfig::default();
        assert_eq!(c.window, 20);
        assert_eq!(c.min_samples, 10);
        assert!((c.failure_ratio - 0.5).abs() < f64::EPSILON);
        assert_eq!(c.cool_down, Duration::from_secs(30));
    }

    #[tokio::test(start_paused = true)]
    async fn opens_when_the_ratio_is_reached_with_min_samples() {
        let b = breaker();
        b.record(true);
        b.record(false);
        b.record(true);
        assert_eq!(b.state(), BreakerState::Closed, "3 samples < min 4");
        b.record(false); // 2 of 4 failed = 0.5
        let BreakerState::Open { until } = b.state() else {
            panic!("expected open, got {}", b.state());
        };
        assert_eq!(until, Instant::now() + Duration::from_secs(30));
        assert_eq!(b.state().remaining(), Some(Duration::from_secs(30)));
        assert_eq!(b.state().to_string(), "open");
    }

    #[tokio::test(start_paused = true)]
    async fn stays_closed_below_min_samples_and_below_the_ratio() {
        let b = breaker();
        for _ in 0..3 {
            b.record(false);
        }
        assert_eq!(
            b.state(),
            BreakerState::Closed,
            "all failed, but only 3 samples"
        );

        let b = breaker();
        for _ in 0..30 {
            // 1 failure in 3: below 0.5 in every window.
            b.record(true);
            b.record(true);
            b.record(false);
        }
        assert_eq!(b.state(), BreakerState::Closed);
        assert_eq!(
            ready_now(b.wait_until_allowed()).await,
            Some(Admission::Allowed)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn the_window_forgets_old_attempts() {
        let b = breaker(); // window 10
        for _ in 0..10 {
            b.record(true);
        }
        for _ in 0..4 {
            b.record(false);
        }
        // 4 of the last 10 failed (4 of all 14).
        assert_eq!(b.state(), BreakerState::Closed);
        // 5 of the last 10 failed, though only 5 of all 15: the old successes are gone.
        b.record(false);
        assert_eq!(b.state().as_str(), "open");
    }

    #[tokio::test(start_paused = true)]
    async fn open_waits_out_the_cool_down() {
        let b = breaker();
        open(&b);
        let start = Instant::now();
        assert_eq!(ready_now(b.wait_until_allowed()).await, None);
        assert_eq!(b.wait_until_allowed().await, Admission::Probe);
        assert_eq!(start.elapsed(), Duration::from_secs(30));
        assert_eq!(b.state(), BreakerState::HalfOpen);
        assert_eq!(b.state().as_str(), "half_open");
        assert_eq!(b.state().remaining(), None);
    }

    #[tokio::test(start_paused = true)]
    async fn outcomes_recorded_while_open_are_ignored() {
        let b = breaker();
        open(&b);
        let before = b.state();
        b.record(true);
        b.record(false);
        assert_eq!(b.state(), before);
    }

    #[tokio::test(start_paused = true)]
    async fn half_open_allows_one_probe_at_a_time() {
        let b = breaker();
        open(&b);
        tokio::time::advance(Duration::from_secs(30)).await;
        assert_eq!(b.state(), BreakerState::HalfOpen);
        assert_eq!(
            ready_now(b.wait_until_allowed()).await,
            Some(Admission::Probe)
        );

        // A second caller waits for the probe's outcome.
        let waiter = tokio::spawn({
            let b = b.clone();
            async move { b.wait_until_allowed().await }
        });
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert!(!waiter.is_finished());

        b.record(true);
        assert_eq!(waiter.await.expect("waiter"), Admission::Allowed);
        assert_eq!(b.state(), BreakerState::Closed);
    }

    #[tokio::test(start_paused = true)]
    async fn probe_success_closes_with_an_empty_window() {
        let b = breaker();
        open(&b);
        assert_eq!(b.wait_until_allowed().await, Admission::Probe);
        b.record(true);
        assert_eq!(b.state(), BreakerState::Closed);
        // The failures before opening are forgotten: three more do not reopen it.
        for _ in 0..3 {
            b.record(false);
        }
        assert_eq!(b.state(), BreakerState::Closed);
        assert_eq!(
            ready_now(b.wait_until_allowed()).await,
            Some(Admission::Allowed)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn probe_failure_reopens_for_another_cool_down() {
        let b = breaker();
        open(&b);
        assert_eq!(b.wait_until_allowed().await, Admission::Probe);
        let waiter = tokio::spawn({
            let b = b.clone();
            async move { b.wait_until_allowed().await }
        });
        tokio::task::yield_now().await;

        let failed_at = Instant::now();
        b.record(false);
        assert_eq!(
            b.state(),
            BreakerState::Open {
                until: failed_at + Duration::from_secs(30)
            }
        );
        // The waiter sleeps out the new cool-down and then gets the next probe.
        assert_eq!(waiter.await.expect("waiter"), Admission::Probe);
        assert_eq!(failed_at.elapsed(), Duration::from_secs(30));
    }

    #[tokio::test(start_paused = true)]
    async fn a_released_probe_goes_to_the_next_caller() {
        let b = breaker();
        open(&b);
        assert_eq!(b.wait_until_allowed().await, Admission::Probe);
        let waiter = tokio::spawn({
            let b = b.clone();
            async move { b.wait_until_allowed().await }
        });
        tokio::task::yield_now().await;
        let t = Instant::now();
        b.release_probe();
        assert_eq!(waiter.await.expect("waiter"), Admission::Probe);
        assert_eq!(t.elapsed(), Duration::ZERO);
    }

    #[tokio::test(start_paused = true)]
    async fn a_lost_probe_is_replaced_after_a_cool_down() {
        let b = breaker();
        open(&b);
        assert_eq!(b.wait_until_allowed().await, Admission::Probe);
        let t = Instant::now();
        // The probe's holder never records: the next caller probes one cool-down later.
        assert_eq!(b.wait_until_allowed().await, Admission::Probe);
        assert_eq!(t.elapsed(), Duration::from_secs(30));
    }

    #[test]
    fn config_is_brought_into_range() {
        let b = CircuitBreaker::new(BreakerConfig {
            window: 0,
            min_samples: 5,
            ..BreakerConfig::default()
        });
        assert_eq!(b.config().window, 1);
        assert_eq!(b.config().min_samples, 1);
        let dbg = format!("{b:?}");
        assert!(dbg.contains("Closed"), "{dbg}");
    }
}
