//! Producing through the API (send to a queue, publish to a topic) and the detail of
//! one message (its history and dead letter).

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use ferry_core::ErrorKind;
use serde_json::{Value, json};

use super::caller::{queue, topic};
use crate::body::{ApiJson, ApiPath};
use crate::dto::{Batch, dead_letter, history};
use crate::error::{ApiError, ApiResult};
use crate::server::Server;

/// `POST /api/queues/{queue}/messages`: one message or `{"messages":[...]}`.
pub async fn send(
    State(server): State<Arc<Server>>,
    ApiPath(name): ApiPath<String>,
    ApiJson(body): ApiJson<Value>,
) -> ApiResult<Json<Value>> {
    let q = queue(&name)?;
    let messages = Batch::from_value(body)?.into_messages()?;
    let ids: Vec<String> = messages.iter().map(|m| m.id().to_string()).collect();
    let report = server.driver.send(&q, messages).await?;
    server.metrics.sent(q.as_str(), report.enqueued);
    Ok(Json(json!({
        "ids": ids,
        "enqueued": report.enqueued,
        "duplicates": report.duplicates,
    })))
}

/// `POST /api/topics/{topic}/messages`: `{"route_key", "messages": [...]}` or
/// `{"route_key", ...one message's fields}`.
pub async fn publish(
    State(server): State<Arc<Server>>,
    ApiPath(name): ApiPath<String>,
    ApiJson(mut body): ApiJson<Value>,
) -> ApiResult<Json<Value>> {
    let t = topic(&name)?;
    let route_key = match body.as_object_mut().and_then(|o| o.remove("route_key")) {
        Some(Value::String(k)) => k,
        Some(_) => return Err(ApiError::invalid("route_key must be a string")),
        None => {
            return Err(ApiError::invalid(
                "a publish needs a route_key, like {\"route_key\": \"order.created\", \"payload\": ...}",
            ));
        }
    };
    ferry_core::validate_route_key(&route_key)?;
    let messages = Batch::from_value(body)?.into_messages()?;
    let ids: Vec<String> = messages.iter().map(|m| m.id().to_string()).collect();
    let n = messages.len() as u64;
    let report = server.driver.publish(&t, &route_key, messages).await?;
    for q in &report.queues {
        server.metrics.sent(q.as_str(), n);
    }
    Ok(Json(json!({
        "ids": ids,
        "queues": report.queues.iter().map(|q| q.as_str()).collect::<Vec<_>>(),
        "enqueued": report.enqueued,
        "duplicates": report.duplicates,
    })))
}

/// `GET /api/queues/{queue}/messages/{id}`: history and dead letter; 404 when neither
/// is known.
pub async fn detail(
    State(server): State<Arc<Server>>,
    ApiPath((name, id)): ApiPath<(String, String)>,
) -> ApiResult<Json<Value>> {
    let q = queue(&name)?;
    ferry_core::validate_message_id(&id)?;
    let (events, history_supported) = match server.driver.history(&q, &id).await {
        Ok(events) => (events, true),
        Err(e) if e.kind() == ErrorKind::Unsupported => (Vec::new(), false),
        Err(e) => return Err(e.into()),
    };
    let dead = match server.driver.get_dead_letter(&q, &id).await {
        Ok(d) => Some(d),
        Err(e) if e.kind() == ErrorKind::MessageNotFound => None,
        Err(e) => return Err(e.into()),
    };
    if events.is_empty() && dead.is_none() {
        // The queue itself must exist for a helpful answer.
        server.driver.get_queue(&q).await?;
        return Err(ApiError::from(ferry_core::Error::new(
            ErrorKind::MessageNotFound,
            format!(
                "no history or dead letter for message '{id}' in queue '{}' (history is kept for the backend's retention window)",
                q.as_str()
            ),
        )));
    }
    Ok(Json(json!({
        "queue": q.as_str(),
        "id": id,
        "history_supported": history_supported,
        "history": history(&events),
        "dead_letter": dead.as_ref().map(dead_letter),
    })))
}
