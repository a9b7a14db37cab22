//! `ferry serve --demo`: a producer and a consumer on queue `demo.emails`, so a first
//! start shows live charts, retries, dead letters and a consumer with its breaker.
//!
//! Every 20th message always fails (it ends in the dead letters after 3 attempts), every
//! 7th fails its first attempt, and one payload is an HTML snippet, to show that the
//! dashboard prints payloads as text.

use std::sync::Arc;
use std::time::{Duration, Instant};

use ferry::consumer::{BreakerConfig, CircuitBreaker};
use ferry::{Backoff, Consumer, Delivery, Message, QueueName, QueueOptions, Result, RetryPolicy};
use ferry_http::{Server, Settled};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// The demo's queue.
pub const QUEUE: &str = "demo.emails";
const MAX_ATTEMPTS: u32 = 3;

/// The running demo.
pub struct Demo {
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl Demo {
    /// Stops the producer, lets the consumer finish its in-flight messages.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        for t in self.tasks {
            let _ = t.await;
        }
    }
}

fn payload(n: u64) -> String {
    if n == 3 {
        return r#"<script>alert("payloads are shown as text")</script>"#.to_string();
    }
    format!(r#"{{"to":"user{n}@example.com","template":"welcome","n":{n}}}"#)
}

/// Creates the queue and starts both.
pub async fn start(server: Arc<Server>) -> Result<Demo> {
    let driver = server.driver().clone();
    let queue = QueueName::new(QUEUE)?;
    driver
        .create_queue(
            &queue,
            QueueOptions::default().with_max_attempts(MAX_ATTEMPTS),
        )
        .await?;
    let (stop, stopped) = watch::channel(false);
    eprintln!("ferry serve: demo producer and consumer running on queue {QUEUE}");

    let producer = {
        let server = server.clone();
        let queue = queue.clone();
        let mut stopped = stopped.clone();
        tokio::spawn(async move {
            let mut n: u64 = 0;
            let mut tick = tokio::time::interval(Duration::from_millis(400));
            loop {
                tokio::select! {
                    _ = tick.tick() => {},
                    _ = stopped.changed() => return,
                }
                n += 1;
                let m = Message::new(payload(n)).with_id(format!("demo-{n:06}"));
                match server.driver().send(&queue, vec![m]).await {
                    Ok(report) => server.metrics().sent(QUEUE, report.enqueued),
                    Err(e) => tracing::warn!("demo producer: {e}"),
                }
            }
        })
    };

    let breaker = CircuitBreaker::named(QUEUE, BreakerConfig::default());
    let stats = server
        .consumers()
        .register("demo-mailer", QUEUE, 4, Some(breaker.clone()));
    let consumer = {
        let server = server.clone();
        let mut stopped = stopped.clone();
        tokio::spawn(async move {
            let handler_server = server.clone();
            let handler = move |d: Delivery| {
                let server = handler_server.clone();
                let stats = stats.clone();
                async move {
                    stats.started();
                    let started = Instant::now();
                    tokio::time::sleep(Duration::from_millis(fastrand::u64(20..200))).await;
                    let n: u64 = d.id.trim_start_matches("demo-").parse().unwrap_or(0);
                    let result = if n.is_multiple_of(20) || n == 3 {
                        Err(format!("mailbox user{n}@example.com does not exist"))
                    } else if n.is_multiple_of(7) && d.attempt == 1 {
                        Err("SMTP server busy, try again".to_string())
                    } else {
                        Ok(())
                    };
                    server.metrics().handler_took(QUEUE, started.elapsed());
                    stats.finished(result.is_ok());
                    match &result {
                        Ok(()) => {
                            server.metrics().settled(QUEUE, Settled::Acked);
                            if let Ok(age) =
                                std::time::SystemTime::now().duration_since(d.enqueued_at)
                            {
                                server.metrics().end_to_end(QUEUE, age);
                            }
                        }
                        Err(_) if d.attempt >= MAX_ATTEMPTS => {
                            server.metrics().settled(QUEUE, Settled::DeadLettered);
                        }
                        Err(_) => server.metrics().settled(QUEUE, Settled::Retried),
                    }
                    result.map_err(std::io::Error::other)
                }
            };
            let run = Consumer::builder(queue)
                .concurrency(4)
                .poll(Duration::from_millis(200))
                .circuit_breaker(breaker)
                .retry_policy(RetryPolicy::default().with_backoff(Backoff::Exponential {
                    initial: Duration::from_millis(500),
                    max: Duration::from_secs(5),
                    jitter: true,
                }))
                .build(server.driver().clone(), handler)
                .run(async move {
                    let _ = stopped.changed().await;
                })
                .await;
            if let Err(e) = run {
                tracing::warn!("demo consumer stopped: {e}");
            }
        })
    };
    Ok(Demo {
        stop,
        tasks: vec![producer, consumer],
    })
}
