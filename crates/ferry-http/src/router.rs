//! The routes, their layers, and the table of every route with the role it needs.
//!
//! [`ROUTES`] is the single list the OpenAPI document and the per-route tests are
//! checked against, so a route cannot be added without being documented and tested
//! for each role.

use std::sync::Arc;

use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath};
use axum::http::{HeaderValue, Request, Response, header};
use axum::middleware::from_fn_with_state;
use axum::routing::{delete, get, post};
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::trace::TraceLayer;
use tracing::Span;

use crate::api::{dead_letters, leases, messages, observe, queues, session, topics};
use crate::error::ApiError;
use crate::guard::{check_host, count, rate_limit, require_auth};
use crate::server::Server;
use crate::{dashboard, health, openapi};

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone (health, OpenAPI, login, the dashboard's files).
    Public,
    /// Any valid token or session.
    Read,
    /// An admin token or session (with CSRF for sessions).
    Admin,
    /// `read`, or anyone when `public_metrics` is on.
    Metrics,
}

/// Every route: method, path (axum syntax), access.
pub const ROUTES: &[(&str, &str, Access)] = &[
    ("GET", "/", Access::Public),
    ("GET", "/assets/app.js", Access::Public),
    ("GET", "/assets/app.css", Access::Public),
    ("GET", "/healthz", Access::Public),
    ("GET", "/readyz", Access::Public),
    ("GET", "/metrics", Access::Metrics),
    ("GET", "/api/openapi.json", Access::Public),
    ("POST", "/api/login", Access::Public),
    ("POST", "/api/logout", Access::Read),
    ("GET", "/api/session", Access::Read),
    ("GET", "/api/overview", Access::Read),
    ("GET", "/api/stats", Access::Read),
    ("GET", "/api/consumers", Access::Read),
    ("GET", "/api/audit", Access::Read),
    ("GET", "/api/alerts", Access::Read),
    ("GET", "/api/search", Access::Read),
    ("GET", "/api/queues", Access::Read),
    ("POST", "/api/queues", Access::Admin),
    ("GET", "/api/queues/{queue}", Access::Read),
    ("DELETE", "/api/queues/{queue}", Access::Admin),
    ("POST", "/api/queues/{queue}/pause", Access::Admin),
    ("POST", "/api/queues/{queue}/resume", Access::Admin),
    ("POST", "/api/queues/{queue}/messages", Access::Admin),
    ("GET", "/api/queues/{queue}/messages/{id}", Access::Read),
    ("POST", "/api/queues/{queue}/receive", Access::Admin),
    ("POST", "/api/ack", Access::Admin),
    ("POST", "/api/retry", Access::Admin),
    ("POST", "/api/dead-letter", Access::Admin),
    ("POST", "/api/extend", Access::Admin),
    ("GET", "/api/queues/{queue}/dead-letters", Access::Read),
    ("DELETE", "/api/queues/{queue}/dead-letters", Access::Admin),
    (
        "POST",
        "/api/queues/{queue}/dead-letters/requeue",
        Access::Admin,
    ),
    (
        "POST",
        "/api/queues/{queue}/dead-letters/delete",
        Access::Admin,
    ),
    ("GET", "/api/queues/{queue}/dead-letters/{id}", Access::Read),
    (
        "PUT",
        "/api/queues/{queue}/dead-letters/{id}",
        Access::Admin,
    ),
    ("GET", "/api/topics", Access::Read),
    ("POST", "/api/topics", Access::Admin),
    ("DELETE", "/api/topics/{topic}", Access::Admin),
    ("POST", "/api/topics/{topic}/bindings", Access::Admin),
    ("DELETE", "/api/topics/{topic}/bindings", Access::Admin),
    ("POST", "/api/topics/{topic}/messages", Access::Admin),
];

