//! `ferry demo`: the whole product in a few seconds, on a fresh machine, with no setup.
//!
//! It runs in its own temporary data directory (never the user's `--backend`), so it is
//! safe to run anywhere, and keeps that directory so the commands it prints at the end
//! work on the data it produced.

use std::sync::Arc;
use std::time::{Duration, Instant};

use ferry::embedded::EmbeddedDriver;
use ferry::{
    Backoff, Consumer, DeadLetterQuery, Delivery, Driver, Error, ErrorKind, Message, Outcome,
    QueueName, QueueOptions, Result, RetryPolicy,
};
use serde::{Deserialize, Serialize};

use crate::args::DemoArgs;
use crate::output::{Align, clip, outln, table};

const QUEUE: &str = "welcome-emails";
const MESSAGES: u32 = 300;
const MAX_ATTEMPTS: u32 = 3;
const WORKERS: usize = 8;

/// The demo's job payload.
#[derive(Debug, Serialize, Deserialize)]
struct Job {
    job: u32,
    to: String,
}

/// Runs the demo.
pub async fn run(args: DemoArgs) -> Result<()> {
    let io =
        |what: &str, e: std::io::Error| Error::new(ErrorKind::Io, what.to_string()).with_source(e);
    let parent = args.dir.unwrap_or_else(std::env::temp_dir);
    let dir = tempfile::Builder::new()
        .prefix("ferry-demo-")
        .tempdir_in(&parent)
        .map_err(|e| {
            io(
                &format!(
                    "cannot create a temporary directory in {}",
                    parent.display()
                ),
                e,
            )
        })?
        .keep();
    let backend = format!("file:{}", dir.display());

    outln!("ferry demo: durable queues with retries and dead letters")?;
    outln!(
        "data directory: {} (fresh; --backend is ignored)",
        dir.display()
    )?;
    outln!("")?;

    let driver: Arc<dyn Driver> = Arc::new(EmbeddedDriver::open(&dir)?);
    let queue = QueueName::new(QUEUE)?;
    driver
        .create_queue(
            &queue,
            QueueOptions::default().with_max_attempts(MAX_ATTEMPTS),
        )
        .await?;
    outln!("1. created queue '{QUEUE}' (max attempts {MAX_ATTEMPTS})")?;

    let started = Instant::now();
    let batches = 3;
    let per_batch = MESSAGES / batches;
    for b in 0..batches {
        let batch = (b * per_batch + 1..=(b + 1) * per_batch)
            .map(|n| {
                let job = Job {
                    job: n,
                    to: format!("user{n}@example.com"),
                };
                let payload = serde_json::to_vec(&job)
                    .map_err(|e| Error::internal("cannot encode a demo job").with_source(e))?;
                Ok(Message::new(payload).with_id(format!("email-{n:03}")))
            })
            .collect::<Result<Vec<_>>>()?;
        driver.send(&queue, batch).await?;
    }
    outln!(
        "2. sent {MESSAGES} messages in {batches} batches ({} ms; each batch is durable on disk before send returns)",
        started.elapsed().as_millis()
    )?;
    outln!(
        "3. consuming with {WORKERS} workers: every 10th message fails its first attempt, every 50th always fails"
    )?;

    let started = Instant::now();
    let report = Consumer::builder(queue.clone())
        .concurrency(WORKERS)
        .poll(Duration::from_millis(100))
        .until_empty(true)
        .retry_policy(RetryPolicy::default().with_backoff(Backoff::Exponential {
            initial: Duration::from_millis(50),
            max: Duration::from_millis(200),
            jitter: true,
        }))
        .build(driver.clone(), handle)
        .run(std::future::pending())
        .await?;
    outln!(
        "   done in {:.1}s: {} deliveries, {} processed, {} failed attempts retried with backoff, {} dead-lettered after {MAX_ATTEMPTS} attempts",
        started.elapsed().as_secs_f64(),
        report.received,
        report.acked,
        report.retried,
        report.dead_lettered
    )?;
    outln!("")?;

    outln!("4. stats (ferry stats):")?;
    let stats = driver.stats(Some(&queue)).await?;
    outln!("{}", indent(&super::stats::render_stats(&stats)))?;
    outln!("")?;

    outln!("5. dead letters (ferry dlq list {QUEUE}):")?;
    let dead = driver
        .list_dead_letters(&queue, DeadLetterQuery::page(0, 100))
        .await?;
    let rows: Vec<Vec<String>> = dead
        .iter()
        .map(|d| {
            vec![
                d.id.clone(),
                d.reason.clone(),
                d.attempts.to_string(),
                clip(d.last_error.as_deref().unwrap_or("-"), 70),
            ]
        })
        .collect();
    outln!(
        "{}",
        indent(&table(
            &[
                ("ID", Align::Left),
                ("REASON", Align::Left),
                ("ATTEMPTS", Align::Right),
                ("LAST_ERROR", Align::Left),
            ],
            &rows
        ))
    )?;
    outln!("")?;

    let b = shell_quote(&backend);
    let first = dead.first().map_or("email-050", |d| d.id.as_str());
    // The claim below is checked, not assumed: every message sent was acked or is
    // in the dead letters, and the queue holds nothing else.
    let accounted = report.acked + dead.len() as u64;
    if accounted != u64::from(MESSAGES) || !stats.iter().all(|s| s.is_drained()) {
        return Err(Error::internal(format!(
            "demo accounting failed: sent {MESSAGES}, acked {}, dead-lettered {}, stats {stats:?}",
            report.acked,
            dead.len()
        )));
    }
    outln!(
        "Nothing was lost: every message was either processed or is waiting in the dead letters."
    )?;
    outln!("Explore the demo's data (it stays in {}):", dir.display())?;
    outln!("  ferry --backend {b} stats")?;
    outln!("  ferry --backend {b} dlq show {QUEUE} {first}")?;
    outln!("  ferry --backend {b} dlq requeue {QUEUE} --all")?;
    outln!("  ferry --backend {b} consume {QUEUE} --exec 'cat; echo' --until-empty")?;
    outln!("  rm -rf {}", shell_quote(&dir.display().to_string()))?;
    Ok(())
}

/// The demo handler: pretends to send an email.
async fn handle(d: Delivery) -> Outcome {
    let job: Job = match d.json() {
        Ok(job) => job,
        Err(e) => return Outcome::reject(e),
    };
    tokio::time::sleep(Duration::from_millis(2)).await;
    if job.job.is_multiple_of(50) {
        return Outcome::fail(format!("smtp 550: no mailbox {} (always fails)", job.to));
    }
    if job.job.is_multiple_of(10) && d.attempt == 1 {
        return Outcome::fail("smtp: connection timed out (fails once)");
    }
    Outcome::Ack
}

fn indent(text: &str) -> String {
    text.lines()
        .map(|l| format!("   {l}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// `s` as one shell word.
fn shell_quote(s: &str) -> String {
    let safe = |c: char| c.is_ascii_alphanumeric() || "/._-:+=,@%".contains(c);
    if !s.is_empty() && s.chars().all(safe) {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting() {
        assert_eq!(shell_quote("file:/tmp/x"), "file:/tmp/x");
        assert_eq!(shell_quote("/tmp/a b"), "'/tmp/a b'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
    }
}
