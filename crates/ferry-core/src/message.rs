//! The message model: what a producer sends, what a consumer receives, what an operator
//! finds in the dead letters.
//!
//! A [`Message`] always has an id from the moment it is built (a UUIDv7 unless the caller
//! gives a business key), so a send whose outcome is unknown can be retried with the same
//! id and the backend drops the duplicate while the first copy is still queued.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use bytes::Bytes;

use crate::error::{Error, ErrorKind, Result};
use crate::name::{QueueName, validate_message_id};

/// When a message becomes deliverable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delay {
    /// This long after the send.
    After(Duration),
    /// At this instant (past instants mean "now").
    At(SystemTime),
}

/// A message to send: id, payload, headers, priority and an optional delay.
///
/// ```
/// use std::time::Duration;
/// use ferry_core::Message;
///
/// let msg = Message::new("hello")
///     .with_id("order-42")
///     .with_header("content-type", "text/plain")
///     .with_priority(5)
///     .with_delay(Duration::from_secs(30));
/// assert_eq!(msg.id(), "order-42");
/// assert_eq!(msg.payload().as_ref(), b"hello");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    id: String,
    payload: Bytes,
    headers: BTreeMap<String, String>,
    priority: u8,
    delay: Option<Delay>,
}

impl Message {
    /// A message with `payload` and a fresh UUIDv7 id, no headers, priority 0, no delay.
    pub fn new(payload: impl Into<Bytes>) -> Self {
        Message {
            id: uuid::Uuid::now_v7().to_string(),
            payload: payload.into(),
            headers: BTreeMap::new(),
            priority: 0,
            delay: None,
        }
    }

    /// Replaces the generated id with the caller's (for example a business key).
    /// While a message with this id is queued in the same queue, sending it again is a
    /// no-op, which makes retrying an indeterminate send safe.
    pub fn with_id(mut self, id: impl Into<String>) -> Self {
        self.id = id.into();
        self
    }

    /// Adds (or replaces) a header.
    pub fn with_header(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.insert(key.into(), value.into());
        self
    }

    /// Sets the priority: higher is delivered first; FIFO within one priority.
    pub fn with_priority(mut self, priority: u8) -> Self {
        self.priority = priority;
        self
    }

    /// Delivers no earlier than `delay` after the send (overrides the queue's default delay).
    pub fn with_delay(mut self, delay: Duration) -> Self {
        self.delay = Some(Delay::After(delay));
        self
    }

    /// Delivers no earlier than `at` (overrides the queue's default delay).
    pub fn with_deliver_at(mut self, at: SystemTime) -> Self {
        self.delay = Some(Delay::At(at));
        self
    }

    /// The message id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The payload bytes.
    pub fn payload(&self) -> &Bytes {
        &self.payload
    }

    /// The headers.
    pub fn headers(&self) -> &BTreeMap<String, String> {
        &self.headers
    }

    /// The priority (0 unless set).
    pub fn priority(&self) -> u8 {
        self.priority
    }

    /// The delay, if one was set on the message.
    pub fn delay(&self) -> Option<Delay> {
        self.delay
    }

    /// The instant this message becomes deliverable if sent at `now` into a queue whose
    /// default delay is `default_delay`.
    pub fn visible_at(&self, now: SystemTime, default_delay: Duration) -> SystemTime {
        let plus = |d: Duration| now.checked_add(d.min(MAX_DELAY)).unwrap_or(now);
        match self.delay {
            Some(Delay::After(d)) => plus(d),
            Some(Delay::At(t)) => t.max(now).min(plus(MAX_DELAY)),
            None => plus(default_delay),
        }
    }

