//! The embedded [`TxStore`]: prepared two-phase messages in the data file (table
//! `tx_prepared`, format 3), written through the same group-commit writer as the
//! messages, so a prepare is as durable as a send and every process using the
//! directory shares the records. Claims are single SQLite write transactions, so
//! concurrent checkers (threads or processes) get disjoint records.

use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use ferry_core::time::{duration_millis, from_millis, now_millis, to_millis};
use ferry_core::tx::{
    Claimed, Destination, Prepared, Reschedule, TxState, TxStore, TxToken, already_prepared,
    decode_prepared, encode_prepared, held_elsewhere, not_found, readable,
};
use ferry_core::{Error, Message, Result};
use rusqlite::{Connection, OptionalExtension, Row, params};

use crate::driver::EmbeddedDriver;
use crate::error::Context;

/// Prepared two-phase messages in an embedded data directory; get one from
/// [`EmbeddedDriver::tx_store`].
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// use std::time::Duration;
/// use ferry_core::{Message, QueueName, tx::{Destination, TxStore}};
/// # let dir = tempfile::tempdir().unwrap();
/// let driver = ferry_embedded::EmbeddedDriver::open(dir.path())?;
/// let store = driver.tx_store();
/// let dest = Destination::queue(QueueName::new("orders")?);
/// store.prepare(&dest, &Message::new("x").with_id("order-9"), Duration::from_secs(10)).await?;
/// assert_eq!(store.get("order-9").await?.destination, dest);
/// # Ok::<(), ferry_core::Error>(()) }).unwrap();
/// ```
#[derive(Debug, Clone)]
pub struct EmbeddedTxStore {
    driver: EmbeddedDriver,
}

impl EmbeddedTxStore {
    pub(crate) fn new(driver: EmbeddedDriver) -> Self {
        EmbeddedTxStore { driver }
    }
}

const COLUMNS: &str = "id, body, state, checks, prepared_at, due_at, last_error";

fn later(d: Duration) -> i64 {
    now_millis().saturating_add(duration_millis(d))
}

struct Row7 {
    id: String,
    body: Vec<u8>,
    state: String,
    checks: i64,
    prepared_at: i64,
    due_at: i64,
    last_error: Option<String>,
}

fn row(r: &Row<'_>) -> rusqlite::Result<Row7> {
    Ok(Row7 {
        id: r.get(0)?,
        body: r.get(1)?,
        state: r.get(2)?,
        checks: r.get(3)?,
        prepared_at: r.get(4)?,
        due_at: r.get(5)?,
        last_error: r.get(6)?,
    })
}

fn prepared(r: Row7) -> Result<Prepared> {
    let (destination, message) = decode_prepared(&r.body)
        .map_err(|e| Error::new(e.kind(), format!("prepared message '{}': {e}", r.id)))?;
    let mut p = Prepared::new(destination, message, from_millis(r.due_at));
    p.state = TxState::parse(&r.state)?;
    p.checks = u32::try_from(r.checks).unwrap_or(u32::MAX);
    p.prepared_at = from_millis(r.prepared_at);
    p.last_error = r.last_error;
    Ok(p)
}

/// Updates the record if `token` holds it; tells a fenced record from a missing one.
fn fenced_update(c: &Connection, id: &str, sql: &str, values: impl rusqlite::Params) -> Result<()> {
    let n = c
        .prepare_cached(sql)
        .ctx("cannot update a prepared message")?
        .execute(values)
        .ctx("cannot update a prepared message")?;
    if n > 0 {
        return Ok(());
    }
    let exists = c
        .prepare_cached("SELECT 1 FROM tx_prepared WHERE id = ?1")
        .ctx("cannot read a prepared message")?
        .query_row([id], |_| Ok(()))
        .optional()
        .ctx("cannot read a prepared message")?
        .is_some();
    Err(if exists {
        held_elsewhere(id)
    } else {
        not_found(id)
    })
}

fn claim(c: &Connection, max: usize, lease: Duration) -> Result<Vec<Claimed>> {
    let now = now_millis();
    let limit = i64::try_from(max).unwrap_or(i64::MAX);
    let rows: Vec<Row7> = c
        .prepare_cached(&format!(
            "SELECT {COLUMNS} FROM tx_prepared WHERE due_at <= ?1 ORDER BY due_at, seq LIMIT ?2"
        ))
        .ctx("cannot read due prepared messages")?
        .query_map(params![now, limit], row)
        .ctx("cannot read due prepared messages")?
        .collect::<rusqlite::Result<_>>()
        .ctx("cannot read due prepared messages")?;
    let due = now.saturating_add(duration_millis(lease));
    let mut out = Vec::with_capacity(rows.len());
    for mut r in rows {
        let token = TxToken::random();
        c.prepare_cached("UPDATE tx_prepared SET token = ?2, due_at = ?3 WHERE id = ?1")
            .ctx("cannot claim a prepared message")?
            .execute(params![r.id, token.0, due])
            .ctx("cannot claim a prepared message")?;
        r.due_at = due;
        if let Some(prepared) = readable(prepared(r)) {
            out.push(Claimed { prepared, token });
        }
    }
    Ok(out)
}

