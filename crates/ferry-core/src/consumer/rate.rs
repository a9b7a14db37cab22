//! A rate limiter for consumers and producers: "at most n per second".
//!
//! Consumers use it to protect a downstream service ("send at most 10 emails per second"),
//! producers to stay within a quota. It is local to one process: a limit shared by all the
//! workers of a queue needs the backend's help and is not this type's job.
//!
//! The arithmetic is [`governor`]'s GCRA (one atomic word, no background task), used with
//! two deliberate choices:
//!
//! - **tokio's clock.** The limiter reads [`tokio::time::Instant`] through a small
//!   [`governor::clock::Clock`] adapter, and waits with [`tokio::time::sleep`] rather than
//!   governor's `until_ready` (available with its `std` feature, but that sleeps on
//!   `futures-timer`'s own timer thread and real time). So the limiter follows paused and
//!   advanced time in tests like the rest of the runtime, and never touches governor's
//!   `quanta` clock, which can jump backwards when a thread changes cores (governor#299).
//!   tokio's `Instant` is the monotonic `std::time::Instant` outside tests.
//! - **A fair queue.** Waiters line up behind an async mutex, so they are served in arrival
//!   order and a single sleeper re-checks the limiter at a time, instead of every waiter
//!   waking at the same instant and all but one going back to sleep.
//!
//! The default burst is 1, so the rate holds in every interval, however short. A larger
//! burst ([`RateLimit::with_burst`]) lets up to that many through at once after a quiet
//! period, while the long-run rate stays the same.
//!
//! ```
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! use std::time::{Duration, Instant};
//! use ferry_core::consumer::RateLimit;
//!
//! let limit = RateLimit::per_second(100).expect("not zero").with_burst(5);
//! let start = Instant::now();
//! limit.acquire_n(5).await; // the burst: no wait
//! for _ in 0..5 {
//!     limit.acquire().await; // then one every 10 ms
//! }
//! assert!(start.elapsed() >= Duration::from_millis(40));
//! assert!(RateLimit::per_second(0).is_none());
//! # });
//! ```

use std::fmt;
use std::num::NonZeroU32;
use std::ops::Add;
use std::sync::Arc;
use std::time::Duration;

use governor::clock::{Clock, Reference};
use governor::middleware::NoOpMiddleware;
use governor::nanos::Nanos;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter};

/// Paces work to a steady rate: at most `n` per second (or per any period), with an
/// optional burst.
///
/// Waiters are served in arrival order. Timing follows tokio's clock, so paused time in
/// tests applies. The limit is per process, not shared across workers.
///
/// Cloning is cheap and every clone draws from the same budget.
#[derive(Clone)]
pub struct RateLimit {
    inner: Arc<Inner>,
}

struct Inner {
    limiter: Limiter,
    /// Serves waiters in arrival order; held while a waiter sleeps for its permits.
    queue: tokio::sync::Mutex<()>,
    count: u32,
    per: Duration,
    burst: NonZeroU32,
}

type Limiter = RateLimiter<NotKeyed, InMemoryState, TokioClock, NoOpMiddleware<TokioInstant>>;

impl fmt::Debug for RateLimit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RateLimit")
            .field("count", &self.inner.count)
            .field("per", &self.inner.per)
            .field("burst", &self.inner.burst)
            .finish_non_exhaustive()
    }
}

impl RateLimit {
    /// At most `n` per second, evenly spaced; `None` when `n` is 0.
    pub fn per_second(n: u32) -> Option<Self> {
        Self::new(n, Duration::from_secs(1))
    }

    /// At most `n` per `per` (for example 100 per minute), evenly spaced; `None` when `n`
    /// or `per` is zero.
    pub fn new(n: u32, per: Duration) -> Option<Self> {
        let count = NonZeroU32::new(n)?;
        if per.is_zero() {
            return None;
        }
        Some(Self::build(count.get(), per, NonZeroU32::MIN))
    }

