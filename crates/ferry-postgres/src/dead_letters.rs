//! [`DeadLetters`] for [`PostgresDriver`]: the `dead_letters` table, oldest death
//! first (by `seq`), with paging, a reason filter, requeue and delete.
//!
//! Requeue and purge of a whole queue work in chunks of 1,000, each its own
//! transaction, so a million dead letters never hold locks (or the operation timeout)
//! for long. A requeued dead letter whose id is live in the queue again stays where it
//! is (the message table's unique `(qid, id)` index decides, with `ON CONFLICT DO
//! NOTHING`).

use async_trait::async_trait;
use bytes::Bytes;
use ferry_core::time::from_millis;
use ferry_core::{
    DeadLetter, DeadLetterQuery, DeadLetters, Error, ErrorKind, QueueName, Result, Selection,
};
use sqlx::postgres::PgRow;
use sqlx::{PgConnection, PgPool, Row};

use crate::driver::{Op, PostgresDriver};
use crate::error::Context;
use crate::send::{decode_headers, wake};

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
        if inserted > 0 {
            sqlx::query("DELETE FROM dead_letters WHERE seq = $1")
                .bind(seq)
                .execute(&mut *conn)
                .await
                .ctx("cannot requeue")?;
            requeued += 1;
        }
    }
    if requeued > 0 {
        wake(conn, channel, queue).await?;
    }
    Ok((requeued, next))
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
                 ORDER BY seq LIMIT $3 OFFSET $4"
            );
            let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(qid)
                .bind(&query.reason)
                .bind(i64::try_from(query.limit).unwrap_or(i64::MAX))
                .bind(i64::try_from(query.offset).unwrap_or(i64::MAX))
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
}
