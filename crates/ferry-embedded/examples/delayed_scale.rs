//! Millions of delayed messages cost disk, not memory, and do not slow down receiving
//! the ready ones: sends N messages delayed by an hour, then one ready message, and
//! times receives and stats against that backlog while reporting the process's peak RSS.
//!
//! ```text
//! cargo run --release -p ferry-embedded --example delayed_scale -- [N]
//! ```

use std::time::{Duration, Instant};

use ferry_core::{Driver, Message, QueueName, QueueOptions, ReceiveOptions, Topology};
use ferry_embedded::EmbeddedDriver;

fn peak_rss_mib() -> String {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<u64>().ok())
        })
        .map_or_else(|| "?".to_string(), |kb| format!("{}", kb / 1024))
}

#[tokio::main]
async fn main() -> Result<(), ferry_core::Error> {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let dir = tempfile::tempdir().map_err(|e| ferry_core::Error::internal(e.to_string()))?;
    let driver = EmbeddedDriver::open(dir.path())?;
    let q = QueueName::new("delayed")?;
    driver.create_queue(&q, QueueOptions::default()).await?;
    let start = Instant::now();
    let mut sent = 0;
    while sent < n {
        let batch: Vec<Message> = (0..1000.min(n - sent))
            .map(|_| Message::new(vec![b'x'; 100]).with_delay(Duration::from_secs(3600)))
            .collect();
        sent += batch.len();
        driver.send(&q, batch).await?;
    }
    let send_s = start.elapsed().as_secs_f64();
    println!(
        "sent {n} delayed messages in {send_s:.1}s ({:.0}/s), peak RSS {} MiB",
        n as f64 / send_s,
        peak_rss_mib()
    );
    let t = Instant::now();
    let empty = driver.receive(&q, ReceiveOptions::max(10)).await?;
    println!(
        "receive with nothing ready: {} deliveries in {:.2} ms",
        empty.len(),
        t.elapsed().as_secs_f64() * 1000.0
    );
    driver.send(&q, vec![Message::new("now")]).await?;
    let t = Instant::now();
    let got = driver.receive(&q, ReceiveOptions::max(10)).await?;
    println!(
        "receive of the one ready message: {} delivery in {:.2} ms",
        got.len(),
        t.elapsed().as_secs_f64() * 1000.0
    );
    let t = Instant::now();
    let stats = driver.stats(Some(&q)).await?;
    println!(
        "stats: ready {} delayed {} in flight {} in {:.0} ms; peak RSS {} MiB; data file {} MiB",
        stats[0].ready,
        stats[0].delayed,
        stats[0].in_flight,
        t.elapsed().as_secs_f64() * 1000.0,
        peak_rss_mib(),
        std::fs::metadata(dir.path().join(ferry_embedded::DATA_FILE))
            .map(|m| m.len() / (1024 * 1024))
            .unwrap_or(0)
    );
    Ok(())
}
