//! [`Alerts`]: the engine that turns samples into firing and resolved notifications.
//!
//! The engine owns all alert state (sample history, one tracker per rule and queue) in
//! one mutex that is held only for arithmetic, never across an await or a network call:
//! evaluation is synchronous, and notifications leave through spawned tasks
//! ([`super::webhook`]). So `observe` costs microseconds whatever the webhooks do.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use ferry_core::Result;

use super::config::AlertsConfig;
use super::history::History;
use super::notification::{Notification, NotificationState};
use super::rule::Rule;
use super::sample::Sample;
use super::status::{AlertsStatus, QueueAlertStatus, RuleStatus};
use super::tracker::{AlertState, Tracker, Transition};
use super::webhook::{Webhook, build_client};

/// The alerts engine of `ferry serve`: feed it a [`Sample`] every few seconds, read its
/// [`status`](Alerts::status) for the dashboard. Cloning is cheap and shares the state.
///
/// ```
/// use std::time::{Duration, SystemTime};
/// use ferry_http::alerts::{AlertState, Alerts, AlertsConfig, QueueSample, RuleConfig, RuleKind, Sample};
///
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime").block_on(async {
/// let mut config = AlertsConfig::default();
/// let mut rule = RuleConfig::new("orders-backlog", RuleKind::Backlog, 100.0);
/// rule.for_ = Duration::from_secs(60);
/// config.rules.push(rule);
/// let alerts = Alerts::new(config).expect("valid config");
///
/// let t0 = SystemTime::now();
/// for secs in [0, 30, 60] {
///     let queue = QueueSample { ready: 500, ..QueueSample::new("orders") };
///     alerts.observe(&Sample { at: t0 + Duration::from_secs(secs), queues: vec![queue] }).await;
/// }
/// let status = alerts.status();
/// assert_eq!(status.rules[0].queues[0].state, AlertState::Firing);
/// assert_eq!(status.rules[0].queues[0].value, Some(500.0));
/// # });
/// ```
#[derive(Clone, Debug)]
pub struct Alerts {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    rules: Vec<Rule>,
    webhooks: Vec<Arc<Webhook>>,
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    history: History,
    /// Per rule (same index as `rules`): queue name -> tracker.
    trackers: Vec<BTreeMap<String, Tracker>>,
}

impl Alerts {
    /// Validates `config` ([`AlertsConfig::validate`]) and builds the engine, including
    /// the HTTP client for webhooks (installing ring as the rustls provider if the
    /// process has none).
    ///
    /// Errors are [`ferry_core::ErrorKind::InvalidInput`] naming the rule or webhook and
    /// the field.
    pub fn new(config: AlertsConfig) -> Result<Alerts> {
        config.validate()?;
        let webhooks = if config.webhooks.is_empty() {
            Vec::new()
        } else {
            let client = build_client()?;
            config
                .webhooks
                .iter()
                .map(|hook| Webhook::new(hook.clone(), client.clone()).map(Arc::new))
                .collect::<Result<Vec<_>>>()?
        };
        let rules: Vec<Rule> = config
            .rules
            .into_iter()
            .map(|rule| {
                let targets = match &rule.webhooks {
                    None => (0..webhooks.len()).collect(),
                    Some(names) => webhooks
                        .iter()
                        .enumerate()
                        .filter(|(_, w)| names.contains(&w.config.name))
                        .map(|(i, _)| i)
                        .collect(),
                };
                Rule::new(rule, targets)
            })
            .collect();
        let retention = rules
            .iter()
            .map(Rule::window)
            .max()
            .unwrap_or(Duration::ZERO);
        let state = State {
            history: History::new(retention),
            trackers: rules.iter().map(|_| BTreeMap::new()).collect(),
        };
        Ok(Alerts {
            inner: Arc::new(Inner {
                rules,
                webhooks,
                state: Mutex::new(state),
            }),
        })
    }

    /// Evaluates every rule on every matching queue of `sample` and, for each alert that
    /// starts firing or resolves, sends one notification to each of the rule's webhooks
    /// in the background. Returns without waiting for any webhook.
    ///
    /// A queue missing from the sample is taken as deleted: its firing alerts resolve.
    pub async fn observe(&self, sample: &Sample) {
        for (rule, notification) in self.evaluate(sample) {
            let what = format!(
                "{} on {} ({})",
                notification.alert, notification.queue, notification.state
            );
            for &index in &self.inner.rules[rule].webhooks {
                if let Some(hook) = self.inner.webhooks.get(index) {
                    hook.dispatch(hook.config.format.render(&notification), what.clone());
                }
            }
        }
    }

