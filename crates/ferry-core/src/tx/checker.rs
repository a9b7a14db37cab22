//! The checker: resolves prepared messages whose producer stopped holding them.
//!
//! Each round claims due records (fenced, for a lease) and for each one:
//! - [`TxState::Committed`] (the producer's publish failed): publishes, removes;
//! - [`TxState::Prepared`]: asks the user's [`CheckBack`]. `Committed` → publish and
//!   remove; `RolledBack` → remove; `Unknown` (or a check-back that panicked) → ask
//!   again after a backoff, and after `max_checks` unknown answers dead-letter the
//!   message into its queue(s) with reason `tx_check_exhausted`, so an operator sees
//!   it where dead letters are inspected and decides (requeue = send it).
//!
//! Several checkers in several processes share the work through the store's claims. A
//! checker that dies mid-record leaves the claim to expire and the record comes back;
//! if it had published already, the second publish carries the same message id.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;

use super::store::{Claimed, Destination, Prepared, Reschedule, TxState, TxStore};
use crate::driver::Driver;
use crate::error::{Error, ErrorKind, Result};
use crate::message::{DeadLetter, reason};
use crate::name::QueueName;
use crate::producer::Producer;
use crate::retry::{Backoff, RetryPolicy};
use crate::route::route_matches;

/// A check-back's answer about one prepared message's local transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxStatus {
    /// It committed: publish the message.
    Committed,
    /// It rolled back, or can no longer commit: drop the message.
    RolledBack,
    /// Cannot tell yet (the database is unreachable, the transaction may still be
    /// running): ask again later.
    Unknown,
}

/// The user's answer to "did the transaction that prepared this message commit?",
/// typically a lookup of the business row the transaction wrote (keyed by the
/// message id or a header).
///
/// Answer `RolledBack` only when the transaction can no longer commit; when in doubt,
/// `Unknown` is always safe (the checker asks again, and finally dead-letters).
///
/// Closures `Fn(Prepared) -> impl Future<Output = TxStatus>` implement it:
///
/// ```
/// use ferry_core::tx::{CheckBack, Prepared, TxStatus};
/// fn takes(_: impl CheckBack) {}
/// takes(|p: Prepared| async move {
///     // SELECT 1 FROM orders WHERE id = p.id() …
///     if p.id().starts_with("order-") { TxStatus::Committed } else { TxStatus::Unknown }
/// });
/// ```
#[async_trait]
pub trait CheckBack: Send + Sync {
    /// Looks up the transaction behind `prepared`.
    async fn check(&self, prepared: &Prepared) -> TxStatus;
}

#[async_trait]
impl<F, Fut> CheckBack for F
where
    F: Fn(Prepared) -> Fut + Send + Sync,
    Fut: Future<Output = TxStatus> + Send,
{
    async fn check(&self, prepared: &Prepared) -> TxStatus {
        self(prepared.clone()).await
    }
}

/// What checker rounds did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct TxCheckReport {
    /// Records claimed.
    pub claimed: u64,
    /// Messages published (committed records).
    pub published: u64,
    /// Records removed because their transaction rolled back.
    pub rolled_back: u64,
    /// Unknown answers that were rescheduled.
    pub unknown: u64,
    /// Messages dead-lettered after `max_checks` unknown answers.
    pub dead_lettered: u64,
    /// Publishes or dead-letterings that failed and were rescheduled.
    pub failed: u64,
    /// Records another checker took over before this one finished.
    pub lost: u64,
}

impl std::ops::AddAssign for TxCheckReport {
    fn add_assign(&mut self, o: Self) {
        self.claimed += o.claimed;
        self.published += o.published;
        self.rolled_back += o.rolled_back;
        self.unknown += o.unknown;
        self.dead_lettered += o.dead_lettered;
        self.failed += o.failed;
        self.lost += o.lost;
    }
}

/// Settings of a [`TxChecker`].
pub struct TxCheckerBuilder {
    store: Arc<dyn TxStore>,
    driver: Arc<dyn Driver>,
    check_back: Arc<dyn CheckBack>,
    max_checks: u32,
    backoff: Backoff,
    lease: Duration,
    every: Duration,
    batch: usize,
    check_timeout: Duration,
}

