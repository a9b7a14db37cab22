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
