//! # ferry-redis
//!
//! A Redis backend for ferry: a [`RedisDriver`] that keeps the whole driver contract
//! with server-side atomicity in Lua scripts (the `.lua` files under `src/lua/`, loaded
//! with `include_str!`; `common.lua` is prepended to every queue script).
//!
//! ```no_run
//! # async fn demo() -> ferry_core::Result<()> {
//! use ferry_core::*;
//! let driver = ferry_redis::RedisDriver::connect("redis://127.0.0.1:6379").await?;
//! let q = QueueName::new("jobs")?;
//! driver.create_queue(&q, QueueOptions::default()).await?;
//! driver.send(&q, vec![Message::new("hi")]).await?;
//! # Ok(()) }
//! ```
//!
//! ## Deployments
//!
//! [`Deployment`] names where Redis is: `redis://` (or `rediss://` with TLS) for one
//! server, `redis+sentinel://HOST:PORT,…/MASTER` for a master found through Sentinel and
//! followed across failovers, `redis+cluster://HOST:PORT,…` for a Redis Cluster. Without
//! a URL, the `REDIS_MODE` / `REDIS_ADDRS` / `REDIS_MASTER_NAME` / `REDIS_PASSWORD`
//! variables of the Redis Streams tool ferry replaces describe one
//! ([`Deployment::from_env`]). The user guide is `docs/redis.md`.
//!
//! ## Key layout
//!
//! `P` is the key prefix ([`RedisConfig::prefix`], default `ferry`). Every key of queue
//! `Q` starts with the hash tag `{P:Q}`, so a queue lives in one Cluster slot and each
//! script touches one slot only (scripts get the base `{P:Q}` as `KEYS[1]` and derive the
//! other key names from it).
//!
//! | key | type | content |
//! |---|---|---|
//! | `{P:Q}:opts` | hash | `delay_ms`, `max_attempts`, `lease_ms`, `paused` (`1` while deliveries are paused; checked by the receive script); its existence is the queue's |
//! | `{P:Q}:msg` | hash | id → MessagePack envelope ([`ferry_core::wire::Envelope`]) of every live message |
//! | `{P:Q}:st` | hash | id → `attempts\|priority\|sequence\|first_failed_ms\|token\|pending history` of a message delivered at least once (token empty when not leased: the fence; pending history: the events of this delivered life, moved to `hist` when it ends) |
//! | `{P:Q}:err` | hash | id → last error |
//! | `{P:Q}:w:<prio>` | zset | waiting messages of one priority: score = ms when deliverable, member = 16-digit zero-padded send sequence + `\|` + id |
//! | `{P:Q}:prios` | zset | the priorities that ever had a waiting set |
//! | `{P:Q}:leased` | zset | id, score = lease deadline (ms) |
//! | `{P:Q}:dead` | zset | dead-letter sequence numbers, oldest first |
//! | `{P:Q}:dapp` | zset | the dead-letter sequence numbers approved for re-drive (score = the sequence); removed with the dead letter, so an approval belongs to one death |
//! | `{P:Q}:dl:<n>` | hash | one dead letter: id, env, pri, att, reason, err, ff, dead_at |
//! | `{P:Q}:dr:<reason>`, `:did:<id>` | zset | dead-letter indexes by reason and by id; `:dreasons` (set) lists the reasons |
//! | `{P:Q}:hist` | hash | id → history, netstrings of `at\|event\|attempt\|-` or `…\|+detail` |
//! | `{P:Q}:hexp` | zset | id → time its last life ended (pruning after [`RedisConfig::history`]) |
//! | `{P:Q}:seqctr`, `:dseq`, `:tseq` | string | counters: send sequence, dead-letter sequence, tokens |
//! | `P:queues`, `P:topics` | set | queue and topic names |
//! | `{P:t:T}:bindings` | set | `queue pattern` of topic `T` |
//! | `P:idem:<key>` | string | idempotency entry: `p\|token\|until_ms` or `d` |
//!
//! The legacy list flavour ([`ListBridge`]: a plain list that other programs `LPUSH`
//! to, moved into a queue) keeps its keys beside the producers' list `KEY`, in that
//! list's hash slot: `{KEY}:P:list:seq`, `:moving`, `:moving_at`, `:rejected` (see
//! [`ListKeys`] for keys that carry their own hash tag or braces).
//!
//! Ready vs delayed is not a separate structure: a waiting message is *ready* when its
//! score is at most now. So a delayed message needs no promotion step, a long delay never
//! blocks a short one, and the order is exact: scores are integer milliseconds (far below
//! 2^53), and equal scores fall back to the member's zero-padded send sequence, giving
//! "highest priority first, then ready time, then send order".
//!
//! ## Time
//!
//! Every instant is taken from the Redis server's clock (`TIME` inside the scripts):
//! ready times, lease deadlines, dead-at and history stamps. The client turns absolute
//! instants (`Delay::At`, `retry(not_before)`) into offsets from its own clock and the
//! script adds them to the server's now, so client/server clock skew shifts nothing by
//! more than the request's transit time. `enqueued_at` is the client's clock (it is part
//! of the envelope built by the client).
//!
//! ## What is atomic
//!
//! - One script is atomic (Redis runs scripts alone): a whole `send` batch, a receive
//!   (reclaiming expired leases, dead-lettering those on their last attempt with reason
//!   `lease_expired`, and leasing up to `max`), the settlements of one queue in a
//!   `settle` batch (each fenced by its own token, with its own result), an extend, each
//!   dead-letter operation (requeue-all, approve-all and purge run in chunks of
//!   1,000), stats. A re-drive (`redrive_approved`) is one script that reads the
//!   approved set and moves up to `max` of them: that is the claim, so redrivers in
//!   any number of processes get disjoint ids and none is moved twice.
//! - Scripts work on whole batches (one `HMGET`/`HSET`/`ZADD` per batch, not per
//!   message): Redis time per message is what bounds throughput (`docs/benchmarks.md`).
//! - A `publish` on one server or through Sentinel runs one script over all matching
//!   queues: all or nothing. **On a Cluster** the queues may live in different slots, so
//!   it runs one script per queue, in name order: each queue gets the whole batch or
//!   none of it. If a call fails after others succeeded, the error names the queues that
//!   have the batch and those that may not; publishing the same messages again (same ids)
//!   completes it, because a queue skips ids it already holds. Nothing is half-applied
//!   silently.
//! - Topology changes are several commands, not atomic: `create_queue` writes the options
//!   then adds the name to `P:queues`; `delete_queue` deletes the queue's keys (one script)
//!   then removes it from `P:queues` and from every topic's bindings; `bind` checks the
//!   topic and queue then adds the binding (a concurrent delete can leave a dangling
//!   binding, which publish skips).
//! - Lua scripts do not roll back if Redis fails mid-script (for example out of memory
//!   with `maxmemory`); every check is done before the first write to keep that window
//!   to server faults. Run Redis with `maxmemory-policy noeviction`.
//!
//! ## Durability
//!
//! `send` returns once Redis applied the script, which is as durable as the server's
//! persistence (AOF with `appendfsync everysec` or `always`); nothing here calls `WAIT`.
//! [`RedisDriver::doctor`] (and a warning logged once at connect) reports settings that
//! lose messages silently: an eviction policy other than `noeviction`, no persistence.
//!
//! ## Connection loss
//!
//! The driver reconnects by itself with backoff. While the server is unreachable every
//! call fails within a moment with a transient error (a write cut off mid-way is
//! `Indeterminate`, later calls `Unavailable`) instead of waiting out the reconnection;
//! once the server is back the same driver works again. Leases taken before the loss
//! expire on the server's clock, so in-flight messages are delivered again and nothing
//! the server kept is lost (`tests/restart.rs`).
//!
//! ## Failover (Sentinel)
//!
//! Redis replicates asynchronously: a write the master confirmed may not have reached
//! the replica that Sentinel promotes, and a demoted master that kept accepting writes
//! until it learned of the promotion drops them when it resyncs. Those messages (sends,
//! acks, retries confirmed just before the failover) can be lost or come back; the driver
//! follows the new master within about a second (`tests/sentinel.rs`). Clients that
//! cannot accept this should run the master with `min-replicas-to-write 1` (writes fail
//! instead of being confirmed unreplicated) or use another backend.
//!
//! ## Not done yet
//!
//! Cluster resharding of a live queue's slot: the scripts declare the queue's base and
//! reach its other keys by name inside the slot, so during a slot migration a script can
//! run on a node that holds only some of them (see `docs/redis.md`).
//!
//! A notification channel for long polls (receive polls with a short sleep, 25 ms by
//! default), and TLS with a private CA other than through the system's roots (a
//! self-signed server is reachable with redis-rs's `#insecure` URL fragment only).

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod connection;
mod deployment;
mod doctor;
mod idempotency;
mod list;
mod redrive;
mod reply;
mod single;
mod stored;
mod tx;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use bytes::Bytes;
use ferry_core::time::{duration_millis, from_millis};
use ferry_core::wire::Envelope;
use ferry_core::{
    Binding, DeadLetter, DeadLetterQuery, DeadLetters, Delay, Delivery, Driver, Error, ErrorKind,
    HistoryEvent, Limits, Message, PublishReport, QueueInfo, QueueName, QueueOptions, QueueStats,
    Receipt, ReceiveOptions, Result, Selection, SendReport, SettleAction, Settlement, TopicName,
    Topology, reason, route_matches, validate_pattern, validate_route_key,
};
use redis::{AsyncCommands, Script, Value};

