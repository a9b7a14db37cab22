//! Every route × method × role: who gets in, who gets 401 or 403, and that a refused
//! request changes nothing.

mod support;

use axum::http::StatusCode;
use ferry_http::{Access, ROUTES};
use serde_json::{Value, json};
use support::{ADMIN, As, READER, app, call};

/// A concrete path for a route pattern, against the seeded queue, topic and message.
fn concrete(path: &str) -> String {
    path.replace("{queue}", "q")
        .replace("{topic}", "t")
        .replace("{id}", "m1")
}

async fn seed(app: &support::App) {
    for (m, p, b) in [
        (
            "POST",
            "/api/queues",
            json!({"name": "q", "max_attempts": 1}),
        ),
        ("POST", "/api/topics", json!({"name": "t"})),
        (
            "POST",
            "/api/queues/q/messages",
            json!({"id": "m1", "payload": "x"}),
        ),
    ] {
        let r = call(app, m, p, As::Bearer(ADMIN), Some(b)).await;
        assert_eq!(r.status, StatusCode::OK, "{m} {p}: {}", r.text);
    }
}

async fn snapshot(app: &support::App) -> Value {
    let q = call(app, "GET", "/api/queues", As::Bearer(ADMIN), None).await;
    let t = call(app, "GET", "/api/topics", As::Bearer(ADMIN), None).await;
    json!([q.body, t.body])
}

fn body_for(method: &str) -> Option<Value> {
    (method != "GET" && method != "DELETE").then(|| json!({}))
}

#[tokio::test]
async fn without_a_token_only_public_routes_answer() {
    let app = app();
    seed(&app).await;
    let before = snapshot(&app).await;
    for (method, path, access) in ROUTES {
        let r = call(&app, method, &concrete(path), As::Nobody, body_for(method)).await;
        match access {
            Access::Public => assert!(
                r.status != StatusCode::UNAUTHORIZED && r.status != StatusCode::FORBIDDEN,
                "{method} {path}: {} {}",
                r.status,
                r.text
            ),
            _ => {
                assert_eq!(
                    r.status,
                    StatusCode::UNAUTHORIZED,
                    "{method} {path}: {}",
                    r.text
                );
                assert_eq!(r.kind(), "unauthenticated", "{method} {path}");
            }
        }
    }
    assert_eq!(
        snapshot(&app).await,
        before,
        "a refused request changed something"
    );
}

#[tokio::test]
async fn a_wrong_token_is_401() {
    let mut config = support::config();
    config.auth_failures_per_minute = 0;
    let app = support::app_with(config);
    for (method, path, access) in ROUTES {
        if *access == Access::Public {
            continue;
        }
        let r = call(
            &app,
            method,
            &concrete(path),
            As::Bearer("not-a-token-at-all-xx"),
            body_for(method),
        )
        .await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{method} {path}");
    }
}

#[tokio::test]
async fn read_tokens_read_and_are_refused_every_change() {
    let app = app();
    seed(&app).await;
    let before = snapshot(&app).await;
    for (method, path, access) in ROUTES {
        let r = call(
            &app,
            method,
            &concrete(path),
            As::Bearer(READER),
            body_for(method),
        )
        .await;
        match access {
            Access::Admin => {
                assert_eq!(
                    r.status,
                    StatusCode::FORBIDDEN,
                    "{method} {path}: {}",
                    r.text
                );
                assert_eq!(r.kind(), "forbidden");
            }
            _ => assert!(
                r.status != StatusCode::UNAUTHORIZED && r.status != StatusCode::FORBIDDEN,
                "{method} {path}: {} {}",
                r.status,
                r.text
            ),
        }
    }
    assert_eq!(
        snapshot(&app).await,
        before,
        "a read token changed something"
    );
    let audit = call(&app, "GET", "/api/audit", As::Bearer(READER), None).await;
    assert_eq!(
        audit.body["total"], 2,
        "only the seed's two changes: {}",
        audit.text
    );
}

