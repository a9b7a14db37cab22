//! The Redis idempotency store: one string key per idempotency key.

use std::time::Duration;

use crate::connection::Conn;
use async_trait::async_trait;
use ferry_core::time::{duration_millis, from_millis};
use ferry_core::{Claim, ClaimToken, Error, ErrorKind, IdempotencyStore, Result};
use redis::{Script, Value};

use crate::reply::{Op, Reader, map_err};

/// An [`IdempotencyStore`] kept in Redis (`SET … PX` under a Lua script), so claims
/// survive a worker crash and are shared by every worker of the queue.
///
/// Key `P:idem:<key>` holds `p|<token>|<until_ms>` while claimed (kept a day past the
/// lease so an expired claim is seen as suspect) and `d` once done (expiring after the
/// retention). Times come from the Redis server's clock.
#[derive(Clone)]
pub struct RedisIdempotencyStore {
    conn: Conn,
    prefix: String,
    script: std::sync::Arc<Script>,
}

impl std::fmt::Debug for RedisIdempotencyStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisIdempotencyStore")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

fn lost(key: &str) -> Error {
    Error::new(
        ErrorKind::StaleReceipt,
        format!("idempotency claim on '{key}' expired and was taken by another worker"),
    )
}

impl RedisIdempotencyStore {
    pub(crate) fn new(conn: Conn, prefix: &str) -> Self {
        RedisIdempotencyStore {
            conn,
            prefix: prefix.to_string(),
            script: std::sync::Arc::new(Script::new(include_str!("lua/idempotency.lua"))),
        }
    }

    async fn run(&self, op: &str, key: &str, token: i64, ms: Duration) -> Result<Reader> {
        let v: Value = self
            .script
            .key(format!("{}:idem:{key}", self.prefix))
            .arg(op)
            .arg(token)
            // Capped at ten years: Redis's PX takes a signed 64-bit count.
            .arg(duration_millis(ms).clamp(1, 315_576_000_000))
            .invoke_async(&mut self.conn.clone())
            .await
            .map_err(|e| map_err(e, Op::Write, "update the idempotency store"))?;
        Reader::new(v)
    }
}

#[async_trait]
impl IdempotencyStore for RedisIdempotencyStore {
    async fn claim(&self, key: &str, lease: Duration) -> Result<Claim> {
        let token = fastrand::i64(1..);
        let mut r = self.run("claim", key, token, lease).await?;
        Ok(match r.int()? {
            0 => Claim::Acquired(ClaimToken(token)),
            1 => Claim::Suspect(ClaimToken(token)),
            2 => Claim::Busy {
                until: from_millis(r.int()?),
            },
            _ => Claim::Done,
        })
    }

    async fn extend(&self, key: &str, token: ClaimToken, lease: Duration) -> Result<()> {
        match self.run("extend", key, token.0, lease).await?.int()? {
            0 => Ok(()),
            _ => Err(lost(key)),
        }
    }

    async fn complete(&self, key: &str, token: ClaimToken, retention: Duration) -> Result<()> {
        match self.run("complete", key, token.0, retention).await?.int()? {
            0 => Ok(()),
            _ => Err(lost(key)),
        }
    }

    async fn release(&self, key: &str, token: ClaimToken) -> Result<()> {
        self.run("release", key, token.0, Duration::from_millis(1))
            .await
            .map(|_| ())
    }
}