use connection::{Conn, Timeouts};
pub use deployment::{Deployment, redact};
pub use doctor::{Finding, Severity};
pub use idempotency::RedisIdempotencyStore;
pub use list::{Backlog, BridgeStats, ListBridge, ListKeys, SOURCE_HEADER, key_slot};
use reply::{Op, Reader, map_err};
use stored::{netstrings, split_sent};
pub use tx::RedisTxStore;

macro_rules! queue_script {
    ($file:literal, $ttl:expr) => {
        Script::new(
            &concat!(include_str!("lua/common.lua"), include_str!($file))
                .replace("__HIST_TTL__", $ttl),
        )
    };
}

/// The Lua scripts, compiled once per driver.
#[derive(Debug)]
struct Scripts {
    enqueue: Script,
    receive: Script,
    settle: Script,
    dead: Script,
    stats: Script,
    delete_queue: Script,
    pause: Script,
    redrive: Script,
    dead_insert: Script,
}

impl Scripts {
    /// The scripts, with the history retention (`None`: no history) built in.
    fn new(history: Option<Duration>) -> Self {
        let ttl = history.map_or(0, |d| duration_millis(d).max(1)).to_string();
        Scripts {
            enqueue: queue_script!("lua/enqueue.lua", &ttl),
            receive: queue_script!("lua/receive.lua", &ttl),
            settle: queue_script!("lua/settle.lua", &ttl),
            dead: queue_script!("lua/dead.lua", &ttl),
            stats: queue_script!("lua/stats.lua", &ttl),
            delete_queue: queue_script!("lua/delete_queue.lua", &ttl),
            pause: queue_script!("lua/pause.lua", &ttl),
            redrive: queue_script!("lua/redrive.lua", &ttl),
            dead_insert: queue_script!("lua/dead_insert.lua", &ttl),
        }
    }
}

