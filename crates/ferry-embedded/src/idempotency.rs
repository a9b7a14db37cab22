//! The embedded [`IdempotencyStore`]: claims and completions in the data file, written
//! through the same group-commit writer as the messages, so they are as durable as
//! the messages and shared by every process using the directory.

use std::time::Duration;

use async_trait::async_trait;
use ferry_core::time::{duration_millis, from_millis, now_millis};
use ferry_core::{Claim, ClaimToken, Error, ErrorKind, IdempotencyStore, Result};
use rusqlite::{Connection, OptionalExtension, params};

use crate::driver::EmbeddedDriver;
use crate::error::Context;

const IN_PROGRESS: i64 = 1;
const DONE: i64 = 2;

/// An [`IdempotencyStore`] in an embedded data directory; get one from
/// [`EmbeddedDriver::idempotency`] (or `Driver::idempotency_store`).
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// use std::time::Duration;
/// use ferry_core::{Claim, IdempotencyStore};
/// # let dir = tempfile::tempdir().unwrap();
/// let driver = ferry_embedded::EmbeddedDriver::open(dir.path())?;
/// let store = driver.idempotency();
/// let Claim::Acquired(t) = store.claim("orders/7", Duration::from_secs(30)).await? else { panic!() };
/// store.complete("orders/7", t, Duration::from_secs(3600)).await?;
/// assert_eq!(store.claim("orders/7", Duration::from_secs(30)).await?, Claim::Done);
/// # Ok::<(), ferry_core::Error>(()) }).unwrap();
/// ```
#[derive(Debug, Clone)]
pub struct EmbeddedIdempotencyStore {
    driver: EmbeddedDriver,
}

impl EmbeddedIdempotencyStore {
    pub(crate) fn new(driver: EmbeddedDriver) -> Self {
        EmbeddedIdempotencyStore { driver }
    }
}

fn lost(key: &str) -> Error {
    Error::new(
        ErrorKind::StaleReceipt,
        format!("idempotency claim on '{key}' expired and was taken by another worker"),
    )
}

fn claim(conn: &Connection, key: &str, lease: Duration) -> Result<Claim> {
    let now = now_millis();
    // Forget done keys past their retention, a bounded slice at a time.
    if fastrand::u8(..) == 0 {
        conn.prepare_cached(
            "DELETE FROM idempotency WHERE key IN
               (SELECT key FROM idempotency WHERE state = 2 AND expires_at < ?1 LIMIT 1000)",
        )
        .ctx("cannot expire idempotency keys")?
        .execute([now])
        .ctx("cannot expire idempotency keys")?;
    }
    let found: Option<(i64, i64)> = conn
        .prepare_cached("SELECT state, expires_at FROM idempotency WHERE key = ?1")
        .ctx("cannot read idempotency key")?
        .query_row([key], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()
        .ctx("cannot read idempotency key")?;
    let token = fastrand::i64(1..);
    let claim = match found {
        Some((DONE, expires)) if expires > now => return Ok(Claim::Done),
        Some((IN_PROGRESS, expires)) if expires > now => {
            return Ok(Claim::Busy {
                until: from_millis(expires),
            });
        }
        Some((IN_PROGRESS, _)) => Claim::Suspect(ClaimToken(token)),
        _ => Claim::Acquired(ClaimToken(token)),
    };
    conn.prepare_cached(
        "INSERT INTO idempotency (key, state, token, expires_at) VALUES (?1, 1, ?2, ?3)
         ON CONFLICT (key) DO UPDATE SET state = 1, token = ?2, expires_at = ?3",
    )
    .ctx("cannot claim idempotency key")?
    .execute(params![
        key,
        token,
        now.saturating_add(duration_millis(lease))
    ])
    .ctx("cannot claim idempotency key")?;
    Ok(claim)
}

#[async_trait]
impl IdempotencyStore for EmbeddedIdempotencyStore {
    async fn claim(&self, key: &str, lease: Duration) -> Result<Claim> {
        let key = key.to_string();
        self.driver.write(move |c| claim(c, &key, lease)).await
    }

    async fn extend(&self, key: &str, token: ClaimToken, lease: Duration) -> Result<()> {
        let key = key.to_string();
        self.driver
            .write(move |c| {
                let n = c
                    .prepare_cached(
                        "UPDATE idempotency SET expires_at = ?3
                         WHERE key = ?1 AND token = ?2 AND state = 1",
                    )
                    .ctx("cannot extend idempotency claim")?
                    .execute(params![
                        key,
                        token.0,
                        now_millis().saturating_add(duration_millis(lease))
                    ])
                    .ctx("cannot extend idempotency claim")?;
                if n == 0 { Err(lost(&key)) } else { Ok(()) }
            })
            .await
    }

    async fn complete(&self, key: &str, token: ClaimToken, retention: Duration) -> Result<()> {
        let key = key.to_string();
        let until = ferry_core::time::to_millis(ferry_core::time::after(retention));
        self.driver
            .write(move |c| {
                let n = c
                    .prepare_cached(
                        "UPDATE idempotency SET state = 2, expires_at = ?3
                         WHERE key = ?1 AND token = ?2 AND state = 1",
                    )
                    .ctx("cannot complete idempotency claim")?
                    .execute(params![key, token.0, until])
                    .ctx("cannot complete idempotency claim")?;
                if n == 0 { Err(lost(&key)) } else { Ok(()) }
            })
            .await
    }

    async fn release(&self, key: &str, token: ClaimToken) -> Result<()> {
        let key = key.to_string();
        self.driver
            .write(move |c| {
                c.prepare_cached(
                    "DELETE FROM idempotency WHERE key = ?1 AND token = ?2 AND state = 1",
                )
                .ctx("cannot release idempotency claim")?
                .execute(params![key, token.0])
                .ctx("cannot release idempotency claim")?;
                Ok(())
            })
            .await
    }
}
