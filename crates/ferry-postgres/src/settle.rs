//! The SQL of settling and extending leases. Every statement is fenced by the receipt:
//! the message row (`seq`), its lease token, its id and its queue must all match, so a
//! receipt whose lease expired and was handed out again matches nothing
//! (`StaleReceipt`) and changes nothing.
//!
//! Acks of one batch go in one statement (`unnest` of the receipts); retries,
//! releases and dead-letter moves one statement each, all in the caller's transaction.

use std::collections::{BTreeSet, HashSet};
use std::time::{Duration, SystemTime};

use ferry_core::time::duration_millis;
use ferry_core::{Error, ErrorKind, QueueName, Receipt, Result, SettleAction, Settlement};
use sqlx::{PgConnection, PgPool};

use crate::error::Context;
use crate::send::{millis_until, wake};

/// `seq:token` of a receipt this driver issued.
pub(crate) fn parse_receipt(receipt: &Receipt) -> Result<(i64, i64)> {
    receipt
        .token()
        .split_once(':')
        .and_then(|(s, t)| Some((s.parse().ok()?, t.parse().ok()?)))
        .ok_or_else(|| {
            Error::new(
                ErrorKind::InvalidReceipt,
                "receipt was not issued by the PostgreSQL driver",
            )
        })
}

/// Text PostgreSQL will store: NUL bytes (which `TEXT` refuses) become U+FFFD.
pub(crate) fn storable(s: &str) -> String {
    s.replace('\0', "\u{FFFD}")
}

/// Moves the message at `seq` (if `token` is given, only while it holds that lease) to
/// the dead letters. Returns whether it was moved.
pub(crate) async fn dead_letter_row(
    conn: &mut PgConnection,
    seq: i64,
    token: Option<i64>,
    why: &str,
    error: Option<&str>,
    hist: bool,
) -> Result<bool> {
    let why = storable(why);
    let error = error.map(storable);
    let detail = match &error {
        Some(e) => format!("{why}: {e}"),
        None => why.clone(),
    };
    let n = sqlx::query(
        "WITH gone AS (
           DELETE FROM messages WHERE seq = $1 AND ($2::bigint IS NULL OR lease_token = $2)
           RETURNING *
         ), t AS (SELECT now_ms() AS now)
         INSERT INTO dead_letters
           (qid, id, priority, enqueued_at, route_key, headers, payload, attempts, reason,
            last_error, first_failed_at, dead_at, events)
         SELECT qid, id, priority, enqueued_at, route_key, headers, payload, attempts, $3,
                COALESCE($4, last_error), COALESCE(first_failed_at, t.now), t.now,
                CASE WHEN $5 THEN events || event_line(t.now, 'dead_lettered', attempts, $6)
                     ELSE events END
         FROM gone, t",
    )
    .bind(seq)
    .bind(token)
    .bind(&why)
    .bind(&error)
    .bind(hist)
    .bind(&detail)
    .execute(&mut *conn)
    .await
    .ctx("cannot dead-letter")?
    .rows_affected();
    Ok(n > 0)
}

/// The fence every settlement statement adds: `$1` seq, `$2` token, `$3` id, `$4` queue.
const FENCE: &str = "seq = $1 AND lease_token = $2 AND id = $3
                     AND qid = (SELECT qid FROM queues WHERE name = $4)";

/// Applies `batch`; per-receipt results in order.
pub(crate) async fn settle(
    conn: &mut PgConnection,
    batch: &[Settlement],
    hist: bool,
    channel: &str,
) -> Result<Vec<Result<()>>> {
    let mut results: Vec<Option<Result<()>>> = Vec::with_capacity(batch.len());
    let mut parsed = Vec::with_capacity(batch.len());
    for s in batch {
        match parse_receipt(&s.receipt) {
            Ok(p) => {
                parsed.push(Some(p));
                results.push(None);
            }
            Err(e) => {
                parsed.push(None);
                results.push(Some(Err(e)));
            }
        }
    }
    let acked = ack_all(conn, batch, &parsed, hist).await?;
    let mut seen = HashSet::new();
    let mut woken: BTreeSet<QueueName> = BTreeSet::new();
    for (i, s) in batch.iter().enumerate() {
        let Some((seq, token)) = parsed[i] else {
            continue;
        };
        let applied = match &s.action {
            // One receipt twice in a batch: the first applies, the second is stale.
            SettleAction::Ack => acked.contains(&(seq, token)) && seen.insert(seq),
            SettleAction::Retry { not_before, error } => {
                let ok = retry(
                    conn,
                    &s.receipt,
                    seq,
                    token,
                    *not_before,
                    error.as_deref(),
                    hist,
                )
                .await?;
                if ok {
                    woken.insert(s.receipt.queue().clone());
                }
                ok
            }
            SettleAction::Release => {
                let ok = release(conn, &s.receipt, seq, token, hist).await?;
                if ok {
                    woken.insert(s.receipt.queue().clone());
                }
                ok
            }
            SettleAction::DeadLetter { reason, error } => {
                fenced(conn, &s.receipt, seq, token).await?
                    && dead_letter_row(conn, seq, Some(token), reason, error.as_deref(), hist)
                        .await?
            }
        };
        results[i] = Some(if applied {
            Ok(())
        } else {
            Err(Error::stale_receipt(
                s.receipt.queue().as_str(),
                s.receipt.message_id(),
            ))
        });
    }
    for q in &woken {
        wake(conn, channel, q).await?;
    }
    Ok(results
        .into_iter()
        .map(|r| r.unwrap_or_else(|| Err(Error::internal("settlement was not applied"))))
        .collect())
}