/// How to reach Redis and where to keep ferry's keys.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct RedisConfig {
    /// Where Redis is: a URL [`Deployment::parse`] accepts (`redis://`, `rediss://`,
    /// `redis+sentinel://`, `redis+cluster://`).
    pub url: String,
    /// Prefix of every key (default `ferry`); tests use a unique one per run.
    pub prefix: String,
    /// How long to wait for one reply (default 10 s; redis-rs's own default of 500 ms is
    /// too short for a 10,000-message batch).
    pub response_timeout: Duration,
    /// How long to wait for a connection (default 5 s).
    pub connection_timeout: Duration,
    /// Size limits enforced at send.
    pub limits: Limits,
    /// How often a long-polling receive looks again when nothing is ready (default 25 ms).
    pub poll_interval: Duration,
    /// How long message history is kept after a message's last event (`None` records
    /// none; default 7 days). Drivers sharing a prefix should agree on it.
    pub history: Option<Duration>,
    /// Whether [`RedisDriver::connect_with`] checks the server's settings in the
    /// background and logs each unsafe one once with `tracing::warn!` (default true;
    /// see [`RedisDriver::doctor`]). Connecting neither waits for nor fails on it.
    pub check_settings: bool,
}

impl RedisConfig {
    /// Defaults for `url`.
    pub fn new(url: impl Into<String>) -> Self {
        RedisConfig {
            url: url.into(),
            prefix: "ferry".to_string(),
            response_timeout: Duration::from_secs(10),
            connection_timeout: Duration::from_secs(5),
            limits: Limits::default(),
            poll_interval: Duration::from_millis(25),
            history: Some(Duration::from_secs(7 * 86_400)),
            check_settings: true,
        }
    }

    /// Sets the key prefix.
    pub fn with_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// Sets the size limits.
    pub fn with_limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// Turns the settings check at connect on or off ([`RedisConfig::check_settings`]).
    ///
    /// ```
    /// let config = ferry_redis::RedisConfig::new("redis://127.0.0.1:6379").with_check_settings(false);
    /// assert!(!config.check_settings);
    /// ```
    pub fn with_check_settings(mut self, check: bool) -> Self {
        self.check_settings = check;
        self
    }
}

/// The Redis [`Driver`]. Cheap to clone; clones share the connection.
#[derive(Clone)]
pub struct RedisDriver {
    conn: Conn,
    prefix: Arc<str>,
    limits: Limits,
    poll_interval: Duration,
    /// Random per driver instance, part of every lease token it issues.
    nonce: Arc<str>,
    scripts: Arc<Scripts>,
    idempotency: RedisIdempotencyStore,
}

impl std::fmt::Debug for RedisDriver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisDriver")
            .field("prefix", &self.prefix)
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

/// Dead letters requeued or deleted per script call by the `Selection::All` operations.
const DEAD_CHUNK: usize = 1_000;

/// Most deliveries one receive call leases (a larger `max` is capped to this).
const MAX_RECEIVE: usize = 10_000;

const OK: i64 = 1;
const NO_QUEUE: i64 = -1;
const STALE: i64 = -2;
const MORE: i64 = 2;

fn ceil_millis(d: Duration) -> i64 {
    i64::try_from(d.as_nanos().div_ceil(1_000_000)).unwrap_or(i64::MAX)
}

/// Milliseconds from now until `t`, rounded up; 0 for the past.
fn millis_until(t: SystemTime) -> i64 {
    t.duration_since(SystemTime::now())
        .map(ceil_millis)
        .unwrap_or(0)
}

fn delay_arg(m: &Message) -> i64 {
    match m.delay() {
        None => -1,
        Some(Delay::After(d)) => ceil_millis(d.min(ferry_core::MAX_DELAY)),
        Some(Delay::At(t)) => millis_until(t).min(duration_millis(ferry_core::MAX_DELAY)),
    }
}

fn opt_u32(map: &BTreeMap<String, String>, field: &str, queue: &QueueName) -> Result<u64> {
    map.get(field).and_then(|v| v.parse().ok()).ok_or_else(|| {
        Error::new(
            ErrorKind::Corrupt,
            format!("queue '{queue}' has no valid '{field}' option in redis"),
        )
    })
}

impl RedisDriver {
    /// Connects to `url` with default settings.
    pub async fn connect(url: &str) -> Result<Self> {
        Self::connect_with(RedisConfig::new(url)).await
    }

    /// Connects with `config`. The connection reconnects by itself with backoff; while
    /// the server is unreachable calls fail within a moment with a transient error
    /// (`Unavailable`, or `Indeterminate` for a write cut off mid-way). Unless
    /// [`RedisConfig::check_settings`] is off, the server's settings are then checked in
    /// the background and each unsafe one is logged once ([`RedisDriver::doctor`]).
    pub async fn connect_with(config: RedisConfig) -> Result<Self> {
        let deployment = Deployment::parse(&config.url)?;
        let timeouts = Timeouts {
            response: config.response_timeout,
            connect: config.connection_timeout,
        };
        let conn = Conn::open(&deployment, timeouts).await?;
        let prefix: Arc<str> = Arc::from(config.prefix.as_str());
        let driver = RedisDriver {
            idempotency: RedisIdempotencyStore::new(conn.clone(), &config.prefix),
            conn,
            prefix,
            limits: config.limits,
            poll_interval: config.poll_interval,
            nonce: Arc::from(format!("{:016x}", fastrand::u64(..)).as_str()),
            scripts: Arc::new(Scripts::new(config.history)),
        };
        if config.check_settings {
            driver.warn_about_settings();
        }
        Ok(driver)
    }

    /// The hash-tagged base of every key of `queue`: `{prefix:queue}`.
    fn base(&self, queue: &QueueName) -> String {
        format!("{{{}:{}}}", self.prefix, queue)
    }

    fn queues_key(&self) -> String {
        format!("{}:queues", self.prefix)
    }

    fn topics_key(&self) -> String {
        format!("{}:topics", self.prefix)
    }

    fn bindings_key(&self, topic: &TopicName) -> String {
        format!("{{{}:t:{}}}:bindings", self.prefix, topic)
    }

    fn conn(&self) -> Conn {
        self.conn.clone()
    }

    /// The two-phase store of prepared messages (`ferry_core::tx`) on this Redis,
    /// named `default`.
    pub fn tx_store(&self) -> RedisTxStore {
        self.tx_store_named("default")
            .unwrap_or_else(|_| unreachable!("'default' is a valid store name"))
    }

