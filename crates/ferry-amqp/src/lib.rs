//! ferry's RabbitMQ backend (`amqp://`, `amqps://`), on [lapin]. **First working cut.**
//!
//! # Layout on the broker
//!
//! For a ferry queue `N`:
//!
//! - `ferry.q.N`: the queue itself, durable (classic with `x-max-priority` 9 by
//!   default; `?queue_type=quorum` in the URL declares quorum queues instead, which
//!   have no priorities before RabbitMQ 4.0). Every message is published persistent
//!   (`delivery_mode` 2) with the mandatory flag, and every send waits for the
//!   publisher confirm: a returned (unroutable) message is an error.
//! - `ferry.dlq.N`: the dead letters, a durable queue ferry publishes to itself (with
//!   confirms, then acks the original) instead of relying on RabbitMQ's unconfirmed
//!   dead-lettering. Listing, getting, requeueing and deleting browse it on a private
//!   channel (`basic.get` everything, act on the chosen ones, let the channel's close
//!   return the rest in their order), so it works while consumers run. It is a
//!   classic queue even in quorum mode: a classic queue puts the kept ones back, in
//!   order, before the channel close completes; a quorum queue does so asynchronously.
//! - Delays: `DELAY_LEVELS` TTL queues `ferry.d.N.k` (TTL 2^k s) with one topic
//!   exchange each (`ferry.d.N.k`) plus `ferry.d.N` (which routes into `ferry.q.N`).
//!   A delayed message is published to the top level's exchange with a route key of
//!   `DELAY_LEVELS` words `0`/`1`, the bits of its delay in seconds (rounded up); the
//!   exchange of level k routes it into the level-k queue when bit k is set and on to
//!   level k-1 otherwise, and each level queue dead-letters expired messages into the
//!   next level down. A message thus hops through the levels that make up its delay;
//!   every level queue holds one TTL only, so nothing blocks behind a longer delay, and
//!   no queue per delay value exists. Delays have one-second resolution (sub-second
//!   delays become one second: never early). Note the hop itself is RabbitMQ's
//!   dead-lettering of classic queues, which is not confirmed internally.
//! - `ferry.o.N`: the queue's options record, one persistent message (a classic queue
//!   with `x-max-length` 1 and `drop-head`, so publishing new options replaces the old
//!   ones); read with `basic.get` on a private channel whose close puts it back.
//! - `ferry.h.N`: the queue's message history, one small persistent message per
//!   lifecycle event (sent, delivered, retried, released, lease_expired,
//!   dead_lettered, requeued, acked) with the message id as `message_id`, kept for
//!   [`HISTORY_RETENTION`] by a queue TTL; `history` browses it like the dead letters.
//!   Recording is confirmed but best effort: a failure is logged, not returned.
//! - Topics: durable topic exchanges `ferry.t.T`; a binding is a queue binding of
//!   `ferry.q.N` with the pattern as binding key, so routing is RabbitMQ's own.
//!
//! Message fields: id = AMQP `message_id`, priority = AMQP `priority`, headers = AMQP
//! headers (ferry's own ones start with `x-ferry-`: attempts so far, enqueued-at, the
//! route key, last error, first failure, and on dead letters the reason and time).
//!
//! # Leases and receipts
//!
//! A delivery is a `basic.get` without auto-ack, so a lease is an unacked delivery on
//! the driver's channel. The receipt token is `<channel generation>.<delivery tag>`;
//! the driver keeps its leases in memory, and a receipt whose lease is gone (settled,
//! expired, or from a channel generation that died) is stale. An expired lease is
//! swept on the next receive/settle/extend/stats call: the message is republished with
//! its attempt counted (or dead-lettered with reason `lease_expired` on the last
//! attempt) and then the original is acked. If the process dies (or its connection
//! does), RabbitMQ returns its unacked deliveries with the `redelivered` flag; since
//! ferry never requeues with `basic.nack`, the receiver that gets such a message counts
//! the lost delivery as an attempt (republishes it with the count raised, or
//! dead-letters it with reason `lease_expired` when that was the last attempt).
//!
//! # Not done yet (this is the first cut)
//!
//! - Queue options are durable (see `ferry.o.N` above) but cached per driver after the
//!   first read, so an update by another process is seen by a driver that already read
//!   them only after it is restarted. The lists of queues and topics and the
//!   bindings (`list_queues`, `list_topics`, `list_bindings`, `stats(None)` and the
//!   queues a publish reports) are known per driver instance only, since without the
//!   management plugin AMQP cannot enumerate them; a topic or queue made by another
//!   driver is found by a passive declare when named. Routing itself is RabbitMQ's, so
//!   every bound queue gets its copy. The next step is a durable index record.
//! - No duplicate-id detection (RabbitMQ has no index by message id), so sending an id
//!   that is queued enqueues it again and requeueing a dead letter whose id is live is
//!   not refused.
//! - A batch is validated as a whole before anything is published, but a broker
//!   failure in the middle of a batch can leave part of it enqueued (confirms and AMQP
//!   transactions do not mix).
//! - `in_flight` in stats counts this driver's own leases only.
//! - `history` browses the whole history queue of the message's queue (fine for a
//!   first cut and for operators, not for a hot path).
//! - A crashed holder's delivery is counted when the message is next received, so it
//!   goes to the tail of the queue then.
//! - `receive` polls with `basic.get` (every 50 ms while it long-polls) rather than
//!   holding a consumer with a prefetch window.
//! - Leases are swept lazily (on the next receive/settle/extend/stats of this driver),
//!   not by a background task.
//!
//! # Connection
//!
//! One connection (named `ferry-<pid>-<hex>`, see [`AmqpDriver::connection_name`]) with
//! heartbeats (10 s unless the URL sets `heartbeat=`) and one confirm-mode channel. A
//! call that finds the channel or connection gone opens a new one first, retrying with
//! doubling pauses ([`RECONNECT_TRIES`] tries from 100 ms), and fails with `Unavailable`
//! after that. A new channel is a new receipt generation: the leases of the old one
//! are dropped (the broker already returned those deliveries to their queues) and their
//! receipts are stale.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use bytes::Bytes;
use ferry_core::time::{from_millis, to_millis};
use ferry_core::{
    Binding, DeadLetter, DeadLetterQuery, DeadLetters, Delivery, Driver, Error, ErrorKind,
    HistoryEvent, Limits, Message, PublishReport, QueueInfo, QueueName, QueueOptions, QueueStats,
    Receipt, ReceiveOptions, Result, Selection, SendReport, SettleAction, Settlement, TopicName,
    Topology, reason, route_matches, validate_pattern, validate_route_key,
};
use lapin::options::{
    BasicAckOptions, BasicGetOptions, BasicPublishOptions, ConfirmSelectOptions,
    ExchangeBindOptions, ExchangeDeclareOptions, ExchangeDeleteOptions, QueueBindOptions,
    QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties, ExchangeKind};

/// How many delay levels a queue has: level k holds messages for 2^k seconds, so the
/// longest delay (ten years, [`ferry_core::MAX_DELAY`]) fits in 29 bits.
pub const DELAY_LEVELS: u32 = 29;

/// How long a queue's history keeps an event (the TTL of `ferry.h.N`).
pub const HISTORY_RETENTION: Duration = Duration::from_secs(7 * 86_400);

