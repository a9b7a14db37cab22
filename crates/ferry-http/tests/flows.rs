//! The API end to end over the embedded store: produce, consume by receipt, repair dead
//! letters, search, topics, pause, metrics and the audit trail of every change.

mod support;

use axum::http::StatusCode;
use serde_json::{Value, json};
use support::{ADMIN, As, app, call};

async fn ok(app: &support::App, method: &str, path: &str, body: Option<Value>) -> Value {
    let r = call(app, method, path, As::Bearer(ADMIN), body).await;
    assert_eq!(r.status, StatusCode::OK, "{method} {path}: {}", r.text);
    r.body
}

async fn receive(app: &support::App, q: &str, max: u64) -> Vec<Value> {
    let b = ok(
        app,
        "POST",
        &format!("/api/queues/{q}/receive"),
        Some(json!({"max": max})),
    )
    .await;
    b["deliveries"].as_array().cloned().unwrap_or_default()
}

#[tokio::test]
async fn produce_and_consume_by_receipt() {
    let app = app();
    ok(
        &app,
        "POST",
        "/api/queues",
        Some(json!({"name": "jobs", "max_attempts": 2})),
    )
    .await;
    let sent = ok(
        &app,
        "POST",
        "/api/queues/jobs/messages",
        Some(json!({"messages": [
            {"id": "a", "payload": {"n": 1}, "headers": {"k": "v"}},
            {"id": "b", "payload_base64": "AP8A"},
            {"id": "c", "payload": "later", "delay_ms": 60000},
        ]})),
    )
    .await;
    assert_eq!(sent["enqueued"], 3);
    let again = ok(
        &app,
        "POST",
        "/api/queues/jobs/messages",
        Some(json!({"id": "a", "payload": "dup"})),
    )
    .await;
    assert_eq!(
        again["duplicates"],
        json!(["a"]),
        "a live id is not sent twice"
    );

    let got = receive(&app, "jobs", 10).await;
    assert_eq!(got.len(), 2, "the delayed one waits");
    let a = got.iter().find(|d| d["id"] == "a").expect("a");
    let b = got.iter().find(|d| d["id"] == "b").expect("b");
    assert_eq!(a["payload"], r#"{"n":1}"#);
    assert_eq!(a["headers"]["k"], "v");
    assert_eq!(b["payload_base64"], "AP8A", "binary stays binary");
    assert_eq!(a["attempt"], 1);

    let extended = ok(
        &app,
        "POST",
        "/api/extend",
        Some(json!({"receipt": a["receipt"], "lease_ms": 60000})),
    )
    .await;
    assert!(extended["lease_until"].as_i64().unwrap_or(0) > a["lease_until"].as_i64().unwrap_or(0));
    ok(
        &app,
        "POST",
        "/api/ack",
        Some(json!({"receipt": a["receipt"], "enqueued_at": a["enqueued_at"]})),
    )
    .await;
    // Acking twice is a stale receipt, not a silent success.
    let r = call(
        &app,
        "POST",
        "/api/ack",
        As::Bearer(ADMIN),
        Some(json!({"receipt": a["receipt"]})),
    )
    .await;
    assert_eq!(
        (r.status, r.kind()),
        (StatusCode::CONFLICT, "stale_receipt"),
        "{}",
        r.text
    );

    ok(
        &app,
        "POST",
        "/api/retry",
        Some(json!({"receipt": b["receipt"], "error": "flaky"})),
    )
    .await;
    let again = receive(&app, "jobs", 10).await;
    assert_eq!(again.len(), 1);
    assert_eq!(
        (again[0]["id"].clone(), again[0]["attempt"].clone()),
        (json!("b"), json!(2))
    );
    ok(
        &app,
        "POST",
        "/api/dead-letter",
        Some(json!({"receipt": again[0]["receipt"], "reason": "bad_input", "error": "nope"})),
    )
    .await;

    let stats = ok(&app, "GET", "/api/queues/jobs", None).await;
    assert_eq!(stats["stats"]["delayed"], 1);
    assert_eq!(stats["stats"]["dead"], 1);
    assert_eq!(stats["stats"]["ready"], 0);

    let detail = ok(&app, "GET", "/api/queues/jobs/messages/b", None).await;
    assert_eq!(detail["dead_letter"]["reason"], "bad_input");
    let events: Vec<&str> = detail["history"]
        .as_array()
        .expect("history")
        .iter()
        .filter_map(|e| e["event"].as_str())
        .collect();
    assert!(
        events.contains(&"retried") && events.contains(&"dead_lettered"),
        "{events:?}"
    );

    let metrics = call(&app, "GET", "/metrics", As::Bearer(ADMIN), None).await;
    for needle in [
        r#"ferry_queue_messages{queue="jobs",state="delayed"} 1"#,
        r#"ferry_messages_acked_total{queue="jobs"} 1"#,
        r#"ferry_messages_retried_total{queue="jobs"} 1"#,
        r#"ferry_messages_dead_lettered_total{queue="jobs"} 1"#,
        r#"ferry_messages_sent_total{queue="jobs"} 3"#,
        "ferry_end_to_end_latency_seconds_count",
        "ferry_backend_up 1",
        "ferry_http_requests_total",
    ] {
        assert!(
            metrics.text.contains(needle),
            "metrics lack {needle}:\n{}",
            metrics.text
        );
    }
}

async fn dead_letters(app: &support::App, q: &str, extra: &str) -> Value {
    ok(
        app,
        "GET",
        &format!("/api/queues/{q}/dead-letters?limit=50{extra}"),
        None,
    )
    .await
}

async fn kill(app: &support::App, q: &str, reason: &str) {
    for d in receive(app, q, 100).await {
        ok(
            app,
            "POST",
            "/api/dead-letter",
            Some(json!({"receipt": d["receipt"], "reason": reason})),
        )
        .await;
    }
}

#[tokio::test]
async fn dead_letters_are_listed_filtered_edited_requeued_deleted_and_purged() {
    let app = app();
    ok(
        &app,
        "POST",
        "/api/queues",
        Some(json!({"name": "mail", "max_attempts": 1})),
    )
    .await;
    let batch: Vec<Value> = (0..6).map(|n| json!({"id": format!("m{n}"), "payload": format!("{{\"to\":\"user{n}@example.com\"}}")})).collect();
    ok(
        &app,
        "POST",
        "/api/queues/mail/messages",
        Some(json!({"messages": batch})),
    )
    .await;
    kill(&app, "mail", "bounced").await;
    ok(
        &app,
        "POST",
        "/api/queues/mail/messages",
        Some(json!({"id": "x", "payload": "<script>alert(1)</script>"})),
    )
    .await;
    kill(&app, "mail", "rejected").await;

    let all = dead_letters(&app, "mail", "").await;
    assert_eq!(all["dead_letters"].as_array().map(Vec::len), Some(7));
    assert_eq!(all["total"], 7);
    let page = dead_letters(&app, "mail", "&offset=5").await;
    assert_eq!(page["dead_letters"].as_array().map(Vec::len), Some(2));
    let bounced = dead_letters(&app, "mail", "&reason=bounced").await;
    assert_eq!(bounced["dead_letters"].as_array().map(Vec::len), Some(6));
    let text = dead_letters(&app, "mail", "&text=user3").await;
    assert_eq!(text["dead_letters"][0]["id"], "m3");
    let one = ok(&app, "GET", "/api/queues/mail/dead-letters/x", None).await;
    assert_eq!(
        one["payload"], "<script>alert(1)</script>",
        "stored as text, unchanged"
    );

    // Edit and requeue: the new payload goes out under the same id.
    ok(
        &app,
        "PUT",
        "/api/queues/mail/dead-letters/m0",
        Some(json!({"payload": {"to": "fixed@example.com"}})),
    )
    .await;
    let r = call(
        &app,
        "GET",
        "/api/queues/mail/dead-letters/m0",
        As::Bearer(ADMIN),
        None,
    )
    .await;
    assert_eq!(
        r.status,
        StatusCode::NOT_FOUND,
        "the edited dead letter is gone"
    );
    let q = ok(&app, "GET", "/api/queues/mail", None).await;
    assert_eq!(
        q["stats"]["delayed"].as_u64().unwrap_or(0) + q["stats"]["ready"].as_u64().unwrap_or(0),
        1
    );

    let n = ok(
        &app,
        "POST",
        "/api/queues/mail/dead-letters/requeue",
        Some(json!({"ids": ["m1", "m2"]})),
    )
    .await;
    assert_eq!(n["count"], 2);
    let n = ok(
        &app,
        "POST",
        "/api/queues/mail/dead-letters/delete",
        Some(json!({"ids": ["m3"]})),
    )
    .await;
    assert_eq!(n["count"], 1);
    let n = ok(&app, "DELETE", "/api/queues/mail/dead-letters", None).await;
    assert_eq!(n["count"], 3);
    assert_eq!(dead_letters(&app, "mail", "").await["total"], 0);
    let q = ok(&app, "GET", "/api/queues/mail", None).await;
    assert_eq!(
        q["stats"]["ready"].as_u64().unwrap_or(0) + q["stats"]["delayed"].as_u64().unwrap_or(0),
        3,
        "m0 edited, m1 and m2 requeued"
    );

    let audit = ok(&app, "GET", "/api/audit", None).await;
    let actions: Vec<(String, u64)> = audit["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .map(|e| {
            (
                e["action"].as_str().unwrap_or("").to_string(),
                e["count"].as_u64().unwrap_or(0),
            )
        })
        .collect();
    assert_eq!(
        actions,
        vec![
            ("dead_letters.purge".to_string(), 3),
            ("dead_letters.delete".to_string(), 1),
            ("dead_letters.requeue".to_string(), 2),
            ("dead_letters.edit_requeue".to_string(), 1),
            ("queue.create".to_string(), 1),
        ],
        "newest first, with counts"
    );
    assert_eq!(audit["entries"][0]["actor"], "ops");
}

