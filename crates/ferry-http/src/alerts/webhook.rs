//! Delivering notifications to webhooks: in the background, in order, with retries.
//!
//! [`Alerts::observe`](super::Alerts::observe) must never wait on a slow or dead chat
//! service, so each notification is a spawned task. Tasks for one webhook take turns
//! (a FIFO lock) so "resolved" never overtakes its "firing"; at most [`MAX_PENDING`]
//! wait per webhook so a receiver that hangs cannot pile up memory. A delivery is tried
//! [`ATTEMPTS`] times with growing pauses on network errors, timeouts, 408/429/5xx, and
//! DingTalk/WeCom answers with a non-zero `errcode` (those robots say "no" with a 200).
//!
//! Chat webhook URLs are credentials, so logs and status show only scheme and host
//! ([`redact_url`]), and reqwest errors are stripped of their URL.

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, SystemTime};

use ferry_core::{Error, Result};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use serde_json::Value;

use super::config::{WebhookConfig, WebhookFormat};
use super::status::WebhookStatus;

/// Tries per notification: the first and up to three retries.
pub(super) const ATTEMPTS: usize = 4;
/// Pauses before the 2nd, 3rd and 4th try.
const BACKOFF: [Duration; ATTEMPTS - 1] = [
    Duration::from_millis(500),
    Duration::from_secs(1),
    Duration::from_secs(2),
];
/// Notifications that may wait for one webhook before new ones are dropped (and counted
/// as failed).
pub(super) const MAX_PENDING: usize = 64;
/// How much of a response body is read (to check a robot's `errcode`, and for errors).
const MAX_RESPONSE: usize = 64 * 1024;

/// `scheme://host[:port]` of `url`, for logs: never the path or query, where chat
/// services keep the webhook's secret.
pub(super) fn redact_url(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(u) => match (u.host_str(), u.port()) {
            (Some(host), Some(port)) => format!("{}://{host}:{port}", u.scheme()),
            (Some(host), None) => format!("{}://{host}", u.scheme()),
            (None, _) => format!("{}://", u.scheme()),
        },
        Err(_) => "<invalid url>".to_string(),
    }
}

/// The HTTP client every webhook shares. Installs ring as the process's rustls provider
/// first when none is installed: reqwest is built without a bundled provider (two in
/// one binary make rustls panic) and would otherwise panic on the first client.
pub(super) fn build_client() -> Result<reqwest::Client> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("ferry/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| {
            Error::internal("cannot build the HTTP client for alert webhooks")
                .with_source(e.without_url())
        })
}

/// Why one try failed, and whether another try may help.
#[derive(Debug)]
struct Failure {
    message: String,
    retry: bool,
}

/// A configured webhook with its delivery counters.
#[derive(Debug)]
pub(super) struct Webhook {
    pub(super) config: WebhookConfig,
    target: String,
    headers: HeaderMap,
    client: reqwest::Client,
    /// Held while delivering; tokio's mutex is FIFO, so notifications go out in order.
    turn: tokio::sync::Mutex<()>,
    pending: AtomicUsize,
    sent: AtomicU64,
    failed: AtomicU64,
    last_error: Mutex<Option<(String, SystemTime)>>,
}

impl Webhook {
    /// `config` must have passed validation.
    pub(super) fn new(config: WebhookConfig, client: reqwest::Client) -> Result<Self> {
        let mut headers = HeaderMap::new();
        for (name, value) in &config.headers {
            let bad = || {
                Error::invalid_input(format!(
                    "webhook '{}': `headers` has an invalid entry '{name}'",
                    config.name
                ))
            };
            let name = HeaderName::from_bytes(name.as_bytes()).map_err(|_| bad())?;
            let mut value = HeaderValue::from_str(value).map_err(|_| bad())?;
            value.set_sensitive(true);
            headers.insert(name, value);
        }
        Ok(Webhook {
            target: redact_url(&config.url),
            config,
            headers,
            client,
            turn: tokio::sync::Mutex::new(()),
            pending: AtomicUsize::new(0),
            sent: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            last_error: Mutex::new(None),
        })
    }

    /// Queues `body` for delivery in the background; `what` names the alert in logs.
    /// Never blocks and never panics: without a tokio runtime, or with too many
    /// notifications waiting, the notification is dropped and counted as failed.
    pub(super) fn dispatch(self: &Arc<Self>, body: Value, what: String) {
        let handle = match tokio::runtime::Handle::try_current() {
            Ok(handle) => handle,
            Err(_) => {
                self.give_up(&what, "no tokio runtime to send the notification on".into());
                return;
            }
        };
        if self.pending.fetch_add(1, Ordering::AcqRel) >= MAX_PENDING {
            self.pending.fetch_sub(1, Ordering::AcqRel);
            self.give_up(
                &what,
                format!(
                    "{MAX_PENDING} notifications are already waiting for this webhook; dropped"
                ),
            );
            return;
        }
        let hook = Arc::clone(self);
        handle.spawn(async move {
            let result = {
                let _turn = hook.turn.lock().await;
                hook.deliver(&body).await
            };
            hook.pending.fetch_sub(1, Ordering::AcqRel);
            match result {
                Ok(()) => {
                    hook.sent.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!(webhook = %hook.config.name, target = %hook.target, alert = %what, "alert notification sent");
                }
                Err(message) => hook.give_up(&what, message),
            }
        });
    }