impl std::fmt::Debug for TxCheckerBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TxCheckerBuilder")
            .field("store", &self.store)
            .field("max_checks", &self.max_checks)
            .field("backoff", &self.backoff)
            .field("lease", &self.lease)
            .field("every", &self.every)
            .field("batch", &self.batch)
            .finish_non_exhaustive()
    }
}

impl TxCheckerBuilder {
    /// Unknown answers before the message is dead-lettered (at least 1). Default 10.
    pub fn max_checks(mut self, n: u32) -> Self {
        self.max_checks = n.max(1);
        self
    }

    /// Delay before asking again after an unknown answer (and before retrying a failed
    /// publish). Default exponential from 1 s to 5 min with jitter.
    pub fn backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = backoff;
        self
    }

    /// How long a claim lasts before another checker may take the record. Default 30 s.
    pub fn claim_lease(mut self, lease: Duration) -> Self {
        self.lease = lease.max(Duration::from_millis(10));
        self
    }

    /// How often [`TxChecker::run`] looks for due records. Default 1 s.
    pub fn every(mut self, every: Duration) -> Self {
        self.every = every.max(Duration::from_millis(1));
        self
    }

    /// Records claimed per round (at least 1). Default 100.
    pub fn batch(mut self, n: usize) -> Self {
        self.batch = n.max(1);
        self
    }

    /// How long one check-back may take before its answer counts as unknown (kept
    /// below the claim lease). Default 10 s.
    pub fn check_timeout(mut self, timeout: Duration) -> Self {
        self.check_timeout = timeout.max(Duration::from_millis(1));
        self
    }

    /// The checker.
    pub fn build(self) -> TxChecker {
        TxChecker {
            producer: Producer::new(self.driver.clone()),
            store: self.store,
            driver: self.driver,
            check_back: self.check_back,
            checks: RetryPolicy::default()
                .with_max_attempts(self.max_checks)
                .with_backoff(self.backoff.clone()),
            republish: RetryPolicy::default()
                .with_max_attempts(u32::MAX)
                .with_backoff(self.backoff),
            max_checks: self.max_checks,
            check_timeout: self.check_timeout.min(self.lease / 2),
            lease: self.lease,
            every: self.every,
            batch: self.batch,
        }
    }
}

/// Resolves prepared messages whose producer stopped holding them (see the module
/// docs). Run one per process that can answer the check-back; they share the work.
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// use std::{sync::Arc, time::Duration};
/// use ferry_core::*;
/// use ferry_core::tx::*;
///
/// let driver = Arc::new(MemoryDriver::new());
/// let q = QueueName::new("orders")?;
/// driver.create_queue(&q, QueueOptions::default()).await?;
/// let store = Arc::new(MemoryTxStore::new());
/// // A producer died after preparing (hold of zero: due at once).
/// store.prepare(&Destination::queue(q.clone()), &Message::new("x").with_id("order-7"), Duration::ZERO).await?;
///
/// let checker = TxChecker::builder(store.clone(), driver.clone(), |p: Prepared| async move {
///     // Look the order up in the business database.
///     if p.id() == "order-7" { TxStatus::Committed } else { TxStatus::Unknown }
/// })
/// .build();
/// let report = checker.run_once().await?;
/// assert_eq!(report.published, 1);
/// assert_eq!(driver.receive(&q, ReceiveOptions::max(1)).await?[0].id, "order-7");
/// assert_eq!(store.count().await?, 0);
/// # Ok::<(), Error>(()) }).unwrap();
/// ```
pub struct TxChecker {
    store: Arc<dyn TxStore>,
    driver: Arc<dyn Driver>,
    producer: Producer,
    check_back: Arc<dyn CheckBack>,
    checks: RetryPolicy,
    republish: RetryPolicy,
    max_checks: u32,
    check_timeout: Duration,
    lease: Duration,
    every: Duration,
    batch: usize,
}

impl std::fmt::Debug for TxChecker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TxChecker")
            .field("store", &self.store)
            .field("max_checks", &self.max_checks)
            .field("lease", &self.lease)
            .field("every", &self.every)
            .finish_non_exhaustive()
    }
}

enum Step {
    Published,
    RolledBack,
    Unknown,
    DeadLettered,
    Failed,
    Lost,
}

