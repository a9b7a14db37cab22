//! The OpenAPI 3.1 document of the API, served at `/api/openapi.json`.
//!
//! It is generated from [`ROUTES`](crate::router::ROUTES) (so every route is in it, with
//! its path parameters and the role it needs) plus a table of summaries and body
//! schemas below. Deriving it from handler annotations (utoipa) would mean a macro on
//! every handler and DTO for the same result; the table keeps the document in one
//! file, and a test fails when a route has no entry here.

use axum::Json;
use serde_json::{Map, Value, json};

use crate::router::{Access, ROUTES};

/// Summary, request schema (if any) and response schema of each route.
fn describe(
    method: &str,
    path: &str,
) -> Option<(&'static str, Option<&'static str>, &'static str)> {
    let d = match (method, path) {
        ("GET", "/") => ("The dashboard page", None, "Html"),
        ("GET", "/assets/app.js") => ("The dashboard script", None, "Text"),
        ("GET", "/assets/app.css") => ("The dashboard style", None, "Text"),
        ("GET", "/healthz") => ("The process is up", None, "Status"),
        ("GET", "/readyz") => ("The backend answers (503 when not)", None, "Status"),
        ("GET", "/metrics") => ("Prometheus metrics", None, "Text"),
        ("GET", "/api/openapi.json") => ("This document", None, "Any"),
        ("POST", "/api/login") => (
            "Exchange a token for a session cookie",
            Some("Login"),
            "Session",
        ),
        ("POST", "/api/logout") => ("End the session", None, "Ok"),
        ("GET", "/api/session") => ("The session's role and CSRF token", None, "Session"),
        ("GET", "/api/overview") => ("Queues, totals and samples for charts", None, "Overview"),
        ("GET", "/api/stats") => ("Counts by state of every queue", None, "StatsList"),
        ("GET", "/api/consumers") => ("Consumers in this process", None, "Any"),
        ("GET", "/api/audit") => ("The audit log, newest first", None, "AuditPage"),
        ("GET", "/api/alerts") => ("Alert rules and their state", None, "Any"),
        ("GET", "/api/search") => ("Find messages by id or dead letters by text", None, "Any"),
        ("GET", "/api/queues") => ("Every queue with options and stats", None, "QueueList"),
        ("POST", "/api/queues") => (
            "Create a queue or update its options",
            Some("CreateQueue"),
            "Queue",
        ),
        ("GET", "/api/queues/{queue}") => ("One queue", None, "Queue"),
        ("DELETE", "/api/queues/{queue}") => ("Delete a queue with everything in it", None, "Any"),
        ("POST", "/api/queues/{queue}/pause") => ("Stop deliveries", None, "Any"),
        ("POST", "/api/queues/{queue}/resume") => ("Resume deliveries", None, "Any"),
        ("POST", "/api/queues/{queue}/messages") => {
            ("Send one message or a batch", Some("Batch"), "SendReport")
        }
        ("GET", "/api/queues/{queue}/messages/{id}") => {
            ("A message's history and dead letter", None, "MessageDetail")
        }
        ("POST", "/api/queues/{queue}/receive") => (
            "Lease deliveries, waiting up to wait_ms",
            Some("Receive"),
            "Deliveries",
        ),
        ("POST", "/api/ack") => ("Ack a delivery, or many in one call", Some("Ack"), "Any"),
        ("POST", "/api/retry") => ("Fail an attempt; deliver again later", Some("Retry"), "Ok"),
        ("POST", "/api/dead-letter") => (
            "Move a delivery to the dead letters",
            Some("DeadLetterRequest"),
            "Ok",
        ),
        ("POST", "/api/extend") => ("Extend a lease", Some("Extend"), "Any"),
        ("GET", "/api/queues/{queue}/dead-letters") => (
            "A page of dead letters (filters: reason, text)",
            None,
            "DeadLetterPage",
        ),
        ("DELETE", "/api/queues/{queue}/dead-letters") => {
            ("Purge every dead letter", None, "Count")
        }
        ("POST", "/api/queues/{queue}/dead-letters/requeue") => (
            "Requeue selected or all dead letters",
            Some("Selection"),
            "Count",
        ),
        ("POST", "/api/queues/{queue}/dead-letters/delete") => (
            "Delete selected or all dead letters",
            Some("Selection"),
            "Count",
        ),
        ("GET", "/api/queues/{queue}/dead-letters/{id}") => ("One dead letter", None, "DeadLetter"),
        ("PUT", "/api/queues/{queue}/dead-letters/{id}") => (
            "Edit a dead letter's payload and requeue it",
            Some("Edit"),
            "Any",
        ),
        ("GET", "/api/topics") => ("Every topic with its bindings", None, "Any"),
        ("POST", "/api/topics") => ("Create a topic", Some("CreateTopic"), "Any"),
        ("DELETE", "/api/topics/{topic}") => ("Delete a topic and its bindings", None, "Any"),
        ("POST", "/api/topics/{topic}/bindings") => {
            ("Bind a queue with a pattern", Some("Binding"), "Any")
        }
        ("DELETE", "/api/topics/{topic}/bindings") => ("Remove a binding", Some("Binding"), "Any"),
        ("POST", "/api/topics/{topic}/messages") => {
            ("Publish to every matching queue", Some("Publish"), "Any")
        }
        _ => return None,
    };
    Some(d)
}

