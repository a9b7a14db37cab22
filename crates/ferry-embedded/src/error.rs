//! Mapping SQLite failures onto ferry's error kinds.

use ferry_core::{Error, ErrorKind};
use rusqlite::ffi::ErrorCode;

/// Converts a SQLite error into a ferry error, saying what it means for the operator.
pub(crate) fn from_sqlite(context: &str, e: rusqlite::Error) -> Error {
    let kind = match &e {
        rusqlite::Error::SqliteFailure(f, _) => match f.code {
            ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked => ErrorKind::Unavailable,
            ErrorCode::DatabaseCorrupt => ErrorKind::Corrupt,
            ErrorCode::NotADatabase => ErrorKind::IncompatibleFormat,
            ErrorCode::DiskFull
            | ErrorCode::SystemIoFailure
            | ErrorCode::CannotOpen
            | ErrorCode::PermissionDenied
            | ErrorCode::ReadOnly => ErrorKind::Io,
            _ => ErrorKind::Internal,
        },
        // STRICT tables guarantee column types, so a value of the wrong type or invalid
        // UTF-8 in a TEXT column can only come from damage to the file.
        rusqlite::Error::Utf8Error(..)
        | rusqlite::Error::FromSqlConversionFailure(..)
        | rusqlite::Error::InvalidColumnType(..)
        | rusqlite::Error::IntegralValueOutOfRange(..) => ErrorKind::Corrupt,
        _ => ErrorKind::Internal,
    };
    let hint = match kind {
        ErrorKind::Unavailable => {
            "; another process held the data file's write lock too long, try again"
        }
        ErrorKind::Corrupt => {
            "; the data file is damaged (torn write or outside modification): restore it from a backup, or inspect it with sqlite3's .recover"
        }
        ErrorKind::IncompatibleFormat => {
            "; the file is not a ferry data file (or is damaged beyond recognition)"
        }
        ErrorKind::Io => "; check free disk space and file permissions",
        _ => "",
    };
    Error::new(kind, format!("{context}{hint}")).with_source(e)
}

/// Extension to attach context to SQLite results.
pub(crate) trait Context<T> {
    /// Maps the error with [`from_sqlite`].
    fn ctx(self, context: &str) -> Result<T, Error>;
}

impl<T> Context<T> for Result<T, rusqlite::Error> {
    fn ctx(self, context: &str) -> Result<T, Error> {
        self.map_err(|e| from_sqlite(context, e))
    }
}
