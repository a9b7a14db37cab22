//! The consumers this process runs, for the dashboard's consumers view and the breaker
//! gauges.
//!
//! Consumers in other processes do not report here (the backend has no registry of
//! them); what the dashboard shows of those is the in-flight count per queue.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use ferry_core::consumer::CircuitBreaker;
use serde::Serialize;

/// Live counters of one consumer, updated by whoever runs it.
#[derive(Debug)]
pub struct ConsumerStats {
    name: String,
    queue: String,
    concurrency: usize,
    breaker: Option<CircuitBreaker>,
    in_flight: AtomicU64,
    acked: AtomicU64,
    failed: AtomicU64,
}

impl ConsumerStats {
    /// A handler started.
    pub fn started(&self) {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
    }

    /// A handler finished, successfully or not.
    pub fn finished(&self, ok: bool) {
        // Saturating: a finished() without started() must not wrap to u64::MAX.
        let _ = self
            .in_flight
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1));
        if ok {
            self.acked.fetch_add(1, Ordering::Relaxed);
        } else {
            self.failed.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The consumer's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The queue it consumes.
    pub fn queue(&self) -> &str {
        &self.queue
    }

    /// A snapshot for the API.
    pub fn view(&self) -> ConsumerView {
        ConsumerView {
            name: self.name.clone(),
            queue: self.queue.clone(),
            concurrency: self.concurrency,
            in_flight: self.in_flight.load(Ordering::Relaxed),
            breaker: self.breaker.as_ref().map_or("none", |b| b.state().as_str()),
            acked: self.acked.load(Ordering::Relaxed),
            failed: self.failed.load(Ordering::Relaxed),
        }
    }

    pub(crate) fn breaker(&self) -> Option<&CircuitBreaker> {
        self.breaker.as_ref()
    }
}

/// What `GET /api/consumers` shows of one consumer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ConsumerView {
    /// Its name.
    pub name: String,
    /// The queue.
    pub queue: String,
    /// Handlers it may run at once.
    pub concurrency: usize,
    /// Handlers running now.
    pub in_flight: u64,
    /// `closed`, `open`, `half_open`, or `none` without a breaker.
    pub breaker: &'static str,
    /// Attempts that succeeded.
    pub acked: u64,
    /// Attempts that failed.
    pub failed: u64,
}

/// The consumers of this process.
///
/// ```
/// let registry = ferry_http::Consumers::default();
/// let stats = registry.register("mailer", "emails", 4, None);
/// stats.started();
/// stats.finished(true);
/// assert_eq!(registry.views()[0].acked, 1);
/// ```
#[derive(Debug, Default)]
pub struct Consumers {
    list: Mutex<Vec<Arc<ConsumerStats>>>,
}

impl Consumers {
    /// Adds a consumer and returns the counters to update as it runs.
    pub fn register(
        &self,
        name: impl Into<String>,
        queue: impl Into<String>,
        concurrency: usize,
        breaker: Option<CircuitBreaker>,
    ) -> Arc<ConsumerStats> {
        let stats = Arc::new(ConsumerStats {
            name: name.into(),
            queue: queue.into(),
            concurrency,
            breaker,
            in_flight: AtomicU64::new(0),
            acked: AtomicU64::new(0),
            failed: AtomicU64::new(0),
        });
        self.lock().push(stats.clone());
        stats
    }

    /// Every consumer's snapshot.
    pub fn views(&self) -> Vec<ConsumerView> {
        self.lock().iter().map(|c| c.view()).collect()
    }

    pub(crate) fn all(&self) -> Vec<Arc<ConsumerStats>> {
        self.lock().clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Arc<ConsumerStats>>> {
        self.list
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}
