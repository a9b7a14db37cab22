//! Mapping lapin's errors onto ferry's.

use ferry_core::{Error, ErrorKind};

pub(crate) fn amqp_err(e: lapin::Error) -> Error {
    Error::new(ErrorKind::Unavailable, format!("rabbitmq: {e}")).with_source(e)
}

pub(crate) fn is_not_found(e: &lapin::Error) -> bool {
    e.to_string().contains("NOT_FOUND") || e.to_string().contains("404")
}
