//! Effectively-once processing with the backend's idempotency store and an `ensure`
//! callback.
//!
//! ```text
//! cargo run -p ferry --example idempotent_consumer
//! ```
//!
//! The "database" is an in-process set of processed orders. Before the consumer starts,
//! the example plays an earlier worker that died in two places: mid-handler *after* its
//! effect on `order-2` (the order is in the database, the message was never acked) and
//! mid-handler *before* its effect on `order-3`. The consumer then asks `ensure` about
//! both suspects: `order-2` is acked without running the handler again, `order-3` runs.
//! Finally `order-1` is sent a second time after it was processed: the store remembers
//! the key as done and the handler does not run.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ferry::{Consumer, Delivery, Message, QueueName, QueueOptions};

type Database = Arc<Mutex<BTreeSet<String>>>;

fn insert(db: &Database, order: &str) {
    db.lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(order.to_string());
}

fn contains(db: &Database, order: &str) -> bool {
    db.lock().unwrap_or_else(|p| p.into_inner()).contains(order)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let driver = ferry::connect(&format!("file:{}", dir.path().display()))?;
    let orders = QueueName::new("orders")?;
    driver
        .create_queue(&orders, QueueOptions::default())
        .await?;
    // The embedded backend keeps claims and completions in its data file, next to the
    // messages, shared by every process using the directory.
    let store = driver
        .idempotency_store()
        .ok_or("this backend has no idempotency store")?;

    let sent = ["order-1", "order-2", "order-3"]
        .into_iter()
        .map(|id| Message::new(format!("{{\"order\":\"{id}\"}}")).with_id(id))
        .collect();
    driver.send(&orders, sent).await?;

    // An earlier worker claimed order-2 and order-3 (keys are `queue/message-id`) and
    // died; its claims expire with its lease (1 ms here, to keep the example short).
    let db: Database = Arc::default();
    store
        .claim("orders/order-2", Duration::from_millis(1))
        .await?;
    insert(&db, "order-2"); // it did the work, but never acked
    store
        .claim("orders/order-3", Duration::from_millis(1))
        .await?;
    tokio::time::sleep(Duration::from_millis(20)).await;

    let runs = Arc::new(AtomicU32::new(0));
    let consumer = |db: Database, runs: Arc<AtomicU32>| {
        let check = db.clone();
        Consumer::builder(orders.clone())
            .idempotency(store.clone())
            .idempotency_retention(Duration::from_secs(7 * 24 * 3600))
            // Asked only for suspects (an earlier worker died mid-handler on the key).
            .ensure(move |d: Delivery| {
                let done = contains(&check, &d.id);
                println!("ensure {}: already done? {done}", d.id);
                async move { Ok::<bool, std::io::Error>(done) }
            })
            .until_empty(true)
            .build(driver.clone(), move |d: Delivery| {
                let (db, runs) = (db.clone(), runs.clone());
                async move {
                    runs.fetch_add(1, Ordering::Relaxed);
                    println!("handler runs for {} (attempt {})", d.id, d.attempt);
                    insert(&db, &d.id); // the side effect
                }
            })
    };

    let report = consumer(db.clone(), runs.clone())
        .run(std::future::pending())
        .await?;
    println!(
        "first run: acked {}, skipped as already done {}, handler runs {}",
        report.acked,
        report.duplicates,
        runs.load(Ordering::Relaxed)
    );

    // The same order again (a producer retried after an indeterminate error, say).
    driver
        .send(
            &orders,
            vec![Message::new("{\"order\":\"order-1\"}").with_id("order-1")],
        )
        .await?;
    let report = consumer(db.clone(), runs.clone())
        .run(std::future::pending())
        .await?;
    println!(
        "second run: acked {}, skipped as already done {}, handler runs in total {}",
        report.acked,
        report.duplicates,
        runs.load(Ordering::Relaxed)
    );
    println!(
        "database: {:?}",
        db.lock().unwrap_or_else(|p| p.into_inner())
    );
    Ok(())
}
