//! The PostgreSQL [`IdempotencyStore`]: claims and completions in the schema's
//! `idempotency` table, as durable as the messages and shared by every process.
//!
//! A claim reads the key's row `FOR UPDATE` (or inserts it), so two workers claiming
//! one key at once are serialized by the row lock: one acquires, the other sees it
//! busy. Extend, complete and release are single statements fenced by the claim's
//! token. Times are the server's clock.

use std::time::Duration;

use async_trait::async_trait;
use ferry_core::time::{duration_millis, from_millis};
use ferry_core::{Claim, ClaimToken, Error, ErrorKind, IdempotencyStore, Result};
use sqlx::PgConnection;

use crate::driver::{Op, PostgresDriver};
use crate::error::Context;

/// A lease or retention in milliseconds, capped at 100 years so adding it to the
/// server's clock never overflows a `BIGINT`.
fn span(d: Duration) -> i64 {
    duration_millis(d).min(100 * 365 * 86_400_000)
}

const IN_PROGRESS: i16 = 1;
const DONE: i16 = 2;

/// An [`IdempotencyStore`] in a ferry PostgreSQL schema; get one from
/// [`PostgresDriver::idempotency`] (or `Driver::idempotency_store`).
///
/// ```no_run
/// # async fn demo() -> ferry_core::Result<()> {
/// use std::time::Duration;
/// use ferry_core::{Claim, IdempotencyStore};
/// let driver = ferry_postgres::PostgresDriver::connect("postgres://postgres@127.0.0.1/app").await?;
/// let store = driver.idempotency();
/// if let Claim::Acquired(t) = store.claim("orders/7", Duration::from_secs(30)).await? {
///     store.complete("orders/7", t, Duration::from_secs(3600)).await?;
/// }
/// assert_eq!(store.claim("orders/7", Duration::from_secs(30)).await?, Claim::Done);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct PostgresIdempotencyStore {
    driver: PostgresDriver,
}

impl PostgresIdempotencyStore {
    pub(crate) fn new(driver: PostgresDriver) -> Self {
        PostgresIdempotencyStore { driver }
    }
}

fn lost(key: &str) -> Error {
    Error::new(
        ErrorKind::StaleReceipt,
        format!("idempotency claim on '{key}' expired and was taken by another worker"),
    )
}

async fn claim(conn: &mut PgConnection, key: &str, lease: Duration) -> Result<Claim> {
    let lease = span(lease).max(1);
    // Forget done keys past their retention, a bounded slice now and then.
    if fastrand::u8(..) == 0 {
        sqlx::query(
            "DELETE FROM idempotency WHERE key IN
               (SELECT key FROM idempotency WHERE state = 2 AND expires_at < now_ms() LIMIT 1000)",
        )
        .execute(&mut *conn)
        .await
        .ctx("cannot expire idempotency keys")?;
    }
    let token = fastrand::i64(1..);
    // A fresh key: the insert wins (or waits for a concurrent claimer, then loses).
    let inserted = sqlx::query(
        "INSERT INTO idempotency (key, state, token, expires_at)
         VALUES ($1, 1, $2, now_ms() + $3) ON CONFLICT (key) DO NOTHING",
    )
    .bind(key)
    .bind(token)
    .bind(lease)
    .execute(&mut *conn)
    .await
    .ctx("cannot claim idempotency key")?
    .rows_affected();
    if inserted > 0 {
        return Ok(Claim::Acquired(ClaimToken(token)));
    }
    let (state, expires, now): (i16, i64, i64) = sqlx::query_as(
        "SELECT state, expires_at, now_ms() FROM idempotency WHERE key = $1 FOR UPDATE",
    )
    .bind(key)
    .fetch_optional(&mut *conn)
    .await
    .ctx("cannot read idempotency key")?
    .ok_or_else(|| {
        // Released between the insert and the read: the caller tries again.
        Error::new(
            ErrorKind::Unavailable,
            format!("idempotency key '{key}' changed while being claimed; try again"),
        )
    })?;
    let claim = match state {
        DONE if expires > now => return Ok(Claim::Done),
        IN_PROGRESS if expires > now => {
            return Ok(Claim::Busy {
                until: from_millis(expires),
            });
        }
        IN_PROGRESS => Claim::Suspect(ClaimToken(token)),
        _ => Claim::Acquired(ClaimToken(token)),
    };
    sqlx::query(
        "UPDATE idempotency SET state = 1, token = $2, expires_at = now_ms() + $3 WHERE key = $1",
    )
    .bind(key)
    .bind(token)
    .bind(lease)
    .execute(&mut *conn)
    .await
    .ctx("cannot claim idempotency key")?;
    Ok(claim)
}

#[async_trait]
impl IdempotencyStore for PostgresIdempotencyStore {
    async fn claim(&self, key: &str, lease: Duration) -> Result<Claim> {
        let key = key.to_string();
        self.driver
            .in_tx(Op::Plain, "claim idempotency key", move |c| {
                Box::pin(async move { claim(c, &key, lease).await })
            })
            .await
    }

    async fn extend(&self, key: &str, token: ClaimToken, lease: Duration) -> Result<()> {
        self.driver
            .bounded(Op::Plain, async {
                let n = sqlx::query(
                    "UPDATE idempotency SET expires_at = now_ms() + $3
                     WHERE key = $1 AND token = $2 AND state = 1",
                )
                .bind(key)
                .bind(token.0)
                .bind(span(lease).max(1))
                .execute(self.driver.pool())
                .await
                .ctx("cannot extend idempotency claim")?
                .rows_affected();
                if n == 0 { Err(lost(key)) } else { Ok(()) }
            })
            .await
    }

    async fn complete(&self, key: &str, token: ClaimToken, retention: Duration) -> Result<()> {
        self.driver
            .bounded(Op::Plain, async {
                let n = sqlx::query(
                    "UPDATE idempotency SET state = 2, expires_at = now_ms() + $3
                     WHERE key = $1 AND token = $2 AND state = 1",
                )
                .bind(key)
                .bind(token.0)
                .bind(span(retention))
                .execute(self.driver.pool())
                .await
                .ctx("cannot complete idempotency claim")?
                .rows_affected();
                if n == 0 { Err(lost(key)) } else { Ok(()) }
            })
            .await
    }

    async fn release(&self, key: &str, token: ClaimToken) -> Result<()> {
        self.driver
            .bounded(Op::Plain, async {
                sqlx::query("DELETE FROM idempotency WHERE key = $1 AND token = $2 AND state = 1")
                    .bind(key)
                    .bind(token.0)
                    .execute(self.driver.pool())
                    .await
                    .ctx("cannot release idempotency claim")?;
                Ok(())
            })
            .await
    }
}
