//! Message history: every lifecycle event of a message (sent, delivered, retried,
//! released, lease expired, dead-lettered, requeued, deleted, acked), kept for the
//! configured retention; the same events and details as the embedded backend.
//!
//! Events are appended to the `events` column of the message's own row in the same
//! statement that makes the change, one line each (`[at_ms, "event", attempt,
//! detail|null]`, written by the SQL function `event_line`). A dead-letter move carries
//! them along; an ack or a dead-letter delete moves them into one `history` row, which
//! is pruned once it is older than the retention. Reading the history of an id looks in
//! all three tables.

use ferry_core::time::{duration_millis, from_millis};
use ferry_core::{Error, HistoryEvent, QueueName, Result};
use sqlx::PgPool;

use crate::driver::{Op, PostgresDriver};
use crate::error::Context;

/// The events of message `id` in `queue`, oldest first: finished lifecycles, then dead
/// letters, then the live message.
pub(crate) async fn events(
    pool: &PgPool,
    queue: &QueueName,
    id: &str,
) -> Result<Vec<HistoryEvent>> {
    let qid: Option<i64> = sqlx::query_scalar("SELECT qid FROM queues WHERE name = $1")
        .bind(queue.as_str())
        .fetch_optional(pool)
        .await
        .ctx("cannot read history")?;
    let qid = qid.ok_or_else(|| Error::queue_not_found(queue.as_str()))?;
    let texts: Vec<String> = sqlx::query_scalar(
        "SELECT events FROM (
           SELECT 1 AS part, seq, events FROM history WHERE qid = $1 AND id = $2
           UNION ALL
           SELECT 2, seq, events FROM dead_letters WHERE qid = $1 AND id = $2
           UNION ALL
           SELECT 3, seq, events FROM messages WHERE qid = $1 AND id = $2
         ) AS e ORDER BY part, seq",
    )
    .bind(qid)
    .bind(id)
    .fetch_all(pool)
    .await
    .ctx("cannot read history")?;
    let mut out = Vec::new();
    for text in &texts {
        parse(text, &mut out);
    }
    // Stable: events of one instant keep the order they were written in.
    out.sort_by_key(|e| e.at);
    Ok(out)
}

fn parse(text: &str, out: &mut Vec<HistoryEvent>) {
    for line in text.lines().filter(|l| !l.is_empty()) {
        // A line that does not parse is skipped rather than hiding the rest.
        if let Ok((at, event, attempt, detail)) =
            serde_json::from_str::<(i64, String, i64, Option<String>)>(line)
        {
            out.push(HistoryEvent::new(
                from_millis(at),
                event,
                u32::try_from(attempt).unwrap_or(0),
                detail,
            ));
        }
    }
}

/// Deletes finished histories older than the retention, at most once a minute per
/// driver and 1,000 rows at a time, after a receive. Failures are logged, not
/// returned: pruning is housekeeping and must not fail a receive that succeeded.
pub(crate) async fn maybe_prune(driver: &PostgresDriver) {
    let Some(retention) = driver.config().history else {
        return;
    };
    if !driver.take_prune_turn() {
        return;
    }
    let result = driver
        .bounded(Op::Plain, async {
            sqlx::query(
                "DELETE FROM history WHERE seq IN
                   (SELECT seq FROM history WHERE at < now_ms() - $1 ORDER BY at LIMIT 1000)",
            )
            .bind(duration_millis(retention))
            .execute(driver.pool())
            .await
            .ctx("cannot prune message history")
        })
        .await;
    if let Err(e) = result {
        tracing::warn!(error = %e, "pruning message history failed");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_lines_of_event_line() {
        let mut out = Vec::new();
        parse(
            "[1, \"sent\", 0, null]\n[2, \"retried\", 1, \"boom\"]\ngarbage\n",
            &mut out,
        );
        assert_eq!(out.len(), 2);
        assert_eq!(out[1].event, "retried");
        assert_eq!(out[1].detail.as_deref(), Some("boom"));
    }
}
