//! Errors as values with kinds.
//!
//! Every fallible call in ferry returns [`Error`]: a machine-readable [`ErrorKind`], a
//! human sentence saying what went wrong and what to do, and optionally the underlying
//! cause. Callers branch on the kind (never on the text); the runtime asks
//! [`Error::is_transient`] to choose between "back off and try again" and "give up".

use std::fmt;

/// A boxed error from a lower layer (an I/O error, a client library's error).
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// A `Result` whose error is ferry's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What kind of failure an [`Error`] is. Match on this, never on the message text.
///
/// New kinds may be added in minor releases, so a `match` needs a wildcard arm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// A queue, topic or message name/id is not valid (empty, too long, bad characters).
    InvalidName,
    /// Some other input is not valid: an option value, a pattern, a header, a duration.
    InvalidInput,
    /// A payload (or the whole message) is larger than the configured limit.
    TooLarge,
    /// The named queue does not exist.
    QueueNotFound,
    /// The named topic does not exist.
    TopicNotFound,
    /// The message or dead letter asked for does not exist.
    MessageNotFound,
    /// The thing to create exists already in a way that conflicts.
    AlreadyExists,
    /// A publish matched no binding of the topic, so the message would go nowhere.
    Unroutable,
    /// The receipt's lease expired and the message was handed out again (or it was
    /// settled already): the ack, retry, dead-letter or extend was not applied.
    StaleReceipt,
    /// The receipt was not produced by this driver or is malformed.
    InvalidReceipt,
    /// The operation may or may not have been applied (for example a timeout after
    /// the write was sent). Retry with the same message id to be safe.
    Indeterminate,
    /// The backend is temporarily unreachable or busy; retrying later may succeed.
    Unavailable,
    /// The operation took longer than allowed.
    Timeout,
    /// Stored data failed an integrity check (torn or corrupted file, bad checksum).
    Corrupt,
    /// The data was written by a newer version of ferry, or is not ferry data at all.
    IncompatibleFormat,
    /// Bytes from the wire or the store could not be decoded as a ferry envelope.
    Decode,
    /// A local I/O failure (disk full, permission denied, ...).
    Io,
    /// The driver does not support this operation.
    Unsupported,
    /// The component was shut down.
    Closed,
    /// A bug in ferry or in a driver: the invariant named in the message broke.
    Internal,
}

impl ErrorKind {
    /// A short, stable, snake_case name for logs, metrics and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::InvalidName => "invalid_name",
            ErrorKind::InvalidInput => "invalid_input",
            ErrorKind::TooLarge => "too_large",
            ErrorKind::QueueNotFound => "queue_not_found",
            ErrorKind::TopicNotFound => "topic_not_found",
            ErrorKind::MessageNotFound => "message_not_found",
            ErrorKind::AlreadyExists => "already_exists",
            ErrorKind::Unroutable => "unroutable",
            ErrorKind::StaleReceipt => "stale_receipt",
            ErrorKind::InvalidReceipt => "invalid_receipt",
            ErrorKind::Indeterminate => "indeterminate",
            ErrorKind::Unavailable => "unavailable",
            ErrorKind::Timeout => "timeout",
            ErrorKind::Corrupt => "corrupt",
            ErrorKind::IncompatibleFormat => "incompatible_format",
            ErrorKind::Decode => "decode_error",
            ErrorKind::Io => "io",
            ErrorKind::Unsupported => "unsupported",
            ErrorKind::Closed => "closed",
            ErrorKind::Internal => "internal",
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// ferry's error: a [`kind`](Error::kind), a message for humans, an optional cause.
///
/// ```
/// use ferry_core::{Error, ErrorKind};
///
/// let err = Error::new(ErrorKind::QueueNotFound, "queue 'orders' does not exist");
/// assert_eq!(err.kind(), ErrorKind::QueueNotFound);
/// assert!(!err.is_transient());
/// assert_eq!(err.to_string(), "queue 'orders' does not exist");
/// ```
#[derive(Debug)]
pub struct Error {
    kind: ErrorKind,
    message: String,
    source: Option<BoxError>,
}

impl Error {
    /// An error of `kind` with a human-readable `message` (lower case, says what to do).
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Error {
            kind,
            message: message.into(),
            source: None,
        }
    }