    /// Lets up to `burst` through at once after a quiet period (default 1); the long-run
    /// rate is unchanged. A burst of 0 counts as 1.
    ///
    /// Call it while building: the result has a fresh budget, not shared with clones of
    /// `self`.
    pub fn with_burst(self, burst: u32) -> Self {
        let burst = NonZeroU32::new(burst).unwrap_or(NonZeroU32::MIN);
        Self::build(self.inner.count, self.inner.per, burst)
    }

    fn build(count: u32, per: Duration, burst: NonZeroU32) -> Self {
        // More than a billion per second rounds to one nanosecond apart: as good as no limit.
        let interval = (per / count).max(Duration::from_nanos(1));
        let quota = Quota::with_period(interval)
            .unwrap_or_else(|| Quota::per_second(NonZeroU32::MAX))
            .allow_burst(burst);
        Self {
            inner: Arc::new(Inner {
                limiter: RateLimiter::direct_with_clock(quota, TokioClock),
                queue: tokio::sync::Mutex::new(()),
                count,
                per,
                burst,
            }),
        }
    }

    /// The time between two permits at the steady rate.
    pub fn interval(&self) -> Duration {
        (self.inner.per / self.inner.count).max(Duration::from_nanos(1))
    }

    /// How many permits may be taken at once after a quiet period.
    pub fn burst(&self) -> u32 {
        self.inner.burst.get()
    }

    /// Waits until one permit is available and takes it.
    ///
    /// Waiters are served in arrival order. Cancel-safe: a dropped call takes nothing.
    pub async fn acquire(&self) {
        self.acquire_n(1).await;
    }

    /// Waits until `n` permits are available and takes them (0 returns at once).
    ///
    /// Up to the burst they are taken together; more are taken in burst-sized steps at the
    /// steady rate, so asking for more than the burst is allowed and simply waits longer.
    /// Waiters are served in arrival order. If the call is dropped midway, the steps
    /// already taken stay spent.
    pub async fn acquire_n(&self, n: u32) {
        if n == 0 {
            return;
        }
        let _turn = self.inner.queue.lock().await;
        let mut left = n;
        let mut step_max = self.inner.burst.get();
        while let Some(step) = NonZeroU32::new(left.min(step_max)) {
            let wait = match self.inner.limiter.check_n(step) {
                Ok(Ok(())) => {
                    left -= step.get();
                    continue;
                }
                Ok(Err(not_until)) => not_until.wait_time_from(TokioClock.now()),
                // More than the limiter can ever hold at once (not expected, since steps
                // stay within the burst): take smaller steps.
                Err(governor::InsufficientCapacity(cap)) => {
                    step_max = cap.clamp(1, step_max.saturating_sub(1).max(1));
                    continue;
                }
            };
            tokio::time::sleep(wait).await;
        }
    }

    /// Takes one permit if one is available now, without waiting; `false` otherwise.
    ///
    /// It does not queue behind callers waiting in [`acquire`](Self::acquire), so a caller
    /// that polls it in a loop can starve them.
    pub fn try_acquire(&self) -> bool {
        self.inner.limiter.check().is_ok()
    }
}

/// governor's clock adapter for tokio's clock.
#[derive(Debug, Clone, Copy, Default)]
struct TokioClock;

impl Clock for TokioClock {
    type Instant = TokioInstant;

    fn now(&self) -> TokioInstant {
        TokioInstant(tokio::time::Instant::now())
    }
}

/// A reading of [`TokioClock`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct TokioInstant(tokio::time::Instant);

impl Add<Nanos> for TokioInstant {
    type Output = Self;

    fn add(self, other: Nanos) -> Self {
        Self(self.0 + Duration::from(other))
    }
}

impl Reference for TokioInstant {
    fn duration_since(&self, earlier: Self) -> Nanos {
        self.0.saturating_duration_since(earlier.0).into()
    }

