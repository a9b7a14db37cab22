//! What a two-phase send costs next to a plain send, on each durable store.
//!
//! `cargo run --release -p ferry-postgres --example tx_bench -- [N] [ROUNDS]`
//! (default 500 messages, 3 rounds) sends N messages one at a time with
//! `Producer::send` and N with `Producer::send_tx` (an empty local transaction), on the
//! embedded store (temp dir, `synchronous=FULL`), Redis (127.0.0.1:6379, as configured)
//! and PostgreSQL (`FERRY_POSTGRES_URL`, default `postgres://postgres@127.0.0.1:5432/test`,
//! a scratch schema), alternating plain and two-phase rounds so both see the same
//! machine. A two-phase send is a prepare, the send and a remove: about three writes
//! for one, so the expected ratio is near 1/3.

use std::sync::Arc;
use std::time::Instant;

use ferry_core::tx::{Destination, LocalTxError};
use ferry_core::{Driver, Message, Producer, QueueName, QueueOptions, Result};

async fn round(driver: &Arc<dyn Driver>, n: usize, two_phase: bool) -> Result<f64> {
    let queue = QueueName::new(format!("txbench-{:08x}", fastrand::u32(..)))?;
    driver.create_queue(&queue, QueueOptions::default()).await?;
    let store = driver
        .tx_store()
        .ok_or_else(|| ferry_core::Error::invalid_input("no TxStore"))?;
    let producer = Producer::new(driver.clone());
    let start = Instant::now();
    for i in 0..n {
        let message = Message::new(format!("order {i}"));
        if two_phase {
            producer
                .send_tx(
                    store.as_ref(),
                    Destination::queue(queue.clone()),
                    message,
                    async { Ok::<_, LocalTxError>(()) },
                )
                .await
                .map_err(|e| ferry_core::Error::internal(e.to_string()))?;
        } else {
            producer.send(&queue, message).await?;
        }
    }
    let rate = n as f64 / start.elapsed().as_secs_f64();
    driver.delete_queue(&queue).await?;
    Ok(rate)
}

#[tokio::main]
async fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let n: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(500);
    let rounds: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(3);
    let dir = tempfile::tempdir().map_err(|e| ferry_core::Error::internal(e.to_string()))?;
    let pg = std::env::var("FERRY_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_string());
    let schema = format!("ferry_txbench_{:08x}", fastrand::u32(..));
    let backends: Vec<(&str, Arc<dyn Driver>)> = vec![
        (
            "embedded",
            Arc::new(ferry_embedded::EmbeddedDriver::open(dir.path())?),
        ),
        (
            "redis",
            Arc::new(
                ferry_redis::RedisDriver::connect_with(
                    ferry_redis::RedisConfig::new("redis://127.0.0.1:6379")
                        .with_prefix(format!("ferry-txbench-{:08x}", fastrand::u32(..))),
                )
                .await?,
            ),
        ),
        (
            "postgres",
            Arc::new(
                ferry_postgres::PostgresDriver::connect(&format!("{pg}?schema={schema}")).await?,
            ),
        ),
    ];
    println!("backend   plain msg/s (min-max)   send_tx msg/s (min-max)   ratio (min-max)");
    for (name, driver) in &backends {
        let (mut plain, mut tx) = (Vec::new(), Vec::new());
        for _ in 0..rounds {
            plain.push(round(driver, n, false).await?);
            tx.push(round(driver, n, true).await?);
        }
        let range = |v: &[f64]| {
            let lo = v.iter().cloned().fold(f64::MAX, f64::min);
            let hi = v.iter().cloned().fold(0.0, f64::max);
            (lo, hi)
        };
        let ratios: Vec<f64> = tx.iter().zip(&plain).map(|(t, p)| t / p).collect();
        let ((pl, ph), (tl, th), (rl, rh)) = (range(&plain), range(&tx), range(&ratios));
        println!(
            "{name:<9} {pl:>8.0}-{ph:<8.0}         {tl:>8.0}-{th:<8.0}           {rl:.2}-{rh:.2}"
        );
    }
    // The scratch schema (its name is generated above, never input).
    if let Ok(pool) = sqlx::PgPool::connect(&pg).await {
        let drop = format!("DROP SCHEMA IF EXISTS {schema} CASCADE");
        let _ = sqlx::query(sqlx::AssertSqlSafe(drop)).execute(&pool).await;
    }
    Ok(())
}
