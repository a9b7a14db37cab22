//! Waking long polls across processes: `NOTIFY` on commit, one `LISTEN` connection per
//! driver.
//!
//! Every transaction that can make a message deliverable (send, publish, retry,
//! release, requeue, resume) calls `pg_notify(channel, queue)`; PostgreSQL delivers it
//! only if the transaction commits, to every listening session. The driver's listener
//! task hears it and wakes the receives of this process waiting on that queue, which
//! then look again. Notifications are lost while the listening connection is down, so
//! waiting receives also look again every `poll_interval`, and when a delayed message or
//! a lease falls due.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sqlx::PgPool;
use sqlx::postgres::PgListener;
use tokio::sync::Notify;

/// The notification channel of a schema (one per ferry installation in a database).
pub(crate) fn channel(schema: &str) -> String {
    format!("ferry_{schema}")
}

/// The receives waiting in this process, by queue.
#[derive(Debug, Default)]
pub(crate) struct Waiters {
    queues: Mutex<HashMap<String, Arc<Notify>>>,
}

impl Waiters {
    /// The signal for `queue`: take a `notified()` future from it *before* looking at
    /// the queue, so a notification between the look and the wait is not missed.
    pub(crate) fn signal(&self, queue: &str) -> Arc<Notify> {
        let mut map = self.queues.lock().unwrap_or_else(|p| p.into_inner());
        // Forget signals nobody waits on any more, so the map stays small.
        if map.len() > 1024 {
            map.retain(|_, n| Arc::strong_count(n) > 1);
        }
        map.entry(queue.to_string()).or_default().clone()
    }

    /// Wakes the receives waiting on `queue`.
    pub(crate) fn wake(&self, queue: &str) {
        let map = self.queues.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = map.get(queue) {
            n.notify_waiters();
        }
    }

    /// Wakes every waiting receive (after the listening connection was lost, when
    /// notifications may have been missed).
    pub(crate) fn wake_all(&self) {
        let map = self.queues.lock().unwrap_or_else(|p| p.into_inner());
        for n in map.values() {
            n.notify_waiters();
        }
    }
}

/// Aborts the listener task when the driver's last handle goes.
#[derive(Debug)]
pub(crate) struct ListenerTask(tokio::task::AbortHandle);

impl Drop for ListenerTask {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Starts listening on `channel` with a connection of `pool` (a pool of its own, so the
/// listener never takes a connection from the operations) and wakes `waiters`.
pub(crate) async fn start(
    pool: PgPool,
    channel: String,
    waiters: Arc<Waiters>,
) -> Result<ListenerTask, sqlx::Error> {
    let mut listener = PgListener::connect_with(&pool).await?;
    listener.listen(&channel).await?;
    let task = tokio::spawn(async move {
        loop {
            match listener.try_recv().await {
                Ok(Some(n)) => waiters.wake(n.payload()),
                Ok(None) => {
                    tracing::warn!(
                        channel,
                        "lost the LISTEN connection to PostgreSQL; reconnecting"
                    );
                    waiters.wake_all();
                }
                Err(e) => {
                    tracing::warn!(channel, error = %e, "LISTEN connection to PostgreSQL failed; retrying in 1 s");
                    waiters.wake_all();
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
    });
    Ok(ListenerTask(task.abort_handle()))
}
