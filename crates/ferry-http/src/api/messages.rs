//! Producing through the API (send to a queue, publish to a topic) and the detail of
//! one message (its history and dead letter).

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use ferry_core::ErrorKind;
use serde::Deserialize;
use serde_json::{Value, json};

use super::caller::{queue, topic};
use crate::body::ApiJson;
use crate::dto::{Batch, MessageIn, dead_letter, history};
use crate::error::{ApiError, ApiResult};
use crate::server::Server;

/// `POST /api/queues/{queue}/messages`: one message or `{"messages":[...]}`.
pub async fn send(
    State(server): State<Arc<Server>>,
    Path(name): Path<String>,
    ApiJson(batch): ApiJson<Batch>,
) -> ApiResult<Json<Value>> {
    let q = queue(&name)?;
    let messages = batch.into_messages()?;
    let ids: Vec<String> = messages.iter().map(|m| m.id().to_string()).collect();
    let report = server.driver.send(&q, messages).await?;
    server.metrics.sent(q.as_str(), report.enqueued);
    Ok(Json(json!({
        "ids": ids,
        "enqueued": report.enqueued,
        "duplicates": report.duplicates,
    })))
}

/// `POST /api/topics/{topic}/messages` body.
#[derive(Debug, Deserialize)]
pub struct Publish {
    route_key: String,
    #[serde(flatten)]
    batch: PublishBatch,
}

/// The messages of a publish: `"messages": [...]` or the fields of one message.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum PublishBatch {
    /// `"messages": [...]`.
    Many {
        /// The messages.
        messages: Vec<MessageIn>,
    },
    /// One message's fields beside `route_key`.
    One(MessageIn),
}

/// `POST /api/topics/{topic}/messages`
pub async fn publish(
    State(server): State<Arc<Server>>,
    Path(name): Path<String>,
    ApiJson(body): ApiJson<Publish>,
) -> ApiResult<Json<Value>> {
    let t = topic(&name)?;
    ferry_core::validate_route_key(&body.route_key)?;
    let batch = match body.batch {
        PublishBatch::Many { messages } => Batch::Many { messages },
        PublishBatch::One(m) => Batch::One(m),
    };
    let messages = batch.into_messages()?;
    let ids: Vec<String> = messages.iter().map(|m| m.id().to_string()).collect();
    let n = messages.len() as u64;
    let report = server.driver.publish(&t, &body.route_key, messages).await?;
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
    Path((name, id)): Path<(String, String)>,
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
