//! The connection and its confirm-mode channel, and reopening them when they are gone.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime};

use ferry_core::{Error, ErrorKind, Result};
use lapin::options::ConfirmSelectOptions;
use lapin::{Channel, Connection, ConnectionProperties};

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
}

/// How often [`AmqpDriver`] tries to reconnect before a call fails with `Unavailable`.
pub const RECONNECT_TRIES: u32 = 5;
/// The first pause between reconnect tries (doubling each time).
pub(crate) const RECONNECT_PAUSE: Duration = Duration::from_millis(100);

impl AmqpDriver {
    /// The current link; if its channel (or connection) is gone, a new one, retried
    /// with backoff. A new link drops the old one's leases.
    pub(crate) async fn link(&self) -> Result<Arc<Link>> {
        let current = lock(&self.link).clone();
        if current.channel.status().connected() {
            return Ok(current);
        }
        let _guard = self.reconnecting.lock().await;
        let current = lock(&self.link).clone();
        if current.channel.status().connected() {
            return Ok(current);
        }
        let mut pause = RECONNECT_PAUSE;
        let mut last = None;
        for _ in 0..RECONNECT_TRIES {
            match self.reopen(&current).await {
                Ok(link) => {
                    let link = Arc::new(link);
                    lock(&self.leases).retain(|_, l| l.generation == link.generation);
                    *lock(&self.link) = link.clone();
                    tracing::info!(generation = link.generation, "rabbitmq: reconnected");
                    return Ok(link);
                }
                Err(e) => {
                    tracing::warn!(error = %e, "rabbitmq: reconnect failed");
                    last = Some(e);
                    tokio::time::sleep(pause).await;
                    pause *= 2;
                }
            }
        }
        Err(last.unwrap_or_else(|| Error::new(ErrorKind::Unavailable, "rabbitmq: not connected")))
    }

    pub(crate) async fn reopen(&self, old: &Link) -> Result<Link> {
        let connection = if old.connection.status().connected() {
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
    })
}

/// A random-enough channel generation without another dependency: the clock's nanos.
pub(crate) fn fastrand_like() -> u32 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0)
}
