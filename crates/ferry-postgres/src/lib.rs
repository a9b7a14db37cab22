//! # ferry-postgres
//!
//! ferry's PostgreSQL backend: durable queues in tables of one schema (default
//! `ferry`), shared by every process that connects to it. User guide:
//! `docs/postgres.md`.
//!
//! - **Durable** as PostgreSQL makes a commit: `send` and `publish` return after their
//!   transaction committed (`synchronous_commit` decides what that means).
//! - **Receive** leases rows with `FOR UPDATE SKIP LOCKED`: concurrent receivers never
//!   share a message and never wait on each other. Leases are fenced by a random token
//!   in the row; an expired lease is reclaimed by the next receive and counts as an
//!   attempt (on the last one the message is dead-lettered as `lease_expired`).
//! - **Long polls** wake on `LISTEN`/`NOTIFY`, so a send in any process wakes a waiting
//!   receive at once; a short poll covers delays falling due and a lost listener.
//! - **One clock**: every instant is epoch milliseconds from the server's clock.
//! - **Versioned schema**: sqlx migrations (`migrations/0001_queues.sql`, ...) run at
//!   connect under an advisory lock; a schema a newer ferry upgraded is refused with
//!   [`ErrorKind::IncompatibleFormat`](ferry_core::ErrorKind::IncompatibleFormat).
//!
//! Tables (all in the schema): `queues`, `topics`, `bindings`, `messages` (live
//! messages: ready, delayed, leased), `dead_letters`, `history` (finished lifecycles),
//! `idempotency`, and sqlx's `_sqlx_migrations`.
//!
//! ```no_run
//! # async fn demo() -> ferry_core::Result<()> {
//! use ferry_core::*;
//! use ferry_postgres::PostgresDriver;
//!
//! let driver = PostgresDriver::connect("postgres://postgres@127.0.0.1:5432/app").await?;
//! let q = QueueName::new("jobs")?;
//! driver.create_queue(&q, QueueOptions::default()).await?;
//! driver.send(&q, vec![Message::new("hello")]).await?;
//! let got = driver.receive(&q, ReceiveOptions::max(1)).await?;
//! driver.ack(&got[0].receipt).await?;
//! # Ok(()) }
//! ```

mod config;
mod dead_letters;
mod driver;
mod error;
mod history;
mod idempotency;
mod migrate;
mod notify;
mod outbox;
mod receive;
mod relay;
mod send;
mod settle;
mod stats;
mod topology;
mod tx;

pub use config::{DEFAULT_SCHEMA, PostgresConfig};
pub use driver::PostgresDriver;
pub use idempotency::PostgresIdempotencyStore;
pub use outbox::Outbox;
pub use relay::{Refusal, Relay, RelayBuilder, RelayEvent, RelayReport, RoundReport};
pub use tx::PostgresTxStore;
