//! One module per top-level command; each takes its parsed arguments and a driver and
//! returns `ferry::Result`, so error reporting and exit codes live in one place
//! (`main`/`exit`). `doctor` alone also chooses its exit status (1 for an error
//! finding), because its findings are output, not a failure to report.

pub mod audit;
pub mod bench;
pub mod consume;
pub mod consume_list;
pub mod demo;
pub mod dlq;
pub mod dlq_redrive;
pub mod doctor;
pub mod inspect;
pub mod queue;
pub mod relay;
pub mod send;
pub mod serve;
pub mod serve_demo;
pub mod stats;
pub mod topic;
pub mod tx;
