//! The `TxStore` suite against the embedded store, each test in a fresh directory.

use std::sync::Arc;

async fn store() -> Arc<dyn ferry_core::tx::TxStore> {
    let dir = tempfile::tempdir().expect("tempdir");
    let driver = ferry_embedded::EmbeddedDriver::open(dir.path()).expect("open");
    // The directory must outlive the test: leak it (the OS cleans the temp dir).
    std::mem::forget(dir);
    Arc::new(driver.tx_store())
}

ferry_testkit::tx_store_suite!(store());

/// A record this ferry cannot read (a newer version's, or damaged) is skipped by claims,
/// not allowed to block every other prepared message.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreadable_record_does_not_block_claims() {
    use ferry_core::tx::{Destination, TxStore};
    let dir = tempfile::tempdir().expect("tempdir");
    let driver = ferry_embedded::EmbeddedDriver::open(dir.path()).expect("open");
    let store = driver.tx_store();
    let dest = Destination::queue(ferry_core::QueueName::new("q").expect("name"));
    let zero = std::time::Duration::ZERO;
    store
        .prepare(&dest, &ferry_core::Message::new("a").with_id("bad"), zero)
        .await
        .expect("prepare");
    store
        .prepare(&dest, &ferry_core::Message::new("b").with_id("good"), zero)
        .await
        .expect("prepare");
    let file = dir.path().join(ferry_embedded::DATA_FILE);
    let conn = rusqlite::Connection::open(&file).expect("sqlite");
    conn.execute("UPDATE tx_prepared SET body = x'c1' WHERE id = 'bad'", [])
        .expect("damage");
    drop(conn);
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    let claimed = store
        .claim_due(10, std::time::Duration::from_secs(60))
        .await
        .expect("claims still work");
    let ids: Vec<&str> = claimed.iter().map(|c| c.prepared.id()).collect();
    assert_eq!(ids, ["good"]);
}
