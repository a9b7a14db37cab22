//! [`DeadLetters`] for [`PostgresDriver`]: the `dead_letters` table, oldest death
//! first (by `seq`), with paging, reason and approval filters, requeue, delete,
//! inserting dead letters directly, and approved re-drive.
//!
//! Requeue and purge of a whole queue work in chunks of 1,000, each its own
//! transaction, so a million dead letters never hold locks (or the operation timeout)
//! for long. A requeued dead letter whose id is live in the queue again stays where it
//! is (the message table's unique `(qid, id)` index decides, with `ON CONFLICT DO
//! NOTHING`).
//!
//! Re-drive claims approved rows with `FOR UPDATE SKIP LOCKED`, so concurrent
//! re-drives in any number of processes get disjoint dead letters, and moves each in
//! the same transaction; the approval goes with the row.

use async_trait::async_trait;
use bytes::Bytes;
use ferry_core::time::{from_millis, to_millis};
use ferry_core::{
    DeadLetter, DeadLetterQuery, DeadLetters, Driver, Error, ErrorKind, QueueName, Result,
    Selection,
};
use sqlx::postgres::PgRow;
use sqlx::{PgConnection, PgPool, Row};

use crate::driver::{Op, PostgresDriver};
use crate::error::Context;
use crate::send::{decode_headers, encode_headers, wake};
use crate::settle::storable;

/// Dead letters moved or deleted per transaction.
const CHUNK: i64 = 1000;

const COLUMNS: &str = "id, priority, enqueued_at, route_key, headers, payload, attempts, reason,
                       last_error, first_failed_at, dead_at";

fn dead_from_row(queue: &QueueName, r: &PgRow) -> Result<DeadLetter> {
    let what = "cannot read dead letters";
    let id: String = r.try_get(0).ctx(what)?;
    let headers: String = r.try_get(4).ctx(what)?;
    let headers = decode_headers(&headers).ok_or_else(|| {
        Error::new(
            ErrorKind::Corrupt,
            format!("dead letter '{id}' in queue '{queue}' has headers ferry did not write"),
        )
    })?;
    let payload: Vec<u8> = r.try_get(5).ctx(what)?;
    Ok(DeadLetter {
        queue: queue.clone(),
        payload: Bytes::from(payload),
        headers,
        route_key: r.try_get(3).ctx(what)?,
        priority: u8::try_from(r.try_get::<i16, _>(1).ctx(what)?).unwrap_or(0),
        enqueued_at: from_millis(r.try_get(2).ctx(what)?),
        attempts: u32::try_from(r.try_get::<i32, _>(6).ctx(what)?).unwrap_or(0),
        reason: r.try_get(7).ctx(what)?,
        last_error: r.try_get(8).ctx(what)?,
        first_failed_at: r.try_get::<Option<i64>, _>(9).ctx(what)?.map(from_millis),
        dead_at: from_millis(r.try_get(10).ctx(what)?),
        id,
    })
}

async fn qid(conn: &mut PgConnection, queue: &QueueName) -> Result<i64> {
    let qid: Option<i64> = sqlx::query_scalar("SELECT qid FROM queues WHERE name = $1")
        .bind(queue.as_str())
        .fetch_optional(&mut *conn)
        .await
        .ctx("cannot read queue")?;
    qid.ok_or_else(|| Error::queue_not_found(queue.as_str()))
}

async fn qid_in(pool: &PgPool, queue: &QueueName) -> Result<i64> {
    let mut conn = pool.acquire().await.ctx("cannot read queue")?;
    qid(&mut conn, queue).await
}