    /// A separately named two-phase store (its own keys and checkers), for
    /// applications that keep their transactions apart. `InvalidInput` unless `name`
    /// is letters, digits, `-`, `_` or `.`.
    pub fn tx_store_named(&self, name: &str) -> Result<RedisTxStore> {
        RedisTxStore::new(self.conn.clone(), &self.prefix, name)
    }

    async fn topic_exists(&self, topic: &TopicName) -> Result<bool> {
        self.conn()
            .sismember(self.topics_key(), topic.as_str())
            .await
            .map_err(|e| map_err(e, Op::Read, "read topics"))
    }

    async fn queue_exists(&self, queue: &QueueName) -> Result<bool> {
        self.conn()
            .exists(format!("{}:opts", self.base(queue)))
            .await
            .map_err(|e| map_err(e, Op::Read, "read queue options"))
    }

    /// Runs the enqueue script over `queues`; returns per queue `None` if it is missing,
    /// else (enqueued, duplicate ids).
    async fn enqueue(
        &self,
        queues: &[QueueName],
        batch: &[Message],
        route_key: Option<&str>,
    ) -> Result<Vec<Option<(u64, Vec<String>)>>> {
        let now = ferry_core::time::now_millis();
        let mut inv = self.scripts.enqueue.prepare_invoke();
        for q in queues {
            inv.key(self.base(q));
        }
        inv.arg(if route_key.is_some() { "1" } else { "0" })
            .arg(route_key.unwrap_or(""));
        for m in batch {
            let mut env = Envelope::new(m.id(), m.payload().clone());
            env.headers = m.headers().clone();
            env.route_key = route_key.map(str::to_string);
            env.priority = m.priority();
            env.enqueued_at = now;
            inv.arg(m.id())
                .arg(env.encode()?)
                .arg(m.priority())
                .arg(delay_arg(m));
        }
        let v: Value = inv
            .invoke_async(&mut self.conn())
            .await
            .map_err(|e| map_err(e, Op::Write, "enqueue"))?;
        let mut r = Reader::new(v)?;
        if r.int()? != OK {
            return Err(Error::internal("redis: enqueue script failed"));
        }
        let mut out = Vec::with_capacity(queues.len());
        for _ in queues {
            let n = r.int()?;
            let ndups = r.int()?;
            let mut dups = Vec::new();
            for _ in 0..ndups {
                dups.push(r.string()?);
            }
            out.push(u64::try_from(n).ok().map(|n| (n, dups)));
        }
        Ok(out)
    }

    /// Publish on a Cluster: the queues may live in different slots, so one script per
    /// queue (each atomic). If one fails after others succeeded, the error names the
    /// queues that have the batch and those that do not; publishing the same batch again
    /// (same message ids) completes it, because a queue skips ids it already holds.
    async fn enqueue_each(
        &self,
        targets: &[QueueName],
        batch: &[Message],
        route_key: &str,
    ) -> Result<Vec<Option<(u64, Vec<String>)>>> {
        let mut out = Vec::with_capacity(targets.len());
        for (i, q) in targets.iter().enumerate() {
            match self
                .enqueue(std::slice::from_ref(q), batch, Some(route_key))
                .await
            {
                Ok(mut r) => out.push(r.pop().flatten()),
                Err(e) if i == 0 => return Err(e),
                Err(e) => {
                    let list = |qs: &[QueueName]| {
                        qs.iter()
                            .map(QueueName::as_str)
                            .collect::<Vec<_>>()
                            .join(", ")
                    };
                    return Err(Error::new(
                        e.kind(),
                        format!(
                            "publish applied to queues [{}]; not applied, or unknown, for [{}] (a Cluster publish is atomic per queue): {e}; publish the same messages again to complete it (queues skip ids they hold)",
                            list(&targets[..i]),
                            list(&targets[i..])
                        ),
                    )
                    .with_source(e));
                }
            }
        }
        Ok(out)
    }

    /// One receive attempt: the deliveries, and when the next message or lease is due
    /// (server ms) if nothing was ready.
    async fn try_receive(
        &self,
        queue: &QueueName,
        max: usize,
        lease: Option<Duration>,
    ) -> Result<(Vec<Delivery>, Option<i64>)> {
        let lease_ms = lease.map_or(-1, duration_millis);
        let v: Value = self
            .scripts
            .receive
            .key(self.base(queue))
            .arg(max.min(MAX_RECEIVE))
            .arg(lease_ms)
            .arg(&*self.nonce)
            .invoke_async(&mut self.conn())
            .await
            .map_err(|e| map_err(e, Op::Write, "receive"))?;
        let mut r = Reader::new(v)?;
        if r.int()? == NO_QUEUE {
            return Err(Error::queue_not_found(queue.as_str()));
        }
        let next_due = Some(r.int()?).filter(|n| *n >= 0);
        let mut out = Vec::new();
        let mut undecodable = Vec::new();
        while r.has_more() {
            let id = r.string()?;
            let env = r.bytes()?;
            let attempt = u32::try_from(r.int()?).unwrap_or(u32::MAX);
            let token = r.string()?;
            let until = from_millis(r.int()?);
            let receipt = Receipt::new(queue.clone(), id.clone(), token);
            match Envelope::decode(split_sent(&env).1) {
                Ok(e) => out.push(Delivery {
                    id,
                    queue: queue.clone(),
                    payload: e.payload,
                    headers: e.headers,
                    route_key: e.route_key,
                    priority: e.priority,
                    enqueued_at: from_millis(e.enqueued_at),
                    attempt,
                    lease_until: until,
                    receipt,
                }),
                Err(e) => undecodable.push(Settlement {
                    receipt,
                    action: SettleAction::DeadLetter {
                        reason: reason::DECODE_ERROR.to_string(),
                        error: Some(e.to_string()),
                    },
                }),
            }
        }
        if !undecodable.is_empty() {
            // The stored bytes stay in the dead letter; a failure here leaves the lease to
            // expire and the message to be tried again, so nothing is lost.
            let _ = self.settle(undecodable).await;
        }
        Ok((out, next_due))
    }

