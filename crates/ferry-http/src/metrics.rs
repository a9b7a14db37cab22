//! Prometheus metrics: queue depth by state, message counters, latency histograms,
//! consumers and breakers, HTTP requests.
//!
//! Depths come from the backend at scrape time (one `stats` call, bounded by the scrape
//! itself), so they hold for every producer and consumer of the backend, wherever they
//! run. Counters and histograms count what passes through this process: the API's sends,
//! receives and settlements, and the consumers it runs. The text format is encoded by
//! `prometheus-client`, the Prometheus project's Rust client.

use std::time::Duration;

use ferry_core::QueueStats;
use ferry_core::consumer::BreakerState;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct QueueLabel {
    queue: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct QueueStateLabel {
    queue: String,
    state: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ConsumerLabel {
    consumer: String,
    queue: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabel {
    method: String,
    route: String,
    status: u16,
}

type Histograms = Family<QueueLabel, Histogram, fn() -> Histogram>;

fn seconds_histogram() -> Histogram {
    // 1 ms .. ~65 s.
    Histogram::new(exponential_buckets(0.001, 2.0, 17))
}

/// The process's metrics.
pub struct Metrics {
    registry: Registry,
    depth: Family<QueueStateLabel, Gauge>,
    oldest_age: Family<QueueLabel, Gauge<f64, std::sync::atomic::AtomicU64>>,
    sent: Family<QueueLabel, Counter>,
    acked: Family<QueueLabel, Counter>,
    retried: Family<QueueLabel, Counter>,
    dead_lettered: Family<QueueLabel, Counter>,
    handler_duration: Histograms,
    end_to_end: Histograms,
    consumer_in_flight: Family<ConsumerLabel, Gauge>,
    breaker: Family<ConsumerLabel, Gauge>,
    backend_up: Gauge,
    requests: Family<RequestLabel, Counter>,
    audit_errors: Counter,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

/// What a settlement did, for the counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settled {
    /// Acked.
    Acked,
    /// Scheduled for another attempt.
    Retried,
    /// Moved to the dead letters.
    DeadLettered,
}

impl Metrics {
    /// Registers every metric.
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let depth = Family::<QueueStateLabel, Gauge>::default();
        let oldest_age = Family::default();
        let sent = Family::<QueueLabel, Counter>::default();
        let acked = Family::<QueueLabel, Counter>::default();
        let retried = Family::<QueueLabel, Counter>::default();
        let dead_lettered = Family::<QueueLabel, Counter>::default();
        let handler_duration = Histograms::new_with_constructor(seconds_histogram);
        let end_to_end = Histograms::new_with_constructor(seconds_histogram);
        let consumer_in_flight = Family::<ConsumerLabel, Gauge>::default();
        let breaker = Family::<ConsumerLabel, Gauge>::default();
        let backend_up = Gauge::default();
        let requests = Family::<RequestLabel, Counter>::default();
        let audit_errors = Counter::default();
        registry.register(
            "ferry_queue_messages",
            "Messages in the backend by queue and state (ready, delayed, in_flight, dead)",
            depth.clone(),
        );
        registry.register(
            "ferry_queue_oldest_ready_age_seconds",
            "How long the oldest ready message of the queue has waited",
            oldest_age.clone(),
        );
        registry.register(
            "ferry_messages_sent",
            "Messages sent or published through this process",
            sent.clone(),
        );
        registry.register(
            "ferry_messages_acked",
            "Deliveries acked through this process",
            acked.clone(),
        );
        registry.register(
            "ferry_messages_retried",
            "Failed attempts scheduled for another try through this process",
            retried.clone(),
        );
        registry.register(
            "ferry_messages_dead_lettered",
            "Messages moved to the dead letters through this process",
            dead_lettered.clone(),
        );
        registry.register(
            "ferry_handler_duration_seconds",
            "Time the handlers of this process's consumers took per attempt",
            handler_duration.clone(),
        );
        registry.register(
            "ferry_end_to_end_latency_seconds",
            "From enqueue to ack, for messages acked through this process",
            end_to_end.clone(),
        );
        registry.register(
            "ferry_consumer_in_flight",
            "Deliveries the consumers of this process are handling",
            consumer_in_flight.clone(),
        );
        registry.register(
            "ferry_circuit_breaker_state",
            "Circuit breaker of each consumer: 0 closed, 1 half open, 2 open",
            breaker.clone(),
        );
        registry.register(
            "ferry_backend_up",
            "1 when the last stats call to the backend succeeded",
            backend_up.clone(),
        );
        registry.register(
            "ferry_http_requests",
            "HTTP requests by route, method and status",
            requests.clone(),
        );
        registry.register(
            "ferry_audit_write_errors",
            "Audit entries that could not be written",
            audit_errors.clone(),
        );
        Metrics {
            registry,
            depth,
            oldest_age,
            sent,
            acked,
            retried,
            dead_lettered,
            handler_duration,
            end_to_end,
            consumer_in_flight,
            breaker,
            backend_up,
            requests,
            audit_errors,
        }
    }

    fn queue(queue: &str) -> QueueLabel {
        QueueLabel {
            queue: queue.to_string(),
        }
    }

    /// Counts `n` messages sent to `queue`.
    pub fn sent(&self, queue: &str, n: u64) {
        self.sent.get_or_create(&Self::queue(queue)).inc_by(n);
    }

    /// Counts one settlement of a delivery of `queue`.
    pub fn settled(&self, queue: &str, how: Settled) {
        let family = match how {
            Settled::Acked => &self.acked,
            Settled::Retried => &self.retried,
            Settled::DeadLettered => &self.dead_lettered,
        };
        family.get_or_create(&Self::queue(queue)).inc();
    }

    /// Records how long a handler ran.
    pub fn handler_took(&self, queue: &str, took: Duration) {
        self.handler_duration
            .get_or_create(&Self::queue(queue))
            .observe(took.as_secs_f64());
    }

    /// Records the time from enqueue to ack.
    pub fn end_to_end(&self, queue: &str, took: Duration) {
        self.end_to_end
            .get_or_create(&Self::queue(queue))
            .observe(took.as_secs_f64());
    }

    /// Counts one HTTP request.
    pub fn request(&self, method: &str, route: &str, status: u16) {
        self.requests
            .get_or_create(&RequestLabel {
                method: method.to_string(),
                route: route.to_string(),
                status,
            })
            .inc();
    }

    /// Counts an audit entry that could not be written.
    pub fn audit_write_failed(&self) {
        self.audit_errors.inc();
    }

    /// Sent, acked and failed (retried + dead-lettered) totals of `queue` so far.
    pub fn totals(&self, queue: &str) -> (u64, u64, u64) {
        let label = Self::queue(queue);
        let sent = self.sent.get_or_create(&label).get();
        let acked = self.acked.get_or_create(&label).get();
        let failed = self.retried.get_or_create(&label).get()
            + self.dead_lettered.get_or_create(&label).get();
        (sent, acked, failed)
    }

    /// Sets the consumer gauges.
    pub fn consumer(&self, consumer: &str, queue: &str, in_flight: u64, breaker: BreakerState) {
        let label = ConsumerLabel {
            consumer: consumer.to_string(),
            queue: queue.to_string(),
        };
        self.consumer_in_flight
            .get_or_create(&label)
            .set(i64::try_from(in_flight).unwrap_or(i64::MAX));
        let state = match breaker {
            BreakerState::Closed => 0,
            BreakerState::HalfOpen => 1,
            BreakerState::Open { .. } => 2,
        };
        self.breaker.get_or_create(&label).set(state);
    }

    /// Replaces the depth gauges with `stats` (queues that are gone disappear), or marks
    /// the backend down when the stats call failed.
    pub fn set_depths(&self, stats: Option<&[QueueStats]>, now: std::time::SystemTime) {
        let Some(stats) = stats else {
            self.backend_up.set(0);
            return;
        };
        self.backend_up.set(1);
        self.depth.clear();
        self.oldest_age.clear();
        for s in stats {
            for (state, value) in [
                ("ready", s.ready),
                ("delayed", s.delayed),
                ("in_flight", s.in_flight),
                ("dead", s.dead),
            ] {
                self.depth
                    .get_or_create(&QueueStateLabel {
                        queue: s.name.clone(),
                        state,
                    })
                    .set(i64::try_from(value).unwrap_or(i64::MAX));
            }
            let age = crate::sample::oldest_ready_age(s, now).map_or(0.0, |d| d.as_secs_f64());
            self.oldest_age
                .get_or_create(&Self::queue(&s.name))
                .set(age);
        }
    }

    /// The Prometheus text format of every metric.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &self.registry) {
            tracing::warn!("metrics encoding failed: {e}");
        }
        out
    }
}
