//! The driver contract: what every backend implements, and what it must guarantee.
//!
//! The contract is split in three dyn-compatible traits so none grows into a god
//! interface: [`Topology`] (queues, topics, bindings), [`DeadLetters`] (inspect, requeue,
//! delete, purge) and [`Driver`] (send, publish, receive, settle, extend, stats), which
//! requires the other two. Everything above the backends holds an `Arc<dyn Driver>`
//! chosen at run time from a URL.
//!
//! Batches are the primitive (`send`, `publish`, `receive` and `settle` take or return
//! many), because a durable backend pays per round trip or per sync, not per message.
//!
//! # Guarantees every driver keeps (checked by `ferry-testkit`'s conformance suite)
//!
//! - `send`/`publish` return `Ok` only once the batch is durable; an error whose outcome
//!   is unknown has kind [`ErrorKind::Indeterminate`](crate::ErrorKind::Indeterminate).
//! - A batch is all or nothing; a publish is all or nothing across matching queues.
//! - While a message with id X is in a queue (ready, delayed or in flight), sending X
//!   to that queue again is a no-op reported in [`SendReport::duplicates`].
//! - A message leaves a queue only by ack or by moving to the dead letters; dead letters
//!   leave only by requeue, delete or purge.
//! - Receipts are fenced: once a lease expired and the message was received again, the
//!   old receipt's settle or extend fails with `StaleReceipt` and changes nothing.
//! - A lease that expires counts as an attempt; when it expires on the queue's last
//!   allowed attempt, the message is dead-lettered with reason `lease_expired`.
//! - Delivery order within a priority is FIFO by the time a message became ready, then
//!   by send order; higher priorities first. Delays never block other messages.
//! - A paused queue ([`Topology::set_paused`]) delivers nothing and loses nothing:
//!   sends, settlements of earlier leases and stats go on; the pause is stored in the
//!   backend, so every process sees it.

use std::fmt::Debug;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;

use crate::error::{Error, ErrorKind, Result};
use crate::message::{
    Binding, DeadLetter, Delivery, Limits, Message, QueueInfo, QueueOptions, QueueStats, Receipt,
};
use crate::name::{QueueName, TopicName};

/// Queues, topics and bindings.
#[async_trait]
pub trait Topology: Send + Sync + Debug {
    /// Creates `queue` with `options`, or updates the options of an existing queue
    /// (which keeps its paused state).
    async fn create_queue(&self, queue: &QueueName, options: QueueOptions) -> Result<()>;

    /// The queue's settings and paused state; `QueueNotFound` if it does not exist.
    async fn get_queue(&self, queue: &QueueName) -> Result<QueueInfo>;

    /// All queues with their settings and paused state, sorted by name.
    async fn list_queues(&self) -> Result<Vec<QueueInfo>>;

    /// Pauses (`true`) or resumes (`false`) deliveries from `queue`; `QueueNotFound` if
    /// it does not exist, a no-op when it is already in that state.
    ///
    /// While a queue is paused, [`Driver::receive`] hands out nothing: it returns an
    /// empty batch once `options.wait` has passed (so long-polling consumers hold off
    /// instead of spinning), and a resume during the wait lets it deliver. Everything
    /// else keeps working: send and publish enqueue, deliveries leased before the
    /// pause can be settled and extended, dead-letter operations and stats work, and
    /// leases that expire come back as usual once the queue is resumed.
    ///
    /// The state is kept in the backend, not in the process, so every process using
    /// the backend sees it (RabbitMQ: within about a second); [`Topology::get_queue`]
    /// and [`Topology::list_queues`] report it, and `create_queue` on an existing
    /// queue leaves it as it is.
    ///
    /// ```
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// use ferry_core::*;
    /// let d = MemoryDriver::new();
    /// let q = QueueName::new("emails")?;
    /// d.create_queue(&q, QueueOptions::default()).await?;
    /// d.set_paused(&q, true).await?;
    /// d.send(&q, vec![Message::new("hi")]).await?; // sends still work
    /// assert!(d.receive(&q, ReceiveOptions::max(10)).await?.is_empty());
    /// assert!(d.get_queue(&q).await?.paused);
    /// d.set_paused(&q, false).await?;
    /// assert_eq!(d.receive(&q, ReceiveOptions::max(10)).await?.len(), 1);
    /// let missing = QueueName::new("nope")?;
    /// assert_eq!(d.set_paused(&missing, true).await.unwrap_err().kind(), ErrorKind::QueueNotFound);
    /// # Ok::<(), Error>(()) }).unwrap();
    /// ```
    async fn set_paused(&self, queue: &QueueName, paused: bool) -> Result<()>;

