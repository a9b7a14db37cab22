//! # ferry-core
//!
//! The heart of ferry, reliable messaging for services: the message model, the
//! [`Driver`] contract every backend implements, AMQP-style [route-key
//! matching](route_matches), errors with kinds, the [`Consumer`] runtime and the
//! in-memory [`MemoryDriver`].
//!
//! Backends live in their own crates (`ferry-embedded`, ...); the `ferry` facade crate
//! picks one from a URL.
//!
//! ```
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! use ferry_core::*;
//!
//! let driver = MemoryDriver::new();
//! let orders = QueueName::new("orders")?;
//! driver.create_queue(&orders, QueueOptions::default()).await?;
//! driver.send(&orders, vec![Message::new(r#"{"order":42}"#)]).await?;
//!
//! let batch = driver.receive(&orders, ReceiveOptions::max(10)).await?;
//! for delivery in &batch {
//!     driver.ack(&delivery.receipt).await?;
//! }
//! # Ok::<(), Error>(()) }).unwrap();
//! ```

pub mod consumer;
mod driver;
mod duration;
mod error;
mod idempotency;
mod memory;
mod message;
mod name;
mod outcome;
mod producer;
mod redrive;
mod retry;
mod route;
pub mod time;
pub mod tx;
pub mod wire;

pub use consumer::{Consumer, ConsumerBuilder, ConsumerReport, Handler};
pub use driver::{
    DeadLetterQuery, DeadLetters, Driver, PublishReport, ReceiveOptions, Selection, SendReport,
    SettleAction, Settlement, Topology,
};
pub use duration::{format_duration, parse_duration};
pub use error::{BoxError, Error, ErrorKind, Result};
pub use idempotency::{Claim, ClaimToken, IdempotencyStore, MemoryIdempotencyStore};
pub use memory::MemoryDriver;
pub use message::{
    Binding, DeadLetter, Delay, Delivery, HistoryEvent, Limits, MAX_DELAY, MAX_LEASE, Message,
    QueueInfo, QueueOptions, QueueStats, Receipt, reason,
};
pub use name::{
    MAX_ID_LEN, MAX_NAME_LEN, MAX_ROUTE_KEY_LEN, QueueName, TopicName, validate_message_id,
    validate_pattern, validate_route_key,
};
pub use outcome::{IntoOutcome, Outcome};
pub use producer::{DEFAULT_TX_HOLD, Producer, TRACEPARENT, new_traceparent};
pub use redrive::{
    DEFAULT_REDRIVE_EVERY, DEFAULT_REDRIVE_MAX, MAX_REDRIVE_BACKOFF, RedriveReport, Redriver,
    RedriverBuilder,
};
pub use retry::{Backoff, RetryPolicy};
pub use route::route_matches;
