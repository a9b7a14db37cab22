//! The receive → handle → settle loop.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;

use tracing::Instrument;

use super::{
    Admission, CircuitBreaker, Consumer, ConsumerReport, DeadLetterEvent, FailHook, Idempotency,
    Work,
};
use crate::driver::{Driver, ReceiveOptions, SettleAction, Settlement};
use crate::error::Result;
use crate::idempotency::{Claim, ClaimToken};
use crate::message::{Delivery, reason};
use crate::outcome::Outcome;
use crate::retry::RetryPolicy;

/// What happened to one delivery, reported by its task.
#[derive(Debug, Default)]
struct Tally {
    acked: bool,
    retried: bool,
    dead: bool,
    panicked: bool,
    timed_out: bool,
    settle_error: bool,
    released: bool,
    duplicate: bool,
    hook_error: bool,
}

#[derive(Clone)]
struct Shared {
    driver: Arc<dyn Driver>,
    work: Work,
    retry: RetryPolicy,
    queue_max: u32,
    lease: Duration,
    timeout: Option<Duration>,
    hard_stop: watch::Receiver<bool>,
    idempotency: Option<Idempotency>,
    fail_hook: Option<Arc<dyn FailHook>>,
    breaker: Option<CircuitBreaker>,
    rate: Option<super::RateLimit>,
}

/// Longest a dead-letter hook may run; it must not hold up shutdown forever.
const HOOK_TIMEOUT: Duration = Duration::from_secs(30);

/// Longest an `ensure` callback may run when the consumer has no timeout.
const ENSURE_TIMEOUT: Duration = Duration::from_secs(30);

