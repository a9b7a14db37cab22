//! One data directory shared by the tests of a test binary (isolated by unique names),
//! which also exercises concurrent use of one file.

use std::sync::{Arc, OnceLock};

use ferry_core::Driver;
use ferry_embedded::EmbeddedDriver;

/// A handle on the shared directory, opened on first use.
pub fn shared() -> Arc<dyn Driver> {
    static DRIVER: OnceLock<(tempfile::TempDir, EmbeddedDriver)> = OnceLock::new();
    let (_, driver) = DRIVER.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
        let driver = EmbeddedDriver::open(dir.path()).unwrap_or_else(|e| panic!("open: {e}"));
        (dir, driver)
    });
    Arc::new(driver.clone())
}
