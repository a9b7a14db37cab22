//! The receive → handle → settle loop.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;

use super::{Consumer, ConsumerReport, Handler};
use crate::driver::{Driver, ReceiveOptions, SettleAction, Settlement};
use crate::error::Result;
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
}

#[derive(Clone)]
struct Shared {
    driver: Arc<dyn Driver>,
    handler: Arc<dyn Handler>,
    retry: RetryPolicy,
    queue_max: u32,
    lease: Duration,
    timeout: Option<Duration>,
    hard_stop: watch::Receiver<bool>,
}

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
            handler: self.handler,
            retry: cfg.retry.clone(),
            queue_max: info.options.max_attempts,
            lease,
            timeout: cfg.timeout,
            hard_stop: hard_rx,
        };
        let permits = Arc::new(Semaphore::new(cfg.concurrency));
        let mut tasks: JoinSet<Tally> = JoinSet::new();
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
            let mut held = vec![first];
            while held.len() < prefetch {
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
            let opts = ReceiveOptions::max(held.len())
                .with_lease(lease)
                .with_wait(wait);
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
                    tokio::select! {
                        _ = &mut shutdown => break,
                        _ = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(10));
                    continue;
                }
                Err(e) => return Err(e),
            };
            if deliveries.is_empty() {
                drop(held);
                if cfg.until_empty && !tasks.is_empty() {
                    // Nothing to fetch: wait for a running handler instead of polling.
                    if let Some(done) = tasks.join_next().await {
                        record(&mut report, done);
                    }
                    continue;
                }
                if cfg.until_empty {
                    let stats = self.driver.stats(Some(&cfg.queue)).await?;
                    if stats.iter().all(|s| s.is_drained()) {
                        break;
                    }
                }
                continue;
            }
            report.received += deliveries.len() as u64;
            for d in deliveries {
                let Some(permit) = held.pop() else { break };
                let shared = shared.clone();
                tasks.spawn(async move {
                    let tally = process(&shared, d).await;
                    drop(permit);
                    tally
                });
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
        Ok(report)
    }
}

fn record(report: &mut ConsumerReport, done: std::result::Result<Tally, tokio::task::JoinError>) {
    match done {
        Ok(t) => {
            report.acked += u64::from(t.acked);
            report.retried += u64::from(t.retried);
            report.dead_lettered += u64::from(t.dead);
            report.panicked += u64::from(t.panicked);
            report.timed_out += u64::from(t.timed_out);
            report.settle_errors += u64::from(t.settle_error);
        }
        Err(e) => {
            // The task wrapper itself does not panic; this is a bug, but the message is
            // safe: its lease expires and it is delivered again.
            tracing::error!(error = %e, "consumer task failed");
        }
    }
}

async fn process(shared: &Shared, delivery: Delivery) -> Tally {
    let mut tally = Tally::default();
    let receipt = delivery.receipt.clone();
    let attempt = delivery.attempt;
    let id = delivery.id.clone();

    let extender = tokio::spawn(extend_lease(
        shared.driver.clone(),
        receipt.clone(),
        shared.lease,
    ));
    let handler = shared.handler.clone();
    let mut job = tokio::spawn(async move { handler.handle(delivery).await });
    let mut hard_stop = shared.hard_stop.clone();
    let timeout = async {
        match shared.timeout {
            Some(t) => tokio::time::sleep(t).await,
            None => std::future::pending().await,
        }
    };
    let outcome = tokio::select! {
        joined = &mut job => match joined {
            Ok(outcome) => outcome,
            Err(e) if e.is_panic() => {
                tally.panicked = true;
                Outcome::fail(format!("handler panicked: {}", panic_message(e)))
            }
            Err(e) => Outcome::fail(format!("handler task failed: {e}")),
        },
        _ = timeout => {
            job.abort();
            tally.timed_out = true;
            let t = shared.timeout.unwrap_or_default();
            Outcome::fail(format!("handler timed out after {}", crate::format_duration(t)))
        }
        _ = hard_stop.wait_for(|stop| *stop) => {
            job.abort();
            Outcome::Retry {
                after: Some(Duration::ZERO),
                error: Some("worker shut down before the handler finished".to_string()),
            }
        }
    };
    extender.abort();

    let action = match outcome {
        Outcome::Ack => {
            tally.acked = true;
            SettleAction::Ack
        }
        Outcome::Retry { after, error } => {
            let next = if attempt >= shared.retry.max_attempts.unwrap_or(shared.queue_max) {
                None
            } else {
                after.or_else(|| shared.retry.delay_after(attempt, shared.queue_max))
            };
            match next {
                Some(delay) => {
                    tally.retried = true;
                    SettleAction::Retry {
                        not_before: SystemTime::now() + delay,
                        error,
                    }
                }
                None => {
                    tally.dead = true;
                    let why = if tally.timed_out {
                        reason::TIMEOUT
                    } else {
                        reason::MAX_ATTEMPTS
                    };
                    SettleAction::DeadLetter {
                        reason: why.to_string(),
                        error,
                    }
                }
            }
        }
        Outcome::DeadLetter { reason, error } => {
            tally.dead = true;
            SettleAction::DeadLetter { reason, error }
        }
    };

    let settlement = Settlement { receipt, action };
    let mut wait = Duration::from_millis(50);
    for _ in 0..5 {
        match shared.driver.settle_one(settlement.clone()).await {
            Ok(()) => return tally,
            Err(e) if e.is_transient() => {
                tracing::warn!(%id, error = %e, "settle failed; retrying");
                tokio::time::sleep(wait).await;
                wait *= 2;
            }
            Err(e) => {
                tracing::warn!(%id, error = %e, "settle rejected");
                break;
            }
        }
    }
    // Not settled: the lease expires and the message is delivered again.
    tally.acked = false;
    tally.retried = false;
    tally.dead = false;
    tally.settle_error = true;
    tally
}

/// Keeps the lease alive while the handler runs, renewing at a third of its length.
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
