//! The PostgreSQL [`TxStore`]: prepared two-phase messages in the schema's
//! `tx_prepared` table (migration 0002), as durable as a commit and shared by every
//! process. A claim is one statement (`UPDATE … WHERE seq IN (SELECT … FOR UPDATE SKIP
//! LOCKED)`), so concurrent checkers get disjoint records without waiting on each
//! other. Times are the server's clock.

use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use ferry_core::time::{duration_millis, from_millis};
use ferry_core::tx::{
    Claimed, Destination, Prepared, Reschedule, TxState, TxStore, TxToken, already_prepared,
    decode_prepared, encode_prepared, held_elsewhere, not_found, readable,
};
use ferry_core::{Error, ErrorKind, Message, Result};
use sqlx::postgres::PgRow;
use sqlx::{PgPool, Row};

use crate::driver::{Op, PostgresDriver};
use crate::error::Context;

/// Prepared two-phase messages in a ferry PostgreSQL schema; get one from
/// [`PostgresDriver::tx_store`] (or `Driver::tx_store`).
///
/// ```no_run
/// # async fn demo() -> ferry_core::Result<()> {
/// use std::time::Duration;
/// use ferry_core::{Message, QueueName, tx::{Destination, TxStore}};
/// let driver = ferry_postgres::PostgresDriver::connect("postgres://postgres@127.0.0.1/app").await?;
/// let store = driver.tx_store();
/// let dest = Destination::queue(QueueName::new("orders")?);
/// store.prepare(&dest, &Message::new("x").with_id("order-9"), Duration::from_secs(10)).await?;
/// assert_eq!(store.count().await?, 1);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct PostgresTxStore {
    driver: PostgresDriver,
    name: String,
}

/// A span in milliseconds, capped at 100 years so `now_ms() + span` never overflows.
fn span(d: Duration) -> i64 {
    duration_millis(d).min(100 * 365 * 86_400_000)
}

/// Milliseconds from now until `at` (0 if past), so the server's clock decides.
fn until(at: SystemTime) -> i64 {
    span(at.duration_since(SystemTime::now()).unwrap_or_default())
}

const COLUMNS: &str = "id, body, state, checks, prepared_at, due_at, last_error";

fn prepared(row: &PgRow) -> Result<Prepared> {
    let read = |e: sqlx::Error| {
        Error::new(ErrorKind::Corrupt, "unreadable prepared message row").with_source(e)
    };
    let id: String = row.try_get("id").map_err(read)?;
    let body: Vec<u8> = row.try_get("body").map_err(read)?;
    let (destination, message) = decode_prepared(&body)
        .map_err(|e| Error::new(e.kind(), format!("prepared message '{id}': {e}")))?;
    let mut p = Prepared::new(
        destination,
        message,
        from_millis(row.try_get("due_at").map_err(read)?),
    );
    p.state = TxState::parse(row.try_get("state").map_err(read)?)?;
    p.checks = u32::try_from(row.try_get::<i32, _>("checks").map_err(read)?).unwrap_or(0);
    p.prepared_at = from_millis(row.try_get("prepared_at").map_err(read)?);
    p.last_error = row.try_get("last_error").map_err(read)?;
    Ok(p)
}

impl PostgresTxStore {
    pub(crate) fn new(driver: PostgresDriver, name: &str) -> Result<Self> {
        ferry_core::tx::validate_store_name(name)?;
        Ok(PostgresTxStore {
            driver,
            name: name.to_string(),
        })
    }

    fn pool(&self) -> &PgPool {
        self.driver.pool()
    }

    /// Tells a fenced record from a missing one after an update matched no row.
    async fn why_not(&self, id: &str) -> Error {
        let exists = sqlx::query("SELECT 1 FROM tx_prepared WHERE store = $1 AND id = $2")
            .bind(&self.name)
            .bind(id)
            .fetch_optional(self.pool())
            .await;
        match exists {
            Ok(Some(_)) => held_elsewhere(id),
            Ok(None) => not_found(id),
            Err(e) => crate::error::from_sqlx("cannot read a prepared message", e),
        }
    }
}

