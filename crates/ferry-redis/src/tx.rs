//! The Redis [`TxStore`]: prepared two-phase messages in one hash slot, every operation
//! one Lua script (`lua/tx.lua`) on the server's clock.
//!
//! Keys under the base `{P:tx:G}` (prefix `P`, store name `G`, default `default`): a
//! hash per record (`:r:<id>`: bytes, state, checks, token, prepared-at, last error), a
//! sorted set of due times (`:due`) that claims read with `ZRANGEBYSCORE`, a sorted set
//! of prepare order (`:order`) for listing, and a counter (`:seq`) for tokens. A claim
//! reads and re-times its records inside one script, so concurrent checkers (any
//! process) get disjoint records. Durability is the server's: with `appendfsync
//! always` a prepare survives a Redis crash; with `everysec` the last second may not
//! (see `docs/redis.md`).

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use ferry_core::time::{duration_millis, from_millis};
use ferry_core::tx::{
    Claimed, Destination, Prepared, Reschedule, TxState, TxStore, TxToken, already_prepared,
    decode_prepared, encode_prepared, held_elsewhere, not_found, readable,
};
use ferry_core::{Error, Message, Result};
use redis::{Script, ScriptInvocation, Value};

use crate::connection::Conn;
use crate::reply::{Op, Reader, array, map_err};

/// Prepared two-phase messages kept in Redis. Get one with
/// [`RedisDriver::tx_store`](crate::RedisDriver::tx_store).
///
/// ```no_run
/// # async fn demo() -> ferry_core::Result<()> {
/// use std::time::Duration;
/// use ferry_core::{Message, QueueName, tx::{Destination, TxStore}};
/// let driver = ferry_redis::RedisDriver::connect("redis://127.0.0.1:6379").await?;
/// let store = driver.tx_store();
/// let dest = Destination::queue(QueueName::new("orders")?);
/// store.prepare(&dest, &Message::new("x").with_id("order-9"), Duration::from_secs(10)).await?;
/// assert_eq!(store.count().await?, 1);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct RedisTxStore {
    conn: Conn,
    base: Arc<str>,
    script: Arc<Script>,
}

impl std::fmt::Debug for RedisTxStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisTxStore")
            .field("base", &self.base)
            .finish_non_exhaustive()
    }
}

/// Milliseconds from now until `at` (0 if past), capped at ten years.
fn until(at: SystemTime) -> i64 {
    let d = at.duration_since(SystemTime::now()).unwrap_or_default();
    duration_millis(d).clamp(0, 315_576_000_000)
}

fn hold_ms(d: Duration) -> i64 {
    duration_millis(d).clamp(0, 315_576_000_000)
}

impl RedisTxStore {
    pub(crate) fn new(conn: Conn, prefix: &str, name: &str) -> Result<Self> {
        ferry_core::tx::validate_store_name(name)?;
        Ok(RedisTxStore {
            conn,
            base: Arc::from(format!("{{{prefix}:tx:{name}}}")),
            script: Arc::new(Script::new(include_str!("lua/tx.lua"))),
        })
    }

    /// A call of the script on this store's base key; add the op and its arguments.
    fn call(&self, op: &str) -> ScriptInvocation<'_> {
        let mut invocation = self.script.key(self.base.as_ref());
        invocation.arg(op);
        invocation
    }

    async fn run(&self, invocation: ScriptInvocation<'_>, op: Op, what: &str) -> Result<Value> {
        invocation
            .invoke_async(&mut self.conn.clone())
            .await
            .map_err(|e| map_err(e, op, what))
    }

    async fn status(&self, invocation: ScriptInvocation<'_>, op: Op, what: &str) -> Result<i64> {
        Reader::new(self.run(invocation, op, what).await?)?.int()
    }
}

/// One record as the script returns it: id, body, state, checks, prepared-at, due, err.
fn record(v: Value) -> Result<Prepared> {
    let mut r = Reader::new(v)?;
    let id = r.string()?;
    let body = r.bytes()?;
    let state = TxState::parse(&r.string()?)?;
    let checks = u32::try_from(r.int()?).unwrap_or(u32::MAX);
    let prepared_at = from_millis(r.int()?);
    let due_at = from_millis(r.int()?);
    let err = r.string()?;
    let (destination, message) = decode_prepared(&body)
        .map_err(|e| Error::new(e.kind(), format!("prepared message '{id}': {e}")))?;
    let mut p = Prepared::new(destination, message, due_at);
    p.state = state;
    p.checks = checks;
    p.prepared_at = prepared_at;
    p.last_error = (!err.is_empty()).then_some(err);
    Ok(p)
}