    /// Deletes the queue with its messages, dead letters and bindings.
    async fn delete_queue(&self, queue: &QueueName) -> Result<()>;

    /// Creates `topic` (a no-op if it exists).
    async fn create_topic(&self, topic: &TopicName) -> Result<()>;

    /// All topics, sorted by name.
    async fn list_topics(&self) -> Result<Vec<TopicName>>;

    /// Deletes the topic and its bindings (queues and their messages stay).
    async fn delete_topic(&self, topic: &TopicName) -> Result<()>;

    /// Routes messages published to `topic` whose route key matches `pattern` into
    /// `queue`. Both must exist; binding twice is a no-op.
    async fn bind(&self, topic: &TopicName, queue: &QueueName, pattern: &str) -> Result<()>;

    /// Removes a binding; `InvalidInput` if it does not exist.
    async fn unbind(&self, topic: &TopicName, queue: &QueueName, pattern: &str) -> Result<()>;

    /// The bindings of `topic`, sorted.
    async fn list_bindings(&self, topic: &TopicName) -> Result<Vec<Binding>>;
}

/// Which dead letters an operation applies to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selection {
    /// These ids.
    Ids(Vec<String>),
    /// Every dead letter of the queue.
    All,
}

/// A page request for listing dead letters.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct DeadLetterQuery {
    /// Skip this many (oldest first).
    pub offset: u64,
    /// Return at most this many. Default 100.
    pub limit: u64,
    /// Only dead letters with this reason.
    pub reason: Option<String>,
    /// Only approved (`Some(true)`) or only unapproved (`Some(false)`) dead letters
    /// ([`DeadLetters::approve_dead_letters`]). Default `None`: both.
    pub approved: Option<bool>,
}

impl Default for DeadLetterQuery {
    fn default() -> Self {
        DeadLetterQuery {
            offset: 0,
            limit: 100,
            reason: None,
            approved: None,
        }
    }
}

impl DeadLetterQuery {
    /// A query for at most `limit` dead letters after skipping `offset`.
    pub fn page(offset: u64, limit: u64) -> Self {
        DeadLetterQuery {
            offset,
            limit,
            ..DeadLetterQuery::default()
        }
    }

    /// Keeps only approved (`true`) or only unapproved (`false`) dead letters.
    ///
    /// ```
    /// use ferry_core::DeadLetterQuery;
    /// let q = DeadLetterQuery::page(0, 10).with_approved(true);
    /// assert_eq!(q.approved, Some(true));
    /// assert_eq!(DeadLetterQuery::default().approved, None);
    /// ```
    pub fn with_approved(mut self, approved: bool) -> Self {
        self.approved = Some(approved);
        self
    }
}

/// Inspecting and repairing dead letters.
#[async_trait]
pub trait DeadLetters: Send + Sync + Debug {
    /// A page of the queue's dead letters, oldest death first.
    async fn list_dead_letters(
        &self,
        queue: &QueueName,
        query: DeadLetterQuery,
    ) -> Result<Vec<DeadLetter>>;

    /// One dead letter by message id (the newest if the id died more than once).
    async fn get_dead_letter(&self, queue: &QueueName, id: &str) -> Result<DeadLetter>;

    /// Moves the selected dead letters back into the queue, ready now, with their
    /// attempts reset. A dead letter whose id is live in the queue again stays where it
    /// is. Returns how many were requeued.
    async fn requeue_dead_letters(&self, queue: &QueueName, selection: Selection) -> Result<u64>;