#[async_trait]
impl TxStore for PostgresTxStore {
    async fn prepare(
        &self,
        destination: &Destination,
        message: &Message,
        hold: Duration,
    ) -> Result<TxToken> {
        let body = encode_prepared(destination, message)?;
        let token = TxToken::random();
        let n = self
            .driver
            .bounded(Op::Enqueue, async {
                sqlx::query(
                    "INSERT INTO tx_prepared (store, id, body, state, token, prepared_at, due_at)
                     VALUES ($1, $2, $3, 'prepared', $4, now_ms(), now_ms() + $5)
                     ON CONFLICT (store, id) DO NOTHING",
                )
                .bind(&self.name)
                .bind(message.id())
                .bind(&body)
                .bind(token.0)
                .bind(span(hold))
                .execute(self.pool())
                .await
                .ctx("cannot prepare a message")
            })
            .await?
            .rows_affected();
        if n == 0 {
            return Err(already_prepared(message.id()));
        }
        Ok(token)
    }

    async fn hold(&self, id: &str, token: TxToken, hold: Duration) -> Result<()> {
        let n = self
            .driver
            .bounded(Op::Plain, async {
                sqlx::query(
                    "UPDATE tx_prepared SET due_at = now_ms() + $4
                     WHERE store = $1 AND id = $2 AND token = $3",
                )
                .bind(&self.name)
                .bind(id)
                .bind(token.0)
                .bind(span(hold))
                .execute(self.pool())
                .await
                .ctx("cannot renew a prepared message's hold")
            })
            .await?
            .rows_affected();
        if n == 0 {
            return Err(self.why_not(id).await);
        }
        Ok(())
    }

    async fn mark_committed(
        &self,
        destination: &Destination,
        message: &Message,
        retry_at: SystemTime,
        error: &str,
    ) -> Result<()> {
        let body = encode_prepared(destination, message)?;
        self.driver
            .bounded(Op::Plain, async {
                sqlx::query(
                    "INSERT INTO tx_prepared (store, id, body, state, token, prepared_at, due_at, last_error)
                     VALUES ($1, $2, $3, 'committed', $4, now_ms(), now_ms() + $5, $6)
                     ON CONFLICT (store, id) DO UPDATE SET state = 'committed',
                       token = EXCLUDED.token, due_at = EXCLUDED.due_at,
                       last_error = EXCLUDED.last_error",
                )
                .bind(&self.name)
                .bind(message.id())
                .bind(&body)
                .bind(TxToken::random().0)
                .bind(until(retry_at))
                .bind(error)
                .execute(self.pool())
                .await
                .ctx("cannot mark a prepared message committed")
            })
            .await
            .map(drop)
    }

    async fn remove_claimed(&self, id: &str, token: TxToken) -> Result<()> {
        let n = self
            .driver
            .bounded(Op::Plain, async {
                sqlx::query("DELETE FROM tx_prepared WHERE store = $1 AND id = $2 AND token = $3")
                    .bind(&self.name)
                    .bind(id)
                    .bind(token.0)
                    .execute(self.pool())
                    .await
                    .ctx("cannot remove a resolved prepared message")
            })
            .await?
            .rows_affected();
        if n == 0 {
            return Err(self.why_not(id).await);
        }
        Ok(())
    }

    async fn remove(&self, id: &str) -> Result<bool> {
        let n = self
            .driver
            .bounded(Op::Plain, async {
                sqlx::query("DELETE FROM tx_prepared WHERE store = $1 AND id = $2")
                    .bind(&self.name)
                    .bind(id)
                    .execute(self.pool())
                    .await
                    .ctx("cannot remove a prepared message")
            })
            .await?
            .rows_affected();
        Ok(n > 0)
    }

