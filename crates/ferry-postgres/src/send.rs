//! The SQL of send and publish: one multi-row `INSERT ... ON CONFLICT DO NOTHING` per
//! queue inside the caller's transaction, and routing a publish through the topic's
//! bindings.
//!
//! Delays are sent as milliseconds from now and added to the server's clock, so a
//! producer whose clock is off still delays by the right amount.

use std::collections::{BTreeMap, HashSet};
use std::time::SystemTime;

use ferry_core::time::duration_millis;
use ferry_core::{Error, Message, QueueName, Result, TopicName, route_matches};
use sqlx::{PgConnection, Row};

use crate::error::Context;

/// Headers as stored: empty for none, else a JSON object (JSON escapes every control
/// character, so the text never holds a NUL byte PostgreSQL would refuse).
pub(crate) fn encode_headers(headers: &BTreeMap<String, String>) -> String {
    if headers.is_empty() {
        String::new()
    } else {
        serde_json::to_string(headers).unwrap_or_default()
    }
}

/// The stored headers text back as a map; `None` if it is not what ferry wrote.
pub(crate) fn decode_headers(s: &str) -> Option<BTreeMap<String, String>> {
    if s.is_empty() {
        Some(BTreeMap::new())
    } else {
        serde_json::from_str(s).ok()
    }
}

/// Milliseconds from `now` until `at`, rounded up (never early); 0 for the past.
pub(crate) fn millis_until(now: SystemTime, at: SystemTime) -> i64 {
    at.duration_since(now)
        .map(|d| i64::try_from(d.as_nanos().div_ceil(1_000_000)).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Inserts `batch` into `queue`; returns (enqueued, duplicate ids in batch order).
pub(crate) async fn enqueue(
    conn: &mut PgConnection,
    queue: &QueueName,
    batch: &[Message],
    route_key: Option<&str>,
    hist: bool,
    channel: &str,
) -> Result<(u64, Vec<String>)> {
    // FOR KEY SHARE: a concurrent delete_queue waits for this send, not the reverse.
    let row = sqlx::query(
        "SELECT qid, default_delay_ms, now_ms() FROM queues WHERE name = $1 FOR KEY SHARE",
    )
    .bind(queue.as_str())
    .fetch_optional(&mut *conn)
    .await
    .ctx("cannot send")?
    .ok_or_else(|| Error::queue_not_found(queue.as_str()))?;
    let qid: i64 = row.try_get(0).ctx("cannot send")?;
    let default_delay: i64 = row.try_get(1).ctx("cannot send")?;
    let now_ms: i64 = row.try_get(2).ctx("cannot send")?;
    let default_delay = std::time::Duration::from_millis(u64::try_from(default_delay).unwrap_or(0));

    let now = SystemTime::now();
    let mut ids = Vec::with_capacity(batch.len());
    let mut priorities = Vec::with_capacity(batch.len());
    let mut delays = Vec::with_capacity(batch.len());
    let mut headers = Vec::with_capacity(batch.len());
    let mut payloads = Vec::with_capacity(batch.len());
    for m in batch {
        ids.push(m.id().to_string());
        priorities.push(i16::from(m.priority()));
        delays.push(
            millis_until(now, m.visible_at(now, default_delay))
                .min(duration_millis(ferry_core::MAX_DELAY)),
        );
        headers.push(encode_headers(m.headers()));
        payloads.push(m.payload().to_vec());
    }
    let detail = route_key.map(|k| format!("route key {k}"));
    let inserted: Vec<String> = sqlx::query_scalar(
        "INSERT INTO messages
           (qid, id, state, priority, avail_at, enqueued_at, route_key, headers, payload, events)
         SELECT $1, t.id, CASE WHEN t.delay > 0 THEN 1 ELSE 0 END, t.priority, $2 + t.delay, $2,
                $3, t.headers, t.payload,
                CASE WHEN $4 THEN event_line($2, 'sent', 0, $5) ELSE '' END
         FROM unnest($6::text[], $7::smallint[], $8::bigint[], $9::text[], $10::bytea[])
              WITH ORDINALITY AS t(id, priority, delay, headers, payload, ord)
         ORDER BY t.ord
         ON CONFLICT (qid, id) DO NOTHING
         RETURNING id",
    )
    .bind(qid)
    .bind(now_ms)
    .bind(route_key)
    .bind(hist)
    .bind(detail)
    .bind(&ids)
    .bind(&priorities)
    .bind(&delays)
    .bind(&headers)
    .bind(&payloads)
    .fetch_all(&mut *conn)
    .await
    .ctx("cannot enqueue")?;
    let enqueued = inserted.len() as u64;
    let inserted: HashSet<String> = inserted.into_iter().collect();
    let duplicates = ids
        .into_iter()
        .filter(|id| !inserted.contains(id))
        .collect();
    if enqueued > 0 {
        wake(conn, channel, queue).await?;
    }
    Ok((enqueued, duplicates))
}

/// Tells every listening process (on commit) that `queue` may have deliverable messages.
pub(crate) async fn wake(conn: &mut PgConnection, channel: &str, queue: &QueueName) -> Result<()> {
    sqlx::query("SELECT pg_notify($1, $2)")
        .bind(channel)
        .bind(queue.as_str())
        .execute(&mut *conn)
        .await
        .ctx("cannot notify receivers")?;
    Ok(())
}

/// The queues `route_key` reaches through `topic`'s bindings, sorted, deduplicated.
/// `TopicNotFound` if the topic does not exist.
pub(crate) async fn route(
    conn: &mut PgConnection,
    topic: &TopicName,
    route_key: &str,
) -> Result<Vec<QueueName>> {
    // FOR KEY SHARE on the topic: a concurrent delete_topic waits for this publish.
    let found: Option<i32> =
        sqlx::query_scalar("SELECT 1 FROM topics WHERE name = $1 FOR KEY SHARE")
            .bind(topic.as_str())
            .fetch_optional(&mut *conn)
            .await
            .ctx("cannot publish")?;
    if found.is_none() {
        return Err(Error::topic_not_found(topic.as_str()));
    }
    let rows: Vec<(String, String)> =
        sqlx::query_as("SELECT queue, pattern FROM bindings WHERE topic = $1")
            .bind(topic.as_str())
            .fetch_all(&mut *conn)
            .await
            .ctx("cannot publish")?;
    let mut queues = Vec::new();
    for (queue, pattern) in rows {
        if route_matches(&pattern, route_key) {
            queues.push(QueueName::new(queue)?);
        }
    }
    queues.sort();
    queues.dedup();
    Ok(queues)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn millis_round_up_and_clamp() {
        let now = SystemTime::now();
        assert_eq!(millis_until(now, now), 0);
        assert_eq!(millis_until(now, now - Duration::from_secs(1)), 0);
        assert_eq!(millis_until(now, now + Duration::from_micros(1500)), 2);
    }

    #[test]
    fn headers_round_trip() {
        let mut h = BTreeMap::new();
        assert_eq!(encode_headers(&h), "");
        h.insert("k\0".to_string(), "v".to_string());
        let text = encode_headers(&h);
        assert!(!text.contains('\0'));
        assert_eq!(decode_headers(&text), Some(h));
        assert_eq!(decode_headers("not json"), None);
    }
}
