//! `AmqpDriver` itself: its state, connecting, and the `Driver` operations.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use ferry_core::{
    Delivery, Driver, Error, ErrorKind, HistoryEvent, Limits, Message, PublishReport, QueueName,
    QueueOptions, QueueStats, Receipt, ReceiveOptions, Result, SendReport, Settlement, TopicName,
    route_matches, validate_route_key,
};
use lapin::Connection;
use lapin::options::{BasicGetOptions, QueueDeclareOptions};
use lapin::types::FieldTable;

use crate::bounded::per_item;
use crate::delay::DELAY_LEVELS;
use crate::delay::delay_secs;
use crate::error::amqp_err;
use crate::history::{Event, history_event, history_record, of_message, read_record};
use crate::lease::Lease;
use crate::link::Backoff;
use crate::link::{Link, fastrand_like, open_channel, properties};
use crate::names::{
    delay_name, dlq_name, history_name, q_name, topic_delay_exchange, topic_exchange,
};
use crate::publish::{Target, publish_many, publish_recorded};
use crate::stored::{Stored, check_encodable};
use crate::url::UrlOptions;

pub(crate) const POLL: Duration = Duration::from_millis(50);

/// What this driver instance knows about the topology (see the module docs).
#[derive(Debug, Default)]
pub(crate) struct Registry {
    pub(crate) queues: BTreeMap<QueueName, QueueOptions>,
    pub(crate) topics: BTreeSet<TopicName>,
    pub(crate) bindings: BTreeMap<TopicName, BTreeSet<(QueueName, String)>>,
    /// Pause states read from the broker, trusted for `pause::PAUSE_TTL`.
    pub(crate) paused: crate::pause::PauseCache,
}

/// The RabbitMQ driver. See the module docs for the layout and what is not done yet.
#[derive(Debug)]
pub struct AmqpDriver {
    pub(crate) url: String,
    pub(crate) name: String,
    pub(crate) link: Mutex<Arc<Link>>,
    pub(crate) reconnecting: tokio::sync::Mutex<()>,
    pub(crate) backoff: Mutex<Backoff>,
    /// The longest one broker operation may take (the URL's `timeout=`).
    pub(crate) op_timeout: Duration,
    pub(crate) next_generation: AtomicU64,
    pub(crate) quorum: bool,
    pub(crate) leases: Mutex<HashMap<String, Lease>>,
    pub(crate) registry: Mutex<Registry>,
    pub(crate) dlq_lock: tokio::sync::Mutex<()>,
    pub(crate) history_lock: tokio::sync::Mutex<()>,
    pub(crate) limits: Limits,
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl AmqpDriver {
    /// Connects to `url` (`amqp://user:pass@host:port/vhost`, or `amqps://`). A
    /// `queue_type=quorum` query parameter makes new queues quorum queues, and
    /// `timeout=MS` sets the longest one broker operation may take (default
    /// [`DEFAULT_OP_TIMEOUT`](crate::DEFAULT_OP_TIMEOUT)); other query parameters
    /// (`heartbeat`, default 10 s, `frame_max`, ...) are lapin's.
    ///
    /// ```no_run
    /// # async fn demo() -> ferry_core::Result<()> {
    /// use ferry_core::{Driver, Message, QueueName, Topology, QueueOptions};
    /// let driver = ferry_amqp::AmqpDriver::connect("amqp://guest:guest@127.0.0.1:5672/%2f").await?;
    /// let q = QueueName::new("emails")?;
    /// driver.create_queue(&q, QueueOptions::default()).await?;
    /// driver.send(&q, vec![Message::new("hello")]).await?; // persistent and confirmed
    /// # Ok(()) }
    /// ```
    pub async fn connect(url: &str) -> Result<AmqpDriver> {
        let UrlOptions {
            url,
            quorum,
            op_timeout,
        } = UrlOptions::parse(url)?;
        let base = u64::from(fastrand_like()) << 20;
        let name = format!("ferry-{}-{base:x}", std::process::id());
        let opened = tokio::time::timeout(op_timeout, async {
            let connection = Arc::new(
                Connection::connect(&url, properties(&name))
                    .await
                    .map_err(amqp_err)?,
            );
            open_channel(connection, base).await
        })
        .await;
        let link = opened.map_err(|_| {
            Error::new(
                ErrorKind::Unavailable,
                format!("rabbitmq: no answer while connecting within {op_timeout:?}"),
            )
        })??;
        Ok(AmqpDriver {
            url,
            name,
            link: Mutex::new(Arc::new(link)),
            reconnecting: tokio::sync::Mutex::new(()),
            backoff: Mutex::new(Backoff::default()),
            op_timeout,
            next_generation: AtomicU64::new(base + 1),
            quorum,
            leases: Mutex::new(HashMap::new()),
            registry: Mutex::new(Registry::default()),
            dlq_lock: tokio::sync::Mutex::new(()),
            history_lock: tokio::sync::Mutex::new(()),
            limits: Limits::default(),
        })
    }

    /// The name this driver's connections carry (`connection_name` in the client
    /// properties, shown by the management UI and `rabbitmqctl list_connections`).
    pub fn connection_name(&self) -> &str {
        &self.name
    }

    /// The message counts of queues `names` (`None` for a missing one), by passive
    /// declares on a private channel (a failed passive declare closes its channel, and
    /// the shared one carries every lease), all in flight at once.
    pub(crate) async fn counts(&self, names: &[String]) -> Result<Vec<Option<u64>>> {
        let ch = self.private_channel().await?;
        let mut asks = tokio::task::JoinSet::new();
        for (i, name) in names.iter().enumerate() {
            let (ch, name) = (ch.clone(), name.clone());
            asks.spawn(async move {
                let passive = QueueDeclareOptions {
                    passive: true,
                    ..QueueDeclareOptions::default()
                };
                let r = ch
                    .queue_declare(&name, passive, FieldTable::default())
                    .await;
                (i, r.map(|q| u64::from(q.message_count())))
            });
        }
        let mut out = vec![None; names.len()];
        let mut missing = false;
        while let Some(joined) = asks.join_next().await {
            match joined {
                Ok((i, Ok(n))) => out[i] = Some(n),
                Ok((_, Err(_))) => missing = true,
                Err(e) => {
                    return Err(Error::new(
                        ErrorKind::Unavailable,
                        format!("rabbitmq: a count task failed: {e}"),
                    ));
                }
            }
        }
        if !missing {
            let _ = ch.close(200, "ok").await;
            return Ok(out);
        }
        // Some queue is missing (its error closed the channel, failing the rest too):
        // ask one by one, each on a channel of its own.
        for (i, name) in names.iter().enumerate() {
            out[i] = self.broker_has_queue(name).await?.map(u64::from);
        }
        Ok(out)
    }
}

#[async_trait]
impl Driver for AmqpDriver {
    fn limits(&self) -> Limits {
        self.limits
    }

