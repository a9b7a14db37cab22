//! Names and identifiers, validated once at the edge.
//!
//! Queue and topic names end up as SQLite values, Redis keys, RabbitMQ queue names,
//! PostgreSQL values and URL path segments. Restricting them to a small, portable
//! alphabet means the same name works on every backend and never needs escaping.
//! Validation happens when a [`QueueName`]/[`TopicName`] is built, so everything past
//! that point can trust it.

use std::fmt;
use std::str::FromStr;

use crate::error::{Error, ErrorKind, Result};

/// Longest queue or topic name, in bytes.
pub const MAX_NAME_LEN: usize = 128;
/// Longest message id, in bytes.
pub const MAX_ID_LEN: usize = 255;
/// Longest route key or binding pattern, in bytes (RabbitMQ's limit).
pub const MAX_ROUTE_KEY_LEN: usize = 255;

fn validate_name(what: &str, name: &str) -> Result<()> {
    if name.is_empty() {
        return Err(Error::new(
            ErrorKind::InvalidName,
            format!(
                "{what} name is empty; use 1 to {MAX_NAME_LEN} characters from A-Z a-z 0-9 _ - ."
            ),
        ));
    }
    if name.len() > MAX_NAME_LEN {
        return Err(Error::new(
            ErrorKind::InvalidName,
            format!(
                "{what} name is {} bytes long; the limit is {MAX_NAME_LEN}",
                name.len()
            ),
        ));
    }
    if let Some(bad) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')))
    {
        return Err(Error::new(
            ErrorKind::InvalidName,
            format!(
                "{what} name '{}' contains {bad:?}; use only A-Z a-z 0-9 _ - .",
                name.escape_default()
            ),
        ));
    }
    if name.starts_with('.') || name.starts_with('-') {
        return Err(Error::new(
            ErrorKind::InvalidName,
            format!("{what} name '{name}' must start with a letter, a digit or '_'"),
        ));
    }
    Ok(())
}

macro_rules! name_type {
    ($(#[$doc:meta])* $ty:ident, $what:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $ty(String);

        impl $ty {
            /// Validates `name` and wraps it.
            pub fn new(name: impl Into<String>) -> Result<Self> {
                let name = name.into();
                validate_name($what, &name)?;
                Ok($ty(name))
            }

            /// The name as a string slice.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl FromStr for $ty {
            type Err = Error;
            fn from_str(s: &str) -> Result<Self> {
                $ty::new(s)
            }
        }

        impl AsRef<str> for $ty {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
    };
}

name_type!(
    /// A validated queue name: 1 to 128 bytes of `A-Z a-z 0-9 _ - .`, not starting
    /// with `.` or `-`.
    ///
    /// ```
    /// use ferry_core::QueueName;
    /// assert!(QueueName::new("orders.paid").is_ok());
    /// assert!(QueueName::new("").is_err());
    /// assert!(QueueName::new("no spaces").is_err());
    /// ```
    QueueName,
    "queue"
);

name_type!(
    /// A validated topic name; same alphabet as [`QueueName`].
    ///
    /// ```
    /// use ferry_core::TopicName;
    /// assert!(TopicName::new("events").is_ok());
    /// assert!(TopicName::new("ev/ents").is_err());
    /// ```
    TopicName,
    "topic"
);

/// Checks a message id: 1 to 255 bytes, no control characters.
///
/// ```
/// assert!(ferry_core::validate_message_id("order-42").is_ok());
/// assert!(ferry_core::validate_message_id("").is_err());
/// assert!(ferry_core::validate_message_id("a\nb").is_err());
/// ```
pub fn validate_message_id(id: &str) -> Result<()> {
    if id.is_empty() {
        return Err(Error::new(
            ErrorKind::InvalidName,
            "message id is empty; omit it to get a generated one",
        ));
    }
    if id.len() > MAX_ID_LEN {
        return Err(Error::new(
            ErrorKind::InvalidName,
            format!(
                "message id is {} bytes long; the limit is {MAX_ID_LEN}",
                id.len()
            ),
        ));
    }
    if id.chars().any(char::is_control) {
        return Err(Error::new(
            ErrorKind::InvalidName,
            format!(
                "message id '{}' contains a control character",
                id.escape_default()
            ),
        ));
    }
    Ok(())
}

fn validate_words(what: &str, s: &str, allow_wildcards: bool) -> Result<()> {
    if s.len() > MAX_ROUTE_KEY_LEN {
        return Err(Error::new(
            ErrorKind::InvalidInput,
            format!(
                "{what} is {} bytes long; the limit is {MAX_ROUTE_KEY_LEN}",
                s.len()
            ),
        ));
    }
    if s.is_empty() {
        return Ok(());
    }
    for word in s.split('.') {
        if allow_wildcards && (word == "*" || word == "#") {
            continue;
        }
        if let Some(bad) = word
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | ':')))
        {
            let hint = if matches!(bad, '*' | '#') {
                if allow_wildcards {
                    "; '*' and '#' must be whole words (between dots)"
                } else {
                    "; wildcards belong in binding patterns, not in route keys"
                }
            } else {
                "; words use A-Z a-z 0-9 _ - : and are separated by '.'"
            };
            return Err(Error::new(
                ErrorKind::InvalidInput,
                format!("{what} '{}' contains {bad:?}{hint}", s.escape_default()),
            ));
        }
    }
    Ok(())
}

/// Checks a route key: dot-separated words of `A-Z a-z 0-9 _ - :`, at most 255 bytes.
/// The empty key is valid (zero words); empty words (`a..b`) are allowed as in AMQP.
///
/// ```
/// assert!(ferry_core::validate_route_key("order.eu.paid").is_ok());
/// assert!(ferry_core::validate_route_key("order.*").is_err());
/// ```
pub fn validate_route_key(key: &str) -> Result<()> {
    validate_words("route key", key, false)
}

/// Checks a binding pattern: like a route key, but a word may be `*` (exactly one word)
/// or `#` (zero or more words).
///
/// ```
/// assert!(ferry_core::validate_pattern("order.*.paid").is_ok());
/// assert!(ferry_core::validate_pattern("order.#").is_ok());
/// assert!(ferry_core::validate_pattern("order.pa*").is_err());
/// ```
pub fn validate_pattern(pattern: &str) -> Result<()> {
    validate_words("binding pattern", pattern, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queue_names() {
        for ok in ["a", "orders", "orders.paid", "o_1-x", &"q".repeat(128)] {
            assert!(QueueName::new(ok).is_ok(), "{ok}");
        }
        for bad in ["", ".a", "-a", "a b", "a/b", "ä", &"q".repeat(129), "a*"] {
            let err = QueueName::new(bad).expect_err(bad);
            assert_eq!(err.kind(), ErrorKind::InvalidName);
        }
    }

    #[test]
    fn errors_name_the_problem() {
        let err = QueueName::new("my queue").expect_err("space");
        assert!(err.to_string().contains("' '"), "{err}");
        let err = validate_pattern("a.b*").expect_err("partial wildcard");
        assert!(err.to_string().contains("whole words"), "{err}");
    }
}
