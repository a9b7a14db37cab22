//! What an operator writes in `[serve.alerts]`: rules, webhooks, and the checks on them.
//!
//! The config is plain serde data so it embeds in ferry.toml (`[[serve.alerts.rules]]`,
//! `[[serve.alerts.webhooks]]`) and in JSON alike; unknown keys are rejected so a typo
//! (`treshold`) is an error at start-up rather than a rule that silently never fires.
//! [`AlertsConfig::validate`] checks what serde cannot: unique names, thresholds, URLs,
//! references from rules to webhooks. Every error names the rule or webhook and the field.

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::time::Duration;

use ferry_core::{Error, Result};
use serde::{Deserialize, Serialize};

use super::serde_duration;

/// How far back [`RuleKind::DeadLetterGrowth`] and [`RuleKind::FailureRatio`] look when
/// a rule does not say (`window`).
pub const DEFAULT_WINDOW: Duration = Duration::from_secs(5 * 60);
/// The longest `window` a rule may ask for; the engine keeps this much sample history.
pub const MAX_WINDOW: Duration = Duration::from_secs(60 * 60);
/// How many acks + failures [`RuleKind::FailureRatio`] needs in its window before it
/// judges, when a rule does not say (`min_events`): two failures out of three is noise.
pub const DEFAULT_MIN_EVENTS: u64 = 10;
/// How long one webhook request may take when a webhook does not say (`timeout`).
pub const DEFAULT_WEBHOOK_TIMEOUT: Duration = Duration::from_secs(5);

const MAX_NAME_LEN: usize = 128;

/// The whole `[serve.alerts]` section: rules to evaluate and webhooks to notify.
///
/// ```
/// use ferry_http::alerts::{AlertsConfig, RuleKind, WebhookFormat};
///
/// let config: AlertsConfig = serde_json::from_str(r#"{
///     "rules": [{"name": "orders-backlog", "queue": "orders", "kind": "backlog",
///                "threshold": 1000, "for": "2m"}],
///     "webhooks": [{"name": "ops", "url": "https://hooks.slack.com/services/T/B/X",
///                   "format": "slack"}]
/// }"#).expect("valid config");
/// assert_eq!(config.rules[0].kind, RuleKind::Backlog);
/// assert_eq!(config.rules[0].for_, std::time::Duration::from_secs(120));
/// assert_eq!(config.webhooks[0].format, WebhookFormat::Slack);
/// config.validate().expect("consistent config");
/// ```
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AlertsConfig {
    /// The rules, evaluated on every sample, in this order.
    #[serde(default)]
    pub rules: Vec<RuleConfig>,
    /// Where firing and resolved notifications go.
    #[serde(default)]
    pub webhooks: Vec<WebhookConfig>,
}

/// One alert rule: a condition on a queue (or every matching queue) that must hold for
/// `for` before it fires.
///
/// ```
/// use std::time::Duration;
/// use ferry_http::alerts::{RuleConfig, RuleKind};
///
/// let mut rule = RuleConfig::new("payments-failing", RuleKind::FailureRatio, 0.2);
/// rule.queue = Some("payments.*".into());
/// rule.for_ = Duration::from_secs(60);
/// assert_eq!(rule.effective_window(), Duration::from_secs(300));
/// ```
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RuleConfig {
    /// Unique name; appears in every notification.
    pub name: String,
    /// The queue to watch: an exact name, a prefix ending in `*` (`orders.*`), or `*`.
    /// Absent means every queue.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue: Option<String>,
    /// What is measured.
    #[serde(deserialize_with = "de_kind")]
    pub kind: RuleKind,
    /// The alert condition is `value > threshold` (units depend on [`RuleKind`]).
    pub threshold: f64,
    /// How long the condition must hold before the alert fires (`"0s"`: at once).
    #[serde(
        rename = "for",
        default,
        deserialize_with = "serde_duration::de_for",
        serialize_with = "serde_duration::ser"
    )]
    pub for_: Duration,
    /// How far back rate rules look ([`RuleKind::DeadLetterGrowth`],
    /// [`RuleKind::FailureRatio`]); default [`DEFAULT_WINDOW`], at most [`MAX_WINDOW`].
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "serde_duration::de_window",
        serialize_with = "serde_duration::ser_opt"
    )]
    pub window: Option<Duration>,
    /// [`RuleKind::FailureRatio`] only: fewer events than this in the window never fire;
    /// default [`DEFAULT_MIN_EVENTS`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_events: Option<u64>,
    /// Names of the webhooks to notify; absent means all of them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhooks: Option<Vec<String>>,
}

