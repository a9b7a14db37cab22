//! [`Producer::send_tx`]: prepare, run the local transaction while holding the prepared
//! record, then commit (publish, remove) or roll back (remove).
//!
//! What the caller is told is exactly what happened: [`TxSent::Published`] only once the
//! backend holds the message durably; [`TxSent::Deferred`] when the transaction
//! committed, the publish failed and the store recorded the message as committed (a
//! [`TxChecker`](super::TxChecker) publishes it); [`SendTxError::Unpublished`] when it
//! committed and neither worked; an error when the transaction rolled back or its
//! outcome is unknown (then the record stays for a check-back).

use std::fmt;
use std::future::Future;
use std::time::Duration;

use super::store::{Destination, TxStore, TxToken};
use crate::error::{BoxError, Error, ErrorKind};
use crate::message::Message;
use crate::producer::Producer;

/// How a local transaction failed, as the closure passed to
/// [`Producer::send_tx`] tells it.
///
/// `?` on any error gives [`LocalTxError::in_doubt`], the safe default: the prepared
/// message stays and the checker asks the check-back later. Use
/// [`LocalTxError::rolled_back`] for failures you know left nothing committed (any
/// error before the commit call), so the prepared message is removed at once.
///
/// ```
/// use ferry_core::tx::LocalTxError;
/// let e: LocalTxError = std::io::Error::other("commit lost").into();
/// assert!(!e.is_rolled_back());
/// assert!(LocalTxError::rolled_back("constraint violated").is_rolled_back());
/// ```
pub struct LocalTxError {
    rolled_back: bool,
    source: BoxError,
}

impl LocalTxError {
    /// The transaction did not commit and cannot commit any more.
    pub fn rolled_back(source: impl Into<BoxError>) -> Self {
        LocalTxError {
            rolled_back: true,
            source: source.into(),
        }
    }

    /// The transaction may or may not have committed (the commit call itself failed).
    pub fn in_doubt(source: impl Into<BoxError>) -> Self {
        LocalTxError {
            rolled_back: false,
            source: source.into(),
        }
    }

    /// Whether the transaction is known to have rolled back.
    pub fn is_rolled_back(&self) -> bool {
        self.rolled_back
    }
}

impl<E: Into<BoxError>> From<E> for LocalTxError {
    fn from(e: E) -> Self {
        LocalTxError::in_doubt(e)
    }
}

impl fmt::Debug for LocalTxError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LocalTxError")
            .field("rolled_back", &self.rolled_back)
            .field("source", &self.source)
            .finish()
    }
}

/// A two-phase send whose local transaction committed.
#[derive(Debug)]
pub enum TxSent<T> {
    /// The message is durable in the backend.
    Published {
        /// What the local transaction returned.
        value: T,
    },
    /// The publish failed after the commit. The store holds the message as committed
    /// and a [`TxChecker`](super::TxChecker) publishes it (same id).
    Deferred {
        /// What the local transaction returned.
        value: T,
        /// Why the publish failed.
        error: Error,
    },
}

impl<T> TxSent<T> {
    /// Whether the message is already in the backend.
    pub fn is_published(&self) -> bool {
        matches!(self, TxSent::Published { .. })
    }

    /// What the local transaction returned.
    pub fn into_value(self) -> T {
        match self {
            TxSent::Published { value } | TxSent::Deferred { value, .. } => value,
        }
    }
}

/// Why [`Producer::send_tx`] did not commit.
#[derive(Debug)]
pub enum SendTxError {
    /// The message could not be prepared; the local transaction did not run.
    Prepare(Error),
    /// The local transaction rolled back; no message will be sent.
    RolledBack(BoxError),
    /// The local transaction's outcome is unknown; the prepared message stays and the
    /// checker's check-back decides.
    InDoubt(BoxError),
    /// The local transaction **committed**, but the publish failed and the store
    /// could not record the message as committed either. The prepared record may
    /// still be there (then a checker's check-back publishes it), but nothing is sure
    /// to: send the message again yourself, with the same id, once the backend is back.
    Unpublished {
        /// Why the publish failed.
        publish: Error,
        /// Why the store could not record the commit.
        store: Error,
    },
}

