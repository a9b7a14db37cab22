//! Waking the relay when rows commit: `LISTEN` on the outbox channel.
//!
//! [`Outbox::enqueue`](crate::Outbox::enqueue) calls `pg_notify` inside the caller's
//! transaction, and PostgreSQL delivers the notification only at commit, so a wake-up
//! means "rows you may forward exist". Notifications are lost while the listening
//! connection is down; the relay's poll interval covers that, so the listener is an
//! optimisation, never a condition for progress.

use std::sync::Arc;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgListener, PgPoolOptions};
use tokio::sync::Notify;

/// The listener task; aborted when dropped.
#[derive(Debug)]
pub(crate) struct Listener {
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Starts listening on `channel`; every notification (and every reconnect, when some
/// may have been missed) calls `wake.notify_one()`.
pub(crate) fn start(options: &PgConnectOptions, channel: String, wake: Arc<Notify>) -> Listener {
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .acquire_timeout(Duration::from_secs(10))
        .connect_lazy_with(options.clone());
    let task = tokio::spawn(async move {
        loop {
            let mut listener = match PgListener::connect_with(&pool).await {
                Ok(l) => l,
                Err(e) => {
                    tracing::debug!(channel, error = %e, "outbox relay cannot LISTEN yet; polling meanwhile");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            };
            if let Err(e) = listener.listen(&channel).await {
                tracing::debug!(channel, error = %e, "outbox relay LISTEN failed; polling meanwhile");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
            wake.notify_one();
            loop {
                match listener.try_recv().await {
                    Ok(Some(_)) => wake.notify_one(),
                    // Lost the connection; the next try_recv reconnects and re-listens.
                    Ok(None) => wake.notify_one(),
                    Err(e) => {
                        tracing::debug!(channel, error = %e, "outbox relay LISTEN connection failed; reconnecting in 1 s");
                        wake.notify_one();
                        tokio::time::sleep(Duration::from_secs(1)).await;
                        break;
                    }
                }
            }
        }
    });
    Listener { task }
}