impl RuleConfig {
    /// A rule on every queue with the defaults: fires at once, default window.
    pub fn new(name: impl Into<String>, kind: RuleKind, threshold: f64) -> Self {
        RuleConfig {
            name: name.into(),
            queue: None,
            kind,
            threshold,
            for_: Duration::ZERO,
            window: None,
            min_events: None,
            webhooks: None,
        }
    }

    /// The window rate rules use: `window` or [`DEFAULT_WINDOW`].
    pub fn effective_window(&self) -> Duration {
        self.window.unwrap_or(DEFAULT_WINDOW)
    }

    /// The minimum event count failure-ratio rules use: `min_events` or
    /// [`DEFAULT_MIN_EVENTS`].
    pub fn effective_min_events(&self) -> u64 {
        self.min_events.unwrap_or(DEFAULT_MIN_EVENTS)
    }
}

/// What a rule measures. The alert condition is always `value > threshold`.
///
/// In config: `"backlog"`, `"oldest_age"`, `"dead_letter_growth"`, `"failure_ratio"`.
///
/// ```
/// use ferry_http::alerts::RuleKind;
/// let kind: RuleKind = serde_json::from_str("\"oldest_age\"").expect("a kind");
/// assert_eq!(kind, RuleKind::OldestAge);
/// assert_eq!(kind.as_str(), "oldest_age");
/// ```
#[derive(Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[serde(rename_all = "snake_case")]
pub enum RuleKind {
    /// Messages waiting: ready + delayed.
    Backlog,
    /// Age in seconds of the oldest ready message (0 when none is ready).
    OldestAge,
    /// Dead letters added within `window`. Purges and requeues do not hide growth: only
    /// increases between consecutive samples are summed.
    DeadLetterGrowth,
    /// `failed / (acked + failed)` over `window`, between 0 and 1; judged only when at
    /// least `min_events` acks + failures happened in the window.
    FailureRatio,
}

impl RuleKind {
    /// The stable snake_case name used in config, JSON and notifications.
    pub fn as_str(self) -> &'static str {
        match self {
            RuleKind::Backlog => "backlog",
            RuleKind::OldestAge => "oldest_age",
            RuleKind::DeadLetterGrowth => "dead_letter_growth",
            RuleKind::FailureRatio => "failure_ratio",
        }
    }

    /// Whether this kind looks at a time window of samples (`window` applies).
    pub fn uses_window(self) -> bool {
        matches!(self, RuleKind::DeadLetterGrowth | RuleKind::FailureRatio)
    }
}

impl fmt::Display for RuleKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One webhook endpoint and the body format it expects.
///
/// `Debug` shows only the URL's scheme and host: chat webhook URLs carry their secret
/// token in the path or query, and configs end up in logs.
///
/// ```
/// use ferry_http::alerts::{WebhookConfig, WebhookFormat};
/// let hook = WebhookConfig::new("wecom", "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=SECRET", WebhookFormat::Wecom);
/// assert!(!format!("{hook:?}").contains("SECRET"));
/// ```
#[derive(Deserialize, Serialize, Clone, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// Unique name; rules refer to it in `webhooks`.
    pub name: String,
    /// Where to POST, `http://` or `https://`.
    pub url: String,
    /// The body shape; default [`WebhookFormat::Generic`].
    #[serde(default, deserialize_with = "de_format")]
    pub format: WebhookFormat,
    /// Per-request timeout; default [`DEFAULT_WEBHOOK_TIMEOUT`].
    #[serde(
        default = "default_timeout",
        deserialize_with = "serde_duration::de_timeout",
        serialize_with = "serde_duration::ser"
    )]
    pub timeout: Duration,
    /// Extra request headers (for example `Authorization` for a generic receiver).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
}