impl fmt::Display for SendTxError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SendTxError::Prepare(e) => write!(
                f,
                "could not prepare the message, so the local transaction did not run: {e}"
            ),
            SendTxError::RolledBack(e) => {
                write!(f, "local transaction rolled back, no message sent: {e}")
            }
            SendTxError::InDoubt(e) => write!(
                f,
                "local transaction outcome unknown; the prepared message waits for the checker: {e}"
            ),
            SendTxError::Unpublished { publish, store } => write!(
                f,
                "local transaction committed, but the message was not published ({publish}) and could not be recorded for the checker ({store}); send it again with the same id"
            ),
        }
    }
}

impl std::error::Error for SendTxError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            SendTxError::Prepare(e) => Some(e),
            SendTxError::RolledBack(e) | SendTxError::InDoubt(e) => Some(e.as_ref()),
            SendTxError::Unpublished { publish, .. } => Some(publish),
        }
    }
}

/// How long after a failed post-commit publish the checker first retries it.
const REPUBLISH_AFTER: Duration = Duration::from_secs(1);

/// Renews the hold every third of `hold` until dropped; stops renewing once the
/// record was claimed or is gone (the checker owns it then).
async fn keep_holding(
    store: &dyn TxStore,
    id: &str,
    token: TxToken,
    hold: Duration,
) -> std::convert::Infallible {
    let every = (hold / 3).max(Duration::from_millis(10));
    loop {
        tokio::time::sleep(every).await;
        let renewed = tokio::time::timeout(every, store.hold(id, token, hold))
            .await
            .unwrap_or_else(|_| {
                Err(Error::new(
                    ErrorKind::Timeout,
                    "renewing the hold took longer than a third of it",
                ))
            });
        match renewed {
            Ok(()) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    ErrorKind::StaleReceipt | ErrorKind::MessageNotFound
                ) =>
            {
                tracing::warn!(id, error = %e, "prepared message no longer held by its producer");
                return std::future::pending().await;
            }
            Err(e) => {
                tracing::warn!(id, error = %e, "could not renew the hold on a prepared message")
            }
        }
    }
}

impl Producer {
    /// Sends `message` to `destination` if and only if `local_tx` commits.
    ///
    /// 1. Prepares the message durably in `store` (a failure here returns
    ///    [`SendTxError::Prepare`] before `local_tx` runs).
    /// 2. Runs `local_tx`, renewing the record's hold ([`Producer::with_tx_hold`]) for
    ///    as long as it runs, so the checker never asks about a live transaction.
    /// 3. `Ok(value)`: publishes and removes the record → [`TxSent::Published`]; if the
    ///    publish fails, records the message as committed for the checker →
    ///    [`TxSent::Deferred`] (or [`SendTxError::Unpublished`] if even that failed).
    ///    The hold is renewed until this step is done.
    ///    `Err`: removes the record if rolled back ([`SendTxError::RolledBack`]), or
    ///    leaves it for the check-back ([`SendTxError::InDoubt`]).
    ///
    /// The message gets its `traceparent` before it is prepared, so every copy a
    /// checker might publish later is identical, same id included.
    ///
    /// ```
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// use std::sync::Arc;
    /// use ferry_core::*;
    /// use ferry_core::tx::{Destination, LocalTxError, MemoryTxStore, TxStore};
    ///
    /// let driver = Arc::new(MemoryDriver::new());
    /// let q = QueueName::new("orders")?;
    /// driver.create_queue(&q, QueueOptions::default()).await?;
    /// let store = MemoryTxStore::new();
    /// let producer = Producer::new(driver.clone());
    ///
    /// // Committed: the message goes out.
    /// let sent = producer
    ///     .send_tx(&store, Destination::queue(q.clone()), Message::new("order 1 created"), async {
    ///         // insert the order row and commit here
    ///         Ok::<_, LocalTxError>(1)
    ///     })
    ///     .await?;
    /// assert!(sent.is_published());
    ///
    /// // Rolled back: nothing goes out, nothing stays prepared.
    /// let failed = producer
    ///     .send_tx(&store, Destination::queue(q.clone()), Message::new("order 2 created"), async {
    ///         Err::<u32, _>(LocalTxError::rolled_back("out of stock"))
    ///     })
    ///     .await;
    /// assert!(failed.is_err());
    /// assert_eq!(driver.receive(&q, ReceiveOptions::max(10)).await?.len(), 1);
    /// assert_eq!(store.count().await?, 0);
    /// # Ok::<(), Box<dyn std::error::Error>>(()) }).unwrap();
    /// ```
    pub async fn send_tx<T, F>(
        &self,
        store: &dyn TxStore,
        destination: Destination,
        message: Message,
        local_tx: F,
    ) -> std::result::Result<TxSent<T>, SendTxError>
    where
        F: Future<Output = std::result::Result<T, LocalTxError>>,
    {
        let message = self.trace(message);
        let id = message.id().to_string();
        message
            .validate(&self.driver().limits())
            .map_err(SendTxError::Prepare)?;
        let hold = self.tx_hold();
        // An indeterminate prepare may have stored the record. It is not removed here:
        // a remove by id could delete a concurrent retry's record. The local
        // transaction does not run, so the check-back finds nothing and a checker
        // removes it once the hold ran out; until then a retry with the same id gets
        // `AlreadyExists`.
        let token = store
            .prepare(&destination, &message, hold)
            .await
            .map_err(SendTxError::Prepare)?;

        // The hold is renewed until the outcome is settled in the store (removed or
        // marked committed), so no checker claims the record while the producer is
        // still publishing.
        tokio::select! {
            settled = self.settle_tx(store, &destination, message, local_tx) => settled,
            never = keep_holding(store, &id, token, hold) => match never {},
        }
    }

