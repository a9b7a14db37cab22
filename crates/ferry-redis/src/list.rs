//! The legacy list flavour: consume a plain Redis list that other programs `LPUSH` raw
//! payloads to, at least once, with ferry's retries and dead letters.
//!
//! Rather than a second consumer runtime for lists, a bridge moves the list's items into
//! an ordinary ferry queue, so everything ferry promises for queues holds for them. The
//! protocol, its guarantees and its keys are documented on [`ListBridge`] (this module is
//! private; its types are re-exported at the crate root).

mod keys;
mod steps;
mod stop;

use std::future::Future;
use std::time::{Duration, Instant};

use ferry_core::{Error, ErrorKind, QueueName, QueueOptions, Result, Topology};
use redis::AsyncCommands;

use crate::RedisDriver;
use crate::reply::{Op, map_err};
pub use keys::{ListKeys, key_slot};
use steps::Scripts;
use stop::Stop;

/// Longest list key the bridge accepts, so that message ids stay within ferry's limit.
const MAX_KEY_LEN: usize = 200;
/// First and longest wait when the list is empty.
const IDLE_MIN: Duration = Duration::from_millis(50);
const IDLE_MAX: Duration = Duration::from_millis(500);
/// Longest pause between two looks for abandoned items.
const RECLAIM_EVERY: Duration = Duration::from_secs(5);
/// Shortest pause between two looks, whatever the grace.
const RECLAIM_MIN: Duration = Duration::from_millis(100);
/// The header naming where a message came from.
pub const SOURCE_HEADER: &str = "ferry-source";

/// Moves items from a plain Redis list into a ferry queue.
///
/// Many systems already have producers, in many languages, that `LPUSH` work to a Redis
/// list for a `BRPOP` worker, which loses the item if it crashes after the pop. A
/// `ListBridge` lets those producers stay unchanged: it moves the list's items into a
/// ferry queue, and an ordinary ferry [`Consumer`](ferry_core::Consumer) runs on that
/// queue, so retries with backoff, dead letters, leases, history and idempotency all
/// come from ferry. The move cannot lose an item:
///
/// 1. **take** (one Lua script in the list's hash slot): `RPOP` up to `batch` items
///    (oldest first, since producers `LPUSH`), and park each in a *moving* hash under a
///    new sequence number, stamped with the server's time;
/// 2. **send** them to the queue as one batch, each with the id
///    `list:<KEY>:<taken-at-ms>-<seq>`, the raw bytes as payload and the header
///    `ferry-source: redis-list:<KEY>`;
/// 3. **confirm** (one script in the list's slot): remove them from the moving hash.
///
/// If the bridge dies (or stalls) between 1 and 3, its items stay parked. Every bridge
/// of the list looks for items parked longer than [`reclaim_after`](Self::reclaim_after)
/// (default 30 s) when it starts and every few seconds, and does 2 and 3 again for them
/// with **the same ids**: a message whose id is still in the queue is not added twice.
///
/// # Guarantees and the duplicate window
///
/// - An item popped from the list is in the moving hash in the same atomic step, and
///   leaves it only after the queue holds it (or after it was set aside, below). So it
///   is never lost by a crash, a restart or a lost connection; a failed step is retried
///   with backoff, and an unknown outcome is settled by the reclaim.
/// - Delivery is **at least once**. A reclaimed item whose message is still in the
///   queue is a no-op; but one whose message was already consumed and acked (the bridge
///   died after 2 and before 3, and the consumer was quick) is delivered again, under
///   the same id. Two bridges can also both re-send an item when one of them stalls
///   longer than the grace. A consumer with an idempotency store
///   ([`ConsumerBuilder::idempotency`](ferry_core::ConsumerBuilder::idempotency)), keyed
///   by message id, turns these into no-ops for as long as it remembers done keys.
/// - Order: items enter the queue in list order per bridge; with retries and several
///   workers, processing order is not guaranteed (as for any ferry queue).
/// - An id does not repeat even if the counter key is deleted or rolled back by a
///   failover, because it also carries the time the item was taken (a repeated id
///   would be dropped as a duplicate while the first one is queued).
/// - A payload over the driver's size limit ([`RedisConfig::limits`](crate::RedisConfig))
///   cannot become a message; it is moved, raw, to the *rejected* list (and counted in
///   [`BridgeStats::rejected`], logged as an error) instead of blocking the bridge.
/// - A shutdown, or an error that ends [`run`](Self::run), leaves the items of a step in
///   progress parked; they are sent by the next bridge of the list after the grace.
///
/// # Keys
///
/// All in the list's hash slot, so each script touches one slot on a Cluster (the queue
/// may live on another node; the send is a separate step). For list `jobs` and prefix
/// `ferry`, see [`ListKeys`] for other shapes of names:
///
/// | key | type | content |
/// |---|---|---|
/// | `jobs` | list | the producers' list, untouched in format |
/// | `{jobs}:ferry:list:seq` | string | counter of items taken |
/// | `{jobs}:ferry:list:moving` | hash | seq → payload, taken and not yet confirmed |
/// | `{jobs}:ferry:list:moving_at` | zset | seq, score = when taken (server ms) |
/// | `{jobs}:ferry:list:rejected` | list | payloads ferry refused, raw, newest first |
///
/// The moving area belongs to the list, not to a queue: whichever bridge of the list
/// reclaims an item sends it to its own queue.
///
/// # Waiting
///
/// An empty list is polled with a backoff from 50 ms up to 500 ms (reset by the next
/// item), not with a blocking pop: `BLMOVE` can only move an item to another list (not
/// number and stamp it), and a blocking call would hold the connection the driver shares.
///
/// # Example
///
/// ```no_run
/// # async fn demo() -> ferry_core::Result<()> {
/// use std::time::Duration;
/// use ferry_core::QueueName;
/// use ferry_redis::{ListBridge, RedisDriver};
///
/// let driver = RedisDriver::connect("redis://127.0.0.1:6379").await?;
/// let bridge = ListBridge::new(driver, "jobs", QueueName::new("redis-list.jobs")?)?
///     .batch(500)
///     .reclaim_after(Duration::from_secs(60));
/// // Run beside a ferry Consumer of "redis-list.jobs", until the future resolves.
/// let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
/// let task = tokio::spawn(async move { bridge.run(async { let _ = stopped.await; }).await });
/// // ... later:
/// let _ = stop.send(());
/// # let _ = task;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct ListBridge {
    driver: RedisDriver,
    keys: ListKeys,
    queue: QueueName,
    batch: usize,
    reclaim_after: Duration,
    until_empty: bool,
    scripts: std::sync::Arc<Scripts>,
}

