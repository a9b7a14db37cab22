//! What a handler decides about a delivery, as a value.
//!
//! Handlers return anything that converts into an [`Outcome`] (`()`, `Result<_, E>`, or
//! an `Outcome` itself), the way axum turns handler results into responses. The runtime
//! never has to downcast an error to learn whether to retry.

use std::fmt::Display;
use std::time::Duration;

/// The handler's decision about one delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Processed: remove the message.
    Ack,
    /// Failed this attempt: try again after `after` (or as the retry policy says when
    /// `None`), unless this was the last allowed attempt, then dead-letter it.
    Retry {
        /// Explicit delay before the next attempt.
        after: Option<Duration>,
        /// The error to record.
        error: Option<String>,
    },
    /// Do not try again: move it to the dead letters now.
    DeadLetter {
        /// Why (for example [`crate::reason::REJECTED`]).
        reason: String,
        /// The error to record.
        error: Option<String>,
    },
}

impl Outcome {
    /// A failed attempt with an error, retried under the policy.
    ///
    /// ```
    /// use ferry_core::Outcome;
    /// assert!(matches!(Outcome::fail("boom"), Outcome::Retry { after: None, .. }));
    /// ```
    pub fn fail(error: impl Display) -> Self {
        Outcome::Retry {
            after: None,
            error: Some(error.to_string()),
        }
    }

    /// A failed attempt to retry after `after`.
    pub fn retry_after(after: Duration) -> Self {
        Outcome::Retry {
            after: Some(after),
            error: None,
        }
    }

    /// Reject: dead-letter now with reason `rejected` and this error.
    pub fn reject(error: impl Display) -> Self {
        Outcome::DeadLetter {
            reason: crate::reason::REJECTED.to_string(),
            error: Some(error.to_string()),
        }
    }
}

/// Conversion of handler results into an [`Outcome`].
///
/// ```
/// use ferry_core::{IntoOutcome, Outcome};
/// assert_eq!(().into_outcome(), Outcome::Ack);
/// let failed: Result<(), String> = Err("db down".into());
/// assert_eq!(failed.into_outcome(), Outcome::fail("db down"));
/// ```
pub trait IntoOutcome {
    /// The outcome this value stands for.
    fn into_outcome(self) -> Outcome;
}

impl IntoOutcome for Outcome {
    fn into_outcome(self) -> Outcome {
        self
    }
}

impl IntoOutcome for () {
    fn into_outcome(self) -> Outcome {
        Outcome::Ack
    }
}

impl<T: IntoOutcome, E: Display> IntoOutcome for Result<T, E> {
    fn into_outcome(self) -> Outcome {
        match self {
            Ok(v) => v.into_outcome(),
            Err(e) => Outcome::fail(e),
        }
    }
}
