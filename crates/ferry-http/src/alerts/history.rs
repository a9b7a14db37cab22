//! The bounded memory of past samples that windowed rules need.
//!
//! Dead-letter growth and failure ratio are questions about a time window ("in the last
//! 5 minutes"), so the engine keeps, per queue, the counters from recent samples: as far
//! back as the longest window of any rule plus one older point as the window's baseline,
//! and never more than [`MAX_POINTS`] per queue whatever the sample rate. Gauges such as
//! backlog need no history: they are judged on the current sample alone.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, SystemTime};

use super::sample::Sample;

/// The most points kept per queue (one hour at a sample every ~0.5 s).
pub(super) const MAX_POINTS: usize = 8192;

/// The counters of one queue at one sample.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Point {
    at: SystemTime,
    dead: u64,
    acked: u64,
    failed: u64,
}

/// Per-queue counters of recent samples.
#[derive(Debug)]
pub(super) struct History {
    retention: Duration,
    last_at: Option<SystemTime>,
    queues: HashMap<String, VecDeque<Point>>,
}

impl History {
    /// A history that keeps `retention` of samples (the longest rule window).
    pub(super) fn new(retention: Duration) -> Self {
        History {
            retention,
            last_at: None,
            queues: HashMap::new(),
        }
    }

    /// Adds `sample`, forgets queues it does not list and points older than needed.
    ///
    /// A sample older than the previous one means the clock went back: windows computed
    /// across the jump would be nonsense, so the history starts over.
    pub(super) fn record(&mut self, sample: &Sample) {
        if self.last_at.is_some_and(|last| sample.at < last) {
            tracing::warn!("alerts: sample time went backwards; restarting rule windows");
            self.queues.clear();
        }
        self.last_at = Some(sample.at);
        let cutoff = sample.at.checked_sub(self.retention);
        let mut present = HashMap::with_capacity(sample.queues.len());
        for q in &sample.queues {
            let mut points = self.queues.remove(&q.queue).unwrap_or_default();
            points.push_back(Point {
                at: sample.at,
                dead: q.dead,
                acked: q.acked_total,
                failed: q.failed_total,
            });
            if let Some(cutoff) = cutoff {
                // Keep one point at or before the cutoff: it is the window's baseline.
                while points.len() >= 2 && points[1].at <= cutoff {
                    points.pop_front();
                }
            }
            while points.len() > MAX_POINTS {
                points.pop_front();
            }
            present.insert(q.queue.clone(), points);
        }
        self.queues = present;
    }

    /// Dead letters added to `queue` in the `window` before `now`: the sum of increases
    /// between consecutive samples, so a purge in between does not hide new ones.
    pub(super) fn dead_growth(&self, queue: &str, now: SystemTime, window: Duration) -> u64 {
        let Some(points) = self.queues.get(queue) else {
            return 0;
        };
        let cutoff = now.checked_sub(window);
        points
            .iter()
            .zip(points.iter().skip(1))
            .filter(|(_, b)| cutoff.is_none_or(|c| b.at > c))
            .map(|(a, b)| b.dead.saturating_sub(a.dead))
            .fold(0u64, u64::saturating_add)
    }

    /// Acks and failures of `queue` in the `window` before `now`, measured from the last
    /// point at or before the window's start (or the oldest point, early on).
    pub(super) fn counts_delta(
        &self,
        queue: &str,
        now: SystemTime,
        window: Duration,
    ) -> (u64, u64) {
        let Some(points) = self.queues.get(queue) else {
            return (0, 0);
        };
        let (Some(first), Some(last)) = (points.front(), points.back()) else {
            return (0, 0);
        };
        let baseline = match now.checked_sub(window) {
            Some(cutoff) => points
                .iter()
                .rev()
                .find(|p| p.at <= cutoff)
                .unwrap_or(first),
            None => first,
        };
        (
            last.acked.saturating_sub(baseline.acked),
            last.failed.saturating_sub(baseline.failed),
        )
    }

    #[cfg(test)]
    fn len(&self, queue: &str) -> usize {
        self.queues.get(queue).map_or(0, VecDeque::len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alerts::sample::QueueSample;
    use std::time::UNIX_EPOCH;

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_000_000 + secs)
    }

    fn sample(secs: u64, dead: u64, acked: u64, failed: u64) -> Sample {
        Sample {
            at: at(secs),
            queues: vec![QueueSample {
                dead,
                acked_total: acked,
                failed_total: failed,
                ..QueueSample::new("q")
            }],
        }
    }

    #[test]
    fn growth_sums_increases_across_a_purge() {
        let mut h = History::new(Duration::from_secs(600));
        for (t, dead) in [(0, 5), (10, 8), (20, 0), (30, 4)] {
            h.record(&sample(t, dead, 0, 0));
        }
        // 5->8 (+3), 8->0 (purge), 0->4 (+4)
        assert_eq!(h.dead_growth("q", at(30), Duration::from_secs(60)), 7);
        // Only the pairs ending after t=15: 8->0, 0->4.
        assert_eq!(h.dead_growth("q", at(30), Duration::from_secs(15)), 4);
        assert_eq!(h.dead_growth("missing", at(30), Duration::from_secs(60)), 0);
    }

    #[test]
    fn counts_use_the_baseline_before_the_window() {
        let mut h = History::new(Duration::from_secs(600));
        for (t, acked, failed) in [(0, 100, 10), (30, 150, 20), (60, 160, 40)] {
            h.record(&sample(t, 0, acked, failed));
        }
        assert_eq!(
            h.counts_delta("q", at(60), Duration::from_secs(30)),
            (10, 20)
        );
        assert_eq!(
            h.counts_delta("q", at(60), Duration::from_secs(45)),
            (60, 30)
        );
        // Longer than the history: from the oldest point.
        assert_eq!(
            h.counts_delta("q", at(60), Duration::from_secs(500)),
            (60, 30)
        );
    }

    #[test]
    fn retention_keeps_one_baseline_point_and_drops_missing_queues() {
        let mut h = History::new(Duration::from_secs(30));
        for t in 0..10 {
            h.record(&sample(t * 10, 0, t, 0));
        }
        // t=60 is the baseline at the cutoff, then 70, 80, 90.
        assert_eq!(h.len("q"), 4);
        assert_eq!(h.counts_delta("q", at(90), Duration::from_secs(30)), (3, 0));
        h.record(&Sample {
            at: at(100),
            queues: vec![],
        });
        assert_eq!(h.len("q"), 0);
    }

    #[test]
    fn time_going_back_restarts_the_history() {
        let mut h = History::new(Duration::from_secs(600));
        h.record(&sample(100, 1, 0, 0));
        h.record(&sample(110, 9, 0, 0));
        h.record(&sample(50, 9, 0, 0));
        assert_eq!(h.len("q"), 1);
        assert_eq!(h.dead_growth("q", at(50), Duration::from_secs(600)), 0);
    }
}
