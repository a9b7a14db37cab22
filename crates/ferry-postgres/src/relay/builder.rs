//! [`RelayBuilder`]: the relay's settings (batch, poll interval, `LISTEN`, timeouts,
//! backoffs, the event observer), kept apart from the loop that uses them.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use ferry_core::{Backoff, Driver, Result, RetryPolicy};
use sqlx::postgres::PgConnectOptions;
use tokio::sync::Mutex;

use super::leader::{Session, lock_key};
use super::{Relay, RelayEvent};

pub(super) type Observer = Arc<dyn Fn(&RelayEvent<'_>) + Send + Sync>;

/// Settings of a [`Relay`]; from [`Relay::builder`] or [`Relay::builder_with_pool`].
///
/// ```no_run
/// # fn demo(target: std::sync::Arc<dyn ferry_core::Driver>) -> ferry_core::Result<()> {
/// use std::time::Duration;
/// let relay = ferry_postgres::Relay::builder("postgres://app@db/shop", target)?
///     .schema("shop_ferry")?
///     .batch(500)
///     .every(Duration::from_millis(200))
///     .timeouts(Duration::from_secs(5), Duration::from_secs(15))
///     .hold_backoff(Duration::from_secs(2), Duration::from_secs(120))
///     .on_event(|e| eprintln!("{e:?}"))
///     .build();
/// # let _ = relay; Ok(()) }
/// ```
#[derive(Clone)]
pub struct RelayBuilder {
    pub(super) options: PgConnectOptions,
    pub(super) shown: String,
    pub(super) schema: String,
    pub(super) target: Arc<dyn Driver>,
    pub(super) batch: usize,
    pub(super) every: Duration,
    pub(super) listen: bool,
    pub(super) timeout: Duration,
    pub(super) target_timeout: Duration,
    pub(super) hold_backoff: RetryPolicy,
    pub(super) backoff: RetryPolicy,
    pub(super) observer: Option<Observer>,
}

impl fmt::Debug for RelayBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RelayBuilder")
            .field("source", &self.shown)
            .field("schema", &self.schema)
            .field("batch", &self.batch)
            .field("every", &self.every)
            .field("listen", &self.listen)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl RelayBuilder {
    /// Reads the outbox of schema `schema` instead (same rules as the URL's `schema=`).
    pub fn schema(mut self, schema: &str) -> Result<Self> {
        self.schema = crate::Outbox::new(schema)?.schema().to_string();
        Ok(self)
    }

    /// Most rows per round (at least 1). Default 100.
    pub fn batch(mut self, n: usize) -> Self {
        self.batch = n.max(1);
        self
    }

    /// How often to look for rows without a notification, and how often a standby
    /// relay tries to take over. Default 1 s.
    pub fn every(mut self, every: Duration) -> Self {
        self.every = every.max(Duration::from_millis(1));
        self
    }

    /// Whether to `LISTEN` for enqueue notifications (default on).
    pub fn listen(mut self, listen: bool) -> Self {
        self.listen = listen;
        self
    }

    /// Bound on every PostgreSQL call (default 10 s) and on every target call
    /// (`target`, default 30 s; a target timeout is retried like a transient error).
    pub fn timeouts(mut self, source: Duration, target: Duration) -> Self {
        self.timeout = source;
        self.target_timeout = target;
        self
    }

    /// How long a destination that refused a row waits before it is tried again:
    /// `initial`, doubling up to `max` (defaults 1 s and 1 min).
    pub fn hold_backoff(mut self, initial: Duration, max: Duration) -> Self {
        self.hold_backoff = exponential(initial, max, false);
        self
    }

    /// Called for each [`RelayEvent`] (besides the `tracing` logs).
    pub fn on_event(mut self, f: impl Fn(&RelayEvent<'_>) + Send + Sync + 'static) -> Self {
        self.observer = Some(Arc::new(f));
        self
    }

    /// The relay (connects when it first runs).
    pub fn build(self) -> Relay {
        Relay {
            key: lock_key(&self.schema),
            config: self,
            session: Mutex::new(Session::default()),
            migrated: std::sync::atomic::AtomicBool::new(false),
        }
    }
}

pub(super) fn exponential(initial: Duration, max: Duration, jitter: bool) -> RetryPolicy {
    RetryPolicy::default()
        .with_max_attempts(u32::MAX)
        .with_backoff(Backoff::Exponential {
            initial,
            max,
            jitter,
        })
}