    /// A snapshot of every rule's state per queue and every webhook's counters.
    pub fn status(&self) -> AlertsStatus {
        let state = self.lock();
        let mut firing = 0;
        let rules = self
            .inner
            .rules
            .iter()
            .zip(&state.trackers)
            .map(|(rule, trackers)| {
                let queues = trackers
                    .iter()
                    .map(|(queue, t)| {
                        if t.state == AlertState::Firing {
                            firing += 1;
                        }
                        QueueAlertStatus {
                            queue: queue.clone(),
                            state: t.state,
                            since: ferry_core::time::to_millis(t.since),
                            value: t.value,
                        }
                    })
                    .collect();
                let c = &rule.config;
                RuleStatus {
                    name: c.name.clone(),
                    kind: c.kind,
                    queue: c.queue.clone(),
                    threshold: c.threshold,
                    for_ms: millis(c.for_),
                    window_ms: c.kind.uses_window().then(|| millis(c.effective_window())),
                    webhooks: rule
                        .webhooks
                        .iter()
                        .filter_map(|&i| self.inner.webhooks.get(i))
                        .map(|w| w.config.name.clone())
                        .collect(),
                    queues,
                }
            })
            .collect();
        drop(state);
        AlertsStatus {
            firing,
            rules,
            webhooks: self.inner.webhooks.iter().map(|w| w.status()).collect(),
        }
    }

    /// The state lock; a panic elsewhere while holding it leaves consistent-enough
    /// numbers, so poisoning is ignored rather than spreading the panic.
    fn lock(&self) -> MutexGuard<'_, State> {
        self.inner
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Runs the state machines on `sample`; returns (rule index, notification) per edge.
    fn evaluate(&self, sample: &Sample) -> Vec<(usize, Notification)> {
        let mut guard = self.lock();
        let State { history, trackers } = &mut *guard;
        history.record(sample);
        let present: HashSet<&str> = sample.queues.iter().map(|q| q.queue.as_str()).collect();
        let mut out = Vec::new();
        for (index, (rule, trackers)) in
            self.inner.rules.iter().zip(trackers.iter_mut()).enumerate()
        {
            for q in sample.queues.iter().filter(|q| rule.matches(&q.queue)) {
                let reading = rule.read(q, sample.at, history);
                let tracker = trackers
                    .entry(q.queue.clone())
                    .or_insert_with(|| Tracker::new(sample.at));
                if let Some(edge) = tracker.step(reading, sample.at, rule.config.for_) {
                    let state = match edge {
                        Transition::Fired => NotificationState::Firing,
                        Transition::Resolved => NotificationState::Resolved,
                    };
                    out.push((
                        index,
                        notification(rule, &q.queue, state, tracker.value, sample.at),
                    ));
                }
            }
            trackers.retain(|queue, tracker| {
                if present.contains(queue.as_str()) {
                    return true;
                }
                if tracker.state == AlertState::Firing {
                    out.push((
                        index,
                        notification(
                            rule,
                            queue,
                            NotificationState::Resolved,
                            tracker.value,
                            sample.at,
                        ),
                    ));
                }
                false
            });
        }
        drop(guard);
        for (_, n) in &out {
            match n.state {
                NotificationState::Firing => {
                    tracing::warn!(alert = %n.alert, queue = %n.queue, value = n.value, threshold = n.threshold, "alert firing")
                }
                NotificationState::Resolved => {
                    tracing::info!(alert = %n.alert, queue = %n.queue, value = n.value, threshold = n.threshold, "alert resolved")
                }
            }
        }
        out
    }
}

fn notification(
    rule: &Rule,
    queue: &str,
    state: NotificationState,
    value: Option<f64>,
    at: SystemTime,
) -> Notification {
    let c = &rule.config;
    Notification {
        alert: c.name.clone(),
        queue: queue.to_string(),
        state,
        kind: c.kind,
        value: value.unwrap_or(0.0),
        threshold: c.threshold,
        at,
        hold_for: c.for_,
        window: c.kind.uses_window().then(|| c.effective_window()),
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}
