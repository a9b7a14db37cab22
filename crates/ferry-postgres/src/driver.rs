//! [`PostgresDriver`]: connecting (pool, migrations, `LISTEN`), the bounded-call and
//! transaction helpers every operation uses, and the [`Driver`] impl, whose SQL lives
//! in `send.rs`, `receive.rs`, `settle.rs`, `stats.rs` and `history.rs`.

use std::future::Future;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use ferry_core::time::from_millis;
use ferry_core::{
    Delivery, Driver, Error, ErrorKind, HistoryEvent, Limits, Message, PublishReport, QueueName,
    QueueStats, Receipt, ReceiveOptions, Result, SendReport, Settlement, TopicName,
    validate_route_key,
};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Connection, PgConnection, PgPool, Postgres, Transaction};

use crate::config::{PostgresConfig, redact};
use crate::error::{Context, from_commit, from_sqlx};
use crate::notify::{self, ListenerTask, Waiters};
use crate::{history, migrate, receive, send, settle, stats};

/// The PostgreSQL [`Driver`]: queues in tables of one schema, shared by every process
/// that connects to it. Cheap to clone (one pool behind an `Arc`).
///
/// ```no_run
/// # async fn demo() -> ferry_core::Result<()> {
/// use ferry_core::*;
/// use ferry_postgres::PostgresDriver;
///
/// let driver = PostgresDriver::connect("postgres://postgres@127.0.0.1:5432/app?schema=ferry").await?;
/// let q = QueueName::new("jobs")?;
/// driver.create_queue(&q, QueueOptions::default()).await?;
/// driver.send(&q, vec![Message::new("hello")]).await?;
/// let got = driver.receive(&q, ReceiveOptions::max(1)).await?;
/// driver.ack(&got[0].receipt).await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct PostgresDriver {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    pool: PgPool,
    config: PostgresConfig,
    channel: String,
    waiters: Arc<Waiters>,
    _listener: ListenerTask,
    /// When this driver last pruned the history (ms since its epoch below), for
    /// [`PostgresDriver::take_prune_turn`].
    pruned_at: AtomicU64,
    epoch: std::time::Instant,
}

/// Whether an operation writes messages, which decides what a timeout means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Op {
    /// Reads, settlements, topology: a timeout is [`ErrorKind::Timeout`].
    Plain,
    /// Send and publish: a timeout may come after the commit was sent, so it is
    /// [`ErrorKind::Indeterminate`].
    Enqueue,
}

impl PostgresDriver {
    /// Connects to the server at `url` (`postgres://` or `postgresql://`, optional
    /// `schema=NAME`, default schema `ferry`) with default settings; see
    /// [`PostgresDriver::connect_with`].
    pub async fn connect(url: &str) -> Result<Self> {
        Self::connect_with(PostgresConfig::new(url)?).await
    }

    /// Connects, creates the schema or brings it up to this build's version, and
    /// starts listening for other processes' sends.
    ///
    /// Errors: `InvalidInput` for a bad URL, credentials or database name;
    /// `Unavailable` when the server cannot be reached; `IncompatibleFormat` when a
    /// newer ferry upgraded the schema (upgrade ferry).
    ///
    /// ```no_run
    /// # async fn demo() -> ferry_core::Result<()> {
    /// use ferry_postgres::{PostgresConfig, PostgresDriver};
    /// let config = PostgresConfig::new("postgres://postgres@127.0.0.1/app")?.with_pool_size(4);
    /// let driver = PostgresDriver::connect_with(config).await?;
    /// # let _ = driver; Ok(()) }
    /// ```
    pub async fn connect_with(config: PostgresConfig) -> Result<Self> {
        let shown = redact(config.url());
        let schema = config.schema().to_string();
        let options = PgConnectOptions::from_str(config.url())
            .map_err(|e| {
                Error::new(
                    ErrorKind::InvalidInput,
                    format!("'{shown}' is not a valid PostgreSQL URL"),
                )
                .with_source(e)
            })?
            .options([("search_path", schema.as_str())]);
        let connect_err = |e| from_sqlx(&format!("cannot connect to PostgreSQL at {shown}"), e);
        let timeout = config.timeout;
        let conn = bound(timeout, Op::Plain, PgConnection::connect_with(&options))
            .await?
            .map_err(connect_err)?;
        // Other processes may hold the migration lock for a while; allow for it.
        bound(
            timeout.max(Duration::from_secs(60)),
            Op::Plain,
            migrate::run(conn, &schema),
        )
        .await??;
        let pool = PgPoolOptions::new()
            .max_connections(config.pool_size.max(1))
            .acquire_timeout(timeout)
            .connect_with(options.clone())
            .await
            .map_err(connect_err)?;
        let listen_pool = PgPoolOptions::new()
            .max_connections(1)
            .acquire_timeout(timeout)
            .connect_lazy_with(options);
        let channel = notify::channel(&schema);
        let waiters = Arc::new(Waiters::default());
        let listener = bound(
            timeout,
            Op::Plain,
            notify::start(listen_pool, channel.clone(), waiters.clone()),
        )
        .await?
        .map_err(connect_err)?;
        Ok(PostgresDriver {
            inner: Arc::new(Inner {
                pool,
                config,
                channel,
                waiters,
                _listener: listener,
                pruned_at: AtomicU64::new(0),
                epoch: std::time::Instant::now(),
            }),
        })
    }

