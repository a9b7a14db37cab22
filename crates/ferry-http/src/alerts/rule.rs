//! A validated rule: which queues it watches and how it reads a value from a sample.
//!
//! Reading is separate from the firing state machine ([`super::tracker`]) so each rule
//! kind's arithmetic can be tested on its own, and so a rule's current value shows in
//! the status even while it is below threshold.

use std::time::{Duration, SystemTime};

use super::config::{RuleConfig, RuleKind};
use super::history::History;
use super::sample::QueueSample;

/// Which queues a rule applies to.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Pattern {
    All,
    Exact(String),
    Prefix(String),
}

impl Pattern {
    fn parse(pattern: Option<&str>) -> Pattern {
        match pattern {
            None | Some("*") => Pattern::All,
            Some(p) => match p.strip_suffix('*') {
                Some(prefix) => Pattern::Prefix(prefix.to_string()),
                None => Pattern::Exact(p.to_string()),
            },
        }
    }

    fn matches(&self, queue: &str) -> bool {
        match self {
            Pattern::All => true,
            Pattern::Exact(name) => name == queue,
            Pattern::Prefix(prefix) => queue.starts_with(prefix.as_str()),
        }
    }
}

/// Checks a rule's `queue`: a name, a prefix ending in `*`, or `*`. Returns the message.
pub(super) fn validate_queue_pattern(pattern: &str) -> Result<(), String> {
    if pattern.trim().is_empty() {
        return Err("`queue` must not be empty; leave it out to watch every queue".into());
    }
    let body = pattern.strip_suffix('*').unwrap_or(pattern);
    if body.contains('*') {
        return Err(format!(
            "`queue` '{pattern}' may contain `*` only at the end (a prefix such as `orders.*`)"
        ));
    }
    Ok(())
}

/// A rule's reading of one queue at one sample.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Reading {
    /// The measured value; `None` when there is nothing to measure (a failure ratio
    /// with no events in its window).
    pub(super) value: Option<f64>,
    /// Whether the alert condition holds.
    pub(super) breached: bool,
}

/// A rule from the config, ready to evaluate.
#[derive(Debug)]
pub(super) struct Rule {
    pub(super) config: RuleConfig,
    pattern: Pattern,
    /// Indexes into the engine's webhooks this rule notifies.
    pub(super) webhooks: Vec<usize>,
}

impl Rule {
    pub(super) fn new(config: RuleConfig, webhooks: Vec<usize>) -> Self {
        Rule {
            pattern: Pattern::parse(config.queue.as_deref()),
            config,
            webhooks,
        }
    }

    /// Whether the rule watches `queue`.
    pub(super) fn matches(&self, queue: &str) -> bool {
        self.pattern.matches(queue)
    }

    /// The window of history this rule needs (zero for gauges).
    pub(super) fn window(&self) -> Duration {
        if self.config.kind.uses_window() {
            self.config.effective_window()
        } else {
            Duration::ZERO
        }
    }

    /// Reads `q` as sampled at `at`; `history` already contains this sample.
    pub(super) fn read(&self, q: &QueueSample, at: SystemTime, history: &History) -> Reading {
        let threshold = self.config.threshold;
        let value = match self.config.kind {
            RuleKind::Backlog => Some(q.backlog() as f64),
            RuleKind::OldestAge => Some(q.oldest_ready_at.map_or(0.0, |oldest| {
                at.duration_since(oldest).unwrap_or_default().as_secs_f64()
            })),
            RuleKind::DeadLetterGrowth => {
                Some(history.dead_growth(&q.queue, at, self.window()) as f64)
            }
            RuleKind::FailureRatio => {
                let (acked, failed) = history.counts_delta(&q.queue, at, self.window());
                let events = acked.saturating_add(failed);
                let ratio = (events > 0).then(|| failed as f64 / events as f64);
                return Reading {
                    value: ratio,
                    breached: events >= self.config.effective_min_events()
                        && ratio.is_some_and(|r| r > threshold),
                };
            }
        };
        Reading {
            value,
            breached: value.is_some_and(|v| v > threshold),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alerts::sample::Sample;
    use std::time::UNIX_EPOCH;

    #[test]
    fn patterns() {
        assert!(Pattern::parse(None).matches("x"));
        assert!(Pattern::parse(Some("*")).matches("x"));
        assert!(Pattern::parse(Some("orders")).matches("orders"));
        assert!(!Pattern::parse(Some("orders")).matches("orders.eu"));
        assert!(Pattern::parse(Some("orders.*")).matches("orders.eu"));
        assert!(!Pattern::parse(Some("orders.*")).matches("payments"));
        assert!(validate_queue_pattern("orders.*").is_ok());
        assert!(validate_queue_pattern("*.orders").is_err());
        assert!(validate_queue_pattern("").is_err());
    }

    #[test]
    fn oldest_age_and_ratio_readings() {
        let at = UNIX_EPOCH + Duration::from_secs(10_000);
        let history = History::new(Duration::from_secs(300));
        let age = Rule::new(RuleConfig::new("age", RuleKind::OldestAge, 60.0), vec![]);
        let mut q = QueueSample::new("q");
        assert_eq!(age.read(&q, at, &history).value, Some(0.0));
        q.oldest_ready_at = Some(at - Duration::from_secs(90));
        let r = age.read(&q, at, &history);
        assert_eq!(r.value, Some(90.0));
        assert!(r.breached);
        // A message enqueued "in the future" (clock skew) is age 0, not a panic.
        q.oldest_ready_at = Some(at + Duration::from_secs(5));
        assert!(!age.read(&q, at, &history).breached);

        let ratio = Rule::new(RuleConfig::new("r", RuleKind::FailureRatio, 0.5), vec![]);
        let mut history = History::new(Duration::from_secs(300));
        let mut q = QueueSample::new("q");
        history.record(&Sample {
            at,
            queues: vec![q.clone()],
        });
        assert_eq!(ratio.read(&q, at, &history).value, None);
        q.acked_total = 1;
        q.failed_total = 8;
        let later = at + Duration::from_secs(10);
        history.record(&Sample {
            at: later,
            queues: vec![q.clone()],
        });
        let r = ratio.read(&q, later, &history);
        assert!(r.value.is_some_and(|v| (v - 8.0 / 9.0).abs() < 1e-9));
        assert!(!r.breached, "9 events is below min_events 10");
    }
}
