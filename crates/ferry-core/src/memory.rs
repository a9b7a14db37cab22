//! The in-memory driver, for fast unit tests of the runtime and for examples.
//!
//! It keeps the whole contract (fenced leases, delays, priorities, dead letters, atomic
//! publish) with the same ordering rules as the durable backends, but nothing survives
//! the process. It is never a stand-in for a backend's own tests. Lookups are linear
//! scans: correctness and clarity over speed.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use bytes::Bytes;
use tokio::sync::Notify;

use crate::driver::{
    DeadLetterQuery, DeadLetters, Driver, PublishReport, ReceiveOptions, Selection, SendReport,
    SettleAction, Settlement, Topology,
};
use crate::error::{Error, ErrorKind, Result};
use crate::message::{
    Binding, DeadLetter, Delivery, HistoryEvent, Limits, Message, QueueInfo, QueueOptions,
    QueueStats, Receipt, reason,
};
use crate::name::{QueueName, TopicName, validate_pattern, validate_route_key};
use crate::route::route_matches;
use crate::time::{duration_millis, from_millis, now_millis};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Waiting for `avail_at` (ready once it passed).
    Waiting,
    /// Leased until `avail_at`.
    Leased,
}

#[derive(Debug, Clone)]
struct Stored {
    seq: u64,
    id: String,
    payload: Bytes,
    headers: BTreeMap<String, String>,
    route_key: Option<String>,
    priority: u8,
    enqueued_at: i64,
    state: State,
    avail_at: i64,
    attempts: u32,
    token: Option<u64>,
    last_error: Option<String>,
    first_failed_at: Option<i64>,
}

/// A dead letter and whether it is approved for re-drive (the approval belongs to
/// this death: a requeue ends it with the dead letter).
#[derive(Debug, Clone)]
struct Dead {
    letter: DeadLetter,
    approved: bool,
}

impl Dead {
    fn new(letter: DeadLetter) -> Self {
        Dead {
            letter,
            approved: false,
        }
    }
}

fn selects(selection: &Selection, id: &str) -> bool {
    match selection {
        Selection::All => true,
        Selection::Ids(ids) => ids.iter().any(|i| i == id),
    }
}

#[derive(Debug, Default)]
struct QueueState {
    options: QueueOptions,
    paused: bool,
    messages: HashMap<String, Stored>,
    /// Oldest death first.
    dead: Vec<Dead>,
    history: HashMap<String, Vec<HistoryEvent>>,
}

impl QueueState {
    fn log(&mut self, id: &str, event: &str, attempt: u32, detail: Option<String>, now: i64) {
        self.history
            .entry(id.to_string())
            .or_default()
            .push(HistoryEvent::new(from_millis(now), event, attempt, detail));
    }
}

#[derive(Debug, Default)]
struct Inner {
    queues: BTreeMap<QueueName, QueueState>,
    topics: BTreeMap<TopicName, BTreeSet<(QueueName, String)>>,
    next_seq: u64,
    next_token: u64,
}

/// An in-memory [`Driver`]; cheap to clone (clones share state).
///
/// ```
/// # tokio_test_block_on(async {
/// use ferry_core::*;
/// let d = MemoryDriver::new();
/// let q = QueueName::new("jobs")?;
/// d.create_queue(&q, QueueOptions::default()).await?;
/// d.send(&q, vec![Message::new("hi")]).await?;
/// let got = d.receive(&q, ReceiveOptions::max(10)).await?;
/// assert_eq!(got.len(), 1);
/// d.ack(&got[0].receipt).await?;
/// # Ok::<(), Error>(()) });
/// # fn tokio_test_block_on<F: std::future::Future>(f: F) -> F::Output {
/// #     tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(f)
/// # }
/// ```
#[derive(Debug, Clone, Default)]
pub struct MemoryDriver {
    inner: Arc<Mutex<Inner>>,
    notify: Arc<Notify>,
    limits: Limits,
    idempotency: crate::MemoryIdempotencyStore,
}

