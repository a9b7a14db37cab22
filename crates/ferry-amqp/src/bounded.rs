//! Every broker operation is bounded in time.
//!
//! lapin waits for a reply as long as its connection looks open, and a half-open
//! connection (the broker's host vanished, a firewall dropped the flow) looks open
//! until two heartbeats are missed. A worker must neither hang nor be slow to notice,
//! so each driver call runs under a budget (the URL's `timeout=`, default
//! [`DEFAULT_OP_TIMEOUT`](crate::DEFAULT_OP_TIMEOUT), plus what the call itself asks for:
//! a long poll's wait, a batch's size). Past it the call fails (`Indeterminate` for a
//! send or publish, whose message may or may not be stored; `Unavailable` otherwise)
//! and the link is marked broken, so the next call opens a new connection. The broker
//! returns the unacked deliveries of the old one, which makes the leases taken on it
//! stale.

use std::future::Future;
use std::time::Duration;

use ferry_core::{Error, ErrorKind, Result};

use crate::driver::{AmqpDriver, lock};

impl AmqpDriver {
    /// Runs `op` (named `what` in the error) within the operation timeout plus `extra`;
    /// past it the link the call began on is marked broken.
    pub(crate) async fn bounded<T>(
        &self,
        what: &str,
        kind: ErrorKind,
        extra: Duration,
        op: impl Future<Output = Result<T>>,
    ) -> Result<T> {
        self.within(what, kind, extra, true, op).await
    }

    /// [`bounded`](Self::bounded) for browses (dead letters, history): they run on
    /// private channels and may be long, so their timeout says nothing about the
    /// shared channel, whose leases are left alone.
    pub(crate) async fn bounded_browse<T>(
        &self,
        what: &str,
        extra: Duration,
        op: impl Future<Output = Result<T>>,
    ) -> Result<T> {
        self.within(what, ErrorKind::Unavailable, extra, false, op)
            .await
    }

    async fn within<T>(
        &self,
        what: &str,
        kind: ErrorKind,
        extra: Duration,
        condemn: bool,
        op: impl Future<Output = Result<T>>,
    ) -> Result<T> {
        let budget = self.op_timeout + extra;
        // The link in use when the call began: a late timeout must not condemn a link
        // that another call has opened since (its leases are fresh).
        let generation = lock(&self.link).generation;
        match tokio::time::timeout(budget, op).await {
            Ok(result) => result,
            Err(_) => {
                if condemn {
                    self.poison(generation);
                }
                Err(Error::new(
                    kind,
                    format!(
                        "rabbitmq did not answer {what} within {budget:?}; the connection is replaced"
                    ),
                ))
            }
        }
    }
}

/// Extra budget for a batch of `n` items at `each` per item.
pub(crate) fn per_item(n: usize, each: Duration) -> Duration {
    each.saturating_mul(u32::try_from(n).unwrap_or(u32::MAX))
}