/// Deletes every acked message of the batch in one statement (keeping its events in
/// `history` when `hist`); returns the `(seq, token)`s that matched their receipts.
async fn ack_all(
    conn: &mut PgConnection,
    batch: &[Settlement],
    parsed: &[Option<(i64, i64)>],
    hist: bool,
) -> Result<HashSet<(i64, i64)>> {
    let (mut seqs, mut tokens, mut ids, mut queues) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for (s, p) in batch.iter().zip(parsed) {
        if let (SettleAction::Ack, Some((seq, token))) = (&s.action, p) {
            seqs.push(*seq);
            tokens.push(*token);
            ids.push(s.receipt.message_id().to_string());
            queues.push(s.receipt.queue().as_str().to_string());
        }
    }
    if seqs.is_empty() {
        return Ok(HashSet::new());
    }
    let done: Vec<(i64, i64)> = sqlx::query_as(
        "WITH r AS (
           SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::text[], $4::text[])
                  AS r(seq, token, id, queue)
         ), gone AS (
           DELETE FROM messages m USING r
           WHERE m.seq = r.seq AND m.lease_token = r.token AND m.id = r.id
             AND m.qid = (SELECT qid FROM queues q WHERE q.name = r.queue)
           RETURNING m.seq, m.lease_token, m.qid, m.id, m.attempts, m.events
         ), t AS (SELECT now_ms() AS now), kept AS (
           INSERT INTO history (qid, id, at, events)
           SELECT qid, id, t.now, events || event_line(t.now, 'acked', attempts, NULL)
           FROM gone, t WHERE $5
         )
         SELECT seq, lease_token FROM gone",
    )
    .bind(&seqs)
    .bind(&tokens)
    .bind(&ids)
    .bind(&queues)
    .bind(hist)
    .fetch_all(&mut *conn)
    .await
    .ctx("cannot ack")?;
    Ok(done.into_iter().collect())
}

async fn retry(
    conn: &mut PgConnection,
    receipt: &Receipt,
    seq: i64,
    token: i64,
    not_before: SystemTime,
    error: Option<&str>,
    hist: bool,
) -> Result<bool> {
    let delay =
        millis_until(SystemTime::now(), not_before).min(duration_millis(ferry_core::MAX_DELAY));
    let sql = format!(
        "UPDATE messages SET
           state = CASE WHEN $5 > 0 THEN 1 ELSE 0 END, avail_at = t.now + $5, lease_token = NULL,
           last_error = $6, first_failed_at = COALESCE(first_failed_at, t.now),
           events = CASE WHEN $7 THEN events || event_line(t.now, 'retried', attempts, $6)
                         ELSE events END
         FROM (SELECT now_ms() AS now) t
         WHERE {FENCE}"
    );
    let n = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(seq)
        .bind(token)
        .bind(receipt.message_id())
        .bind(receipt.queue().as_str())
        .bind(delay)
        .bind(error.map(storable))
        .bind(hist)
        .execute(&mut *conn)
        .await
        .ctx("cannot retry")?
        .rows_affected();
    Ok(n > 0)
}

async fn release(
    conn: &mut PgConnection,
    receipt: &Receipt,
    seq: i64,
    token: i64,
    hist: bool,
) -> Result<bool> {
    let sql = format!(
        "UPDATE messages SET
           state = 0, avail_at = t.now, lease_token = NULL, attempts = GREATEST(attempts - 1, 0),
           events = CASE WHEN $5 THEN events || event_line(t.now, 'released', attempts, NULL)
                         ELSE events END
         FROM (SELECT now_ms() AS now) t
         WHERE {FENCE}"
    );
    let n = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(seq)
        .bind(token)
        .bind(receipt.message_id())
        .bind(receipt.queue().as_str())
        .bind(hist)
        .execute(&mut *conn)
        .await
        .ctx("cannot release")?
        .rows_affected();
    Ok(n > 0)
}

/// Whether the receipt still holds its message's lease (locking the row until commit).
async fn fenced(conn: &mut PgConnection, receipt: &Receipt, seq: i64, token: i64) -> Result<bool> {
    let sql = format!("SELECT 1 FROM messages WHERE {FENCE} FOR UPDATE");
    let found: Option<i32> = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
        .bind(seq)
        .bind(token)
        .bind(receipt.message_id())
        .bind(receipt.queue().as_str())
        .fetch_optional(&mut *conn)
        .await
        .ctx("cannot dead-letter")?;
    Ok(found.is_some())
}

/// Extends the lease of `receipt` to `lease` from now (server clock); returns its end.
pub(crate) async fn extend(pool: &PgPool, receipt: &Receipt, lease: Duration) -> Result<i64> {
    let (seq, token) = parse_receipt(receipt)?;
    let lease = duration_millis(lease.min(ferry_core::MAX_LEASE)).max(1);
    let sql = format!(
        "UPDATE messages SET state = 2, avail_at = t.now + $5
         FROM (SELECT now_ms() AS now) t
         WHERE {FENCE}
         RETURNING avail_at"
    );
    let until: Option<i64> = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
        .bind(seq)
        .bind(token)
        .bind(receipt.message_id())
        .bind(receipt.queue().as_str())
        .bind(lease)
        .fetch_optional(pool)
        .await
        .ctx("cannot extend lease")?;
    until.ok_or_else(|| Error::stale_receipt(receipt.queue().as_str(), receipt.message_id()))
}