    fn saturating_sub(&self, duration: Nanos) -> Self {
        Self(self.0.checked_sub(duration.into()).unwrap_or(self.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::time::Instant;

    #[test]
    fn zero_is_refused() {
        assert!(RateLimit::per_second(0).is_none());
        assert!(RateLimit::new(0, Duration::from_secs(60)).is_none());
        assert!(RateLimit::new(5, Duration::ZERO).is_none());
        let r = RateLimit::new(120, Duration::from_secs(60)).expect("valid");
        assert_eq!(r.interval(), Duration::from_millis(500));
        assert_eq!(r.burst(), 1);
        assert_eq!(r.with_burst(0).burst(), 1);
        let dbg = format!("{:?}", RateLimit::per_second(3).expect("valid"));
        assert!(dbg.contains("count: 3"), "{dbg}");
    }

    #[tokio::test(start_paused = true)]
    async fn ten_per_second_paces_thirty_over_three_seconds() {
        let r = RateLimit::per_second(10).expect("valid");
        let start = Instant::now();
        let mut at = Vec::new();
        for _ in 0..30 {
            r.acquire().await;
            at.push(start.elapsed());
        }
        // Burst 1: the first is free, then one every 100 ms.
        assert_eq!(at[0], Duration::ZERO);
        let total = start.elapsed();
        assert!(
            total >= Duration::from_millis(2_900) && total < Duration::from_millis(3_000),
            "{total:?}"
        );
        for pair in at.windows(2) {
            let gap = pair[1] - pair[0];
            assert!(gap >= Duration::from_millis(99), "gap {gap:?}");
            assert!(gap <= Duration::from_millis(102), "gap {gap:?}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn burst_is_honoured_then_the_rate() {
        let r = RateLimit::per_second(10).expect("valid").with_burst(10);
        let start = Instant::now();
        for _ in 0..10 {
            r.acquire().await;
        }
        assert_eq!(start.elapsed(), Duration::ZERO, "the burst needs no wait");
        assert!(!r.try_acquire(), "the burst is used up");
        for _ in 0..20 {
            r.acquire().await;
        }
        let total = start.elapsed();
        assert!(
            total >= Duration::from_millis(1_990) && total <= Duration::from_millis(2_020),
            "30 at 10/s with burst 10: {total:?}"
        );

        // After a quiet spell the burst refills to 10, not more.
        tokio::time::sleep(Duration::from_secs(5)).await;
        let t = Instant::now();
        r.acquire_n(10).await;
        assert_eq!(t.elapsed(), Duration::ZERO);
        assert!(!r.try_acquire());
    }

    #[tokio::test(start_paused = true)]
    async fn acquire_n_beyond_the_burst_waits_at_the_rate() {
        let r = RateLimit::per_second(10).expect("valid").with_burst(4);
        let start = Instant::now();
        r.acquire_n(0).await;
        r.acquire_n(4).await;
        assert_eq!(start.elapsed(), Duration::ZERO);
        // 10 more at 10/s: the last arrives a second later.
        r.acquire_n(10).await;
        let total = start.elapsed();
        assert!(
            total >= Duration::from_millis(990) && total <= Duration::from_millis(1_020),
            "{total:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn clones_share_the_budget_and_waiters_are_served_in_order() {
        let r = RateLimit::per_second(10).expect("valid");
        let start = Instant::now();
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..5u32 {
            let (r, tx) = (r.clone(), tx.clone());
            tasks.spawn(async move {
                r.acquire().await;
                let _ = tx.send((i, start.elapsed()));
            });
            tokio::task::yield_now().await; // queue them in order
        }
        drop(tx);
        tasks.join_all().await;
        let mut got = Vec::new();
        while let Some(x) = rx.recv().await {
            got.push(x);
        }
        let order: Vec<u32> = got.iter().map(|(i, _)| *i).collect();
        assert_eq!(order, [0, 1, 2, 3, 4]);
        let last = got.last().map(|(_, t)| *t).unwrap_or_default();
        assert!(
            last >= Duration::from_millis(400) && last <= Duration::from_millis(410),
            "{last:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_cancelled_acquire_takes_nothing() {
        let r = RateLimit::per_second(1).expect("valid");
        r.acquire().await;
        let gave_up = tokio::time::timeout(Duration::from_millis(500), r.acquire()).await;
        assert!(gave_up.is_err());
        let t = Instant::now();
        r.acquire().await; // due one second after the first, not two
        assert_eq!(t.elapsed(), Duration::from_millis(500));
    }
}
