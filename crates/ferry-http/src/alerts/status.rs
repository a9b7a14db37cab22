//! What `GET /api/alerts` shows: every rule's state per queue, every webhook's counters.
//!
//! A plain serializable snapshot, taken under the engine's lock and then handed out, so
//! the dashboard can poll it without holding anything. Times are milliseconds since the
//! Unix epoch, like every time in ferry's JSON.

use serde::Serialize;

use super::config::{RuleKind, WebhookFormat};
use super::tracker::AlertState;

/// A snapshot of the whole engine.
///
/// ```
/// use ferry_http::alerts::{Alerts, AlertsConfig};
/// let alerts = Alerts::new(AlertsConfig::default()).expect("empty config is valid");
/// let status = alerts.status();
/// assert!(status.rules.is_empty() && status.webhooks.is_empty());
/// assert_eq!(serde_json::to_value(&status).expect("serializes")["firing"], 0);
/// ```
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct AlertsStatus {
    /// How many (rule, queue) pairs are firing now.
    pub firing: u64,
    /// Every rule, in config order.
    pub rules: Vec<RuleStatus>,
    /// Every webhook, in config order.
    pub webhooks: Vec<WebhookStatus>,
}

/// One rule and where it stands for each queue it watches.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RuleStatus {
    /// The rule's name.
    pub name: String,
    /// What it measures.
    pub kind: RuleKind,
    /// The queue pattern, `None` for every queue.
    pub queue: Option<String>,
    /// The threshold (`value > threshold` fires).
    pub threshold: f64,
    /// The rule's `for` in milliseconds.
    pub for_ms: u64,
    /// The rule's window in milliseconds, for windowed kinds.
    pub window_ms: Option<u64>,
    /// The webhooks it notifies.
    pub webhooks: Vec<String>,
    /// Per matching queue, sorted by queue name.
    pub queues: Vec<QueueAlertStatus>,
}

/// One rule's state for one queue.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct QueueAlertStatus {
    /// The queue.
    pub queue: String,
    /// `ok`, `pending` or `firing`.
    pub state: AlertState,
    /// When the state was entered (sample time).
    pub since: i64,
    /// The latest value measured; `None` when there was nothing to measure.
    pub value: Option<f64>,
}

/// One webhook's delivery counters.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct WebhookStatus {
    /// The webhook's name.
    pub name: String,
    /// Its body format.
    pub format: WebhookFormat,
    /// Scheme and host of its URL (the rest may be a secret).
    pub target: String,
    /// Notifications delivered.
    pub sent: u64,
    /// Notifications given up on (after every try, or dropped).
    pub failed: u64,
    /// Notifications waiting or being delivered now.
    pub pending: u64,
    /// Why the latest failed notification failed.
    pub last_error: Option<String>,
    /// When it failed.
    pub last_error_at: Option<i64>,
}