    fn give_up(&self, what: &str, message: String) {
        self.failed.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(
            webhook = %self.config.name,
            target = %self.target,
            alert = %what,
            error = %message,
            "alert notification not delivered"
        );
        if let Ok(mut last) = self.last_error.lock() {
            *last = Some((message, SystemTime::now()));
        }
    }

    /// Tries up to [`ATTEMPTS`] times; the error is the last try's.
    async fn deliver(&self, body: &Value) -> std::result::Result<(), String> {
        let mut attempt = 1;
        loop {
            let failure = match self.attempt(body).await {
                Ok(()) => return Ok(()),
                Err(failure) => failure,
            };
            let pause = BACKOFF.get(attempt - 1).filter(|_| failure.retry);
            let Some(pause) = pause else {
                return Err(format!("{} (after {attempt} tries)", failure.message));
            };
            tracing::debug!(webhook = %self.config.name, target = %self.target, attempt, error = %failure.message, "alert webhook try failed; retrying");
            tokio::time::sleep(*pause).await;
            attempt += 1;
        }
    }

    async fn attempt(&self, body: &Value) -> std::result::Result<(), Failure> {
        let response = self
            .client
            .post(&self.config.url)
            .timeout(self.config.timeout)
            .headers(self.headers.clone())
            .json(body)
            .send()
            .await
            .map_err(|e| Failure {
                message: describe(e),
                retry: true,
            })?;
        let status = response.status();
        let text = read_limited(response).await;
        if !status.is_success() {
            let code = status.as_u16();
            return Err(Failure {
                message: format!("HTTP {status}{}", snippet(&text)),
                retry: code == 408 || code == 429 || status.is_server_error(),
            });
        }
        if matches!(
            self.config.format,
            WebhookFormat::Dingtalk | WebhookFormat::Wecom
        ) {
            robot_answer(&text)?;
        }
        Ok(())
    }

    pub(super) fn status(&self) -> WebhookStatus {
        let last = self.last_error.lock().ok().and_then(|l| l.clone());
        WebhookStatus {
            name: self.config.name.clone(),
            format: self.config.format,
            target: self.target.clone(),
            sent: self.sent.load(Ordering::Relaxed),
            failed: self.failed.load(Ordering::Relaxed),
            pending: self.pending.load(Ordering::Relaxed) as u64,
            last_error: last.as_ref().map(|(m, _)| m.clone()),
            last_error_at: last.map(|(_, at)| ferry_core::time::to_millis(at)),
        }
    }
}

/// DingTalk and WeCom robots answer 200 with `{"errcode": N, "errmsg": ...}`; only 0
/// means the message was posted.
fn robot_answer(text: &str) -> std::result::Result<(), Failure> {
    let answer: Value = serde_json::from_str(text).map_err(|_| Failure {
        message: format!("the robot's answer is not JSON{}", snippet(text)),
        retry: true,
    })?;
    match answer.get("errcode").and_then(Value::as_i64) {
        Some(0) => Ok(()),
        Some(code) => Err(Failure {
            message: format!(
                "the robot answered errcode {code}: {}",
                answer.get("errmsg").and_then(Value::as_str).unwrap_or("")
            ),
            retry: true,
        }),
        None => Err(Failure {
            message: format!("the robot's answer has no errcode{}", snippet(text)),
            retry: true,
        }),
    }
}

/// Reads at most [`MAX_RESPONSE`] bytes of the body; errors just end the read.
async fn read_limited(mut response: reqwest::Response) -> String {
    let mut buf = Vec::new();
    while let Ok(Some(chunk)) = response.chunk().await {
        let room = MAX_RESPONSE.saturating_sub(buf.len());
        buf.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if buf.len() >= MAX_RESPONSE {
            break;
        }
    }
    String::from_utf8_lossy(&buf).into_owned()
}

fn snippet(text: &str) -> String {
    let text = text.trim();
    if text.is_empty() {
        return String::new();
    }
    let short: String = text.chars().take(200).collect();
    format!(": {}", short.escape_debug())
}

/// A reqwest error and its causes, without the URL.
fn describe(e: reqwest::Error) -> String {
    let timeout = e.is_timeout();
    let e = e.without_url();
    let mut text = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    if timeout && !text.contains("timed out") {
        text.push_str(" (timed out)");
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redaction_keeps_scheme_host_port_only() {
        assert_eq!(
            redact_url("https://oapi.dingtalk.com/robot/send?access_token=SECRET"),
            "https://oapi.dingtalk.com"
        );
        assert_eq!(
            redact_url("http://127.0.0.1:8080/hooks/T000/B000/SECRET"),
            "http://127.0.0.1:8080"
        );
        assert_eq!(redact_url("not a url"), "<invalid url>");
    }

    #[test]
    fn robot_errcodes() {
        assert!(robot_answer(r#"{"errcode":0,"errmsg":"ok"}"#).is_ok());
        let err = robot_answer(r#"{"errcode":310000,"errmsg":"keywords not in content"}"#)
            .expect_err("non-zero errcode fails");
        assert!(err.message.contains("310000") && err.message.contains("keywords"));
        assert!(robot_answer("ok").is_err());
    }

    #[test]
    fn https_client_builds_with_the_ring_provider() {
        let client = build_client().expect("client builds");
        // Building a request for an https URL must not need the network.
        assert!(
            client
                .post("https://hooks.slack.com/services/T/B/X")
                .build()
                .is_ok()
        );
    }
}
