//! The in-memory driver passes the conformance suite.

use std::sync::Arc;

use ferry_core::{Driver, MemoryDriver};

ferry_testkit::conformance_suite!(async { Arc::new(MemoryDriver::new()) as Arc<dyn Driver> });
