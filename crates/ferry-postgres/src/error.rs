//! Mapping sqlx and PostgreSQL failures onto ferry's error kinds, so callers can tell
//! "the server is down, try again" from "this input is wrong" from "the outcome of
//! this send is unknown".

use ferry_core::{Error, ErrorKind};

/// Converts a sqlx error into a ferry error, saying what it means for the operator.
pub(crate) fn from_sqlx(context: &str, e: sqlx::Error) -> Error {
    let kind = kind_of(&e);
    let hint = match kind {
        ErrorKind::Unavailable => "; PostgreSQL is unreachable or busy, try again",
        ErrorKind::Timeout => "; PostgreSQL did not answer in time",
        ErrorKind::Io => "; PostgreSQL is out of disk space or memory",
        _ => "",
    };
    Error::new(kind, format!("{context}{hint}")).with_source(e)
}

/// Like [`from_sqlx`] for a failed `COMMIT`: a connection lost while committing may or
/// may not have committed, so that is [`ErrorKind::Indeterminate`] (retry with the
/// same ids); an error the server answered (the transaction was rolled back) maps as
/// usual.
pub(crate) fn from_commit(context: &str, e: sqlx::Error) -> Error {
    match kind_of(&e) {
        ErrorKind::Unavailable | ErrorKind::Timeout if !matches!(e, sqlx::Error::Database(_)) => {
            Error::new(
                ErrorKind::Indeterminate,
                format!(
                    "{context}: the connection failed during the commit, so it may or may not have been applied; retry with the same message ids"
                ),
            )
            .with_source(e)
        }
        _ => from_sqlx(context, e),
    }
}

fn kind_of(e: &sqlx::Error) -> ErrorKind {
    match e {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::WorkerCrashed
        | sqlx::Error::BeginFailed => ErrorKind::Unavailable,
        sqlx::Error::PoolClosed => ErrorKind::Closed,
        sqlx::Error::Configuration(_) | sqlx::Error::InvalidArgument(_) => ErrorKind::InvalidInput,
        sqlx::Error::Database(db) => db.code().map_or(ErrorKind::Internal, |c| by_sqlstate(&c)),
        sqlx::Error::ColumnDecode { .. } | sqlx::Error::Decode(_) => ErrorKind::Corrupt,
        _ => ErrorKind::Internal,
    }
}

/// PostgreSQL's SQLSTATE classes (appendix A of its manual).
fn by_sqlstate(code: &str) -> ErrorKind {
    match code {
        // Serialization failure, deadlock: the server asks for a retry.
        "40001" | "40P01" => ErrorKind::Unavailable,
        // Query canceled (statement_timeout), lock timeout.
        "57014" | "55P03" => ErrorKind::Timeout,
        // Disk full, out of memory.
        "53100" | "53200" => ErrorKind::Io,
        // Invalid authorization, missing database, insufficient privilege.
        c if c.starts_with("28") || c == "3D000" || c == "42501" => ErrorKind::InvalidInput,
        // Connection exceptions, too many connections, shutdown / recovery in progress.
        c if c.starts_with("08") || c.starts_with("53") || c.starts_with("57P") => {
            ErrorKind::Unavailable
        }
        // Data exceptions: a value PostgreSQL will not store.
        c if c.starts_with("22") => ErrorKind::InvalidInput,
        _ => ErrorKind::Internal,
    }
}

/// Extension to attach context to sqlx results.
pub(crate) trait Context<T> {
    /// Maps the error with [`from_sqlx`].
    fn ctx(self, context: &str) -> Result<T, Error>;
}

impl<T> Context<T> for Result<T, sqlx::Error> {
    fn ctx(self, context: &str) -> Result<T, Error> {
        self.map_err(|e| from_sqlx(context, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds() {
        assert_eq!(
            kind_of(&sqlx::Error::Io(std::io::Error::other("reset"))),
            ErrorKind::Unavailable
        );
        assert_eq!(kind_of(&sqlx::Error::PoolTimedOut), ErrorKind::Unavailable);
        assert_eq!(by_sqlstate("57P01"), ErrorKind::Unavailable);
        assert_eq!(by_sqlstate("28P01"), ErrorKind::InvalidInput);
        assert_eq!(by_sqlstate("22021"), ErrorKind::InvalidInput);
        assert_eq!(by_sqlstate("57014"), ErrorKind::Timeout);
        assert_eq!(
            from_commit("send", sqlx::Error::Io(std::io::Error::other("reset"))).kind(),
            ErrorKind::Indeterminate
        );
    }
}
