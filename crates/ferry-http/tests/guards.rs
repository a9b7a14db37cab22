//! CSRF and Origin checks, Host check, body limits, malformed bodies and rate limits:
//! each answers a clear 4xx and changes nothing.

mod support;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use serde_json::json;
use support::{ADMIN, As, app, call, login, raw};

async fn queue_names(app: &support::App) -> Vec<String> {
    let r = call(app, "GET", "/api/queues", As::Bearer(ADMIN), None).await;
    r.body
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|q| q["name"].as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn session_mutations_need_the_csrf_token() {
    let app = app();
    let (id, csrf) = login(&app, ADMIN).await;
    let body = json!({"name": "a"});
    let r = call(
        &app,
        "POST",
        "/api/queues",
        As::Session(&id, None),
        Some(body.clone()),
    )
    .await;
    assert_eq!(
        (r.status, r.kind()),
        (StatusCode::FORBIDDEN, "csrf"),
        "{}",
        r.text
    );
    let r = call(
        &app,
        "POST",
        "/api/queues",
        As::Session(&id, Some("forged")),
        Some(body.clone()),
    )
    .await;
    assert_eq!((r.status, r.kind()), (StatusCode::FORBIDDEN, "csrf"));
    assert!(queue_names(&app).await.is_empty(), "nothing was created");
    let r = call(
        &app,
        "POST",
        "/api/queues",
        As::Session(&id, Some(&csrf)),
        Some(body),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(queue_names(&app).await, vec!["a"]);
    // Reads need no CSRF token.
    let r = call(&app, "GET", "/api/queues", As::Session(&id, None), None).await;
    assert_eq!(r.status, StatusCode::OK);
}

#[tokio::test]
async fn foreign_origins_are_refused_even_with_the_token() {
    let app = app();
    let (id, csrf) = login(&app, ADMIN).await;
    for (header, value) in [
        ("origin", "http://evil.example"),
        ("origin", "null"),
        ("sec-fetch-site", "cross-site"),
    ] {
        let mut req = support::request(
            "POST",
            "/api/queues",
            As::Session(&id, Some(&csrf)),
            Some(&json!({"name": "b"})),
        );
        req.headers_mut()
            .insert(header, value.parse().expect("header"));
        let r = raw(&app, req).await;
        assert_eq!(
            (r.status, r.kind()),
            (StatusCode::FORBIDDEN, "csrf"),
            "{header}: {value}"
        );
    }
    let mut req = support::request(
        "POST",
        "/api/queues",
        As::Session(&id, Some(&csrf)),
        Some(&json!({"name": "b"})),
    );
    req.headers_mut()
        .insert("origin", "http://127.0.0.1:8080".parse().expect("header"));
    assert_eq!(
        raw(&app, req).await.status,
        StatusCode::OK,
        "same origin passes"
    );
    // Login from a foreign page is refused too (login CSRF).
    let mut req = support::request(
        "POST",
        "/api/login",
        As::Nobody,
        Some(&json!({"token": ADMIN})),
    );
    req.headers_mut()
        .insert("origin", "http://evil.example".parse().expect("header"));
    assert_eq!(raw(&app, req).await.status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn bearer_tokens_need_no_csrf_token() {
    let app = app();
    let r = call(
        &app,
        "POST",
        "/api/queues",
        As::Bearer(ADMIN),
        Some(json!({"name": "c"})),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
}

#[tokio::test]
async fn foreign_host_headers_are_421() {
    let app = app();
    for host in [
        "evil.example",
        "evil.example:8080",
        "127.0.0.1.nip.io",
        "[::1]evil.example",
        "[::1].evil.example:80",
        "localhost:80x",
    ] {
        let req = Request::get("/api/queues")
            .header("host", host)
            .header("authorization", format!("Bearer {ADMIN}"))
            .body(Body::empty())
            .expect("request");
        let r = raw(&app, req).await;
        assert_eq!(
            (r.status, r.kind()),
            (StatusCode::MISDIRECTED_REQUEST, "misdirected"),
            "{host}"
        );
    }
    for host in ["localhost:8080", "[::1]:8080", "127.0.0.1"] {
        let req = Request::get("/healthz")
            .header("host", host)
            .body(Body::empty())
            .expect("request");
        assert_eq!(raw(&app, req).await.status, StatusCode::OK, "{host}");
    }
    let allowed = support::app_with(support::config().with_allowed_host("ferry.internal"));
    let req = Request::get("/healthz")
        .header("host", "FERRY.internal:443")
        .body(Body::empty())
        .expect("request");
    assert_eq!(raw(&allowed, req).await.status, StatusCode::OK);
}

#[tokio::test]
async fn oversized_bodies_are_413_and_send_nothing() {
    let app = support::app_with(support::config().with_max_body_bytes(4096));
    call(
        &app,
        "POST",
        "/api/queues",
        As::Bearer(ADMIN),
        Some(json!({"name": "big"})),
    )
    .await;
    let r = call(
        &app,
        "POST",
        "/api/queues/big/messages",
        As::Bearer(ADMIN),
        Some(json!({"payload": "x".repeat(5000)})),
    )
    .await;
    assert_eq!(
        (r.status, r.kind()),
        (StatusCode::PAYLOAD_TOO_LARGE, "too_large"),
        "{}",
        r.text
    );
    let stats = call(&app, "GET", "/api/stats", As::Bearer(ADMIN), None).await;
    assert_eq!(stats.body[0]["ready"], 0);
}

#[tokio::test]
async fn malformed_bodies_are_clear_400s() {
    let app = app();
    call(
        &app,
        "POST",
        "/api/queues",
        As::Bearer(ADMIN),
        Some(json!({"name": "q"})),
    )
    .await;
    let cases: Vec<(&str, &str, &str)> = vec![
        ("/api/queues/q/messages", "{not json", "malformed_json"),
        (
            "/api/queues/q/messages",
            r#"{"payload": "x", "dealy_ms": 5}"#,
            "invalid_input",
        ),
        (
            "/api/queues/q/messages",
            r#"{"messages": []}"#,
            "invalid_input",
        ),
        (
            "/api/queues/q/messages",
            r#"{"payload_base64": "***"}"#,
            "invalid_input",
        ),
        (
            "/api/queues/q/messages",
            r#"{"payload": "x", "id": ""}"#,
            "invalid_name",
        ),
        ("/api/queues", r#"{"name": "bad name!"}"#, "invalid_name"),
        (
            "/api/queues",
            r#"{"name": "q", "max_attempts": 0}"#,
            "invalid_input",
        ),
        ("/api/queues", r#"{"name": 5}"#, "invalid_input"),
        ("/api/ack", r#"{"receipt": "garbage"}"#, "invalid_receipt"),
        ("/api/queues/q/receive", r#"{"max": 0}"#, "invalid_input"),
        (
            "/api/queues/q/receive",
            r#"{"wait_ms": 999999}"#,
            "invalid_input",
        ),
        (
            "/api/queues/q/dead-letters/requeue",
            r#"{}"#,
            "invalid_input",
        ),
    ];
    for (path, body, kind) in cases {
        let req = Request::post(path)
            .header("host", "localhost")
            .header("authorization", format!("Bearer {ADMIN}"))
            .header("content-type", "application/json")
            .body(Body::from(body))
            .expect("request");
        let r = raw(&app, req).await;
        assert_eq!(
            r.status,
            StatusCode::BAD_REQUEST,
            "{path} {body}: {}",
            r.text
        );
        assert_eq!(r.kind(), kind, "{path} {body}: {}", r.text);
        assert!(!r.body["error"]["message"].as_str().unwrap_or("").is_empty());
    }
    // Not JSON at all.
    let req = Request::post("/api/queues/q/messages")
        .header("host", "localhost")
        .header("authorization", format!("Bearer {ADMIN}"))
        .header("content-type", "text/plain")
        .body(Body::from("hello"))
        .expect("request");
    let r = raw(&app, req).await;
    assert_eq!(
        (r.status, r.kind()),
        (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type")
    );
    let stats = call(&app, "GET", "/api/stats", As::Bearer(ADMIN), None).await;
    assert_eq!(stats.body[0]["ready"], 0, "nothing was sent");
    assert_eq!(queue_names(&app).await, vec!["q"]);
}

#[tokio::test]
async fn request_rates_are_limited_per_client() {
    let app = support::app_with(support::config().with_rate_limit(2));
    let mut statuses = Vec::new();
    for _ in 0..10 {
        statuses.push(call(&app, "GET", "/healthz", As::Nobody, None).await);
    }
    let limited: Vec<_> = statuses
        .iter()
        .filter(|r| r.status == StatusCode::TOO_MANY_REQUESTS)
        .collect();
    assert!(
        !limited.is_empty(),
        "10 requests at once against 2/s (burst 4) must hit the limit"
    );
    assert!(limited[0].headers.get("retry-after").is_some());
    assert_eq!(limited[0].kind(), "rate_limited");
}

#[tokio::test]
async fn responses_carry_security_headers() {
    let app = app();
    let r = call(&app, "GET", "/", As::Nobody, None).await;
    assert_eq!(r.status, StatusCode::OK);
    let csp = r
        .headers
        .get("content-security-policy")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    assert!(
        csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"),
        "{csp}"
    );
    assert_eq!(
        r.headers.get("x-frame-options").map(|v| v.as_bytes()),
        Some(&b"DENY"[..])
    );
    assert_eq!(
        r.headers
            .get("x-content-type-options")
            .map(|v| v.as_bytes()),
        Some(&b"nosniff"[..])
    );
}

#[tokio::test]
async fn bad_queries_paths_and_field_names_answer_in_the_error_shape() {
    let app = app();
    call(
        &app,
        "POST",
        "/api/queues",
        As::Bearer(ADMIN),
        Some(json!({"name": "q"})),
    )
    .await;
    for path in [
        "/api/queues/q/dead-letters?limit=abc",
        "/api/queues/q/dead-letters?bogus=1",
        "/api/audit?limit=-1",
        "/api/search?id=x&foo=1",
        "/api/queues/%FF/dead-letters",
    ] {
        let r = call(&app, "GET", path, As::Bearer(ADMIN), None).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{path}: {}", r.text);
        assert!(
            !r.kind().is_empty(),
            "{path}: not the JSON error shape: {}",
            r.text
        );
    }
    let r = call(
        &app,
        "POST",
        "/api/queues/q/messages",
        As::Bearer(ADMIN),
        Some(json!({"payload": "x", "delay": 5})),
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(
        r.text.contains("delay"),
        "the error names the unknown field: {}",
        r.text
    );
}
