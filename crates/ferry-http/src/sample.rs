//! Samples of every queue's counts over time: the dashboard's charts, rates and failure
//! ratios, and the input of alert rules.
//!
//! The backend keeps counts, not history, so the server asks for them every
//! `sample_interval` and keeps the last `samples_kept` in a ring. Each point also holds
//! this process's cumulative sent/acked/failed counters, so rates are deltas between
//! points and a restart of the server shows as a reset, never as a negative rate.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use ferry_core::QueueStats;
use serde::Serialize;

/// One queue at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct QueuePoint {
    /// Ready messages.
    pub ready: u64,
    /// Delayed messages.
    pub delayed: u64,
    /// Leased messages.
    pub in_flight: u64,
    /// Dead letters.
    pub dead: u64,
    /// Age in milliseconds of the oldest ready message, when the backend tells.
    pub oldest_ready_age_ms: Option<u64>,
    /// Messages sent through this process so far.
    pub sent_total: u64,
    /// Deliveries acked through this process so far.
    pub acked_total: u64,
    /// Failed attempts (retried or dead-lettered) through this process so far.
    pub failed_total: u64,
}

/// Every queue at one moment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Point {
    /// Milliseconds since the Unix epoch.
    pub at: i64,
    /// By queue name.
    pub queues: BTreeMap<String, QueuePoint>,
}

/// The age of the oldest ready message of `stats` at `now`, if the backend reported it.
///
/// ```
/// use std::time::{Duration, SystemTime};
/// use ferry_core::QueueStats;
/// let now = SystemTime::now();
/// let s = QueueStats::new("q", 1, 0, 0, 0).with_oldest_ready_at(Some(now - Duration::from_secs(5)));
/// assert_eq!(ferry_http::oldest_ready_age(&s, now), Some(Duration::from_secs(5)));
/// ```
pub fn oldest_ready_age(stats: &QueueStats, now: SystemTime) -> Option<Duration> {
    stats
        .oldest_ready_at
        .map(|t| now.duration_since(t).unwrap_or(Duration::ZERO))
}

/// The ring of recent points.
#[derive(Debug)]
pub struct Series {
    kept: usize,
    points: Mutex<VecDeque<Point>>,
}

impl Series {
    /// A ring keeping `kept` points (at least 2).
    pub fn new(kept: usize) -> Self {
        Series {
            kept: kept.max(2),
            points: Mutex::new(VecDeque::new()),
        }
    }

    /// Adds a point, dropping the oldest when full.
    pub fn push(&self, point: Point) {
        let mut points = self.lock();
        if points.len() == self.kept {
            points.pop_front();
        }
        points.push_back(point);
    }

    /// Every point, oldest first.
    pub fn points(&self) -> Vec<Point> {
        self.lock().iter().cloned().collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<Point>> {
        self.points
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Builds a point from a stats call and this process's counters.
pub fn point(
    at: SystemTime,
    stats: &[QueueStats],
    totals: impl Fn(&str) -> (u64, u64, u64),
) -> Point {
    let queues = stats
        .iter()
        .map(|s| {
            let (sent_total, acked_total, failed_total) = totals(&s.name);
            let age =
                oldest_ready_age(s, at).map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
            (
                s.name.clone(),
                QueuePoint {
                    ready: s.ready,
                    delayed: s.delayed,
                    in_flight: s.in_flight,
                    dead: s.dead,
                    oldest_ready_age_ms: age,
                    sent_total,
                    acked_total,
                    failed_total,
                },
            )
        })
        .collect();
    Point {
        at: ferry_core::time::to_millis(at),
        queues,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ring_keeps_the_newest() {
        let s = Series::new(2);
        for at in 0..3 {
            s.push(Point {
                at,
                queues: BTreeMap::new(),
            });
        }
        assert_eq!(
            s.points().iter().map(|p| p.at).collect::<Vec<_>>(),
            vec![1, 2]
        );
    }
}