impl TxChecker {
    /// A checker over `store` publishing through `driver`, asking `check_back`.
    pub fn builder(
        store: Arc<dyn TxStore>,
        driver: Arc<dyn Driver>,
        check_back: impl CheckBack + 'static,
    ) -> TxCheckerBuilder {
        TxCheckerBuilder {
            store,
            driver,
            check_back: Arc::new(check_back),
            max_checks: 10,
            backoff: Backoff::Exponential {
                initial: Duration::from_secs(1),
                max: Duration::from_secs(300),
                jitter: true,
            },
            lease: Duration::from_secs(30),
            every: Duration::from_secs(1),
            batch: 100,
            check_timeout: Duration::from_secs(10),
        }
    }

    /// One round: claims due records and resolves each. The error is for the claim
    /// (store down); per-record failures are rescheduled and counted.
    pub async fn run_once(&self) -> Result<TxCheckReport> {
        let claimed = self.store.claim_due(self.batch, self.lease).await?;
        let mut report = TxCheckReport {
            claimed: claimed.len() as u64,
            ..TxCheckReport::default()
        };
        let started = tokio::time::Instant::now();
        for claim in claimed {
            // Past most of the lease, the rest of the batch may already be claimed by
            // another checker: leave it to come back instead of racing that one.
            if started.elapsed() > self.lease.mul_f64(0.75) {
                report.lost += 1;
                continue;
            }
            match self.resolve(claim).await {
                Step::Published => report.published += 1,
                Step::RolledBack => report.rolled_back += 1,
                Step::Unknown => report.unknown += 1,
                Step::DeadLettered => report.dead_lettered += 1,
                Step::Failed => report.failed += 1,
                Step::Lost => report.lost += 1,
            }
        }
        Ok(report)
    }

    /// Runs rounds until `shutdown` completes: immediately again after a full batch,
    /// otherwise every [`TxCheckerBuilder::every`]. A store outage is logged and
    /// retried, never fatal.
    pub async fn run(&self, shutdown: impl Future<Output = ()>) -> TxCheckReport {
        let mut total = TxCheckReport::default();
        let mut shutdown = std::pin::pin!(shutdown);
        let mut outage = 0u32;
        loop {
            let pause = match self.run_once().await {
                Ok(round) => {
                    outage = 0;
                    let full = round.claimed as usize >= self.batch;
                    total += round;
                    if full { Duration::ZERO } else { self.every }
                }
                Err(e) => {
                    outage = outage.saturating_add(1);
                    tracing::warn!(error = %e, "transaction checker cannot claim prepared messages");
                    self.every
                        .saturating_mul(1 << outage.min(5))
                        .min(Duration::from_secs(30))
                }
            };
            tokio::select! {
                () = &mut shutdown => return total,
                () = tokio::time::sleep(pause) => {}
            }
        }
    }

    async fn resolve(&self, claim: Claimed) -> Step {
        let Claimed { prepared, token } = claim;
        let status = match prepared.state {
            TxState::Committed => TxStatus::Committed,
            TxState::Prepared => self.ask(&prepared).await,
        };
        let id = prepared.id().to_string();
        let outcome = match status {
            TxStatus::Committed => {
                let message = prepared.message.clone();
                match self.producer.deliver(&prepared.destination, message).await {
                    Ok(()) => self.remove(&id, token, Step::Published).await,
                    Err(e) => {
                        tracing::warn!(id, error = %e, "publishing a committed prepared message failed; will retry");
                        let checks = prepared.checks.saturating_add(1);
                        let delay = self.republish.delay_after(checks, u32::MAX);
                        self.reschedule(
                            &prepared,
                            token,
                            TxState::Committed,
                            checks,
                            delay,
                            e.to_string(),
                        )
                        .await
                        .map(|()| Step::Failed)
                    }
                }
            }
            TxStatus::RolledBack => self.remove(&id, token, Step::RolledBack).await,
            TxStatus::Unknown => {
                let checks = prepared.checks.saturating_add(1);
                match self.checks.delay_after(checks, self.max_checks) {
                    Some(delay) => self
                        .reschedule(
                            &prepared,
                            token,
                            TxState::Prepared,
                            checks,
                            Some(delay),
                            format!(
                                "check-back answered unknown ({checks} of {})",
                                self.max_checks
                            ),
                        )
                        .await
                        .map(|()| Step::Unknown),
                    None => self.exhausted(&prepared, token, checks).await,
                }
            }
        };
        outcome.unwrap_or_else(|e| {
            if e.kind() == ErrorKind::StaleReceipt || e.kind() == ErrorKind::MessageNotFound {
                Step::Lost
            } else {
                tracing::warn!(id, error = %e, "could not update a prepared message; its claim will expire and it comes back");
                Step::Failed
            }
        })
    }