    /// Deletes the selected dead letters for good. Returns how many.
    async fn delete_dead_letters(&self, queue: &QueueName, selection: Selection) -> Result<u64>;

    /// Stores `letters` as dead letters of `queue`, as given: id, payload, headers,
    /// route key, priority, attempts, reason, last error, `enqueued_at`,
    /// `first_failed_at` and `dead_at` are kept (times to the millisecond; each
    /// letter's `queue` field is ignored). Durable like every write, and all or
    /// nothing. Returns how many were stored. `QueueNotFound` if the queue does not
    /// exist; letters a send would refuse (an invalid id is `InvalidName`, a payload
    /// over the [`Limits`](crate::Limits) `TooLarge`, bad headers or route key
    /// `InvalidInput`) fail the call before anything is written.
    ///
    /// From then on they are dead letters like any other: listed, got, requeued,
    /// deleted, purged, approved and re-driven, and counted in
    /// [`QueueStats::dead`](crate::QueueStats::dead). This is how a message that never
    /// reached the queue ends there for an operator to see, for example a prepared
    /// two-phase message whose transaction could not be resolved
    /// ([`reason::TX_CHECK_EXHAUSTED`](crate::reason::TX_CHECK_EXHAUSTED)).
    ///
    /// The default implementation returns `Unsupported`.
    ///
    /// ```
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// use std::time::SystemTime;
    /// use ferry_core::*;
    /// let d = MemoryDriver::new();
    /// let q = QueueName::new("payments")?;
    /// d.create_queue(&q, QueueOptions::default()).await?;
    /// let now = time::from_millis(time::now_millis());
    /// let letter = DeadLetter {
    ///     id: "pay-1".into(),
    ///     queue: q.clone(),
    ///     payload: "charge 42".into(),
    ///     headers: Default::default(),
    ///     route_key: None,
    ///     priority: 0,
    ///     enqueued_at: now,
    ///     attempts: 0,
    ///     reason: reason::TX_CHECK_EXHAUSTED.into(),
    ///     last_error: Some("check-back answered unknown 10 times".into()),
    ///     first_failed_at: None,
    ///     dead_at: now,
    /// };
    /// assert_eq!(d.insert_dead_letters(&q, vec![letter]).await?, 1);
    /// let got = d.get_dead_letter(&q, "pay-1").await?;
    /// assert_eq!(got.reason, "tx_check_exhausted");
    /// assert_eq!(d.stats(Some(&q)).await?[0].dead, 1);
    /// # Ok::<(), Error>(()) }).unwrap();
    /// ```
    async fn insert_dead_letters(
        &self,
        queue: &QueueName,
        letters: Vec<DeadLetter>,
    ) -> Result<u64> {
        let _ = (queue, letters);
        Err(unsupported("inserting dead letters"))
    }

    /// Marks the selected dead letters of `queue` approved for re-drive
    /// ([`DeadLetters::redrive_approved`]). Returns how many were newly approved:
    /// approving an approved dead letter again is a no-op and not counted, and ids
    /// that are not dead letters are skipped. `QueueNotFound` if the queue does not
    /// exist.
    ///
    /// An approval belongs to one death: re-driving clears it, so a message that dies
    /// again after a re-drive waits until it is approved again. Listing can filter on
    /// it ([`DeadLetterQuery::with_approved`]). The default implementation returns
    /// `Unsupported`.
    ///
    /// ```
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// use ferry_core::*;
    /// let d = MemoryDriver::new();
    /// let q = QueueName::new("emails")?;
    /// d.create_queue(&q, QueueOptions::default()).await?;
    /// d.send(&q, vec![Message::new("hi").with_id("m1")]).await?;
    /// let got = d.receive(&q, ReceiveOptions::max(1)).await?;
    /// d.dead_letter(&got[0].receipt, reason::REJECTED, None).await?;
    /// let ids = Selection::Ids(vec!["m1".into()]);
    /// assert_eq!(d.approve_dead_letters(&q, ids.clone()).await?, 1);
    /// assert_eq!(d.approve_dead_letters(&q, ids).await?, 0); // already approved
    /// let approved = d.list_dead_letters(&q, DeadLetterQuery::default().with_approved(true)).await?;
    /// assert_eq!(approved.len(), 1);
    /// # Ok::<(), Error>(()) }).unwrap();
    /// ```
    async fn approve_dead_letters(&self, queue: &QueueName, selection: Selection) -> Result<u64> {
        let _ = (queue, selection);
        Err(unsupported("approving dead letters"))
    }