fn schema_ref(name: &str) -> Value {
    json!({"$ref": format!("#/components/schemas/{name}")})
}

fn schemas() -> Value {
    let payload = json!({
        "payload": {"description": "UTF-8 text, or any JSON value (stored as compact JSON)"},
        "payload_base64": {"type": "string", "description": "bytes, standard base64"},
    });
    let mut message = payload.as_object().cloned().unwrap_or_default();
    message.insert("id".into(), json!({"type": "string", "maxLength": 256}));
    message.insert(
        "headers".into(),
        json!({"type": "object", "additionalProperties": {"type": "string"}}),
    );
    message.insert("delay_ms".into(), json!({"type": "integer", "minimum": 0}));
    message.insert(
        "priority".into(),
        json!({"type": "integer", "minimum": 0, "maximum": 255}),
    );
    let stored = json!({
        "id": {"type": "string"}, "queue": {"type": "string"},
        "payload": {"type": "string"}, "payload_base64": {"type": "string"},
        "payload_size": {"type": "integer"},
        "headers": {"type": "object", "additionalProperties": {"type": "string"}},
        "route_key": {"type": ["string", "null"]}, "priority": {"type": "integer"},
        "enqueued_at": {"type": "integer", "description": "ms since the Unix epoch"},
    });
    let with = |extra: Value| {
        let mut o = stored.as_object().cloned().unwrap_or_default();
        if let Value::Object(e) = extra {
            o.extend(e);
        }
        json!({"type": "object", "properties": o})
    };
    json!({
        "Error": {"type": "object", "required": ["error"], "properties": {"error": {"type": "object", "required": ["kind", "message"], "properties": {"kind": {"type": "string"}, "message": {"type": "string"}}}}},
        "Any": {},
        "Html": {"type": "string"},
        "Text": {"type": "string"},
        "Ok": {"type": "object", "properties": {"ok": {"type": "boolean"}}},
        "Status": {"type": "object", "properties": {"status": {"type": "string"}, "error": {"type": "string"}}},
        "Count": {"type": "object", "properties": {"count": {"type": "integer"}}},
        "Login": {"type": "object", "required": ["token"], "properties": {"token": {"type": "string"}}, "additionalProperties": false},
        "Session": {"type": "object", "properties": {"role": {"enum": ["read", "admin"]}, "actor": {"type": "string"}, "csrf": {"type": ["string", "null"]}}},
        "QueueStats": {"type": "object", "properties": {"name": {"type": "string"}, "ready": {"type": "integer"}, "delayed": {"type": "integer"}, "in_flight": {"type": "integer"}, "dead": {"type": "integer"}, "oldest_ready_at": {"type": ["integer", "null"]}}},
        "StatsList": {"type": "array", "items": schema_ref("QueueStats")},
        "Queue": {"type": "object", "properties": {"name": {"type": "string"}, "paused": {"type": "boolean"}, "options": {"type": "object", "properties": {"default_delay_ms": {"type": "integer"}, "max_attempts": {"type": "integer"}, "lease_ms": {"type": "integer"}}}, "stats": {"oneOf": [schema_ref("QueueStats"), {"type": "null"}]}}},
        "QueueList": {"type": "array", "items": schema_ref("Queue")},
        "CreateQueue": {"type": "object", "required": ["name"], "additionalProperties": false, "properties": {"name": {"type": "string"}, "default_delay_ms": {"type": "integer", "minimum": 0}, "max_attempts": {"type": "integer", "minimum": 1}, "lease_ms": {"type": "integer", "minimum": 1}}},
        "Message": {"type": "object", "additionalProperties": false, "properties": message},
        "Batch": {"oneOf": [schema_ref("Message"), {"type": "object", "required": ["messages"], "properties": {"messages": {"type": "array", "items": schema_ref("Message")}}}]},
        "Publish": {"type": "object", "required": ["route_key"], "properties": {"route_key": {"type": "string"}, "messages": {"type": "array", "items": schema_ref("Message")}}, "description": "route_key plus either messages or the fields of one Message"},
        "SendReport": {"type": "object", "properties": {"ids": {"type": "array", "items": {"type": "string"}}, "enqueued": {"type": "integer"}, "duplicates": {"type": "array", "items": {"type": "string"}}}},
        "Receive": {"type": "object", "additionalProperties": false, "properties": {"max": {"type": "integer", "minimum": 1, "maximum": 1000}, "lease_ms": {"type": "integer"}, "wait_ms": {"type": "integer", "maximum": 30000}}},
        "Delivery": with(json!({"attempt": {"type": "integer"}, "lease_until": {"type": "integer"}, "receipt": {"type": "string", "description": "opaque"}})),
        "Deliveries": {"type": "object", "properties": {"deliveries": {"type": "array", "items": schema_ref("Delivery")}}},
        "Ack": {"type": "object", "additionalProperties": false, "description": "receipt, or receipts for a batch (answered per receipt in results)", "properties": {"receipt": {"type": "string"}, "receipts": {"type": "array", "items": {"type": "string"}, "maxItems": 1000}, "enqueued_at": {"type": "integer"}}},
        "Retry": {"type": "object", "required": ["receipt"], "additionalProperties": false, "properties": {"receipt": {"type": "string"}, "delay_ms": {"type": "integer"}, "error": {"type": "string"}}},
        "DeadLetterRequest": {"type": "object", "required": ["receipt"], "additionalProperties": false, "properties": {"receipt": {"type": "string"}, "reason": {"type": "string"}, "error": {"type": "string"}}},
        "Extend": {"type": "object", "required": ["receipt", "lease_ms"], "additionalProperties": false, "properties": {"receipt": {"type": "string"}, "lease_ms": {"type": "integer", "minimum": 1}}},
        "DeadLetter": with(json!({"attempts": {"type": "integer"}, "reason": {"type": "string"}, "last_error": {"type": ["string", "null"]}, "first_failed_at": {"type": ["integer", "null"]}, "dead_at": {"type": "integer"}})),
        "DeadLetterPage": {"type": "object", "properties": {"dead_letters": {"type": "array", "items": schema_ref("DeadLetter")}, "offset": {"type": "integer"}, "limit": {"type": "integer"}, "next_offset": {"type": ["integer", "null"]}, "total": {"type": "integer"}}},
        "Selection": {"type": "object", "additionalProperties": false, "properties": {"ids": {"type": "array", "items": {"type": "string"}}, "all": {"type": "boolean"}}},
        "Edit": {"type": "object", "additionalProperties": false, "properties": {"payload": {}, "payload_base64": {"type": "string"}, "headers": {"type": "object", "additionalProperties": {"type": "string"}}}},
        "MessageDetail": {"type": "object", "properties": {"queue": {"type": "string"}, "id": {"type": "string"}, "history": {"type": "array", "items": {"type": "object", "properties": {"at": {"type": "integer"}, "event": {"type": "string"}, "attempt": {"type": "integer"}, "detail": {"type": ["string", "null"]}}}}, "dead_letter": {"oneOf": [schema_ref("DeadLetter"), {"type": "null"}]}}},
        "CreateTopic": {"type": "object", "required": ["name"], "additionalProperties": false, "properties": {"name": {"type": "string"}}},
        "Binding": {"type": "object", "required": ["queue", "pattern"], "additionalProperties": false, "properties": {"queue": {"type": "string"}, "pattern": {"type": "string"}}},
        "Overview": {"type": "object", "properties": {"backend": {"type": "string"}, "queues": {"type": "array"}, "totals": {"type": "object"}, "series": {"type": "array"}}},
        "AuditPage": {"type": "object", "properties": {"total": {"type": "integer"}, "entries": {"type": "array", "items": {"type": "object", "properties": {"seq": {"type": "integer"}, "at": {"type": "integer"}, "actor": {"type": "string"}, "role": {"type": "string"}, "action": {"type": "string"}, "target": {"type": "string"}, "count": {"type": "integer"}, "detail": {"type": ["string", "null"]}, "remote": {"type": ["string", "null"]}}}}}},
    })
}

