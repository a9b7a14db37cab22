//! The per-(rule, queue) state machine: ok → pending → firing → ok.
//!
//! A condition must hold continuously for the rule's `for` before it fires, so a short
//! spike never pages anyone; a condition that clears while pending goes back to ok
//! silently. Only the two edges an operator cares about produce a notification: the
//! alert started firing, and a firing alert resolved.

use std::time::{Duration, SystemTime};

use serde::Serialize;

use super::rule::Reading;

/// Where one rule stands for one queue.
///
/// ```
/// use ferry_http::alerts::AlertState;
/// assert_eq!(serde_json::to_string(&AlertState::Firing).expect("serializes"), "\"firing\"");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AlertState {
    /// The condition does not hold.
    Ok,
    /// The condition holds, but not yet for the rule's `for`.
    Pending,
    /// The condition has held for `for`; a firing notification was sent.
    Firing,
}

/// An edge that is worth a notification.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Transition {
    Fired,
    Resolved,
}

/// One rule's state for one queue.
#[derive(Clone, Copy, Debug)]
pub(super) struct Tracker {
    pub(super) state: AlertState,
    /// When `state` was entered (sample time).
    pub(super) since: SystemTime,
    /// The latest reading's value.
    pub(super) value: Option<f64>,
}

impl Tracker {
    /// A tracker first seen at `at`, in state ok.
    pub(super) fn new(at: SystemTime) -> Self {
        Tracker {
            state: AlertState::Ok,
            since: at,
            value: None,
        }
    }

    /// Applies the reading taken at `at`; returns the notification-worthy edge, if any.
    pub(super) fn step(
        &mut self,
        reading: Reading,
        at: SystemTime,
        hold_for: Duration,
    ) -> Option<Transition> {
        self.value = reading.value;
        let held = at.duration_since(self.since).unwrap_or_default();
        match (self.state, reading.breached) {
            (AlertState::Ok, true) if hold_for.is_zero() => self.enter(AlertState::Firing, at),
            (AlertState::Ok, true) => self.enter(AlertState::Pending, at),
            (AlertState::Pending, true) if held >= hold_for => self.enter(AlertState::Firing, at),
            (AlertState::Pending, false) | (AlertState::Firing, false) => {
                self.enter(AlertState::Ok, at)
            }
            _ => None,
        }
    }

    fn enter(&mut self, state: AlertState, at: SystemTime) -> Option<Transition> {
        let from = std::mem::replace(&mut self.state, state);
        self.since = at;
        match (from, state) {
            (_, AlertState::Firing) => Some(Transition::Fired),
            (AlertState::Firing, AlertState::Ok) => Some(Transition::Resolved),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::UNIX_EPOCH;

    fn t(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    fn r(breached: bool) -> Reading {
        Reading {
            value: Some(if breached { 10.0 } else { 0.0 }),
            breached,
        }
    }

    #[test]
    fn fires_after_for_and_resolves() {
        let hold = Duration::from_secs(60);
        let mut tr = Tracker::new(t(0));
        assert_eq!(tr.step(r(true), t(10), hold), None);
        assert_eq!(tr.state, AlertState::Pending);
        assert_eq!(tr.step(r(true), t(69), hold), None);
        assert_eq!(tr.step(r(true), t(70), hold), Some(Transition::Fired));
        assert_eq!(tr.step(r(true), t(80), hold), None, "fires once");
        assert_eq!(tr.state, AlertState::Firing);
        assert_eq!(tr.step(r(false), t(90), hold), Some(Transition::Resolved));
        assert_eq!(tr.state, AlertState::Ok);
        assert_eq!(tr.since, t(90));
    }

    #[test]
    fn a_blip_while_pending_is_silent_and_restarts_the_clock() {
        let hold = Duration::from_secs(60);
        let mut tr = Tracker::new(t(0));
        tr.step(r(true), t(0), hold);
        assert_eq!(tr.step(r(false), t(30), hold), None);
        assert_eq!(tr.state, AlertState::Ok);
        tr.step(r(true), t(40), hold);
        assert_eq!(
            tr.step(r(true), t(70), hold),
            None,
            "only 30s since it came back"
        );
        assert_eq!(tr.step(r(true), t(100), hold), Some(Transition::Fired));
    }

    #[test]
    fn zero_for_fires_on_the_first_breach() {
        let mut tr = Tracker::new(t(0));
        assert_eq!(
            tr.step(r(true), t(1), Duration::ZERO),
            Some(Transition::Fired)
        );
    }
}