    /// The schema holding this driver's tables.
    pub fn schema(&self) -> &str {
        self.inner.config.schema()
    }

    /// The settings this driver was connected with.
    pub fn config(&self) -> &PostgresConfig {
        &self.inner.config
    }

    /// This schema's durable idempotency store.
    pub fn idempotency(&self) -> crate::PostgresIdempotencyStore {
        crate::PostgresIdempotencyStore::new(self.clone())
    }

    /// This schema's durable store of prepared two-phase messages (`ferry_core::tx`),
    /// named `default`.
    pub fn tx_store(&self) -> crate::PostgresTxStore {
        self.tx_store_named("default")
            .unwrap_or_else(|_| unreachable!("'default' is a valid store name"))
    }

    /// A separately named two-phase store in this schema (its own records and
    /// checkers). `InvalidInput` unless `name` is 1 to 128 letters, digits, `-`, `_`
    /// or `.`.
    pub fn tx_store_named(&self, name: &str) -> Result<crate::PostgresTxStore> {
        crate::PostgresTxStore::new(self.clone(), name)
    }

    /// The connection pool (its connections' `search_path` is the schema).
    pub(crate) fn pool(&self) -> &PgPool {
        &self.inner.pool
    }

    /// The `NOTIFY` channel of this schema.
    pub(crate) fn channel(&self) -> &str {
        &self.inner.channel
    }

    /// Whether message history is recorded.
    pub(crate) fn keeps_history(&self) -> bool {
        self.inner.config.history.is_some()
    }

    /// Whether this call should prune the history: true at most once a minute.
    pub(crate) fn take_prune_turn(&self) -> bool {
        let now = u64::try_from(self.inner.epoch.elapsed().as_millis()).unwrap_or(u64::MAX);
        let last = self.inner.pruned_at.load(Ordering::Relaxed);
        (last == 0 || now.saturating_sub(last) >= 60_000)
            && self
                .inner
                .pruned_at
                .compare_exchange(last, now.max(1), Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
    }

    /// Runs `fut` under the operation timeout.
    pub(crate) async fn bounded<T>(
        &self,
        op: Op,
        fut: impl Future<Output = Result<T>>,
    ) -> Result<T> {
        bound(self.inner.config.timeout, op, fut).await?
    }

    /// Runs `work` in one transaction under the operation timeout and commits it.
    pub(crate) async fn in_tx<T, F>(&self, op: Op, what: &str, work: F) -> Result<T>
    where
        F: for<'c> FnOnce(&'c mut PgConnection) -> futures_boxed::BoxFuture<'c, Result<T>>,
    {
        self.bounded(op, async {
            let mut tx: Transaction<'_, Postgres> = self
                .inner
                .pool
                .begin()
                .await
                .ctx(&format!("cannot {what}"))?;
            let out = work(&mut tx).await?;
            let commit = tx.commit().await;
            match op {
                Op::Enqueue => commit.map_err(|e| from_commit(&format!("cannot {what}"), e))?,
                Op::Plain => commit.ctx(&format!("cannot {what}"))?,
            }
            Ok(out)
        })
        .await
    }
}

/// `fut` under `timeout`; the outer error is the timeout, mapped by `op`.
async fn bound<T>(timeout: Duration, op: Op, fut: impl Future<Output = T>) -> Result<T> {
    tokio::time::timeout(timeout, fut).await.map_err(|_| match op {
        Op::Plain => Error::new(
            ErrorKind::Timeout,
            format!("PostgreSQL did not answer within {timeout:?}"),
        ),
        Op::Enqueue => Error::new(
            ErrorKind::Indeterminate,
            format!(
                "PostgreSQL did not answer within {timeout:?}; the messages may or may not have been enqueued: retry with the same ids"
            ),
        ),
    })
}

/// A boxed future borrowing a connection, for [`PostgresDriver::in_tx`] closures.
pub(crate) mod futures_boxed {
    /// What an `in_tx` closure returns.
    pub(crate) type BoxFuture<'a, T> =
        std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send + 'a>>;
}