    async fn send(&self, queue: &QueueName, batch: Vec<Message>) -> Result<SendReport> {
        self.bounded(
            "a send",
            ErrorKind::Indeterminate,
            per_item(batch.len(), Duration::from_millis(5)),
            async {
                self.limits.validate_batch(&batch)?;
                check_encodable(&batch)?;
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
                let events: Vec<Event> = stored
                    .iter()
                    .map(|m| history_event(&m.id, "sent", 0, None))
                    .collect();
                let (target, record) = history_record(queue, &events);
                publish_recorded(&self.ch().await?, &items, Some((&target, &record))).await?;
                let mut report = SendReport::default();
                report.enqueued = batch.len() as u64;
                Ok(report)
            },
        )
        .await
    }

    async fn publish(
        &self,
        topic: &TopicName,
        route_key: &str,
        batch: Vec<Message>,
    ) -> Result<PublishReport> {
        self.bounded(
            "a publish",
            ErrorKind::Indeterminate,
            per_item(batch.len(), Duration::from_millis(5)),
            async {
                validate_route_key(route_key)?;
                self.limits.validate_batch(&batch)?;
                check_encodable(&batch)?;
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
                    // RabbitMQ routes it, delayed or not (a delayed one through the
                    // topic's delay exchange into the bound queues' delay levels); an
                    // unroutable message comes back as an error.
                    let target = match m
                        .delay()
                        .map(|_| delay_secs(m.visible_at(now, Duration::ZERO)))
                    {
                        None | Some(0) => Target::new(topic_exchange(topic), route_key),
                        Some(secs) => Target {
                            exchange: topic_delay_exchange(topic),
                            key: route_key.to_string(),
                            delay_secs: Some(secs),
                        },
                    };
                    items.push((target, st));
                    enqueued += queues.len() as u64;
                }
                publish_many(&self.ch().await?, &items).await.map_err(|e| {
                    if e.kind() == ErrorKind::Unroutable {
                        Error::unroutable(topic.as_str(), route_key)
                    } else {
                        e
                    }
                })?;
                let events: Vec<Event> = stored
                    .iter()
                    .map(|m| history_event(&m.id, "sent", 0, None))
                    .collect();
                for q in &queues {
                    self.record(q, events.clone()).await;
                }
                let mut report = PublishReport::default();
                report.queues = queues;
                report.enqueued = enqueued;
                Ok(report)
            },
        )
        .await
    }

    async fn receive(&self, queue: &QueueName, options: ReceiveOptions) -> Result<Vec<Delivery>> {
        let received = self
            .bounded(
                "a receive",
                ErrorKind::Unavailable,
                options.wait,
                self.receive_now(queue, options),
            )
            .await;
        // A channel lost in the middle of a receive is an outage, not a bad receipt of
        // the caller's: the caller retries.
        received.map_err(|e| {
            if e.kind() == ErrorKind::StaleReceipt {
                Error::new(
                    ErrorKind::Unavailable,
                    format!("rabbitmq: the channel was lost during a receive: {e}"),
                )
            } else {
                e
            }
        })
    }

