//! The re-drive runtime: a loop that moves approved dead letters back into their queues.
//!
//! An operator approves dead letters ([`DeadLetters::approve_dead_letters`]); a
//! [`Redriver`] running somewhere (one process or several) calls
//! [`DeadLetters::redrive_approved`] for each of its queues on every tick. The safety
//! lives in the driver, not here: that call is the backend's atomic claim, so any
//! number of redrivers over one backend requeue each approved dead letter once, and a
//! message that dies again waits for a new approval. This loop only paces the calls,
//! reports what moved, keeps going through transient backend errors (logged, with a
//! growing pause) and stops at shutdown.
//!
//! A call in flight when shutdown arrives is allowed to finish (each is bounded by the
//! backend's own timeouts), so every id the backend moved is reported to the
//! [`on_redriven`](RedriverBuilder::on_redriven) callback before `run` returns.

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use crate::driver::Driver;
use crate::error::{Error, Result};
use crate::name::QueueName;

type OnRedriven = Arc<dyn Fn(&QueueName, &[String]) + Send + Sync>;

/// Default pause between rounds.
pub const DEFAULT_REDRIVE_EVERY: Duration = Duration::from_secs(5);
/// Default most dead letters moved per queue and round.
pub const DEFAULT_REDRIVE_MAX: u64 = 100;
/// Longest pause after repeated transient errors.
pub const MAX_REDRIVE_BACKOFF: Duration = Duration::from_secs(30);

/// What a [`Redriver`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RedriveReport {
    /// Rounds run (each calls every queue once, unless an error cut it short).
    pub rounds: u64,
    /// Dead letters moved back into their queues, over all queues.
    pub redriven: u64,
    /// Transient backend errors survived.
    pub errors: u64,
}

/// Moves approved dead letters of some queues back on a fixed pace; see the module
/// docs. Built with [`Redriver::builder`].
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// use std::sync::Arc;
/// use std::time::Duration;
/// use ferry_core::*;
/// let d = Arc::new(MemoryDriver::new());
/// let q = QueueName::new("emails")?;
/// d.create_queue(&q, QueueOptions::default()).await?;
/// d.send(&q, vec![Message::new("hi").with_id("m1")]).await?;
/// let got = d.receive(&q, ReceiveOptions::max(1)).await?;
/// d.dead_letter(&got[0].receipt, reason::REJECTED, None).await?;
/// d.approve_dead_letters(&q, Selection::All).await?;
///
/// let redriver = Redriver::builder(d.clone())
///     .queue(q.clone())
///     .every(Duration::from_millis(10))
///     .max_per_round(50)
///     .build()?;
/// let report = redriver.round().await?;
/// assert_eq!(report.redriven, 1);
/// assert_eq!(d.stats(Some(&q)).await?[0].ready, 1);
/// # Ok::<(), Error>(()) }).unwrap();
/// ```
#[derive(Clone)]
pub struct Redriver {
    driver: Arc<dyn Driver>,
    queues: Vec<QueueName>,
    every: Duration,
    max_per_round: u64,
    max_backoff: Duration,
    on_redriven: Option<OnRedriven>,
}

impl fmt::Debug for Redriver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Redriver")
            .field("queues", &self.queues)
            .field("every", &self.every)
            .field("max_per_round", &self.max_per_round)
            .field("max_backoff", &self.max_backoff)
            .finish_non_exhaustive()
    }
}

/// Settings of a [`Redriver`].
#[derive(Clone)]
pub struct RedriverBuilder {
    inner: Redriver,
}

impl fmt::Debug for RedriverBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.inner.fmt(f)
    }
}

impl RedriverBuilder {
    /// Adds a queue to re-drive (duplicates are ignored).
    pub fn queue(mut self, queue: QueueName) -> Self {
        if !self.inner.queues.contains(&queue) {
            self.inner.queues.push(queue);
        }
        self
    }

    /// Adds several queues.
    pub fn queues(self, queues: impl IntoIterator<Item = QueueName>) -> Self {
        queues.into_iter().fold(self, Self::queue)
    }

    /// Pause between rounds (default [`DEFAULT_REDRIVE_EVERY`]; at least 1 ms).
    pub fn every(mut self, every: Duration) -> Self {
        self.inner.every = every;
        self
    }

    /// Most dead letters moved per queue and round (default [`DEFAULT_REDRIVE_MAX`]).
    pub fn max_per_round(mut self, max: u64) -> Self {
        self.inner.max_per_round = max;
        self
    }

    /// Longest pause after repeated transient errors (default [`MAX_REDRIVE_BACKOFF`];
    /// the pause starts at `every` and doubles per failed round).
    pub fn max_backoff(mut self, max: Duration) -> Self {
        self.inner.max_backoff = max;
        self
    }

    /// Called with each queue's moved ids after every call that moved some, before the
    /// next call (a CLI prints them, an audit records them).
    pub fn on_redriven(
        mut self,
        f: impl Fn(&QueueName, &[String]) + Send + Sync + 'static,
    ) -> Self {
        self.inner.on_redriven = Some(Arc::new(f));
        self
    }