    /// Appends one settlement's six script arguments: id, token, action, a1, a2, a3.
    fn settle_args(inv: &mut redis::ScriptInvocation<'_>, s: &Settlement) {
        inv.arg(s.receipt.message_id()).arg(s.receipt.token());
        match &s.action {
            SettleAction::Ack => {
                inv.arg("ack").arg("").arg("").arg("");
            }
            SettleAction::Release => {
                inv.arg("release").arg("").arg("").arg("");
            }
            SettleAction::Retry { not_before, error } => {
                inv.arg("retry")
                    .arg(millis_until(*not_before).min(duration_millis(ferry_core::MAX_DELAY)))
                    .arg(if error.is_some() { "1" } else { "0" })
                    .arg(error.as_deref().unwrap_or(""));
            }
            SettleAction::DeadLetter { reason, error } => {
                inv.arg("dead")
                    .arg(reason.as_str())
                    .arg(if error.is_some() { "1" } else { "0" })
                    .arg(error.as_deref().unwrap_or(""));
            }
        }
    }

    /// Settles the settlements of one queue in one script call (one slot, one round
    /// trip, each settlement atomic and fenced on its own); results in batch order.
    async fn settle_queue(
        &self,
        queue: &QueueName,
        batch: &[&Settlement],
    ) -> Result<Vec<Result<()>>> {
        let mut inv = self.scripts.settle.prepare_invoke();
        inv.key(self.base(queue));
        for s in batch {
            Self::settle_args(&mut inv, s);
        }
        let v: Value = inv
            .invoke_async(&mut self.conn())
            .await
            .map_err(|e| map_err(e, Op::Write, "settle"))?;
        let mut r = Reader::new(v)?;
        if r.int()? == NO_QUEUE {
            return Ok(batch
                .iter()
                .map(|_| Err(Error::queue_not_found(queue.as_str())))
                .collect());
        }
        let mut out = Vec::with_capacity(batch.len());
        for s in batch {
            let code = r.int()?;
            let _value = r.int()?;
            out.push(match code {
                OK => Ok(()),
                STALE => Err(Error::stale_receipt(queue.as_str(), s.receipt.message_id())),
                _ => Err(Error::internal("redis: unexpected settle reply")),
            });
        }
        Ok(out)
    }

    async fn dead_op(&self, queue: &QueueName, args: Vec<String>) -> Result<Reader> {
        let mut inv = self.scripts.dead.key(self.base(queue));
        for a in args {
            inv.arg(a);
        }
        let v: Value = inv
            .invoke_async(&mut self.conn())
            .await
            .map_err(|e| map_err(e, Op::Write, "run a dead-letter operation"))?;
        let mut r = Reader::new(v)?;
        if r.int()? == NO_QUEUE {
            return Err(Error::queue_not_found(queue.as_str()));
        }
        Ok(r)
    }

    fn read_dead(queue: &QueueName, r: &mut Reader) -> Result<DeadLetter> {
        let id = r.string()?;
        let env = r.bytes()?;
        let priority = u8::try_from(r.int()?).unwrap_or(0);
        let attempts = u32::try_from(r.int()?).unwrap_or(u32::MAX);
        let why = r.string()?;
        let has_err = r.string()? == "1";
        let err = r.string()?;
        let ff = r.int()?;
        let dead_at = r.int()?;
        let (payload, headers, route_key, enqueued_at) = match Envelope::decode(&env) {
            Ok(e) => (
                e.payload,
                e.headers,
                e.route_key,
                from_millis(e.enqueued_at),
            ),
            // Undecodable envelopes keep their original bytes as the payload.
            Err(_) => (
                Bytes::from(env),
                BTreeMap::new(),
                None,
                from_millis(dead_at),
            ),
        };
        Ok(DeadLetter {
            id,
            queue: queue.clone(),
            payload,
            headers,
            route_key,
            priority,
            enqueued_at,
            attempts,
            reason: why,
            last_error: has_err.then_some(err),
            first_failed_at: Some(from_millis(ff)),
            dead_at: from_millis(dead_at),
        })
    }

    async fn stats_one(&self, queue: &QueueName) -> Result<Option<QueueStats>> {
        let v: Value = self
            .scripts
            .stats
            .key(self.base(queue))
            .invoke_async(&mut self.conn())
            .await
            .map_err(|e| map_err(e, Op::Read, "read stats"))?;
        let mut r = Reader::new(v)?;
        if r.int()? == NO_QUEUE {
            return Ok(None);
        }
        let mut n = || r.int().map(|n| u64::try_from(n).unwrap_or(0));
        let (ready, delayed, in_flight, dead) = (n()?, n()?, n()?, n()?);
        let oldest = Some(r.int()?).filter(|ms| *ms >= 0).map(from_millis);
        Ok(Some(
            QueueStats::new(queue.as_str(), ready, delayed, in_flight, dead)
                .with_oldest_ready_at(oldest),
        ))
    }

    async fn queue_names(&self) -> Result<Vec<QueueName>> {
        let names: Vec<String> = self
            .conn()
            .smembers(self.queues_key())
            .await
            .map_err(|e| map_err(e, Op::Read, "list queues"))?;
        let mut out: Vec<QueueName> = names
            .into_iter()
            .filter_map(|n| QueueName::new(n).ok())
            .collect();
        out.sort();
        Ok(out)
    }
}

#[async_trait]
impl Topology for RedisDriver {
    async fn create_queue(&self, queue: &QueueName, options: QueueOptions) -> Result<()> {
        options.validate()?;
        let mut c = self.conn();
        let () = c
            .hset_multiple(
                format!("{}:opts", self.base(queue)),
                &[
                    ("delay_ms", duration_millis(options.default_delay)),
                    ("max_attempts", i64::from(options.max_attempts)),
                    ("lease_ms", duration_millis(options.lease)),
                ],
            )
            .await
            .map_err(|e| map_err(e, Op::Write, "create the queue"))?;
        let _: i64 = c
            .sadd(self.queues_key(), queue.as_str())
            .await
            .map_err(|e| map_err(e, Op::Write, "create the queue"))?;
        Ok(())
    }