/// The highest AMQP priority a classic ferry queue distinguishes.
pub const MAX_PRIORITY: u8 = 9;

const H_ATTEMPTS: &str = "x-ferry-attempts";
const H_ENQUEUED: &str = "x-ferry-enqueued-at";
const H_ROUTE_KEY: &str = "x-ferry-route-key";
const H_LAST_ERROR: &str = "x-ferry-last-error";
const H_FIRST_FAILED: &str = "x-ferry-first-failed-at";
const H_REASON: &str = "x-ferry-reason";
const H_DEAD_AT: &str = "x-ferry-dead-at";
const H_OPT_DELAY: &str = "x-ferry-default-delay-ms";
const H_OPT_ATTEMPTS: &str = "x-ferry-max-attempts";
const H_OPT_LEASE: &str = "x-ferry-lease-ms";
const H_EVENT: &str = "x-ferry-event";
const H_EVENT_ATTEMPT: &str = "x-ferry-event-attempt";
const H_EVENT_AT: &str = "x-ferry-event-at";
const H_EVENT_DETAIL: &str = "x-ferry-event-detail";
const POLL: Duration = Duration::from_millis(50);

fn q_name(q: &QueueName) -> String {
    format!("ferry.q.{q}")
}
fn options_name(q: &QueueName) -> String {
    format!("ferry.o.{q}")
}
fn history_name(q: &QueueName) -> String {
    format!("ferry.h.{q}")
}
fn dlq_name(q: &QueueName) -> String {
    format!("ferry.dlq.{q}")
}
fn delay_name(q: &QueueName, level: u32) -> String {
    format!("ferry.d.{q}.{level}")
}
fn deliver_exchange(q: &QueueName) -> String {
    format!("ferry.d.{q}")
}
fn topic_exchange(t: &TopicName) -> String {
    format!("ferry.t.{t}")
}

/// The route key of a delay of `secs` seconds: one word per level, highest first.
fn delay_key(secs: u64) -> String {
    (0..DELAY_LEVELS)
        .rev()
        .map(|k| if secs >> k & 1 == 1 { "1" } else { "0" })
        .collect::<Vec<_>>()
        .join(".")
}

/// The binding key selecting messages whose bit `level` is `bit`.
fn level_pattern(level: u32, bit: &str) -> String {
    (0..DELAY_LEVELS)
        .rev()
        .map(|k| if k == level { bit } else { "*" })
        .collect::<Vec<_>>()
        .join(".")
}

fn amqp_err(e: lapin::Error) -> Error {
    Error::new(ErrorKind::Unavailable, format!("rabbitmq: {e}")).with_source(e)
}

fn is_not_found(e: &lapin::Error) -> bool {
    e.to_string().contains("NOT_FOUND") || e.to_string().contains("404")
}

fn s(v: &str) -> AMQPValue {
    AMQPValue::LongString(LongString::from(v.as_bytes().to_vec()))
}

fn value_str(v: &AMQPValue) -> Option<String> {
    match v {
        AMQPValue::LongString(l) => Some(String::from_utf8_lossy(l.as_bytes()).into_owned()),
        AMQPValue::ShortString(x) => Some(x.as_str().to_string()),
        AMQPValue::LongLongInt(i) => Some(i.to_string()),
        AMQPValue::LongInt(i) => Some(i.to_string()),
        _ => None,
    }
}

/// A message as read from a queue, with ferry's fields decoded.
#[derive(Debug, Clone)]
struct Stored {
    id: String,
    payload: Bytes,
    headers: BTreeMap<String, String>,
    internal: BTreeMap<String, String>,
    priority: u8,
}

impl Stored {
    fn from_amqp(props: &BasicProperties, data: Vec<u8>) -> Stored {
        let mut headers = BTreeMap::new();
        let mut internal = BTreeMap::new();
        if let Some(table) = props.headers() {
            for (k, v) in table.inner() {
                let k = k.as_str();
                let Some(v) = value_str(v) else { continue };
                if k.starts_with("x-ferry-") {
                    internal.insert(k.to_string(), v);
                } else if !k.starts_with("x-death")
                    && !k.starts_with("x-first-death")
                    && !k.starts_with("x-last-death")
                {
                    headers.insert(k.to_string(), v);
                }
            }
        }
        Stored {
            id: props
                .message_id()
                .as_ref()
                .map(|m| m.as_str().to_string())
                .unwrap_or_default(),
            payload: Bytes::from(data),
            headers,
            internal,
            priority: props.priority().unwrap_or(0),
        }
    }

    fn from_message(m: &Message, route_key: Option<&str>) -> Stored {
        let mut internal = BTreeMap::new();
        internal.insert(H_ATTEMPTS.to_string(), "0".to_string());
        internal.insert(
            H_ENQUEUED.to_string(),
            to_millis(SystemTime::now()).to_string(),
        );
        if let Some(k) = route_key {
            internal.insert(H_ROUTE_KEY.to_string(), k.to_string());
        }
        Stored {
            id: m.id().to_string(),
            payload: m.payload().clone(),
            headers: m.headers().clone(),
            internal,
            priority: m.priority(),
        }
    }

    fn int(&self, key: &str) -> Option<i64> {
        self.internal.get(key).and_then(|v| v.parse().ok())
    }

    fn attempts(&self) -> u32 {
        self.int(H_ATTEMPTS)
            .and_then(|v| u32::try_from(v).ok())
            .unwrap_or(0)
    }

    fn enqueued_at(&self) -> SystemTime {
        self.int(H_ENQUEUED)
            .map(from_millis)
            .unwrap_or(SystemTime::UNIX_EPOCH)
    }

    fn properties(&self) -> BasicProperties {
        let mut table = FieldTable::default();
        for (k, v) in self.headers.iter().chain(self.internal.iter()) {
            table.insert(ShortString::from(k.as_str()), s(v));
        }
        BasicProperties::default()
            .with_message_id(ShortString::from(self.id.as_str()))
            .with_delivery_mode(2)
            .with_priority(self.priority)
            .with_headers(table)
    }

    fn dead_letter(&self, queue: &QueueName) -> DeadLetter {
        DeadLetter {
            id: self.id.clone(),
            queue: queue.clone(),
            payload: self.payload.clone(),
            headers: self.headers.clone(),
            route_key: self.internal.get(H_ROUTE_KEY).cloned(),
            priority: self.priority,
            enqueued_at: self.enqueued_at(),
            attempts: self.attempts(),
            reason: self.internal.get(H_REASON).cloned().unwrap_or_default(),
            last_error: self.internal.get(H_LAST_ERROR).cloned(),
            first_failed_at: self.int(H_FIRST_FAILED).map(from_millis),
            dead_at: self
                .int(H_DEAD_AT)
                .map(from_millis)
                .unwrap_or(SystemTime::UNIX_EPOCH),
        }
    }
}

/// One unacked delivery held by this driver.
#[derive(Debug)]
struct Lease {
    queue: QueueName,
    generation: u64,
    tag: u64,
    until: SystemTime,
    /// This delivery's attempt number (1-based).
    attempt: u32,
    max_attempts: u32,
    stored: Stored,
}