/// Requeues one chunk: the selected dead letters with `seq < before`, newest death of
/// an id first. Returns how many were requeued and the cursor for the next chunk when
/// more may remain.
async fn requeue_chunk(
    conn: &mut PgConnection,
    queue: &QueueName,
    selection: &Selection,
    before: i64,
    hist: bool,
    channel: &str,
) -> Result<(u64, Option<i64>)> {
    let qid = qid(conn, queue).await?;
    let seqs: Vec<i64> = match selection {
        Selection::All => sqlx::query_scalar(
            "SELECT seq FROM dead_letters WHERE qid = $1 AND seq < $2
             ORDER BY seq DESC LIMIT $3 FOR UPDATE",
        )
        .bind(qid)
        .bind(before)
        .bind(CHUNK)
        .fetch_all(&mut *conn)
        .await
        .ctx("cannot select dead letters")?,
        Selection::Ids(ids) => sqlx::query_scalar(
            "SELECT seq FROM dead_letters WHERE qid = $1 AND id = ANY($2)
             ORDER BY seq DESC FOR UPDATE",
        )
        .bind(qid)
        .bind(ids)
        .fetch_all(&mut *conn)
        .await
        .ctx("cannot select dead letters")?,
    };
    let next = match selection {
        Selection::All if seqs.len() as i64 == CHUNK => seqs.last().copied(),
        _ => None,
    };
    let mut requeued = 0;
    for seq in seqs {
        if move_back(conn, seq, hist).await? {
            requeued += 1;
        }
    }
    if requeued > 0 {
        wake(conn, channel, queue).await?;
    }
    Ok((requeued, next))
}

/// Moves dead letter `seq` back into its queue, ready now, attempts reset, unless its
/// id is live there again. Returns whether it moved.
async fn move_back(conn: &mut PgConnection, seq: i64, hist: bool) -> Result<bool> {
    {
        let inserted = sqlx::query(
            "INSERT INTO messages
               (qid, id, state, priority, avail_at, enqueued_at, route_key, headers, payload,
                last_error, events)
             SELECT qid, id, 0, priority, t.now, enqueued_at, route_key, headers, payload,
                    last_error,
                    CASE WHEN $2 THEN events || event_line(t.now, 'requeued', 0, NULL)
                         ELSE events END
             FROM dead_letters, (SELECT now_ms() AS now) t WHERE seq = $1
             ON CONFLICT (qid, id) DO NOTHING",
        )
        .bind(seq)
        .bind(hist)
        .execute(&mut *conn)
        .await
        .ctx("cannot requeue")?
        .rows_affected();
        if inserted == 0 {
            return Ok(false);
        }
        sqlx::query("DELETE FROM dead_letters WHERE seq = $1")
            .bind(seq)
            .execute(&mut *conn)
            .await
            .ctx("cannot requeue")?;
        Ok(true)
    }
}

/// Claims up to `max` approved dead letters of `queue` whose ids are not live, oldest
/// death first, and moves them back; returns their ids.
async fn redrive_chunk(
    conn: &mut PgConnection,
    queue: &QueueName,
    max: u64,
    hist: bool,
    channel: &str,
) -> Result<Vec<String>> {
    let qid = qid(conn, queue).await?;
    let claimed: Vec<(i64, String)> = sqlx::query_as(
        "SELECT seq, id FROM dead_letters d
         WHERE qid = $1 AND approved
           AND NOT EXISTS (SELECT 1 FROM messages m WHERE m.qid = d.qid AND m.id = d.id)
         ORDER BY seq LIMIT $2 FOR UPDATE SKIP LOCKED",
    )
    .bind(qid)
    // At most one chunk per call (the contract's "up to max"), so one call stays short.
    .bind(i64::try_from(max).unwrap_or(i64::MAX).min(CHUNK))
    .fetch_all(&mut *conn)
    .await
    .ctx("cannot claim approved dead letters")?;
    let mut moved = Vec::with_capacity(claimed.len());
    for (seq, id) in claimed {
        // An id approved twice (it died twice) moves once; the other copy stays.
        if move_back(conn, seq, hist).await? {
            moved.push(id);
        }
    }
    if !moved.is_empty() {
        wake(conn, channel, queue).await?;
    }
    Ok(moved)
}