/// The whole application: API, dashboard, metrics and health, with every guard.
///
/// Serve it with connect info so rate limits and the audit log see client addresses:
///
/// ```no_run
/// # async fn run(server: std::sync::Arc<ferry_http::Server>) -> std::io::Result<()> {
/// let app = ferry_http::router(server);
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
/// axum::serve(listener, app.into_make_service_with_connect_info::<std::net::SocketAddr>()).await
/// # }
/// ```
pub fn router(server: Arc<Server>) -> Router {
    let protected = Router::new()
        .route("/api/logout", post(session::logout))
        .route("/api/session", get(session::session))
        .route("/api/overview", get(observe::overview))
        .route("/api/stats", get(observe::stats))
        .route("/api/consumers", get(observe::consumers))
        .route("/api/audit", get(observe::audit))
        .route("/api/alerts", get(observe::alerts))
        .route("/api/search", get(observe::search))
        .route("/api/queues", get(queues::list).post(queues::create))
        .route(
            "/api/queues/{queue}",
            get(queues::get).delete(queues::delete),
        )
        .route("/api/queues/{queue}/pause", post(queues::pause))
        .route("/api/queues/{queue}/resume", post(queues::resume))
        .route("/api/queues/{queue}/messages", post(messages::send))
        .route("/api/queues/{queue}/messages/{id}", get(messages::detail))
        .route("/api/queues/{queue}/receive", post(leases::receive))
        .route("/api/ack", post(leases::ack))
        .route("/api/retry", post(leases::retry))
        .route("/api/dead-letter", post(leases::dead_letter))
        .route("/api/extend", post(leases::extend))
        .route(
            "/api/queues/{queue}/dead-letters",
            get(dead_letters::list).delete(dead_letters::purge),
        )
        .route(
            "/api/queues/{queue}/dead-letters/requeue",
            post(dead_letters::requeue),
        )
        .route(
            "/api/queues/{queue}/dead-letters/delete",
            post(dead_letters::delete),
        )
        .route(
            "/api/queues/{queue}/dead-letters/{id}",
            get(dead_letters::get).put(dead_letters::edit),
        )
        .route("/api/topics", get(topics::list).post(topics::create))
        .route("/api/topics/{topic}", delete(topics::delete))
        .route(
            "/api/topics/{topic}/bindings",
            post(topics::bind).delete(topics::unbind),
        )
        .route("/api/topics/{topic}/messages", post(messages::publish))
        .route_layer(from_fn_with_state(server.clone(), require_auth))
        .route_layer(from_fn_with_state(server.clone(), count));

    let metrics = Router::new().route("/metrics", get(health::metrics));
    let metrics = if server.config.public_metrics {
        metrics
    } else {
        metrics.route_layer(from_fn_with_state(server.clone(), require_auth))
    }
    .route_layer(from_fn_with_state(server.clone(), count));

    let public = Router::new()
        .route("/", get(dashboard::index))
        .route("/assets/app.js", get(dashboard::app_js))
        .route("/assets/app.css", get(dashboard::app_css))
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/api/openapi.json", get(openapi::document))
        .route("/api/login", post(session::login))
        .route_layer(from_fn_with_state(server.clone(), count));

    Router::new()
        .merge(public)
        .merge(metrics)
        .merge(protected)
        .fallback(|| async { ApiError::not_found("no such route; see /api/openapi.json") })
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                axum::http::StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "this route does not take that method; see /api/openapi.json",
            )
        })
        .layer(from_fn_with_state(server.clone(), rate_limit))
        .layer(from_fn_with_state(server.clone(), check_host))
        .layer(DefaultBodyLimit::max(server.config.max_body_bytes))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::X_FRAME_OPTIONS,
            HeaderValue::from_static("DENY"),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::CACHE_CONTROL,
            HeaderValue::from_static("no-store"),
        ))
        // Outermost, so requests the guards turn away get a span too.
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(request_span)
                .on_request(())
                .on_response(record_status)
                .on_failure(()),
        )
        .with_state(server)
}

/// One INFO span per request, named and shaped like OpenTelemetry's HTTP server spans
/// (`GET /api/queues/{queue}`: the route, never the raw path, so names stay few and
/// carry no queue names or ids). Nothing is built unless a subscriber wants INFO spans
/// (with the default stderr logging at WARN, none does); `ferry --otel-endpoint` exports
/// them.
fn request_span<B>(request: &Request<B>) -> Span {
    let method = request.method().as_str();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(MatchedPath::as_str);
    tracing::info_span!(
        "request",
        otel.name = %match route {
            Some(route) => format!("{method} {route}"),
            None => method.to_string(),
        },
        otel.kind = "server",
        otel.status_code = tracing::field::Empty,
        http.request.method = method,
        http.route = route,
        http.response.status_code = tracing::field::Empty,
    )
}

/// Records the response status on the request's span (5xx marks it an error).
fn record_status<B>(response: &Response<B>, _latency: Duration, span: &Span) {
    let status = response.status();
    span.record("http.response.status_code", status.as_u16());
    if status.is_server_error() {
        span.record("otel.status_code", "ERROR");
    }
}
