//! User callbacks around a delivery: the dead-letter hook and the `ensure` check.

use std::future::Future;
use std::time::SystemTime;

use async_trait::async_trait;

use crate::error::BoxError;
use crate::message::Delivery;
use crate::name::QueueName;

/// What a [`FailHook`] learns about a message that was just dead-lettered.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct DeadLetterEvent {
    /// The queue.
    pub queue: QueueName,
    /// The message id.
    pub id: String,
    /// Why (see [`crate::reason`]).
    pub reason: String,
    /// The last error, if any.
    pub error: Option<String>,
    /// Deliveries it had.
    pub attempts: u32,
    /// When it was dead-lettered.
    pub at: SystemTime,
}

/// Runs after a message was moved to the dead letters (for example to alert someone).
///
/// It runs only once the move is durable, so its failure can never lose the message:
/// a failing hook is logged and counted in the report, and the dead letter stays.
///
/// Any `Fn(DeadLetterEvent) -> impl Future<Output = Result<(), E>>` is a hook.
///
/// ```
/// use ferry_core::consumer::DeadLetterEvent;
/// let hook = |e: DeadLetterEvent| async move {
///     eprintln!("{} died: {}", e.id, e.reason);
///     Ok::<(), std::io::Error>(())
/// };
/// # fn takes(_: impl ferry_core::consumer::FailHook) {}
/// takes(hook);
/// ```
#[async_trait]
pub trait FailHook: Send + Sync + 'static {
    /// Called once per dead-lettered message.
    async fn on_dead_letter(&self, event: DeadLetterEvent) -> Result<(), BoxError>;
}

#[async_trait]
impl<F, Fut, E> FailHook for F
where
    F: Fn(DeadLetterEvent) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), E>> + Send + 'static,
    E: Into<BoxError> + 'static,
{
    async fn on_dead_letter(&self, event: DeadLetterEvent) -> Result<(), BoxError> {
        (self)(event).await.map_err(Into::into)
    }
}

/// Answers "did this message's effect already happen?" when the idempotency store
/// found that an earlier worker died mid-handler (a suspected duplicate). `Ok(true)`
/// acks without running the handler; `Ok(false)` runs it; an error fails the attempt.
///
/// Any `Fn(Delivery) -> impl Future<Output = Result<bool, E>>` is an `Ensure`.
///
/// ```
/// let ensure = |d: ferry_core::Delivery| async move {
///     // look the order up in the database by d.id ...
///     Ok::<bool, std::io::Error>(false)
/// };
/// # fn takes(_: impl ferry_core::consumer::Ensure) {}
/// takes(ensure);
/// ```
#[async_trait]
pub trait Ensure: Send + Sync + 'static {
    /// Whether the effect of `delivery` already happened.
    async fn already_done(&self, delivery: Delivery) -> Result<bool, BoxError>;
}

#[async_trait]
impl<F, Fut, E> Ensure for F
where
    F: Fn(Delivery) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<bool, E>> + Send + 'static,
    E: Into<BoxError> + 'static,
{
    async fn already_done(&self, delivery: Delivery) -> Result<bool, BoxError> {
        (self)(delivery).await.map_err(Into::into)
    }
}