/// One connection and its confirm-mode channel; `generation` fences receipts (a new
/// channel gets a new generation, and the leases of the old one are dropped: the broker
/// returned those deliveries to their queues when the channel closed).
#[derive(Debug)]
struct Link {
    connection: Arc<Connection>,
    channel: Channel,
    generation: u64,
}

/// How often [`AmqpDriver`] tries to reconnect before a call fails with `Unavailable`.
pub const RECONNECT_TRIES: u32 = 5;
/// The first pause between reconnect tries (doubling each time).
const RECONNECT_PAUSE: Duration = Duration::from_millis(100);

/// What this driver instance knows about the topology (see the module docs).
#[derive(Debug, Default)]
struct Registry {
    queues: BTreeMap<QueueName, QueueOptions>,
    topics: BTreeSet<TopicName>,
    bindings: BTreeMap<TopicName, BTreeSet<(QueueName, String)>>,
}

/// The RabbitMQ driver. See the module docs for the layout and what is not done yet.
#[derive(Debug)]
pub struct AmqpDriver {
    url: String,
    name: String,
    link: Mutex<Arc<Link>>,
    reconnecting: tokio::sync::Mutex<()>,
    next_generation: AtomicU64,
    quorum: bool,
    leases: Mutex<HashMap<String, Lease>>,
    registry: Mutex<Registry>,
    dlq_lock: tokio::sync::Mutex<()>,
    history_lock: tokio::sync::Mutex<()>,
    limits: Limits,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl AmqpDriver {
    /// Connects to `url` (`amqp://user:pass@host:port/vhost`, or `amqps://`). A
    /// `queue_type=quorum` query parameter makes new queues quorum queues; other query
    /// parameters (`heartbeat`, `frame_max`, ...) are lapin's.
    pub async fn connect(url: &str) -> Result<AmqpDriver> {
        let (url, quorum) = strip_queue_type(url)?;
        let url = with_default_heartbeat(&url);
        let base = u64::from(fastrand_like()) << 20;
        let name = format!("ferry-{}-{base:x}", std::process::id());
        let connection = Arc::new(
            Connection::connect(&url, properties(&name))
                .await
                .map_err(amqp_err)?,
        );
        let link = open_channel(connection, base).await?;
        Ok(AmqpDriver {
            url,
            name,
            link: Mutex::new(Arc::new(link)),
            reconnecting: tokio::sync::Mutex::new(()),
            next_generation: AtomicU64::new(base + 1),
            quorum,
            leases: Mutex::new(HashMap::new()),
            registry: Mutex::new(Registry::default()),
            dlq_lock: tokio::sync::Mutex::new(()),
            history_lock: tokio::sync::Mutex::new(()),
            limits: Limits::default(),
        })
    }

    /// The current link; if its channel (or connection) is gone, a new one, retried
    /// with backoff. A new link drops the old one's leases.
    async fn link(&self) -> Result<Arc<Link>> {
        let current = lock(&self.link).clone();
        if current.channel.status().connected() {
            return Ok(current);
        }
        let _guard = self.reconnecting.lock().await;
        let current = lock(&self.link).clone();
        if current.channel.status().connected() {
            return Ok(current);
        }
        let mut pause = RECONNECT_PAUSE;
        let mut last = None;
        for _ in 0..RECONNECT_TRIES {
            match self.reopen(&current).await {
                Ok(link) => {
                    let link = Arc::new(link);
                    lock(&self.leases).retain(|_, l| l.generation == link.generation);
                    *lock(&self.link) = link.clone();
                    tracing::info!(generation = link.generation, "rabbitmq: reconnected");
                    return Ok(link);
                }
                Err(e) => {
                    tracing::warn!(error = %e, "rabbitmq: reconnect failed");
                    last = Some(e);
                    tokio::time::sleep(pause).await;
                    pause *= 2;
                }
            }
        }
        Err(last.unwrap_or_else(|| Error::new(ErrorKind::Unavailable, "rabbitmq: not connected")))
    }

    async fn reopen(&self, old: &Link) -> Result<Link> {
        let connection = if old.connection.status().connected() {
            old.connection.clone()
        } else {
            Arc::new(
                Connection::connect(&self.url, properties(&self.name))
                    .await
                    .map_err(amqp_err)?,
            )
        };
        let generation = self.next_generation.fetch_add(1, Ordering::Relaxed);
        open_channel(connection, generation).await
    }

    /// The name this driver's connections carry (`connection_name` in the client
    /// properties, shown by the management UI and `rabbitmqctl list_connections`).
    pub fn connection_name(&self) -> &str {
        &self.name
    }

    async fn ch(&self) -> Result<Channel> {
        Ok(self.link().await?.channel.clone())
    }

    /// Publishes one message with mandatory + persistent and waits for its confirm.
    async fn publish_one(
        &self,
        channel: &Channel,
        exchange: &str,
        key: &str,
        stored: &Stored,
    ) -> Result<()> {
        let item = Target {
            exchange: exchange.to_string(),
            key: key.to_string(),
        };
        publish_many(channel, &[(item, stored)]).await
    }

    /// Puts `stored` into `queue`, ready at `at`: directly, or through the delay levels.
    async fn enqueue_at(&self, queue: &QueueName, stored: &Stored, at: SystemTime) -> Result<()> {
        publish_many(&self.ch().await?, &[(Target::queue_at(queue, at), stored)]).await
    }

    /// Whether the broker has queue `name` (a passive declare on a throwaway channel,
    /// since a failed passive declare closes its channel).
    async fn broker_has_queue(&self, name: &str) -> Result<Option<u32>> {
        let ch = self
            .link()
            .await?
            .connection
            .create_channel()
            .await
            .map_err(amqp_err)?;
        let r = ch
            .queue_declare(
                name,
                QueueDeclareOptions {
                    passive: true,
                    ..QueueDeclareOptions::default()
                },
                FieldTable::default(),
            )
            .await;
        match r {
            Ok(q) => {
                let _ = ch.close(200, "ok").await;
                Ok(Some(q.message_count()))
            }
            Err(e) if is_not_found(&e) => Ok(None),
            Err(e) => Err(amqp_err(e)),
        }
    }

    async fn count(&self, name: &str) -> Result<u64> {
        let q = self
            .ch()
            .await?
            .queue_declare(
                name,
                QueueDeclareOptions {
                    passive: true,
                    ..QueueDeclareOptions::default()
                },
                FieldTable::default(),
            )
            .await
            .map_err(amqp_err)?;
        Ok(u64::from(q.message_count()))
    }

    /// The options of `queue`, or `QueueNotFound`: from this driver's cache, else from
    /// the queue's options record `ferry.o.N` (read on a private channel whose close
    /// puts it back).
    async fn options(&self, queue: &QueueName) -> Result<QueueOptions> {
        if let Some(o) = lock(&self.registry).queues.get(queue) {
            return Ok(*o);
        }
        if self.broker_has_queue(&q_name(queue)).await?.is_none() {
            return Err(Error::queue_not_found(queue.as_str()));
        }
        let mut options = None;
        for _ in 0..5 {
            let ch = self
                .link()
                .await?
                .connection
                .create_channel()
                .await
                .map_err(amqp_err)?;
            let got = ch
                .basic_get(&options_name(queue), BasicGetOptions { no_ack: false })
                .await;
            let _ = ch.close(200, "ok").await;
            match got {
                Ok(Some(m)) => {
                    options = Some(decode_options(&Stored::from_amqp(
                        &m.delivery.properties,
                        Vec::new(),
                    )));
                    break;
                }
                // Another reader holds it for a moment.
                Ok(None) => tokio::time::sleep(Duration::from_millis(20)).await,
                // A queue without a record (made outside ferry): defaults.
                Err(e) if is_not_found(&e) => break,
                Err(e) => return Err(amqp_err(e)),
            }
        }
        let options = options.unwrap_or_default();
        lock(&self.registry)
            .queues
            .entry(queue.clone())
            .or_insert(options);
        Ok(options)
    }

    /// `TopicNotFound` unless the topic is known here or its exchange exists on the
    /// broker (checked with a passive declare on a throwaway channel).
    async fn require_topic(&self, topic: &TopicName) -> Result<()> {
        if lock(&self.registry).topics.contains(topic) {
            return Ok(());
        }
        let ch = self
            .link()
            .await?
            .connection
            .create_channel()
            .await
            .map_err(amqp_err)?;
        let r = ch
            .exchange_declare(
                &topic_exchange(topic),
                ExchangeKind::Topic,
                ExchangeDeclareOptions {
                    passive: true,
                    ..ExchangeDeclareOptions::default()
                },
                FieldTable::default(),
            )
            .await;
        match r {
            Ok(()) => {
                let _ = ch.close(200, "ok").await;
                lock(&self.registry).topics.insert(topic.clone());
                Ok(())
            }
            Err(e) if is_not_found(&e) => Err(Error::topic_not_found(topic.as_str())),
            Err(e) => Err(amqp_err(e)),
        }
    }

    /// Writes the options record of `queue` (the record queue keeps only the newest).
    async fn write_options(&self, queue: &QueueName, options: QueueOptions) -> Result<()> {
        let mut args = FieldTable::default();
        args.insert("x-max-length".into(), AMQPValue::LongLongInt(1));
        args.insert("x-overflow".into(), s("drop-head"));
        self.declare_queue(&options_name(queue), args).await?;
        let mut internal = BTreeMap::new();
        internal.insert(
            H_OPT_DELAY.to_string(),
            options.default_delay.as_millis().to_string(),
        );
        internal.insert(H_OPT_ATTEMPTS.to_string(), options.max_attempts.to_string());
        internal.insert(
            H_OPT_LEASE.to_string(),
            options.lease.as_millis().to_string(),
        );
        let record = Stored {
            id: queue.to_string(),
            payload: Bytes::new(),
            headers: BTreeMap::new(),
            internal,
            priority: 0,
        };
        self.publish_one(&self.ch().await?, "", &options_name(queue), &record)
            .await
    }

    async fn declare_queue(&self, name: &str, args: FieldTable) -> Result<()> {
        self.ch()
            .await?
            .queue_declare(
                name,
                QueueDeclareOptions {
                    durable: true,
                    ..QueueDeclareOptions::default()
                },
                args,
            )
            .await
            .map_err(amqp_err)?;
        Ok(())
    }

    async fn declare_exchange(&self, name: &str) -> Result<()> {
        self.ch()
            .await?
            .exchange_declare(
                name,
                ExchangeKind::Topic,
                ExchangeDeclareOptions {
                    durable: true,
                    ..ExchangeDeclareOptions::default()
                },
                FieldTable::default(),
            )
            .await
            .map_err(amqp_err)
    }

    fn queue_args(&self) -> FieldTable {
        let mut args = FieldTable::default();
        if self.quorum {
            args.insert("x-queue-type".into(), s("quorum"));
        } else {
            args.insert(
                "x-max-priority".into(),
                AMQPValue::ShortShortUInt(MAX_PRIORITY),
            );
        }
        args
    }

    /// Declares the queue, its dead-letter queue and its delay levels.
    async fn declare_all(&self, queue: &QueueName) -> Result<()> {
        self.declare_queue(&q_name(queue), self.queue_args())
            .await?;
        // Always classic: browsing returns the kept dead letters by closing the private
        // channel, which a classic queue applies before the close completes and in the
        // original order (a quorum queue returns them asynchronously).
        self.declare_queue(&dlq_name(queue), FieldTable::default())
            .await?;
        let mut history_args = FieldTable::default();
        history_args.insert(
            "x-message-ttl".into(),
            AMQPValue::LongLongInt(
                i64::try_from(HISTORY_RETENTION.as_millis()).unwrap_or(i64::MAX),
            ),
        );
        self.declare_queue(&history_name(queue), history_args)
            .await?;
        let deliver = deliver_exchange(queue);
        self.declare_exchange(&deliver).await?;
        self.ch()
            .await?
            .queue_bind(
                &q_name(queue),
                &deliver,
                "#",
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await
            .map_err(amqp_err)?;
        for k in 0..DELAY_LEVELS {
            let name = delay_name(queue, k);
            let below = if k == 0 {
                deliver.clone()
            } else {
                delay_name(queue, k - 1)
            };
            let mut args = FieldTable::default();
            args.insert(
                "x-message-ttl".into(),
                AMQPValue::LongLongInt(1000_i64 << k),
            );
            args.insert("x-dead-letter-exchange".into(), s(&below));
            self.declare_queue(&name, args).await?;
            self.declare_exchange(&name).await?;
            self.ch()
                .await?
                .queue_bind(
                    &name,
                    &name,
                    &level_pattern(k, "1"),
                    QueueBindOptions::default(),
                    FieldTable::default(),
                )
                .await
                .map_err(amqp_err)?;
            self.ch()
                .await?
                .exchange_bind(
                    &below,
                    &name,
                    &level_pattern(k, "0"),
                    ExchangeBindOptions::default(),
                    FieldTable::default(),
                )
                .await
                .map_err(amqp_err)?;
        }
        Ok(())
    }

    /// Appends lifecycle events to the queue's history (confirmed). History is for
    /// people; a failure to record is logged, not returned.
    async fn record(&self, queue: &QueueName, events: Vec<Stored>) {
        if events.is_empty() {
            return;
        }
        let name = history_name(queue);
        let target = Target {
            exchange: String::new(),
            key: name,
        };
        let items: Vec<(Target, &Stored)> = events.iter().map(|e| (target.clone(), e)).collect();
        let result = match self.ch().await {
            Ok(ch) => publish_many(&ch, &items).await,
            Err(e) => Err(e),
        };
        if let Err(e) = result {
            tracing::warn!(queue = %queue, error = %e, "rabbitmq: history not recorded");
        }
    }

    /// Acks a delivery tag on the driver's channel.
    async fn ack_tag(&self, generation: u64, tag: u64) -> Result<()> {
        let link = self.link().await?;
        if link.generation != generation {
            return Err(Error::new(
                ErrorKind::StaleReceipt,
                "the channel of this delivery is gone; the broker has requeued it",
            ));
        }
        link.channel
            .basic_ack(tag, BasicAckOptions::default())
            .await
            .map_err(amqp_err)
    }

    /// Moves `stored` into the dead letters of `queue` (confirmed), then acks `tag`.
    async fn to_dead_letters(
        &self,
        queue: &QueueName,
        mut stored: Stored,
        generation: u64,
        tag: u64,
        why: &str,
        error: Option<String>,
    ) -> Result<()> {
        let now = to_millis(SystemTime::now());
        stored.internal.insert(H_REASON.into(), why.to_string());
        stored.internal.insert(H_DEAD_AT.into(), now.to_string());
        if let Some(e) = error {
            stored.internal.insert(H_LAST_ERROR.into(), e);
        }
        stored
            .internal
            .entry(H_FIRST_FAILED.into())
            .or_insert_with(|| now.to_string());
        self.publish_one(&self.ch().await?, "", &dlq_name(queue), &stored)
            .await?;
        self.ack_tag(generation, tag).await
    }

    /// Handles every expired lease: counts the attempt and republishes, or dead-letters
    /// on the last attempt; then acks the original.
    async fn sweep(&self) -> Result<()> {
        let now = SystemTime::now();
        let expired: Vec<Lease> = {
            let mut leases = lock(&self.leases);
            let keys: Vec<String> = leases
                .iter()
                .filter(|(_, l)| l.until <= now)
                .map(|(k, _)| k.clone())
                .collect();
            keys.iter().filter_map(|k| leases.remove(k)).collect()
        };
        for lease in expired {
            let mut stored = lease.stored;
            stored
                .internal
                .insert(H_ATTEMPTS.into(), lease.attempt.to_string());
            let id = stored.id.clone();
            let event = if lease.attempt >= lease.max_attempts {
                self.to_dead_letters(
                    &lease.queue,
                    stored,
                    lease.generation,
                    lease.tag,
                    reason::LEASE_EXPIRED,
                    None,
                )
                .await?;
                history_event(
                    &id,
                    "dead_lettered",
                    lease.attempt,
                    Some(reason::LEASE_EXPIRED.into()),
                )
            } else {
                self.publish_one(&self.ch().await?, "", &q_name(&lease.queue), &stored)
                    .await?;
                self.ack_tag(lease.generation, lease.tag).await?;
                history_event(&id, "lease_expired", lease.attempt, None)
            };
            self.record(&lease.queue, vec![event]).await;
        }
        Ok(())
    }

    async fn settle_one_inner(&self, settlement: Settlement) -> Result<()> {
        let receipt = &settlement.receipt;
        let token = receipt.token();
        let valid = token
            .split_once('.')
            .is_some_and(|(g, t)| g.parse::<u64>().is_ok() && t.parse::<u64>().is_ok());
        if !valid {
            return Err(Error::new(
                ErrorKind::InvalidReceipt,
                format!("'{token}' is not a receipt of the rabbitmq driver"),
            ));
        }
        let lease = {
            let mut leases = lock(&self.leases);
            match leases.get(token) {
                Some(l) if l.queue == *receipt.queue() && l.stored.id == receipt.message_id() => {
                    leases.remove(token)
                }
                _ => None,
            }
        };
        let Some(lease) = lease else {
            return Err(Error::stale_receipt(
                receipt.queue().as_str(),
                receipt.message_id(),
            ));
        };
        let (event, detail) = match &settlement.action {
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
        };
        let (queue, id, attempt) = (lease.queue.clone(), lease.stored.id.clone(), lease.attempt);
        self.apply(lease, settlement.action).await?;
        self.record(&queue, vec![history_event(&id, event, attempt, detail)])
            .await;
        Ok(())
    }

    async fn apply(&self, lease: Lease, action: SettleAction) -> Result<()> {
        match action {
            SettleAction::Ack => self.ack_tag(lease.generation, lease.tag).await,
            SettleAction::Release => {
                // Republished (confirmed) with its attempts unchanged, then acked: it is
                // ready again at once, behind the messages that were ready before it.
                // (A `basic.nack` with requeue would keep its place, but the broker
                // applies it asynchronously, so a stats call just after could miss it.)
                self.publish_one(&self.ch().await?, "", &q_name(&lease.queue), &lease.stored)
                    .await?;
                self.ack_tag(lease.generation, lease.tag).await
            }
            SettleAction::Retry { not_before, error } => {
                let mut stored = lease.stored;
                stored
                    .internal
                    .insert(H_ATTEMPTS.into(), lease.attempt.to_string());
                if let Some(e) = error {
                    stored.internal.insert(H_LAST_ERROR.into(), e);
                }
                stored
                    .internal
                    .entry(H_FIRST_FAILED.into())
                    .or_insert_with(|| to_millis(SystemTime::now()).to_string());
                self.enqueue_at(&lease.queue, &stored, not_before).await?;
                self.ack_tag(lease.generation, lease.tag).await
            }
            SettleAction::DeadLetter { reason, error } => {
                let mut stored = lease.stored;
                stored
                    .internal
                    .insert(H_ATTEMPTS.into(), lease.attempt.to_string());
                self.to_dead_letters(
                    &lease.queue,
                    stored,
                    lease.generation,
                    lease.tag,
                    &reason,
                    error,
                )
                .await
            }
        }
    }

    /// Browses the dead letters of `queue` on a private channel, calling `act` with
    /// each (in order); `act` returns whether to remove it (after its own work). The
    /// ones kept go back when the channel closes, in their order.
    async fn browse_dead_letters(
        &self,
        queue: &QueueName,
        mut act: impl FnMut(&Stored) -> bool,
        requeue: bool,
    ) -> Result<(Vec<Stored>, Vec<String>)> {
        self.options(queue).await?;
        let _guard = self.dlq_lock.lock().await;
        let ch = self
            .link()
            .await?
            .connection
            .create_channel()
            .await
            .map_err(amqp_err)?;
        ch.confirm_select(ConfirmSelectOptions::default())
            .await
            .map_err(amqp_err)?;
        let mut all = Vec::new();
        let mut removed = Vec::new();
        let result: Result<()> = async {
            while let Some(m) = ch
                .basic_get(&dlq_name(queue), BasicGetOptions { no_ack: false })
                .await
                .map_err(amqp_err)?
            {
                let tag = m.delivery.delivery_tag;
                let stored = Stored::from_amqp(&m.delivery.properties, m.delivery.data.clone());
                if act(&stored) {
                    if requeue {
                        let mut fresh = stored.clone();
                        for k in [H_REASON, H_DEAD_AT, H_LAST_ERROR, H_FIRST_FAILED] {
                            fresh.internal.remove(k);
                        }
                        fresh.internal.insert(H_ATTEMPTS.into(), "0".into());
                        self.publish_one(&ch, "", &q_name(queue), &fresh).await?;
                    }
                    ch.basic_ack(tag, BasicAckOptions::default())
                        .await
                        .map_err(amqp_err)?;
                    removed.push(stored.id.clone());
                }
                all.push(stored);
            }
            Ok(())
        }
        .await;
        let _ = ch.close(200, "ok").await;
        result?;
        Ok((all, removed))
    }
}

fn properties(name: &str) -> ConnectionProperties {
    ConnectionProperties::default().with_connection_name(name.into())
}

fn token(generation: u64, tag: u64) -> String {
    format!("{generation}.{tag}")
}

async fn open_channel(connection: Arc<Connection>, generation: u64) -> Result<Link> {
    let channel = connection.create_channel().await.map_err(amqp_err)?;
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await
        .map_err(amqp_err)?;
    Ok(Link {
        connection,
        channel,
        generation,
    })
}

/// Adds `heartbeat=10` (seconds) unless the URL sets its own.
fn with_default_heartbeat(url: &str) -> String {
    if url.contains("heartbeat=") {
        url.to_string()
    } else if url.contains('?') {
        format!("{url}&heartbeat=10")
    } else {
        format!("{url}?heartbeat=10")
    }
}

fn decode_options(record: &Stored) -> QueueOptions {
    let defaults = QueueOptions::default();
    let ms = |k: &str, d: Duration| {
        record
            .int(k)
            .and_then(|v| u64::try_from(v).ok())
            .map_or(d, Duration::from_millis)
    };
    QueueOptions {
        default_delay: ms(H_OPT_DELAY, defaults.default_delay),
        max_attempts: record
            .int(H_OPT_ATTEMPTS)
            .and_then(|v| u32::try_from(v).ok())
            .unwrap_or(defaults.max_attempts),
        lease: ms(H_OPT_LEASE, defaults.lease),
    }
}

/// Where a message is published: an exchange (`""` is the default one) and a key.
#[derive(Debug, Clone)]
struct Target {
    exchange: String,
    key: String,
}

impl Target {
    /// Into `queue`, ready at `at`: directly, or into the top delay level with the
    /// delay's bits as route key.
    fn queue_at(queue: &QueueName, at: SystemTime) -> Target {
        let wait = at.duration_since(SystemTime::now()).unwrap_or_default();
        if wait.is_zero() {
            Target {
                exchange: String::new(),
                key: q_name(queue),
            }
        } else {
            let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
            Target {
                exchange: delay_name(queue, DELAY_LEVELS - 1),
                key: delay_key(secs),
            }
        }
    }
}

/// Publishes every item (mandatory, persistent) back to back, then waits for all their
/// confirms; the first failure is returned once every confirm is in.
async fn publish_many(channel: &Channel, items: &[(Target, &Stored)]) -> Result<()> {
    let mut confirms = Vec::with_capacity(items.len());
    for (target, stored) in items {
        let confirm = channel
            .basic_publish(
                &target.exchange,
                &target.key,
                BasicPublishOptions {
                    mandatory: true,
                    ..BasicPublishOptions::default()
                },
                &stored.payload,
                stored.properties(),
            )
            .await
            .map_err(amqp_err)?;
        confirms.push((target, confirm));
    }
    let mut first_error = None;
    for (target, confirm) in confirms {
        let outcome = match confirm.await {
            Err(e) => Err(Error::new(
                ErrorKind::Indeterminate,
                format!("rabbitmq: no publisher confirm: {e}"),
            )),
            Ok(c) if c.is_nack() => Err(Error::new(
                ErrorKind::Indeterminate,
                "rabbitmq refused (nacked) the message",
            )),
            Ok(c) => match c.take_message() {
                Some(_) => Err(Error::new(
                    ErrorKind::Unroutable,
                    format!(
                        "rabbitmq returned the message: no queue behind {:?}/{:?}",
                        target.exchange, target.key
                    ),
                )),
                None => Ok(()),
            },
        };
        if let Err(e) = outcome {
            first_error.get_or_insert(e);
        }
    }
    first_error.map_or(Ok(()), Err)
}

/// A history record: an empty persistent message with the message's id and the event.
fn history_event(id: &str, event: &str, attempt: u32, detail: Option<String>) -> Stored {
    let mut internal = BTreeMap::new();
    internal.insert(H_EVENT.to_string(), event.to_string());
    internal.insert(H_EVENT_ATTEMPT.to_string(), attempt.to_string());
    internal.insert(
        H_EVENT_AT.to_string(),
        to_millis(SystemTime::now()).to_string(),
    );
    if let Some(d) = detail {
        internal.insert(H_EVENT_DETAIL.to_string(), d);
    }
    Stored {
        id: id.to_string(),
        payload: Bytes::new(),
        headers: BTreeMap::new(),
        internal,
        priority: 0,
    }
}

fn selected(selection: &Selection, id: &str) -> bool {
    match selection {
        Selection::All => true,
        Selection::Ids(ids) => ids.iter().any(|i| i == id),
    }
}

fn strip_queue_type(url: &str) -> Result<(String, bool)> {
    let Some((base, query)) = url.split_once('?') else {
        return Ok((url.to_string(), false));
    };
    let mut quorum = false;
    let mut rest = Vec::new();
    for part in query.split('&') {
        match part.split_once('=') {
            Some(("queue_type", "quorum")) => quorum = true,
            Some(("queue_type", "classic")) => {}
            Some(("queue_type", other)) => {
                return Err(Error::invalid_input(format!(
                    "queue_type must be classic or quorum, not '{other}'"
                )));
            }
            _ => rest.push(part),
        }
    }
    let url = if rest.is_empty() {
        base.to_string()
    } else {
        format!("{base}?{}", rest.join("&"))
    };
    Ok((url, quorum))
}

/// A random-enough channel generation without another dependency: the clock's nanos.
fn fastrand_like() -> u32 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0)
}