impl MemoryDriver {
    /// An empty driver with default [`Limits`].
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty driver with the given limits.
    pub fn with_limits(limits: Limits) -> Self {
        MemoryDriver {
            limits,
            ..Self::default()
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave the state half-updated in a way
        // that matters more than losing the process, so recover the guard.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn try_receive(
        &self,
        queue: &QueueName,
        max: usize,
        lease: Option<Duration>,
    ) -> Result<(Vec<Delivery>, Option<i64>)> {
        let mut inner = self.lock();
        let now = now_millis();
        let Inner {
            queues, next_token, ..
        } = &mut *inner;
        let q = queues
            .get_mut(queue)
            .ok_or_else(|| Error::queue_not_found(queue.as_str()))?;
        if q.paused {
            // Nothing is handed out, and nothing falls due for the long poll to wait on
            // (a resume wakes it).
            return Ok((Vec::new(), None));
        }
        reclaim(queue, q, now);
        let lease_ms = duration_millis(lease.unwrap_or(q.options.lease));
        let mut ready: Vec<&Stored> = q
            .messages
            .values()
            .filter(|m| m.state == State::Waiting && m.avail_at <= now)
            .collect();
        ready.sort_by_key(|m| (std::cmp::Reverse(m.priority), m.avail_at, m.seq));
        let ids: Vec<String> = ready.iter().take(max).map(|m| m.id.clone()).collect();
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            let Some(m) = q.messages.get_mut(&id) else {
                continue;
            };
            *next_token += 1;
            m.state = State::Leased;
            m.avail_at = now.saturating_add(lease_ms);
            m.attempts += 1;
            m.token = Some(*next_token);
            let attempt = m.attempts;
            out.push(Delivery {
                id: m.id.clone(),
                queue: queue.clone(),
                payload: m.payload.clone(),
                headers: m.headers.clone(),
                route_key: m.route_key.clone(),
                priority: m.priority,
                enqueued_at: from_millis(m.enqueued_at),
                attempt: m.attempts,
                lease_until: from_millis(m.avail_at),
                receipt: Receipt::new(queue.clone(), m.id.clone(), next_token.to_string()),
            });
            q.log(&id, "delivered", attempt, None, now);
        }
        let next_due = q.messages.values().map(|m| m.avail_at).min();
        Ok((out, next_due))
    }

    fn enqueue(
        inner: &mut Inner,
        queue: &QueueName,
        batch: &[Message],
        route_key: Option<&str>,
    ) -> (u64, Vec<String>) {
        let now = SystemTime::now();
        let now_ms = now_millis();
        let Inner {
            queues, next_seq, ..
        } = inner;
        let Some(q) = queues.get_mut(queue) else {
            return (0, Vec::new());
        };
        let mut dups = Vec::new();
        let mut n = 0;
        for m in batch {
            if q.messages.contains_key(m.id()) {
                dups.push(m.id().to_string());
                continue;
            }
            *next_seq += 1;
            let visible = m.visible_at(now, q.options.default_delay);
            let avail_at = if visible <= now {
                now_ms
            } else {
                crate::time::to_millis_ceil(visible)
            };
            q.messages.insert(
                m.id().to_string(),
                Stored {
                    seq: *next_seq,
                    id: m.id().to_string(),
                    payload: m.payload().clone(),
                    headers: m.headers().clone(),
                    route_key: route_key.map(str::to_string),
                    priority: m.priority(),
                    enqueued_at: now_ms,
                    state: State::Waiting,
                    avail_at,
                    attempts: 0,
                    token: None,
                    last_error: None,
                    first_failed_at: None,
                },
            );
            q.log(
                m.id(),
                "sent",
                0,
                route_key.map(|k| format!("route key {k}")),
                now_ms,
            );
            n += 1;
        }
        (n, dups)
    }
}

/// Turns expired leases back into waiting messages, or dead letters on the last attempt.
fn reclaim(queue: &QueueName, q: &mut QueueState, now: i64) {
    let expired: Vec<String> = q
        .messages
        .values()
        .filter(|m| m.state == State::Leased && m.avail_at <= now)
        .map(|m| m.id.clone())
        .collect();
    for id in expired {
        let Some(m) = q.messages.get_mut(&id) else {
            continue;
        };
        let attempt = m.attempts;
        if m.attempts >= q.options.max_attempts {
            if let Some(m) = q.messages.remove(&id) {
                q.dead.push(Dead::new(to_dead(
                    queue,
                    m,
                    reason::LEASE_EXPIRED,
                    None,
                    now,
                )));
                q.log(
                    &id,
                    "dead_lettered",
                    attempt,
                    Some(reason::LEASE_EXPIRED.into()),
                    now,
                );
            }
        } else {
            m.state = State::Waiting;
            m.first_failed_at.get_or_insert(now);
            q.log(&id, "lease_expired", attempt, None, now);
        }
    }
}