    /// Checks the settings: at least one queue, `every` of at least 1 ms, `max_per_round`
    /// at least 1.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use ferry_core::{ErrorKind, MemoryDriver, Redriver};
    /// let e = Redriver::builder(Arc::new(MemoryDriver::new())).build().unwrap_err();
    /// assert_eq!(e.kind(), ErrorKind::InvalidInput);
    /// ```
    pub fn build(self) -> Result<Redriver> {
        let r = self.inner;
        if r.queues.is_empty() {
            return Err(Error::invalid_input("re-drive needs at least one queue"));
        }
        if r.every < Duration::from_millis(1) {
            return Err(Error::invalid_input(
                "re-drive pace must be at least 1ms between rounds",
            ));
        }
        if r.max_per_round == 0 {
            return Err(Error::invalid_input(
                "re-drive max per round must be at least 1",
            ));
        }
        Ok(r)
    }
}

/// How the loop goes on after a round.
enum Next {
    /// Wait `every`.
    Pace,
    /// A transient error: wait longer.
    Backoff,
}

impl Redriver {
    /// A builder over `driver` with the defaults and no queues yet.
    pub fn builder(driver: Arc<dyn Driver>) -> RedriverBuilder {
        RedriverBuilder {
            inner: Redriver {
                driver,
                queues: Vec::new(),
                every: DEFAULT_REDRIVE_EVERY,
                max_per_round: DEFAULT_REDRIVE_MAX,
                max_backoff: MAX_REDRIVE_BACKOFF,
                on_redriven: None,
            },
        }
    }

    /// The queues this redriver serves.
    pub fn queue_names(&self) -> &[QueueName] {
        &self.queues
    }

    /// One round: `redrive_approved(queue, max_per_round)` for each queue, in order.
    /// Stops at the first error and returns it (what moved before it was reported to
    /// the callback already).
    pub async fn round(&self) -> Result<RedriveReport> {
        let mut report = RedriveReport::default();
        self.round_into(&mut report).await?;
        report.rounds = 1;
        Ok(report)
    }

    async fn round_into(&self, report: &mut RedriveReport) -> Result<()> {
        for q in &self.queues {
            let moved = self
                .driver
                .redrive_approved(q, self.max_per_round)
                .await
                .map_err(|e| {
                    Error::new(
                        e.kind(),
                        format!("re-drive of queue '{q}': {}", e.message()),
                    )
                    .with_source(e)
                })?;
            if moved.is_empty() {
                tracing::debug!(queue = %q, "re-drive: nothing approved");
                continue;
            }
            report.redriven += moved.len() as u64;
            tracing::info!(queue = %q, count = moved.len(), "re-drive: moved approved dead letters back");
            if let Some(f) = &self.on_redriven {
                f(q, &moved);
            }
        }
        Ok(())
    }

    /// Runs rounds every `every` until `shutdown` completes, and returns what was done.
    ///
    /// A transient error ([`Error::is_transient`]: backend down, timeout) is logged and
    /// counted, and the next round waits longer (doubling from `every` up to
    /// `max_backoff`), until a round succeeds again. Any other error (the queue was
    /// deleted, the backend cannot re-drive) is returned: it will not fix itself. A
    /// call in flight when `shutdown` completes finishes first, so everything moved is
    /// reported.
    ///
    /// ```
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// use std::sync::Arc;
    /// use std::time::Duration;
    /// use ferry_core::*;
    /// let d = Arc::new(MemoryDriver::new());
    /// let q = QueueName::new("emails")?;
    /// d.create_queue(&q, QueueOptions::default()).await?;
    /// let redriver = Redriver::builder(d).queue(q).every(Duration::from_millis(5)).build()?;
    /// let report = redriver.run(tokio::time::sleep(Duration::from_millis(50))).await?;
    /// assert!(report.rounds >= 1);
    /// assert_eq!(report.redriven, 0);
    /// # Ok::<(), Error>(()) }).unwrap();
    /// ```
    pub async fn run(&self, shutdown: impl Future<Output = ()>) -> Result<RedriveReport> {
        let mut shutdown = std::pin::pin!(shutdown);
        let mut report = RedriveReport::default();
        let mut failures: u32 = 0;
        loop {
            let next = match self.round_into(&mut report).await {
                Ok(()) => {
                    failures = 0;
                    Next::Pace
                }
                Err(e) if e.is_transient() => {
                    failures = failures.saturating_add(1);
                    report.errors += 1;
                    tracing::warn!(error = %e, failures, "re-drive round failed; backing off");
                    Next::Backoff
                }
                Err(e) => return Err(e),
            };
            report.rounds += 1;
            let pause = match next {
                Next::Pace => self.every,
                Next::Backoff => backoff(self.every, self.max_backoff, failures),
            };
            tokio::select! {
                biased;
                () = &mut shutdown => break,
                () = tokio::time::sleep(pause) => {}
            }
        }
        tracing::info!(
            rounds = report.rounds,
            redriven = report.redriven,
            errors = report.errors,
            "re-drive stopped"
        );
        Ok(report)
    }
}

/// `every` doubled per consecutive failure, capped at `max` (but never below `every`).
fn backoff(every: Duration, max: Duration, failures: u32) -> Duration {
    let factor = 1u32 << failures.min(16);
    every.saturating_mul(factor).min(max.max(every))
}

#[cfg(test)]
mod tests;
