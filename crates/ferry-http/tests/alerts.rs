//! The alerts engine against a real local HTTP receiver: each rule kind fires after
//! `for` and resolves, each webhook format's body, retries, a hung receiver, config
//! errors.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use ferry_core::ErrorKind;
use ferry_http::alerts::{
    AlertState, Alerts, AlertsConfig, QueueSample, RuleConfig, RuleKind, Sample, WebhookConfig,
    WebhookFormat,
};
use serde_json::{Value, json};

/// How a test receiver answers.
#[derive(Clone)]
enum Answer {
    /// 200 with this body.
    Ok(&'static str),
    /// 500 for the first `n` requests, then 200.
    FailFirst(usize),
    /// Always this status.
    Status(u16),
    /// Never answers.
    Hang,
}

#[derive(Clone)]
struct Receiver {
    url: String,
    bodies: Arc<Mutex<Vec<Value>>>,
    hits: Arc<AtomicUsize>,
}

impl Receiver {
    async fn start(answer: Answer) -> Receiver {
        let bodies = Arc::new(Mutex::new(Vec::new()));
        let hits = Arc::new(AtomicUsize::new(0));
        let state = (answer, bodies.clone(), hits.clone());
        let app = Router::new().fallback(handle).with_state(state);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind a local port");
        let addr: SocketAddr = listener.local_addr().expect("local address");
        tokio::spawn(async move {
            axum::serve(listener, app).await.expect("receiver serves");
        });
        Receiver {
            url: format!("http://{addr}/hooks/T000/B000/SECRET-TOKEN"),
            bodies,
            hits,
        }
    }

    fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }

    fn bodies(&self) -> Vec<Value> {
        self.bodies.lock().expect("bodies lock").clone()
    }

