//! The SQL of `stats`: counts by state per queue in one scan of its messages, and when
//! its oldest ready message became ready.
//!
//! A delayed message already due but not promoted yet (no receive ran since) counts as
//! ready, with the end of its delay as the time it became ready.

use ferry_core::time::from_millis;
use ferry_core::{Error, QueueName, QueueStats, Result};
use sqlx::{PgPool, Row};

use crate::error::Context;

/// Stats for `only`, or every queue sorted by name.
pub(crate) async fn stats(pool: &PgPool, only: Option<&QueueName>) -> Result<Vec<QueueStats>> {
    let rows = sqlx::query(
        "WITH t AS (SELECT now_ms() AS now)
         SELECT q.name,
           count(m.seq) FILTER (WHERE m.state = 0 OR (m.state = 1 AND m.avail_at <= t.now)),
           min(m.avail_at) FILTER (WHERE m.state = 0 OR (m.state = 1 AND m.avail_at <= t.now)),
           count(m.seq) FILTER (WHERE m.state = 1 AND m.avail_at > t.now),
           count(m.seq) FILTER (WHERE m.state = 2),
           (SELECT count(*) FROM dead_letters d WHERE d.qid = q.qid)
         FROM queues q CROSS JOIN t LEFT JOIN messages m ON m.qid = q.qid
         WHERE $1::text IS NULL OR q.name = $1
         GROUP BY q.qid, q.name
         ORDER BY q.name COLLATE \"C\"",
    )
    .bind(only.map(QueueName::as_str))
    .fetch_all(pool)
    .await
    .ctx("cannot read stats")?;
    let n = |v: i64| u64::try_from(v).unwrap_or(0);
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        let name: String = r.try_get(0).ctx("cannot read stats")?;
        let ready: i64 = r.try_get(1).ctx("cannot read stats")?;
        let oldest: Option<i64> = r.try_get(2).ctx("cannot read stats")?;
        let delayed: i64 = r.try_get(3).ctx("cannot read stats")?;
        let in_flight: i64 = r.try_get(4).ctx("cannot read stats")?;
        let dead: i64 = r.try_get(5).ctx("cannot read stats")?;
        out.push(
            QueueStats::new(&name, n(ready), n(delayed), n(in_flight), n(dead))
                .with_oldest_ready_at(oldest.map(from_millis)),
        );
    }
    if let Some(q) = only
        && out.is_empty()
    {
        return Err(Error::queue_not_found(q.as_str()));
    }
    Ok(out)
}
