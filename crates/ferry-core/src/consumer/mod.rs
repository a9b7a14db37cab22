//! The consumer runtime: receive, run the handler, settle, repeat.
//!
//! It makes the easy thing the safe thing: a handler's failure, panic or timeout is a
//! failed attempt retried durably with backoff; the last attempt dead-letters the
//! message with its error; the lease is extended while the handler runs, so a slow but
//! healthy handler never loses its message to another worker; nothing is acked unless
//! the handler said so.
//!
//! ```
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! use std::sync::Arc;
//! use ferry_core::*;
//!
//! let driver = Arc::new(MemoryDriver::new());
//! let q = QueueName::new("emails")?;
//! driver.create_queue(&q, QueueOptions::default()).await?;
//! driver.send(&q, vec![Message::new("hi")]).await?;
//!
//! let report = Consumer::builder(q)
//!     .concurrency(4)
//!     .until_empty(true)
//!     .build(driver, |d: Delivery| async move {
//!         println!("sending {}", d.id);
//!         Ok::<(), std::io::Error>(())
//!     })
//!     .run(std::future::pending())
//!     .await?;
//! assert_eq!(report.acked, 1);
//! # Ok::<(), Error>(()) }).unwrap();
//! ```

mod breaker;
mod handler;
mod hooks;
mod rate;
mod run;

use std::sync::Arc;
use std::time::Duration;

pub use breaker::{Admission, BreakerConfig, BreakerState, CircuitBreaker};
pub use handler::{BatchHandler, Handler};
pub use hooks::{DeadLetterEvent, Ensure, FailHook};
pub use rate::RateLimit;

use crate::driver::Driver;
use crate::idempotency::IdempotencyStore;
use crate::message::Delivery;
use crate::name::QueueName;
use crate::retry::RetryPolicy;

/// How a delivery maps to its idempotency key.
pub type KeyFn = Arc<dyn Fn(&Delivery) -> String + Send + Sync>;

/// Idempotency settings of a consumer.
#[derive(Clone)]
pub(crate) struct Idempotency {
    pub(crate) store: Arc<dyn IdempotencyStore>,
    pub(crate) retention: Duration,
    pub(crate) key: KeyFn,
    pub(crate) ensure: Option<Arc<dyn Ensure>>,
}

impl std::fmt::Debug for Idempotency {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Idempotency")
            .field("store", &self.store)
            .field("retention", &self.retention)
            .field("ensure", &self.ensure.is_some())
            .finish_non_exhaustive()
    }
}

/// Totals of one [`Consumer::run`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ConsumerReport {
    /// Deliveries received.
    pub received: u64,
    /// Messages acked.
    pub acked: u64,
    /// Failed attempts scheduled for another try.
    pub retried: u64,
    /// Messages moved to the dead letters.
    pub dead_lettered: u64,
    /// Attempts that panicked (included in retried or dead-lettered).
    pub panicked: u64,
    /// Attempts that ran past the timeout (included in retried or dead-lettered).
    pub timed_out: u64,
    /// Settlements the driver rejected (stale receipts) or that failed.
    pub settle_errors: u64,
    /// Deliveries handed back unprocessed at shutdown (not counted as attempts).
    pub released: u64,
    /// Deliveries acked without running the handler because the idempotency store
    /// (or the `ensure` callback) said their work was already done.
    pub duplicates: u64,
    /// Dead-letter hook calls that failed (the dead letters themselves are safe).
    pub hook_errors: u64,
}

/// Configures a [`Consumer`]; start with [`Consumer::builder`].
#[derive(Debug, Clone)]
pub struct ConsumerBuilder {
    queue: QueueName,
    concurrency: usize,
    prefetch: usize,
    lease: Option<Duration>,
    timeout: Option<Duration>,
    retry: RetryPolicy,
    until_empty: bool,
    grace: Duration,
    poll: Duration,
    idempotency: Option<Idempotency>,
    fail_hook: Option<Arc<dyn FailHook>>,
    rate: Option<RateLimit>,
    breaker: Option<CircuitBreaker>,
}

impl std::fmt::Debug for dyn FailHook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FailHook")
    }
}

impl ConsumerBuilder {
    /// How many handlers run at once (default 1).
    pub fn concurrency(mut self, n: usize) -> Self {
        self.concurrency = n.max(1);
        self
    }

    /// Most messages received in one call (default: the concurrency).
    pub fn prefetch(mut self, n: usize) -> Self {
        self.prefetch = n.max(1);
        self
    }

    /// Lease per delivery (default: the queue's); extended while the handler runs.
    pub fn lease(mut self, lease: Duration) -> Self {
        self.lease = Some(lease);
        self
    }

    /// Longest a handler may run before the attempt counts as failed (default none).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Retry policy (default: the queue's max attempts, exponential backoff with jitter).
    pub fn retry_policy(mut self, policy: RetryPolicy) -> Self {
        self.retry = policy;
        self
    }

