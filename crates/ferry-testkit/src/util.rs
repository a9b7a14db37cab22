//! Small helpers shared by the suite and by backends' own tests.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use ferry_core::{QueueName, TopicName};

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// A name unique to this process run and call, so tests sharing one backend (one Redis,
/// one data file) never see each other's queues.
///
/// ```
/// let a = ferry_testkit::unique_name("q");
/// let b = ferry_testkit::unique_name("q");
/// assert_ne!(a, b);
/// assert!(a.starts_with("q-"));
/// ```
pub fn unique_name(prefix: &str) -> String {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!(
        "{prefix}-{}-{n}-{:06x}",
        std::process::id(),
        fastrand::u32(..0x100_0000)
    )
}

/// A fresh, unique queue name.
pub fn unique_queue(prefix: &str) -> QueueName {
    QueueName::new(unique_name(prefix)).unwrap_or_else(|e| panic!("bad test queue name: {e}"))
}

/// A fresh, unique topic name.
pub fn unique_topic(prefix: &str) -> TopicName {
    TopicName::new(unique_name(prefix)).unwrap_or_else(|e| panic!("bad test topic name: {e}"))
}

/// Polls `check` every 20 ms until it returns `Some`, or panics after `limit` with
/// `what` (explicit waits instead of fixed sleeps).
pub async fn eventually<T, F, Fut>(limit: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        if tokio::time::Instant::now() >= deadline {
            panic!("timed out after {limit:?} waiting for: {what}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