    /// Waits until at least `n` requests arrived (or fails the test after 10 s).
    async fn wait_for(&self, n: usize) -> Vec<Value> {
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.hits() < n {
            assert!(
                Instant::now() < deadline,
                "expected {n} requests, got {}: {:?}",
                self.hits(),
                self.bodies()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        self.bodies()
    }

    /// Asserts that no more than `n` requests arrive within `wait`.
    async fn assert_stays_at(&self, n: usize, wait: Duration) {
        tokio::time::sleep(wait).await;
        assert_eq!(self.hits(), n, "unexpected requests: {:?}", self.bodies());
    }
}

type ReceiverState = (Answer, Arc<Mutex<Vec<Value>>>, Arc<AtomicUsize>);

async fn handle(
    State((answer, bodies, hits)): State<ReceiverState>,
    body: Bytes,
) -> (StatusCode, String) {
    let value: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    bodies.lock().expect("bodies lock").push(value);
    let n = hits.fetch_add(1, Ordering::SeqCst) + 1;
    match answer {
        Answer::Ok(reply) => (StatusCode::OK, reply.to_string()),
        Answer::FailFirst(fails) if n <= fails => {
            (StatusCode::INTERNAL_SERVER_ERROR, "boom".into())
        }
        Answer::FailFirst(_) => (StatusCode::OK, "ok".into()),
        Answer::Status(code) => (
            StatusCode::from_u16(code).expect("valid status"),
            "nope".into(),
        ),
        Answer::Hang => std::future::pending().await,
    }
}

const ROBOT_OK: &str = r#"{"errcode":0,"errmsg":"ok"}"#;

fn t(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_700_000_000 + secs)
}

fn ms(at: SystemTime) -> i64 {
    ferry_core::time::to_millis(at)
}

fn sample(secs: u64, queues: Vec<QueueSample>) -> Sample {
    Sample {
        at: t(secs),
        queues,
    }
}

fn queue(name: &str, f: impl FnOnce(&mut QueueSample)) -> QueueSample {
    let mut q = QueueSample::new(name);
    f(&mut q);
    q
}

fn rule(name: &str, kind: RuleKind, threshold: f64, hold: u64) -> RuleConfig {
    let mut rule = RuleConfig::new(name, kind, threshold);
    rule.for_ = Duration::from_secs(hold);
    rule
}

fn engine(rules: Vec<RuleConfig>, webhooks: Vec<WebhookConfig>) -> Alerts {
    Alerts::new(AlertsConfig { rules, webhooks }).expect("valid alerts config")
}

fn generic(url: &str) -> WebhookConfig {
    WebhookConfig::new("hook", url, WebhookFormat::Generic)
}

fn state_of(alerts: &Alerts, rule: usize, queue: &str) -> Option<AlertState> {
    alerts.status().rules[rule]
        .queues
        .iter()
        .find(|q| q.queue == queue)
        .map(|q| q.state)
}

// ---------------------------------------------------------------- rule kinds

#[tokio::test]
async fn backlog_fires_after_for_and_resolves_when_it_clears() {
    let rx = Receiver::start(Answer::Ok("ok")).await;
    let alerts = engine(
        vec![rule("orders-backlog", RuleKind::Backlog, 100.0, 60)],
        vec![generic(&rx.url)],
    );
    let deep = |ready, delayed| {
        queue("orders", |q| {
            q.ready = ready;
            q.delayed = delayed;
        })
    };

    alerts.observe(&sample(0, vec![deep(50, 10)])).await;
    assert_eq!(
        state_of(&alerts, 0, "orders"),
        Some(AlertState::Ok),
        "60 is not > 100"
    );
    alerts.observe(&sample(10, vec![deep(100, 50)])).await;
    assert_eq!(state_of(&alerts, 0, "orders"), Some(AlertState::Pending));
    alerts.observe(&sample(40, vec![deep(120, 50)])).await;
    assert_eq!(
        state_of(&alerts, 0, "orders"),
        Some(AlertState::Pending),
        "held 30s of 60s"
    );
    rx.assert_stays_at(0, Duration::from_millis(200)).await;

    alerts.observe(&sample(70, vec![deep(150, 0)])).await;
    assert_eq!(state_of(&alerts, 0, "orders"), Some(AlertState::Firing));
    let bodies = rx.wait_for(1).await;
    assert_eq!(
        bodies[0],
        json!({
            "alert": "orders-backlog", "queue": "orders", "state": "firing",
            "value": 150.0, "threshold": 100.0, "kind": "backlog", "at": ms(t(70)),
            "message": bodies[0]["message"],
        })
    );
    let message = bodies[0]["message"].as_str().expect("message is a string");
    for part in ["orders-backlog", "orders", "150", "100", "FIRING"] {
        assert!(message.contains(part), "{part:?} missing from {message:?}");
    }

    // Still above: no second notification.
    alerts.observe(&sample(80, vec![deep(500, 0)])).await;
    rx.assert_stays_at(1, Duration::from_millis(200)).await;

    alerts.observe(&sample(90, vec![deep(3, 0)])).await;
    assert_eq!(state_of(&alerts, 0, "orders"), Some(AlertState::Ok));
    let bodies = rx.wait_for(2).await;
    assert_eq!(bodies[1]["state"], "resolved");
    assert_eq!(bodies[1]["value"], 3.0);
    assert_eq!(bodies[1]["at"], ms(t(90)));
    assert!(
        bodies[1]["message"]
            .as_str()
            .is_some_and(|m| m.contains("RESOLVED"))
    );
    rx.assert_stays_at(2, Duration::from_millis(100)).await;
    assert_eq!(alerts.status().webhooks[0].sent, 2);
}

#[tokio::test]
async fn oldest_age_fires_after_for_and_resolves() {
    let rx = Receiver::start(Answer::Ok("ok")).await;
    let alerts = engine(
        vec![rule("stuck", RuleKind::OldestAge, 60.0, 30)],
        vec![generic(&rx.url)],
    );
    let oldest = |secs: u64| queue("orders", move |q| q.oldest_ready_at = Some(t(secs)));

    alerts.observe(&sample(100, vec![oldest(50)])).await; // 50 s old
    alerts.observe(&sample(120, vec![oldest(50)])).await; // 70 s: pending
    assert_eq!(state_of(&alerts, 0, "orders"), Some(AlertState::Pending));
    alerts.observe(&sample(140, vec![oldest(50)])).await; // held 20 s
    rx.assert_stays_at(0, Duration::from_millis(150)).await;
    alerts.observe(&sample(150, vec![oldest(50)])).await; // held 30 s: fires
    let bodies = rx.wait_for(1).await;
    assert_eq!(bodies[0]["state"], "firing");
    assert_eq!(bodies[0]["kind"], "oldest_age");
    assert_eq!(bodies[0]["value"], 100.0);

    // The queue drained: no ready message, age 0.
    alerts
        .observe(&sample(160, vec![QueueSample::new("orders")]))
        .await;
    let bodies = rx.wait_for(2).await;
    assert_eq!(bodies[1]["state"], "resolved");
    assert_eq!(bodies[1]["value"], 0.0);
}

#[tokio::test]
async fn dead_letter_growth_counts_additions_within_the_window() {
    let rx = Receiver::start(Answer::Ok("ok")).await;
    let mut growth = rule("dlq", RuleKind::DeadLetterGrowth, 5.0, 0);
    growth.window = Some(Duration::from_secs(600));
    let alerts = engine(vec![growth], vec![generic(&rx.url)]);
    let dead = |n| queue("orders", move |q| q.dead = n);

    alerts.observe(&sample(0, vec![dead(100)])).await; // existing dead letters don't count
    alerts.observe(&sample(10, vec![dead(103)])).await; // +3
    alerts.observe(&sample(20, vec![dead(0)])).await; // purged by an operator
    alerts.observe(&sample(30, vec![dead(2)])).await; // +2: 5 in the window, not > 5
    assert_eq!(state_of(&alerts, 0, "orders"), Some(AlertState::Ok));
    rx.assert_stays_at(0, Duration::from_millis(150)).await;

    alerts.observe(&sample(40, vec![dead(3)])).await; // +1: 6 > 5
    let bodies = rx.wait_for(1).await;
    assert_eq!(bodies[0]["state"], "firing");
    assert_eq!(bodies[0]["kind"], "dead_letter_growth");
    assert_eq!(bodies[0]["value"], 6.0);

    // Ten minutes later nothing new was added: the growth left the window.
    alerts.observe(&sample(500, vec![dead(3)])).await;
    assert_eq!(
        state_of(&alerts, 0, "orders"),
        Some(AlertState::Firing),
        "still in window"
    );
    alerts.observe(&sample(650, vec![dead(3)])).await;
    let bodies = rx.wait_for(2).await;
    assert_eq!(bodies[1]["state"], "resolved");
    assert_eq!(bodies[1]["value"], 0.0);
}

#[tokio::test]
async fn failure_ratio_needs_min_events_and_uses_the_window() {
    let rx = Receiver::start(Answer::Ok("ok")).await;
    let mut ratio = rule("failing", RuleKind::FailureRatio, 0.5, 10);
    ratio.window = Some(Duration::from_secs(300));
    ratio.min_events = Some(10);
    let alerts = engine(vec![ratio], vec![generic(&rx.url)]);
    let counts = |acked, failed| {
        queue("payments", move |q| {
            q.acked_total = acked;
            q.failed_total = failed;
        })
    };

    alerts.observe(&sample(0, vec![counts(1000, 0)])).await; // baseline
    alerts.observe(&sample(10, vec![counts(1001, 8)])).await; // 8/9: too few events
    assert_eq!(state_of(&alerts, 0, "payments"), Some(AlertState::Ok));
    alerts.observe(&sample(20, vec![counts(1002, 12)])).await; // 12/14 > 0.5: pending
    assert_eq!(state_of(&alerts, 0, "payments"), Some(AlertState::Pending));
    alerts.observe(&sample(30, vec![counts(1003, 16)])).await; // held 10 s: fires
    let bodies = rx.wait_for(1).await;
    assert_eq!(bodies[0]["state"], "firing");
    assert_eq!(bodies[0]["kind"], "failure_ratio");
    let value = bodies[0]["value"].as_f64().expect("value is a number");
    assert!((value - 16.0 / 19.0).abs() < 1e-9, "{value}");
    assert!(
        bodies[0]["message"]
            .as_str()
            .is_some_and(|m| m.contains("84.2%")),
        "{}",
        bodies[0]
    );

    // Six minutes on, the last five minutes had 100 acks and no failures.
    alerts.observe(&sample(360, vec![counts(1103, 16)])).await;
    let bodies = rx.wait_for(2).await;
    assert_eq!(bodies[1]["state"], "resolved");
    assert_eq!(bodies[1]["value"], 0.0);
}

#[tokio::test]
async fn queue_patterns_select_queues_and_deleted_queues_resolve() {
    let rx = Receiver::start(Answer::Ok("ok")).await;
    let mut eu = rule("eu-backlog", RuleKind::Backlog, 0.0, 0);
    eu.queue = Some("orders.*".into());
    let alerts = engine(vec![eu], vec![generic(&rx.url)]);
    let busy = |name: &str| queue(name, |q| q.ready = 1);

    alerts
        .observe(&sample(0, vec![busy("orders.eu"), busy("payments")]))
        .await;
    let status = alerts.status();
    assert_eq!(status.firing, 1);
    let watched: Vec<&str> = status.rules[0]
        .queues
        .iter()
        .map(|q| q.queue.as_str())
        .collect();
    assert_eq!(watched, ["orders.eu"]);
    let bodies = rx.wait_for(1).await;
    assert_eq!(bodies[0]["queue"], "orders.eu");

    // The queue was deleted: its alert resolves and leaves the status.
    alerts.observe(&sample(10, vec![busy("payments")])).await;
    let bodies = rx.wait_for(2).await;
    assert_eq!(bodies[1]["state"], "resolved");
    assert_eq!(bodies[1]["queue"], "orders.eu");
    assert!(alerts.status().rules[0].queues.is_empty());
}

// ---------------------------------------------------------------- formats

#[tokio::test]
async fn every_format_posts_its_own_body_shape() {
    let generic_rx = Receiver::start(Answer::Ok("ok")).await;
    let slack_rx = Receiver::start(Answer::Ok("ok")).await;
    let ding_rx = Receiver::start(Answer::Ok(ROBOT_OK)).await;
    let wecom_rx = Receiver::start(Answer::Ok(ROBOT_OK)).await;
    let alerts = engine(
        vec![rule("orders-backlog", RuleKind::Backlog, 1000.0, 0)],
        vec![
            WebhookConfig::new("json", &generic_rx.url, WebhookFormat::Generic),
            WebhookConfig::new("slack", &slack_rx.url, WebhookFormat::Slack),
            WebhookConfig::new("dingtalk", &ding_rx.url, WebhookFormat::Dingtalk),
            WebhookConfig::new("wecom", &wecom_rx.url, WebhookFormat::Wecom),
        ],
    );
    alerts
        .observe(&sample(0, vec![queue("orders", |q| q.ready = 1500)]))
        .await;

    let expect_text = |text: &str, what: &str| {
        for part in ["orders-backlog", "orders", "1500", "1000", "FIRING"] {
            assert!(
                text.contains(part),
                "{what}: {part:?} missing from {text:?}"
            );
        }
    };

    let body = &generic_rx.wait_for(1).await[0];
    let mut keys: Vec<&str> = body
        .as_object()
        .expect("object")
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "alert",
            "at",
            "kind",
            "message",
            "queue",
            "state",
            "threshold",
            "value"
        ]
    );

    let body = &slack_rx.wait_for(1).await[0];
    assert_eq!(
        body.as_object().expect("object").len(),
        1,
        "slack: only text: {body}"
    );
    expect_text(body["text"].as_str().expect("slack text"), "slack");

    let body = &ding_rx.wait_for(1).await[0];
    assert_eq!(body["msgtype"], "markdown");
    assert_eq!(body.as_object().expect("object").len(), 2, "{body}");
    let title = body["markdown"]["title"].as_str().expect("dingtalk title");
    assert!(title.contains("orders-backlog"), "{title}");
    expect_text(
        body["markdown"]["text"].as_str().expect("dingtalk text"),
        "dingtalk",
    );

    let body = &wecom_rx.wait_for(1).await[0];
    assert_eq!(body["msgtype"], "markdown");
    assert_eq!(
        body["markdown"].as_object().expect("object").len(),
        1,
        "{body}"
    );
    expect_text(
        body["markdown"]["content"].as_str().expect("wecom content"),
        "wecom",
    );

    // Robots answered errcode 0: every webhook counts one delivery.
    let deadline = Instant::now() + Duration::from_secs(5);
    while alerts.status().webhooks.iter().any(|w| w.sent != 1) {
        assert!(Instant::now() < deadline, "{:?}", alerts.status().webhooks);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(alerts.status().webhooks.iter().all(|w| w.failed == 0));
}