#[tokio::test]
async fn search_finds_messages_by_id_and_dead_letters_by_text() {
    let app = app();
    for q in ["a", "b"] {
        ok(
            &app,
            "POST",
            "/api/queues",
            Some(json!({"name": q, "max_attempts": 1})),
        )
        .await;
    }
    ok(
        &app,
        "POST",
        "/api/queues/a/messages",
        Some(json!({"id": "order-7", "payload": "needle in a"})),
    )
    .await;
    ok(
        &app,
        "POST",
        "/api/queues/b/messages",
        Some(json!({"id": "order-8", "payload": "needle in b"})),
    )
    .await;
    kill(&app, "b", "rejected").await;
    let by_id = ok(&app, "GET", "/api/search?id=order-7", None).await;
    assert_eq!(by_id["results"].as_array().map(Vec::len), Some(1));
    assert_eq!(by_id["results"][0]["queue"], "a");
    let by_text = ok(&app, "GET", "/api/search?text=NEEDLE", None).await;
    assert_eq!(
        by_text["results"].as_array().map(Vec::len),
        Some(1),
        "only dead letters are searched by text"
    );
    assert_eq!(by_text["results"][0]["id"], "order-8");
    let r = call(&app, "GET", "/api/search", As::Bearer(ADMIN), None).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn topics_route_by_key_and_audit_topology() {
    let app = app();
    for q in ["billing", "all"] {
        ok(&app, "POST", "/api/queues", Some(json!({"name": q}))).await;
    }
    ok(&app, "POST", "/api/topics", Some(json!({"name": "orders"}))).await;
    ok(
        &app,
        "POST",
        "/api/topics/orders/bindings",
        Some(json!({"queue": "billing", "pattern": "order.*.paid"})),
    )
    .await;
    ok(
        &app,
        "POST",
        "/api/topics/orders/bindings",
        Some(json!({"queue": "all", "pattern": "#"})),
    )
    .await;
    let r = ok(
        &app,
        "POST",
        "/api/topics/orders/messages",
        Some(json!({"route_key": "order.eu.paid", "payload": "p"})),
    )
    .await;
    assert_eq!(r["queues"], json!(["all", "billing"]));
    let r = ok(&app, "POST", "/api/topics/orders/messages", Some(json!({"route_key": "order.eu.created", "messages": [{"payload": "c1"}, {"payload": "c2"}]}))).await;
    assert_eq!(r["queues"], json!(["all"]));
    let topics = ok(&app, "GET", "/api/topics", None).await;
    assert_eq!(topics[0]["bindings"].as_array().map(Vec::len), Some(2));
    let bad = call(
        &app,
        "POST",
        "/api/topics/orders/bindings",
        As::Bearer(ADMIN),
        Some(json!({"queue": "all", "pattern": "a.b*"})),
    )
    .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    ok(
        &app,
        "DELETE",
        "/api/topics/orders/bindings",
        Some(json!({"queue": "all", "pattern": "#"})),
    )
    .await;
    let r = call(
        &app,
        "POST",
        "/api/topics/orders/messages",
        As::Bearer(ADMIN),
        Some(json!({"route_key": "x.y", "payload": "p"})),
    )
    .await;
    assert_eq!(
        (r.status, r.kind()),
        (StatusCode::UNPROCESSABLE_ENTITY, "unroutable")
    );
    ok(&app, "DELETE", "/api/topics/orders", None).await;
    let stats = ok(&app, "GET", "/api/stats", None).await;
    let ready: Vec<u64> = stats
        .as_array()
        .expect("stats")
        .iter()
        .map(|s| s["ready"].as_u64().unwrap_or(0))
        .collect();
    assert_eq!(ready, vec![3, 1], "all: 3, billing: 1");
    let audit = ok(&app, "GET", "/api/audit", None).await;
    let actions: Vec<&str> = audit["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .filter_map(|e| e["action"].as_str())
        .collect();
    assert_eq!(
        &actions[..4],
        &["topic.delete", "topic.unbind", "topic.bind", "topic.bind"]
    );
}

#[tokio::test]
async fn paused_queues_deliver_nothing_until_resumed() {
    let app = app();
    ok(&app, "POST", "/api/queues", Some(json!({"name": "p"}))).await;
    ok(
        &app,
        "POST",
        "/api/queues/p/messages",
        Some(json!({"payload": "x"})),
    )
    .await;
    ok(&app, "POST", "/api/queues/p/pause", None).await;
    assert_eq!(ok(&app, "GET", "/api/queues/p", None).await["paused"], true);
    assert!(receive(&app, "p", 10).await.is_empty());
    ok(&app, "POST", "/api/queues/p/resume", None).await;
    assert_eq!(receive(&app, "p", 10).await.len(), 1);
    let audit = ok(&app, "GET", "/api/audit", None).await;
    assert_eq!(audit["entries"][0]["action"], "queue.resume");
    assert_eq!(audit["entries"][1]["action"], "queue.pause");
}

#[tokio::test]
async fn health_and_overview() {
    let app = app();
    assert_eq!(
        call(&app, "GET", "/healthz", As::Nobody, None).await.body["status"],
        "ok"
    );
    assert_eq!(
        call(&app, "GET", "/readyz", As::Nobody, None).await.body["status"],
        "ready"
    );
    ok(&app, "POST", "/api/queues", Some(json!({"name": "o"}))).await;
    ok(
        &app,
        "POST",
        "/api/queues/o/messages",
        Some(json!({"payload": "x"})),
    )
    .await;
    app.server.sample_once().await;
    app.server.sample_once().await;
    let o = ok(&app, "GET", "/api/overview", None).await;
    assert_eq!(o["totals"]["ready"], 1);
    assert_eq!(o["series"].as_array().map(Vec::len), Some(2));
    assert_eq!(o["series"][1]["queues"]["o"]["ready"], 1);
    assert_eq!(o["series"][1]["queues"]["o"]["sent_total"], 1);
    let doc = call(&app, "GET", "/api/openapi.json", As::Nobody, None).await;
    assert_eq!(doc.body["openapi"], "3.1.0");
    for (method, path, _) in ferry_http::ROUTES {
        assert!(
            doc.body["paths"][path][method.to_lowercase()].is_object(),
            "{method} {path} missing from OpenAPI"
        );
    }
}

#[tokio::test]
async fn edit_refuses_what_it_would_lose() {
    let app = app();
    ok(
        &app,
        "POST",
        "/api/queues",
        Some(json!({"name": "e", "max_attempts": 1})),
    )
    .await;
    // The same id dies twice: an edit (which deletes by id) must not take both.
    for payload in ["first", "second"] {
        ok(
            &app,
            "POST",
            "/api/queues/e/messages",
            Some(json!({"id": "x", "payload": payload})),
        )
        .await;
        kill(&app, "e", "rejected").await;
    }
    let r = call(
        &app,
        "PUT",
        "/api/queues/e/dead-letters/x",
        As::Bearer(ADMIN),
        Some(json!({"payload": "fixed"})),
    )
    .await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.text);
    assert_eq!(
        dead_letters(&app, "e", "").await["total"],
        2,
        "both copies kept"
    );

    // A published dead letter keeps its route key only when requeued unedited.
    ok(&app, "POST", "/api/topics", Some(json!({"name": "t"}))).await;
    ok(
        &app,
        "POST",
        "/api/topics/t/bindings",
        Some(json!({"queue": "e", "pattern": "#"})),
    )
    .await;
    ok(
        &app,
        "POST",
        "/api/topics/t/messages",
        Some(json!({"route_key": "order.created", "id": "p", "payload": "x"})),
    )
    .await;
    kill(&app, "e", "rejected").await;
    let r = call(
        &app,
        "PUT",
        "/api/queues/e/dead-letters/p",
        As::Bearer(ADMIN),
        Some(json!({"payload": "y"})),
    )
    .await;
    assert_eq!(
        (r.status, r.kind()),
        (StatusCode::CONFLICT, "route_key"),
        "{}",
        r.text
    );
    ok(
        &app,
        "PUT",
        "/api/queues/e/dead-letters/p",
        Some(json!({"payload": "y", "drop_route_key": true})),
    )
    .await;
    assert_eq!(
        dead_letters(&app, "e", "").await["total"],
        2,
        "p left the dead letters, x's two stay"
    );
}

#[tokio::test]
async fn many_receipts_ack_in_one_call_and_fail_alone() {
    let app = app();
    ok(&app, "POST", "/api/queues", Some(json!({"name": "b"}))).await;
    let batch: Vec<Value> = (0..3)
        .map(|n| json!({"id": format!("m{n}"), "payload": "x"}))
        .collect();
    ok(
        &app,
        "POST",
        "/api/queues/b/messages",
        Some(json!({"messages": batch})),
    )
    .await;
    let got = receive(&app, "b", 10).await;
    let receipts: Vec<Value> = got.iter().map(|d| d["receipt"].clone()).collect();
    ok(
        &app,
        "POST",
        "/api/ack",
        Some(json!({"receipt": receipts[0]})),
    )
    .await;
    let r = ok(
        &app,
        "POST",
        "/api/ack",
        Some(json!({"receipts": receipts})),
    )
    .await;
    let results = r["results"].as_array().expect("results");
    assert_eq!(
        results[0]["error"]["kind"], "stale_receipt",
        "acked already: fails alone"
    );
    assert_eq!(
        (results[1]["ok"].clone(), results[2]["ok"].clone()),
        (json!(true), json!(true))
    );
    assert_eq!(
        ok(&app, "GET", "/api/queues/b", None).await["stats"]["in_flight"],
        0
    );
    let r = call(
        &app,
        "POST",
        "/api/ack",
        As::Bearer(ADMIN),
        Some(json!({"receipts": []})),
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
}
