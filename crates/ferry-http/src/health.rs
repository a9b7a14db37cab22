//! `/healthz` (the process answers), `/readyz` (the backend answers) and `/metrics`.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::server::Server;

/// How long `/readyz` and `/metrics` wait for the backend.
const BACKEND_TIMEOUT: Duration = Duration::from_secs(5);

/// `GET /healthz`: 200 while the process serves requests.
pub async fn healthz() -> Json<serde_json::Value> {
    Json(json!({"status": "ok"}))
}

/// `GET /readyz`: 200 when the backend answered a stats call within 5 s, else 503 with
/// the reason.
pub async fn readyz(State(server): State<Arc<Server>>) -> Response {
    match tokio::time::timeout(BACKEND_TIMEOUT, server.driver.list_queues()).await {
        Ok(Ok(_)) => Json(json!({"status": "ready"})).into_response(),
        Ok(Err(e)) => {
            // The route is public: the details (which may name hosts) go to the log.
            tracing::warn!("readyz: backend not ready: {e}");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({"status": "unavailable", "error": format!("the backend answered with an error of kind {:?}; see the server log", e.kind())})),
            )
                .into_response()
        }
        Err(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": "unavailable", "error": "the backend did not answer within 5s"})),
        )
            .into_response(),
    }
}

/// `GET /metrics`: the Prometheus text format, with depths read from the backend now.
pub async fn metrics(State(server): State<Arc<Server>>) -> Response {
    let now = SystemTime::now();
    match tokio::time::timeout(BACKEND_TIMEOUT, server.driver.stats(None)).await {
        Ok(Ok(stats)) => server.metrics.set_depths(Some(&stats), now),
        _ => server.metrics.set_depths(None, now),
    }
    let mut response = server.metrics.encode().into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
    );
    response
}