#[async_trait]
impl TxStore for RedisTxStore {
    async fn prepare(
        &self,
        destination: &Destination,
        message: &Message,
        hold: Duration,
    ) -> Result<TxToken> {
        let body = encode_prepared(destination, message)?;
        let mut call = self.call("prepare");
        call.arg(message.id()).arg(body).arg(hold_ms(hold));
        let v = self.run(call, Op::Write, "prepare a message").await?;
        let mut r = Reader::new(v)?;
        match r.int()? {
            -1 => Err(already_prepared(message.id())),
            _ => Ok(TxToken(r.int()?)),
        }
    }

    async fn hold(&self, id: &str, token: TxToken, hold: Duration) -> Result<()> {
        let what = "renew a prepared message's hold";
        let mut call = self.call("hold");
        call.arg(id).arg(token.0).arg(hold_ms(hold));
        match self.status(call, Op::Write, what).await? {
            0 => Ok(()),
            -2 => Err(held_elsewhere(id)),
            _ => Err(not_found(id)),
        }
    }

    async fn mark_committed(
        &self,
        destination: &Destination,
        message: &Message,
        retry_at: SystemTime,
        error: &str,
    ) -> Result<()> {
        let body = encode_prepared(destination, message)?;
        let mut call = self.call("mark");
        call.arg(message.id())
            .arg(body)
            .arg(until(retry_at))
            .arg(error);
        self.status(call, Op::Write, "mark a prepared message committed")
            .await
            .map(drop)
    }

    async fn remove_claimed(&self, id: &str, token: TxToken) -> Result<()> {
        let mut call = self.call("rmclaimed");
        call.arg(id).arg(token.0);
        match self
            .status(call, Op::Write, "remove a resolved prepared message")
            .await?
        {
            0 => Ok(()),
            -2 => Err(held_elsewhere(id)),
            _ => Err(not_found(id)),
        }
    }

    async fn remove(&self, id: &str) -> Result<bool> {
        let mut call = self.call("remove");
        call.arg(id);
        let n = self
            .status(call, Op::Write, "remove a prepared message")
            .await?;
        Ok(n > 0)
    }

    async fn claim_due(&self, max: usize, lease: Duration) -> Result<Vec<Claimed>> {
        let mut call = self.call("claim");
        call.arg(max).arg(hold_ms(lease).max(1));
        let v = self.run(call, Op::Write, "claim prepared messages").await?;
        let mut out = Vec::new();
        for item in array(v)? {
            let mut items = array(item)?;
            let token = items
                .pop()
                .ok_or_else(|| Error::internal("redis: claim reply without a token"))?;
            let token = TxToken(crate::reply::int(&token)?);
            if let Some(prepared) = readable(record(Value::Array(items))) {
                out.push(Claimed { prepared, token });
            }
        }
        Ok(out)
    }

    async fn reschedule(&self, id: &str, token: TxToken, update: Reschedule) -> Result<()> {
        let err = update.error.unwrap_or_default();
        let mut call = self.call("resched");
        call.arg(id)
            .arg(token.0)
            .arg(update.state.as_str())
            .arg(update.checks)
            .arg(until(update.due_at))
            .arg(err);
        match self
            .status(call, Op::Write, "reschedule a prepared message")
            .await?
        {
            0 => Ok(()),
            -2 => Err(held_elsewhere(id)),
            _ => Err(not_found(id)),
        }
    }

    async fn get(&self, id: &str) -> Result<Prepared> {
        let mut call = self.call("get");
        call.arg(id);
        let v = self.run(call, Op::Read, "read a prepared message").await?;
        array(v)?
            .into_iter()
            .next()
            .map(record)
            .unwrap_or_else(|| Err(not_found(id)))
    }

    async fn list(&self, offset: u64, limit: u64) -> Result<Vec<Prepared>> {
        let mut call = self.call("list");
        call.arg(offset).arg(limit.min(10_000));
        let v = self.run(call, Op::Read, "list prepared messages").await?;
        Ok(array(v)?
            .into_iter()
            .filter_map(|item| readable(record(item)))
            .collect())
    }

    async fn count(&self) -> Result<u64> {
        let call = self.call("count");
        let n = self
            .status(call, Op::Read, "count prepared messages")
            .await?;
        Ok(u64::try_from(n).unwrap_or(0))
    }
}
