//! One relay round, in one PostgreSQL transaction on the leader's connection:
//!
//! 1. take the lowest `batch` rows whose destination is not on hold,
//!    `ORDER BY seq ... FOR UPDATE SKIP LOCKED` (no `seq > last_seen` cursor: a row
//!    whose transaction took a low `seq` but committed late is simply the lowest row
//!    present next round, never skipped);
//! 2. forward them in `seq` order, consecutive rows of one destination as one
//!    `send`/`publish` batch;
//! 3. delete exactly the rows the target accepted, record holds for destinations that
//!    refused with a permanent error, and commit.
//!
//! A crash anywhere before the commit rolls the round back: its rows are forwarded
//! again next round, with the same message ids, which the target drops while the first
//! copy is still queued. A row the target refused is never deleted: its destination is
//! put on hold (its rows skipped, in order, until the hold's backoff runs out) so the
//! other destinations go on.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ferry_core::tx::{Destination, decode_prepared};
use ferry_core::{Driver, Error, Message, Result, RetryPolicy};
use sqlx::{Connection, PgConnection, Row};

use super::leader::bounded;
use super::{Refusal, RoundReport};
use crate::error::{Context, from_sqlx};
use crate::outbox::table;

/// What a round needs to know.
pub(crate) struct Plan<'a> {
    pub(crate) schema: &'a str,
    pub(crate) target: &'a Arc<dyn Driver>,
    pub(crate) batch: usize,
    pub(crate) timeout: Duration,
    pub(crate) target_timeout: Duration,
    pub(crate) hold_backoff: &'a RetryPolicy,
}

struct OutboxRow {
    seq: i64,
    id: String,
    dest: String,
    body: Vec<u8>,
}

/// A hold to write: the destination, its failure count, the delay, the row and error.
struct NewHold {
    dest: String,
    failures: i32,
    delay_ms: i64,
    seq: i64,
    error: String,
}

