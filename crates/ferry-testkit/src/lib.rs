//! # ferry-testkit
//!
//! What proves a ferry backend correct:
//!
//! - [`conformance`]: the suite every driver passes, as plain async functions, and
//!   [`conformance_suite!`] to run all of them as tests;
//! - [`ledger`]: an append-only record of what a test sent, what handlers did and which
//!   faults it injected, and the checker that turns it into a verdict (nothing lost;
//!   duplicates only where a recorded fault explains them);
//! - [`tx`]: the suite every two-phase [`TxStore`](ferry_core::tx::TxStore) passes, and
//!   [`tx_store_suite!`] to run it;
//! - [`proxy`]: a TCP fault proxy (cut, blackhole, stall, refuse) for fault tests of
//!   network backends;
//! - small helpers: unique names so tests share a backend safely, and explicit waits.

pub mod conformance;
pub mod fault_script;
pub mod ledger;
pub mod proxy;
pub mod runtime;
pub mod tx;
mod util;

pub use util::{eventually, unique_name, unique_queue, unique_topic};

#[doc(hidden)]
pub mod __private {
    pub use ferry_core::Driver;
    pub use ferry_core::tx::TxStore;
}