    /// Checks the id, headers and sizes against `limits`; every backend calls this
    /// before writing anything, so an invalid message in a batch rejects the whole batch.
    ///
    /// ```
    /// use ferry_core::{Limits, Message, ErrorKind};
    /// let limits = Limits { max_payload_bytes: 4, ..Limits::default() };
    /// assert!(Message::new("1234").validate(&limits).is_ok());
    /// let err = Message::new("12345").validate(&limits).unwrap_err();
    /// assert_eq!(err.kind(), ErrorKind::TooLarge);
    /// ```
    pub fn validate(&self, limits: &Limits) -> Result<()> {
        validate_message_id(&self.id)?;
        let too_far = match self.delay {
            Some(Delay::After(d)) => d > MAX_DELAY,
            Some(Delay::At(t)) => t
                .duration_since(SystemTime::now())
                .is_ok_and(|d| d > MAX_DELAY),
            None => false,
        };
        if too_far {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                format!(
                    "message '{}' is delayed by more than {} days, the longest delay ferry keeps",
                    self.id,
                    MAX_DELAY.as_secs() / 86_400
                ),
            ));
        }
        if self.payload.len() > limits.max_payload_bytes {
            return Err(Error::new(
                ErrorKind::TooLarge,
                format!(
                    "message '{}' has a {}-byte payload; the limit is {} bytes (store large data elsewhere and send a reference, or raise the limit)",
                    self.id,
                    self.payload.len(),
                    limits.max_payload_bytes
                ),
            ));
        }
        let mut header_bytes = 0;
        for (k, v) in &self.headers {
            if k.is_empty() || k.chars().any(char::is_control) {
                return Err(Error::new(
                    ErrorKind::InvalidInput,
                    format!(
                        "message '{}' has a header name '{}' that is empty or contains a control character",
                        self.id,
                        k.escape_default()
                    ),
                ));
            }
            header_bytes += k.len() + v.len();
        }
        if header_bytes > limits.max_header_bytes {
            return Err(Error::new(
                ErrorKind::TooLarge,
                format!(
                    "message '{}' has {header_bytes} bytes of headers; the limit is {}",
                    self.id, limits.max_header_bytes
                ),
            ));
        }
        Ok(())
    }
}

/// The longest delay a message or queue may have (10 years): far enough for any
/// schedule, near enough that no clock arithmetic overflows.
pub const MAX_DELAY: Duration = Duration::from_secs(10 * 365 * 86_400);

/// The longest lease (7 days): a handler running longer should extend its lease.
pub const MAX_LEASE: Duration = Duration::from_secs(7 * 86_400);

/// Size limits every driver enforces at send time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest payload accepted, in bytes. Default 1 MiB.
    pub max_payload_bytes: usize,
    /// Largest total size of header names and values, in bytes. Default 64 KiB.
    pub max_header_bytes: usize,
    /// Most messages in one `send`/`publish` batch. Default 10,000.
    pub max_batch: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_payload_bytes: 1024 * 1024,
            max_header_bytes: 64 * 1024,
            max_batch: 10_000,
        }
    }
}

impl Limits {
    /// Validates a whole batch: its size and every message in it, and that no id repeats.
    ///
    /// ```
    /// use ferry_core::{Limits, Message};
    /// let batch = vec![Message::new("a").with_id("x"), Message::new("b").with_id("x")];
    /// assert!(Limits::default().validate_batch(&batch).is_err());
    /// ```
    pub fn validate_batch(&self, batch: &[Message]) -> Result<()> {
        if batch.len() > self.max_batch {
            return Err(Error::new(
                ErrorKind::TooLarge,
                format!(
                    "batch of {} messages; the limit is {} per call (split the batch)",
                    batch.len(),
                    self.max_batch
                ),
            ));
        }
        let mut seen = std::collections::HashSet::with_capacity(batch.len());
        for m in batch {
            m.validate(self)?;
            if !seen.insert(m.id()) {
                return Err(Error::new(
                    ErrorKind::InvalidInput,
                    format!("message id '{}' appears twice in one batch", m.id()),
                ));
            }
        }
        Ok(())
    }

    /// Checks dead letters about to be stored with
    /// [`DeadLetters::insert_dead_letters`](crate::DeadLetters::insert_dead_letters):
    /// the batch size, and each letter's id, payload, headers and route key as a send
    /// or publish would (an id may appear more than once: a message can die twice).
    /// Every driver calls this first.
    ///
    /// ```
    /// use std::time::SystemTime;
    /// use ferry_core::{DeadLetter, Limits, QueueName};
    /// let letter = DeadLetter {
    ///     id: String::new(), // not a valid id
    ///     queue: QueueName::new("q").unwrap(),
    ///     payload: "x".into(),
    ///     headers: Default::default(),
    ///     route_key: None,
    ///     priority: 0,
    ///     enqueued_at: SystemTime::now(),
    ///     attempts: 1,
    ///     reason: "rejected".into(),
    ///     last_error: None,
    ///     first_failed_at: None,
    ///     dead_at: SystemTime::now(),
    /// };
    /// assert!(Limits::default().validate_dead_letters(&[letter]).is_err());
    /// ```
    pub fn validate_dead_letters(&self, letters: &[DeadLetter]) -> Result<()> {
        if letters.len() > self.max_batch {
            return Err(Error::new(
                ErrorKind::TooLarge,
                format!(
                    "batch of {} dead letters; the limit is {} per call (split the batch)",
                    letters.len(),
                    self.max_batch
                ),
            ));
        }
        for d in letters {
            let mut m = Message::new(d.payload.clone())
                .with_id(d.id.clone())
                .with_priority(d.priority);
            for (k, v) in &d.headers {
                m = m.with_header(k.clone(), v.clone());
            }
            m.validate(self)?;
            if let Some(key) = &d.route_key {
                crate::name::validate_route_key(key)?;
            }
            if d.reason.is_empty() {
                return Err(Error::invalid_input(format!(
                    "dead letter '{}' has an empty reason",
                    d.id
                )));
            }
        }
        Ok(())
    }
}