impl std::fmt::Debug for ListBridge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ListBridge")
            .field("list", &self.keys.list)
            .field("queue", &self.queue)
            .field("batch", &self.batch)
            .field("reclaim_after", &self.reclaim_after)
            .field("until_empty", &self.until_empty)
            .finish_non_exhaustive()
    }
}

/// What one [`ListBridge::run`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct BridgeStats {
    /// Items taken from the list.
    pub moved: u64,
    /// Messages added to the queue (moved and reclaimed items).
    pub enqueued: u64,
    /// Sends that were no-ops because the queue already held the id (re-sent items).
    pub duplicates: u64,
    /// Abandoned items found in the moving area and sent again.
    pub reclaimed: u64,
    /// Items ferry refused (over the size limit), set aside in the rejected list.
    pub rejected: u64,
}

/// How many items wait where, for one list.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Backlog {
    /// Items in the list, not taken yet.
    pub waiting: u64,
    /// Items taken, not yet confirmed in the queue.
    pub moving: u64,
    /// Items set aside because ferry refused them.
    pub rejected: u64,
}

impl ListBridge {
    /// A bridge from the Redis list `key` to `queue` on `driver`'s deployment (with its
    /// key prefix and size limits). Defaults: batches of 100, reclaim after 30 s, runs
    /// until shut down. The queue is created with default options if missing.
    ///
    /// Errors: [`ErrorKind::InvalidInput`] if `key` is empty, longer than 200 bytes or
    /// contains a control character (it becomes part of message ids).
    pub fn new(driver: RedisDriver, key: impl Into<String>, queue: QueueName) -> Result<Self> {
        let key = key.into();
        if key.is_empty() || key.len() > MAX_KEY_LEN || key.chars().any(char::is_control) {
            return Err(Error::invalid_input(format!(
                "redis list key '{}' is not usable: it must be 1 to {MAX_KEY_LEN} bytes without control characters",
                key.escape_default()
            )));
        }
        let keys = ListKeys::new(&key, &driver.prefix);
        Ok(ListBridge {
            driver,
            keys,
            queue,
            batch: 100,
            reclaim_after: Duration::from_secs(30),
            until_empty: false,
            scripts: std::sync::Arc::new(Scripts::new()),
        })
    }

