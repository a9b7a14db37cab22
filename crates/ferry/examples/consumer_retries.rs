//! A consumer whose handler fails some messages: retries with backoff, dead letters, a
//! dead-letter hook, and the run's report.
//!
//! ```text
//! cargo run -p ferry --example consumer_retries
//! ```
//!
//! Four kinds of messages go into a temporary embedded (`file:`) queue:
//! - `ok-*` succeed at once;
//! - `flaky-*` fail their first two attempts and succeed on the third;
//! - `broken-*` always fail and are dead-lettered after the last attempt (`max_attempts`);
//! - `invalid-*` are rejected: dead-lettered at once, without retries (`rejected`).

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use ferry::consumer::DeadLetterEvent;
use ferry::{
    Backoff, Consumer, DeadLetterQuery, Delivery, Message, Outcome, QueueName, QueueOptions,
    RetryPolicy,
};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let driver = ferry::connect(&format!("file:{}", dir.path().display()))?;
    let payments = QueueName::new("payments")?;
    driver
        .create_queue(&payments, QueueOptions::default())
        .await?;

    let batch = [
        "ok-1",
        "flaky-1",
        "ok-2",
        "broken-1",
        "invalid-1",
        "flaky-2",
    ]
    .into_iter()
    .map(|p| Message::new(p).with_id(p))
    .collect();
    driver.send(&payments, batch).await?;

    // Three attempts at most (the queue's default is 10), 50 ms before the first retry,
    // doubling up to 200 ms, with jitter.
    let policy = RetryPolicy::default()
        .with_max_attempts(3)
        .with_backoff(Backoff::Exponential {
            initial: Duration::from_millis(50),
            max: Duration::from_millis(200),
            jitter: true,
        });

    // The hook runs once each dead letter is durable, for example to page someone.
    let alerts = Arc::new(AtomicU32::new(0));
    let counted = alerts.clone();
    let hook = move |e: DeadLetterEvent| {
        let counted = counted.clone();
        async move {
            counted.fetch_add(1, Ordering::Relaxed);
            println!(
                "ALERT {} dead after {} attempt(s): {} ({})",
                e.id,
                e.attempts,
                e.reason,
                e.error.as_deref().unwrap_or("no error")
            );
            Ok::<(), std::io::Error>(())
        }
    };

    let handler = |d: Delivery| async move {
        let payload = String::from_utf8_lossy(&d.payload).into_owned();
        println!("handling {payload} (attempt {})", d.attempt);
        if payload.starts_with("flaky") && d.attempt < 3 {
            Outcome::fail(format!("upstream busy on attempt {}", d.attempt))
        } else if payload.starts_with("broken") {
            Outcome::fail("card declined by the test processor")
        } else if payload.starts_with("invalid") {
            Outcome::reject("no amount in the payload")
        } else {
            Outcome::Ack
        }
    };

    let report = Consumer::builder(payments.clone())
        .concurrency(2)
        .retry_policy(policy)
        .on_dead_letter(hook)
        .until_empty(true)
        .build(driver.clone(), handler)
        .run(std::future::pending())
        .await?;

    println!("\nreport: {report:?}");
    println!("alerts sent: {}", alerts.load(Ordering::Relaxed));
    println!("\ndead letters:");
    for d in driver
        .list_dead_letters(&payments, DeadLetterQuery::default())
        .await?
    {
        println!(
            "  {:<10} reason {:<12} attempts {} error {}",
            d.id,
            d.reason,
            d.attempts,
            d.last_error.as_deref().unwrap_or("-")
        );
    }
    Ok(())
}