fn to_dead(queue: &QueueName, m: Stored, why: &str, error: Option<String>, now: i64) -> DeadLetter {
    DeadLetter {
        id: m.id,
        queue: queue.clone(),
        payload: m.payload,
        headers: m.headers,
        route_key: m.route_key,
        priority: m.priority,
        enqueued_at: from_millis(m.enqueued_at),
        attempts: m.attempts,
        reason: why.to_string(),
        last_error: error.or(m.last_error),
        first_failed_at: Some(from_millis(m.first_failed_at.unwrap_or(now))),
        dead_at: from_millis(now),
    }
}

fn parse_token(receipt: &Receipt) -> Result<u64> {
    receipt.token().parse().map_err(|_| {
        Error::new(
            ErrorKind::InvalidReceipt,
            "receipt was not issued by the memory driver",
        )
    })
}

#[async_trait]
impl Topology for MemoryDriver {
    async fn create_queue(&self, queue: &QueueName, options: QueueOptions) -> Result<()> {
        options.validate()?;
        self.lock().queues.entry(queue.clone()).or_default().options = options;
        Ok(())
    }

    async fn get_queue(&self, queue: &QueueName) -> Result<QueueInfo> {
        self.lock()
            .queues
            .get(queue)
            .map(|q| QueueInfo::new(queue.clone(), q.options).with_paused(q.paused))
            .ok_or_else(|| Error::queue_not_found(queue.as_str()))
    }

    async fn list_queues(&self) -> Result<Vec<QueueInfo>> {
        Ok(self
            .lock()
            .queues
            .iter()
            .map(|(n, q)| QueueInfo::new(n.clone(), q.options).with_paused(q.paused))
            .collect())
    }

    async fn set_paused(&self, queue: &QueueName, paused: bool) -> Result<()> {
        self.lock()
            .queues
            .get_mut(queue)
            .ok_or_else(|| Error::queue_not_found(queue.as_str()))?
            .paused = paused;
        if !paused {
            self.notify.notify_waiters();
        }
        Ok(())
    }

    async fn delete_queue(&self, queue: &QueueName) -> Result<()> {
        let mut inner = self.lock();
        if inner.queues.remove(queue).is_none() {
            return Err(Error::queue_not_found(queue.as_str()));
        }
        for bindings in inner.topics.values_mut() {
            bindings.retain(|(q, _)| q != queue);
        }
        Ok(())
    }

    async fn create_topic(&self, topic: &TopicName) -> Result<()> {
        self.lock().topics.entry(topic.clone()).or_default();
        Ok(())
    }

    async fn list_topics(&self) -> Result<Vec<TopicName>> {
        Ok(self.lock().topics.keys().cloned().collect())
    }

    async fn delete_topic(&self, topic: &TopicName) -> Result<()> {
        self.lock()
            .topics
            .remove(topic)
            .map(|_| ())
            .ok_or_else(|| Error::topic_not_found(topic.as_str()))
    }

    async fn bind(&self, topic: &TopicName, queue: &QueueName, pattern: &str) -> Result<()> {
        validate_pattern(pattern)?;
        let mut inner = self.lock();
        if !inner.queues.contains_key(queue) {
            return Err(Error::queue_not_found(queue.as_str()));
        }
        inner
            .topics
            .get_mut(topic)
            .ok_or_else(|| Error::topic_not_found(topic.as_str()))?
            .insert((queue.clone(), pattern.to_string()));
        Ok(())
    }

    async fn unbind(&self, topic: &TopicName, queue: &QueueName, pattern: &str) -> Result<()> {
        let mut inner = self.lock();
        let bindings = inner
            .topics
            .get_mut(topic)
            .ok_or_else(|| Error::topic_not_found(topic.as_str()))?;
        if bindings.remove(&(queue.clone(), pattern.to_string())) {
            Ok(())
        } else {
            Err(Error::invalid_input(format!(
                "topic '{topic}' has no binding to queue '{queue}' with pattern '{pattern}'"
            )))
        }
    }

    async fn list_bindings(&self, topic: &TopicName) -> Result<Vec<Binding>> {
        let inner = self.lock();
        let bindings = inner
            .topics
            .get(topic)
            .ok_or_else(|| Error::topic_not_found(topic.as_str()))?;
        Ok(bindings
            .iter()
            .map(|(q, p)| Binding::new(topic.clone(), q.clone(), p.clone()))
            .collect())
    }
}

