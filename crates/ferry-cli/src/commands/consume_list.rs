//! `ferry consume [QUEUE] --from-redis-list KEY --exec CMD`: a worker for a plain Redis
//! list that existing producers `LPUSH` to, so they keep working unchanged.
//!
//! The library's `ListBridge` moves the list's items into a ferry queue (at least once,
//! see `ferry_redis::list`); the ordinary `--exec` consumer runs on that queue beside it,
//! in this process, so retries, dead letters and history are ferry's. Both stop
//! together: on SIGINT/SIGTERM, when either fails for good, or, with `--until-empty`,
//! once the list and the queue are both empty.

use std::future::Future;
use std::sync::Arc;

use ferry::redis::{BridgeStats, ListBridge, RedisDriver, redact};
use ferry::{ConsumerReport, Driver, Error, Result};
use tokio::sync::watch;

use crate::args::ConsumeArgs;
use crate::commands::consume::{Worker, shutdown_signal, summary};

/// Moves the list into the queue and consumes it until stopped; prints one summary line.
pub async fn run(url: &str, key: String, args: ConsumeArgs) -> Result<()> {
    if !is_redis(url) {
        return Err(Error::invalid_input(format!(
            "--from-redis-list needs a Redis backend (--backend redis://HOST:PORT, rediss://…, redis+sentinel://…/MASTER or redis+cluster://…), not '{}'",
            redact(url)
        )));
    }
    let queue = match &args.queue {
        Some(q) => q.clone(),
        None => ListBridge::default_queue(&key)?,
    };
    let redis = RedisDriver::connect(url.trim()).await?;
    let mut bridge =
        ListBridge::new(redis.clone(), key, queue.clone())?.until_empty(args.until_empty);
    if let Some(grace) = args.reclaim_after {
        bridge = bridge.reclaim_after(grace);
    }
    bridge.ensure_queue().await?;
    let driver: Arc<dyn Driver> = Arc::new(redis);
    let worker = Worker::prepare(&driver, &args, queue).await?;

    let stop = Stop::new();
    let signal = shutdown_signal(args.grace)?;
    tokio::spawn({
        let stop = stop.clone();
        async move {
            signal.await;
            stop.fire();
        }
    });
    let (report, moved) = if args.until_empty {
        until_empty(&bridge, &worker, driver, &stop).await?
    } else {
        side_by_side(&bridge, &worker, driver, &stop).await?
    };
    eprintln!(
        "{}; {}",
        summary(worker.queue.as_str(), &report),
        list_summary(&bridge, &moved)
    );
    Ok(())
}

/// Whether `url` names a Redis deployment (any of the `redis…://` schemes).
fn is_redis(url: &str) -> bool {
    url.trim()
        .split_once("://")
        .is_some_and(|(scheme, _)| scheme.to_ascii_lowercase().starts_with("redis"))
}

/// The bridge as a task beside the consumer until a signal, or until either ends.
async fn side_by_side(
    bridge: &ListBridge,
    worker: &Worker,
    driver: Arc<dyn Driver>,
    stop: &Stop,
) -> Result<(ConsumerReport, BridgeStats)> {
    let task = tokio::spawn({
        let (bridge, stop) = (bridge.clone(), stop.clone());
        async move {
            let r = bridge.run(stop.wait()).await;
            // A bridge that cannot go on (the key is not a list) stops the consumer.
            stop.fire();
            r
        }
    });
    let report = worker.consumer(driver).run(stop.wait()).await;
    stop.fire();
    let moved = task
        .await
        .map_err(|e| Error::internal(format!("the list bridge task failed: {e}")))?;
    Ok((report?, moved?))
}

/// Rounds of "move what the list holds while consuming, until the queue is drained",
/// until a round ends with the list and the queue both empty (producers may push
/// while a round runs; the consumer may drain the queue before the first items arrive).
async fn until_empty(
    bridge: &ListBridge,
    worker: &Worker,
    driver: Arc<dyn Driver>,
    stop: &Stop,
) -> Result<(ConsumerReport, BridgeStats)> {
    let mut report = ConsumerReport::default();
    let mut moved = BridgeStats::default();
    loop {
        let (b, c) = tokio::join!(
            bridge.run(stop.wait()),
            worker.consumer(driver.clone()).run(stop.wait())
        );
        add_report(&mut report, &c?);
        add_stats(&mut moved, &b?);
        if stop.fired() {
            break;
        }
        let waiting = bridge.backlog().await?.waiting;
        let drained = driver
            .stats(Some(&worker.queue))
            .await?
            .iter()
            .all(|s| s.is_drained());
        if waiting == 0 && drained {
            break;
        }
    }
    Ok((report, moved))
}

fn add_report(total: &mut ConsumerReport, r: &ConsumerReport) {
    total.received += r.received;
    total.acked += r.acked;
    total.retried += r.retried;
    total.dead_lettered += r.dead_lettered;
    total.panicked += r.panicked;
    total.timed_out += r.timed_out;
    total.settle_errors += r.settle_errors;
    total.released += r.released;
    total.duplicates += r.duplicates;
    total.hook_errors += r.hook_errors;
}

fn add_stats(total: &mut BridgeStats, s: &BridgeStats) {
    total.moved += s.moved;
    total.enqueued += s.enqueued;
    total.duplicates += s.duplicates;
    total.reclaimed += s.reclaimed;
    total.rejected += s.rejected;
}

/// The list's part of the summary line.
fn list_summary(bridge: &ListBridge, s: &BridgeStats) -> String {
    let mut line = format!("redis list {}: moved {}", bridge.key(), s.moved);
    if s.reclaimed > 0 {
        line.push_str(&format!(
            ", sent again after a crash {} (duplicates possible)",
            s.reclaimed
        ));
    }
    if s.rejected > 0 {
        line.push_str(&format!(
            ", too large for ferry {} (kept raw in {})",
            s.rejected,
            bridge.keys().rejected
        ));
    }
    line
}

/// One stop signal shared by the consumer and the bridge; it stays fired.
#[derive(Debug, Clone)]
struct Stop(Arc<watch::Sender<bool>>);

impl Stop {
    fn new() -> Self {
        Stop(Arc::new(watch::channel(false).0))
    }

    fn fire(&self) {
        self.0.send_replace(true);
    }

    fn fired(&self) -> bool {
        *self.0.borrow()
    }

    /// A future resolving once fired.
    fn wait(&self) -> impl Future<Output = ()> + Send + 'static {
        let mut rx = self.0.subscribe();
        async move {
            let _ = rx.wait_for(|fired| *fired).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redis_urls() {
        for ok in [
            "redis://127.0.0.1:6379",
            "rediss://h",
            "redis+sentinel://h/m",
            "REDIS+CLUSTER://h",
        ] {
            assert!(is_redis(ok), "{ok}");
        }
        for bad in ["file:./data", "memory:", "amqp://h", "postgres://h", ""] {
            assert!(!is_redis(bad), "{bad}");
        }
    }

    #[tokio::test]
    async fn stop_stays_fired() {
        let stop = Stop::new();
        let early = stop.wait();
        assert!(!stop.fired());
        stop.fire();
        early.await;
        stop.wait().await;
        assert!(stop.fired());
    }
}
