//! The consumer runtime scenarios and the idempotency-store contract on the embedded
//! backend (one shared data directory; tests isolate by unique names).

mod common;

ferry_testkit::runtime_suite!(async { common::shared() });