/// The document.
///
/// ```
/// let doc = ferry_http::openapi_document();
/// assert_eq!(doc["openapi"], "3.1.0");
/// assert!(doc["paths"]["/api/queues/{queue}/dead-letters"]["get"].is_object());
/// ```
pub fn openapi_document() -> Value {
    let mut paths = Map::new();
    for (method, path, access) in ROUTES {
        let (summary, body, response) =
            describe(method, path).unwrap_or(("(undocumented)", None, "Any"));
        let params: Vec<Value> = path
            .split('/')
            .filter_map(|seg| seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
            .map(|name| json!({"name": name, "in": "path", "required": true, "schema": {"type": "string"}}))
            .collect();
        let mut op = Map::new();
        op.insert("summary".into(), json!(summary));
        op.insert(
            "operationId".into(),
            json!(format!("{} {}", method.to_lowercase(), path)),
        );
        if !params.is_empty() {
            op.insert("parameters".into(), Value::Array(params));
        }
        if let Some(b) = body {
            op.insert(
                "requestBody".into(),
                json!({"required": true, "content": {"application/json": {"schema": schema_ref(b)}}}),
            );
        }
        let role = match access {
            Access::Public => None,
            Access::Read | Access::Metrics => Some("read"),
            Access::Admin => Some("admin"),
        };
        match role {
            Some(role) => {
                op.insert("security".into(), json!([{"bearer": []}, {"session": []}]));
                op.insert("x-ferry-role".into(), json!(role));
            }
            None => {
                op.insert("security".into(), json!([]));
            }
        }
        op.insert(
            "responses".into(),
            json!({
                "200": {"description": "OK", "content": {"application/json": {"schema": schema_ref(response)}}},
                "default": {"description": "An error", "content": {"application/json": {"schema": schema_ref("Error")}}},
            }),
        );
        let entry = paths
            .entry(path.to_string())
            .or_insert_with(|| Value::Object(Map::new()));
        if let Value::Object(ops) = entry {
            ops.insert(method.to_lowercase(), Value::Object(op));
        }
    }
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "ferry",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Reliable messaging: queues, topics, leases, retries and dead letters. See docs/http-api.md.",
        },
        "paths": paths,
        "components": {
            "schemas": schemas(),
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "session": {"type": "apiKey", "in": "cookie", "name": crate::auth::SESSION_COOKIE, "description": "dashboard session; mutations also need header X-CSRF-Token"},
            },
        },
    })
}

/// `GET /api/openapi.json`
pub async fn document() -> Json<Value> {
    Json(openapi_document())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_route_is_described() {
        for (method, path, _) in ROUTES {
            assert!(
                describe(method, path).is_some(),
                "{method} {path} has no OpenAPI entry"
            );
        }
    }
}