#[async_trait]
impl DeadLetters for MemoryDriver {
    async fn list_dead_letters(
        &self,
        queue: &QueueName,
        query: DeadLetterQuery,
    ) -> Result<Vec<DeadLetter>> {
        let inner = self.lock();
        let q = inner
            .queues
            .get(queue)
            .ok_or_else(|| Error::queue_not_found(queue.as_str()))?;
        Ok(q.dead
            .iter()
            .filter(|d| query.reason.as_ref().is_none_or(|r| &d.letter.reason == r))
            .filter(|d| query.approved.is_none_or(|a| d.approved == a))
            .skip(usize::try_from(query.offset).unwrap_or(usize::MAX))
            .take(usize::try_from(query.limit).unwrap_or(usize::MAX))
            .map(|d| d.letter.clone())
            .collect())
    }

    async fn get_dead_letter(&self, queue: &QueueName, id: &str) -> Result<DeadLetter> {
        let inner = self.lock();
        let q = inner
            .queues
            .get(queue)
            .ok_or_else(|| Error::queue_not_found(queue.as_str()))?;
        q.dead
            .iter()
            .rev()
            .find(|d| d.letter.id == id)
            .map(|d| d.letter.clone())
            .ok_or_else(|| {
                Error::new(
                    ErrorKind::MessageNotFound,
                    format!("no dead letter '{id}' in queue '{queue}'"),
                )
            })
    }

    async fn requeue_dead_letters(&self, queue: &QueueName, selection: Selection) -> Result<u64> {
        let mut inner = self.lock();
        let Inner {
            queues, next_seq, ..
        } = &mut *inner;
        let q = queues
            .get_mut(queue)
            .ok_or_else(|| Error::queue_not_found(queue.as_str()))?;
        let now = now_millis();
        let mut requeued = 0;
        let mut keep = Vec::new();
        // Newest first, so the newest death of an id wins and older ones stay.
        for d in std::mem::take(&mut q.dead).into_iter().rev() {
            if !selects(&selection, &d.letter.id) || q.messages.contains_key(&d.letter.id) {
                keep.push(d);
                continue;
            }
            revive(q, next_seq, d.letter, now);
            requeued += 1;
        }
        keep.reverse();
        q.dead = keep;
        drop(inner);
        self.notify.notify_waiters();
        Ok(requeued)
    }

    async fn delete_dead_letters(&self, queue: &QueueName, selection: Selection) -> Result<u64> {
        let mut inner = self.lock();
        let q = inner
            .queues
            .get_mut(queue)
            .ok_or_else(|| Error::queue_not_found(queue.as_str()))?;
        let before = q.dead.len();
        q.dead.retain(|d| !selects(&selection, &d.letter.id));
        Ok((before - q.dead.len()) as u64)
    }

    async fn insert_dead_letters(
        &self,
        queue: &QueueName,
        letters: Vec<DeadLetter>,
    ) -> Result<u64> {
        self.limits.validate_dead_letters(&letters)?;
        let mut inner = self.lock();
        let q = inner
            .queues
            .get_mut(queue)
            .ok_or_else(|| Error::queue_not_found(queue.as_str()))?;
        let n = letters.len() as u64;
        for mut letter in letters {
            letter.queue = queue.clone();
            // Times to the millisecond, as every durable backend keeps them.
            letter.enqueued_at = from_millis(crate::time::to_millis(letter.enqueued_at));
            letter.dead_at = from_millis(crate::time::to_millis(letter.dead_at));
            letter.first_failed_at = letter
                .first_failed_at
                .map(|t| from_millis(crate::time::to_millis(t)));
            let detail = Some(letter.reason.clone());
            q.log(
                &letter.id,
                "dead_lettered",
                letter.attempts,
                detail,
                now_millis(),
            );
            q.dead.push(Dead::new(letter));
        }
        Ok(n)
    }

    async fn approve_dead_letters(&self, queue: &QueueName, selection: Selection) -> Result<u64> {
        let mut inner = self.lock();
        let q = inner
            .queues
            .get_mut(queue)
            .ok_or_else(|| Error::queue_not_found(queue.as_str()))?;
        let mut n = 0;
        for d in q.dead.iter_mut() {
            if !d.approved && selects(&selection, &d.letter.id) {
                d.approved = true;
                n += 1;
            }
        }
        Ok(n)
    }