    async fn settle_tx<T, F>(
        &self,
        store: &dyn TxStore,
        destination: &Destination,
        message: Message,
        local_tx: F,
    ) -> std::result::Result<TxSent<T>, SendTxError>
    where
        F: Future<Output = std::result::Result<T, LocalTxError>>,
    {
        let id = message.id().to_string();
        match local_tx.await {
            Ok(value) => self.commit(store, destination, message, value).await,
            Err(e) if e.rolled_back => {
                if let Err(remove) = store.remove(&id).await {
                    tracing::warn!(id, error = %remove, "rolled back, but the prepared message could not be removed; the checker's check-back will remove it");
                }
                Err(SendTxError::RolledBack(e.source))
            }
            Err(e) => Err(SendTxError::InDoubt(e.source)),
        }
    }

    async fn commit<T>(
        &self,
        store: &dyn TxStore,
        destination: &Destination,
        message: Message,
        value: T,
    ) -> std::result::Result<TxSent<T>, SendTxError> {
        let id = message.id().to_string();
        match self.deliver(destination, message.clone()).await {
            Ok(()) => {
                if let Err(e) = store.remove(&id).await {
                    tracing::warn!(id, error = %e, "published, but the prepared message could not be removed; a checker will publish it again under the same id");
                }
                Ok(TxSent::Published { value })
            }
            Err(error) => {
                let retry_at = crate::time::after(REPUBLISH_AFTER);
                // Stores the record as committed even if a checker removed it meanwhile,
                // so from here on a checker owns the message.
                match store
                    .mark_committed(destination, &message, retry_at, &error.to_string())
                    .await
                {
                    Ok(()) => Ok(TxSent::Deferred { value, error }),
                    Err(store_error) => {
                        tracing::error!(id, error = %error, store_error = %store_error, "committed, but neither published nor recorded for the checker");
                        Err(SendTxError::Unpublished {
                            publish: error,
                            store: store_error,
                        })
                    }
                }
            }
        }
    }

    /// Sends or publishes one message to `destination` (used by the checker too).
    pub(crate) async fn deliver(
        &self,
        destination: &Destination,
        message: Message,
    ) -> crate::Result<()> {
        match destination {
            Destination::Queue(queue) => self.send_batch(queue, vec![message]).await.map(drop),
            Destination::Topic { topic, route_key } => self
                .publish_batch(topic, route_key, vec![message])
                .await
                .map(drop),
        }
    }
}
