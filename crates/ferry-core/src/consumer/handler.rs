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