    /// Moves up to `max` approved dead letters of `queue` back into the queue, oldest
    /// death first, exactly as [`DeadLetters::requeue_dead_letters`] does (ready now,
    /// attempts reset), and returns their ids. `QueueNotFound` if the queue does not
    /// exist; an empty list when nothing approved is left.
    ///
    /// The claim is the backend's atomic move: callers running at the same time
    /// (threads or processes) get disjoint ids, and no dead letter is requeued twice
    /// for one approval. Unapproved dead letters never move. The move clears the
    /// approval, so if the message dies again it stays in the dead letters until it is
    /// approved again. An approved dead letter whose id is live in the queue again
    /// stays where it is, approved (as with `requeue_dead_letters`). Backends that
    /// cannot make the move atomic say precisely what they promise instead (RabbitMQ:
    /// see `ferry-amqp`). The default implementation returns `Unsupported`.
    ///
    /// ```
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// use ferry_core::*;
    /// let d = MemoryDriver::new();
    /// let q = QueueName::new("emails")?;
    /// d.create_queue(&q, QueueOptions::default()).await?;
    /// d.send(&q, vec![Message::new("a").with_id("a"), Message::new("b").with_id("b")]).await?;
    /// for got in d.receive(&q, ReceiveOptions::max(2)).await? {
    ///     d.dead_letter(&got.receipt, reason::REJECTED, None).await?;
    /// }
    /// d.approve_dead_letters(&q, Selection::Ids(vec!["a".into()])).await?;
    /// assert_eq!(d.redrive_approved(&q, 100).await?, ["a"]); // "b" was not approved
    /// assert!(d.redrive_approved(&q, 100).await?.is_empty());
    /// assert_eq!(d.stats(Some(&q)).await?[0].ready, 1);
    /// # Ok::<(), Error>(()) }).unwrap();
    /// ```
    async fn redrive_approved(&self, queue: &QueueName, max: u64) -> Result<Vec<String>> {
        let _ = (queue, max);
        Err(unsupported("re-driving approved dead letters"))
    }
}

fn unsupported(what: &str) -> Error {
    Error::new(
        ErrorKind::Unsupported,
        format!("{what} is not supported by this backend yet"),
    )
}

/// What to do with a delivery, as applied by [`Driver::settle`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SettleAction {
    /// Done: remove the message.
    Ack,
    /// Failed: make it deliverable again at `not_before`, recording `error`.
    Retry {
        /// Earliest next delivery.
        not_before: SystemTime,
        /// The error to record as the message's last error.
        error: Option<String>,
    },
    /// Hand it back unprocessed: deliverable again now, and this delivery does not
    /// count as an attempt (a worker shutting down gracefully).
    Release,
    /// Move it to the dead letters.
    DeadLetter {
        /// Why (see [`crate::reason`]).
        reason: String,
        /// The last error to record.
        error: Option<String>,
    },
}