#[async_trait]
impl Topology for AmqpDriver {
    async fn create_queue(&self, queue: &QueueName, options: QueueOptions) -> Result<()> {
        options.validate()?;
        self.declare_all(queue).await?;
        self.write_options(queue, options).await?;
        lock(&self.registry).queues.insert(queue.clone(), options);
        Ok(())
    }

    async fn get_queue(&self, queue: &QueueName) -> Result<QueueInfo> {
        Ok(QueueInfo::new(queue.clone(), self.options(queue).await?))
    }

    async fn list_queues(&self) -> Result<Vec<QueueInfo>> {
        Ok(lock(&self.registry)
            .queues
            .iter()
            .map(|(n, o)| QueueInfo::new(n.clone(), *o))
            .collect())
    }

    async fn delete_queue(&self, queue: &QueueName) -> Result<()> {
        self.options(queue).await?;
        let del = QueueDeleteOptions::default();
        self.ch()
            .await?
            .queue_delete(&q_name(queue), del)
            .await
            .map_err(amqp_err)?;
        self.ch()
            .await?
            .queue_delete(&dlq_name(queue), del)
            .await
            .map_err(amqp_err)?;
        self.ch()
            .await?
            .queue_delete(&options_name(queue), del)
            .await
            .map_err(amqp_err)?;
        self.ch()
            .await?
            .queue_delete(&history_name(queue), del)
            .await
            .map_err(amqp_err)?;
        for k in 0..DELAY_LEVELS {
            let name = delay_name(queue, k);
            self.ch()
                .await?
                .queue_delete(&name, del)
                .await
                .map_err(amqp_err)?;
            self.ch()
                .await?
                .exchange_delete(&name, ExchangeDeleteOptions::default())
                .await
                .map_err(amqp_err)?;
        }
        self.ch()
            .await?
            .exchange_delete(&deliver_exchange(queue), ExchangeDeleteOptions::default())
            .await
            .map_err(amqp_err)?;
        lock(&self.leases).retain(|_, l| l.queue != *queue);
        let mut reg = lock(&self.registry);
        reg.queues.remove(queue);
        for set in reg.bindings.values_mut() {
            set.retain(|(q, _)| q != queue);
        }
        Ok(())
    }

