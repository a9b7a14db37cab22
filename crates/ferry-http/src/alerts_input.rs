//! Turns a sampled [`Point`] into the alert engine's [`Sample`].

use std::time::Duration;

use crate::alerts::{QueueSample, Sample};
use crate::sample::Point;

/// The alert engine's view of a point.
pub(crate) fn sample(p: &Point) -> Sample {
    let at = ferry_core::time::from_millis(p.at);
    Sample {
        at,
        queues: p
            .queues
            .iter()
            .map(|(name, q)| QueueSample {
                queue: name.clone(),
                ready: q.ready,
                delayed: q.delayed,
                in_flight: q.in_flight,
                dead: q.dead,
                oldest_ready_at: q
                    .oldest_ready_age_ms
                    .and_then(|ms| at.checked_sub(Duration::from_millis(ms))),
                acked_total: q.acked_total,
                failed_total: q.failed_total,
            })
            .collect(),
    }
}