#[tokio::test]
async fn admin_tokens_reach_every_route() {
    let app = app();
    seed(&app).await;
    // Deleting routes last, so the others find what they need.
    let mut routes: Vec<_> = ROUTES.iter().collect();
    routes.sort_by_key(|(m, _, _)| *m == "DELETE");
    for (method, path, _) in routes {
        let r = call(
            &app,
            method,
            &concrete(path),
            As::Bearer(ADMIN),
            body_for(method),
        )
        .await;
        assert!(
            r.status != StatusCode::UNAUTHORIZED
                && r.status != StatusCode::FORBIDDEN
                && r.status != StatusCode::METHOD_NOT_ALLOWED
                && !(r.status == StatusCode::NOT_FOUND && r.kind() == "not_found"),
            "{method} {path}: {} {}",
            r.status,
            r.text
        );
    }
}

#[tokio::test]
async fn other_methods_are_405_and_unknown_paths_404() {
    let app = app();
    for path in ["/api/queues", "/api/ack", "/api/queues/q/dead-letters"] {
        let r = call(&app, "PATCH", path, As::Bearer(ADMIN), Some(json!({}))).await;
        assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED, "PATCH {path}");
        assert_eq!(r.kind(), "method_not_allowed", "PATCH {path}: {}", r.text);
    }
    let r = call(&app, "GET", "/api/nothing-here", As::Bearer(ADMIN), None).await;
    assert_eq!((r.status, r.kind()), (StatusCode::NOT_FOUND, "not_found"));
}

#[tokio::test]
async fn sessions_have_the_role_of_their_token() {
    let app = app();
    seed(&app).await;
    let (id, csrf) = support::login(&app, READER).await;
    let r = call(&app, "GET", "/api/session", As::Session(&id, None), None).await;
    assert_eq!(r.body["role"], "read");
    let r = call(
        &app,
        "DELETE",
        "/api/queues/q",
        As::Session(&id, Some(&csrf)),
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = call(
        &app,
        "POST",
        "/api/logout",
        As::Session(&id, None),
        Some(json!({})),
    )
    .await;
    assert_eq!(
        r.status,
        StatusCode::FORBIDDEN,
        "logout is a change too: CSRF token needed"
    );
    let r = call(
        &app,
        "POST",
        "/api/logout",
        As::Session(&id, Some(&csrf)),
        Some(json!({})),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    let r = call(&app, "GET", "/api/session", As::Session(&id, None), None).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "logged out");
}

#[tokio::test]
async fn public_metrics_opens_only_metrics() {
    let app = support::app_with(support::config().with_public_metrics(true));
    let r = call(&app, "GET", "/metrics", As::Nobody, None).await;
    assert_eq!(r.status, StatusCode::OK);
    let r = call(&app, "GET", "/api/stats", As::Nobody, None).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn guessing_tokens_is_rate_limited() {
    let mut config = support::config();
    config.auth_failures_per_minute = 5;
    let app = support::app_with(config);
    let mut statuses = Vec::new();
    for _ in 0..8 {
        let r = call(
            &app,
            "POST",
            "/api/login",
            As::Nobody,
            Some(json!({"token": "guess-guess-guess-guess"})),
        )
        .await;
        statuses.push(r.status.as_u16());
    }
    assert_eq!(&statuses[..5], &[401; 5]);
    assert!(statuses[5..].iter().all(|s| *s == 429), "{statuses:?}");
    // Locked out means the token is not even looked at: the right one is refused too,
    // so the lockout slows a guesser down instead of only relabelling wrong guesses.
    let r = call(&app, "GET", "/api/stats", As::Bearer(ADMIN), None).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    let r = call(
        &app,
        "POST",
        "/api/login",
        As::Nobody,
        Some(json!({"token": ADMIN})),
    )
    .await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
}
