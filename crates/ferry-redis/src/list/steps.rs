//! The bridge's three Redis steps and the reclaim, each one Lua script in the list's
//! hash slot, plus the send between them (see the docs of `ListBridge`).

use std::future::Future;

use ferry_core::time::duration_millis;
use ferry_core::{Driver, Error, Message, Result};
use redis::{Script, Value};

use super::stop::Stop;
use super::{BridgeStats, ListBridge, SOURCE_HEADER};
use crate::reply::{Op, Reader, map_err};

/// The bridge's Lua scripts.
#[derive(Debug)]
pub(super) struct Scripts {
    take: Script,
    done: Script,
    reclaim: Script,
}

impl Scripts {
    pub(super) fn new() -> Self {
        Scripts {
            take: Script::new(include_str!("../lua/list_move.lua")),
            done: Script::new(include_str!("../lua/list_done.lua")),
            reclaim: Script::new(include_str!("../lua/list_reclaim.lua")),
        }
    }
}

/// One item taken from the list.
#[derive(Debug)]
pub(super) struct Item {
    seq: i64,
    taken_at: i64,
    payload: Vec<u8>,
}

impl ListBridge {
    /// The id of the message an item becomes.
    fn message_id(&self, item: &Item) -> String {
        format!("list:{}:{}-{}", self.keys.list, item.taken_at, item.seq)
    }

    fn message(&self, item: &Item) -> Message {
        Message::new(item.payload.clone())
            .with_id(self.message_id(item))
            .with_header(SOURCE_HEADER, format!("redis-list:{}", self.keys.list))
    }

    /// Step 1: takes up to `batch` items into the moving area.
    pub(super) async fn take(&self) -> Result<Vec<Item>> {
        let k = &self.keys;
        let v: Value = self
            .scripts
            .take
            .key(&k.list)
            .key(&k.seq)
            .key(&k.moving)
            .key(&k.moving_at)
            .arg(self.batch)
            .invoke_async(&mut self.driver.conn())
            .await
            .map_err(|e| map_err(e, Op::Write, "take items from the redis list"))?;
        let mut r = Reader::new(v)?;
        let taken_at = r.int()?;
        if taken_at < 0 {
            let kind = r.string()?;
            return Err(Error::invalid_input(format!(
                "redis key '{}' holds a {kind}, not a list; the list bridge needs a list that producers LPUSH to",
                k.list.escape_default()
            )));
        }
        let mut items = Vec::new();
        while r.has_more() {
            let seq = r.int()?;
            let payload = r.bytes()?;
            items.push(Item {
                seq,
                taken_at,
                payload,
            });
        }
        Ok(items)
    }

    /// Steps 2 and 3 for `items`; false if shutdown was asked before they were done.
    pub(super) async fn forward<S: Future<Output = ()>>(
        &self,
        items: Vec<Item>,
        stats: &mut BridgeStats,
        stop: &mut Stop<S>,
    ) -> Result<bool> {
        let limits = self.driver.limits;
        let mut messages = Vec::with_capacity(items.len());
        let mut actions = Vec::with_capacity(items.len());
        for item in &items {
            let m = self.message(item);
            match m.validate(&limits) {
                Ok(()) => {
                    messages.push(m);
                    actions.push((item.seq, "d"));
                }
                Err(e) => {
                    tracing::error!(list = %self.keys.list, rejected = %self.keys.rejected, error = %e,
                        "list bridge: ferry refuses this item; it is kept, raw, in the rejected list");
                    actions.push((item.seq, "r"));
                    stats.rejected += 1;
                }
            }
        }
        if !messages.is_empty() {
            let sent = self
                .retry(stop, "send to the queue", || {
                    self.driver.send(&self.queue, messages.clone())
                })
                .await?;
            let Some(report) = sent else {
                return Ok(false);
            };
            stats.enqueued += report.enqueued;
            stats.duplicates += report.duplicates.len() as u64;
        }
        let done = self
            .retry(stop, "confirm moved items", || self.confirm(&actions))
            .await?;
        Ok(done.is_some())
    }

    /// Step 3: removes items from the moving area (`d`) or sets them aside (`r`).
    async fn confirm(&self, actions: &[(i64, &str)]) -> Result<()> {
        let k = &self.keys;
        let mut inv = self.scripts.done.prepare_invoke();
        inv.key(&k.moving).key(&k.moving_at).key(&k.rejected);
        for (seq, action) in actions {
            inv.arg(*seq).arg(*action);
        }
        let _: Value = inv
            .invoke_async(&mut self.driver.conn())
            .await
            .map_err(|e| map_err(e, Op::Write, "confirm items moved from the redis list"))?;
        Ok(())
    }

    /// Sends again, page by page, the items taken longer than the grace ago; false if
    /// shutdown was asked before that was done.
    pub(super) async fn reclaim<S: Future<Output = ()>>(
        &self,
        stats: &mut BridgeStats,
        stop: &mut Stop<S>,
    ) -> Result<bool> {
        loop {
            let Some(items) = self
                .retry(stop, "look for abandoned items", || self.abandoned())
                .await?
            else {
                return Ok(false);
            };
            let n = items.len();
            if n == 0 {
                return Ok(true);
            }
            tracing::info!(list = %self.keys.list, queue = %self.queue, items = n,
                "list bridge: sending again items taken but never confirmed");
            stats.reclaimed += n as u64;
            if !self.forward(items, stats, stop).await? {
                return Ok(false);
            }
            if n < self.batch {
                return Ok(true);
            }
        }
    }

    /// Up to `batch` items taken at least the grace ago, oldest first.
    async fn abandoned(&self) -> Result<Vec<Item>> {
        let k = &self.keys;
        let grace = duration_millis(self.reclaim_after.min(ferry_core::MAX_DELAY));
        let v: Value = self
            .scripts
            .reclaim
            .key(&k.moving)
            .key(&k.moving_at)
            .arg(grace)
            .arg(self.batch)
            .invoke_async(&mut self.driver.conn())
            .await
            .map_err(|e| map_err(e, Op::Write, "look for abandoned list items"))?;
        let mut r = Reader::new(v)?;
        let mut items = Vec::new();
        while r.has_more() {
            let seq = r.int()?;
            let taken_at = r.int()?;
            let payload = r.bytes()?;
            items.push(Item {
                seq,
                taken_at,
                payload,
            });
        }
        Ok(items)
    }
}