    async fn redrive_approved(&self, queue: &QueueName, max: u64) -> Result<Vec<String>> {
        let mut inner = self.lock();
        let Inner {
            queues, next_seq, ..
        } = &mut *inner;
        let q = queues
            .get_mut(queue)
            .ok_or_else(|| Error::queue_not_found(queue.as_str()))?;
        let now = now_millis();
        let mut moved = Vec::new();
        let mut keep = Vec::with_capacity(q.dead.len());
        // Oldest death first; the lock makes the claim atomic.
        for d in std::mem::take(&mut q.dead) {
            let due = d.approved && (moved.len() as u64) < max;
            if !due || q.messages.contains_key(&d.letter.id) {
                keep.push(d);
                continue;
            }
            moved.push(d.letter.id.clone());
            revive(q, next_seq, d.letter, now);
        }
        q.dead = keep;
        drop(inner);
        if !moved.is_empty() {
            self.notify.notify_waiters();
        }
        Ok(moved)
    }
}

/// Puts dead letter `d` back into `q`, ready at `now`, attempts reset.
fn revive(q: &mut QueueState, next_seq: &mut u64, d: DeadLetter, now: i64) {
    *next_seq += 1;
    let id = d.id.clone();
    q.messages.insert(
        d.id.clone(),
        Stored {
            seq: *next_seq,
            id: d.id,
            payload: d.payload,
            headers: d.headers,
            route_key: d.route_key,
            priority: d.priority,
            enqueued_at: crate::time::to_millis(d.enqueued_at),
            state: State::Waiting,
            avail_at: now,
            attempts: 0,
            token: None,
            last_error: d.last_error,
            first_failed_at: None,
        },
    );
    q.log(&id, "requeued", 0, None, now);
}

#[async_trait]
impl Driver for MemoryDriver {
    fn limits(&self) -> Limits {
        self.limits
    }

    fn idempotency_store(&self) -> Option<Arc<dyn crate::IdempotencyStore>> {
        Some(Arc::new(self.idempotency.clone()))
    }

    async fn send(&self, queue: &QueueName, batch: Vec<Message>) -> Result<SendReport> {
        self.limits.validate_batch(&batch)?;
        let mut inner = self.lock();
        if !inner.queues.contains_key(queue) {
            return Err(Error::queue_not_found(queue.as_str()));
        }
        let (enqueued, duplicates) = Self::enqueue(&mut inner, queue, &batch, None);
        drop(inner);
        self.notify.notify_waiters();
        Ok(SendReport {
            enqueued,
            duplicates,
        })
    }

    async fn publish(
        &self,
        topic: &TopicName,
        route_key: &str,
        batch: Vec<Message>,
    ) -> Result<PublishReport> {
        validate_route_key(route_key)?;
        self.limits.validate_batch(&batch)?;
        let mut inner = self.lock();
        let bindings = inner
            .topics
            .get(topic)
            .ok_or_else(|| Error::topic_not_found(topic.as_str()))?;
        let targets: BTreeSet<QueueName> = bindings
            .iter()
            .filter(|(_, p)| route_matches(p, route_key))
            .map(|(q, _)| q.clone())
            .collect();
        if targets.is_empty() {
            return Err(Error::unroutable(topic.as_str(), route_key));
        }
        let mut report = PublishReport::default();
        for q in &targets {
            let (n, dups) = Self::enqueue(&mut inner, q, &batch, Some(route_key));
            report.enqueued += n;
            report.duplicates += dups.len() as u64;
        }
        report.queues = targets.into_iter().collect();
        drop(inner);
        self.notify.notify_waiters();
        Ok(report)
    }

    async fn receive(&self, queue: &QueueName, options: ReceiveOptions) -> Result<Vec<Delivery>> {
        options.validate()?;
        let deadline = tokio::time::Instant::now() + options.wait;
        loop {
            let notified = self.notify.notified();
            let (got, next_due) = self.try_receive(queue, options.max, options.lease)?;
            let now = tokio::time::Instant::now();
            if !got.is_empty() || now >= deadline {
                return Ok(got);
            }
            let mut sleep_for = deadline - now;
            if let Some(due) = next_due {
                let until_due =
                    Duration::from_millis(u64::try_from(due - now_millis()).unwrap_or(0));
                sleep_for = sleep_for.min(until_due.max(Duration::from_millis(1)));
            }
            tokio::select! {
                _ = notified => {}
                _ = tokio::time::sleep(sleep_for) => {}
            }
        }
    }