impl SettleAction {
    /// The message-history event this settlement records, and its detail: `acked`,
    /// `retried` (the error), `released`, `dead_lettered` (`reason: error`). The same on
    /// every backend that writes history from the driver.
    ///
    /// ```
    /// use ferry_core::SettleAction;
    /// let dead = SettleAction::DeadLetter { reason: "rejected".into(), error: Some("bad".into()) };
    /// assert_eq!(dead.history_event(), ("dead_lettered", Some("rejected: bad".to_string())));
    /// assert_eq!(SettleAction::Ack.history_event(), ("acked", None));
    /// ```
    pub fn history_event(&self) -> (&'static str, Option<String>) {
        match self {
            SettleAction::Ack => ("acked", None),
            SettleAction::Retry { error, .. } => ("retried", error.clone()),
            SettleAction::Release => ("released", None),
            SettleAction::DeadLetter { reason, error } => (
                "dead_lettered",
                Some(match error {
                    Some(e) => format!("{reason}: {e}"),
                    None => reason.clone(),
                }),
            ),
        }
    }
}

/// One receipt and what to do with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settlement {
    /// The delivery's receipt.
    pub receipt: Receipt,
    /// The action.
    pub action: SettleAction,
}

impl Settlement {
    /// Ack `receipt`.
    pub fn ack(receipt: Receipt) -> Self {
        Settlement {
            receipt,
            action: SettleAction::Ack,
        }
    }
}

/// Options of a receive call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct ReceiveOptions {
    /// Most deliveries to return (at least 1). Default 1.
    pub max: usize,
    /// Lease length; `None` uses the queue's. Default `None`.
    pub lease: Option<Duration>,
    /// How long to wait for a message when none is ready (long poll). Default 0.
    pub wait: Duration,
}

impl Default for ReceiveOptions {
    fn default() -> Self {
        ReceiveOptions {
            max: 1,
            lease: None,
            wait: Duration::ZERO,
        }
    }
}

impl ReceiveOptions {
    /// Up to `max` deliveries, no waiting, the queue's lease.
    pub fn max(max: usize) -> Self {
        ReceiveOptions {
            max,
            ..ReceiveOptions::default()
        }
    }

    /// Sets the lease length.
    pub fn with_lease(mut self, lease: Duration) -> Self {
        self.lease = Some(lease);
        self
    }

    /// Sets the long-poll wait.
    pub fn with_wait(mut self, wait: Duration) -> Self {
        self.wait = wait;
        self
    }

    /// Checks the values: `max` at least 1, a lease between 1 ms and 7 days, a wait of
    /// at most an hour. Every driver calls this first.
    ///
    /// ```
    /// use std::time::Duration;
    /// use ferry_core::ReceiveOptions;
    /// assert!(ReceiveOptions::max(0).validate().is_err());
    /// assert!(ReceiveOptions::max(1).with_lease(Duration::MAX).validate().is_err());
    /// ```
    pub fn validate(&self) -> Result<()> {
        if self.max == 0 {
            return Err(Error::invalid_input("receive max must be at least 1"));
        }
        if let Some(lease) = self.lease
            && (lease < Duration::from_millis(1) || lease > crate::message::MAX_LEASE)
        {
            return Err(Error::invalid_input("lease must be between 1ms and 7d"));
        }
        if self.wait > Duration::from_secs(3600) {
            return Err(Error::invalid_input("receive wait must be at most 1h"));
        }
        Ok(())
    }
}

/// What a send did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SendReport {
    /// How many messages were enqueued.
    pub enqueued: u64,
    /// Ids that were already in the queue and therefore not enqueued again.
    pub duplicates: Vec<String>,
}

/// What a publish did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct PublishReport {
    /// The queues the batch was routed to, sorted.
    pub queues: Vec<QueueName>,
    /// Messages enqueued, summed over queues.
    pub enqueued: u64,
    /// Messages not enqueued into some queue because their id was already there.
    pub duplicates: u64,
}

/// A backend: send, publish, receive, settle, extend, stats; plus [`Topology`] and
/// [`DeadLetters`]. See the module docs for the guarantees.
///
/// The trait is dyn-compatible:
///
/// ```
/// use std::sync::Arc;
/// use ferry_core::{Driver, MemoryDriver};
/// let driver: Arc<dyn Driver> = Arc::new(MemoryDriver::new());
/// # let _ = driver;
/// ```
#[async_trait]
pub trait Driver: Topology + DeadLetters {
    /// The size limits this driver enforces.
    fn limits(&self) -> Limits;

