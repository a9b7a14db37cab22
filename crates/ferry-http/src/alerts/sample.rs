//! The engine's only input: periodic observations of every queue.
//!
//! The server takes a [`Sample`] every few seconds and hands it to
//! [`Alerts::observe`](super::Alerts::observe). Rules judge time (for `for`, windows and
//! ages) from each sample's `at`, never from the wall clock, so the engine is a pure
//! function of its samples and tests can feed synthetic ones.

use std::time::SystemTime;

/// One observation of every queue at one instant.
///
/// ```
/// use std::time::SystemTime;
/// use ferry_http::alerts::{QueueSample, Sample};
///
/// let sample = Sample {
///     at: SystemTime::now(),
///     queues: vec![QueueSample { ready: 12, ..QueueSample::new("orders") }],
/// };
/// assert_eq!(sample.queues[0].backlog(), 12);
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    /// When the observation was taken.
    pub at: SystemTime,
    /// Every queue that exists at `at`. A queue missing from a sample is treated as
    /// deleted: its alerts resolve and its history is dropped.
    pub queues: Vec<QueueSample>,
}

/// One queue's numbers in a [`Sample`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueueSample {
    /// The queue's name.
    pub queue: String,
    /// Messages ready for delivery now.
    pub ready: u64,
    /// Messages waiting for their delay to pass.
    pub delayed: u64,
    /// Messages leased to consumers.
    pub in_flight: u64,
    /// Dead letters currently stored.
    pub dead: u64,
    /// Enqueue time of the oldest ready message, if any is ready.
    pub oldest_ready_at: Option<SystemTime>,
    /// Acks this process has seen since it started (monotonic).
    pub acked_total: u64,
    /// Failures this process has seen since it started (monotonic): retries plus
    /// dead-letters decided by consumers.
    pub failed_total: u64,
}

impl QueueSample {
    /// An empty queue named `queue`: all counts zero.
    pub fn new(queue: impl Into<String>) -> Self {
        QueueSample {
            queue: queue.into(),
            ready: 0,
            delayed: 0,
            in_flight: 0,
            dead: 0,
            oldest_ready_at: None,
            acked_total: 0,
            failed_total: 0,
        }
    }

    /// Messages waiting: ready + delayed (what [`RuleKind::Backlog`](super::RuleKind::Backlog) measures).
    pub fn backlog(&self) -> u64 {
        self.ready.saturating_add(self.delayed)
    }
}