    async fn settle(&self, batch: Vec<Settlement>) -> Result<Vec<Result<()>>> {
        let mut inner = self.lock();
        let now = now_millis();
        let mut results = Vec::with_capacity(batch.len());
        let mut wake = false;
        for s in batch {
            let r = (|| {
                let token = parse_token(&s.receipt)?;
                let queue = s.receipt.queue();
                let q = inner
                    .queues
                    .get_mut(queue)
                    .ok_or_else(|| Error::queue_not_found(queue.as_str()))?;
                let id = s.receipt.message_id();
                let stale = || Error::stale_receipt(queue.as_str(), id);
                let m = q.messages.get_mut(id).ok_or_else(stale)?;
                if m.token != Some(token) {
                    return Err(stale());
                }
                let attempt = m.attempts;
                let (event, detail) = s.action.history_event();
                match s.action {
                    SettleAction::Ack => {
                        q.messages.remove(id);
                    }
                    SettleAction::Retry { not_before, error } => {
                        m.state = State::Waiting;
                        m.avail_at = if not_before <= SystemTime::now() {
                            now
                        } else {
                            crate::time::to_millis_ceil(not_before).max(now)
                        };
                        m.token = None;
                        m.last_error = error;
                        m.first_failed_at.get_or_insert(now);
                        wake = true;
                    }
                    SettleAction::Release => {
                        m.state = State::Waiting;
                        m.avail_at = now;
                        m.token = None;
                        m.attempts = m.attempts.saturating_sub(1);
                        wake = true;
                    }
                    SettleAction::DeadLetter { reason, error } => {
                        if let Some(m) = q.messages.remove(id) {
                            q.dead
                                .push(Dead::new(to_dead(queue, m, &reason, error, now)));
                        }
                    }
                }
                q.log(id, event, attempt, detail, now);
                Ok(())
            })();
            results.push(r);
        }
        drop(inner);
        if wake {
            self.notify.notify_waiters();
        }
        Ok(results)
    }

    async fn extend(&self, receipt: &Receipt, lease: Duration) -> Result<SystemTime> {
        let token = parse_token(receipt)?;
        let mut inner = self.lock();
        let queue = receipt.queue();
        let q = inner
            .queues
            .get_mut(queue)
            .ok_or_else(|| Error::queue_not_found(queue.as_str()))?;
        let id = receipt.message_id();
        match q.messages.get_mut(id) {
            Some(m) if m.token == Some(token) => {
                m.state = State::Leased;
                m.avail_at = now_millis()
                    .saturating_add(duration_millis(lease.min(crate::message::MAX_LEASE)));
                Ok(from_millis(m.avail_at))
            }
            _ => Err(Error::stale_receipt(queue.as_str(), id)),
        }
    }

    async fn history(&self, queue: &QueueName, id: &str) -> Result<Vec<HistoryEvent>> {
        let inner = self.lock();
        let q = inner
            .queues
            .get(queue)
            .ok_or_else(|| Error::queue_not_found(queue.as_str()))?;
        Ok(q.history.get(id).cloned().unwrap_or_default())
    }

    async fn stats(&self, queue: Option<&QueueName>) -> Result<Vec<QueueStats>> {
        let inner = self.lock();
        let now = now_millis();
        let one = |name: &QueueName, q: &QueueState| {
            let mut s = QueueStats::new(name.as_str(), 0, 0, 0, q.dead.len() as u64);
            let mut oldest: Option<i64> = None;
            for m in q.messages.values() {
                match m.state {
                    State::Leased => s.in_flight += 1,
                    State::Waiting if m.avail_at <= now => {
                        s.ready += 1;
                        oldest = Some(oldest.map_or(m.avail_at, |o| o.min(m.avail_at)));
                    }
                    State::Waiting => s.delayed += 1,
                }
            }
            s.with_oldest_ready_at(oldest.map(from_millis))
        };
        match queue {
            Some(name) => {
                let q = inner
                    .queues
                    .get(name)
                    .ok_or_else(|| Error::queue_not_found(name.as_str()))?;
                Ok(vec![one(name, q)])
            }
            None => Ok(inner.queues.iter().map(|(n, q)| one(n, q)).collect()),
        }
    }
}