    /// The backend's own idempotency store, kept where the messages are (durable
    /// backends keep it durable), if it has one.
    fn idempotency_store(&self) -> Option<std::sync::Arc<dyn crate::IdempotencyStore>> {
        None
    }

    /// The backend's own durable store of prepared two-phase messages
    /// ([`crate::tx::TxStore`]), kept where the messages are, if it has one.
    fn tx_store(&self) -> Option<std::sync::Arc<dyn crate::tx::TxStore>> {
        None
    }

    /// Durably enqueues a batch into `queue` (all or nothing).
    async fn send(&self, queue: &QueueName, batch: Vec<Message>) -> Result<SendReport>;

    /// Durably enqueues a batch into every queue bound to `topic` with a pattern that
    /// matches `route_key` (all or nothing across queues). `Unroutable` if none matches.
    async fn publish(
        &self,
        topic: &TopicName,
        route_key: &str,
        batch: Vec<Message>,
    ) -> Result<PublishReport>;

    /// Leases up to `options.max` ready messages, waiting up to `options.wait` for one.
    /// A paused queue ([`Topology::set_paused`]) hands out none.
    async fn receive(&self, queue: &QueueName, options: ReceiveOptions) -> Result<Vec<Delivery>>;

    /// Applies each settlement; the outer error is for the call as a whole (backend
    /// down), the inner ones per receipt (a stale receipt fails alone).
    async fn settle(&self, batch: Vec<Settlement>) -> Result<Vec<Result<()>>>;

    /// Extends a lease to `lease` from now; returns the new end of the lease.
    async fn extend(&self, receipt: &Receipt, lease: Duration) -> Result<SystemTime>;

    /// Counts by state for `queue`, or for every queue when `None` (sorted by name),
    /// with when the oldest ready message became ready where the backend can tell
    /// ([`QueueStats::oldest_ready_at`]).
    async fn stats(&self, queue: Option<&QueueName>) -> Result<Vec<QueueStats>>;

    /// The lifecycle events of message `id` in `queue` within the history retention,
    /// oldest first (empty if none are known). `Unsupported` if the backend keeps none.
    async fn history(&self, queue: &QueueName, id: &str) -> Result<Vec<crate::HistoryEvent>> {
        let _ = (queue, id);
        Err(Error::new(
            ErrorKind::Unsupported,
            "this backend keeps no message history",
        ))
    }

    /// Acks one delivery.
    async fn ack(&self, receipt: &Receipt) -> Result<()> {
        self.settle_one(Settlement::ack(receipt.clone())).await
    }

    /// Makes one delivery deliverable again at `not_before`.
    async fn retry(
        &self,
        receipt: &Receipt,
        not_before: SystemTime,
        error: Option<String>,
    ) -> Result<()> {
        self.settle_one(Settlement {
            receipt: receipt.clone(),
            action: SettleAction::Retry { not_before, error },
        })
        .await
    }

    /// Hands one delivery back without counting the attempt.
    async fn release(&self, receipt: &Receipt) -> Result<()> {
        self.settle_one(Settlement {
            receipt: receipt.clone(),
            action: SettleAction::Release,
        })
        .await
    }

    /// Moves one delivery to the dead letters.
    async fn dead_letter(
        &self,
        receipt: &Receipt,
        reason: &str,
        error: Option<String>,
    ) -> Result<()> {
        self.settle_one(Settlement {
            receipt: receipt.clone(),
            action: SettleAction::DeadLetter {
                reason: reason.to_string(),
                error,
            },
        })
        .await
    }

    /// Settles one receipt.
    async fn settle_one(&self, settlement: Settlement) -> Result<()> {
        self.settle(vec![settlement])
            .await?
            .pop()
            .unwrap_or_else(|| Err(Error::new(ErrorKind::Internal, "settle returned no result")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dyn_compatible() {
        fn _take(_: &dyn Driver) {}
        fn _topology(_: &dyn Topology) {}
        fn _dead(_: &dyn DeadLetters) {}
    }
}