    /// The queue name used when none is given for list `key`: `redis-list.` and the key
    /// with every character outside `A-Z a-z 0-9 _ - .` replaced by `_`, cut to ferry's
    /// 128-byte limit. Different keys can share a name (`a:b`, `a_b`); pass a queue
    /// explicitly to keep them apart.
    ///
    /// ```
    /// let q = ferry_redis::ListBridge::default_queue("app:jobs")?;
    /// assert_eq!(q.as_str(), "redis-list.app_jobs");
    /// # Ok::<(), ferry_core::Error>(())
    /// ```
    pub fn default_queue(key: &str) -> Result<QueueName> {
        let mut name: String = "redis-list."
            .chars()
            .chain(key.chars().map(|c| {
                if c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.') {
                    c
                } else {
                    '_'
                }
            }))
            .collect();
        name.truncate(ferry_core::MAX_NAME_LEN);
        QueueName::new(name)
    }

    /// Most items taken (and sent) per step; 1 to the driver's batch limit (default 100).
    pub fn batch(mut self, n: usize) -> Self {
        self.batch = n.clamp(1, self.driver.limits.max_batch.max(1));
        self
    }

    /// How long an item may stay taken but unconfirmed before any bridge of the list
    /// sends it again (default 30 s). Shorter means faster recovery after a crash, but
    /// re-sends (possible duplicates) when a live bridge is slower than this.
    pub fn reclaim_after(mut self, grace: Duration) -> Self {
        self.reclaim_after = grace;
        self
    }

    /// Stop once the list is found empty (after a last look for abandoned items) instead
    /// of waiting for more (default false).
    pub fn until_empty(mut self, yes: bool) -> Self {
        self.until_empty = yes;
        self
    }

    /// The list key.
    pub fn key(&self) -> &str {
        &self.keys.list
    }

    /// The queue items go to.
    pub fn queue(&self) -> &QueueName {
        &self.queue
    }

    /// The Redis keys this bridge uses.
    pub fn keys(&self) -> &ListKeys {
        &self.keys
    }

    /// Counts the list's items, the taken ones and the rejected ones.
    ///
    /// ```no_run
    /// # async fn demo(bridge: ferry_redis::ListBridge) -> ferry_core::Result<()> {
    /// let b = bridge.backlog().await?;
    /// println!("{} waiting, {} being moved, {} refused", b.waiting, b.moving, b.rejected);
    /// # Ok(()) }
    /// ```
    pub async fn backlog(&self) -> Result<Backlog> {
        let mut c = self.driver.conn();
        let read = |e| map_err(e, Op::Read, "read the list's backlog");
        Ok(Backlog {
            waiting: c.llen(&self.keys.list).await.map_err(read)?,
            moving: c.hlen(&self.keys.moving).await.map_err(read)?,
            rejected: c.llen(&self.keys.rejected).await.map_err(read)?,
        })
    }

    /// Moves items until `shutdown` resolves (or, with [`until_empty`](Self::until_empty),
    /// until the list is empty), creating the queue first if it is missing.
    ///
    /// A shutdown never cuts a step in half: it is noticed between steps and during
    /// waits. Transient errors (Redis unreachable, an unknown outcome) are logged and
    /// retried with backoff up to 10 s; other errors (the key holds something other
    /// than a list, the queue was deleted) end the run. Items taken but not confirmed
    /// when it ends are reclaimed by the next bridge of the list after the grace.
    ///
    /// ```no_run
    /// # async fn demo(bridge: ferry_redis::ListBridge) -> ferry_core::Result<()> {
    /// // Move what the list holds now, then return.
    /// let stats = bridge.until_empty(true).run(std::future::pending()).await?;
    /// println!("moved {}, re-sent after a crash {}", stats.moved, stats.reclaimed);
    /// # Ok(()) }
    /// ```
    pub async fn run(&self, shutdown: impl Future<Output = ()> + Send) -> Result<BridgeStats> {
        let mut stop = Stop::new(shutdown);
        self.ensure_queue().await?;
        let mut stats = BridgeStats::default();
        let mut idle = IDLE_MIN;
        let every = self.reclaim_after.clamp(RECLAIM_MIN, RECLAIM_EVERY);
        let mut last_reclaim: Option<Instant> = None;
        loop {
            if stop.asked().await {
                break;
            }
            if last_reclaim.is_none_or(|t| t.elapsed() >= every) {
                if !self.reclaim(&mut stats, &mut stop).await? {
                    break;
                }
                last_reclaim = Some(Instant::now());
            }
            let Some(items) = self.retry(&mut stop, "take items", || self.take()).await? else {
                break;
            };
            if items.is_empty() {
                if self.until_empty {
                    self.reclaim(&mut stats, &mut stop).await?;
                    break;
                }
                if stop.sleep(idle).await {
                    break;
                }
                idle = (idle * 2).min(IDLE_MAX);
                continue;
            }
            idle = IDLE_MIN;
            stats.moved += items.len() as u64;
            if !self.forward(items, &mut stats, &mut stop).await? {
                break;
            }
        }
        Ok(stats)
    }

    /// Creates the queue with default options unless it exists (its options are never
    /// overwritten). [`run`](Self::run) does this first; call it to start a consumer
    /// of the queue before the bridge.
    pub async fn ensure_queue(&self) -> Result<()> {
        match self.driver.get_queue(&self.queue).await {
            Ok(_) => Ok(()),
            Err(e) if e.kind() == ErrorKind::QueueNotFound => {
                self.driver
                    .create_queue(&self.queue, QueueOptions::default())
                    .await
            }
            Err(e) => Err(e),
        }
    }

    /// Runs `op` until it succeeds, retrying transient errors with backoff; `None` if
    /// shutdown was asked while waiting to retry.
    async fn retry<T, Fut, S>(
        &self,
        stop: &mut Stop<S>,
        what: &str,
        mut op: impl FnMut() -> Fut,
    ) -> Result<Option<T>>
    where
        Fut: Future<Output = Result<T>>,
        S: Future<Output = ()>,
    {
        let mut backoff = Duration::from_millis(100);
        loop {
            match op().await {
                Ok(v) => return Ok(Some(v)),
                Err(e) if e.is_transient() => {
                    tracing::warn!(list = %self.keys.list, queue = %self.queue, error = %e, "list bridge: cannot {what}; retrying");
                    if stop.sleep(backoff).await {
                        return Ok(None);
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(10));
                }
                Err(e) => return Err(e),
            }
        }
    }
}
