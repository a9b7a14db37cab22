//! Dead letters: list with paging and filters, get, edit and requeue, requeue or delete
//! a selection or all, purge. Every change is audited with the count it touched.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use ferry_core::{DeadLetter, DeadLetterQuery, Message, Selection};
use serde::Deserialize;
use serde_json::{Value, json};

use super::caller::{Caller, queue};
use crate::body::{ApiJson, ApiPath, ApiQuery};
use crate::dto::{dead_letter, payload_bytes};
use crate::error::{ApiError, ApiResult};
use crate::server::Server;

/// Most dead letters one page returns.
const MAX_PAGE: u64 = 500;
/// Most dead letters one text search reads before it answers (with `next_offset`).
pub(crate) const MAX_SCAN: u64 = 10_000;

/// `GET /api/queues/{queue}/dead-letters` query.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    #[serde(default)]
    offset: Option<u64>,
    #[serde(default)]
    limit: Option<u64>,
    #[serde(default)]
    reason: Option<String>,
    /// Only dead letters whose payload, id or last error contains this text.
    #[serde(default)]
    text: Option<String>,
}

/// Whether a dead letter contains `needle` in its payload, id or last error.
pub(crate) fn contains(d: &DeadLetter, needle: &str) -> bool {
    let needle = needle.to_lowercase();
    String::from_utf8_lossy(&d.payload)
        .to_lowercase()
        .contains(&needle)
        || d.id.to_lowercase().contains(&needle)
        || d.last_error
            .as_deref()
            .is_some_and(|e| e.to_lowercase().contains(&needle))
}

/// Pages through the dead letters from `offset`, keeping those that match `text`,
/// until `limit` matched or `budget` were read. Returns (matches, next offset if more
/// remain, how many were read).
pub(crate) async fn scan(
    server: &Server,
    q: &ferry_core::QueueName,
    offset: u64,
    limit: u64,
    reason: Option<String>,
    text: Option<&str>,
    budget: u64,
) -> ApiResult<(Vec<DeadLetter>, Option<u64>, u64)> {
    let mut found = Vec::new();
    let mut at = offset;
    let page_size = if text.is_some() { MAX_PAGE } else { limit };
    loop {
        let mut query = DeadLetterQuery::page(at, page_size);
        query.reason = reason.clone();
        let page = server.driver.list_dead_letters(q, query).await?;
        let n = page.len() as u64;
        for (i, d) in page.into_iter().enumerate() {
            if text.is_none_or(|t| contains(&d, t)) {
                found.push(d);
                if found.len() as u64 == limit {
                    let next = at + i as u64 + 1;
                    return Ok((found, Some(next), at + n - offset));
                }
            }
        }
        at += n;
        if n < page_size {
            return Ok((found, None, at - offset));
        }
        if text.is_none() || at - offset >= budget {
            return Ok((found, Some(at), at - offset));
        }
    }
}

/// `GET /api/queues/{queue}/dead-letters`
pub async fn list(
    State(server): State<Arc<Server>>,
    ApiPath(name): ApiPath<String>,
    ApiQuery(query): ApiQuery<ListQuery>,
) -> ApiResult<Json<Value>> {
    let q = queue(&name)?;
    let offset = query.offset.unwrap_or(0);
    let limit = query.limit.unwrap_or(50);
    if limit == 0 || limit > MAX_PAGE {
        return Err(ApiError::invalid(format!(
            "limit must be between 1 and {MAX_PAGE}"
        )));
    }
    let reason = query.reason.filter(|r| !r.is_empty());
    let text = query.text.filter(|t| !t.is_empty());
    let (found, next, _) = scan(
        &server,
        &q,
        offset,
        limit,
        reason,
        text.as_deref(),
        MAX_SCAN,
    )
    .await?;
    let total = server
        .driver
        .stats(Some(&q))
        .await?
        .first()
        .map_or(0, |s| s.dead);
    Ok(Json(json!({
        "dead_letters": found.iter().map(dead_letter).collect::<Vec<_>>(),
        "offset": offset,
        "limit": limit,
        "next_offset": next,
        "total": total,
    })))
}

/// `GET /api/queues/{queue}/dead-letters/{id}`
pub async fn get(
    State(server): State<Arc<Server>>,
    ApiPath((name, id)): ApiPath<(String, String)>,
) -> ApiResult<Json<Value>> {
    let q = queue(&name)?;
    ferry_core::validate_message_id(&id)?;
    let d = server.driver.get_dead_letter(&q, &id).await?;
    Ok(Json(dead_letter(&d)))
}

