//! A router over a fresh embedded store, and a one-call HTTP client for it.

#![allow(dead_code)]

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use ferry_http::{Role, Server, ServerConfig, TokenConfig};
use http_body_util::BodyExt;
use serde_json::Value;
use tower::ServiceExt;

pub const ADMIN: &str = "admin-token-0123456789";
pub const READER: &str = "read-token-0123456789";

pub struct App {
    pub router: Router,
    pub server: Arc<Server>,
    _dir: tempfile::TempDir,
}

pub fn config() -> ServerConfig {
    ServerConfig::default()
        .with_token(TokenConfig::new("ops", ADMIN, Role::Admin).expect("token"))
        .with_token(TokenConfig::new("viewer", READER, Role::Read).expect("token"))
        .with_rate_limit(0)
}

pub fn app_with(config: ServerConfig) -> App {
    let dir = tempfile::tempdir().expect("tempdir");
    let driver = ferry_embedded::EmbeddedDriver::open(dir.path().join("data")).expect("open store");
    let server = Server::builder(Arc::new(driver))
        .config(config)
        .build()
        .expect("server");
    App {
        router: ferry_http::router(server.clone()),
        server,
        _dir: dir,
    }
}

pub fn app() -> App {
    app_with(config())
}

/// How a request authenticates.
#[derive(Clone, Copy, Debug)]
pub enum As<'a> {
    Nobody,
    Bearer(&'a str),
    /// A session cookie and the CSRF token to send (None: send none).
    Session(&'a str, Option<&'a str>),
}

pub struct Reply {
    pub status: StatusCode,
    pub headers: axum::http::HeaderMap,
    pub body: Value,
    pub text: String,
}

impl Reply {
    pub fn kind(&self) -> &str {
        self.body["error"]["kind"].as_str().unwrap_or("")
    }
}

pub async fn raw(app: &App, req: Request<Body>) -> Reply {
    let response = app.router.clone().oneshot(req).await.expect("infallible");
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    let text = String::from_utf8_lossy(&bytes).to_string();
    let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    Reply {
        status,
        headers,
        body,
        text,
    }
}

pub fn request(method: &str, path: &str, who: As<'_>, body: Option<&Value>) -> Request<Body> {
    let mut b = Request::builder()
        .method(method)
        .uri(path)
        .header("host", "127.0.0.1:8080");
    match who {
        As::Nobody => {}
        As::Bearer(t) => b = b.header("authorization", format!("Bearer {t}")),
        As::Session(id, csrf) => {
            b = b.header("cookie", format!("{}={id}", ferry_http::SESSION_COOKIE));
            if let Some(c) = csrf {
                b = b.header(ferry_http::CSRF_HEADER, c);
            }
        }
    }
    match body {
        Some(v) => b
            .header("content-type", "application/json")
            .body(Body::from(v.to_string()))
            .expect("request"),
        None => b.body(Body::empty()).expect("request"),
    }
}

pub async fn call(app: &App, method: &str, path: &str, who: As<'_>, body: Option<Value>) -> Reply {
    raw(app, request(method, path, who, body.as_ref())).await
}

/// Logs in with `token`; returns (session id, csrf).
pub async fn login(app: &App, token: &str) -> (String, String) {
    let r = call(
        app,
        "POST",
        "/api/login",
        As::Nobody,
        Some(serde_json::json!({"token": token})),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let cookie = r
        .headers
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .expect("set-cookie")
        .to_string();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    let id = cookie
        .split(';')
        .next()
        .and_then(|kv| kv.split_once('='))
        .map(|(_, v)| v.to_string())
        .expect("cookie value");
    let csrf = r.body["csrf"].as_str().expect("csrf").to_string();
    (id, csrf)
}