    async fn create_topic(&self, topic: &TopicName) -> Result<()> {
        self.declare_exchange(&topic_exchange(topic)).await?;
        lock(&self.registry).topics.insert(topic.clone());
        Ok(())
    }

    async fn list_topics(&self) -> Result<Vec<TopicName>> {
        Ok(lock(&self.registry).topics.iter().cloned().collect())
    }

    async fn delete_topic(&self, topic: &TopicName) -> Result<()> {
        self.ch()
            .await?
            .exchange_delete(&topic_exchange(topic), ExchangeDeleteOptions::default())
            .await
            .map_err(amqp_err)?;
        let mut reg = lock(&self.registry);
        reg.topics.remove(topic);
        reg.bindings.remove(topic);
        Ok(())
    }

    async fn bind(&self, topic: &TopicName, queue: &QueueName, pattern: &str) -> Result<()> {
        self.require_topic(topic).await?;
        validate_pattern(pattern)?;
        self.options(queue).await?;
        self.ch()
            .await?
            .queue_bind(
                &q_name(queue),
                &topic_exchange(topic),
                pattern,
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await
            .map_err(amqp_err)?;
        lock(&self.registry)
            .bindings
            .entry(topic.clone())
            .or_default()
            .insert((queue.clone(), pattern.to_string()));
        Ok(())
    }

    async fn unbind(&self, topic: &TopicName, queue: &QueueName, pattern: &str) -> Result<()> {
        let known = lock(&self.registry)
            .bindings
            .get(topic)
            .is_some_and(|b| b.contains(&(queue.clone(), pattern.to_string())));
        if !known {
            return Err(Error::invalid_input(format!(
                "topic '{topic}' has no binding of queue '{queue}' with pattern '{pattern}'"
            )));
        }
        self.ch()
            .await?
            .queue_unbind(
                &q_name(queue),
                &topic_exchange(topic),
                pattern,
                FieldTable::default(),
            )
            .await
            .map_err(amqp_err)?;
        if let Some(b) = lock(&self.registry).bindings.get_mut(topic) {
            b.remove(&(queue.clone(), pattern.to_string()));
        }
        Ok(())
    }

    async fn list_bindings(&self, topic: &TopicName) -> Result<Vec<Binding>> {
        self.require_topic(topic).await?;
        let reg = lock(&self.registry);
        if !reg.topics.contains(topic) {
            return Err(Error::topic_not_found(topic.as_str()));
        }
        Ok(reg
            .bindings
            .get(topic)
            .map(|b| {
                b.iter()
                    .map(|(q, p)| Binding::new(topic.clone(), q.clone(), p.clone()))
                    .collect()
            })
            .unwrap_or_default())
    }
}

#[async_trait]
impl DeadLetters for AmqpDriver {
    async fn list_dead_letters(
        &self,
        queue: &QueueName,
        query: DeadLetterQuery,
    ) -> Result<Vec<DeadLetter>> {
        let (all, _) = self.browse_dead_letters(queue, |_| false, false).await?;
        Ok(all
            .iter()
            .map(|s| s.dead_letter(queue))
            .filter(|d| query.reason.as_ref().is_none_or(|r| *r == d.reason))
            .skip(usize::try_from(query.offset).unwrap_or(usize::MAX))
            .take(usize::try_from(query.limit).unwrap_or(usize::MAX))
            .collect())
    }