/// The proof of a lease: present it to ack, retry, dead-letter or extend a delivery.
///
/// It names the queue and message (for logs) and carries a driver-specific token that
/// fences the lease: once the lease expired and the message was delivered again, the old
/// receipt is rejected with [`ErrorKind::StaleReceipt`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Receipt {
    queue: QueueName,
    id: String,
    token: String,
}

impl Receipt {
    /// Built by drivers; `token` is opaque to everyone else.
    ///
    /// ```
    /// use ferry_core::{QueueName, Receipt};
    /// let r = Receipt::new(QueueName::new("q")?, "m1", "17");
    /// assert_eq!(r.message_id(), "m1");
    /// # Ok::<(), ferry_core::Error>(())
    /// ```
    pub fn new(queue: QueueName, id: impl Into<String>, token: impl Into<String>) -> Self {
        Receipt {
            queue,
            id: id.into(),
            token: token.into(),
        }
    }

    /// The queue the message was received from.
    pub fn queue(&self) -> &QueueName {
        &self.queue
    }

    /// The message id.
    pub fn message_id(&self) -> &str {
        &self.id
    }

    /// The driver's lease token.
    pub fn token(&self) -> &str {
        &self.token
    }
}

/// A message handed to a consumer under a lease.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// The message id.
    pub id: String,
    /// The queue it was received from.
    pub queue: QueueName,
    /// The payload bytes.
    pub payload: Bytes,
    /// The headers.
    pub headers: BTreeMap<String, String>,
    /// The route key it was published with (`None` for a direct send).
    pub route_key: Option<String>,
    /// Its priority.
    pub priority: u8,
    /// When it was first sent.
    pub enqueued_at: SystemTime,
    /// Which delivery this is, starting at 1; a crash or expired lease counts.
    pub attempt: u32,
    /// When the lease ends unless extended.
    pub lease_until: SystemTime,
    /// The receipt to settle it with.
    pub receipt: Receipt,
}

impl Delivery {
    /// The payload decoded as JSON into `T`.
    ///
    /// ```
    /// # use ferry_core::*;
    /// # use std::time::SystemTime;
    /// # let d = Delivery::new_for_test(QueueName::new("q")?, "m", r#"{"n":1}"#);
    /// #[derive(serde::Deserialize)]
    /// struct Job { n: u32 }
    /// let job: Job = d.json()?;
    /// assert_eq!(job.n, 1);
    /// # Ok::<(), ferry_core::Error>(())
    /// ```
    pub fn json<T: serde::de::DeserializeOwned>(&self) -> Result<T> {
        serde_json::from_slice(&self.payload).map_err(|e| {
            Error::new(
                ErrorKind::Decode,
                format!("payload of message '{}' is not the expected JSON", self.id),
            )
            .with_source(e)
        })
    }

    /// A delivery with dummy lease data, for tests of handlers.
    pub fn new_for_test(queue: QueueName, id: &str, payload: impl Into<Bytes>) -> Self {
        let now = SystemTime::now();
        Delivery {
            id: id.to_string(),
            receipt: Receipt::new(queue.clone(), id, "test"),
            queue,
            payload: payload.into(),
            headers: BTreeMap::new(),
            route_key: None,
            priority: 0,
            enqueued_at: now,
            attempt: 1,
            lease_until: now + Duration::from_secs(30),
        }
    }
}

