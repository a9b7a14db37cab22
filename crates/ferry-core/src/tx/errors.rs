//! The errors every [`TxStore`](super::TxStore) returns, and the store-name rule, so
//! the four stores say the same thing in the same words.

use crate::error::{Error, ErrorKind, Result};

/// `MessageNotFound`: no prepared message with this id.
///
/// ```
/// assert_eq!(ferry_core::tx::not_found("m-1").kind(), ferry_core::ErrorKind::MessageNotFound);
/// ```
pub fn not_found(id: &str) -> Error {
    Error::new(
        ErrorKind::MessageNotFound,
        format!("no prepared message '{id}'"),
    )
}

/// `StaleReceipt`: the token no longer holds the record (a checker claimed it, or
/// the producer marked it committed).
///
/// ```
/// assert_eq!(ferry_core::tx::held_elsewhere("m-1").kind(), ferry_core::ErrorKind::StaleReceipt);
/// ```
pub fn held_elsewhere(id: &str) -> Error {
    Error::new(
        ErrorKind::StaleReceipt,
        format!(
            "prepared message '{id}' is held by someone else now (claimed by a checker, or marked committed)"
        ),
    )
}

/// `AlreadyExists`: a record with this message id is in the store.
pub fn already_prepared(id: &str) -> Error {
    Error::new(
        ErrorKind::AlreadyExists,
        format!("a prepared message with id '{id}' exists"),
    )
}

/// Checks the name of a separately named store: 1 to 128 letters, digits, `-`, `_`, `.`.
///
/// ```
/// assert!(ferry_core::tx::validate_store_name("billing.eu").is_ok());
/// assert!(ferry_core::tx::validate_store_name("a b").is_err());
/// ```
pub fn validate_store_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 128
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
    if ok {
        Ok(())
    } else {
        Err(Error::invalid_input(format!(
            "transaction store name '{name}' must be 1 to 128 letters, digits, '-', '_' or '.'"
        )))
    }
}

/// A record read back from a store, or `None` (logged at ERROR) if this ferry cannot
/// read it: written by a newer ferry, or damaged. Stores skip such records in claims
/// and listings instead of failing them all; a claimed one stays re-timed by its lease,
/// for a checker that can read it.
///
/// ```
/// use ferry_core::{Error, tx::readable};
/// assert_eq!(readable(Ok::<_, Error>(1)), Some(1));
/// assert_eq!(readable::<u8>(Err(Error::internal("bad bytes"))), None);
/// ```
pub fn readable<T>(record: Result<T>) -> Option<T> {
    record
        .map_err(|e| tracing::error!(error = %e, "skipping an unreadable prepared message"))
        .ok()
}
