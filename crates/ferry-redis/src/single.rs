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
//!
//! A reply that times out also replaces the manager. `ConnectionManager` reconnects when
//! its connection is closed or refused, but counts a timeout as retryable on the same
//! connection, so on a half-open link (the server's host vanished without a reset, a
//! firewall or NAT dropped the connection's state) every later command would time out
//! too, for as long as the kernel keeps the socket (about 15 minutes on Linux). The fault
//! test `consumer_survives_cuts_and_a_blackhole` (`tests/faults.rs`) showed a consumer
//! making no progress for a minute. So a timed-out reply condemns the manager it was sent
//! on (once per manager) and a fresh, lazily connecting one takes its place; the old one
//! closes its socket when its last in-flight command ends. A slow but healthy server pays
//! one reconnect per timed-out reply; the response timeout (10 s by default) is meant to
//! be far above any normal reply.

use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Duration;

use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
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

/// The connection to one server: the current manager and whether it is believed up.
pub(crate) struct Single {
    client: redis::Client,
    config: ConnectionManagerConfig,
    current: Mutex<Current>,
    up: watch::Sender<bool>,
}

/// The manager in use and how many were replaced before it.
struct Current {
    generation: u64,
    manager: ConnectionManager,
}

impl Single {
    /// Connects (waiting for the first connection, so a wrong address fails here).
    pub(crate) async fn connect(
        client: redis::Client,
        config: ConnectionManagerConfig,
    ) -> RedisResult<Arc<Single>> {
        let manager = ConnectionManager::new_with_config(client.clone(), config.clone()).await?;
        Ok(Arc::new(Single {
            client,
            config,
            current: Mutex::new(Current {
                generation: 0,
                manager,
            }),
            up: watch::Sender::new(true),
        }))
    }

    /// The current manager and its generation.
    fn current(&self) -> (ConnectionManager, u64) {
        let c = self.current.lock().unwrap_or_else(PoisonError::into_inner);
        (c.manager.clone(), c.generation)
    }

    /// A clone of the current manager (for commands that bypass the bookkeeping).
    pub(crate) fn manager(&self) -> ConnectionManager {
        self.current().0
    }

    /// Replaces the manager of `generation`, if it is still the current one, with one
    /// that connects on first use.
    fn condemn(&self, generation: u64) {
        let mut c = self.current.lock().unwrap_or_else(PoisonError::into_inner);
        if c.generation != generation {
            return;
        }
        // Fails only for a bad configuration, which `connect` already checked; keep the
        // old manager then (it still reconnects on its own when the socket dies).
        if let Ok(manager) =
            ConnectionManager::new_lazy_with_config(self.client.clone(), self.config.clone())
        {
            tracing::warn!("a redis reply timed out; replacing the connection");
            c.manager = manager;
            c.generation = generation.wrapping_add(1);
        }
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

    /// After a call: a lost connection marks it down and starts the reconnect probe; a
    /// timeout condemns the manager it was sent on.
    fn observe<T>(self: &Arc<Self>, result: &RedisResult<T>, generation: u64) {
        let Err(e) = result else { return };
        if e.is_timeout() {
            self.condemn(generation);
        } else if (e.is_connection_dropped() || e.is_connection_refusal())
            && self.up.send_replace(false)
        {
            tracing::warn!(error = %e, "lost the connection to redis; reconnecting in the background");
            tokio::spawn(probe(Arc::downgrade(self)));
        }
    }

    pub(crate) async fn query(self: &Arc<Self>, cmd: &Cmd) -> RedisResult<Value> {
        self.ready().await?;
        let (mut manager, generation) = self.current();
        let r = manager.req_packed_command(cmd).await;
        self.observe(&r, generation);
        r
    }

    pub(crate) async fn query_pipeline(
        self: &Arc<Self>,
        pipe: &Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisResult<Vec<Value>> {
        self.ready().await?;
        let (mut manager, generation) = self.current();
        let r = manager.req_packed_commands(pipe, offset, count).await;
        self.observe(&r, generation);
        r
    }

    pub(crate) fn get_db(&self) -> i64 {
        self.manager().get_db()
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
