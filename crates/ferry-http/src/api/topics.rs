//! Topics and bindings.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use serde::Deserialize;
use serde_json::{Value, json};

use super::caller::{Caller, queue, topic};
use crate::body::{ApiJson, ApiPath};
use crate::error::ApiResult;
use crate::server::Server;

/// `GET /api/topics`: every topic with its bindings.
pub async fn list(State(server): State<Arc<Server>>) -> ApiResult<Json<Value>> {
    let mut out = Vec::new();
    for t in server.driver.list_topics().await? {
        let bindings = server.driver.list_bindings(&t).await?;
        out.push(json!({
            "name": t.as_str(),
            "bindings": bindings.iter().map(|b| json!({"queue": b.queue.as_str(), "pattern": b.pattern})).collect::<Vec<_>>(),
        }));
    }
    Ok(Json(Value::Array(out)))
}

/// `POST /api/topics` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateTopic {
    name: String,
}

/// `POST /api/topics`
pub async fn create(
    State(server): State<Arc<Server>>,
    caller: Caller,
    ApiJson(body): ApiJson<CreateTopic>,
) -> ApiResult<Json<Value>> {
    let t = topic(&body.name)?;
    server.driver.create_topic(&t).await?;
    caller
        .audit(&server, "topic.create", t.as_str(), 1, None)
        .await;
    Ok(Json(json!({"name": t.as_str()})))
}

/// `DELETE /api/topics/{topic}`
pub async fn delete(
    State(server): State<Arc<Server>>,
    caller: Caller,
    ApiPath(name): ApiPath<String>,
) -> ApiResult<Json<Value>> {
    let t = topic(&name)?;
    let bindings = server.driver.list_bindings(&t).await?.len() as u64;
    server.driver.delete_topic(&t).await?;
    caller
        .audit(&server, "topic.delete", t.as_str(), bindings, None)
        .await;
    Ok(Json(json!({"deleted": t.as_str(), "bindings": bindings})))
}

/// A binding in a request body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BindingBody {
    queue: String,
    pattern: String,
}

/// Binds (`bind` true) or unbinds, and audits it.
async fn change_binding(
    server: &Server,
    caller: &Caller,
    name: &str,
    body: BindingBody,
    bind: bool,
) -> ApiResult<Json<Value>> {
    let t = topic(name)?;
    let q = queue(&body.queue)?;
    ferry_core::validate_pattern(&body.pattern)?;
    let action = if bind {
        server.driver.bind(&t, &q, &body.pattern).await?;
        "topic.bind"
    } else {
        server.driver.unbind(&t, &q, &body.pattern).await?;
        "topic.unbind"
    };
    let target = format!("{} -> {} ({})", t.as_str(), q.as_str(), body.pattern);
    caller.audit(server, action, target, 1, None).await;
    Ok(Json(
        json!({"topic": t.as_str(), "queue": q.as_str(), "pattern": body.pattern, "bound": bind}),
    ))
}

/// `POST /api/topics/{topic}/bindings`
pub async fn bind(
    State(server): State<Arc<Server>>,
    caller: Caller,
    ApiPath(name): ApiPath<String>,
    ApiJson(body): ApiJson<BindingBody>,
) -> ApiResult<Json<Value>> {
    change_binding(&server, &caller, &name, body, true).await
}

/// `DELETE /api/topics/{topic}/bindings`
pub async fn unbind(
    State(server): State<Arc<Server>>,
    caller: Caller,
    ApiPath(name): ApiPath<String>,
    ApiJson(body): ApiJson<BindingBody>,
) -> ApiResult<Json<Value>> {
    change_binding(&server, &caller, &name, body, false).await
}
