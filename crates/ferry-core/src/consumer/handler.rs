//! The handler: user code that processes one delivery.

use std::future::Future;

use async_trait::async_trait;

use crate::message::Delivery;
use crate::outcome::{IntoOutcome, Outcome};

/// Processes one delivery and decides its [`Outcome`].
///
/// Any `Fn(Delivery) -> impl Future<Output = impl IntoOutcome>` is a handler, so an async
/// closure returning `()` or `Result<(), E>` works. Implement the trait on a struct when
/// the handler has state.
///
/// ```
/// use ferry_core::{Delivery, Handler, Outcome};
///
/// struct Printer;
///
/// #[async_trait::async_trait]
/// impl Handler for Printer {
///     async fn handle(&self, delivery: Delivery) -> Outcome {
///         println!("{}", String::from_utf8_lossy(&delivery.payload));
///         Outcome::Ack
///     }
/// }
/// ```
#[async_trait]
pub trait Handler: Send + Sync + 'static {
    /// Handles one delivery. A panic counts as a failed attempt; so does running past
    /// the consumer's timeout.
    async fn handle(&self, delivery: Delivery) -> Outcome;
}

#[async_trait]
impl<F, Fut, O> Handler for F
where
    F: Fn(Delivery) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = O> + Send + 'static,
    O: IntoOutcome + 'static,
{
    async fn handle(&self, delivery: Delivery) -> Outcome {
        (self)(delivery).await.into_outcome()
    }
}

/// Processes a batch of deliveries at once and decides one [`Outcome`] per delivery, in
/// order (for example one database round trip for many messages).
///
/// Any `Fn(Vec<Delivery>) -> impl Future<Output = Vec<impl IntoOutcome>>` is a batch
/// handler. Returning fewer outcomes than deliveries fails the missing ones; a panic or
/// timeout fails the whole batch.
///
/// ```
/// use ferry_core::{Delivery, Outcome};
/// let handler = |batch: Vec<Delivery>| async move {
///     batch.iter().map(|d| if d.payload.is_empty() { Outcome::reject("empty") } else { Outcome::Ack }).collect::<Vec<_>>()
/// };
/// # fn takes(_: impl ferry_core::consumer::BatchHandler) {}
/// takes(handler);
/// ```
#[async_trait]
pub trait BatchHandler: Send + Sync + 'static {
    /// Handles `deliveries`; returns one outcome per delivery, in the same order.
    async fn handle_batch(&self, deliveries: Vec<Delivery>) -> Vec<Outcome>;
}

#[async_trait]
impl<F, Fut, O> BatchHandler for F
where
    F: Fn(Vec<Delivery>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Vec<O>> + Send + 'static,
    O: IntoOutcome + 'static,
{
    async fn handle_batch(&self, deliveries: Vec<Delivery>) -> Vec<Outcome> {
        (self)(deliveries)
            .await
            .into_iter()
            .map(IntoOutcome::into_outcome)
            .collect()
    }
}
