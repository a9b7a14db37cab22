//! Measures what group commit buys: many concurrent single-message sends (the shape of
//! a web service sending one message per request), with group commit off (one fsync per
//! send) and on (concurrent sends share a commit), in one run so the ratio is fair on a
//! noisy machine.
//!
//! ```text
//! cargo run --release -p ferry-embedded --example group_commit -- [SENDS] [TASKS]
//! ```

use std::sync::Arc;
use std::time::Instant;

use ferry_core::{Driver, Message, QueueName, QueueOptions, Topology};
use ferry_embedded::{EmbeddedDriver, EmbeddedOptions};

async fn run(max_group: usize, sends: usize, tasks: usize) -> Result<f64, ferry_core::Error> {
    let dir = tempfile::tempdir().map_err(|e| ferry_core::Error::internal(e.to_string()))?;
    let options = EmbeddedOptions {
        max_group,
        ..EmbeddedOptions::default()
    };
    let driver = Arc::new(EmbeddedDriver::open_with(dir.path(), options)?);
    let q = QueueName::new("bench")?;
    driver.create_queue(&q, QueueOptions::default()).await?;
    let start = Instant::now();
    let mut joins = Vec::new();
    for _ in 0..tasks {
        let (d, q) = (driver.clone(), q.clone());
        let n = sends / tasks;
        joins.push(tokio::spawn(async move {
            for _ in 0..n {
                d.send(&q, vec![Message::new(vec![b'x'; 100])]).await?;
            }
            Ok::<(), ferry_core::Error>(())
        }));
    }
    for j in joins {
        j.await
            .map_err(|e| ferry_core::Error::internal(e.to_string()))??;
    }
    Ok((sends / tasks * tasks) as f64 / start.elapsed().as_secs_f64())
}

#[tokio::main]
async fn main() -> Result<(), ferry_core::Error> {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let sends = args.first().copied().unwrap_or(20_000);
    let tasks = args.get(1).copied().unwrap_or(64);
    for round in 1..=3 {
        let off = run(1, sends, tasks).await?;
        let on = run(512, sends, tasks).await?;
        println!(
            "round {round}: {tasks} tasks x single-message durable sends: group commit off {off:.0}/s, on {on:.0}/s, ratio {:.1}x",
            on / off
        );
    }
    Ok(())
}