/// Well-known dead-letter reasons. Drivers and the runtime use these; users may add
/// their own strings.
pub mod reason {
    /// The handler failed on the last allowed attempt.
    pub const MAX_ATTEMPTS: &str = "max_attempts";
    /// The lease expired (the worker crashed or hung) on the last allowed attempt.
    pub const LEASE_EXPIRED: &str = "lease_expired";
    /// The handler rejected the message outright.
    pub const REJECTED: &str = "rejected";
    /// The stored or received bytes could not be decoded.
    pub const DECODE_ERROR: &str = "decode_error";
    /// The handler took longer than the consumer's timeout on the last attempt.
    pub const TIMEOUT: &str = "timeout";
    /// The stored message failed its integrity check (checksum mismatch).
    pub const CORRUPT: &str = "corrupt";
    /// A prepared two-phase message whose transaction could not be resolved by
    /// check-back within the allowed checks (stored with
    /// [`DeadLetters::insert_dead_letters`](crate::DeadLetters::insert_dead_letters)).
    pub const TX_CHECK_EXHAUSTED: &str = "tx_check_exhausted";
}

/// A message that ran out of attempts or was rejected, kept until requeued or purged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    /// The message id.
    pub id: String,
    /// The queue it died in.
    pub queue: QueueName,
    /// The payload bytes, as sent.
    pub payload: Bytes,
    /// The headers, as sent.
    pub headers: BTreeMap<String, String>,
    /// The route key it was published with.
    pub route_key: Option<String>,
    /// Its priority.
    pub priority: u8,
    /// When it was first sent.
    pub enqueued_at: SystemTime,
    /// How many deliveries it had.
    pub attempts: u32,
    /// Why it was dead-lettered (see [`reason`]).
    pub reason: String,
    /// The last error a handler reported, if any.
    pub last_error: Option<String>,
    /// When its first attempt failed, if one did.
    pub first_failed_at: Option<SystemTime>,
    /// When it was dead-lettered.
    pub dead_at: SystemTime,
}

/// Settings of one queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueOptions {
    /// Delay applied to messages sent without their own delay. Default none.
    pub default_delay: Duration,
    /// Deliveries before a failing or crashing message is dead-lettered. Default 10.
    pub max_attempts: u32,
    /// Lease length when a receive does not ask for one. Default 30 s.
    pub lease: Duration,
}

impl Default for QueueOptions {
    fn default() -> Self {
        QueueOptions {
            default_delay: Duration::ZERO,
            max_attempts: 10,
            lease: Duration::from_secs(30),
        }
    }
}

impl QueueOptions {
    /// Sets the default delay.
    pub fn with_default_delay(mut self, delay: Duration) -> Self {
        self.default_delay = delay;
        self
    }

    /// Sets max attempts.
    pub fn with_max_attempts(mut self, n: u32) -> Self {
        self.max_attempts = n;
        self
    }

    /// Sets the default lease.
    pub fn with_lease(mut self, lease: Duration) -> Self {
        self.lease = lease;
        self
    }

    /// Checks the values (max attempts at least 1, lease at least 1 ms).
    ///
    /// ```
    /// use ferry_core::QueueOptions;
    /// let bad = QueueOptions { max_attempts: 0, ..QueueOptions::default() };
    /// assert!(bad.validate().is_err());
    /// ```
    pub fn validate(&self) -> Result<()> {
        if self.max_attempts == 0 {
            return Err(Error::invalid_input(
                "max attempts must be at least 1 (1 means no retries)",
            ));
        }
        if self.lease < Duration::from_millis(1) || self.lease > MAX_LEASE {
            return Err(Error::invalid_input(
                "lease must be between 1ms and 7d (a longer handler keeps its lease by extending it)",
            ));
        }
        if self.default_delay > MAX_DELAY {
            return Err(Error::invalid_input("default delay must be at most 3650d"));
        }
        Ok(())
    }
}

/// A queue and its settings, as listed.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct QueueInfo {
    /// The queue name.
    pub name: QueueName,
    /// Its settings.
    pub options: QueueOptions,
    /// Whether deliveries are paused ([`Topology::set_paused`](crate::Topology::set_paused)):
    /// a paused queue accepts messages but hands none out.
    pub paused: bool,
}

impl QueueInfo {
    /// A queue description (not paused).
    pub fn new(name: QueueName, options: QueueOptions) -> Self {
        QueueInfo {
            name,
            options,
            paused: false,
        }
    }

    /// Sets whether the queue is paused.
    ///
    /// ```
    /// use ferry_core::{QueueInfo, QueueName, QueueOptions};
    /// let info = QueueInfo::new(QueueName::new("q")?, QueueOptions::default());
    /// assert!(!info.paused);
    /// assert!(info.with_paused(true).paused);
    /// # Ok::<(), ferry_core::Error>(())
    /// ```
    pub fn with_paused(mut self, paused: bool) -> Self {
        self.paused = paused;
        self
    }
}

