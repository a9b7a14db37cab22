//! Two-phase (transactional) messages: a message goes out if and only if the business
//! transaction that produced it committed.
//!
//! The bus ferry replaces had a two-phase sender with a check-back callback, and three
//! holes: prepared messages were orphaned when nobody resolved them, a failed publish
//! after the commit was reported as success, and a local transaction that outlived its
//! timeout could lose its message. Here:
//!
//! 1. [`Producer::send_tx`](crate::Producer::send_tx) **prepares** the message durably
//!    in a [`TxStore`] (nothing is visible to consumers yet), then runs the caller's
//!    local transaction while *holding* the prepared record (the hold is renewed until
//!    the outcome is settled in the store, so a slow transaction is never checked
//!    behind a live producer's back), then **commits** (publishes, then removes the
//!    record) or **rolls back** (removes the record).
//! 2. The message to publish is the producer's own copy, not a flag on the record, so a
//!    checker that already resolved the record cannot make a later commit lose it.
//! 3. A publish that fails after the commit stores the record as committed
//!    ([`TxState::Committed`]), even if a checker removed it meanwhile, and `send_tx`
//!    says so ([`TxSent::Deferred`]); if even that write fails it returns
//!    [`SendTxError::Unpublished`]. It never reports a publish that did not happen,
//!    and never `Deferred` unless a checker owns the message.
//! 4. A [`TxChecker`] (run it in one or many processes) claims records whose hold ran
//!    out (their producer died, or lost the store), asks the user's [`CheckBack`]
//!    whether the transaction committed, and publishes, removes, or asks again later
//!    with backoff. After the configured number of *unknown* answers it dead-letters
//!    the message with reason [`reason::TX_CHECK_EXHAUSTED`](crate::reason) so an
//!    operator decides. Nothing is orphaned.
//! 5. Claims are fenced and timed: a checker removes only a record its claim still
//!    holds ([`TxStore::remove_claimed`]), so a commit recorded while it asked wins.
//!    Two checkers can both publish one record only when a claim expired mid-publish,
//!    and then both copies carry the same message id, so the backend's duplicate-id
//!    check and idempotent consumers make it harmless.
//!
//! Stores: [`MemoryTxStore`] (tests), and one per durable backend: the embedded store,
//! Redis and PostgreSQL (their crates). A store keeps a record as the opaque bytes of
//! [`encode_prepared`] plus a few indexed columns.

mod checker;
mod errors;
mod memory;
mod record;
mod send;
mod store;

pub use checker::{CheckBack, TxCheckReport, TxChecker, TxCheckerBuilder, TxStatus};
pub use errors::{already_prepared, held_elsewhere, not_found, readable, validate_store_name};
pub use memory::MemoryTxStore;
pub use record::{decode_prepared, encode_prepared};
pub use send::{LocalTxError, SendTxError, TxSent};
pub use store::{Claimed, Destination, Prepared, Reschedule, TxState, TxStore, TxToken};