/// `PUT /api/queues/{queue}/dead-letters/{id}` body: the edited message.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Edit {
    #[serde(default)]
    payload: Option<Value>,
    #[serde(default)]
    payload_base64: Option<String>,
    /// Replaces the headers when given.
    #[serde(default)]
    headers: Option<std::collections::BTreeMap<String, String>>,
    /// Requeue a published message without its route key (a sent message has none, so
    /// an edited copy cannot keep it).
    #[serde(default)]
    drop_route_key: bool,
}

/// Most dead letters an edit reads to make sure only one has the id.
const MAX_EDIT_SCAN: u64 = 50_000;

/// How many dead letters of `q` have id `id`; `Err` when the queue has too many dead
/// letters to tell.
async fn copies(server: &Server, q: &ferry_core::QueueName, id: &str) -> ApiResult<u64> {
    let mut at = 0;
    let mut n = 0;
    loop {
        let page = server
            .driver
            .list_dead_letters(q, DeadLetterQuery::page(at, MAX_PAGE))
            .await?;
        let len = page.len() as u64;
        n += page.iter().filter(|d| d.id == id).count() as u64;
        at += len;
        if len < MAX_PAGE {
            return Ok(n);
        }
        if at >= MAX_EDIT_SCAN {
            return Err(ApiError::new(
                axum::http::StatusCode::CONFLICT,
                "already_exists",
                format!(
                    "the queue has more than {MAX_EDIT_SCAN} dead letters, too many to make sure only one has id '{id}'; requeue it as it is and fix it in the consumer"
                ),
            ));
        }
    }
}

/// `PUT /api/queues/{queue}/dead-letters/{id}`: requeue the dead letter with an edited
/// payload (and headers). The edited message is sent first, under the same id, and the
/// dead letter deleted after; a failure between the two leaves both (a copy, never a
/// loss) and says so. The edited message becomes ready [`EDIT_HOLD`] later, so no
/// consumer can fail it into a new dead letter with the same id before the old one is
/// deleted (which would delete both).
pub async fn edit(
    State(server): State<Arc<Server>>,
    caller: Caller,
    ApiPath((name, id)): ApiPath<(String, String)>,
    ApiJson(body): ApiJson<Edit>,
) -> ApiResult<Json<Value>> {
    let q = queue(&name)?;
    ferry_core::validate_message_id(&id)?;
    let payload = payload_bytes(body.payload.as_ref(), body.payload_base64.as_deref())?;
    let d = server.driver.get_dead_letter(&q, &id).await?;
    if let Some(key) = &d.route_key
        && !body.drop_route_key
    {
        return Err(ApiError::new(
            axum::http::StatusCode::CONFLICT,
            "route_key",
            format!(
                "this dead letter was published with route key '{key}', which an edited copy cannot keep; send {{\"drop_route_key\": true}} with the edit to requeue it without, or requeue it unedited"
            ),
        ));
    }
    // The delete below is by id; with two dead letters of this id it would take both.
    let n = copies(&server, &q, &id).await?;
    if n > 1 {
        return Err(ApiError::new(
            axum::http::StatusCode::CONFLICT,
            "already_exists",
            format!(
                "{n} dead letters have id '{id}' (it died more than once); requeue or delete the older ones first, then edit"
            ),
        ));
    }
    let mut m = Message::new(payload)
        .with_id(d.id.clone())
        .with_priority(d.priority)
        .with_delay(EDIT_HOLD);
    for (k, v) in body.headers.unwrap_or(d.headers) {
        m = m.with_header(k, v);
    }
    m.validate(&server.driver.limits())?;
    let sent_at = std::time::Instant::now();
    let report = server.driver.send(&q, vec![m]).await?;
    if !report.duplicates.is_empty() {
        return Err(ApiError::new(
            axum::http::StatusCode::CONFLICT,
            "already_exists",
            format!("a message with id '{id}' is queued again already; the dead letter stays"),
        ));
    }
    if sent_at.elapsed() > EDIT_DELETE_BY {
        // The edited copy may already be deliverable; deleting by id now could take
        // its new dead letter too. Keep the old one: a copy, not a loss.
        return Err(ApiError::internal(format!(
            "the edited message was requeued, but the backend was slow, so its old dead letter '{id}' was kept; delete it by hand once the new copy is processed"
        )));
    }
    let removed = server
        .driver
        .delete_dead_letters(&q, Selection::Ids(vec![id.clone()]))
        .await
        .map_err(|e| {
            ApiError::internal(format!(
                "the edited message was requeued, but its dead letter could not be deleted ({e}); delete it by hand"
            ))
        })?;
    caller
        .audit(
            &server,
            "dead_letters.edit_requeue",
            format!("{}/{id}", q.as_str()),
            removed,
            None,
        )
        .await;
    Ok(Json(json!({"requeued": id})))
}

