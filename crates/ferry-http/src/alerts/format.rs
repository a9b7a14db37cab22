//! Ready-made webhook bodies: ferry's generic JSON, Slack, DingTalk and WeCom.
//!
//! Chat robots reject bodies that are not in their exact shape, so each format is a
//! small pure function from a [`Notification`] to JSON, unit-tested for its shape:
//!
//! - generic: `{"alert","queue","state","value","threshold","kind","at","message"}`,
//!   `at` in milliseconds since the Unix epoch like every time in ferry's JSON;
//! - Slack incoming webhook: `{"text"}` in mrkdwn;
//! - DingTalk group robot: `{"msgtype":"markdown","markdown":{"title","text"}}` (the
//!   title shows in the chat list; a robot with a keyword check needs the keyword in the
//!   text, and every text starts with the alert state, `FIRING` or `RESOLVED`);
//! - WeCom group robot: `{"msgtype":"markdown","markdown":{"content"}}` with WeCom's
//!   `<font color>` tags (its markdown has no lists, so lines are quotes).

use serde_json::{Value, json};

use super::config::WebhookFormat;
use super::notification::{Notification, NotificationState};

impl WebhookFormat {
    /// The request body for `n` in this format.
    ///
    /// ```
    /// use std::time::{Duration, UNIX_EPOCH};
    /// use ferry_http::alerts::{Notification, NotificationState, RuleKind, WebhookFormat};
    ///
    /// let n = Notification {
    ///     alert: "dlq".into(), queue: "orders".into(), state: NotificationState::Resolved,
    ///     kind: RuleKind::DeadLetterGrowth, value: 0.0, threshold: 5.0,
    ///     at: UNIX_EPOCH + Duration::from_millis(1_700_000_000_000),
    ///     hold_for: Duration::ZERO, window: Some(Duration::from_secs(600)),
    /// };
    /// let body = WebhookFormat::Generic.render(&n);
    /// assert_eq!(body["state"], "resolved");
    /// assert_eq!(body["at"], 1_700_000_000_000i64);
    /// assert_eq!(WebhookFormat::Wecom.render(&n)["msgtype"], "markdown");
    /// ```
    pub fn render(self, n: &Notification) -> Value {
        match self {
            WebhookFormat::Generic => generic(n),
            WebhookFormat::Slack => slack(n),
            WebhookFormat::Dingtalk => dingtalk(n),
            WebhookFormat::Wecom => wecom(n),
        }
    }
}

fn generic(n: &Notification) -> Value {
    json!({
        "alert": n.alert,
        "queue": n.queue,
        "state": n.state.as_str(),
        "value": n.value,
        "threshold": n.threshold,
        "kind": n.kind.as_str(),
        "at": ferry_core::time::to_millis(n.at),
        "message": n.message(),
    })
}

/// Slack wants `&`, `<` and `>` escaped in mrkdwn text.
fn slack_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn slack(n: &Notification) -> Value {
    let icon = match n.state {
        NotificationState::Firing => ":rotating_light:",
        NotificationState::Resolved => ":white_check_mark:",
    };
    let text = format!(
        "{icon} *{}*\n{}\n*Queue:* `{}`  *Value:* {}  *Threshold:* {}",
        slack_escape(&n.title()),
        slack_escape(&n.message()),
        slack_escape(&n.queue),
        n.value_text(),
        n.threshold_text(),
    );
    json!({ "text": text })
}

fn dingtalk(n: &Notification) -> Value {
    let title = n.title();
    let text = format!(
        "### {title}\n\n{}\n\n- **Alert:** {}\n- **Queue:** {}\n- **{}:** {}\n- **Threshold:** {}\n- **State:** {}\n",
        n.message(),
        n.alert,
        n.queue,
        capitalize(&n.metric()),
        n.value_text(),
        n.threshold_text(),
        n.state,
    );
    json!({ "msgtype": "markdown", "markdown": { "title": title, "text": text } })
}

fn wecom(n: &Notification) -> Value {
    let color = match n.state {
        NotificationState::Firing => "warning",
        NotificationState::Resolved => "info",
    };
    let content = format!(
        "**<font color=\"{color}\">{}</font>**\n{}\n> Queue: <font color=\"comment\">{}</font>\n> {}: <font color=\"{color}\">{}</font>\n> Threshold: <font color=\"comment\">{}</font>",
        n.title(),
        n.message(),
        n.queue,
        capitalize(&n.metric()),
        n.value_text(),
        n.threshold_text(),
    );
    json!({ "msgtype": "markdown", "markdown": { "content": content } })
}

fn capitalize(s: &str) -> String {
    let mut chars = s.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alerts::config::RuleKind;
    use std::time::{Duration, UNIX_EPOCH};

    fn firing() -> Notification {
        Notification {
            alert: "slow<orders>".into(),
            queue: "orders".into(),
            state: NotificationState::Firing,
            kind: RuleKind::OldestAge,
            value: 125.0,
            threshold: 60.0,
            at: UNIX_EPOCH + Duration::from_secs(1_700_000_000),
            hold_for: Duration::from_secs(60),
            window: None,
        }
    }

    #[test]
    fn generic_has_every_field() {
        let body = generic(&firing());
        for key in [
            "alert",
            "queue",
            "state",
            "value",
            "threshold",
            "kind",
            "at",
            "message",
        ] {
            assert!(body.get(key).is_some(), "missing {key}: {body}");
        }
        assert_eq!(body["kind"], "oldest_age");
        assert_eq!(body["value"], 125.0);
        assert_eq!(body["at"], 1_700_000_000_000i64);
    }

    #[test]
    fn slack_is_text_only_and_escaped() {
        let body = slack(&firing());
        let obj = body.as_object().expect("object");
        assert_eq!(obj.len(), 1);
        let text = body["text"].as_str().expect("text");
        assert!(text.contains("slow&lt;orders&gt;"), "{text}");
        assert!(text.contains("125s") && text.contains("60s"), "{text}");
    }

    #[test]
    fn dingtalk_and_wecom_shapes() {
        let d = dingtalk(&firing());
        assert_eq!(d["msgtype"], "markdown");
        assert!(
            d["markdown"]["title"]
                .as_str()
                .is_some_and(|t| t.contains("FIRING"))
        );
        assert!(
            d["markdown"]["text"]
                .as_str()
                .is_some_and(|t| t.contains("orders"))
        );
        let w = wecom(&firing());
        assert_eq!(w["msgtype"], "markdown");
        let content = w["markdown"]["content"].as_str().expect("content");
        assert!(content.contains("<font color=\"warning\">"), "{content}");
        assert!(w["markdown"].get("title").is_none());
    }
}