impl Consumer {
    /// Runs until `shutdown` resolves (or, with `until_empty`, until the queue is
    /// drained). After shutdown it stops receiving, lets running handlers finish
    /// within the grace period, and hands unfinished ones back for another attempt.
    ///
    /// Fails only for errors that retrying cannot fix (the queue does not exist);
    /// transient backend errors are logged and retried with backoff.
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send) -> Result<ConsumerReport> {
        let cfg = self.config;
        let info = self.driver.get_queue(&cfg.queue).await?;
        let lease = cfg.lease.unwrap_or(info.options.lease);
        let prefetch = if cfg.prefetch == 0 {
            cfg.concurrency
        } else {
            cfg.prefetch
        };
        let (hard_tx, hard_rx) = watch::channel(false);
        let shared = Shared {
            driver: self.driver.clone(),
            work: self.work.clone(),
            retry: cfg.retry.clone(),
            queue_max: info.options.max_attempts,
            lease,
            timeout: cfg.timeout,
            hard_stop: hard_rx,
            idempotency: cfg.idempotency.clone(),
            fail_hook: cfg.fail_hook.clone(),
            breaker: cfg.breaker.clone(),
            rate: cfg.rate.clone(),
        };
        let mut fatal = None;
        let permits = Arc::new(Semaphore::new(cfg.concurrency));
        let batch_size = match &self.work {
            Work::Batch(_, size) => Some(*size),
            Work::Single(_) => None,
        };
        let mut tasks: JoinSet<Vec<Tally>> = JoinSet::new();
        let mut report = ConsumerReport::default();
        let mut backoff = Duration::from_millis(100);
        tokio::pin!(shutdown);

        loop {
            while let Some(done) = tasks.try_join_next() {
                record(&mut report, done);
            }
            let first = tokio::select! {
                biased;
                _ = &mut shutdown => break,
                p = permits.clone().acquire_owned() => match p {
                    Ok(p) => p,
                    Err(_) => break,
                },
            };
            // A tripped circuit breaker pauses receiving; in half-open it lets one
            // probe message through at a time.
            let mut probe = false;
            if let Some(breaker) = &cfg.breaker {
                tokio::select! {
                    biased;
                    _ = &mut shutdown => break,
                    admission = breaker.wait_until_allowed() => probe = admission == Admission::Probe,
                }
            }
            // Batch mode: one permit per batch, a whole batch per receive.
            let limit = if probe || batch_size.is_some() {
                1
            } else {
                prefetch
            };
            let mut held = vec![first];
            while held.len() < limit {
                match permits.clone().try_acquire_owned() {
                    Ok(p) => held.push(p),
                    Err(_) => break,
                }
            }
            // The receive is not raced against shutdown: dropping it mid-call could
            // lease messages nobody handles. Its long-poll wait bounds the latency.
            // In until-empty mode a short wait keeps the final "is it drained?" check
            // prompt; a retry or another process's send still wakes the receive early.
            let wait = if cfg.until_empty {
                cfg.poll.min(Duration::from_millis(100))
            } else {
                cfg.poll
            };
            let want = match batch_size {
                Some(size) if !probe => size,
                _ => held.len(),
            };
            let opts = ReceiveOptions::max(want).with_lease(lease).with_wait(wait);
            let received = tokio::select! {
                biased;
                r = self.driver.receive(&cfg.queue, opts) => r,
            };
            let deliveries = match received {
                Ok(d) => {
                    backoff = Duration::from_millis(100);
                    d
                }
                Err(e) if e.is_transient() => {
                    tracing::warn!(queue = %cfg.queue, error = %e, "receive failed; retrying");
                    drop(held);
                    if probe && let Some(breaker) = &cfg.breaker {
                        breaker.release_probe();
                    }
                    tokio::select! {
                        _ = &mut shutdown => break,
                        _ = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(10));
                    continue;
                }
                Err(e) => {
                    // Not fixable by retrying (the queue was deleted, the file is
                    // damaged): stop, but let running handlers finish first.
                    fatal = Some(e);
                    break;
                }
            };
            if deliveries.is_empty() {
                drop(held);
                if probe && let Some(breaker) = &cfg.breaker {
                    breaker.release_probe();
                }
                if cfg.until_empty && !tasks.is_empty() {
                    // Nothing to fetch: wait for a running handler instead of polling.
                    tokio::select! {
                        biased;
                        _ = &mut shutdown => break,
                        done = tasks.join_next() => if let Some(done) = done {
                            record(&mut report, done);
                        },
                    }
                    continue;
                }
                if cfg.until_empty {
                    match self.driver.stats(Some(&cfg.queue)).await {
                        Ok(stats) if stats.iter().all(|s| s.is_drained()) => break,
                        Ok(_) => {}
                        Err(e) if e.is_transient() => {}
                        Err(e) => {
                            fatal = Some(e);
                            break;
                        }
                    }
                }
                continue;
            }
            report.received += deliveries.len() as u64;
            if batch_size.is_some() {
                let Some(permit) = held.pop() else { continue };
                let shared = shared.clone();
                tasks.spawn(async move {
                    let tallies = process_batch(&shared, deliveries).await;
                    drop(permit);
                    tallies
                });
                continue;
            }
            let mut extra = Vec::new();
            for d in deliveries {
                let Some(permit) = held.pop() else {
                    // A driver returned more than asked for: hand the extras back
                    // instead of leaving them leased and unhandled.
                    extra.push(release_of(&d));
                    continue;
                };
                let shared = shared.clone();
                tasks.spawn(async move {
                    let tally = process(&shared, d).await;
                    drop(permit);
                    vec![tally]
                });
            }
            if !extra.is_empty() {
                tracing::error!(
                    count = extra.len(),
                    "driver returned more deliveries than asked for; releasing them"
                );
                let _ = self.driver.settle(extra).await;
            }
        }

        // Shutdown: let running handlers finish within the grace period, then ask the
        // rest to hand their messages back.
        let drain = async {
            while let Some(done) = tasks.join_next().await {
                record(&mut report, done);
            }
        };
        if tokio::time::timeout(cfg.grace, drain).await.is_err() {
            let _ = hard_tx.send(true);
            while let Some(done) = tasks.join_next().await {
                record(&mut report, done);
            }
        }
        match fatal {
            Some(e) => Err(e),
            None => Ok(report),
        }
    }
}

