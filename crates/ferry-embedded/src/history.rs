//! Message history: every lifecycle event of a message (sent, delivered, retried,
//! released, dead-lettered, requeued, acked, lease expired), written in the same
//! transaction as the change it records, kept for a retention period.
//!
//! Recording is optional (`EmbeddedOptions::history`): its cost is one small row per
//! event in a table with one secondary index; `docs/benchmarks.md` has the measurement.

use ferry_core::time::{duration_millis, from_millis};
use ferry_core::{Error, HistoryEvent};
use rusqlite::{Connection, params};

use crate::error::Context;

type Result<T> = std::result::Result<T, Error>;

/// Records `event` for the live message at `seq`, with its current attempt count.
pub(crate) fn record_seq(
    conn: &Connection,
    seq: i64,
    event: &str,
    detail: Option<&str>,
    now: i64,
) -> Result<()> {
    conn.prepare_cached(
        "INSERT INTO history (qid, id, at, event, attempt, detail)
         SELECT qid, id, ?2, ?3, attempts, ?4 FROM messages WHERE seq = ?1",
    )
    .ctx("cannot record history")?
    .execute(params![seq, now, event, detail])
    .ctx("cannot record history")?;
    Ok(())
}

/// Records `event` for message `id` of queue `qid`.
pub(crate) fn record(
    conn: &Connection,
    qid: i64,
    id: &str,
    event: &str,
    attempt: i64,
    detail: Option<&str>,
    now: i64,
) -> Result<()> {
    conn.prepare_cached(
        "INSERT INTO history (qid, id, at, event, attempt, detail) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )
    .ctx("cannot record history")?
    .execute(params![qid, id, now, event, attempt, detail])
    .ctx("cannot record history")?;
    Ok(())
}

/// Deletes up to 1,000 events older than `retention`. Rows are appended in time order,
/// so the expired ones are the lowest `seq`s: no index on time is needed.
pub(crate) fn prune(conn: &Connection, retention: std::time::Duration, now: i64) -> Result<()> {
    let cutoff = now.saturating_sub(duration_millis(retention));
    conn.prepare_cached(
        "DELETE FROM history WHERE seq IN
           (SELECT seq FROM history WHERE at < ?1 ORDER BY seq LIMIT 1000)",
    )
    .ctx("cannot prune history")?
    .execute([cutoff])
    .ctx("cannot prune history")?;
    Ok(())
}

/// The events of message `id` in queue `qid`, oldest first.
pub(crate) fn events(conn: &Connection, qid: i64, id: &str) -> Result<Vec<HistoryEvent>> {
    let mut stmt = conn
        .prepare_cached(
            "SELECT at, event, attempt, detail FROM history WHERE qid = ?1 AND id = ?2 ORDER BY seq",
        )
        .ctx("cannot read history")?;
    let rows = stmt
        .query_map(params![qid, id], |r| {
            Ok(HistoryEvent::new(
                from_millis(r.get(0)?),
                r.get::<_, String>(1)?,
                u32::try_from(r.get::<_, i64>(2)?).unwrap_or(0),
                r.get(3)?,
            ))
        })
        .ctx("cannot read history")?;
    rows.collect::<std::result::Result<_, _>>()
        .ctx("cannot read history")
}

/// Records `event` for the message at `seq` only if it still carries lease `token`
/// (so a stale settle records nothing).
pub(crate) fn record_fenced(
    conn: &Connection,
    seq: i64,
    token: i64,
    event: &str,
    detail: Option<&str>,
    now: i64,
) -> Result<()> {
    conn.prepare_cached(
        "INSERT INTO history (qid, id, at, event, attempt, detail)
         SELECT qid, id, ?3, ?4, attempts, ?5 FROM messages WHERE seq = ?1 AND lease_token = ?2",
    )
    .ctx("cannot record history")?
    .execute(params![seq, token, now, event, detail])
    .ctx("cannot record history")?;
    Ok(())
}
