//! An in-process [`TxStore`], for unit tests of the two-phase sender and checker.
//! Nothing survives the process, so it gives no protection against a crash; durable
//! backends have their own stores.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;

use super::errors::{already_prepared, held_elsewhere, not_found};
use super::store::{Claimed, Destination, Prepared, Reschedule, TxState, TxStore, TxToken};
use crate::error::Result;
use crate::message::Message;

#[derive(Debug, Clone)]
struct Entry {
    prepared: Prepared,
    token: TxToken,
    seq: u64,
}

#[derive(Debug, Default)]
struct Inner {
    entries: HashMap<String, Entry>,
    seq: u64,
}

/// Prepared messages in process memory.
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// use std::time::Duration;
/// use ferry_core::{Message, QueueName, tx::{Destination, MemoryTxStore, TxStore}};
/// let store = MemoryTxStore::new();
/// let dest = Destination::queue(QueueName::new("orders")?);
/// store.prepare(&dest, &Message::new("x").with_id("m-1"), Duration::from_secs(5)).await?;
/// assert_eq!(store.count().await?, 1);
/// assert!(store.remove("m-1").await?);
/// # Ok::<(), ferry_core::Error>(()) }).unwrap();
/// ```
#[derive(Debug, Clone, Default)]
pub struct MemoryTxStore {
    inner: Arc<Mutex<Inner>>,
}

impl MemoryTxStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn later(d: Duration) -> SystemTime {
    crate::time::after(d)
}

#[async_trait]
impl TxStore for MemoryTxStore {
    async fn prepare(
        &self,
        destination: &Destination,
        message: &Message,
        hold: Duration,
    ) -> Result<TxToken> {
        let mut inner = self.lock();
        if inner.entries.contains_key(message.id()) {
            return Err(already_prepared(message.id()));
        }
        inner.seq += 1;
        let token = TxToken::random();
        let entry = Entry {
            prepared: Prepared::new(destination.clone(), message.clone(), later(hold)),
            token,
            seq: inner.seq,
        };
        inner.entries.insert(message.id().to_string(), entry);
        Ok(token)
    }

    async fn hold(&self, id: &str, token: TxToken, hold: Duration) -> Result<()> {
        let mut inner = self.lock();
        let entry = inner.entries.get_mut(id).ok_or_else(|| not_found(id))?;
        if entry.token != token {
            return Err(held_elsewhere(id));
        }
        entry.prepared.due_at = later(hold);
        Ok(())
    }

    async fn mark_committed(
        &self,
        destination: &Destination,
        message: &Message,
        retry_at: SystemTime,
        error: &str,
    ) -> Result<()> {
        let mut inner = self.lock();
        inner.seq += 1;
        let seq = inner.seq;
        let entry = inner
            .entries
            .entry(message.id().to_string())
            .or_insert_with(|| Entry {
                prepared: Prepared::new(destination.clone(), message.clone(), retry_at),
                token: TxToken::random(),
                seq,
            });
        entry.prepared.state = TxState::Committed;
        entry.prepared.due_at = retry_at;
        entry.prepared.last_error = Some(error.to_string());
        entry.token = TxToken::random();
        Ok(())
    }

    async fn remove(&self, id: &str) -> Result<bool> {
        Ok(self.lock().entries.remove(id).is_some())
    }

    async fn remove_claimed(&self, id: &str, token: TxToken) -> Result<()> {
        let mut inner = self.lock();
        let entry = inner.entries.get(id).ok_or_else(|| not_found(id))?;
        if entry.token != token {
            return Err(held_elsewhere(id));
        }
        inner.entries.remove(id);
        Ok(())
    }

    async fn claim_due(&self, max: usize, lease: Duration) -> Result<Vec<Claimed>> {
        let now = SystemTime::now();
        let mut inner = self.lock();
        let mut due: Vec<(SystemTime, u64, String)> = inner
            .entries
            .iter()
            .filter(|(_, e)| e.prepared.due_at <= now)
            .map(|(id, e)| (e.prepared.due_at, e.seq, id.clone()))
            .collect();
        due.sort();
        due.truncate(max);
        let mut out = Vec::with_capacity(due.len());
        for (_, _, id) in due {
            if let Some(entry) = inner.entries.get_mut(&id) {
                entry.token = TxToken::random();
                entry.prepared.due_at = later(lease);
                out.push(Claimed {
                    prepared: entry.prepared.clone(),
                    token: entry.token,
                });
            }
        }
        Ok(out)
    }

    async fn reschedule(&self, id: &str, token: TxToken, update: Reschedule) -> Result<()> {
        let mut inner = self.lock();
        let entry = inner.entries.get_mut(id).ok_or_else(|| not_found(id))?;
        if entry.token != token {
            return Err(held_elsewhere(id));
        }
        entry.prepared.state = update.state;
        entry.prepared.checks = update.checks;
        entry.prepared.due_at = update.due_at;
        entry.prepared.last_error = update.error;
        Ok(())
    }

    async fn get(&self, id: &str) -> Result<Prepared> {
        self.lock()
            .entries
            .get(id)
            .map(|e| e.prepared.clone())
            .ok_or_else(|| not_found(id))
    }

    async fn list(&self, offset: u64, limit: u64) -> Result<Vec<Prepared>> {
        let inner = self.lock();
        let mut all: Vec<&Entry> = inner.entries.values().collect();
        all.sort_by_key(|e| e.seq);
        let skip = usize::try_from(offset).unwrap_or(usize::MAX);
        let take = usize::try_from(limit).unwrap_or(usize::MAX);
        Ok(all
            .into_iter()
            .skip(skip)
            .take(take)
            .map(|e| e.prepared.clone())
            .collect())
    }

    async fn count(&self) -> Result<u64> {
        Ok(self.lock().entries.len() as u64)
    }
}