    async fn get_dead_letter(&self, queue: &QueueName, id: &str) -> Result<DeadLetter> {
        let (all, _) = self.browse_dead_letters(queue, |_| false, false).await?;
        all.iter()
            .rev()
            .find(|s| s.id == id)
            .map(|s| s.dead_letter(queue))
            .ok_or_else(|| {
                Error::new(
                    ErrorKind::MessageNotFound,
                    format!("queue '{queue}' has no dead letter '{id}'"),
                )
            })
    }

    async fn requeue_dead_letters(&self, queue: &QueueName, selection: Selection) -> Result<u64> {
        let (_, ids) = self
            .browse_dead_letters(queue, |s| selected(&selection, &s.id), true)
            .await?;
        let events = ids
            .iter()
            .map(|id| history_event(id, "requeued", 0, None))
            .collect();
        self.record(queue, events).await;
        Ok(ids.len() as u64)
    }

    async fn delete_dead_letters(&self, queue: &QueueName, selection: Selection) -> Result<u64> {
        let (_, ids) = self
            .browse_dead_letters(queue, |s| selected(&selection, &s.id), false)
            .await?;
        Ok(ids.len() as u64)
    }
}

#[async_trait]
impl Driver for AmqpDriver {
    fn limits(&self) -> Limits {
        self.limits
    }