    /// Stop once the queue has nothing ready, delayed or in flight (default false).
    pub fn until_empty(mut self, yes: bool) -> Self {
        self.until_empty = yes;
        self
    }

    /// After shutdown, how long running handlers may take to finish (default 30 s).
    pub fn grace(mut self, grace: Duration) -> Self {
        self.grace = grace;
        self
    }

    /// Long-poll wait of each receive call (default 1 s); bounds shutdown latency.
    pub fn poll(mut self, poll: Duration) -> Self {
        self.poll = poll;
        self
    }

    /// Makes processing effectively once: each delivery's key (default
    /// `queue/message-id`) is claimed in `store` before the handler runs and marked
    /// done after it succeeded, so a redelivered message whose work is done is acked
    /// without running the handler again. See [`crate::IdempotencyStore`].
    pub fn idempotency(mut self, store: Arc<dyn IdempotencyStore>) -> Self {
        self.idempotency = Some(Idempotency {
            store,
            retention: Duration::from_secs(24 * 3600),
            key: Arc::new(|d: &Delivery| format!("{}/{}", d.queue, d.id)),
            ensure: None,
        });
        self
    }

    /// How long a done key is remembered (default 24 h). Needs [`idempotency`](Self::idempotency).
    pub fn idempotency_retention(mut self, retention: Duration) -> Self {
        if let Some(i) = &mut self.idempotency {
            i.retention = retention;
        }
        self
    }

    /// The idempotency key of a delivery (default `queue/message-id`), for example a
    /// business key from a header. Needs [`idempotency`](Self::idempotency).
    pub fn idempotency_key(
        mut self,
        key: impl Fn(&Delivery) -> String + Send + Sync + 'static,
    ) -> Self {
        if let Some(i) = &mut self.idempotency {
            i.key = Arc::new(key);
        }
        self
    }

    /// Asked when an earlier worker died mid-handler on the same key (a suspected
    /// duplicate): returns whether the effect already happened. Without it, the
    /// handler runs again (at least once). Needs [`idempotency`](Self::idempotency).
    pub fn ensure(mut self, ensure: impl Ensure) -> Self {
        if let Some(i) = &mut self.idempotency {
            i.ensure = Some(Arc::new(ensure));
        }
        self
    }

    /// Runs `hook` after each message this consumer dead-letters (for example to
    /// alert). A failing hook never loses the message.
    pub fn on_dead_letter(mut self, hook: impl FailHook) -> Self {
        self.fail_hook = Some(Arc::new(hook));
        self
    }

    /// At most this many messages per second start their handler (across this
    /// consumer's workers). Share one [`RateLimit`] between consumers to cap them together.
    pub fn rate_limit(mut self, rate: RateLimit) -> Self {
        self.rate = Some(rate);
        self
    }

    /// Pauses receiving while the failure ratio of recent attempts is above the
    /// breaker's threshold, probing one message at a time after its cool-down. Keep a
    /// clone of `breaker` to read its [`state`](CircuitBreaker::state).
    pub fn circuit_breaker(mut self, breaker: CircuitBreaker) -> Self {
        self.breaker = Some(breaker);
        self
    }

    /// A consumer of the queue on `driver`, running `handler` per message.
    pub fn build(self, driver: Arc<dyn Driver>, handler: impl Handler) -> Consumer {
        Consumer {
            config: self,
            driver,
            work: Work::Single(Arc::new(handler)),
        }
    }

    /// A consumer that hands `handler` up to `size` messages at once (one receive, one
    /// settle for the whole batch); `concurrency` batches run at once. Idempotency
    /// settings do not apply to batch handlers (a batch handler deduplicates itself).
    pub fn build_batch(
        self,
        driver: Arc<dyn Driver>,
        size: usize,
        handler: impl BatchHandler,
    ) -> Consumer {
        Consumer {
            config: self,
            driver,
            work: Work::Batch(Arc::new(handler), size.max(1)),
        }
    }
}

/// What a consumer runs: a handler per message, or a batch handler.
#[derive(Clone)]
pub(crate) enum Work {
    Single(Arc<dyn Handler>),
    Batch(Arc<dyn BatchHandler>, usize),
}

/// Runs a handler over a queue; see the module docs.
pub struct Consumer {
    config: ConsumerBuilder,
    driver: Arc<dyn Driver>,
    work: Work,
}

impl std::fmt::Debug for Consumer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Consumer")
            .field("config", &self.config)
            .field("driver", &self.driver)
            .finish_non_exhaustive()
    }
}

impl Consumer {
    /// A builder for a consumer of `queue`.
    pub fn builder(queue: QueueName) -> ConsumerBuilder {
        ConsumerBuilder {
            queue,
            concurrency: 1,
            prefetch: 0,
            lease: None,
            timeout: None,
            retry: RetryPolicy::default(),
            until_empty: false,
            grace: Duration::from_secs(30),
            poll: Duration::from_secs(1),
            idempotency: None,
            fail_hook: None,
            rate: None,
            breaker: None,
        }
    }
}
