//! Errors as the API answers them: a status and `{"error":{"kind","message"}}`.
//!
//! Every failure a handler can meet becomes an [`ApiError`] with a stable, snake_case
//! `kind` a client can branch on (the table is in `docs/http-api.md`), never a string to
//! parse. Backend errors keep their [`ErrorKind`]; the HTTP layer adds its own kinds
//! (authentication, CSRF, body shape, limits).

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use ferry_core::{Error, ErrorKind};
use serde_json::json;

/// An error answer: status, kind and a message for humans.
///
/// ```
/// use axum::http::StatusCode;
/// use ferry_http::ApiError;
/// let e = ApiError::from(ferry_core::Error::new(ferry_core::ErrorKind::QueueNotFound, "no queue 'x'"));
/// assert_eq!(e.status(), StatusCode::NOT_FOUND);
/// assert_eq!(e.kind(), "queue_not_found");
/// ```
#[derive(Debug, Clone)]
pub struct ApiError {
    status: StatusCode,
    kind: &'static str,
    message: String,
    retry_after: Option<u64>,
}

impl ApiError {
    /// An error with an explicit status and kind.
    pub fn new(status: StatusCode, kind: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            kind,
            message: message.into(),
            retry_after: None,
        }
    }

    /// 400 `invalid_input`.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_input", message)
    }

    /// 401 `unauthenticated`.
    pub fn unauthenticated(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthenticated", message)
    }

    /// 403 `forbidden`: the role may not do this.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", message)
    }

    /// 403 `csrf`: a cookie-authenticated mutation without the right CSRF token or
    /// from a foreign origin.
    pub fn csrf(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "csrf", message)
    }

    /// 404 `not_found` for a route or resource outside the backend's kinds.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    /// 429 `rate_limited`, to be retried after `seconds`.
    pub fn rate_limited(seconds: u64) -> Self {
        let mut e = Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            format!("too many requests; retry after {seconds}s"),
        );
        e.retry_after = Some(seconds.max(1));
        e
    }

    /// 500 `internal`.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", message)
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The machine-readable kind.
    pub fn kind(&self) -> &'static str {
        self.kind
    }

    /// The human-readable message.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({}): {}", self.status, self.kind, self.message)
    }
}

impl std::error::Error for ApiError {}

/// The status and kind a backend error kind maps to.
fn map_kind(kind: ErrorKind) -> (StatusCode, &'static str) {
    use ErrorKind as K;
    match kind {
        K::InvalidName => (StatusCode::BAD_REQUEST, "invalid_name"),
        K::InvalidInput => (StatusCode::BAD_REQUEST, "invalid_input"),
        K::InvalidReceipt => (StatusCode::BAD_REQUEST, "invalid_receipt"),
        K::TooLarge => (StatusCode::PAYLOAD_TOO_LARGE, "too_large"),
        K::QueueNotFound => (StatusCode::NOT_FOUND, "queue_not_found"),
        K::TopicNotFound => (StatusCode::NOT_FOUND, "topic_not_found"),
        K::MessageNotFound => (StatusCode::NOT_FOUND, "message_not_found"),
        K::AlreadyExists => (StatusCode::CONFLICT, "already_exists"),
        K::StaleReceipt => (StatusCode::CONFLICT, "stale_receipt"),
        K::Unroutable => (StatusCode::UNPROCESSABLE_ENTITY, "unroutable"),
        K::Unsupported => (StatusCode::NOT_IMPLEMENTED, "unsupported"),
        K::Indeterminate => (StatusCode::SERVICE_UNAVAILABLE, "indeterminate"),
        K::Unavailable | K::Closed => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
        K::Timeout => (StatusCode::SERVICE_UNAVAILABLE, "timeout"),
        _ => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
    }
}

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        let (status, kind) = map_kind(e.kind());
        let mut api = ApiError::new(status, kind, e.to_string());
        if status == StatusCode::SERVICE_UNAVAILABLE {
            api.retry_after = Some(1);
        }
        api
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if self.status.is_server_error() {
            tracing::warn!(kind = self.kind, "{}", self.message);
        }
        let body = Json(json!({"error": {"kind": self.kind, "message": self.message}}));
        let mut response = (self.status, body).into_response();
        if let Some(seconds) = self.retry_after
            && let Ok(v) = HeaderValue::from_str(&seconds.to_string())
        {
            response.headers_mut().insert(header::RETRY_AFTER, v);
        }
        response
    }
}

/// The result of a handler.
pub type ApiResult<T> = std::result::Result<T, ApiError>;
