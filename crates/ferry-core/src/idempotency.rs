//! Effectively-once processing: an idempotency store with *in progress* and *done*
//! states.
//!
//! A plain "seen this key" flag, set when processing starts, turns a worker crash into
//! a dropped message: every redelivery finds the flag and skips the work that never
//! finished. Here a key is first **claimed** for a lease (in progress); only a completed
//! handler marks it **done** (kept for a retention period). A redelivery that finds:
//! - nothing (or an expired *done*): claims it and runs the handler ([`Claim::Acquired`]);
//! - a *done* key: skips the handler and acks ([`Claim::Done`]);
//! - a live claim of another worker: waits for it ([`Claim::Busy`]);
//! - an *expired* claim: the previous worker died mid-handler and may or may not have
//!   done the effect ([`Claim::Suspect`]); the consumer asks the user's `ensure`
//!   callback, if any, whether the effect happened, and otherwise runs the handler again.
//!
//! Claims are fenced by a token, so a slow worker whose claim expired cannot mark done
//! or release a key another worker claimed since.

use std::collections::HashMap;
use std::fmt::Debug;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;

use crate::error::{Error, ErrorKind, Result};

/// Proof of a claim; required to complete, release or extend it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ClaimToken(pub i64);

/// What [`IdempotencyStore::claim`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// The key was free: run the handler.
    Acquired(ClaimToken),
    /// An earlier claim expired without completing (its worker died mid-handler): the
    /// effect may or may not have happened. The key is now claimed by the caller.
    Suspect(ClaimToken),
    /// Another worker holds a live claim until this instant.
    Busy {
        /// When that claim expires unless extended.
        until: SystemTime,
    },
    /// The key was completed within its retention: the work is done.
    Done,
}

/// Where claims and completions are kept. Implementations: [`MemoryIdempotencyStore`],
/// and one per durable backend (the embedded one is `ferry_embedded::EmbeddedIdempotencyStore`).
#[async_trait]
pub trait IdempotencyStore: Send + Sync + Debug {
    /// Claims `key` for `lease` (see [`Claim`]).
    async fn claim(&self, key: &str, lease: Duration) -> Result<Claim>;

    /// Extends a live claim; `StaleReceipt` if the claim was lost.
    async fn extend(&self, key: &str, token: ClaimToken, lease: Duration) -> Result<()>;

    /// Marks the key done for `retention`; `StaleReceipt` if the claim was lost.
    async fn complete(&self, key: &str, token: ClaimToken, retention: Duration) -> Result<()>;

    /// Drops a claim without completing (the handler failed; the next attempt acquires
    /// cleanly instead of as a suspect). A lost claim is not an error.
    async fn release(&self, key: &str, token: ClaimToken) -> Result<()>;
}

fn lost(key: &str) -> Error {
    Error::new(
        ErrorKind::StaleReceipt,
        format!("idempotency claim on '{key}' expired and was taken by another worker"),
    )
}

#[derive(Debug, Clone, Copy)]
enum Entry {
    InProgress { token: i64, until: SystemTime },
    Done { until: SystemTime },
}

/// An in-process [`IdempotencyStore`], for tests and single-process use.
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// use std::time::Duration;
/// use ferry_core::{Claim, IdempotencyStore, MemoryIdempotencyStore};
///
/// let store = MemoryIdempotencyStore::new();
/// let Claim::Acquired(token) = store.claim("orders/42", Duration::from_secs(30)).await? else {
///     panic!("fresh key")
/// };
/// store.complete("orders/42", token, Duration::from_secs(3600)).await?;
/// assert_eq!(store.claim("orders/42", Duration::from_secs(30)).await?, Claim::Done);
/// # Ok::<(), ferry_core::Error>(()) }).unwrap();
/// ```
#[derive(Debug, Clone, Default)]
pub struct MemoryIdempotencyStore {
    entries: Arc<Mutex<HashMap<String, Entry>>>,
}

