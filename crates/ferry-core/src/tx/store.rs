//! The [`TxStore`] contract: where prepared messages wait for their transaction.
//!
//! A store holds one record per prepared message, keyed by the message id. Each record
//! has a *due* time and a fencing token: the producer holds the record (pushing `due`
//! forward) while its local transaction runs; once `due` passes, a checker may claim
//! it, which changes the token so the old holder's renewals fail. The store never
//! interprets the message; it keeps [`encode_prepared`](super::encode_prepared)'s bytes.

use std::fmt::Debug;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;

use crate::error::{Error, Result};
use crate::message::Message;
use crate::name::{QueueName, TopicName};

/// Where a prepared message goes once its transaction commits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Destination {
    /// Sent to this queue.
    Queue(QueueName),
    /// Published to this topic with this route key.
    Topic {
        /// The topic.
        topic: TopicName,
        /// The route key.
        route_key: String,
    },
}

impl Destination {
    /// A queue destination.
    ///
    /// ```
    /// use ferry_core::{tx::Destination, QueueName};
    /// let d = Destination::queue(QueueName::new("orders")?);
    /// assert_eq!(d.to_string(), "queue orders");
    /// # Ok::<(), ferry_core::Error>(())
    /// ```
    pub fn queue(queue: QueueName) -> Self {
        Destination::Queue(queue)
    }

    /// A topic destination; the route key is checked.
    ///
    /// ```
    /// use ferry_core::{tx::Destination, TopicName};
    /// let d = Destination::topic(TopicName::new("orders")?, "order.created")?;
    /// assert_eq!(d.to_string(), "topic orders (route key order.created)");
    /// assert!(Destination::topic(TopicName::new("orders")?, "order.*").is_err());
    /// # Ok::<(), ferry_core::Error>(())
    /// ```
    pub fn topic(topic: TopicName, route_key: impl Into<String>) -> Result<Self> {
        let route_key = route_key.into();
        crate::name::validate_route_key(&route_key)?;
        Ok(Destination::Topic { topic, route_key })
    }
}

impl std::fmt::Display for Destination {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Destination::Queue(q) => write!(f, "queue {q}"),
            Destination::Topic { topic, route_key } => {
                write!(f, "topic {topic} (route key {route_key})")
            }
        }
    }
}

/// What is known about a prepared message's transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxState {
    /// The local transaction has not been seen to commit: a checker must ask.
    Prepared,
    /// The local transaction committed but the publish failed: a checker publishes it
    /// without asking.
    Committed,
}

impl TxState {
    /// The stable name stores keep (`prepared`, `committed`).
    pub fn as_str(self) -> &'static str {
        match self {
            TxState::Prepared => "prepared",
            TxState::Committed => "committed",
        }
    }

    /// Parses [`TxState::as_str`]'s names.
    ///
    /// ```
    /// use ferry_core::tx::TxState;
    /// assert_eq!(TxState::parse("committed")?, TxState::Committed);
    /// assert!(TxState::parse("maybe").is_err());
    /// # Ok::<(), ferry_core::Error>(())
    /// ```
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "prepared" => Ok(TxState::Prepared),
            "committed" => Ok(TxState::Committed),
            other => Err(Error::new(
                crate::ErrorKind::Corrupt,
                format!("unknown prepared-message state '{other}'"),
            )),
        }
    }
}

/// The fencing token of whoever holds a prepared record (its producer, then a checker).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TxToken(pub i64);

impl TxToken {
    /// A fresh random token (never 0).
    pub fn random() -> Self {
        TxToken(fastrand::i64(1..))
    }
}

/// A prepared message as the store keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Prepared {
    /// Where it goes.
    pub destination: Destination,
    /// The message, exactly as it will be sent (same id every time).
    pub message: Message,
    /// What is known about its transaction.
    pub state: TxState,
    /// When it was prepared.
    pub prepared_at: SystemTime,
    /// When a checker may take it next.
    pub due_at: SystemTime,
    /// Check-backs that answered *unknown* so far.
    pub checks: u32,
    /// The last failure (a publish error, a check-back's note).
    pub last_error: Option<String>,
}