#[async_trait]
impl TxStore for EmbeddedTxStore {
    async fn prepare(
        &self,
        destination: &Destination,
        message: &Message,
        hold: Duration,
    ) -> Result<TxToken> {
        let body = encode_prepared(destination, message)?;
        let id = message.id().to_string();
        let token = TxToken::random();
        self.driver
            .write(move |c| {
                let now = now_millis();
                let n = c
                    .prepare_cached(
                        "INSERT INTO tx_prepared
                           (id, body, state, checks, token, prepared_at, due_at, last_error)
                         VALUES (?1, ?2, 'prepared', 0, ?3, ?4, ?5, NULL)
                         ON CONFLICT (id) DO NOTHING",
                    )
                    .ctx("cannot prepare a message")?
                    .execute(params![id, body, token.0, now, later(hold)])
                    .ctx("cannot prepare a message")?;
                if n == 0 {
                    return Err(already_prepared(&id));
                }
                Ok(token)
            })
            .await
    }

    async fn hold(&self, id: &str, token: TxToken, hold: Duration) -> Result<()> {
        let id = id.to_string();
        self.driver
            .write(move |c| {
                fenced_update(
                    c,
                    &id,
                    "UPDATE tx_prepared SET due_at = ?3 WHERE id = ?1 AND token = ?2",
                    params![id, token.0, later(hold)],
                )
            })
            .await
    }

    async fn mark_committed(
        &self,
        destination: &Destination,
        message: &Message,
        retry_at: SystemTime,
        error: &str,
    ) -> Result<()> {
        let body = encode_prepared(destination, message)?;
        let (id, error) = (message.id().to_string(), error.to_string());
        self.driver
            .write(move |c| {
                c.prepare_cached(
                    "INSERT INTO tx_prepared
                       (id, body, state, checks, token, prepared_at, due_at, last_error)
                     VALUES (?1, ?2, 'committed', 0, ?3, ?4, ?5, ?6)
                     ON CONFLICT (id) DO UPDATE SET state = 'committed', token = ?3,
                       due_at = ?5, last_error = ?6",
                )
                .ctx("cannot mark a prepared message committed")?
                .execute(params![
                    id,
                    body,
                    TxToken::random().0,
                    now_millis(),
                    to_millis(retry_at),
                    error
                ])
                .ctx("cannot mark a prepared message committed")?;
                Ok(())
            })
            .await
    }

    async fn remove_claimed(&self, id: &str, token: TxToken) -> Result<()> {
        let id = id.to_string();
        self.driver
            .write(move |c| {
                fenced_update(
                    c,
                    &id,
                    "DELETE FROM tx_prepared WHERE id = ?1 AND token = ?2",
                    params![id, token.0],
                )
            })
            .await
    }

    async fn remove(&self, id: &str) -> Result<bool> {
        let id = id.to_string();
        self.driver
            .write(move |c| {
                let n = c
                    .prepare_cached("DELETE FROM tx_prepared WHERE id = ?1")
                    .ctx("cannot remove a prepared message")?
                    .execute([id])
                    .ctx("cannot remove a prepared message")?;
                Ok(n > 0)
            })
            .await
    }

    async fn claim_due(&self, max: usize, lease: Duration) -> Result<Vec<Claimed>> {
        self.driver.write(move |c| claim(c, max, lease)).await
    }

    async fn reschedule(&self, id: &str, token: TxToken, update: Reschedule) -> Result<()> {
        let id = id.to_string();
        self.driver
            .write(move |c| {
                fenced_update(
                    c,
                    &id,
                    "UPDATE tx_prepared SET state = ?3, checks = ?4, due_at = ?5, last_error = ?6
                     WHERE id = ?1 AND token = ?2",
                    params![
                        id,
                        token.0,
                        update.state.as_str(),
                        update.checks,
                        to_millis(update.due_at),
                        update.error
                    ],
                )
            })
            .await
    }

    async fn get(&self, id: &str) -> Result<Prepared> {
        let id = id.to_string();
        self.driver
            .read(move |c| {
                let found = c
                    .prepare_cached(&format!("SELECT {COLUMNS} FROM tx_prepared WHERE id = ?1"))
                    .ctx("cannot read a prepared message")?
                    .query_row([&id], row)
                    .optional()
                    .ctx("cannot read a prepared message")?;
                found.map(prepared).unwrap_or_else(|| Err(not_found(&id)))
            })
            .await
    }

    async fn list(&self, offset: u64, limit: u64) -> Result<Vec<Prepared>> {
        let offset = i64::try_from(offset).unwrap_or(i64::MAX);
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.driver
            .read(move |c| {
                let rows: Vec<Row7> = c
                    .prepare_cached(&format!(
                        "SELECT {COLUMNS} FROM tx_prepared ORDER BY seq LIMIT ?1 OFFSET ?2"
                    ))
                    .ctx("cannot list prepared messages")?
                    .query_map(params![limit, offset], row)
                    .ctx("cannot list prepared messages")?
                    .collect::<rusqlite::Result<_>>()
                    .ctx("cannot list prepared messages")?;
                Ok(rows
                    .into_iter()
                    .filter_map(|r| readable(prepared(r)))
                    .collect())
            })
            .await
    }

    async fn count(&self) -> Result<u64> {
        self.driver
            .read(|c| {
                let n: i64 = c
                    .prepare_cached("SELECT count(*) FROM tx_prepared")
                    .ctx("cannot count prepared messages")?
                    .query_row([], |r| r.get(0))
                    .ctx("cannot count prepared messages")?;
                Ok(u64::try_from(n).unwrap_or(0))
            })
            .await
    }
}