    /// Calls the check-back on its own task, so a panic there counts as `Unknown`
    /// instead of killing the checker.
    async fn ask(&self, prepared: &Prepared) -> TxStatus {
        let check_back = self.check_back.clone();
        let record = prepared.clone();
        let task = tokio::spawn(async move { check_back.check(&record).await });
        let abort = task.abort_handle();
        let Ok(joined) = tokio::time::timeout(self.check_timeout, task).await else {
            abort.abort();
            tracing::warn!(id = prepared.id(), timeout = ?self.check_timeout, "check-back did not answer in time; treating the answer as unknown");
            return TxStatus::Unknown;
        };
        match joined {
            Ok(status) => status,
            Err(e) => {
                tracing::error!(id = prepared.id(), error = %e, "check-back panicked; treating the answer as unknown");
                TxStatus::Unknown
            }
        }
    }

    /// Removes a resolved record, fenced by the claim: if the producer marked it
    /// committed meanwhile (a fresh token), it stays for the next round.
    async fn remove(&self, id: &str, token: super::store::TxToken, step: Step) -> Result<Step> {
        self.store.remove_claimed(id, token).await?;
        Ok(step)
    }

    async fn reschedule(
        &self,
        prepared: &Prepared,
        token: super::store::TxToken,
        state: TxState,
        checks: u32,
        delay: Option<Duration>,
        error: String,
    ) -> Result<()> {
        let delay = delay.unwrap_or(Duration::from_secs(300));
        let update = Reschedule {
            state,
            checks,
            due_at: crate::time::after(delay),
            error: Some(error),
        };
        self.store.reschedule(prepared.id(), token, update).await
    }

    /// Dead-letters a message whose check-backs never answered, into every queue it
    /// would have reached; keeps it (rescheduled) if that fails.
    async fn exhausted(
        &self,
        prepared: &Prepared,
        token: super::store::TxToken,
        checks: u32,
    ) -> Result<Step> {
        let error = format!(
            "the check-back could not tell whether the transaction committed after {checks} checks; requeue to send it, delete to drop it"
        );
        match self.bury(prepared, &error).await {
            Ok(()) => self.remove(prepared.id(), token, Step::DeadLettered).await,
            Err(e) => {
                tracing::error!(id = prepared.id(), error = %e, "cannot dead-letter an unresolved prepared message; it stays in the store");
                self.reschedule(
                    prepared,
                    token,
                    TxState::Prepared,
                    checks,
                    None,
                    e.to_string(),
                )
                .await
                .map(|()| Step::Failed)
            }
        }
    }

    async fn bury(&self, prepared: &Prepared, error: &str) -> Result<()> {
        let (queues, route_key) = match &prepared.destination {
            Destination::Queue(q) => (vec![q.clone()], None),
            Destination::Topic { topic, route_key } => {
                let queues: Vec<QueueName> = self
                    .driver
                    .list_bindings(topic)
                    .await?
                    .into_iter()
                    .filter(|b| route_matches(&b.pattern, route_key))
                    .map(|b| b.queue)
                    .collect();
                if queues.is_empty() {
                    return Err(Error::unroutable(topic.as_str(), route_key));
                }
                (queues, Some(route_key.clone()))
            }
        };
        let now = SystemTime::now();
        for queue in dedup(queues) {
            let letter = DeadLetter {
                id: prepared.id().to_string(),
                queue: queue.clone(),
                payload: prepared.message.payload().clone(),
                headers: prepared.message.headers().clone(),
                route_key: route_key.clone(),
                priority: prepared.message.priority(),
                enqueued_at: prepared.prepared_at,
                attempts: 0,
                reason: reason::TX_CHECK_EXHAUSTED.to_string(),
                last_error: Some(error.to_string()),
                first_failed_at: None,
                dead_at: now,
            };
            self.driver
                .insert_dead_letters(&queue, vec![letter])
                .await?;
        }
        Ok(())
    }
}

fn dedup(mut queues: Vec<QueueName>) -> Vec<QueueName> {
    queues.sort();
    queues.dedup();
    queues
}
