//! The SQL of receive, in one transaction: reclaim expired leases (dead-lettering those
//! on their last attempt), promote delayed messages that fell due, then lease the next
//! ready messages with `FOR UPDATE SKIP LOCKED`, so concurrent receivers in any number
//! of processes never take the same row and never wait on each other.
//!
//! Each reclaim and promote step touches at most 1,000 rows, so a backlog falling due
//! at once never makes one receive slow; the next receive takes the next slice.

use std::time::Duration;

use bytes::Bytes;
use ferry_core::time::{duration_millis, from_millis};
use ferry_core::{Delivery, Error, QueueName, Receipt, Result, reason};
use sqlx::{PgConnection, Row};

use crate::error::Context;
use crate::send::decode_headers;
use crate::settle::dead_letter_row;

/// What a receive found: deliveries, the server's time of the look, and when the
/// queue's next delayed message or lease falls due (for the long-poll wait).
#[derive(Debug)]
pub(crate) struct Received {
    pub(crate) deliveries: Vec<Delivery>,
    pub(crate) now: i64,
    pub(crate) next_due: Option<i64>,
}

/// A queue's settings as receive needs them.
struct QueueRow {
    qid: i64,
    max_attempts: i64,
    lease_ms: i64,
    paused: bool,
    now: i64,
}

async fn queue_row(conn: &mut PgConnection, queue: &QueueName) -> Result<QueueRow> {
    let row = sqlx::query(
        "SELECT qid, max_attempts, lease_ms, paused, now_ms() FROM queues WHERE name = $1",
    )
    .bind(queue.as_str())
    .fetch_optional(&mut *conn)
    .await
    .ctx("cannot receive")?
    .ok_or_else(|| Error::queue_not_found(queue.as_str()))?;
    Ok(QueueRow {
        qid: row.try_get(0).ctx("cannot receive")?,
        max_attempts: row.try_get(1).ctx("cannot receive")?,
        lease_ms: row.try_get(2).ctx("cannot receive")?,
        paused: row.try_get(3).ctx("cannot receive")?,
        now: row.try_get(4).ctx("cannot receive")?,
    })
}

/// Dead-letters expired leases that were on their last attempt (reason
/// `lease_expired`: a crash counts as an attempt), then makes due delayed messages
/// and the other expired leases ready.
async fn promote(conn: &mut PgConnection, q: &QueueRow, hist: bool) -> Result<()> {
    sqlx::query(
        "WITH due AS (
           SELECT seq FROM messages
           WHERE qid = $1 AND state = 2 AND avail_at <= $2 AND attempts >= $3
           ORDER BY avail_at LIMIT 1000 FOR UPDATE SKIP LOCKED
         ), gone AS (
           DELETE FROM messages m USING due WHERE m.seq = due.seq RETURNING m.*
         )
         INSERT INTO dead_letters
           (qid, id, priority, enqueued_at, route_key, headers, payload, attempts, reason,
            last_error, first_failed_at, dead_at, events)
         SELECT qid, id, priority, enqueued_at, route_key, headers, payload, attempts, $4,
                last_error, COALESCE(first_failed_at, $2), $2,
                CASE WHEN $5 THEN events || event_line($2, 'dead_lettered', attempts, $4)
                     ELSE events END
         FROM gone ORDER BY seq",
    )
    .bind(q.qid)
    .bind(q.now)
    .bind(q.max_attempts)
    .bind(reason::LEASE_EXPIRED)
    .bind(hist)
    .execute(&mut *conn)
    .await
    .ctx("cannot reclaim expired leases")?;
    sqlx::query(
        "WITH due AS (
           SELECT seq FROM messages
           WHERE qid = $1 AND state IN (1, 2) AND avail_at <= $2
             AND (state = 1 OR attempts < $3)
           ORDER BY avail_at LIMIT 1000 FOR UPDATE SKIP LOCKED
         )
         UPDATE messages m SET
           state = 0,
           first_failed_at = CASE WHEN m.state = 2 THEN COALESCE(m.first_failed_at, m.avail_at)
                                  ELSE m.first_failed_at END,
           events = CASE WHEN $4 AND m.state = 2
                         THEN m.events || event_line($2, 'lease_expired', m.attempts, NULL)
                         ELSE m.events END
         FROM due WHERE m.seq = due.seq",
    )
    .bind(q.qid)
    .bind(q.now)
    .bind(q.max_attempts)
    .bind(hist)
    .execute(&mut *conn)
    .await
    .ctx("cannot promote due messages")?;
    Ok(())
}