    async fn claim_due(&self, max: usize, lease: Duration) -> Result<Vec<Claimed>> {
        let limit = i64::try_from(max).unwrap_or(i64::MAX);
        // One token per claimed row, derived in SQL from a random base and the row's
        // seq, so each claim has its own fence.
        let base = fastrand::i64(1..i64::MAX / 2);
        let sql = format!(
            "UPDATE tx_prepared t SET token = $3 + t.seq, due_at = now_ms() + $4
             FROM (SELECT seq FROM tx_prepared
                   WHERE store = $1 AND due_at <= now_ms()
                   ORDER BY due_at, seq LIMIT $2
                   FOR UPDATE SKIP LOCKED) due
             WHERE t.seq = due.seq
             RETURNING t.token, t.seq, {}",
            COLUMNS
                .split(", ")
                .map(|c| format!("t.{c}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        let rows = self
            .driver
            .bounded(Op::Plain, async {
                sqlx::query(sqlx::AssertSqlSafe(sql))
                    .bind(&self.name)
                    .bind(limit)
                    .bind(base)
                    .bind(span(lease).max(1))
                    .fetch_all(self.pool())
                    .await
                    .ctx("cannot claim prepared messages")
            })
            .await?;
        let mut out: Vec<(i64, Claimed)> = Vec::with_capacity(rows.len());
        for row in &rows {
            let unreadable =
                |e: sqlx::Error| Error::new(ErrorKind::Corrupt, "unreadable claim").with_source(e);
            let token: i64 = row.try_get("token").map_err(unreadable)?;
            let seq: i64 = row.try_get("seq").map_err(unreadable)?;
            if let Some(prepared) = readable(prepared(row)) {
                out.push((
                    seq,
                    Claimed {
                        prepared,
                        token: TxToken(token),
                    },
                ));
            }
        }
        // RETURNING keeps no order; the batch was chosen oldest due first, and among
        // it prepare order is the best order left.
        out.sort_by_key(|(seq, _)| *seq);
        let out: Vec<Claimed> = out.into_iter().map(|(_, c)| c).collect();
        Ok(out)
    }

    async fn reschedule(&self, id: &str, token: TxToken, update: Reschedule) -> Result<()> {
        let n = self
            .driver
            .bounded(Op::Plain, async {
                sqlx::query(
                    "UPDATE tx_prepared
                     SET state = $4, checks = $5, due_at = now_ms() + $6, last_error = $7
                     WHERE store = $1 AND id = $2 AND token = $3",
                )
                .bind(&self.name)
                .bind(id)
                .bind(token.0)
                .bind(update.state.as_str())
                .bind(i32::try_from(update.checks).unwrap_or(i32::MAX))
                .bind(until(update.due_at))
                .bind(update.error)
                .execute(self.pool())
                .await
                .ctx("cannot reschedule a prepared message")
            })
            .await?
            .rows_affected();
        if n == 0 {
            return Err(self.why_not(id).await);
        }
        Ok(())
    }

    async fn get(&self, id: &str) -> Result<Prepared> {
        let sql = format!("SELECT {COLUMNS} FROM tx_prepared WHERE store = $1 AND id = $2");
        let row = self
            .driver
            .bounded(Op::Plain, async {
                sqlx::query(sqlx::AssertSqlSafe(sql))
                    .bind(&self.name)
                    .bind(id)
                    .fetch_optional(self.pool())
                    .await
                    .ctx("cannot read a prepared message")
            })
            .await?;
        row.map(|r| prepared(&r))
            .unwrap_or_else(|| Err(not_found(id)))
    }

    async fn list(&self, offset: u64, limit: u64) -> Result<Vec<Prepared>> {
        let sql = format!(
            "SELECT {COLUMNS} FROM tx_prepared WHERE store = $1 ORDER BY seq LIMIT $2 OFFSET $3"
        );
        let rows = self
            .driver
            .bounded(Op::Plain, async {
                sqlx::query(sqlx::AssertSqlSafe(sql))
                    .bind(&self.name)
                    .bind(i64::try_from(limit).unwrap_or(i64::MAX))
                    .bind(i64::try_from(offset).unwrap_or(i64::MAX))
                    .fetch_all(self.pool())
                    .await
                    .ctx("cannot list prepared messages")
            })
            .await?;
        Ok(rows
            .iter()
            .filter_map(|row| readable(prepared(row)))
            .collect())
    }

    async fn count(&self) -> Result<u64> {
        let n: i64 = self
            .driver
            .bounded(Op::Plain, async {
                sqlx::query_scalar("SELECT count(*) FROM tx_prepared WHERE store = $1")
                    .bind(&self.name)
                    .fetch_one(self.pool())
                    .await
                    .ctx("cannot count prepared messages")
            })
            .await?;
        Ok(u64::try_from(n).unwrap_or(0))
    }
}
