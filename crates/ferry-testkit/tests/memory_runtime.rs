//! The consumer runtime scenarios and the idempotency-store contract on the memory driver.

use std::sync::Arc;

use ferry_core::{Driver, MemoryDriver};

ferry_testkit::runtime_suite!(async { Arc::new(MemoryDriver::new()) as Arc<dyn Driver> });