/// How many messages a queue holds, by state.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize)]
#[non_exhaustive]
pub struct QueueStats {
    /// The queue name.
    pub name: String,
    /// Deliverable now.
    pub ready: u64,
    /// Waiting for a delay or a retry backoff to pass.
    pub delayed: u64,
    /// Leased to a consumer (includes leases that expired but were not yet reclaimed).
    pub in_flight: u64,
    /// In the dead letters.
    pub dead: u64,
    /// When the oldest ready message became ready (its enqueue time, or the end of its
    /// delay, retry backoff or expired lease): the age of the backlog, for alerts.
    /// `None` when nothing is ready, or when the backend cannot tell cheaply (RabbitMQ).
    /// Serialized as epoch milliseconds, or `null`.
    #[serde(serialize_with = "ser_opt_millis")]
    pub oldest_ready_at: Option<SystemTime>,
}

impl QueueStats {
    /// Stats for `name` with the given counts (and no oldest-ready time).
    pub fn new(name: &str, ready: u64, delayed: u64, in_flight: u64, dead: u64) -> Self {
        QueueStats {
            name: name.to_string(),
            ready,
            delayed,
            in_flight,
            dead,
            oldest_ready_at: None,
        }
    }

    /// Sets when the oldest ready message became ready.
    ///
    /// ```
    /// use std::time::{Duration, UNIX_EPOCH};
    /// use ferry_core::QueueStats;
    /// let at = UNIX_EPOCH + Duration::from_millis(1_500);
    /// let s = QueueStats::new("q", 1, 0, 0, 0).with_oldest_ready_at(Some(at));
    /// assert_eq!(s.oldest_ready_at, Some(at));
    /// let json = serde_json::to_value(&s)?;
    /// assert_eq!(json["oldest_ready_at"], 1_500);
    /// let empty = serde_json::to_value(QueueStats::new("q", 0, 0, 0, 0))?;
    /// assert!(empty["oldest_ready_at"].is_null());
    /// # Ok::<(), serde_json::Error>(())
    /// ```
    pub fn with_oldest_ready_at(mut self, at: Option<SystemTime>) -> Self {
        self.oldest_ready_at = at;
        self
    }

    /// Whether nothing is ready, delayed or in flight (dead letters do not count).
    pub fn is_drained(&self) -> bool {
        self.ready == 0 && self.delayed == 0 && self.in_flight == 0
    }
}

/// A binding from a topic to a queue.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub struct Binding {
    /// The topic.
    pub topic: crate::TopicName,
    /// The queue that receives matching messages.
    pub queue: QueueName,
    /// The route-key pattern (`*` one word, `#` zero or more).
    pub pattern: String,
}

impl Binding {
    /// A binding description.
    pub fn new(topic: crate::TopicName, queue: QueueName, pattern: impl Into<String>) -> Self {
        Binding {
            topic,
            queue,
            pattern: pattern.into(),
        }
    }
}

/// One lifecycle event of a message, as kept by the message history.
///
/// Event names: `sent`, `delivered`, `retried`, `released`, `lease_expired`,
/// `dead_lettered`, `requeued`, `acked`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct HistoryEvent {
    /// When it happened.
    #[serde(serialize_with = "ser_millis")]
    pub at: SystemTime,
    /// What happened.
    pub event: String,
    /// The message's attempt count at that moment (0 before the first delivery).
    pub attempt: u32,
    /// Details: the error of a failed attempt, the reason of a dead letter, ...
    pub detail: Option<String>,
}

fn ser_millis<S: serde::Serializer>(t: &SystemTime, s: S) -> std::result::Result<S::Ok, S::Error> {
    s.serialize_i64(crate::time::to_millis(*t))
}

fn ser_opt_millis<S: serde::Serializer>(
    t: &Option<SystemTime>,
    s: S,
) -> std::result::Result<S::Ok, S::Error> {
    match t {
        Some(t) => s.serialize_some(&crate::time::to_millis(*t)),
        None => s.serialize_none(),
    }
}

impl HistoryEvent {
    /// An event.
    pub fn new(
        at: SystemTime,
        event: impl Into<String>,
        attempt: u32,
        detail: Option<String>,
    ) -> Self {
        HistoryEvent {
            at,
            event: event.into(),
            attempt,
            detail,
        }
    }
}
