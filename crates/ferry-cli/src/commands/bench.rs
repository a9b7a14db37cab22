//! `ferry bench`: throughput and per-call latency of a backend, measured end to end
//! through the same driver API applications use.
//!
//! Phase 1 sends N messages in batches from C concurrent producers; phase 2 drains them
//! with C concurrent consumers doing `receive(max = batch)` then one `settle` of acks.
//! Each phase is timed by wall clock; every call's latency is recorded for percentiles.
//! The output is two lines on stdout so results can be pasted into
//! `docs/benchmarks.md` or parsed by scripts; the settings go to stderr.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use ferry::{Driver, Error, Message, QueueName, QueueOptions, ReceiveOptions, Result, Settlement};
use tokio::task::JoinSet;

use crate::args::BenchArgs;
use crate::output::outln;

/// Runs the benchmark against `backend`.
pub async fn run(backend: &str, args: BenchArgs) -> Result<()> {
    let history = if args.no_history {
        Some(None)
    } else {
        args.history_retention.map(Some)
    };
    let driver = open(backend, args.no_group_commit, history).await?;
    let queue = QueueName::new(format!(
        "bench-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis())
    ))?;
    driver.create_queue(&queue, QueueOptions::default()).await?;
    eprintln!(
        "bench: backend {backend}{}, queue {queue}, {} messages of {} bytes, batch {}, {} concurrent tasks",
        if args.no_group_commit {
            " (group commit off)"
        } else {
            ""
        },
        args.messages,
        args.size,
        args.batch,
        args.consumers
    );
    let result = measure(&driver, &queue, &args).await;
    // Clean up even when the measurement failed.
    let cleanup = driver.delete_queue(&queue).await;
    let (enqueue, process) = result?;
    cleanup?;

    outln!(
        "enqueue_jobs_per_s={:.0} process_jobs_per_s={:.0}",
        per_second(args.messages, enqueue.wall),
        per_second(args.messages, process.wall)
    )?;
    outln!(
        "send_batch_p50_ms={:.2} send_batch_p99_ms={:.2} receive_ack_batch_p50_ms={:.2} receive_ack_batch_p99_ms={:.2}",
        ms(percentile(&enqueue.latencies, 0.50)),
        ms(percentile(&enqueue.latencies, 0.99)),
        ms(percentile(&process.latencies, 0.50)),
        ms(percentile(&process.latencies, 0.99)),
    )
}

/// Opens the backend; `--no-group-commit` and `--no-history` need the embedded
/// driver's options.
async fn open(
    backend: &str,
    no_group_commit: bool,
    history: Option<Option<std::time::Duration>>,
) -> Result<Arc<dyn Driver>> {
    if !no_group_commit && history.is_none() {
        return ferry::connect_async(backend).await;
    }
    if !no_group_commit && backend.trim().starts_with("redis") {
        let mut config = ferry::redis::RedisConfig::new(backend.trim());
        config.history = history.unwrap_or(config.history);
        return Ok(Arc::new(
            ferry::redis::RedisDriver::connect_with(config).await?,
        ));
    }
    let path = backend
        .trim()
        .strip_prefix("file:")
        .map(|p| p.strip_prefix("//").unwrap_or(p))
        .filter(|p| !p.trim().is_empty())
        .ok_or_else(|| {
            Error::invalid_input(format!(
                "--no-group-commit, --no-history and --history-retention apply to file: backends only (--no-history and --history-retention also to redis), not '{backend}'; drop the flag or use --backend file:PATH"
            ))
        })?;
    let defaults = ferry::embedded::EmbeddedOptions::default();
    let options = ferry::embedded::EmbeddedOptions {
        max_group: if no_group_commit {
            1
        } else {
            defaults.max_group
        },
        history: history.unwrap_or(defaults.history),
        ..defaults
    };
    Ok(Arc::new(ferry::embedded::EmbeddedDriver::open_with(
        path, options,
    )?))
}

/// One phase's wall time and per-call latencies.
#[derive(Debug, Default)]
struct Phase {
    wall: Duration,
    latencies: Vec<Duration>,
}

async fn measure(
    driver: &Arc<dyn Driver>,
    queue: &QueueName,
    args: &BenchArgs,
) -> Result<(Phase, Phase)> {
    let payload = Bytes::from(vec![b'x'; args.size]);
    let tasks = args.consumers as u64;

    // Phase 1: C producers, each sending its share in batches.
    let started = Instant::now();
    let mut set = JoinSet::new();
    for t in 0..tasks {
        let share = args.messages / tasks + u64::from(t < args.messages % tasks);
        let (driver, queue, payload, batch) = (
            driver.clone(),
            queue.clone(),
            payload.clone(),
            args.batch as u64,
        );
        set.spawn(async move {
            let mut latencies = Vec::new();
            let mut left = share;
            while left > 0 {
                let n = left.min(batch);
                let messages: Vec<Message> =
                    (0..n).map(|_| Message::new(payload.clone())).collect();
                let t0 = Instant::now();
                driver.send(&queue, messages).await?;
                latencies.push(t0.elapsed());
                left -= n;
            }
            Ok::<_, Error>(latencies)
        });
    }
    let mut enqueue = Phase::default();
    while let Some(done) = set.join_next().await {
        enqueue.latencies.extend(joined(done)?);
    }
    enqueue.wall = started.elapsed();

    // Phase 2: C consumers, each receiving a batch and acking it in one settle call.
    let acked = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut set = JoinSet::new();
    for _ in 0..tasks {
        let (driver, queue, acked) = (driver.clone(), queue.clone(), acked.clone());
        let (total, batch) = (args.messages, args.batch);
        set.spawn(async move {
            let mut latencies = Vec::new();
            while acked.load(Ordering::Relaxed) < total {
                let t0 = Instant::now();
                let got = driver
                    .receive(
                        &queue,
                        ReceiveOptions::max(batch).with_wait(Duration::from_millis(50)),
                    )
                    .await?;
                if got.is_empty() {
                    continue;
                }
                let acks = got
                    .into_iter()
                    .map(|d| Settlement::ack(d.receipt))
                    .collect();
                let results = driver.settle(acks).await?;
                latencies.push(t0.elapsed());
                let ok = results.iter().filter(|r| r.is_ok()).count() as u64;
                acked.fetch_add(ok, Ordering::Relaxed);
            }
            Ok::<_, Error>(latencies)
        });
    }
    let mut process = Phase::default();
    while let Some(done) = set.join_next().await {
        process.latencies.extend(joined(done)?);
    }
    process.wall = started.elapsed();
    Ok((enqueue, process))
}

fn joined<T>(done: std::result::Result<Result<T>, tokio::task::JoinError>) -> Result<T> {
    done.map_err(|e| Error::internal(format!("benchmark task failed: {e}")))?
}

fn per_second(n: u64, wall: Duration) -> f64 {
    n as f64 / wall.as_secs_f64().max(1e-9)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// The `p`-quantile (nearest rank) of `samples`; zero when there are none.
fn percentile(samples: &[Duration], p: f64) -> Duration {
    if samples.is_empty() {
        return Duration::ZERO;
    }
    let mut sorted = samples.to_vec();
    sorted.sort_unstable();
    let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles() {
        let s: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(percentile(&s, 0.50), Duration::from_millis(50));
        assert_eq!(percentile(&s, 0.99), Duration::from_millis(99));
        assert_eq!(percentile(&[], 0.5), Duration::ZERO);
        assert_eq!(percentile(&s[..1], 0.99), Duration::from_millis(1));
    }
}