impl MemoryIdempotencyStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[async_trait]
impl IdempotencyStore for MemoryIdempotencyStore {
    async fn claim(&self, key: &str, lease: Duration) -> Result<Claim> {
        let now = SystemTime::now();
        let token = fastrand::i64(1..);
        let mut entries = self.lock();
        let claim = match entries.get(key) {
            Some(Entry::Done { until }) if *until > now => return Ok(Claim::Done),
            Some(Entry::InProgress { until, .. }) if *until > now => {
                return Ok(Claim::Busy { until: *until });
            }
            Some(Entry::InProgress { .. }) => Claim::Suspect(ClaimToken(token)),
            Some(Entry::Done { .. }) | None => Claim::Acquired(ClaimToken(token)),
        };
        entries.insert(
            key.to_string(),
            Entry::InProgress {
                token,
                until: crate::time::after(lease),
            },
        );
        Ok(claim)
    }

    async fn extend(&self, key: &str, token: ClaimToken, lease: Duration) -> Result<()> {
        let mut entries = self.lock();
        match entries.get_mut(key) {
            Some(Entry::InProgress { token: t, until }) if *t == token.0 => {
                *until = crate::time::after(lease);
                Ok(())
            }
            _ => Err(lost(key)),
        }
    }

    async fn complete(&self, key: &str, token: ClaimToken, retention: Duration) -> Result<()> {
        let mut entries = self.lock();
        match entries.get(key) {
            Some(Entry::InProgress { token: t, .. }) if *t == token.0 => {
                entries.insert(
                    key.to_string(),
                    Entry::Done {
                        until: crate::time::after(retention),
                    },
                );
                Ok(())
            }
            _ => Err(lost(key)),
        }
    }

    async fn release(&self, key: &str, token: ClaimToken) -> Result<()> {
        let mut entries = self.lock();
        if matches!(entries.get(key), Some(Entry::InProgress { token: t, .. }) if *t == token.0) {
            entries.remove(key);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LEASE: Duration = Duration::from_secs(30);

    fn token(c: Claim) -> ClaimToken {
        match c {
            Claim::Acquired(t) | Claim::Suspect(t) => t,
            other => panic!("expected a claim, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn lifecycle() {
        let s = MemoryIdempotencyStore::new();
        let t = token(s.claim("k", LEASE).await.expect("claim"));
        assert!(matches!(
            s.claim("k", LEASE).await.expect("claim"),
            Claim::Busy { .. }
        ));
        s.complete("k", t, Duration::from_secs(60))
            .await
            .expect("complete");
        assert_eq!(s.claim("k", LEASE).await.expect("claim"), Claim::Done);
    }

    #[tokio::test]
    async fn expired_claim_is_suspect_and_fenced() {
        let s = MemoryIdempotencyStore::new();
        let old = token(s.claim("k", Duration::from_millis(1)).await.expect("claim"));
        tokio::time::sleep(Duration::from_millis(5)).await;
        let new = s.claim("k", LEASE).await.expect("claim");
        assert!(matches!(new, Claim::Suspect(_)));
        assert_eq!(
            s.complete("k", old, LEASE).await.expect_err("stale").kind(),
            ErrorKind::StaleReceipt
        );
        s.release("k", old).await.expect("stale release is a no-op");
        assert!(matches!(
            s.claim("k", LEASE).await.expect("claim"),
            Claim::Busy { .. }
        ));
        s.complete("k", token(new), LEASE).await.expect("complete");
    }

    #[tokio::test]
    async fn release_frees_the_key_and_done_expires() {
        let s = MemoryIdempotencyStore::new();
        let t = token(s.claim("k", LEASE).await.expect("claim"));
        s.release("k", t).await.expect("release");
        let t = token(s.claim("k", LEASE).await.expect("claim"));
        assert!(matches!(
            s.claim("j", LEASE).await.expect("claim"),
            Claim::Acquired(_)
        ));
        s.complete("k", t, Duration::from_millis(1))
            .await
            .expect("complete");
        tokio::time::sleep(Duration::from_millis(5)).await;
        assert!(matches!(
            s.claim("k", LEASE).await.expect("claim"),
            Claim::Acquired(_)
        ));
    }
}