/// How long an edited message waits before it is delivered.
pub const EDIT_HOLD: std::time::Duration = std::time::Duration::from_secs(5);
/// The old dead letter is deleted only if the send returned within this (well inside
/// [`EDIT_HOLD`]).
const EDIT_DELETE_BY: std::time::Duration = std::time::Duration::from_secs(3);

/// The selection of a requeue or delete: `{"ids":[..]}` or `{"all":true}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SelectionBody {
    #[serde(default)]
    ids: Option<Vec<String>>,
    #[serde(default)]
    all: Option<bool>,
}

/// Most ids one selection may name.
const MAX_IDS: usize = 10_000;

impl SelectionBody {
    fn into_selection(self) -> ApiResult<Selection> {
        match (self.ids, self.all) {
            (Some(ids), None | Some(false)) => {
                if ids.is_empty() {
                    return Err(ApiError::invalid("ids is empty; name at least one id"));
                }
                if ids.len() > MAX_IDS {
                    return Err(ApiError::invalid(format!(
                        "at most {MAX_IDS} ids at once; use {{\"all\":true}} for everything"
                    )));
                }
                for id in &ids {
                    ferry_core::validate_message_id(id)?;
                }
                Ok(Selection::Ids(ids))
            }
            (None, Some(true)) => Ok(Selection::All),
            _ => Err(ApiError::invalid(
                "give either {\"ids\":[...]} or {\"all\":true}",
            )),
        }
    }
}

fn describe(selection: &Selection) -> String {
    match selection {
        Selection::All => "all".to_string(),
        Selection::Ids(ids) if ids.len() <= 20 => format!("ids: {}", ids.join(", ")),
        Selection::Ids(ids) => format!("{} ids, first: {}", ids.len(), ids[..20].join(", ")),
    }
}

/// What a selection request does.
#[derive(Debug, Clone, Copy)]
enum Apply {
    Requeue,
    Delete,
}

async fn apply(
    server: &Server,
    caller: &Caller,
    name: &str,
    body: SelectionBody,
    how: Apply,
) -> ApiResult<Json<Value>> {
    let q = queue(name)?;
    let selection = body.into_selection()?;
    let detail = describe(&selection);
    let (count, action) = match how {
        Apply::Requeue => (
            server.driver.requeue_dead_letters(&q, selection).await?,
            "dead_letters.requeue",
        ),
        Apply::Delete => (
            server.driver.delete_dead_letters(&q, selection).await?,
            "dead_letters.delete",
        ),
    };
    caller
        .audit(server, action, q.as_str(), count, Some(detail))
        .await;
    Ok(Json(json!({"count": count})))
}

/// `POST /api/queues/{queue}/dead-letters/requeue`
pub async fn requeue(
    State(server): State<Arc<Server>>,
    caller: Caller,
    ApiPath(name): ApiPath<String>,
    ApiJson(body): ApiJson<SelectionBody>,
) -> ApiResult<Json<Value>> {
    apply(&server, &caller, &name, body, Apply::Requeue).await
}

/// `POST /api/queues/{queue}/dead-letters/delete`
pub async fn delete(
    State(server): State<Arc<Server>>,
    caller: Caller,
    ApiPath(name): ApiPath<String>,
    ApiJson(body): ApiJson<SelectionBody>,
) -> ApiResult<Json<Value>> {
    apply(&server, &caller, &name, body, Apply::Delete).await
}

/// `DELETE /api/queues/{queue}/dead-letters`: purge every dead letter of the queue.
pub async fn purge(
    State(server): State<Arc<Server>>,
    caller: Caller,
    ApiPath(name): ApiPath<String>,
) -> ApiResult<Json<Value>> {
    let q = queue(&name)?;
    let count = server
        .driver
        .delete_dead_letters(&q, Selection::All)
        .await?;
    caller
        .audit(&server, "dead_letters.purge", q.as_str(), count, None)
        .await;
    Ok(Json(json!({"count": count})))
}
