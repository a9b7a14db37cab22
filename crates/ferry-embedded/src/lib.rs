//! # ferry-embedded
//!
//! ferry's default backend: durable queues in one SQLite file, no server. Several
//! processes can use one data directory at once (a worker consuming while another
//! shell sends, inspects stats or requeues dead letters).
//!
//! - **Durable**: SQLite in WAL mode with `synchronous=FULL`; `send` returns after the
//!   commit is fsynced. Concurrent operations share commits through a group-commit
//!   writer thread, so durability costs one fsync per batch, not per message.
//! - **Leases** are fenced with a random token per delivery; an expired lease is
//!   reclaimed by the next receive (and counts as an attempt).
//! - **Delays** live in the same table, indexed by due time: millions of delayed
//!   messages cost disk, not memory.
//! - **Integrity**: every message carries a CRC-32; a mismatch is dead-lettered with
//!   reason `corrupt`, never delivered. A damaged file is an error of kind
//!   [`ErrorKind::Corrupt`](ferry_core::ErrorKind::Corrupt), never a panic.
//! - **Versioned**: the file header carries ferry's application id and the format
//!   version; a newer format is refused with a clear error, an older one is upgraded
//!   in place on first open.
//!
//! ```
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! use ferry_core::*;
//! use ferry_embedded::EmbeddedDriver;
//!
//! let dir = tempfile::tempdir().unwrap();
//! let driver = EmbeddedDriver::open(dir.path())?;
//! let q = QueueName::new("jobs")?;
//! driver.create_queue(&q, QueueOptions::default()).await?;
//! driver.send(&q, vec![Message::new("hello")]).await?;
//! let got = driver.receive(&q, ReceiveOptions::max(1)).await?;
//! driver.ack(&got[0].receipt).await?;
//! # Ok::<(), Error>(()) }).unwrap();
//! ```

mod driver;
mod error;
mod history;
mod idempotency;
mod migrate;
mod ops;
mod redrive;
mod schema;
mod tx;
mod writer;

pub use driver::{CommitStats, EmbeddedDriver, EmbeddedOptions};
pub use idempotency::EmbeddedIdempotencyStore;
pub use migrate::FORMAT_VERSION;
pub use tx::EmbeddedTxStore;

/// The name of the database file inside a data directory.
pub const DATA_FILE: &str = "ferry.db";