    async fn send(&self, queue: &QueueName, batch: Vec<Message>) -> Result<SendReport> {
        self.limits.validate_batch(&batch)?;
        let options = self.options(queue).await?;
        let now = SystemTime::now();
        let stored: Vec<Stored> = batch
            .iter()
            .map(|m| Stored::from_message(m, None))
            .collect();
        let items: Vec<(Target, &Stored)> = batch
            .iter()
            .zip(&stored)
            .map(|(m, s)| {
                (
                    Target::queue_at(queue, m.visible_at(now, options.default_delay)),
                    s,
                )
            })
            .collect();
        publish_many(&self.ch().await?, &items).await?;
        let events = stored
            .iter()
            .map(|m| history_event(&m.id, "sent", 0, None))
            .collect();
        self.record(queue, events).await;
        let mut report = SendReport::default();
        report.enqueued = batch.len() as u64;
        Ok(report)
    }

    async fn publish(
        &self,
        topic: &TopicName,
        route_key: &str,
        batch: Vec<Message>,
    ) -> Result<PublishReport> {
        validate_route_key(route_key)?;
        self.limits.validate_batch(&batch)?;
        self.require_topic(topic).await?;
        let queues: Vec<QueueName> = {
            let reg = lock(&self.registry);
            if !reg.topics.contains(topic) {
                return Err(Error::topic_not_found(topic.as_str()));
            }
            let set: BTreeSet<QueueName> = reg
                .bindings
                .get(topic)
                .map(|b| {
                    b.iter()
                        .filter(|(_, p)| route_matches(p, route_key))
                        .map(|(q, _)| q.clone())
                        .collect()
                })
                .unwrap_or_default();
            set.into_iter().collect()
        };
        let now = SystemTime::now();
        let stored: Vec<Stored> = batch
            .iter()
            .map(|m| Stored::from_message(m, Some(route_key)))
            .collect();
        let mut items = Vec::new();
        let mut enqueued = 0;
        for (m, st) in batch.iter().zip(&stored) {
            if m.delay().is_none() {
                // RabbitMQ routes it; an unroutable message comes back as an error.
                items.push((
                    Target {
                        exchange: topic_exchange(topic),
                        key: route_key.to_string(),
                    },
                    st,
                ));
                enqueued += queues.len() as u64;
            } else {
                if queues.is_empty() {
                    return Err(Error::unroutable(topic.as_str(), route_key));
                }
                for q in &queues {
                    let default_delay = self.options(q).await?.default_delay;
                    items.push((Target::queue_at(q, m.visible_at(now, default_delay)), st));
                    enqueued += 1;
                }
            }
        }
        publish_many(&self.ch().await?, &items).await.map_err(|e| {
            if e.kind() == ErrorKind::Unroutable {
                Error::unroutable(topic.as_str(), route_key)
            } else {
                e
            }
        })?;
        for q in &queues {
            let events = stored
                .iter()
                .map(|m| history_event(&m.id, "sent", 0, None))
                .collect();
            self.record(q, events).await;
        }
        let mut report = PublishReport::default();
        report.queues = queues;
        report.enqueued = enqueued;
        Ok(report)
    }