fn release_of(d: &Delivery) -> Settlement {
    Settlement {
        receipt: d.receipt.clone(),
        action: SettleAction::Release,
    }
}

/// Aborts the task when dropped, so a consumer task that is itself aborted (or whose
/// `run` future is dropped) never leaves a handler or a lease extender running on.
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

fn record(
    report: &mut ConsumerReport,
    done: std::result::Result<Vec<Tally>, tokio::task::JoinError>,
) {
    match done {
        Ok(tallies) => {
            for t in tallies {
                add(report, &t);
            }
        }
        Err(e) => {
            // The task wrapper itself does not panic; this is a bug, but the message is
            // safe: its lease expires and it is delivered again.
            tracing::error!(error = %e, "consumer task failed");
        }
    }
}

fn add(report: &mut ConsumerReport, t: &Tally) {
    {
        {
            report.acked += u64::from(t.acked);
            report.retried += u64::from(t.retried);
            report.dead_lettered += u64::from(t.dead);
            report.panicked += u64::from(t.panicked);
            report.timed_out += u64::from(t.timed_out);
            report.settle_errors += u64::from(t.settle_error);
            report.released += u64::from(t.released);
            report.duplicates += u64::from(t.duplicate);
            report.hook_errors += u64::from(t.hook_error);
        }
    }
}

async fn process(shared: &Shared, delivery: Delivery) -> Tally {
    let span = tracing::info_span!(
        "ferry.delivery",
        queue = %delivery.queue,
        id = %delivery.id,
        attempt = delivery.attempt,
        traceparent = delivery.headers.get("traceparent").map(String::as_str).unwrap_or(""),
    );
    process_in_span(shared, delivery).instrument(span).await
}