/// Stores `letters` as dead letters of `queue` (checked by the caller). Returns how many.
async fn insert_letters(
    conn: &mut PgConnection,
    queue: &QueueName,
    letters: &[DeadLetter],
    hist: bool,
) -> Result<u64> {
    let qid = qid(conn, queue).await?;
    let mut cols = Letters::default();
    for l in letters {
        cols.ids.push(l.id.clone());
        cols.priorities.push(i16::from(l.priority));
        cols.enqueued.push(to_millis(l.enqueued_at));
        cols.route_keys.push(l.route_key.clone());
        cols.headers.push(encode_headers(&l.headers));
        cols.payloads.push(l.payload.to_vec());
        cols.attempts
            .push(i32::try_from(l.attempts).unwrap_or(i32::MAX));
        cols.reasons.push(storable(&l.reason));
        cols.errors.push(l.last_error.as_deref().map(storable));
        cols.first_failed.push(l.first_failed_at.map(to_millis));
        cols.dead.push(to_millis(l.dead_at));
    }
    let n = sqlx::query(
        "INSERT INTO dead_letters
           (qid, id, priority, enqueued_at, route_key, headers, payload, attempts, reason,
            last_error, first_failed_at, dead_at, events)
         SELECT $1, t.id, t.priority, t.enqueued_at, t.route_key, t.headers, t.payload,
                t.attempts, t.reason, t.last_error, t.first_failed_at, t.dead_at,
                CASE WHEN $13 THEN event_line(t.dead_at, 'dead_lettered', t.attempts, t.reason)
                     ELSE '' END
         FROM unnest($2::text[], $3::smallint[], $4::bigint[], $5::text[], $6::text[],
                     $7::bytea[], $8::integer[], $9::text[], $10::text[], $11::bigint[],
                     $12::bigint[])
              WITH ORDINALITY AS t(id, priority, enqueued_at, route_key, headers, payload,
                                   attempts, reason, last_error, first_failed_at, dead_at, ord)
         ORDER BY t.ord",
    )
    .bind(qid)
    .bind(&cols.ids)
    .bind(&cols.priorities)
    .bind(&cols.enqueued)
    .bind(&cols.route_keys)
    .bind(&cols.headers)
    .bind(&cols.payloads)
    .bind(&cols.attempts)
    .bind(&cols.reasons)
    .bind(&cols.errors)
    .bind(&cols.first_failed)
    .bind(&cols.dead)
    .bind(hist)
    .execute(&mut *conn)
    .await
    .ctx("cannot insert dead letters")?
    .rows_affected();
    Ok(n)
}

/// The columns of a batch of dead letters, for one `unnest` insert.
#[derive(Default)]
struct Letters {
    ids: Vec<String>,
    priorities: Vec<i16>,
    enqueued: Vec<i64>,
    route_keys: Vec<Option<String>>,
    headers: Vec<String>,
    payloads: Vec<Vec<u8>>,
    attempts: Vec<i32>,
    reasons: Vec<String>,
    errors: Vec<Option<String>>,
    first_failed: Vec<Option<i64>>,
    dead: Vec<i64>,
}

/// Deletes the selected dead letters (for `All`, one chunk), keeping their events in
/// the history when `hist`. Returns how many.
async fn delete_chunk(
    conn: &mut PgConnection,
    queue: &QueueName,
    selection: &Selection,
    hist: bool,
) -> Result<u64> {
    let qid = qid(conn, queue).await?;
    let (filter, ids): (&str, Vec<String>) = match selection {
        Selection::All => (
            "seq IN (SELECT seq FROM dead_letters WHERE qid = $1 ORDER BY seq LIMIT $3)",
            Vec::new(),
        ),
        Selection::Ids(ids) => ("qid = $1 AND id = ANY($2)", ids.clone()),
    };
    let sql = format!(
        "WITH gone AS (
           DELETE FROM dead_letters WHERE {filter}
           RETURNING seq, qid, id, attempts, events
         ), t AS (SELECT now_ms() AS now), kept AS (
           INSERT INTO history (qid, id, at, events)
           SELECT qid, id, t.now, events || event_line(t.now, 'deleted', attempts, NULL)
           FROM gone, t WHERE $4 ORDER BY seq
         )
         SELECT count(*) FROM gone"
    );
    let n: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
        .bind(qid)
        .bind(&ids)
        .bind(CHUNK)
        .bind(hist)
        .fetch_one(&mut *conn)
        .await
        .ctx("cannot delete dead letters")?;
    Ok(u64::try_from(n).unwrap_or(0))
}

#[async_trait]
impl DeadLetters for PostgresDriver {
    async fn list_dead_letters(
        &self,
        queue: &QueueName,
        query: DeadLetterQuery,
    ) -> Result<Vec<DeadLetter>> {
        self.bounded(Op::Plain, async {
            let qid = qid_in(self.pool(), queue).await?;
            let sql = format!(
                "SELECT {COLUMNS} FROM dead_letters
                 WHERE qid = $1 AND ($2::text IS NULL OR reason = $2)
                   AND ($5::boolean IS NULL OR approved = $5)
                 ORDER BY seq LIMIT $3 OFFSET $4"
            );
            let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(qid)
                .bind(&query.reason)
                .bind(i64::try_from(query.limit).unwrap_or(i64::MAX))
                .bind(i64::try_from(query.offset).unwrap_or(i64::MAX))
                .bind(query.approved)
                .fetch_all(self.pool())
                .await
                .ctx("cannot list dead letters")?;
            rows.iter().map(|r| dead_from_row(queue, r)).collect()
        })
        .await
    }