    async fn receive(&self, queue: &QueueName, options: ReceiveOptions) -> Result<Vec<Delivery>> {
        options.validate()?;
        let qopts = self.options(queue).await?;
        let lease_len = options.lease.unwrap_or(qopts.lease);
        let deadline = tokio::time::Instant::now() + options.wait;
        let name = q_name(queue);
        loop {
            self.sweep().await?;
            let link = self.link().await?;
            let mut out = Vec::new();
            while out.len() < options.max {
                let Some(m) = link
                    .channel
                    .basic_get(&name, BasicGetOptions { no_ack: false })
                    .await
                    .map_err(amqp_err)?
                else {
                    break;
                };
                let tag = m.delivery.delivery_tag;
                let mut stored = Stored::from_amqp(&m.delivery.properties, m.delivery.data.clone());
                if m.delivery.redelivered {
                    // Its holder's channel died unsettled (ferry itself never requeues
                    // with nack): that delivery counts as an attempt.
                    let attempts = stored.attempts() + 1;
                    stored
                        .internal
                        .insert(H_ATTEMPTS.into(), attempts.to_string());
                    let id = stored.id.clone();
                    let event = if attempts >= qopts.max_attempts {
                        self.to_dead_letters(
                            queue,
                            stored,
                            link.generation,
                            tag,
                            reason::LEASE_EXPIRED,
                            None,
                        )
                        .await?;
                        history_event(
                            &id,
                            "dead_lettered",
                            attempts,
                            Some(reason::LEASE_EXPIRED.into()),
                        )
                    } else {
                        self.publish_one(&link.channel, "", &name, &stored).await?;
                        self.ack_tag(link.generation, tag).await?;
                        history_event(&id, "lease_expired", attempts, None)
                    };
                    self.record(queue, vec![event]).await;
                    continue;
                }
                let attempt = stored.attempts() + 1;
                let until = SystemTime::now() + lease_len;
                let token = token(link.generation, tag);
                out.push(Delivery {
                    id: stored.id.clone(),
                    queue: queue.clone(),
                    payload: stored.payload.clone(),
                    headers: stored.headers.clone(),
                    route_key: stored.internal.get(H_ROUTE_KEY).cloned(),
                    priority: stored.priority,
                    enqueued_at: stored.enqueued_at(),
                    attempt,
                    lease_until: until,
                    receipt: Receipt::new(queue.clone(), stored.id.clone(), token.clone()),
                });
                lock(&self.leases).insert(
                    token,
                    Lease {
                        queue: queue.clone(),
                        generation: link.generation,
                        tag,
                        until,
                        attempt,
                        max_attempts: qopts.max_attempts,
                        stored,
                    },
                );
            }
            if !out.is_empty() || tokio::time::Instant::now() >= deadline {
                let events = out
                    .iter()
                    .map(|d| history_event(&d.id, "delivered", d.attempt, None))
                    .collect();
                self.record(queue, events).await;
                return Ok(out);
            }
            tokio::time::sleep(POLL).await;
        }
    }

    async fn settle(&self, batch: Vec<Settlement>) -> Result<Vec<Result<()>>> {
        self.sweep().await?;
        let mut out = Vec::with_capacity(batch.len());
        for s in batch {
            match self.settle_one_inner(s).await {
                Err(e) if e.kind() == ErrorKind::Unavailable => return Err(e),
                r => out.push(r),
            }
        }
        Ok(out)
    }

    async fn extend(&self, receipt: &Receipt, lease: Duration) -> Result<SystemTime> {
        if lease < Duration::from_millis(1) || lease > ferry_core::MAX_LEASE {
            return Err(Error::invalid_input("lease must be between 1ms and 7d"));
        }
        self.sweep().await?;
        let mut leases = lock(&self.leases);
        match leases.get_mut(receipt.token()) {
            Some(l) if l.queue == *receipt.queue() && l.stored.id == receipt.message_id() => {
                l.until = SystemTime::now() + lease;
                Ok(l.until)
            }
            _ => Err(Error::stale_receipt(
                receipt.queue().as_str(),
                receipt.message_id(),
            )),
        }
    }

    async fn history(&self, queue: &QueueName, id: &str) -> Result<Vec<HistoryEvent>> {
        self.options(queue).await?;
        let _guard = self.history_lock.lock().await;
        let ch = self
            .link()
            .await?
            .connection
            .create_channel()
            .await
            .map_err(amqp_err)?;
        let mut events = Vec::new();
        let result: Result<()> = async {
            while let Some(m) = ch
                .basic_get(&history_name(queue), BasicGetOptions { no_ack: false })
                .await
                .map_err(amqp_err)?
            {
                let record = Stored::from_amqp(&m.delivery.properties, Vec::new());
                if record.id != id {
                    continue;
                }
                events.push(HistoryEvent::new(
                    record
                        .int(H_EVENT_AT)
                        .map(from_millis)
                        .unwrap_or(SystemTime::UNIX_EPOCH),
                    record.internal.get(H_EVENT).cloned().unwrap_or_default(),
                    record
                        .int(H_EVENT_ATTEMPT)
                        .and_then(|a| u32::try_from(a).ok())
                        .unwrap_or(0),
                    record.internal.get(H_EVENT_DETAIL).cloned(),
                ));
            }
            Ok(())
        }
        .await;
        let _ = ch.close(200, "ok").await;
        result?;
        Ok(events)
    }

    async fn stats(&self, queue: Option<&QueueName>) -> Result<Vec<QueueStats>> {
        self.sweep().await?;
        let names: Vec<QueueName> = match queue {
            Some(q) => {
                self.options(q).await?;
                vec![q.clone()]
            }
            None => lock(&self.registry).queues.keys().cloned().collect(),
        };
        let mut out = Vec::new();
        for q in names {
            let ready = self.count(&q_name(&q)).await?;
            let dead = self.count(&dlq_name(&q)).await?;
            let mut delayed = 0;
            for k in 0..DELAY_LEVELS {
                delayed += self.count(&delay_name(&q, k)).await?;
            }
            let in_flight = lock(&self.leases).values().filter(|l| l.queue == q).count() as u64;
            out.push(QueueStats::new(q.as_str(), ready, delayed, in_flight, dead));
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delay_keys_route_by_bits() {
        assert_eq!(delay_key(5).split('.').count(), DELAY_LEVELS as usize);
        assert!(delay_key(5).ends_with("1.0.1"));
        assert!(route_matches(&level_pattern(0, "1"), &delay_key(5)));
        assert!(route_matches(&level_pattern(1, "0"), &delay_key(5)));
        assert!(!route_matches(&level_pattern(1, "1"), &delay_key(5)));
    }

    #[test]
    fn queue_type_parameter() {
        assert_eq!(
            strip_queue_type("amqp://h/?queue_type=quorum&heartbeat=10").ok(),
            Some(("amqp://h/?heartbeat=10".to_string(), true))
        );
        assert!(strip_queue_type("amqp://h/?queue_type=stream").is_err());
    }
}