/// Reads an enum field through its own `Deserialize`, but with an error that names the
/// field and every allowed value (serde's says "unknown variant" without the field).
fn de_choice<'de, D, T>(d: D, field: &str, allowed: &[&str]) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::de::DeserializeOwned,
{
    use serde::de::Error as _;
    let text = String::deserialize(d)?;
    serde_json::from_value(serde_json::Value::String(text.clone())).map_err(|_| {
        D::Error::custom(format!(
            "`{field}` must be one of {}; got '{}'",
            allowed.join(", "),
            text.escape_debug()
        ))
    })
}

fn de_kind<'de, D: serde::Deserializer<'de>>(d: D) -> Result<RuleKind, D::Error> {
    de_choice(
        d,
        "kind",
        &[
            "backlog",
            "oldest_age",
            "dead_letter_growth",
            "failure_ratio",
        ],
    )
}

fn de_format<'de, D: serde::Deserializer<'de>>(d: D) -> Result<WebhookFormat, D::Error> {
    de_choice(d, "format", &["generic", "slack", "dingtalk", "wecom"])
}

fn default_timeout() -> Duration {
    DEFAULT_WEBHOOK_TIMEOUT
}

impl WebhookConfig {
    /// A webhook with the default timeout and no extra headers.
    pub fn new(name: impl Into<String>, url: impl Into<String>, format: WebhookFormat) -> Self {
        WebhookConfig {
            name: name.into(),
            url: url.into(),
            format,
            timeout: DEFAULT_WEBHOOK_TIMEOUT,
            headers: BTreeMap::new(),
        }
    }
}

impl fmt::Debug for WebhookConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebhookConfig")
            .field("name", &self.name)
            .field("url", &super::webhook::redact_url(&self.url))
            .field("format", &self.format)
            .field("timeout", &self.timeout)
            .field("headers", &self.headers.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// The body a webhook expects. In config: `"generic"`, `"slack"`, `"dingtalk"`, `"wecom"`.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[serde(rename_all = "lowercase")]
pub enum WebhookFormat {
    /// ferry's own JSON: `{"alert","queue","state","value","threshold","kind","at","message"}`.
    #[default]
    Generic,
    /// A Slack incoming webhook: `{"text": "..."}` in mrkdwn.
    Slack,
    /// A DingTalk group robot: `{"msgtype":"markdown","markdown":{"title","text"}}`.
    Dingtalk,
    /// A WeCom (WeChat Work) group robot: `{"msgtype":"markdown","markdown":{"content"}}`.
    Wecom,
}

impl WebhookFormat {
    /// The config name of the format.
    pub fn as_str(self) -> &'static str {
        match self {
            WebhookFormat::Generic => "generic",
            WebhookFormat::Slack => "slack",
            WebhookFormat::Dingtalk => "dingtalk",
            WebhookFormat::Wecom => "wecom",
        }
    }
}

impl AlertsConfig {
    /// Checks everything serde cannot: unique non-empty names, finite non-negative
    /// thresholds (at most 1 for ratios), windows, queue patterns, webhook URLs and
    /// headers, and that every webhook a rule names exists.
    ///
    /// Errors are [`ferry_core::ErrorKind::InvalidInput`] naming the rule or webhook and
    /// the field.
    ///
    /// ```
    /// use ferry_http::alerts::{AlertsConfig, RuleConfig, RuleKind};
    /// let mut config = AlertsConfig::default();
    /// config.rules.push(RuleConfig::new("deep", RuleKind::Backlog, -1.0));
    /// let err = config.validate().expect_err("negative threshold");
    /// assert!(err.message().contains("rule 'deep'"));
    /// assert!(err.message().contains("threshold"));
    /// ```
    pub fn validate(&self) -> Result<()> {
        let mut hooks = HashSet::new();
        for hook in &self.webhooks {
            validate_name("webhook", &hook.name)?;
            if !hooks.insert(hook.name.as_str()) {
                return Err(Error::invalid_input(format!(
                    "webhook '{}': `name` is used by another webhook; names must be unique",
                    hook.name
                )));
            }
            validate_webhook(hook)?;
        }
        let mut rules = HashSet::new();
        for rule in &self.rules {
            validate_name("rule", &rule.name)?;
            if !rules.insert(rule.name.as_str()) {
                return Err(Error::invalid_input(format!(
                    "rule '{}': `name` is used by another rule; names must be unique",
                    rule.name
                )));
            }
            validate_rule(rule, &hooks)?;
        }
        Ok(())
    }
}