impl Prepared {
    /// A freshly prepared record, due at `due_at`.
    pub fn new(destination: Destination, message: Message, due_at: SystemTime) -> Self {
        Prepared {
            destination,
            message,
            state: TxState::Prepared,
            prepared_at: SystemTime::now(),
            due_at,
            checks: 0,
            last_error: None,
        }
    }

    /// The message id, which is also the record's key.
    pub fn id(&self) -> &str {
        self.message.id()
    }
}

/// A record a checker claimed, with the token that fences its updates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claimed {
    /// The record as it was when claimed.
    pub prepared: Prepared,
    /// The claim's token.
    pub token: TxToken,
}

/// A checker's update of a claimed record that stays in the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reschedule {
    /// The state to keep.
    pub state: TxState,
    /// Check-backs answered *unknown* so far.
    pub checks: u32,
    /// When it is due again.
    pub due_at: SystemTime,
    /// Why it stays.
    pub error: Option<String>,
}

/// Where prepared messages are kept durably. Implementations: [`MemoryTxStore`]
/// (tests), `ferry_embedded::EmbeddedTxStore`, `ferry_redis::RedisTxStore` and
/// `ferry_postgres::PostgresTxStore`; all pass `ferry_testkit::tx`'s suite.
///
/// Every method returns only once its write is durable.
///
/// [`MemoryTxStore`]: super::MemoryTxStore
#[async_trait]
pub trait TxStore: Send + Sync + Debug {
    /// Stores a prepared message held by its producer for `hold` (due then), and
    /// returns the producer's token. `AlreadyExists` if a record with this message id
    /// is in the store.
    async fn prepare(
        &self,
        destination: &Destination,
        message: &Message,
        hold: Duration,
    ) -> Result<TxToken>;

    /// Renews a hold: due `hold` from now, if `token` still holds the record.
    /// `StaleReceipt` if a checker claimed it since; `MessageNotFound` if it is gone.
    async fn hold(&self, id: &str, token: TxToken, hold: Duration) -> Result<()>;

    /// Records that the transaction committed but the publish failed: state
    /// [`TxState::Committed`], due at `retry_at`, with `error`, and a fresh token (so a
    /// checker that claimed the record earlier can no longer remove it). Applies
    /// whoever holds the record (a commit is a fact, not a claim), and stores the
    /// record anew if a checker already removed it: once this returns `Ok`, a checker
    /// owns the message.
    async fn mark_committed(
        &self,
        destination: &Destination,
        message: &Message,
        retry_at: SystemTime,
        error: &str,
    ) -> Result<()>;

    /// Deletes the record (the producer published it, or rolled back); `Ok(false)` if
    /// it was gone.
    async fn remove(&self, id: &str) -> Result<bool>;

    /// Deletes a record a checker resolved, only if `token` still holds it:
    /// `StaleReceipt` if it changed since the claim (the producer marked it committed,
    /// or another checker claimed it), `MessageNotFound` if it is gone.
    async fn remove_claimed(&self, id: &str, token: TxToken) -> Result<()>;

    /// Claims up to `max` records whose due time has passed (oldest due first) for
    /// `lease`: each gets a fresh token and is due again when the lease ends, so a
    /// checker that dies mid-check hands it on. Concurrent callers get disjoint records.
    async fn claim_due(&self, max: usize, lease: Duration) -> Result<Vec<Claimed>>;

    /// Updates a claimed record that stays: `StaleReceipt` if `token` no longer holds
    /// it, `MessageNotFound` if it is gone.
    async fn reschedule(&self, id: &str, token: TxToken, update: Reschedule) -> Result<()>;

    /// One record by message id; `MessageNotFound` if there is none.
    async fn get(&self, id: &str) -> Result<Prepared>;

    /// Records oldest-prepared first, for operators: skip `offset`, at most `limit`.
    async fn list(&self, offset: u64, limit: u64) -> Result<Vec<Prepared>>;

    /// How many records the store holds.
    async fn count(&self) -> Result<u64>;
}
