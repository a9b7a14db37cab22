//! A rate limit and a circuit breaker on one consumer, with the breaker's state printed
//! as it changes.
//!
//! ```text
//! cargo run -p ferry --example breaker_and_rate
//! ```
//!
//! The handler "sends e-mails" through a mail server that is down for the first 800 ms.
//! The consumer starts at most 25 messages per second. While the server is down the
//! breaker opens after a few failures, so the consumer stops receiving (the messages wait
//! in the queue instead of spending their attempts); after each cool-down one probe
//! message tests the server; once a probe succeeds the breaker closes and the rest flow
//! at the rate limit.

use std::time::{Duration, Instant};

use ferry::consumer::{BreakerConfig, BreakerState, CircuitBreaker, RateLimit};
use ferry::{Backoff, Consumer, Delivery, Message, QueueName, QueueOptions, RetryPolicy};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let driver = ferry::connect(&format!("file:{}", dir.path().display()))?;
    let emails = QueueName::new("emails")?;
    driver
        .create_queue(&emails, QueueOptions::default())
        .await?;
    let batch = (0..30).map(|i| Message::new(format!("mail-{i}"))).collect();
    driver.send(&emails, batch).await?;

    let start = Instant::now();
    let server_back_at = start + Duration::from_millis(800);

    let rate = RateLimit::per_second(25).ok_or("a rate must not be zero")?;
    // Open when 3 of the last 5 attempts (at least 3 seen) failed; probe after 300 ms.
    let breaker = CircuitBreaker::named(
        "emails",
        BreakerConfig {
            window: 5,
            min_samples: 3,
            failure_ratio: 0.6,
            cool_down: Duration::from_millis(300),
        },
    );

    // Print each change of state, as a dashboard would show it.
    let watched = breaker.clone();
    let watcher = tokio::spawn(async move {
        let mut last = None;
        loop {
            let state = watched.state();
            if last != Some(state) {
                let left = state
                    .remaining()
                    .map(|d| format!(" (probe in {} ms)", d.as_millis()))
                    .unwrap_or_default();
                println!(
                    "{:>5} ms  breaker {state}{left}",
                    start.elapsed().as_millis()
                );
                last = Some(state);
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    });

    let seen = breaker.clone();
    let handler = move |d: Delivery| {
        // A handler that runs while the breaker is half-open is its probe.
        let state = seen.state();
        async move {
            let at = start.elapsed().as_millis();
            let up = Instant::now() >= server_back_at;
            if state != BreakerState::Closed || !up {
                let result = if up {
                    "sent"
                } else {
                    "failed: mail server down"
                };
                println!(
                    "{at:>5} ms  {} attempt {} {result} (breaker {state})",
                    d.id, d.attempt
                );
            }
            if up { Ok(()) } else { Err("mail server down") }
        }
    };
    let report = Consumer::builder(emails.clone())
        .concurrency(2)
        .rate_limit(rate)
        .circuit_breaker(breaker.clone())
        .retry_policy(
            RetryPolicy::default()
                .with_max_attempts(10)
                .with_backoff(Backoff::Fixed(Duration::from_millis(100))),
        )
        .until_empty(true)
        .build(driver.clone(), handler)
        .run(std::future::pending())
        .await?;
    watcher.abort();

    println!(
        "{:>5} ms  done: breaker {}, report {report:?}",
        start.elapsed().as_millis(),
        breaker.state()
    );
    let stats = driver.stats(Some(&emails)).await?;
    println!("queue: {stats:?}");
    Ok(())
}