async fn process_in_span(shared: &Shared, delivery: Delivery) -> Tally {
    let mut tally = Tally::default();
    let receipt = delivery.receipt.clone();
    // The lease is kept alive from the start: claiming the idempotency key and asking
    // `ensure` may take a while too.
    let extender = AbortOnDrop(tokio::spawn(
        extend_lease(shared.driver.clone(), receipt.clone(), shared.lease).in_current_span(),
    ));
    // The rate limit is paid per message here, with the lease already kept alive, and
    // is given up at shutdown (the message goes back, not counted).
    if let Some(rate) = &shared.rate
        && !wait_or_stop(shared, rate.acquire()).await
    {
        tally.released = true;
        no_attempt(shared);
        return settle(shared, &delivery, SettleAction::Release, tally).await;
    }

    // Idempotency: claim the key before running anything.
    let mut claim = None;
    if let Some(idem) = &shared.idempotency {
        let key = (idem.key)(&delivery);
        match idem.store.claim(&key, shared.lease).await {
            Ok(Claim::Done) => {
                tally.duplicate = true;
                no_attempt(shared);
                return settle(shared, &delivery, SettleAction::Ack, tally).await;
            }
            Ok(Claim::Busy { until }) => {
                // Another worker is on the same key right now: wait a little, then
                // hand the message back without spending an attempt on it.
                let wait = until
                    .duration_since(SystemTime::now())
                    .unwrap_or_default()
                    .min(shared.lease / 2);
                let _ = wait_or_stop(shared, tokio::time::sleep(wait)).await;
                tally.released = true;
                no_attempt(shared);
                return settle(shared, &delivery, SettleAction::Release, tally).await;
            }
            Ok(Claim::Suspect(token)) => {
                if let Some(ensure) = &idem.ensure {
                    // The claim is kept alive while `ensure` decides (the lease already is).
                    let _claim_alive = AbortOnDrop(tokio::spawn(
                        extend_claim(idem.clone(), (key.clone(), token), shared.lease)
                            .in_current_span(),
                    ));
                    let limit = shared.timeout.unwrap_or(ENSURE_TIMEOUT);
                    let asked = tokio::time::timeout(limit, ensure.already_done(delivery.clone()))
                        .await
                        .unwrap_or_else(|_| {
                            Err(format!("timed out after {}", crate::format_duration(limit)).into())
                        });
                    match asked {
                        Ok(true) => {
                            let _ = idem.store.complete(&key, token, idem.retention).await;
                            tally.duplicate = true;
                            no_attempt(shared);
                            return settle(shared, &delivery, SettleAction::Ack, tally).await;
                        }
                        Ok(false) => {}
                        Err(e) => {
                            let _ = idem.store.release(&key, token).await;
                            let error = format!("ensure callback failed: {e}");
                            let action =
                                retry_or_dead(shared, &delivery, None, Some(error), &mut tally, "");
                            no_attempt(shared);
                            return settle(shared, &delivery, action, tally).await;
                        }
                    }
                }
                claim = Some((key, token));
            }
            Ok(Claim::Acquired(token)) => claim = Some((key, token)),
            Err(e) => {
                // The store is unreachable: do not run the handler blind, and do not
                // spend the message's attempts on an outage of the store.
                tracing::warn!(error = %e, "idempotency store failed; handing the message back");
                let pause = Duration::from_secs(1).min(shared.lease / 2);
                let _ = wait_or_stop(shared, tokio::time::sleep(pause)).await;
                tally.released = true;
                no_attempt(shared);
                return settle(shared, &delivery, SettleAction::Release, tally).await;
            }
        }
    }

    let claim_extender = claim
        .clone()
        .zip(shared.idempotency.clone())
        .map(|(c, idem)| {
            AbortOnDrop(tokio::spawn(
                extend_claim(idem, c, shared.lease).in_current_span(),
            ))
        });
    let Work::Single(handler) = shared.work.clone() else {
        return Tally::default();
    };
    let input = delivery.clone();
    let mut job = AbortOnDrop(tokio::spawn(
        async move { handler.handle(input).await }.in_current_span(),
    ));
    let mut hard_stop = shared.hard_stop.clone();
    let timeout = async {
        match shared.timeout {
            Some(t) => tokio::time::sleep(t).await,
            None => std::future::pending().await,
        }
    };
    let outcome = tokio::select! {
        // A handler that finished wins over a timeout or stop firing in the same poll.
        biased;
        joined = &mut job.0 => match joined {
            Ok(outcome) => Some(outcome),
            Err(e) if e.is_panic() => {
                tally.panicked = true;
                Some(Outcome::fail(format!("handler panicked: {}", panic_message(e))))
            }
            Err(e) => Some(Outcome::fail(format!("handler task failed: {e}"))),
        },
        _ = timeout => {
            job.0.abort();
            tally.timed_out = true;
            let t = shared.timeout.unwrap_or_default();
            Some(Outcome::fail(format!("handler timed out after {}", crate::format_duration(t))))
        }
        _ = hard_stop.wait_for(|stop| *stop) => {
            job.0.abort();
            None
        }
    };
    drop(claim_extender);
    // An aborted handler stops only at its next `.await`; one that blocks may still be
    // working. Its idempotency claim is then kept (it expires with the lease), so a
    // redelivery is treated as a suspected duplicate, not as fresh work.
    let cut_short = tally.timed_out || outcome.is_none();
    if let Some(breaker) = &shared.breaker
        && outcome.is_some()
    {
        breaker.record(matches!(outcome, Some(Outcome::Ack)));
    }

    let action = match outcome {
        // Shutdown cut the handler short: hand the message back, not counted.
        None => {
            tally.released = true;
            SettleAction::Release
        }
        Some(Outcome::Ack) => {
            tally.acked = true;
            SettleAction::Ack
        }
        Some(Outcome::Retry { after, error }) => {
            let delay = after.map(crate::time::after);
            retry_or_dead(shared, &delivery, delay, error, &mut tally, "")
        }
        Some(Outcome::DeadLetter { reason, error }) => {
            tally.dead = true;
            SettleAction::DeadLetter { reason, error }
        }
    };
    if let (Some((key, token)), Some(idem), false) = (&claim, &shared.idempotency, cut_short) {
        let ack = matches!(action, SettleAction::Ack);
        let mut wait = Duration::from_millis(50);
        for _ in 0..5 {
            let done = if ack {
                idem.store.complete(key, *token, idem.retention).await
            } else {
                idem.store.release(key, *token).await
            };
            match done {
                Ok(()) => break,
                Err(e) if e.is_transient() => {
                    tracing::warn!(error = %e, "idempotency store update failed; retrying");
                    tokio::time::sleep(wait).await;
                    wait *= 2;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "idempotency store update failed");
                    break;
                }
            }
        }
    }
    // The lease stays extended until the settlement is applied.
    let tally = settle(shared, &delivery, action, tally).await;
    drop(extender);
    tally
}

