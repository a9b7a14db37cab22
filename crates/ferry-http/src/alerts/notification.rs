//! What is sent when an alert fires or resolves, and its wording for humans.
//!
//! One [`Notification`] is built per edge and rendered once per webhook format
//! ([`super::format`]); the human sentence is shared by every format so a Slack message
//! and a WeCom message say the same thing.

use std::fmt;
use std::time::{Duration, SystemTime};

use serde::Serialize;

use super::config::RuleKind;

/// Whether a notification announces a new problem or the end of one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum NotificationState {
    /// The condition held for the rule's `for`.
    Firing,
    /// A firing alert's condition cleared (or its queue disappeared).
    Resolved,
}

impl NotificationState {
    /// `"firing"` or `"resolved"`.
    pub fn as_str(self) -> &'static str {
        match self {
            NotificationState::Firing => "firing",
            NotificationState::Resolved => "resolved",
        }
    }
}

impl fmt::Display for NotificationState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One alert edge for one queue.
///
/// ```
/// use std::time::{Duration, SystemTime};
/// use ferry_http::alerts::{Notification, NotificationState, RuleKind};
///
/// let n = Notification {
///     alert: "orders-backlog".into(),
///     queue: "orders".into(),
///     state: NotificationState::Firing,
///     kind: RuleKind::Backlog,
///     value: 1500.0,
///     threshold: 1000.0,
///     at: SystemTime::now(),
///     hold_for: Duration::from_secs(120),
///     window: None,
/// };
/// assert_eq!(
///     n.message(),
///     "FIRING: orders-backlog on queue 'orders': backlog is 1500, above the threshold 1000 for 2m"
/// );
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct Notification {
    /// The rule's name.
    pub alert: String,
    /// The queue the rule fired for.
    pub queue: String,
    /// Firing or resolved.
    pub state: NotificationState,
    /// What the rule measures.
    pub kind: RuleKind,
    /// The value measured at `at` (0 when there was nothing to measure).
    pub value: f64,
    /// The rule's threshold.
    pub threshold: f64,
    /// The sample time of the edge.
    pub at: SystemTime,
    /// The rule's `for`.
    pub hold_for: Duration,
    /// The rule's window, for windowed kinds.
    pub window: Option<Duration>,
}

impl Notification {
    /// A short title: `[FIRING] orders-backlog: orders`.
    pub fn title(&self) -> String {
        format!(
            "[{}] {}: {}",
            self.state.as_str().to_uppercase(),
            self.alert,
            self.queue
        )
    }

    /// What is measured, in words: `backlog`, `dead letters added in 5m`, ...
    pub fn metric(&self) -> String {
        let window = self
            .window
            .map(ferry_core::format_duration)
            .unwrap_or_default();
        match self.kind {
            RuleKind::Backlog => "backlog".to_string(),
            RuleKind::OldestAge => "oldest ready message age".to_string(),
            RuleKind::DeadLetterGrowth => format!("dead letters added in {window}"),
            RuleKind::FailureRatio => format!("failure ratio over {window}"),
        }
    }

    /// The value in the rule's units (`1500`, `95s`, `12.5%`).
    pub fn value_text(&self) -> String {
        format_value(self.kind, self.value)
    }

    /// The threshold in the rule's units.
    pub fn threshold_text(&self) -> String {
        format_value(self.kind, self.threshold)
    }

    /// The sentence every format shows, naming alert, queue, value, threshold and state.
    pub fn message(&self) -> String {
        let (state, relation) = match self.state {
            NotificationState::Firing => ("FIRING", "above"),
            NotificationState::Resolved => ("RESOLVED", "back within"),
        };
        let mut text = format!(
            "{state}: {} on queue '{}': {} is {}, {relation} the threshold {}",
            self.alert,
            self.queue,
            self.metric(),
            self.value_text(),
            self.threshold_text()
        );
        if self.state == NotificationState::Firing && !self.hold_for.is_zero() {
            text.push_str(" for ");
            text.push_str(&ferry_core::format_duration(self.hold_for));
        }
        text
    }
}

fn format_value(kind: RuleKind, v: f64) -> String {
    match kind {
        RuleKind::Backlog | RuleKind::DeadLetterGrowth => number(v),
        RuleKind::OldestAge => format!("{}s", number(v.round())),
        RuleKind::FailureRatio => format!("{}%", number((v * 1000.0).round() / 10.0)),
    }
}

/// Whole numbers without a fraction, others with at most two decimals.
fn number(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{v:.0}")
    } else {
        let s = format!("{v:.2}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_per_kind() {
        assert_eq!(format_value(RuleKind::Backlog, 12.0), "12");
        assert_eq!(format_value(RuleKind::Backlog, 12.5), "12.5");
        assert_eq!(format_value(RuleKind::OldestAge, 95.4), "95s");
        assert_eq!(format_value(RuleKind::FailureRatio, 0.125), "12.5%");
        assert_eq!(format_value(RuleKind::FailureRatio, 0.2), "20%");
    }
}