/// Leases up to `max` ready messages of `queue`.
pub(crate) async fn receive(
    conn: &mut PgConnection,
    queue: &QueueName,
    max: usize,
    lease: Option<Duration>,
    hist: bool,
) -> Result<Received> {
    let q = queue_row(conn, queue).await?;
    if q.paused {
        // Nothing is handed out or changed; the resume's notification wakes the poll.
        return Ok(Received {
            deliveries: Vec::new(),
            now: q.now,
            next_due: None,
        });
    }
    promote(conn, &q, hist).await?;
    let lease_ms = lease.map_or(q.lease_ms, duration_millis).max(1);
    let lease_until = q.now.saturating_add(lease_ms);
    // One random token per batch fences it: a receipt is `seq:token`, and every
    // redelivery draws a new token. Random, so nothing shared has to be written.
    let token = fastrand::i64(1..);
    let rows = sqlx::query(
        "WITH picked AS (
           SELECT seq, avail_at FROM messages
           WHERE qid = $1 AND state = 0
           ORDER BY priority DESC, avail_at, seq
           LIMIT $2 FOR UPDATE SKIP LOCKED
         )
         UPDATE messages m SET
           state = 2, avail_at = $3, attempts = m.attempts + 1, lease_token = $4,
           events = CASE WHEN $6 THEN m.events || event_line($5, 'delivered', m.attempts + 1, NULL)
                         ELSE m.events END
         FROM picked WHERE m.seq = picked.seq
         RETURNING m.seq, m.id, m.priority, m.attempts, m.enqueued_at, m.route_key, m.headers,
                   m.payload, picked.avail_at",
    )
    .bind(q.qid)
    .bind(i64::try_from(max).unwrap_or(i64::MAX))
    .bind(lease_until)
    .bind(token)
    .bind(q.now)
    .bind(hist)
    .fetch_all(&mut *conn)
    .await
    .ctx("cannot receive")?;

    struct Leased {
        seq: i64,
        id: String,
        priority: i16,
        attempts: i32,
        enqueued_at: i64,
        route_key: Option<String>,
        headers: String,
        payload: Vec<u8>,
        ready_at: i64,
    }
    let mut leased = Vec::with_capacity(rows.len());
    for r in rows {
        leased.push(Leased {
            seq: r.try_get(0).ctx("cannot receive")?,
            id: r.try_get(1).ctx("cannot receive")?,
            priority: r.try_get(2).ctx("cannot receive")?,
            attempts: r.try_get(3).ctx("cannot receive")?,
            enqueued_at: r.try_get(4).ctx("cannot receive")?,
            route_key: r.try_get(5).ctx("cannot receive")?,
            headers: r.try_get(6).ctx("cannot receive")?,
            payload: r.try_get(7).ctx("cannot receive")?,
            ready_at: r.try_get(8).ctx("cannot receive")?,
        });
    }
    // RETURNING has no order: restore the queue's.
    leased.sort_by_key(|l| (std::cmp::Reverse(l.priority), l.ready_at, l.seq));

    let mut deliveries = Vec::with_capacity(leased.len());
    for l in leased {
        let Some(headers) = decode_headers(&l.headers) else {
            // Never hand out a message ferry cannot read back, never drop it.
            tracing::error!(queue = %queue, id = %l.id, "stored headers are not ferry's; dead-lettering the message");
            dead_letter_row(
                conn,
                l.seq,
                Some(token),
                reason::CORRUPT,
                Some("stored headers are not valid JSON"),
                hist,
            )
            .await?;
            continue;
        };
        deliveries.push(Delivery {
            id: l.id.clone(),
            queue: queue.clone(),
            payload: Bytes::from(l.payload),
            headers,
            route_key: l.route_key,
            priority: u8::try_from(l.priority).unwrap_or(0),
            enqueued_at: from_millis(l.enqueued_at),
            attempt: u32::try_from(l.attempts).unwrap_or(0),
            lease_until: from_millis(lease_until),
            receipt: Receipt::new(queue.clone(), l.id, format!("{}:{token}", l.seq)),
        });
    }
    let next_due = if deliveries.is_empty() {
        sqlx::query_scalar("SELECT min(avail_at) FROM messages WHERE qid = $1 AND state IN (1, 2)")
            .bind(q.qid)
            .fetch_one(&mut *conn)
            .await
            .ctx("cannot receive")?
    } else {
        None
    };
    Ok(Received {
        deliveries,
        now: q.now,
        next_due,
    })
}
