//! # ferry-http
//!
//! The operator's side of ferry as a library: the JSON HTTP API (documented by the
//! OpenAPI document at `/api/openapi.json` and in `docs/http-api.md`), the embedded web
//! dashboard, `/metrics`, `/healthz` and `/readyz`, the audit log and alerts, all on one
//! axum [`Router`](axum::Router) that `ferry serve` mounts and an application can mount
//! in its own server.
//!
//! Secure by default: every route but health, the OpenAPI document, login and the
//! dashboard's static files needs a token; `read` tokens only read; cookie sessions
//! need a CSRF token and a same-origin request for every change; the `Host` header must
//! name this server (DNS rebinding); bodies and request rates are limited; every change
//! an operator makes is in the audit log.
//!
//! ```
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! use std::sync::Arc;
//! use axum::body::Body;
//! use axum::http::Request;
//! use tower::ServiceExt;
//! use ferry_http::{Role, Server, ServerConfig, TokenConfig};
//!
//! let driver = Arc::new(ferry_core::MemoryDriver::new());
//! let token = "0123456789abcdef0123";
//! let config = ServerConfig::default().with_token(TokenConfig::new("ops", token, Role::Admin)?);
//! let app = ferry_http::router(Server::builder(driver).config(config).build()?);
//! let response = app
//!     .oneshot(Request::get("/api/queues").header("host", "localhost")
//!         .header("authorization", format!("Bearer {token}")).body(Body::empty()).unwrap())
//!     .await
//!     .unwrap();
//! assert_eq!(response.status(), 200);
//! # Ok::<(), ferry_core::Error>(()) }).unwrap();
//! ```

#![recursion_limit = "256"]

pub mod alerts;
mod alerts_input;
mod api;
mod audit;
mod auth;
mod body;
mod config;
mod consumers;
mod dashboard;
mod dto;
mod error;
mod guard;
mod health;
mod metrics;
mod openapi;
mod role;
mod router;
mod sample;
mod server;
mod throttle;

pub use audit::{AuditEntry, AuditLog, AuditRecord, read_entries};
pub use auth::{Auth, AuthFailure, Principal, SESSION_COOKIE};
pub use body::ApiJson;
pub use config::ServerConfig;
pub use consumers::{ConsumerStats, ConsumerView, Consumers};
pub use dashboard::CSP;
pub use dto::{decode_receipt, encode_receipt};
pub use error::{ApiError, ApiResult};
pub use guard::CSRF_HEADER;
pub use metrics::{Metrics, Settled};
pub use openapi::openapi_document;
pub use role::{MIN_TOKEN_LEN, Role, TokenConfig, generate_token};
pub use router::{Access, ROUTES, router};
pub use sample::{Point, QueuePoint, Series, oldest_ready_age};
pub use server::{Server, ServerBuilder};