fn validate_name(what: &str, name: &str) -> Result<()> {
    if name.trim().is_empty() {
        return Err(Error::invalid_input(format!(
            "{what} `name` must not be empty"
        )));
    }
    if name.len() > MAX_NAME_LEN || name.chars().any(char::is_control) {
        return Err(Error::invalid_input(format!(
            "{what} '{}': `name` must be at most {MAX_NAME_LEN} bytes without control characters",
            name.escape_debug()
        )));
    }
    Ok(())
}

fn validate_rule(rule: &RuleConfig, hooks: &HashSet<&str>) -> Result<()> {
    let bad = |msg: String| Err(Error::invalid_input(format!("rule '{}': {msg}", rule.name)));
    if !rule.threshold.is_finite() || rule.threshold < 0.0 {
        return bad(format!(
            "`threshold` must be a finite number >= 0, got {}",
            rule.threshold
        ));
    }
    if rule.kind == RuleKind::FailureRatio && rule.threshold > 1.0 {
        return bad(format!(
            "`threshold` of a failure_ratio rule is a ratio between 0 and 1 (0.2 = 20%), got {}",
            rule.threshold
        ));
    }
    if let Some(queue) = &rule.queue {
        super::rule::validate_queue_pattern(queue).or_else(bad)?;
    }
    match rule.window {
        Some(_) if !rule.kind.uses_window() => {
            return bad(format!(
                "`window` applies only to dead_letter_growth and failure_ratio rules, not {}",
                rule.kind
            ));
        }
        Some(w) if w.is_zero() || w > MAX_WINDOW => {
            return bad(format!(
                "`window` must be more than 0s and at most {}, got {}",
                ferry_core::format_duration(MAX_WINDOW),
                ferry_core::format_duration(w)
            ));
        }
        _ => {}
    }
    if rule.min_events.is_some() && rule.kind != RuleKind::FailureRatio {
        return bad(format!(
            "`min_events` applies only to failure_ratio rules, not {}",
            rule.kind
        ));
    }
    if let Some(names) = &rule.webhooks {
        for name in names {
            if !hooks.contains(name.as_str()) {
                return bad(format!(
                    "`webhooks` names '{name}', which is not a configured webhook"
                ));
            }
        }
    }
    Ok(())
}

fn validate_webhook(hook: &WebhookConfig) -> Result<()> {
    let bad = |msg: String| {
        Err(Error::invalid_input(format!(
            "webhook '{}': {msg}",
            hook.name
        )))
    };
    match reqwest::Url::parse(&hook.url) {
        Err(e) => return bad(format!("`url` is not a valid URL: {e}")),
        Ok(url) => {
            if url.scheme() != "http" && url.scheme() != "https" {
                return bad(format!(
                    "`url` must start with http:// or https://, not {}://",
                    url.scheme()
                ));
            }
            if url.host_str().is_none_or(str::is_empty) {
                return bad("`url` has no host".to_string());
            }
        }
    }
    if hook.timeout.is_zero() {
        return bad("`timeout` must be more than 0s".to_string());
    }
    for (name, value) in &hook.headers {
        if reqwest::header::HeaderName::from_bytes(name.as_bytes()).is_err() {
            return bad(format!(
                "`headers` has an invalid header name '{}'",
                name.escape_debug()
            ));
        }
        if reqwest::header::HeaderValue::from_str(value).is_err() {
            return bad(format!("`headers` has an invalid value for '{name}'"));
        }
    }
    Ok(())
}
