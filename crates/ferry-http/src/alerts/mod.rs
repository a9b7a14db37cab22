//! Alerts for `ferry serve`: rules on queue numbers, notifications to webhooks.
//!
//! Operators want to hear about a queue that backs up, a message that waits too long,
//! dead letters piling up or consumers failing, before their users do, in the chat they
//! already watch. So the server samples every queue every few seconds and feeds the
//! [`Sample`] to [`Alerts::observe`]; each [`RuleConfig`] is judged per matching queue
//! and goes ok → pending → firing once its condition held for `for`, then back to ok when
//! it clears. Firing and resolving each send one notification to the rule's webhooks in
//! one of the [ready formats](WebhookFormat): generic JSON, Slack, DingTalk, WeCom.
//!
//! The pieces, one concept per file:
//! - [`config`](AlertsConfig): what goes in `[serve.alerts]`, and its validation;
//! - [`Sample`]: the input; all timing comes from sample times, not the wall clock;
//! - `history`: the bounded window of past samples that rate rules need;
//! - `rule`: how each [`RuleKind`] reads a value; `tracker`: the state machine;
//! - [`Notification`] and `format`: the message and the body for each webhook format;
//! - `webhook`: background delivery with retries; [`AlertsStatus`]: what the API shows.
//!
//! In ferry.toml:
//!
//! ```toml
//! [[serve.alerts.rules]]
//! name = "orders-backlog"
//! queue = "orders"              # or "orders.*", or leave out for every queue
//! kind = "backlog"              # ready + delayed
//! threshold = 10000
//! for = "5m"
//!
//! [[serve.alerts.rules]]
//! name = "stuck-messages"
//! kind = "oldest_age"           # seconds the oldest ready message has waited
//! threshold = 600
//! for = "2m"
//!
//! [[serve.alerts.rules]]
//! name = "dead-letters"
//! kind = "dead_letter_growth"   # dead letters added within `window`
//! threshold = 0
//! window = "10m"
//! webhooks = ["ops-slack"]      # default: every webhook
//!
//! [[serve.alerts.rules]]
//! name = "payments-failing"
//! queue = "payments.*"
//! kind = "failure_ratio"        # failed / (acked + failed) within `window`
//! threshold = 0.2
//! window = "5m"
//! min_events = 20
//! for = "1m"
//!
//! [[serve.alerts.webhooks]]
//! name = "ops-slack"
//! url = "https://hooks.slack.com/services/T000/B000/XXXX"
//! format = "slack"              # generic | slack | dingtalk | wecom
//!
//! [[serve.alerts.webhooks]]
//! name = "pager"
//! url = "https://alerts.example.com/ferry"
//! timeout = "3s"
//! headers = { Authorization = "Bearer s3cret" }
//! ```
//!
//! ```
//! use std::time::{Duration, SystemTime};
//! use ferry_http::alerts::{AlertState, Alerts, AlertsConfig, QueueSample, Sample};
//!
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime").block_on(async {
//! let config: AlertsConfig = serde_json::from_value(serde_json::json!({
//!     "rules": [{"name": "dlq", "kind": "dead_letter_growth", "threshold": 0, "window": "10m"}]
//! })).expect("valid config");
//! let alerts = Alerts::new(config).expect("consistent config");
//! let t0 = SystemTime::now();
//! alerts.observe(&Sample { at: t0, queues: vec![QueueSample::new("orders")] }).await;
//! let dead = QueueSample { dead: 3, ..QueueSample::new("orders") };
//! alerts.observe(&Sample { at: t0 + Duration::from_secs(5), queues: vec![dead] }).await;
//! assert_eq!(alerts.status().rules[0].queues[0].state, AlertState::Firing);
//! # });
//! ```

mod config;
mod engine;
mod format;
mod history;
mod notification;
mod rule;
mod sample;
mod serde_duration;
mod status;
mod tracker;
mod webhook;

pub use config::{
    AlertsConfig, DEFAULT_MIN_EVENTS, DEFAULT_WEBHOOK_TIMEOUT, DEFAULT_WINDOW, MAX_WINDOW,
    RuleConfig, RuleKind, WebhookConfig, WebhookFormat,
};
pub use engine::Alerts;
pub use notification::{Notification, NotificationState};
pub use sample::{QueueSample, Sample};
pub use status::{AlertsStatus, QueueAlertStatus, RuleStatus, WebhookStatus};
pub use tracker::AlertState;