#[async_trait]
impl Driver for PostgresDriver {
    fn limits(&self) -> Limits {
        self.inner.config.limits
    }

    fn idempotency_store(&self) -> Option<Arc<dyn ferry_core::IdempotencyStore>> {
        Some(Arc::new(self.idempotency()))
    }

    fn tx_store(&self) -> Option<Arc<dyn ferry_core::tx::TxStore>> {
        Some(Arc::new(PostgresDriver::tx_store(self)))
    }

    async fn send(&self, queue: &QueueName, batch: Vec<Message>) -> Result<SendReport> {
        self.inner.config.limits.validate_batch(&batch)?;
        let (hist, channel) = (self.keeps_history(), self.channel().to_string());
        let q = queue.clone();
        let (enqueued, duplicates) = self
            .in_tx(Op::Enqueue, "send", move |c| {
                Box::pin(async move { send::enqueue(c, &q, &batch, None, hist, &channel).await })
            })
            .await?;
        let mut report = SendReport::default();
        report.enqueued = enqueued;
        report.duplicates = duplicates;
        Ok(report)
    }

    async fn publish(
        &self,
        topic: &TopicName,
        route_key: &str,
        batch: Vec<Message>,
    ) -> Result<PublishReport> {
        validate_route_key(route_key)?;
        self.inner.config.limits.validate_batch(&batch)?;
        let (hist, channel) = (self.keeps_history(), self.channel().to_string());
        let (t, key) = (topic.clone(), route_key.to_string());
        self.in_tx(Op::Enqueue, "publish", move |c| {
            Box::pin(async move {
                let queues = send::route(c, &t, &key).await?;
                if queues.is_empty() {
                    return Err(Error::unroutable(t.as_str(), &key));
                }
                let mut report = PublishReport::default();
                for q in &queues {
                    let (n, dups) = send::enqueue(c, q, &batch, Some(&key), hist, &channel).await?;
                    report.enqueued += n;
                    report.duplicates += dups.len() as u64;
                }
                report.queues = queues;
                Ok(report)
            })
        })
        .await
    }

    async fn receive(&self, queue: &QueueName, options: ReceiveOptions) -> Result<Vec<Delivery>> {
        options.validate()?;
        let deadline = tokio::time::Instant::now() + options.wait;
        let signal = self.inner.waiters.signal(queue.as_str());
        let hist = self.keeps_history();
        loop {
            // Taken before looking, so a notification during the look is not missed.
            let woken = signal.notified();
            tokio::pin!(woken);
            woken.as_mut().enable();
            let (q, max, lease) = (queue.clone(), options.max, options.lease);
            let got = self
                .in_tx(Op::Plain, "receive", move |c| {
                    Box::pin(async move { receive::receive(c, &q, max, lease, hist).await })
                })
                .await?;
            if !got.deliveries.is_empty() || tokio::time::Instant::now() >= deadline {
                if hist {
                    history::maybe_prune(self).await;
                }
                return Ok(got.deliveries);
            }
            let mut until =
                deadline.min(tokio::time::Instant::now() + self.inner.config.poll_interval);
            if let Some(due) = got.next_due {
                // At least 10 ms: a due row another receiver holds locked is not ours to
                // take until that receiver commits.
                let ms = u64::try_from(due.saturating_sub(got.now))
                    .unwrap_or(0)
                    .max(10);
                until = until.min(tokio::time::Instant::now() + Duration::from_millis(ms));
            }
            tokio::select! {
                _ = &mut woken => {}
                _ = tokio::time::sleep_until(until) => {}
            }
        }
    }

    async fn settle(&self, batch: Vec<Settlement>) -> Result<Vec<Result<()>>> {
        let (hist, channel) = (self.keeps_history(), self.channel().to_string());
        self.in_tx(Op::Plain, "settle", move |c| {
            Box::pin(async move { settle::settle(c, &batch, hist, &channel).await })
        })
        .await
    }

    async fn extend(&self, receipt: &Receipt, lease: Duration) -> Result<SystemTime> {
        let until = self
            .bounded(Op::Plain, settle::extend(self.pool(), receipt, lease))
            .await?;
        Ok(from_millis(until))
    }

    async fn stats(&self, queue: Option<&QueueName>) -> Result<Vec<QueueStats>> {
        self.bounded(Op::Plain, stats::stats(self.pool(), queue))
            .await
    }

    async fn history(&self, queue: &QueueName, id: &str) -> Result<Vec<HistoryEvent>> {
        if !self.keeps_history() {
            return Err(Error::new(
                ErrorKind::Unsupported,
                "message history is turned off for this driver (PostgresConfig::history)",
            ));
        }
        self.bounded(Op::Plain, history::events(self.pool(), queue, id))
            .await
    }
}