/// Runs one round on `conn`. Database failures are `Err` (the caller drops the
/// connection); a target failure is in the report, after the rows forwarded before it
/// were deleted and committed.
pub(crate) async fn run(conn: &mut PgConnection, plan: &Plan<'_>) -> Result<RoundReport> {
    let started = Instant::now();
    let t = plan.timeout;
    let outbox = table(plan.schema, "outbox");
    let holds_table = table(plan.schema, "outbox_holds");
    let mut tx = bounded(t, conn.begin())
        .await?
        .ctx("cannot begin a relay round")?;

    let held: HashMap<String, i32> = bounded(
        t,
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT dest, failures FROM {holds_table}"
        )))
        .fetch_all(&mut *tx),
    )
    .await?
    .ctx("cannot read the outbox holds")?
    .into_iter()
    .map(|r| (r.get::<String, _>(0), r.get::<i32, _>(1)))
    .collect();
    let rows: Vec<OutboxRow> = bounded(
        t,
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT o.seq, o.id, o.dest, o.body FROM {outbox} o \
             WHERE NOT EXISTS (SELECT 1 FROM {holds_table} h \
                               WHERE h.dest = o.dest AND h.until_ms > {}.now_ms()) \
             ORDER BY o.seq LIMIT $1 FOR UPDATE OF o SKIP LOCKED",
            crate::outbox::quote(plan.schema)
        )))
        .bind(i64::try_from(plan.batch).unwrap_or(i64::MAX))
        .fetch_all(&mut *tx),
    )
    .await?
    .ctx("cannot read the outbox")?
    .into_iter()
    .map(|r| OutboxRow {
        seq: r.get(0),
        id: r.get(1),
        dest: r.get(2),
        body: r.get(3),
    })
    .collect();

    let mut report = RoundReport {
        fetched: rows.len() as u64,
        ..RoundReport::default()
    };
    let mut done: Vec<i64> = Vec::new();
    let mut cleared: Vec<String> = Vec::new();
    let mut new_holds: Vec<NewHold> = Vec::new();
    let mut refused: HashSet<String> = HashSet::new();
    let max_batch = plan.target.limits().max_batch.max(1);

    let mut i = 0;
    'rows: while i < rows.len() {
        let dest = rows[i].dest.clone();
        let mut j = i;
        while j < rows.len() && rows[j].dest == dest {
            j += 1;
        }
        let group = &rows[i..j];
        i = j;
        if refused.contains(&dest) {
            report.held += group.len() as u64;
            continue;
        }
        // Decode the group; a row that does not decode ends it (and holds the rest).
        let mut destination = None;
        let mut messages = Vec::with_capacity(group.len());
        let mut bad = None;
        for row in group {
            match decode_prepared(&row.body) {
                Ok((d, m)) => {
                    destination.get_or_insert(d);
                    messages.push(m);
                }
                Err(e) => {
                    bad = Some((row, e));
                    break;
                }
            }
        }
        let mut offset = 0;
        if let Some(destination) = destination {
            for chunk in messages.chunks(max_batch) {
                match forward(plan, &destination, chunk.to_vec()).await {
                    Ok(dups) => {
                        report.forwarded += chunk.len() as u64;
                        report.duplicates += dups;
                        done.extend(group[offset..offset + chunk.len()].iter().map(|r| r.seq));
                        offset += chunk.len();
                    }
                    Err(e) if e.is_transient() => {
                        // The target is down or slow: keep the rest for a later round.
                        report.target_error = Some(e);
                        break 'rows;
                    }
                    Err(e) => {
                        bad = Some((&group[offset], e));
                        break;
                    }
                }
            }
        }
        if let Some((row, e)) = bad {
            let failures = held.get(&dest).copied().unwrap_or(0).saturating_add(1);
            let delay = plan
                .hold_backoff
                .delay_after(u32::try_from(failures).unwrap_or(1), u32::MAX)
                .unwrap_or(Duration::from_secs(60));
            tracing::error!(
                schema = plan.schema,
                seq = row.seq,
                id = %row.id,
                destination = %describe(&dest),
                failures,
                retry_in = ?delay,
                error = %e,
                "the outbox relay cannot forward this row; it stays in the outbox and its destination's later rows wait behind it"
            );
            report.held += (group.len() - offset) as u64;
            new_holds.push(NewHold {
                dest: dest.clone(),
                failures,
                delay_ms: i64::try_from(delay.as_millis()).unwrap_or(i64::MAX),
                seq: row.seq,
                error: e.to_string(),
            });
            report.refusals.push(Refusal {
                seq: row.seq,
                id: row.id.clone(),
                destination: describe(&dest),
                failures: u32::try_from(failures).unwrap_or(u32::MAX),
                retry_in: delay,
                error: e,
            });
            refused.insert(dest);
        } else if offset == group.len() && held.contains_key(&dest) {
            cleared.push(dest);
        }
    }

    if !done.is_empty() {
        bounded(
            t,
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "DELETE FROM {outbox} WHERE seq = ANY($1)"
            )))
            .bind(&done)
            .execute(&mut *tx),
        )
        .await?
        .ctx("cannot delete forwarded outbox rows")?;
    }
    if !cleared.is_empty() {
        bounded(
            t,
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "DELETE FROM {holds_table} WHERE dest = ANY($1)"
            )))
            .bind(&cleared)
            .execute(&mut *tx),
        )
        .await?
        .ctx("cannot clear outbox holds")?;
    }
    for h in &new_holds {
        let now = format!("{}.now_ms()", crate::outbox::quote(plan.schema));
        bounded(
            t,
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "INSERT INTO {holds_table} (dest, failures, until_ms, seq, last_error, first_failed_at) \
                 VALUES ($1, $2, {now} + $3, $4, $5, {now}) \
                 ON CONFLICT (dest) DO UPDATE SET failures = EXCLUDED.failures, \
                 until_ms = EXCLUDED.until_ms, seq = EXCLUDED.seq, last_error = EXCLUDED.last_error"
            )))
            .bind(&h.dest)
            .bind(h.failures)
            .bind(h.delay_ms)
            .bind(h.seq)
            .bind(&h.error)
            .execute(&mut *tx),
        )
        .await?
        .ctx("cannot record an outbox hold")?;
    }
    bounded(t, tx.commit()).await?.map_err(|e| {
        from_sqlx(
            "cannot commit a relay round (its rows will be forwarded again, with the same ids)",
            e,
        )
    })?;
    report.elapsed = started.elapsed();
    Ok(report)
}

/// Sends or publishes one batch; returns how many the target already had.
async fn forward(plan: &Plan<'_>, destination: &Destination, batch: Vec<Message>) -> Result<u64> {
    let call = async {
        match destination {
            Destination::Queue(q) => plan
                .target
                .send(q, batch)
                .await
                .map(|r| r.duplicates.len() as u64),
            Destination::Topic { topic, route_key } => plan
                .target
                .publish(topic, route_key, batch)
                .await
                .map(|r| r.duplicates),
        }
    };
    match tokio::time::timeout(plan.target_timeout, call).await {
        Ok(r) => r,
        Err(_) => Err(Error::new(
            ferry_core::ErrorKind::Indeterminate,
            format!(
                "the target did not answer within {:?}; the rows stay and are forwarded again with the same ids",
                plan.target_timeout
            ),
        )),
    }
}

/// A destination key (`q:NAME`, `t:TOPIC:KEY`) as words for logs.
pub(crate) fn describe(dest: &str) -> String {
    match dest.split_once(':') {
        Some(("q", q)) => format!("queue {q}"),
        Some(("t", rest)) => match rest.split_once(':') {
            Some((t, k)) => format!("topic {t} (route key {k})"),
            None => dest.to_string(),
        },
        _ => dest.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn described() {
        assert_eq!(describe("q:orders"), "queue orders");
        assert_eq!(
            describe("t:shop:order.created"),
            "topic shop (route key order.created)"
        );
        assert_eq!(describe("x"), "x");
    }
}
