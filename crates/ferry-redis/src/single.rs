//! The connection to one server: redis-rs's `ConnectionManager` (which reconnects with
//! backoff by itself) made to fail fast while the server is down.
//!
//! Why: after a lost connection the manager swaps in a future that reconnects with
//! backoff (6 retries, at most 2 s apart: about 7 s in all), and every call made
//! meanwhile awaits that whole future before it fails; the next call starts another
//! round. So while Redis was down each call hung for about 7 s (`tests/restart.rs`
//! measured 7.3 s per `receive` before this module), which stalls shutdowns, lease
//! extensions and error reports. Here a call that finds the connection down waits at
//! most [`GRACE`] for it to come back, then fails with a connection-refused error
//! (`Unavailable`: nothing was sent), while one background task per loss pings through
//! the manager until a PING succeeds; the manager's own backoff paces those pings.

use std::sync::{Arc, Weak};
use std::time::Duration;

use redis::aio::{ConnectionLike, ConnectionManager};
use redis::{Cmd, Pipeline, RedisError, RedisResult, Value};
use tokio::sync::watch;

/// How long a call waits for a down connection to come back before it fails. Long
/// enough to ride out a dropped idle connection (the reconnect takes a round trip),
/// short enough that callers hear about an outage at once; it also paces a caller that
/// retries in a loop.
const GRACE: Duration = Duration::from_millis(250);

/// Pause between two failed pings of the background reconnect (a ping that finds the
/// server down usually waits out the manager's backoff first).
const PROBE_PAUSE: Duration = Duration::from_millis(250);

/// A `ConnectionManager` plus whether its connection is believed up.
pub(crate) struct Single {
    manager: ConnectionManager,
    up: watch::Sender<bool>,
}

impl Single {
    /// Wraps a manager whose first connection succeeded.
    pub(crate) fn new(manager: ConnectionManager) -> Arc<Single> {
        Arc::new(Single {
            manager,
            up: watch::Sender::new(true),
        })
    }

    /// A clone of the manager (for commands that bypass the up/down bookkeeping).
    pub(crate) fn manager(&self) -> ConnectionManager {
        self.manager.clone()
    }

    /// Ok when the connection is up, or comes back within [`GRACE`].
    async fn ready(&self) -> RedisResult<()> {
        let mut rx = self.up.subscribe();
        if *rx.borrow_and_update() {
            return Ok(());
        }
        match tokio::time::timeout(GRACE, rx.wait_for(|up| *up)).await {
            Ok(Ok(_)) => Ok(()),
            _ => Err(RedisError::from(std::io::Error::new(
                std::io::ErrorKind::ConnectionRefused,
                "the connection to redis is down; reconnecting in the background",
            ))),
        }
    }

    /// After a call: a lost connection marks it down and starts the reconnect probe.
    fn observe<T>(self: &Arc<Self>, result: &RedisResult<T>) {
        if let Err(e) = result
            && (e.is_connection_dropped() || e.is_connection_refusal())
            && self.up.send_replace(false)
        {
            tracing::warn!(error = %e, "lost the connection to redis; reconnecting in the background");
            tokio::spawn(probe(Arc::downgrade(self)));
        }
    }

    pub(crate) async fn query(self: &Arc<Self>, cmd: &Cmd) -> RedisResult<Value> {
        self.ready().await?;
        let r = self.manager.clone().req_packed_command(cmd).await;
        self.observe(&r);
        r
    }

    pub(crate) async fn query_pipeline(
        self: &Arc<Self>,
        pipe: &Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisResult<Vec<Value>> {
        self.ready().await?;
        let r = self
            .manager
            .clone()
            .req_packed_commands(pipe, offset, count)
            .await;
        self.observe(&r);
        r
    }

    pub(crate) fn get_db(&self) -> i64 {
        self.manager.get_db()
    }
}

/// Pings until the server answers, then marks the connection up. Ends early when the
/// driver is gone.
async fn probe(single: Weak<Single>) {
    loop {
        let Some(mut manager) = single.upgrade().map(|s| s.manager()) else {
            return;
        };
        let pong: RedisResult<Value> = redis::cmd("PING").query_async(&mut manager).await;
        if pong.is_ok() {
            if let Some(s) = single.upgrade() {
                s.up.send_replace(true);
                tracing::info!("reconnected to redis");
            }
            return;
        }
        tokio::time::sleep(PROBE_PAUSE).await;
    }
}