/// A delivery that ends without running the handler (work already done, key busy,
/// store down, shutdown) hands a half-open breaker's probe back, so the next message
/// can probe at once instead of after a whole cool-down.
fn no_attempt(shared: &Shared) {
    if let Some(breaker) = &shared.breaker {
        breaker.release_probe();
    }
}

/// Waits for `fut`, unless the hard stop comes first; true if `fut` finished.
async fn wait_or_stop(shared: &Shared, fut: impl std::future::Future<Output = ()>) -> bool {
    let mut hard_stop = shared.hard_stop.clone();
    tokio::select! {
        biased;
        () = fut => true,
        _ = hard_stop.wait_for(|stop| *stop) => false,
    }
}

/// A failed attempt: retry at `at` (or as the policy says), or dead-letter it when this
/// was the last attempt.
fn retry_or_dead(
    shared: &Shared,
    delivery: &Delivery,
    at: Option<SystemTime>,
    error: Option<String>,
    tally: &mut Tally,
    why: &str,
) -> SettleAction {
    let attempt = delivery.attempt;
    let error = error.or_else(|| (!why.is_empty()).then(|| why.to_string()));
    let last = attempt >= shared.retry.max_attempts.unwrap_or(shared.queue_max);
    let next = if last {
        None
    } else {
        at.or_else(|| {
            shared
                .retry
                .delay_after(attempt, shared.queue_max)
                .map(crate::time::after)
        })
    };
    match next {
        Some(not_before) => {
            tally.retried = true;
            SettleAction::Retry { not_before, error }
        }
        None => {
            tally.dead = true;
            let reason = if tally.timed_out {
                reason::TIMEOUT
            } else {
                reason::MAX_ATTEMPTS
            };
            SettleAction::DeadLetter {
                reason: reason.to_string(),
                error,
            }
        }
    }
}

/// Applies `action`, retrying transient failures; runs the dead-letter hook after a
/// successful dead-letter move.
async fn settle(
    shared: &Shared,
    delivery: &Delivery,
    action: SettleAction,
    mut tally: Tally,
) -> Tally {
    let hook_event = match (&action, &shared.fail_hook) {
        (SettleAction::DeadLetter { reason, error }, Some(_)) => Some(DeadLetterEvent {
            queue: delivery.queue.clone(),
            id: delivery.id.clone(),
            reason: reason.clone(),
            error: error.clone(),
            attempts: delivery.attempt,
            at: SystemTime::now(),
        }),
        _ => None,
    };
    let settlement = Settlement {
        receipt: delivery.receipt.clone(),
        action,
    };
    let mut wait = Duration::from_millis(50);
    for _ in 0..5 {
        match shared.driver.settle_one(settlement.clone()).await {
            Ok(()) => {
                if let (Some(event), Some(hook)) = (hook_event, &shared.fail_hook)
                    && let Err(e) = tokio::time::timeout(HOOK_TIMEOUT, hook.on_dead_letter(event))
                        .await
                        .unwrap_or_else(|_| Err("timed out".into()))
                {
                    tracing::error!(error = %e, "dead-letter hook failed; the dead letter is kept");
                    tally.hook_error = true;
                }
                return tally;
            }
            Err(e) if e.is_transient() => {
                tracing::warn!(error = %e, "settle failed; retrying");
                tokio::time::sleep(wait).await;
                wait *= 2;
            }
            Err(e) => {
                tracing::warn!(error = %e, "settle rejected");
                break;
            }
        }
    }
    // Not settled: the lease expires and the message is delivered again.
    Tally {
        settle_error: true,
        panicked: tally.panicked,
        timed_out: tally.timed_out,
        ..Tally::default()
    }
}