    async fn get_queue(&self, queue: &QueueName) -> Result<QueueInfo> {
        let map: BTreeMap<String, String> = self
            .conn()
            .hgetall(format!("{}:opts", self.base(queue)))
            .await
            .map_err(|e| map_err(e, Op::Read, "read queue options"))?;
        if map.is_empty() {
            return Err(Error::queue_not_found(queue.as_str()));
        }
        let options = QueueOptions::default()
            .with_default_delay(Duration::from_millis(opt_u32(&map, "delay_ms", queue)?))
            .with_max_attempts(
                u32::try_from(opt_u32(&map, "max_attempts", queue)?).unwrap_or(u32::MAX),
            )
            .with_lease(Duration::from_millis(opt_u32(&map, "lease_ms", queue)?));
        let paused = map.get("paused").is_some_and(|v| v == "1");
        Ok(QueueInfo::new(queue.clone(), options).with_paused(paused))
    }

    async fn list_queues(&self) -> Result<Vec<QueueInfo>> {
        let mut out = Vec::new();
        for q in self.queue_names().await? {
            match self.get_queue(&q).await {
                Ok(info) => out.push(info),
                Err(e) if e.kind() == ErrorKind::QueueNotFound => {}
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }

    async fn set_paused(&self, queue: &QueueName, paused: bool) -> Result<()> {
        let v: Value = self
            .scripts
            .pause
            .key(self.base(queue))
            .arg(if paused { "1" } else { "0" })
            .invoke_async(&mut self.conn())
            .await
            .map_err(|e| map_err(e, Op::Write, "pause or resume the queue"))?;
        match Reader::new(v)?.int()? {
            OK => Ok(()),
            _ => Err(Error::queue_not_found(queue.as_str())),
        }
    }

    async fn delete_queue(&self, queue: &QueueName) -> Result<()> {
        // In steps (dead letters first, DEAD_CHUNK per call); the queue exists until the
        // last step removes its options.
        let found = loop {
            let v: Value = self
                .scripts
                .delete_queue
                .key(self.base(queue))
                .arg(DEAD_CHUNK)
                .invoke_async(&mut self.conn())
                .await
                .map_err(|e| map_err(e, Op::Write, "delete the queue"))?;
            match Reader::new(v)?.int()? {
                MORE => continue,
                code => break code == OK,
            }
        };
        let mut c = self.conn();
        let _: i64 = c
            .srem(self.queues_key(), queue.as_str())
            .await
            .map_err(|e| map_err(e, Op::Write, "delete the queue"))?;
        let topics: Vec<String> = c
            .smembers(self.topics_key())
            .await
            .map_err(|e| map_err(e, Op::Read, "list topics"))?;
        let prefix = format!("{queue} ");
        for t in topics.into_iter().filter_map(|t| TopicName::new(t).ok()) {
            let key = self.bindings_key(&t);
            let members: Vec<String> = c
                .smembers(&key)
                .await
                .map_err(|e| map_err(e, Op::Read, "list bindings"))?;
            let gone: Vec<&String> = members.iter().filter(|m| m.starts_with(&prefix)).collect();
            if !gone.is_empty() {
                let _: i64 = c
                    .srem(&key, gone)
                    .await
                    .map_err(|e| map_err(e, Op::Write, "remove bindings"))?;
            }
        }
        if found {
            Ok(())
        } else {
            Err(Error::queue_not_found(queue.as_str()))
        }
    }

    async fn create_topic(&self, topic: &TopicName) -> Result<()> {
        let _: i64 = self
            .conn()
            .sadd(self.topics_key(), topic.as_str())
            .await
            .map_err(|e| map_err(e, Op::Write, "create the topic"))?;
        Ok(())
    }

    async fn list_topics(&self) -> Result<Vec<TopicName>> {
        let names: Vec<String> = self
            .conn()
            .smembers(self.topics_key())
            .await
            .map_err(|e| map_err(e, Op::Read, "list topics"))?;
        let mut out: Vec<TopicName> = names
            .into_iter()
            .filter_map(|n| TopicName::new(n).ok())
            .collect();
        out.sort();
        Ok(out)
    }

    async fn delete_topic(&self, topic: &TopicName) -> Result<()> {
        let mut c = self.conn();
        let removed: i64 = c
            .srem(self.topics_key(), topic.as_str())
            .await
            .map_err(|e| map_err(e, Op::Write, "delete the topic"))?;
        let _: i64 = c
            .del(self.bindings_key(topic))
            .await
            .map_err(|e| map_err(e, Op::Write, "delete the topic"))?;
        if removed == 0 {
            return Err(Error::topic_not_found(topic.as_str()));
        }
        Ok(())
    }

    async fn bind(&self, topic: &TopicName, queue: &QueueName, pattern: &str) -> Result<()> {
        validate_pattern(pattern)?;
        if !self.topic_exists(topic).await? {
            return Err(Error::topic_not_found(topic.as_str()));
        }
        if !self.queue_exists(queue).await? {
            return Err(Error::queue_not_found(queue.as_str()));
        }
        let _: i64 = self
            .conn()
            .sadd(self.bindings_key(topic), format!("{queue} {pattern}"))
            .await
            .map_err(|e| map_err(e, Op::Write, "bind"))?;
        Ok(())
    }

    async fn unbind(&self, topic: &TopicName, queue: &QueueName, pattern: &str) -> Result<()> {
        if !self.topic_exists(topic).await? {
            return Err(Error::topic_not_found(topic.as_str()));
        }
        let removed: i64 = self
            .conn()
            .srem(self.bindings_key(topic), format!("{queue} {pattern}"))
            .await
            .map_err(|e| map_err(e, Op::Write, "unbind"))?;
        if removed == 0 {
            return Err(Error::invalid_input(format!(
                "topic '{topic}' has no binding to queue '{queue}' with pattern '{pattern}'"
            )));
        }
        Ok(())
    }

    async fn list_bindings(&self, topic: &TopicName) -> Result<Vec<Binding>> {
        if !self.topic_exists(topic).await? {
            return Err(Error::topic_not_found(topic.as_str()));
        }
        let members: Vec<String> = self
            .conn()
            .smembers(self.bindings_key(topic))
            .await
            .map_err(|e| map_err(e, Op::Read, "list bindings"))?;
        let mut out: Vec<Binding> = members
            .iter()
            .filter_map(|m| {
                let (q, p) = m.split_once(' ')?;
                Some(Binding::new(topic.clone(), QueueName::new(q).ok()?, p))
            })
            .collect();
        out.sort();
        Ok(out)
    }
}

#[async_trait]
impl DeadLetters for RedisDriver {
    async fn list_dead_letters(
        &self,
        queue: &QueueName,
        query: DeadLetterQuery,
    ) -> Result<Vec<DeadLetter>> {
        let mut r = self
            .dead_op(
                queue,
                vec![
                    "list".into(),
                    // Far beyond any real count, and exact in Lua's doubles.
                    query.offset.min(1 << 50).to_string(),
                    query.limit.min(1 << 50).to_string(),
                    if query.reason.is_some() { "1" } else { "0" }.into(),
                    query.reason.unwrap_or_default(),
                    match query.approved {
                        None => "",
                        Some(true) => "1",
                        Some(false) => "0",
                    }
                    .into(),
                ],
            )
            .await?;
        let mut out = Vec::new();
        while r.has_more() {
            out.push(Self::read_dead(queue, &mut r)?);
        }
        Ok(out)
    }

    async fn get_dead_letter(&self, queue: &QueueName, id: &str) -> Result<DeadLetter> {
        let mut r = self
            .dead_op(queue, vec!["get".into(), id.to_string()])
            .await?;
        if !r.has_more() {
            return Err(Error::new(
                ErrorKind::MessageNotFound,
                format!("no dead letter '{id}' in queue '{queue}'"),
            ));
        }
        Self::read_dead(queue, &mut r)
    }

    async fn requeue_dead_letters(&self, queue: &QueueName, selection: Selection) -> Result<u64> {
        match selection {
            Selection::Ids(ids) => {
                let mut args = vec!["requeue_ids".to_string()];
                args.extend(ids);
                let mut r = self.dead_op(queue, args).await?;
                Ok(u64::try_from(r.int()?).unwrap_or(0))
            }
            Selection::All => {
                // Chunks of DEAD_CHUNK, newest first, each chunk one script.
                let (mut total, mut cursor) = (0u64, -1i64);
                loop {
                    let args = vec![
                        "requeue_all".to_string(),
                        cursor.to_string(),
                        DEAD_CHUNK.to_string(),
                    ];
                    let mut r = self.dead_op(queue, args).await?;
                    total += u64::try_from(r.int()?).unwrap_or(0);
                    cursor = r.int()?;
                    if cursor < 0 {
                        return Ok(total);
                    }
                }
            }
        }
    }

    async fn delete_dead_letters(&self, queue: &QueueName, selection: Selection) -> Result<u64> {
        match selection {
            Selection::Ids(ids) => {
                let mut args = vec!["delete_ids".to_string()];
                args.extend(ids);
                let mut r = self.dead_op(queue, args).await?;
                Ok(u64::try_from(r.int()?).unwrap_or(0))
            }
            Selection::All => {
                // Up to the newest dead letter at the start (later ones stay).
                let (mut total, mut hi) = (0u64, -1i64);
                loop {
                    let args = vec![
                        "delete_all".to_string(),
                        DEAD_CHUNK.to_string(),
                        hi.to_string(),
                    ];
                    let mut r = self.dead_op(queue, args).await?;
                    total += u64::try_from(r.int()?).unwrap_or(0);
                    hi = r.int()?;
                    if hi < 0 {
                        return Ok(total);
                    }
                }
            }
        }
    }

    async fn insert_dead_letters(
        &self,
        queue: &QueueName,
        letters: Vec<DeadLetter>,
    ) -> Result<u64> {
        self.limits.validate_dead_letters(&letters)?;
        self.insert_dead(queue, &letters).await
    }

    async fn approve_dead_letters(&self, queue: &QueueName, selection: Selection) -> Result<u64> {
        self.approve_dead(queue, selection).await
    }

    async fn redrive_approved(&self, queue: &QueueName, max: u64) -> Result<Vec<String>> {
        self.redrive_dead(queue, max).await
    }
}

#[async_trait]
impl Driver for RedisDriver {
    fn limits(&self) -> Limits {
        self.limits
    }

    fn idempotency_store(&self) -> Option<Arc<dyn ferry_core::IdempotencyStore>> {
        Some(Arc::new(self.idempotency.clone()))
    }

    fn tx_store(&self) -> Option<Arc<dyn ferry_core::tx::TxStore>> {
        Some(Arc::new(RedisDriver::tx_store(self)))
    }

    async fn send(&self, queue: &QueueName, batch: Vec<Message>) -> Result<SendReport> {
        self.limits.validate_batch(&batch)?;
        let mut res = self
            .enqueue(std::slice::from_ref(queue), &batch, None)
            .await?;
        match res.pop().flatten() {
            Some((enqueued, duplicates)) => {
                let mut report = SendReport::default();
                report.enqueued = enqueued;
                report.duplicates = duplicates;
                Ok(report)
            }
            None => Err(Error::queue_not_found(queue.as_str())),
        }
    }

    async fn publish(
        &self,
        topic: &TopicName,
        route_key: &str,
        batch: Vec<Message>,
    ) -> Result<PublishReport> {
        validate_route_key(route_key)?;
        self.limits.validate_batch(&batch)?;
        if !self.topic_exists(topic).await? {
            return Err(Error::topic_not_found(topic.as_str()));
        }
        let unroutable = || Error::unroutable(topic.as_str(), route_key);
        let members: Vec<String> = self
            .conn()
            .smembers(self.bindings_key(topic))
            .await
            .map_err(|e| map_err(e, Op::Read, "list bindings"))?;
        let targets: BTreeSet<QueueName> = members
            .iter()
            .filter_map(|m| m.split_once(' '))
            .filter(|(_, p)| route_matches(p, route_key))
            .filter_map(|(q, _)| QueueName::new(q).ok())
            .collect();
        if targets.is_empty() {
            return Err(unroutable());
        }
        let targets: Vec<QueueName> = targets.into_iter().collect();
        let res = if self.conn.is_cluster() {
            self.enqueue_each(&targets, &batch, route_key).await?
        } else {
            self.enqueue(&targets, &batch, Some(route_key)).await?
        };
        let mut report = PublishReport::default();
        for (q, r) in targets.into_iter().zip(res) {
            // A binding left behind by a concurrent queue delete is skipped.
            if let Some((n, dups)) = r {
                report.enqueued += n;
                report.duplicates += dups.len() as u64;
                report.queues.push(q);
            }
        }
        if report.queues.is_empty() {
            return Err(unroutable());
        }
        Ok(report)
    }

    async fn receive(&self, queue: &QueueName, options: ReceiveOptions) -> Result<Vec<Delivery>> {
        options.validate()?;
        let deadline = tokio::time::Instant::now() + options.wait;
        loop {
            let (got, _next_due) = self.try_receive(queue, options.max, options.lease).await?;
            let now = tokio::time::Instant::now();
            if !got.is_empty() || now >= deadline {
                return Ok(got);
            }
            tokio::time::sleep(self.poll_interval.min(deadline - now)).await;
        }
    }

    async fn settle(&self, batch: Vec<Settlement>) -> Result<Vec<Result<()>>> {
        // One script call per queue (a queue is one slot). With several queues, a failed
        // call fails its own settlements only.
        let mut groups: BTreeMap<&QueueName, Vec<usize>> = BTreeMap::new();
        for (i, s) in batch.iter().enumerate() {
            groups.entry(s.receipt.queue()).or_default().push(i);
        }
        let single = groups.len() == 1;
        let mut results: Vec<Option<Result<()>>> = batch.iter().map(|_| None).collect();
        for (queue, idx) in groups {
            let part: Vec<&Settlement> = idx.iter().map(|&i| &batch[i]).collect();
            match self.settle_queue(queue, &part).await {
                Ok(rs) => {
                    for (i, r) in idx.into_iter().zip(rs) {
                        results[i] = Some(r);
                    }
                }
                Err(e) if single => return Err(e),
                Err(e) => {
                    for i in idx {
                        results[i] = Some(Err(Error::new(e.kind(), e.to_string())));
                    }
                }
            }
        }
        Ok(results
            .into_iter()
            .map(|r| r.unwrap_or_else(|| Err(Error::internal("redis: settle got no reply"))))
            .collect())
    }

    async fn extend(&self, receipt: &Receipt, lease: Duration) -> Result<SystemTime> {
        let lease = lease.min(ferry_core::MAX_LEASE);
        let v: Value = self
            .scripts
            .settle
            .key(self.base(receipt.queue()))
            .arg(receipt.message_id())
            .arg(receipt.token())
            .arg("extend")
            .arg(duration_millis(lease))
            .arg("")
            .arg("")
            .invoke_async(&mut self.conn())
            .await
            .map_err(|e| map_err(e, Op::Write, "extend the lease"))?;
        let mut r = Reader::new(v)?;
        if r.int()? == NO_QUEUE {
            return Err(Error::queue_not_found(receipt.queue().as_str()));
        }
        match r.int()? {
            OK => Ok(from_millis(r.int()?)),
            _ => Err(Error::stale_receipt(
                receipt.queue().as_str(),
                receipt.message_id(),
            )),
        }
    }

    async fn stats(&self, queue: Option<&QueueName>) -> Result<Vec<QueueStats>> {
        match queue {
            Some(q) => match self.stats_one(q).await? {
                Some(s) => Ok(vec![s]),
                None => Err(Error::queue_not_found(q.as_str())),
            },
            None => {
                let mut out = Vec::new();
                for q in self.queue_names().await? {
                    if let Some(s) = self.stats_one(&q).await? {
                        out.push(s);
                    }
                }
                Ok(out)
            }
        }
    }

    async fn history(&self, queue: &QueueName, id: &str) -> Result<Vec<HistoryEvent>> {
        if !self.queue_exists(queue).await? {
            return Err(Error::queue_not_found(queue.as_str()));
        }
        // The history so far, then the events of the current delivered life that wait in
        // the message's state record (its sixth field), read in one round trip.
        let base = self.base(queue);
        // A message not delivered yet has its `sent` event in front of its envelope.
        type Raw = Option<Vec<u8>>;
        let (ended, state, stored): (Raw, Raw, Raw) = redis::pipe()
            .hget(format!("{base}:hist"), id)
            .hget(format!("{base}:st"), id)
            .hget(format!("{base}:msg"), id)
            .query_async(&mut self.conn())
            .await
            .map_err(|e| map_err(e, Op::Read, "read history"))?;
        let mut raw = ended.unwrap_or_default();
        if let Some(state) = state {
            let mut fields = state.splitn(6, |&c| c == b'|');
            if let Some(pending) = fields.nth(5) {
                raw.extend_from_slice(pending);
            }
        } else if let Some(stored) = stored {
            raw.extend_from_slice(split_sent(&stored).0);
        }
        let mut out = Vec::new();
        for line in netstrings(&raw) {
            let line = String::from_utf8_lossy(line);
            let mut parts = line.splitn(4, '|');
            let (Some(at), Some(event), Some(attempt), Some(detail)) =
                (parts.next(), parts.next(), parts.next(), parts.next())
            else {
                continue;
            };
            let detail = detail.strip_prefix('+').map(str::to_string);
            out.push(HistoryEvent::new(
                from_millis(at.parse().unwrap_or(0)),
                event,
                attempt.parse().unwrap_or(0),
                detail,
            ));
        }
        Ok(out)
    }
}
