//! Error mapping and helpers to read script replies.

use ferry_core::{Error, ErrorKind, Result};
use redis::Value;

/// Whether the failed command may have changed data (decides Indeterminate vs Unavailable).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Op {
    Read,
    Write,
}

/// Maps a redis-rs error to a ferry error. A timeout or a dropped connection during a
/// write is `Indeterminate` (the script may have run); a refused connection is
/// `Unavailable` (nothing was sent), and so is a server that refused to act for now.
pub(crate) fn map_err(e: redis::RedisError, op: Op, what: &str) -> Error {
    // Answers of a server that did nothing and will do it later: a demoted master or
    // replica (READONLY), a master cut from its replicas or a cluster missing a slot
    // (MASTERDOWN, CLUSTERDOWN), a slot being moved (TRYAGAIN), a restart loading its
    // data (LOADING), a master short of the replicas `min-replicas-to-write` asks for
    // (NOREPLICAS), a script running too long (BUSY: nothing of ours ran).
    let busy = matches!(
        e.code(),
        Some(
            "READONLY"
                | "MASTERDOWN"
                | "CLUSTERDOWN"
                | "TRYAGAIN"
                | "LOADING"
                | "NOREPLICAS"
                | "BUSY"
        )
    );
    let kind = if e.kind() == redis::ErrorKind::InvalidClientConfig {
        ErrorKind::InvalidInput
    } else if e.is_connection_refusal() || busy {
        ErrorKind::Unavailable
    } else if e.is_timeout() {
        match op {
            Op::Read => ErrorKind::Timeout,
            Op::Write => ErrorKind::Indeterminate,
        }
    } else if e.is_io_error() || e.is_connection_dropped() || e.is_unrecoverable_error() {
        match op {
            Op::Read => ErrorKind::Unavailable,
            Op::Write => ErrorKind::Indeterminate,
        }
    } else {
        ErrorKind::Internal
    };
    let hint = match kind {
        ErrorKind::Indeterminate => {
            "; the outcome is unknown: retry with the same message ids (duplicates are dropped while queued)"
        }
        ErrorKind::Unavailable | ErrorKind::Timeout => "; is redis-server running and reachable?",
        _ => "",
    };
    Error::new(kind, format!("redis: cannot {what}{hint}")).with_source(e)
}

fn bad_reply(what: &str) -> Error {
    Error::internal(format!("redis: unexpected script reply ({what})"))
}

/// The elements of an array reply.
pub(crate) fn array(v: Value) -> Result<Vec<Value>> {
    match v {
        Value::Array(items) | Value::Set(items) => Ok(items),
        _ => Err(bad_reply("expected an array")),
    }
}

/// An integer (or a decimal string) reply.
pub(crate) fn int(v: &Value) -> Result<i64> {
    match v {
        Value::Int(n) => Ok(*n),
        Value::BulkString(b) => std::str::from_utf8(b)
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| bad_reply("expected a number")),
        Value::SimpleString(s) => s.parse().map_err(|_| bad_reply("expected a number")),
        _ => Err(bad_reply("expected an integer")),
    }
}

/// A binary string reply.
pub(crate) fn bytes(v: Value) -> Result<Vec<u8>> {
    match v {
        Value::BulkString(b) => Ok(b),
        Value::SimpleString(s) => Ok(s.into_bytes()),
        Value::Int(n) => Ok(n.to_string().into_bytes()),
        _ => Err(bad_reply("expected a string")),
    }
}

/// A UTF-8 string reply.
pub(crate) fn string(v: Value) -> Result<String> {
    String::from_utf8(bytes(v)?).map_err(|_| bad_reply("expected UTF-8"))
}

/// Reads an array reply element by element.
#[derive(Debug)]
pub(crate) struct Reader(std::vec::IntoIter<Value>);

impl Reader {
    pub(crate) fn new(v: Value) -> Result<Self> {
        Ok(Reader(array(v)?.into_iter()))
    }

    pub(crate) fn next(&mut self) -> Result<Value> {
        self.0.next().ok_or_else(|| bad_reply("too short"))
    }

    pub(crate) fn has_more(&self) -> bool {
        self.0.len() > 0
    }

    pub(crate) fn int(&mut self) -> Result<i64> {
        int(&self.next()?)
    }

    pub(crate) fn bytes(&mut self) -> Result<Vec<u8>> {
        bytes(self.next()?)
    }

    pub(crate) fn string(&mut self) -> Result<String> {
        string(self.next()?)
    }
}