/// Keeps the lease (and the idempotency claim, if any) alive while the handler runs,
/// renewing at a third of its length.
async fn extend_lease(driver: Arc<dyn Driver>, receipt: crate::Receipt, lease: Duration) {
    let every = (lease / 3).max(Duration::from_millis(20));
    loop {
        tokio::time::sleep(every).await;
        if let Err(e) = driver.extend(&receipt, lease).await {
            tracing::warn!(id = receipt.message_id(), error = %e, "lease extension failed");
            if !e.is_transient() {
                return;
            }
        }
    }
}

/// Keeps an idempotency claim alive while the handler runs.
async fn extend_claim(idem: Idempotency, (key, token): (String, ClaimToken), lease: Duration) {
    let every = (lease / 3).max(Duration::from_millis(20));
    loop {
        tokio::time::sleep(every).await;
        if let Err(e) = idem.store.extend(&key, token, lease).await {
            tracing::warn!(error = %e, "idempotency claim extension failed");
            if !e.is_transient() {
                return;
            }
        }
    }
}

fn panic_message(e: tokio::task::JoinError) -> String {
    match e.try_into_panic() {
        Ok(payload) => payload
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "non-string panic payload".to_string()),
        Err(e) => e.to_string(),
    }
}

/// Runs a batch handler over `deliveries` and settles the whole batch in one call.
async fn process_batch(shared: &Shared, deliveries: Vec<Delivery>) -> Vec<Tally> {
    let Work::Batch(handler, _) = shared.work.clone() else {
        return Vec::new();
    };
    let span = tracing::info_span!("ferry.batch", size = deliveries.len());
    let extenders: Vec<AbortOnDrop<()>> = deliveries
        .iter()
        .map(|d| {
            AbortOnDrop(tokio::spawn(extend_lease(
                shared.driver.clone(),
                d.receipt.clone(),
                shared.lease,
            )))
        })
        .collect();
    if let Some(rate) = &shared.rate
        && !wait_or_stop(
            shared,
            rate.acquire_n(u32::try_from(deliveries.len()).unwrap_or(u32::MAX)),
        )
        .await
    {
        let releases = deliveries.iter().map(release_of).collect();
        let results = settle_all(shared, releases).await;
        return results
            .into_iter()
            .map(|r| Tally {
                released: r.is_ok(),
                settle_error: r.is_err(),
                ..Tally::default()
            })
            .collect();
    }
    let input = deliveries.clone();
    let mut job = AbortOnDrop(tokio::spawn(
        async move { handler.handle_batch(input).await }.instrument(span),
    ));
    let mut hard_stop = shared.hard_stop.clone();
    let timeout = async {
        match shared.timeout {
            Some(t) => tokio::time::sleep(t).await,
            None => std::future::pending().await,
        }
    };
    let mut tallies: Vec<Tally> = deliveries.iter().map(|_| Tally::default()).collect();
    let outcomes: Option<Vec<Outcome>> = tokio::select! {
        biased;
        joined = &mut job.0 => Some(match joined {
            Ok(mut outcomes) => {
                if outcomes.len() != deliveries.len() {
                    tracing::error!(got = outcomes.len(), want = deliveries.len(), "batch handler returned the wrong number of outcomes");
                }
                let missing = Outcome::fail(format!(
                    "batch handler returned {} outcomes for {} messages",
                    outcomes.len(),
                    deliveries.len()
                ));
                outcomes.resize(deliveries.len(), missing);
                outcomes
            }
            Err(e) => {
                let why = if e.is_panic() {
                    for t in &mut tallies {
                        t.panicked = true;
                    }
                    format!("batch handler panicked: {}", panic_message(e))
                } else {
                    format!("batch handler task failed: {e}")
                };
                deliveries.iter().map(|_| Outcome::fail(&why)).collect()
            }
        }),
        _ = timeout => {
            job.0.abort();
            for t in &mut tallies {
                t.timed_out = true;
            }
            let t = shared.timeout.unwrap_or_default();
            let why = format!("batch handler timed out after {}", crate::format_duration(t));
            Some(deliveries.iter().map(|_| Outcome::fail(&why)).collect())
        }
        _ = hard_stop.wait_for(|stop| *stop) => {
            job.0.abort();
            None
        }
    };
    drop(extenders);

    let mut settlements = Vec::with_capacity(deliveries.len());
    for (i, d) in deliveries.iter().enumerate() {
        let tally = &mut tallies[i];
        let action = match outcomes.as_ref().and_then(|o| o.get(i)).cloned() {
            None => {
                tally.released = true;
                SettleAction::Release
            }
            Some(Outcome::Ack) => {
                tally.acked = true;
                SettleAction::Ack
            }
            Some(Outcome::Retry { after, error }) => {
                retry_or_dead(shared, d, after.map(crate::time::after), error, tally, "")
            }
            Some(Outcome::DeadLetter { reason, error }) => {
                tally.dead = true;
                SettleAction::DeadLetter { reason, error }
            }
        };
        if let (Some(breaker), Some(_)) = (&shared.breaker, &outcomes) {
            breaker.record(matches!(action, SettleAction::Ack));
        }
        settlements.push(Settlement {
            receipt: d.receipt.clone(),
            action,
        });
    }
    let mut results = settle_all(shared, settlements.clone()).await;
    // A driver that answers fewer results than settlements broke its contract: the
    // unanswered ones count as not settled (their leases expire; they come back).
    while results.len() < settlements.len() {
        results.push(Err(crate::Error::internal(
            "driver returned no settle result",
        )));
    }
    for (i, r) in results.into_iter().enumerate() {
        match r {
            Ok(()) => {
                if let (SettleAction::DeadLetter { reason, error }, Some(hook)) =
                    (&settlements[i].action, &shared.fail_hook)
                {
                    let event = DeadLetterEvent {
                        queue: deliveries[i].queue.clone(),
                        id: deliveries[i].id.clone(),
                        reason: reason.clone(),
                        error: error.clone(),
                        attempts: deliveries[i].attempt,
                        at: SystemTime::now(),
                    };
                    let hooked = tokio::time::timeout(HOOK_TIMEOUT, hook.on_dead_letter(event))
                        .await
                        .unwrap_or_else(|_| Err("timed out".into()));
                    if let Err(e) = hooked {
                        tracing::error!(error = %e, "dead-letter hook failed; the dead letter is kept");
                        tallies[i].hook_error = true;
                    }
                }
            }
            Err(_) => {
                let t = &tallies[i];
                tallies[i] = Tally {
                    settle_error: true,
                    panicked: t.panicked,
                    timed_out: t.timed_out,
                    ..Tally::default()
                };
            }
        }
    }
    tallies
}

/// Settles a batch in one driver call, retrying transient failures of the call.
async fn settle_all(shared: &Shared, settlements: Vec<Settlement>) -> Vec<Result<()>> {
    let n = settlements.len();
    let mut wait = Duration::from_millis(50);
    for _ in 0..5 {
        match shared.driver.settle(settlements.clone()).await {
            Ok(results) => return results,
            Err(e) if e.is_transient() => {
                tracing::warn!(error = %e, "batch settle failed; retrying");
                tokio::time::sleep(wait).await;
                wait *= 2;
            }
            Err(e) => {
                tracing::warn!(error = %e, "batch settle rejected");
                break;
            }
        }
    }
    (0..n)
        .map(|_| {
            Err(crate::Error::new(
                crate::ErrorKind::Unavailable,
                "batch was not settled",
            ))
        })
        .collect()
}
