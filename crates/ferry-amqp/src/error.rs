//! Mapping lapin's errors onto ferry's.

use ferry_core::{Error, ErrorKind};

/// A lapin error as an outage (`Unavailable`): the connection, the channel or the
/// broker failed the call; the caller may retry.
pub(crate) fn amqp_err(e: lapin::Error) -> Error {
    Error::new(ErrorKind::Unavailable, format!("rabbitmq: {e}")).with_source(e)
}

/// The AMQP reply code of a broker-side error (404 not found, 406 precondition
/// failed, ...), if `e` is one.
pub(crate) fn reply_code(e: &lapin::Error) -> Option<u16> {
    match e.kind() {
        lapin::ErrorKind::ProtocolError(p) => Some(p.get_id()),
        _ => None,
    }
}

/// Whether the broker answered "not found" (a missing queue or exchange).
pub(crate) fn is_not_found(e: &lapin::Error) -> bool {
    reply_code(e) == Some(404)
}
