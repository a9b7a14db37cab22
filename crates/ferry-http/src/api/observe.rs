//! What operators look at: the overview with time series, stats, consumers, the audit
//! log, alerts, and message search.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use ferry_core::ErrorKind;
use serde::Deserialize;
use serde_json::{Value, json};

use super::caller::queue;
use super::dead_letters::scan;
use super::queues::stats_json;
use crate::body::ApiQuery;
use crate::dto::{dead_letter, history};
use crate::error::{ApiError, ApiResult};
use crate::server::Server;

/// `GET /api/overview`: queues with stats and paused state, totals, and the samples
/// for charts (oldest first).
pub async fn overview(State(server): State<Arc<Server>>) -> ApiResult<Json<Value>> {
    let queues = server.driver.list_queues().await?;
    let stats = server.driver.stats(None).await?;
    let list: Vec<Value> = queues
        .iter()
        .map(|q| {
            let s = stats.iter().find(|s| s.name == q.name.as_str());
            json!({"name": q.name.as_str(), "paused": q.paused, "stats": s.map(stats_json)})
        })
        .collect();
    let sum = |f: fn(&ferry_core::QueueStats) -> u64| stats.iter().map(f).sum::<u64>();
    Ok(Json(json!({
        "backend": server.config.backend_label,
        "queues": list,
        "totals": {
            "ready": sum(|s| s.ready),
            "delayed": sum(|s| s.delayed),
            "in_flight": sum(|s| s.in_flight),
            "dead": sum(|s| s.dead),
        },
        "sample_interval_ms": server.config.sample_interval.as_millis() as u64,
        "series": server.series.points(),
    })))
}

/// `GET /api/stats`
pub async fn stats(State(server): State<Arc<Server>>) -> ApiResult<Json<Value>> {
    let stats = server.driver.stats(None).await?;
    Ok(Json(Value::Array(stats.iter().map(stats_json).collect())))
}

/// `GET /api/consumers`
pub async fn consumers(State(server): State<Arc<Server>>) -> Json<Value> {
    Json(json!({"consumers": server.consumers.views()}))
}

/// `GET /api/audit` query.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    #[serde(default)]
    offset: Option<usize>,
    #[serde(default)]
    limit: Option<usize>,
}

/// `GET /api/audit`: newest first.
pub async fn audit(
    State(server): State<Arc<Server>>,
    ApiQuery(q): ApiQuery<AuditQuery>,
) -> ApiResult<Json<Value>> {
    let limit = q.limit.unwrap_or(100);
    if limit == 0 || limit > 1000 {
        return Err(ApiError::invalid("limit must be between 1 and 1000"));
    }
    let (entries, total) = server.audit.page(q.offset.unwrap_or(0), limit);
    Ok(Json(json!({"entries": entries, "total": total})))
}

/// `GET /api/alerts`
pub async fn alerts(State(server): State<Arc<Server>>) -> Json<Value> {
    match &server.alerts {
        Some(a) => Json(serde_json::to_value(a.status()).unwrap_or(Value::Null)),
        None => Json(json!({"rules": [], "webhooks": [], "configured": false})),
    }
}

/// `GET /api/search` query.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SearchQuery {
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    queue: Option<String>,
}

/// Most queues an id search looks in.
const MAX_QUEUES_SEARCHED: usize = 500;
/// Most results a text search returns.
const MAX_TEXT_RESULTS: u64 = 100;

/// `GET /api/search?id=` (history and dead letters of that id in every queue, or in
/// `queue`) or `?text=` (dead letters whose payload, id or error contains the text).
pub async fn search(
    State(server): State<Arc<Server>>,
    ApiQuery(q): ApiQuery<SearchQuery>,
) -> ApiResult<Json<Value>> {
    let queues = match q.queue.as_deref().filter(|s| !s.is_empty()) {
        Some(name) => vec![queue(name)?],
        None => server
            .driver
            .list_queues()
            .await?
            .into_iter()
            .map(|i| i.name)
            .take(MAX_QUEUES_SEARCHED)
            .collect(),
    };
    let mut results = Vec::new();
    let mut truncated = false;
    match (
        q.id.filter(|s| !s.is_empty()),
        q.text.filter(|s| !s.is_empty()),
    ) {
        (Some(id), None) => {
            ferry_core::validate_message_id(&id)?;
            for name in &queues {
                let events = match server.driver.history(name, &id).await {
                    Ok(e) => e,
                    Err(e) if e.kind() == ErrorKind::Unsupported => Vec::new(),
                    Err(e) => return Err(e.into()),
                };
                let dead = match server.driver.get_dead_letter(name, &id).await {
                    Ok(d) => Some(d),
                    Err(e) if e.kind() == ErrorKind::MessageNotFound => None,
                    Err(e) => return Err(e.into()),
                };
                if !events.is_empty() || dead.is_some() {
                    results.push(json!({
                        "queue": name.as_str(),
                        "id": id,
                        "kind": if dead.is_some() { "dead_letter" } else { "history" },
                        "history": history(&events),
                        "dead_letter": dead.as_ref().map(dead_letter),
                    }));
                }
            }
        }
        (None, Some(text)) => {
            // One budget of dead letters read for the whole search, not per queue.
            let mut budget = super::dead_letters::MAX_SCAN;
            for name in &queues {
                let left = MAX_TEXT_RESULTS - results.len() as u64;
                if left == 0 || budget == 0 {
                    truncated = true;
                    break;
                }
                let (found, next, read) =
                    scan(&server, name, 0, left, None, Some(&text), budget).await?;
                budget = budget.saturating_sub(read);
                truncated |= next.is_some();
                for d in &found {
                    results.push(json!({
                        "queue": name.as_str(),
                        "id": d.id,
                        "kind": "dead_letter",
                        "dead_letter": dead_letter(d),
                    }));
                }
            }
        }
        _ => {
            return Err(ApiError::invalid(
                "search with either ?id=MESSAGE_ID or ?text=TEXT (optionally &queue=NAME)",
            ));
        }
    }
    Ok(Json(json!({
        "results": results,
        "queues_searched": queues.len(),
        "truncated": truncated,
    })))
}