    async fn get_dead_letter(&self, queue: &QueueName, id: &str) -> Result<DeadLetter> {
        self.bounded(Op::Plain, async {
            let qid = qid_in(self.pool(), queue).await?;
            let sql = format!(
                "SELECT {COLUMNS} FROM dead_letters WHERE qid = $1 AND id = $2
                 ORDER BY seq DESC LIMIT 1"
            );
            let row = sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(qid)
                .bind(id)
                .fetch_optional(self.pool())
                .await
                .ctx("cannot read dead letter")?
                .ok_or_else(|| {
                    Error::new(
                        ErrorKind::MessageNotFound,
                        format!(
                            "no dead letter '{id}' in queue '{queue}' (list them with: ferry dlq list {queue})"
                        ),
                    )
                })?;
            dead_from_row(queue, &row)
        })
        .await
    }

    async fn requeue_dead_letters(&self, queue: &QueueName, selection: Selection) -> Result<u64> {
        let mut total = 0;
        let mut before = i64::MAX;
        let (hist, channel) = (self.keeps_history(), self.channel().to_string());
        loop {
            let (q, sel, ch) = (queue.clone(), selection.clone(), channel.clone());
            let (n, next) = self
                .in_tx(Op::Plain, "requeue dead letters", move |c| {
                    Box::pin(async move { requeue_chunk(c, &q, &sel, before, hist, &ch).await })
                })
                .await?;
            total += n;
            match next {
                Some(cursor) => before = cursor,
                None => return Ok(total),
            }
        }
    }

    async fn delete_dead_letters(&self, queue: &QueueName, selection: Selection) -> Result<u64> {
        let mut total = 0;
        let hist = self.keeps_history();
        loop {
            let (q, sel) = (queue.clone(), selection.clone());
            let n = self
                .in_tx(Op::Plain, "delete dead letters", move |c| {
                    Box::pin(async move { delete_chunk(c, &q, &sel, hist).await })
                })
                .await?;
            total += n;
            if !matches!(selection, Selection::All) || n < CHUNK as u64 {
                return Ok(total);
            }
        }
    }

    async fn insert_dead_letters(
        &self,
        queue: &QueueName,
        letters: Vec<DeadLetter>,
    ) -> Result<u64> {
        Driver::limits(self).validate_dead_letters(&letters)?;
        let (q, hist) = (queue.clone(), self.keeps_history());
        self.in_tx(Op::Plain, "insert dead letters", move |c| {
            Box::pin(async move { insert_letters(c, &q, &letters, hist).await })
        })
        .await
    }

    async fn approve_dead_letters(&self, queue: &QueueName, selection: Selection) -> Result<u64> {
        self.bounded(Op::Plain, async {
            let qid = qid_in(self.pool(), queue).await?;
            let (all, ids) = match &selection {
                Selection::All => (true, Vec::new()),
                Selection::Ids(ids) => (false, ids.clone()),
            };
            let n = sqlx::query(
                "UPDATE dead_letters SET approved = TRUE
                 WHERE qid = $1 AND NOT approved AND ($2 OR id = ANY($3))",
            )
            .bind(qid)
            .bind(all)
            .bind(&ids)
            .execute(self.pool())
            .await
            .ctx("cannot approve dead letters")?
            .rows_affected();
            Ok(n)
        })
        .await
    }

    async fn redrive_approved(&self, queue: &QueueName, max: u64) -> Result<Vec<String>> {
        if max == 0 {
            // Still says whether the queue exists.
            self.bounded(Op::Plain, qid_in(self.pool(), queue)).await?;
            return Ok(Vec::new());
        }
        let (q, hist, channel) = (
            queue.clone(),
            self.keeps_history(),
            self.channel().to_string(),
        );
        self.in_tx(Op::Plain, "re-drive dead letters", move |c| {
            Box::pin(async move { redrive_chunk(c, &q, max, hist, &channel).await })
        })
        .await
    }
}