    /// Attaches the underlying cause.
    ///
    /// ```
    /// use ferry_core::{Error, ErrorKind};
    /// let io = std::io::Error::other("disk full");
    /// let err = Error::new(ErrorKind::Io, "cannot write the data file").with_source(io);
    /// assert!(std::error::Error::source(&err).is_some());
    /// ```
    pub fn with_source(mut self, source: impl Into<BoxError>) -> Self {
        self.source = Some(source.into());
        self
    }

    /// What kind of failure this is.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The human-readable message, without the cause.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// Whether trying the same operation again later may succeed (connection loss,
    /// busy backend, timeout, indeterminate outcome). Input errors are never transient.
    ///
    /// ```
    /// use ferry_core::{Error, ErrorKind};
    /// assert!(Error::new(ErrorKind::Unavailable, "redis is down").is_transient());
    /// assert!(!Error::new(ErrorKind::TooLarge, "payload too large").is_transient());
    /// ```
    pub fn is_transient(&self) -> bool {
        matches!(
            self.kind,
            ErrorKind::Unavailable | ErrorKind::Timeout | ErrorKind::Indeterminate
        )
    }

    /// Shorthand for an [`ErrorKind::InvalidInput`] error.
    pub fn invalid_input(message: impl Into<String>) -> Self {
        Error::new(ErrorKind::InvalidInput, message)
    }

    /// Shorthand for an [`ErrorKind::Internal`] error.
    pub fn internal(message: impl Into<String>) -> Self {
        Error::new(ErrorKind::Internal, message)
    }

    /// Shorthand for an [`ErrorKind::QueueNotFound`] error naming the fix.
    pub fn queue_not_found(queue: &str) -> Self {
        Error::new(
            ErrorKind::QueueNotFound,
            format!("queue '{queue}' does not exist; create it first (ferry queue create {queue})"),
        )
    }

    /// Shorthand for an [`ErrorKind::TopicNotFound`] error naming the fix.
    pub fn topic_not_found(topic: &str) -> Self {
        Error::new(
            ErrorKind::TopicNotFound,
            format!("topic '{topic}' does not exist; create it first (ferry topic create {topic})"),
        )
    }

    /// The [`ErrorKind::Unroutable`] error every driver returns when no binding of
    /// `topic` matches `route_key`.
    pub fn unroutable(topic: &str, route_key: &str) -> Self {
        Error::new(
            ErrorKind::Unroutable,
            format!(
                "no binding of topic '{topic}' matches route key '{route_key}'; nothing was published (bind a queue with: ferry topic bind {topic} QUEUE PATTERN)"
            ),
        )
    }

    /// Shorthand for an [`ErrorKind::StaleReceipt`] error.
    pub fn stale_receipt(queue: &str, id: &str) -> Self {
        Error::new(
            ErrorKind::StaleReceipt,
            format!(
                "receipt for message '{id}' in queue '{queue}' is stale: its lease expired and the \
                 message was delivered again, or it was already settled"
            ),
        )
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)?;
        if let Some(source) = &self.source {
            write!(f, ": {source}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_ref()
            .map(|s| s.as_ref() as &(dyn std::error::Error + 'static))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_includes_source() {
        let err = Error::new(ErrorKind::Io, "cannot open data file")
            .with_source(std::io::Error::other("permission denied"));
        assert_eq!(err.to_string(), "cannot open data file: permission denied");
    }

    #[test]
    fn transient_kinds() {
        for kind in [
            ErrorKind::Unavailable,
            ErrorKind::Timeout,
            ErrorKind::Indeterminate,
        ] {
            assert!(Error::new(kind, "x").is_transient(), "{kind}");
        }
        for kind in [
            ErrorKind::InvalidName,
            ErrorKind::StaleReceipt,
            ErrorKind::Corrupt,
        ] {
            assert!(!Error::new(kind, "x").is_transient(), "{kind}");
        }
    }
}