#[tokio::test]
async fn a_rule_notifies_only_the_webhooks_it_names() {
    let a = Receiver::start(Answer::Ok("ok")).await;
    let b = Receiver::start(Answer::Ok("ok")).await;
    let mut only_b = rule("to-b", RuleKind::Backlog, 0.0, 0);
    only_b.webhooks = Some(vec!["b".into()]);
    let alerts = engine(
        vec![only_b],
        vec![
            WebhookConfig::new("a", &a.url, WebhookFormat::Generic),
            WebhookConfig::new("b", &b.url, WebhookFormat::Generic),
        ],
    );
    alerts
        .observe(&sample(0, vec![queue("q", |q| q.ready = 1)]))
        .await;
    b.wait_for(1).await;
    a.assert_stays_at(0, Duration::from_millis(200)).await;
    assert_eq!(alerts.status().rules[0].webhooks, ["b"]);
}

// ---------------------------------------------------------------- delivery

async fn wait_settled(alerts: &Alerts, sent: u64, failed: u64) {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let w = &alerts.status().webhooks[0];
        if w.sent == sent && w.failed == failed && w.pending == 0 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "expected sent {sent} failed {failed}: {w:?}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

#[tokio::test]
async fn a_receiver_failing_twice_gets_the_notification_on_the_third_try() {
    let rx = Receiver::start(Answer::FailFirst(2)).await;
    let alerts = engine(
        vec![rule("r", RuleKind::Backlog, 0.0, 0)],
        vec![generic(&rx.url)],
    );
    alerts
        .observe(&sample(0, vec![queue("q", |q| q.ready = 1)]))
        .await;
    let bodies = rx.wait_for(3).await;
    assert!(
        bodies.iter().all(|b| b == &bodies[0]),
        "same body every try"
    );
    assert_eq!(bodies[0]["state"], "firing");
    wait_settled(&alerts, 1, 0).await;
    rx.assert_stays_at(3, Duration::from_millis(700)).await;
}

#[tokio::test]
async fn a_receiver_that_always_fails_is_tried_four_times_and_counted() {
    let rx = Receiver::start(Answer::Status(503)).await;
    let alerts = engine(
        vec![rule("r", RuleKind::Backlog, 0.0, 0)],
        vec![generic(&rx.url)],
    );
    alerts
        .observe(&sample(0, vec![queue("q", |q| q.ready = 1)]))
        .await;
    wait_settled(&alerts, 0, 1).await;
    assert_eq!(rx.hits(), 4, "the first try and three retries");
    let status = alerts.status();
    let hook = &status.webhooks[0];
    let error = hook.last_error.as_deref().expect("last error recorded");
    assert!(error.contains("503"), "{error}");
    assert!(hook.last_error_at.is_some());
    // The URL's secret path appears nowhere in the status.
    let json = serde_json::to_string(&status).expect("status serializes");
    assert!(!json.contains("SECRET-TOKEN"), "{json}");
    assert!(
        hook.target.starts_with("http://127.0.0.1:"),
        "{}",
        hook.target
    );
}

#[tokio::test]
async fn client_errors_and_robot_errcodes_fail_the_delivery() {
    // A 4xx other than 408/429 will not get better: one try only.
    let rx = Receiver::start(Answer::Status(404)).await;
    let alerts = engine(
        vec![rule("r", RuleKind::Backlog, 0.0, 0)],
        vec![generic(&rx.url)],
    );
    alerts
        .observe(&sample(0, vec![queue("q", |q| q.ready = 1)]))
        .await;
    wait_settled(&alerts, 0, 1).await;
    assert_eq!(rx.hits(), 1);

    // DingTalk says "no" with 200 and a non-zero errcode.
    let rx = Receiver::start(Answer::Ok(
        r#"{"errcode":310000,"errmsg":"keywords not in content"}"#,
    ))
    .await;
    let alerts = engine(
        vec![rule("r", RuleKind::Backlog, 0.0, 0)],
        vec![WebhookConfig::new("ding", &rx.url, WebhookFormat::Dingtalk)],
    );
    alerts
        .observe(&sample(0, vec![queue("q", |q| q.ready = 1)]))
        .await;
    wait_settled(&alerts, 0, 1).await;
    let error = alerts.status().webhooks[0]
        .last_error
        .clone()
        .expect("error recorded");
    assert!(error.contains("310000"), "{error}");
}

#[tokio::test]
async fn a_receiver_that_never_answers_does_not_block_observe() {
    let rx = Receiver::start(Answer::Hang).await;
    let mut hook = generic(&rx.url);
    hook.timeout = Duration::from_millis(300);
    let alerts = engine(vec![rule("r", RuleKind::Backlog, 0.0, 0)], vec![hook]);
    let busy = queue("q", |q| q.ready = 1);

    // Fire, resolve, fire again: each observe returns at once although every
    // notification hangs in the receiver.
    for (secs, q) in [(0, busy.clone()), (5, QueueSample::new("q")), (10, busy)] {
        let started = Instant::now();
        tokio::time::timeout(
            Duration::from_secs(1),
            alerts.observe(&sample(secs, vec![q])),
        )
        .await
        .expect("observe returns without waiting for the webhook");
        assert!(
            started.elapsed() < Duration::from_millis(250),
            "{:?}",
            started.elapsed()
        );
    }
    assert_eq!(state_of(&alerts, 0, "q"), Some(AlertState::Firing));
    assert!(alerts.status().webhooks[0].pending >= 1);

    // The first notification gives up after four timed-out tries.
    let deadline = Instant::now() + Duration::from_secs(20);
    while alerts.status().webhooks[0].failed == 0 {
        assert!(
            Instant::now() < deadline,
            "{:?}",
            alerts.status().webhooks[0]
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let error = alerts.status().webhooks[0]
        .last_error
        .clone()
        .expect("error recorded");
    assert!(error.contains("timed out"), "{error}");
    assert!(!error.contains("SECRET-TOKEN"), "{error}");
}

// ---------------------------------------------------------------- config

fn parse(config: Value) -> Result<AlertsConfig, String> {
    serde_json::from_value(config).map_err(|e| e.to_string())
}

#[test]
fn config_reads_durations_and_defaults() {
    let config = parse(json!({
        "rules": [
            {"name": "a", "kind": "backlog", "threshold": 10, "for": "1m"},
            {"name": "b", "queue": "orders.*", "kind": "failure_ratio", "threshold": 0.2,
             "window": "10m", "min_events": 50, "webhooks": ["ops"]}
        ],
        "webhooks": [
            {"name": "ops", "url": "https://example.com/hook", "format": "wecom",
             "timeout": "2s", "headers": {"X-Token": "t"}},
            {"name": "plain", "url": "http://localhost:9000/"}
        ]
    }))
    .expect("valid config");
    assert_eq!(config.rules[0].for_, Duration::from_secs(60));
    assert_eq!(config.rules[0].window, None);
    assert_eq!(config.rules[1].effective_window(), Duration::from_secs(600));
    assert_eq!(config.rules[1].effective_min_events(), 50);
    assert_eq!(config.webhooks[0].timeout, Duration::from_secs(2));
    assert_eq!(config.webhooks[1].format, WebhookFormat::Generic);
    assert_eq!(config.webhooks[1].timeout, Duration::from_secs(5));
    // `for` defaults to 0 and the config round-trips through its own serialization.
    let again: AlertsConfig =
        serde_json::from_value(serde_json::to_value(&config).expect("serializes"))
            .expect("round trip");
    assert_eq!(again, config);
    assert!(Alerts::new(config).is_ok());
}

/// The TOML example of the module docs (`[serve.alerts]` in ferry.toml), as the JSON
/// the `toml` crate turns it into.
#[test]
fn the_documented_ferry_toml_example_is_valid() {
    let config = parse(json!({
        "rules": [
            {"for": "5m", "kind": "backlog", "name": "orders-backlog", "queue": "orders", "threshold": 10000},
            {"for": "2m", "kind": "oldest_age", "name": "stuck-messages", "threshold": 600},
            {"kind": "dead_letter_growth", "name": "dead-letters", "threshold": 0,
             "webhooks": ["ops-slack"], "window": "10m"},
            {"for": "1m", "kind": "failure_ratio", "min_events": 20, "name": "payments-failing",
             "queue": "payments.*", "threshold": 0.2, "window": "5m"}
        ],
        "webhooks": [
            {"format": "slack", "name": "ops-slack", "url": "https://hooks.slack.com/services/T000/B000/XXXX"},
            {"headers": {"Authorization": "Bearer s3cret"}, "name": "pager", "timeout": "3s",
             "url": "https://alerts.example.com/ferry"}
        ]
    }))
    .expect("the documented example parses");
    let alerts = Alerts::new(config).expect("the documented example is consistent");
    let status = alerts.status();
    assert_eq!(status.rules.len(), 4);
    assert_eq!(status.rules[2].webhooks, ["ops-slack"]);
    assert_eq!(status.rules[0].webhooks, ["ops-slack", "pager"]);
    assert_eq!(status.webhooks[0].target, "https://hooks.slack.com");
}

#[test]
fn config_errors_name_the_field() {
    let cases = [
        (
            json!({"rules": [{"name": "a", "kind": "backlog", "treshold": 1}]}),
            "treshold",
        ),
        (json!({"rulez": []}), "rulez"),
        (
            json!({"rules": [{"name": "a", "kind": "backlog", "threshold": 1, "for": "5 minutes"}]}),
            "`for`",
        ),
        (
            json!({"rules": [{"name": "a", "kind": "backlog", "threshold": 1, "window": "ten"}]}),
            "`window`",
        ),
        (
            json!({"rules": [{"name": "a", "kind": "queue_depth", "threshold": 1}]}),
            "`kind`",
        ),
        (
            json!({"webhooks": [{"name": "w", "url": "http://x/", "format": "teams"}]}),
            "`format`",
        ),
        (
            json!({"webhooks": [{"name": "w", "url": "http://x/", "timeout": 5}]}),
            "`timeout`",
        ),
    ];
    for (config, field) in cases {
        let err = parse(config.clone()).expect_err("config must be rejected");
        assert!(
            err.contains(field),
            "{field} not named in {err:?} for {config}"
        );
    }
    let err = parse(json!({"webhooks": [{"name": "w", "url": "http://x/", "format": "teams"}]}))
        .expect_err("unknown format");
    assert!(err.contains("teams") && err.contains("slack"), "{err}");
}

#[test]
fn inconsistent_configs_are_invalid_input_naming_rule_and_field() {
    let hook = || WebhookConfig::new("ops", "https://example.com/x", WebhookFormat::Slack);
    let mut named_missing = RuleConfig::new("r1", RuleKind::Backlog, 1.0);
    named_missing.webhooks = Some(vec!["pager".into()]);
    let mut window_on_gauge = RuleConfig::new("r2", RuleKind::Backlog, 1.0);
    window_on_gauge.window = Some(Duration::from_secs(60));
    let mut long_window = RuleConfig::new("r3", RuleKind::DeadLetterGrowth, 1.0);
    long_window.window = Some(Duration::from_secs(2 * 3600));
    let mut bad_pattern = RuleConfig::new("r4", RuleKind::Backlog, 1.0);
    bad_pattern.queue = Some("*.orders".into());
    let mut bad_header = hook();
    bad_header.headers.insert("Bad Header".into(), "x".into());

    let cases: Vec<(AlertsConfig, &[&str])> = vec![
        (
            AlertsConfig {
                rules: vec![named_missing],
                webhooks: vec![hook()],
            },
            &["rule 'r1'", "`webhooks`", "pager"],
        ),
        (
            AlertsConfig {
                rules: vec![
                    RuleConfig::new("dup", RuleKind::Backlog, 1.0),
                    RuleConfig::new("dup", RuleKind::OldestAge, 1.0),
                ],
                webhooks: vec![],
            },
            &["rule 'dup'", "`name`"],
        ),
        (
            AlertsConfig {
                rules: vec![RuleConfig::new("nan", RuleKind::Backlog, f64::NAN)],
                webhooks: vec![],
            },
            &["rule 'nan'", "`threshold`"],
        ),
        (
            AlertsConfig {
                rules: vec![RuleConfig::new("pct", RuleKind::FailureRatio, 20.0)],
                webhooks: vec![],
            },
            &["rule 'pct'", "`threshold`", "between 0 and 1"],
        ),
        (
            AlertsConfig {
                rules: vec![window_on_gauge],
                webhooks: vec![],
            },
            &["rule 'r2'", "`window`"],
        ),
        (
            AlertsConfig {
                rules: vec![long_window],
                webhooks: vec![],
            },
            &["rule 'r3'", "`window`", "1h"],
        ),
        (
            AlertsConfig {
                rules: vec![bad_pattern],
                webhooks: vec![],
            },
            &["rule 'r4'", "`queue`"],
        ),
        (
            AlertsConfig {
                rules: vec![],
                webhooks: vec![WebhookConfig::new(
                    "ftp",
                    "ftp://example.com/x",
                    WebhookFormat::Generic,
                )],
            },
            &["webhook 'ftp'", "`url`", "http"],
        ),
        (
            AlertsConfig {
                rules: vec![],
                webhooks: vec![WebhookConfig::new(
                    "rel",
                    "/relative",
                    WebhookFormat::Generic,
                )],
            },
            &["webhook 'rel'", "`url`"],
        ),
        (
            AlertsConfig {
                rules: vec![],
                webhooks: vec![hook(), hook()],
            },
            &["webhook 'ops'", "`name`"],
        ),
        (
            AlertsConfig {
                rules: vec![],
                webhooks: vec![bad_header],
            },
            &["webhook 'ops'", "`headers`"],
        ),
    ];
    for (config, parts) in cases {
        let err = Alerts::new(config).expect_err("config must be rejected");
        assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
        for part in parts {
            assert!(
                err.message().contains(part),
                "{part:?} not in {:?}",
                err.message()
            );
        }
    }
}

#[test]
fn debug_output_hides_webhook_secrets() {
    let mut hook = WebhookConfig::new(
        "ding",
        "https://oapi.dingtalk.com/robot/send?access_token=SECRET-TOKEN",
        WebhookFormat::Dingtalk,
    );
    hook.headers
        .insert("Authorization".into(), "Bearer SECRET-BEARER".into());
    let config = AlertsConfig {
        rules: vec![],
        webhooks: vec![hook],
    };
    let text = format!("{config:?}");
    assert!(!text.contains("SECRET"), "{text}");
    assert!(text.contains("https://oapi.dingtalk.com"), "{text}");
    let alerts = Alerts::new(config).expect("valid config");
    let text = format!("{alerts:?}");
    assert!(!text.contains("SECRET"), "{text}");
}