    async fn settle(&self, batch: Vec<Settlement>) -> Result<Vec<Result<()>>> {
        self.bounded(
            "a settle",
            ErrorKind::Unavailable,
            per_item(batch.len(), Duration::from_millis(20)),
            async {
                self.sweep().await;
                let mut out = Vec::with_capacity(batch.len());
                let mut events: BTreeMap<QueueName, Vec<Event>> = BTreeMap::new();
                let mut outage = None;
                for s in batch {
                    match self.settle_one_inner(s).await {
                        Err(e) if e.kind() == ErrorKind::Unavailable => {
                            outage = Some(e);
                            break;
                        }
                        Ok((queue, made)) => {
                            events.entry(queue).or_default().extend(made);
                            out.push(Ok(()));
                        }
                        Err(e) => out.push(Err(e)),
                    }
                }
                for (queue, events) in events {
                    self.record(&queue, events).await;
                }
                match outage {
                    Some(e) => Err(e),
                    None => Ok(out),
                }
            },
        )
        .await
    }

    async fn extend(&self, receipt: &Receipt, lease: Duration) -> Result<SystemTime> {
        self.bounded("an extend", ErrorKind::Unavailable, Duration::ZERO, async {
            if lease < Duration::from_millis(1) || lease > ferry_core::MAX_LEASE {
                return Err(Error::invalid_input("lease must be between 1ms and 7d"));
            }
            self.sweep().await;
            let stale = || Error::stale_receipt(receipt.queue().as_str(), receipt.message_id());
            let generation = match lock(&self.leases).get(receipt.token()) {
                Some(l) if l.queue == *receipt.queue() && l.stored.id == receipt.message_id() => {
                    l.generation
                }
                _ => return Err(stale()),
            };
            // The lease is only as good as its channel: once that is gone the broker
            // has handed the message back (maybe to someone else already).
            match self.holder(generation).await {
                Err(e) if e.kind() == ErrorKind::StaleReceipt => {
                    lock(&self.leases).remove(receipt.token());
                    return Err(stale());
                }
                r => r.map(|_| ())?,
            }
            let mut leases = lock(&self.leases);
            match leases.get_mut(receipt.token()) {
                Some(l) => {
                    l.until = SystemTime::now() + lease;
                    Ok(l.until)
                }
                None => Err(stale()),
            }
        })
        .await
    }

    async fn history(&self, queue: &QueueName, id: &str) -> Result<Vec<HistoryEvent>> {
        self.bounded_browse("a history lookup", self.op_timeout * 9, async {
            self.options(queue).await?;
            let _guard = self.history_lock.lock().await;
            let link = self.link().await?;
            let ch = link.connection.create_channel().await.map_err(amqp_err)?;
            let mut events = Vec::new();
            let result: Result<()> = async {
                while let Some(m) = ch
                    .basic_get(&history_name(queue), BasicGetOptions { no_ack: false })
                    .await
                    .map_err(amqp_err)?
                {
                    events.extend(
                        read_record(&m.delivery.data)
                            .into_iter()
                            .filter(|e| e.id() == id),
                    );
                }
                Ok(())
            }
            .await;
            let _ = ch.close(200, "ok").await;
            result?;
            Ok(of_message(events, id))
        })
        .await
    }

    async fn stats(&self, queue: Option<&QueueName>) -> Result<Vec<QueueStats>> {
        self.bounded(
            "a stats call",
            ErrorKind::Unavailable,
            self.op_timeout,
            async {
                self.sweep().await;
                let names: Vec<QueueName> = match queue {
                    Some(q) => {
                        self.options(q).await?;
                        vec![q.clone()]
                    }
                    None => lock(&self.registry).queues.keys().cloned().collect(),
                };
                let mut out = Vec::new();
                for q in names {
                    let mut of_queue = vec![q_name(&q), dlq_name(&q)];
                    of_queue.extend((0..DELAY_LEVELS).map(|k| delay_name(&q, k)));
                    let counts = self.counts(&of_queue).await?;
                    let Some(ready) = counts[0] else {
                        return Err(Error::queue_not_found(q.as_str()));
                    };
                    let dead = counts[1].unwrap_or(0);
                    let delayed = counts[2..].iter().flatten().sum();
                    let in_flight =
                        lock(&self.leases).values().filter(|l| l.queue == q).count() as u64;
                    // `oldest_ready_at` stays None: AMQP cannot look at a queue's head
                    // without taking it (see the crate docs).
                    out.push(QueueStats::new(q.as_str(), ready, delayed, in_flight, dead));
                }
                Ok(out)
            },
        )
        .await
    }
}
