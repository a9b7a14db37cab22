//! The consumer runtime scenarios and the idempotency-store contract on the embedded
//! backend (one shared data directory; tests isolate by unique names).

use std::sync::{Arc, OnceLock};

use ferry_core::Driver;
use ferry_embedded::EmbeddedDriver;

fn shared() -> Arc<dyn Driver> {
    static DRIVER: OnceLock<(tempfile::TempDir, EmbeddedDriver)> = OnceLock::new();
    let (_, driver) = DRIVER.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
        let driver = EmbeddedDriver::open(dir.path()).unwrap_or_else(|e| panic!("open: {e}"));
        (dir, driver)
    });
    Arc::new(driver.clone())
}

ferry_testkit::runtime_suite!(async { shared() });
