//! The connection and its confirm-mode channel, and replacing them when they are gone.
//!
//! A link is usable while lapin says its channel is open and no operation on it went
//! unanswered past the operation timeout (see [`crate::bounded`]): a silent
//! (half-open) connection looks open to lapin until heartbeats fail, so an unanswered
//! operation marks the link broken at once. The next call then opens a new
//! connection, but at most one try per backoff step (100 ms doubling to 5 s, reset by
//! a success): while the broker is away calls fail fast with `Unavailable` instead of
//! each waiting out a reconnect loop, and a worker's retries cannot turn into a
//! reconnect storm.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

use ferry_core::{Error, ErrorKind, Result};
use lapin::options::ConfirmSelectOptions;
use lapin::{Channel, Connection, ConnectionProperties};
use tokio::time::Instant;

use crate::driver::{AmqpDriver, lock};
use crate::error::amqp_err;

/// One connection and its confirm-mode channel; `generation` fences receipts (a new
/// channel gets a new generation, and the leases of the old one are dropped: the broker
/// returned those deliveries to their queues when the channel closed).
#[derive(Debug)]
pub(crate) struct Link {
    pub(crate) connection: Arc<Connection>,
    pub(crate) channel: Channel,
    pub(crate) generation: u64,
    /// An operation on this link went unanswered: never use it again.
    broken: AtomicBool,
}

impl Link {
    fn usable(&self) -> bool {
        !self.broken.load(Ordering::SeqCst) && self.channel.status().connected()
    }
}

/// The first pause between reconnect tries.
pub const RECONNECT_PAUSE: Duration = Duration::from_millis(100);
/// The longest pause between reconnect tries.
pub const RECONNECT_PAUSE_MAX: Duration = Duration::from_secs(5);

/// When the next reconnect may be tried, and the pause after a failure.
#[derive(Debug)]
pub(crate) struct Backoff {
    next_try: Instant,
    pause: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            next_try: Instant::now(),
            pause: RECONNECT_PAUSE,
        }
    }
}

impl AmqpDriver {
    /// The current link; if it is gone or broken, a new one (one try, if the backoff
    /// allows one now). A new link drops the old one's leases.
    pub(crate) async fn link(&self) -> Result<Arc<Link>> {
        let current = lock(&self.link).clone();
        if current.usable() {
            return Ok(current);
        }
        let _guard = self.reconnecting.lock().await;
        let current = lock(&self.link).clone();
        if current.usable() {
            return Ok(current);
        }
        let wait = lock(&self.backoff)
            .next_try
            .saturating_duration_since(Instant::now());
        if !wait.is_zero() {
            return Err(Error::new(
                ErrorKind::Unavailable,
                format!(
                    "rabbitmq: not connected; the next reconnect try is in {} ms",
                    wait.as_millis()
                ),
            ));
        }
        let opened = tokio::time::timeout(self.op_timeout, self.reopen(&current)).await;
        let result = match opened {
            Ok(r) => r,
            Err(_) => Err(Error::new(
                ErrorKind::Unavailable,
                format!(
                    "rabbitmq: no answer while reconnecting within {:?}",
                    self.op_timeout
                ),
            )),
        };
        match result {
            Ok(link) => {
                let link = Arc::new(link);
                lock(&self.leases).retain(|_, l| l.generation == link.generation);
                *lock(&self.link) = link.clone();
                *lock(&self.backoff) = Backoff::default();
                tracing::info!(generation = link.generation, "rabbitmq: reconnected");
                Ok(link)
            }
            Err(e) => {
                let mut b = lock(&self.backoff);
                b.next_try = Instant::now() + b.pause;
                b.pause = (b.pause * 2).min(RECONNECT_PAUSE_MAX);
                tracing::warn!(error = %e, retry_in = ?b.pause, "rabbitmq: reconnect failed");
                Err(e)
            }
        }
    }

    /// Marks the link of `generation` broken if it is still the current one (an
    /// operation on it went unanswered): the next call opens a new connection, and the
    /// old one is closed in the background.
    pub(crate) fn poison(&self, generation: u64) {
        let current = lock(&self.link).clone();
        if current.generation == generation && !current.broken.swap(true, Ordering::SeqCst) {
            tracing::warn!(
                generation = current.generation,
                "rabbitmq: an operation went unanswered; replacing the connection"
            );
            let connection = current.connection.clone();
            let budget = self.op_timeout;
            tokio::spawn(async move {
                let _ =
                    tokio::time::timeout(budget, connection.close(320, "ferry: no answer")).await;
            });
        }
    }

    async fn reopen(&self, old: &Link) -> Result<Link> {
        let connection =
            if old.connection.status().connected() && !old.broken.load(Ordering::SeqCst) {
                old.connection.clone()
            } else {
                Arc::new(
                    Connection::connect(&self.url, properties(&self.name))
                        .await
                        .map_err(amqp_err)?,
                )
            };
        let generation = self.next_generation.fetch_add(1, Ordering::Relaxed);
        open_channel(connection, generation).await
    }

    /// A new channel on the current connection, for what must not risk the shared
    /// channel (a failed passive declare closes its channel) or must hold messages
    /// only for a moment (browses: closing the channel returns what it took).
    pub(crate) async fn private_channel(&self) -> Result<Channel> {
        self.link()
            .await?
            .connection
            .create_channel()
            .await
            .map_err(amqp_err)
    }

    pub(crate) async fn ch(&self) -> Result<Channel> {
        Ok(self.link().await?.channel.clone())
    }
}

pub(crate) fn properties(name: &str) -> ConnectionProperties {
    ConnectionProperties::default().with_connection_name(name.into())
}

pub(crate) async fn open_channel(connection: Arc<Connection>, generation: u64) -> Result<Link> {
    let channel = connection.create_channel().await.map_err(amqp_err)?;
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await
        .map_err(amqp_err)?;
    Ok(Link {
        connection,
        channel,
        generation,
        broken: AtomicBool::new(false),
    })
}

/// A random-enough channel generation without another dependency: the clock's nanos.
pub(crate) fn fastrand_like() -> u32 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0)
}
