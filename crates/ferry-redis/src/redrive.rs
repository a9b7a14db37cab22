//! Approved re-drive on Redis: storing dead letters as given, approving them and moving
//! the approved ones back, each one script (`lua/dead_insert.lua`, `lua/redrive.lua`).
//!
//! The approval is membership of the dead letter's death sequence in `{P:Q}:dapp`, so it
//! belongs to that death: the move removes it with the dead letter, and a message that
//! dies again gets a new sequence that is not approved. Redis runs one script at a time,
//! so the script that reads the approved set and moves up to `max` of them is the claim:
//! concurrent callers in any process get disjoint ids, and none is moved twice. The
//! queue's keys share its hash tag, so every script touches one Cluster slot.

use ferry_core::time::to_millis;
use ferry_core::wire::Envelope;
use ferry_core::{DeadLetter, Error, QueueName, Result, Selection};
use redis::Value;

use crate::reply::{Op, Reader, map_err};
use crate::{DEAD_CHUNK, NO_QUEUE, RedisDriver};

impl RedisDriver {
    /// Runs `lua/redrive.lua` on `queue` with `args`; `QueueNotFound` if it is missing.
    async fn redrive_op(&self, queue: &QueueName, args: Vec<String>) -> Result<Reader> {
        let mut inv = self.scripts.redrive.key(self.base(queue));
        for a in args {
            inv.arg(a);
        }
        let v: Value = inv
            .invoke_async(&mut self.conn())
            .await
            .map_err(|e| map_err(e, Op::Write, "run a re-drive operation"))?;
        let mut r = Reader::new(v)?;
        if r.int()? == NO_QUEUE {
            return Err(Error::queue_not_found(queue.as_str()));
        }
        Ok(r)
    }

    /// Stores `letters` (already validated) in one script: all or nothing.
    pub(crate) async fn insert_dead(
        &self,
        queue: &QueueName,
        letters: &[DeadLetter],
    ) -> Result<u64> {
        let mut inv = self.scripts.dead_insert.key(self.base(queue));
        for d in letters {
            let mut env = Envelope::new(d.id.clone(), d.payload.clone());
            env.headers = d.headers.clone();
            env.route_key = d.route_key.clone();
            env.priority = d.priority;
            env.enqueued_at = to_millis(d.enqueued_at);
            let dead_at = to_millis(d.dead_at);
            inv.arg(&d.id)
                .arg(env.encode()?)
                .arg(d.priority)
                .arg(d.attempts)
                .arg(&d.reason)
                .arg(if d.last_error.is_some() { "1" } else { "0" })
                .arg(d.last_error.as_deref().unwrap_or(""))
                // Redis always records a first failure; none given is the death itself.
                .arg(d.first_failed_at.map_or(dead_at, to_millis))
                .arg(dead_at);
        }
        let v: Value = inv
            .invoke_async(&mut self.conn())
            .await
            .map_err(|e| map_err(e, Op::Write, "store dead letters"))?;
        let mut r = Reader::new(v)?;
        if r.int()? == NO_QUEUE {
            return Err(Error::queue_not_found(queue.as_str()));
        }
        Ok(u64::try_from(r.int()?).unwrap_or(0))
    }

    /// Approves the selection: one script for ids, chunks of `DEAD_CHUNK` for `All`.
    pub(crate) async fn approve_dead(
        &self,
        queue: &QueueName,
        selection: Selection,
    ) -> Result<u64> {
        match selection {
            Selection::Ids(ids) => {
                let mut args = vec!["approve_ids".to_string()];
                args.extend(ids);
                let mut r = self.redrive_op(queue, args).await?;
                Ok(u64::try_from(r.int()?).unwrap_or(0))
            }
            Selection::All => {
                let (mut total, mut cursor) = (0u64, -1i64);
                loop {
                    let args = vec![
                        "approve_all".to_string(),
                        cursor.to_string(),
                        DEAD_CHUNK.to_string(),
                    ];
                    let mut r = self.redrive_op(queue, args).await?;
                    total += u64::try_from(r.int()?).unwrap_or(0);
                    cursor = r.int()?;
                    if cursor < 0 {
                        return Ok(total);
                    }
                }
            }
        }
    }

    /// Moves up to `max` approved dead letters back (one script: the claim).
    pub(crate) async fn redrive_dead(&self, queue: &QueueName, max: u64) -> Result<Vec<String>> {
        // Far beyond any real count, and exact in Lua's doubles.
        let max = max.min(1 << 50);
        let mut r = self
            .redrive_op(queue, vec!["redrive".to_string(), max.to_string()])
            .await?;
        let mut ids = Vec::new();
        while r.has_more() {
            ids.push(r.string()?);
        }
        Ok(ids)
    }
}
