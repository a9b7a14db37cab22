//! Queues: list with stats, create or update, get, delete, pause and resume.

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use ferry_core::{QueueInfo, QueueOptions, QueueStats};
use serde::Deserialize;
use serde_json::{Value, json};

use super::caller::{Caller, queue};
use crate::body::{ApiJson, ApiPath};
use crate::error::ApiResult;
use crate::server::Server;

fn options(o: &QueueOptions) -> Value {
    json!({
        "default_delay_ms": ferry_core::time::duration_millis(o.default_delay),
        "max_attempts": o.max_attempts,
        "lease_ms": ferry_core::time::duration_millis(o.lease),
    })
}

pub(crate) fn stats_json(s: &QueueStats) -> Value {
    json!({
        "name": s.name,
        "ready": s.ready,
        "delayed": s.delayed,
        "in_flight": s.in_flight,
        "dead": s.dead,
        "oldest_ready_at": s.oldest_ready_at.map(ferry_core::time::to_millis),
    })
}

fn queue_json(info: &QueueInfo, stats: Option<&QueueStats>) -> Value {
    json!({
        "name": info.name.as_str(),
        "options": options(&info.options),
        "paused": info.paused,
        "stats": stats.map(stats_json),
    })
}

/// `GET /api/queues`
pub async fn list(State(server): State<Arc<Server>>) -> ApiResult<Json<Value>> {
    let queues = server.driver.list_queues().await?;
    let stats = server.driver.stats(None).await?;
    let list: Vec<Value> = queues
        .iter()
        .map(|q| queue_json(q, stats.iter().find(|s| s.name == q.name.as_str())))
        .collect();
    Ok(Json(Value::Array(list)))
}

/// `GET /api/queues/{queue}`
pub async fn get(
    State(server): State<Arc<Server>>,
    ApiPath(name): ApiPath<String>,
) -> ApiResult<Json<Value>> {
    let q = queue(&name)?;
    let info = server.driver.get_queue(&q).await?;
    let stats = server.driver.stats(Some(&q)).await?;
    Ok(Json(queue_json(&info, stats.first())))
}

/// `POST /api/queues` body: unset options keep their current (or default) value.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateQueue {
    name: String,
    #[serde(default)]
    default_delay_ms: Option<u64>,
    #[serde(default)]
    max_attempts: Option<u32>,
    #[serde(default)]
    lease_ms: Option<u64>,
}

/// `POST /api/queues`: create, or update the given options of an existing queue.
pub async fn create(
    State(server): State<Arc<Server>>,
    caller: Caller,
    ApiJson(body): ApiJson<CreateQueue>,
) -> ApiResult<Json<Value>> {
    let q = queue(&body.name)?;
    let mut o = match server.driver.get_queue(&q).await {
        Ok(info) => info.options,
        Err(e) if e.kind() == ferry_core::ErrorKind::QueueNotFound => QueueOptions::default(),
        Err(e) => return Err(e.into()),
    };
    if let Some(ms) = body.default_delay_ms {
        o.default_delay = Duration::from_millis(ms);
    }
    if let Some(n) = body.max_attempts {
        o.max_attempts = n;
    }
    if let Some(ms) = body.lease_ms {
        o.lease = Duration::from_millis(ms);
    }
    o.validate()?;
    server.driver.create_queue(&q, o).await?;
    caller
        .audit(
            &server,
            "queue.create",
            q.as_str(),
            1,
            Some(options(&o).to_string()),
        )
        .await;
    let info = server.driver.get_queue(&q).await?;
    Ok(Json(queue_json(&info, None)))
}

/// `DELETE /api/queues/{queue}`
pub async fn delete(
    State(server): State<Arc<Server>>,
    caller: Caller,
    ApiPath(name): ApiPath<String>,
) -> ApiResult<Json<Value>> {
    let q = queue(&name)?;
    let before = server.driver.stats(Some(&q)).await?;
    server.driver.delete_queue(&q).await?;
    let count = before
        .first()
        .map_or(0, |s| s.ready + s.delayed + s.in_flight + s.dead);
    caller
        .audit(&server, "queue.delete", q.as_str(), count, None)
        .await;
    Ok(Json(json!({"deleted": q.as_str(), "messages": count})))
}

async fn set_paused(
    server: &Server,
    caller: &Caller,
    name: &str,
    paused: bool,
) -> ApiResult<Json<Value>> {
    let q = queue(name)?;
    server.driver.set_paused(&q, paused).await?;
    let action = if paused {
        "queue.pause"
    } else {
        "queue.resume"
    };
    caller.audit(server, action, q.as_str(), 1, None).await;
    Ok(Json(json!({"queue": q.as_str(), "paused": paused})))
}

/// `POST /api/queues/{queue}/pause`
pub async fn pause(
    State(server): State<Arc<Server>>,
    caller: Caller,
    ApiPath(name): ApiPath<String>,
) -> ApiResult<Json<Value>> {
    set_paused(&server, &caller, &name, true).await
}

/// `POST /api/queues/{queue}/resume`
pub async fn resume(
    State(server): State<Arc<Server>>,
    caller: Caller,
    ApiPath(name): ApiPath<String>,
) -> ApiResult<Json<Value>> {
    set_paused(&server, &caller, &name, false).await
}
