//! Message history: every lifecycle event of a message (sent, delivered, retried,
//! released, lease expired, dead-lettered, requeued, deleted, acked), kept for a
//! retention period.
//!
//! Events are appended to an `events` column of the message's own row, in the same
//! UPDATE that makes the change, so recording costs a few bytes in a row that is being
//! written anyway, and no index entry. An acked message stays as a *done* row (state 3,
//! payload dropped) until the retention passes, and is then deleted in bulk; sending
//! the same id again reuses the row and keeps appending. A deleted dead letter moves
//! its events into one `history` row. Reading the history of an id looks in all three
//! places. (The first design wrote one `history` row per event and cost 40–50% of
//! throughput; see ARCHITECTURE.md.)
//!
//! Each event is one line: a JSON array `[at_ms, "event", attempt, detail|null]`.

use ferry_core::time::{duration_millis, from_millis};
use ferry_core::{Error, HistoryEvent};
use rusqlite::{Connection, params};

use crate::error::Context;

type Result<T> = std::result::Result<T, Error>;

/// One event line, as SQL's `json_array(...) || char(10)` writes it.
pub(crate) fn line(at: i64, event: &str, attempt: i64, detail: Option<&str>) -> String {
    let mut s = serde_json::to_string(&(at, event, attempt, detail)).unwrap_or_default();
    s.push('\n');
    s
}

/// Deletes up to 1,000 done messages of queue `qid` and 1,000 finished histories
/// older than `retention`. Done rows are found through the lane index (state 3, lane
/// 0, by done time); history rows are appended in time order, so the expired ones are
/// the lowest `seq`s: no extra index is needed for either.
pub(crate) fn prune(
    conn: &Connection,
    qid: i64,
    retention: std::time::Duration,
    now: i64,
    limit: i64,
) -> Result<()> {
    let cutoff = now.saturating_sub(duration_millis(retention));
    conn.prepare_cached(
        "DELETE FROM messages WHERE seq IN
           (SELECT seq FROM messages WHERE qid = ?1 AND state = 3 AND lane = 0 AND avail_at < ?2
            LIMIT ?3)",
    )
    .ctx("cannot prune history")?
    .execute(params![qid, cutoff, limit])
    .ctx("cannot prune history")?;
    conn.prepare_cached(
        "DELETE FROM history WHERE seq IN
           (SELECT seq FROM history WHERE at < ?1 ORDER BY seq LIMIT ?2)",
    )
    .ctx("cannot prune history")?
    .execute(params![cutoff, limit])
    .ctx("cannot prune history")?;
    Ok(())
}

fn parse(text: &str, out: &mut Vec<HistoryEvent>) {
    for l in text.lines().filter(|l| !l.is_empty()) {
        // A line that does not parse (damage) is skipped rather than hiding the rest.
        if let Ok((at, event, attempt, detail)) =
            serde_json::from_str::<(i64, String, i64, Option<String>)>(l)
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

/// The events of message `id` in queue `qid`, oldest first: finished lifecycles, then
/// dead letters, then the live message.
pub(crate) fn events(conn: &Connection, qid: i64, id: &str) -> Result<Vec<HistoryEvent>> {
    let mut out = Vec::new();
    for sql in [
        "SELECT events FROM history WHERE qid = ?1 AND id = ?2 ORDER BY seq",
        "SELECT events FROM dead_letters WHERE qid = ?1 AND id = ?2 ORDER BY seq",
        "SELECT events FROM messages WHERE qid = ?1 AND id = ?2",
    ] {
        let mut stmt = conn.prepare_cached(sql).ctx("cannot read history")?;
        let rows = stmt
            .query_map(params![qid, id], |r| r.get::<_, String>(0))
            .ctx("cannot read history")?;
        for text in rows {
            parse(&text.ctx("cannot read history")?, &mut out);
        }
    }
    out.sort_by_key(|e| e.at);
    Ok(out)
}
