//! Consuming through the API: receive with a long poll and a lease, then ack, retry,
//! dead-letter or extend by receipt.
//!
//! The lease is the backend's: a client that takes deliveries and disappears loses
//! nothing, because the lease expires and the message is delivered again (counted as
//! an attempt), exactly as for a worker using the library.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::Json;
use axum::extract::State;
use ferry_core::{ReceiveOptions, Settlement, reason};
use serde::Deserialize;
use serde_json::{Value, json};

use super::caller::queue;
use crate::body::{ApiJson, ApiPath};
use crate::dto::{decode_receipt, delivery};
use crate::error::{ApiError, ApiResult};
use crate::metrics::Settled;
use crate::server::Server;

/// `POST /api/queues/{queue}/receive` body.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Receive {
    #[serde(default)]
    max: Option<usize>,
    #[serde(default)]
    lease_ms: Option<u64>,
    #[serde(default)]
    wait_ms: Option<u64>,
}

/// Most deliveries one receive returns.
const MAX_RECEIVE: usize = 1000;

/// `POST /api/queues/{queue}/receive`
pub async fn receive(
    State(server): State<Arc<Server>>,
    ApiPath(name): ApiPath<String>,
    ApiJson(body): ApiJson<Receive>,
) -> ApiResult<Json<Value>> {
    let q = queue(&name)?;
    let max = body.max.unwrap_or(1);
    if max == 0 || max > MAX_RECEIVE {
        return Err(ApiError::invalid(format!(
            "max must be between 1 and {MAX_RECEIVE}"
        )));
    }
    let wait = Duration::from_millis(body.wait_ms.unwrap_or(0));
    if wait > server.config.max_wait {
        return Err(ApiError::invalid(format!(
            "wait_ms must be at most {} (the server's longest long poll)",
            server.config.max_wait.as_millis()
        )));
    }
    let mut options = ReceiveOptions::max(max).with_wait(wait);
    if let Some(ms) = body.lease_ms {
        options = options.with_lease(Duration::from_millis(ms));
    }
    options.validate()?;
    let got = server.driver.receive(&q, options).await?;
    Ok(Json(
        json!({"deliveries": got.iter().map(delivery).collect::<Vec<_>>()}),
    ))
}

/// `POST /api/ack` body: one receipt, or many in `receipts` (one backend call).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Ack {
    #[serde(default)]
    receipt: Option<String>,
    #[serde(default)]
    receipts: Option<Vec<String>>,
    /// When the message was enqueued (ms), to record end-to-end latency.
    #[serde(default)]
    enqueued_at: Option<i64>,
}

/// `POST /api/ack`: `{"receipt"}` answers `{"ok":true}` or the error;
/// `{"receipts":[...]}` acks them in one call and answers per receipt
/// `{"results":[{"ok":true} | {"error":{"kind","message"}}]}` (a stale receipt fails
/// alone).
pub async fn ack(
    State(server): State<Arc<Server>>,
    ApiJson(body): ApiJson<Ack>,
) -> ApiResult<Json<Value>> {
    match (body.receipt, body.receipts) {
        (Some(one), None) => {
            let r = decode_receipt(&one)?;
            server.driver.ack(&r).await?;
            server.metrics.settled(r.queue().as_str(), Settled::Acked);
            if let Some(at) = body.enqueued_at
                && let Ok(took) =
                    SystemTime::now().duration_since(ferry_core::time::from_millis(at))
            {
                server.metrics.end_to_end(r.queue().as_str(), took);
            }
            Ok(Json(json!({"ok": true})))
        }
        (None, Some(many)) => {
            if many.is_empty() || many.len() > MAX_RECEIVE {
                return Err(ApiError::invalid(format!(
                    "receipts must hold 1 to {MAX_RECEIVE} receipts"
                )));
            }
            let receipts = many
                .iter()
                .map(|t| decode_receipt(t))
                .collect::<Result<Vec<_>, _>>()?;
            let queues: Vec<String> = receipts
                .iter()
                .map(|r| r.queue().as_str().to_string())
                .collect();
            let results = server
                .driver
                .settle(receipts.into_iter().map(Settlement::ack).collect())
                .await?;
            let out: Vec<Value> = results
                .into_iter()
                .zip(&queues)
                .map(|(r, q)| match r {
                    Ok(()) => {
                        server.metrics.settled(q, Settled::Acked);
                        json!({"ok": true})
                    }
                    Err(e) => {
                        let e = ApiError::from(e);
                        json!({"error": {"kind": e.kind(), "message": e.message()}})
                    }
                })
                .collect();
            Ok(Json(json!({"results": out})))
        }
        _ => Err(ApiError::invalid(
            "give either receipt or receipts (a list), not both",
        )),
    }
}

/// `POST /api/retry` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Retry {
    receipt: String,
    #[serde(default)]
    delay_ms: Option<u64>,
    #[serde(default)]
    error: Option<String>,
}

/// `POST /api/retry`: the attempt failed; deliver again after `delay_ms` (default now).
pub async fn retry(
    State(server): State<Arc<Server>>,
    ApiJson(body): ApiJson<Retry>,
) -> ApiResult<Json<Value>> {
    let r = decode_receipt(&body.receipt)?;
    let delay = Duration::from_millis(body.delay_ms.unwrap_or(0));
    if delay > ferry_core::MAX_DELAY {
        return Err(ApiError::invalid("delay_ms is longer than 10 years"));
    }
    server
        .driver
        .retry(&r, SystemTime::now() + delay, body.error)
        .await?;
    server.metrics.settled(r.queue().as_str(), Settled::Retried);
    Ok(Json(json!({"ok": true})))
}

/// `POST /api/dead-letter` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeadLetterBody {
    receipt: String,
    #[serde(default)]
    reason: Option<String>,
    #[serde(default)]
    error: Option<String>,
}

/// `POST /api/dead-letter`: reject the delivery (default reason `rejected`).
pub async fn dead_letter(
    State(server): State<Arc<Server>>,
    ApiJson(body): ApiJson<DeadLetterBody>,
) -> ApiResult<Json<Value>> {
    let r = decode_receipt(&body.receipt)?;
    let why = body.reason.unwrap_or_else(|| reason::REJECTED.to_string());
    if why.is_empty() || why.len() > 64 || why.chars().any(char::is_control) {
        return Err(ApiError::invalid(
            "reason must be 1 to 64 printable characters, like rejected or invalid_order",
        ));
    }
    server.driver.dead_letter(&r, &why, body.error).await?;
    server
        .metrics
        .settled(r.queue().as_str(), Settled::DeadLettered);
    Ok(Json(json!({"ok": true})))
}

/// `POST /api/extend` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Extend {
    receipt: String,
    lease_ms: u64,
}

/// `POST /api/extend`: the lease now ends `lease_ms` from now.
pub async fn extend(
    State(server): State<Arc<Server>>,
    ApiJson(body): ApiJson<Extend>,
) -> ApiResult<Json<Value>> {
    let r = decode_receipt(&body.receipt)?;
    let lease = Duration::from_millis(body.lease_ms);
    if lease < Duration::from_millis(1) || lease > ferry_core::MAX_LEASE {
        return Err(ApiError::invalid("lease_ms must be between 1 and 7 days"));
    }
    let until = server.driver.extend(&r, lease).await?;
    Ok(Json(
        json!({"lease_until": ferry_core::time::to_millis(until)}),
    ))
}
