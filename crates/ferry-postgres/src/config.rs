//! [`PostgresConfig`]: where the server is, which schema holds ferry's tables, and the
//! pool and timeout settings; plus reading ferry's own `schema=` URL parameter.
//!
//! The URL is sqlx's (`postgres://USER:PASS@HOST:PORT/DB?sslmode=...`) with one extra
//! parameter, `schema=NAME`, which ferry takes out before handing the rest to sqlx, so
//! one database can hold several independent ferry installations.

use std::time::Duration;

use ferry_core::{Error, Limits, Result};

/// The schema used when the URL names none.
pub const DEFAULT_SCHEMA: &str = "ferry";

/// Settings of a [`PostgresDriver`](crate::PostgresDriver).
///
/// ```
/// use std::time::Duration;
/// use ferry_postgres::PostgresConfig;
///
/// let config = PostgresConfig::new("postgres://app@db.internal/orders?schema=billing")?
///     .with_pool_size(20)
///     .with_timeout(Duration::from_secs(10));
/// assert_eq!(config.schema(), "billing");
/// assert_eq!(config.url(), "postgres://app@db.internal/orders");
/// # Ok::<(), ferry_core::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PostgresConfig {
    url: String,
    schema: String,
    /// Most connections the driver's pool opens (plus one for `LISTEN`). Default 10.
    pub pool_size: u32,
    /// Bound on every database call (and on getting a connection). Default 5 s.
    pub timeout: Duration,
    /// How often an idle long poll looks again even without a notification (a lost
    /// `LISTEN` connection must not hang it). Default 1 s.
    pub poll_interval: Duration,
    /// How long message history is kept (`None` records none). Default 7 days.
    pub history: Option<Duration>,
    /// Size limits enforced at send.
    pub limits: Limits,
}

impl PostgresConfig {
    /// Reads `url` (`postgres://` or `postgresql://`, optionally with `schema=NAME`,
    /// default [`DEFAULT_SCHEMA`]). `InvalidInput` for another scheme or a schema name
    /// that is not a plain identifier (letters, digits, `_`, not starting with a digit,
    /// at most 48 bytes; folded to lower case, as PostgreSQL folds unquoted names).
    ///
    /// ```
    /// use ferry_postgres::PostgresConfig;
    /// assert_eq!(PostgresConfig::new("postgresql://h/db")?.schema(), "ferry");
    /// assert!(PostgresConfig::new("postgres://h/db?schema=bad-name").is_err());
    /// assert!(PostgresConfig::new("mysql://h/db").is_err());
    /// # Ok::<(), ferry_core::Error>(())
    /// ```
    pub fn new(url: impl Into<String>) -> Result<Self> {
        let url = url.into();
        let url = url.trim();
        let scheme = url.split_once("://").map(|(s, _)| s.to_ascii_lowercase());
        if !matches!(scheme.as_deref(), Some("postgres" | "postgresql")) {
            return Err(Error::invalid_input(format!(
                "'{}' is not a PostgreSQL URL; write postgres://USER@HOST:PORT/DATABASE[?schema=NAME]",
                redact(url)
            )));
        }
        let (base, query) = match url.split_once('?') {
            Some((b, q)) => (b, Some(q)),
            None => (url, None),
        };
        let mut schema = None;
        let mut rest = Vec::new();
        for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
            match pair.split_once('=') {
                Some(("schema", value)) => schema = Some(value.to_string()),
                _ => rest.push(pair),
            }
        }
        let schema = match schema {
            Some(s) => validate_schema(&s)?,
            None => DEFAULT_SCHEMA.to_string(),
        };
        let url = if rest.is_empty() {
            base.to_string()
        } else {
            format!("{base}?{}", rest.join("&"))
        };
        Ok(PostgresConfig {
            url,
            schema,
            pool_size: 10,
            timeout: Duration::from_secs(5),
            poll_interval: Duration::from_secs(1),
            history: Some(Duration::from_secs(7 * 86_400)),
            limits: Limits::default(),
        })
    }

    /// Uses schema `schema` instead of the URL's (same rules as the URL parameter).
    ///
    /// ```
    /// let c = ferry_postgres::PostgresConfig::new("postgres://h/db")?.with_schema("Tenant_7")?;
    /// assert_eq!(c.schema(), "tenant_7");
    /// # Ok::<(), ferry_core::Error>(())
    /// ```
    pub fn with_schema(mut self, schema: &str) -> Result<Self> {
        self.schema = validate_schema(schema)?;
        Ok(self)
    }

    /// Sets the pool size (at least 1).
    pub fn with_pool_size(mut self, size: u32) -> Self {
        self.pool_size = size.max(1);
        self
    }

    /// Sets the bound on every database call.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Sets the message-history retention (`None` keeps no history).
    pub fn with_history(mut self, retention: Option<Duration>) -> Self {
        self.history = retention;
        self
    }

    /// The URL handed to sqlx: the one given, without `schema=`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The schema holding ferry's tables.
    pub fn schema(&self) -> &str {
        &self.schema
    }
}

/// Checks a schema name and folds it to lower case.
fn validate_schema(name: &str) -> Result<String> {
    let ok = !name.is_empty()
        && name.len() <= 48
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
        && !name.as_bytes()[0].is_ascii_digit();
    if !ok {
        return Err(Error::invalid_input(format!(
            "schema name '{}' is not valid: use 1 to 48 letters, digits or '_', not starting with a digit (like schema=ferry)",
            name.escape_default()
        )));
    }
    Ok(name.to_ascii_lowercase())
}

/// `url` with any password replaced by `***`, for messages and logs.
pub(crate) fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let (authority, tail) = match rest.find(['/', '?']) {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    match authority.rsplit_once('@') {
        Some((user, host)) if user.contains(':') => {
            let name = user.split(':').next().unwrap_or("");
            format!("{scheme}://{name}:***@{host}{tail}")
        }
        _ => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_parameter_is_taken_out() -> Result<()> {
        let c = PostgresConfig::new("postgres://u@h:5/db?sslmode=disable&schema=abc&x=1")?;
        assert_eq!(c.schema(), "abc");
        assert_eq!(c.url(), "postgres://u@h:5/db?sslmode=disable&x=1");
        let c = PostgresConfig::new("POSTGRESQL://h/db?schema=Ab_1")?;
        assert_eq!(c.schema(), "ab_1");
        Ok(())
    }

    #[test]
    fn bad_schemas_are_invalid_input() {
        for bad in ["", "1a", "a-b", "a;drop", "a b", "\"x\"", &"x".repeat(49)] {
            let url = format!("postgres://h/db?schema={bad}");
            let err = PostgresConfig::new(url).err();
            assert_eq!(
                err.map(|e| e.kind()),
                Some(ferry_core::ErrorKind::InvalidInput),
                "{bad}"
            );
        }
    }

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(
            redact("postgres://u:secret@h/db?x=1"),
            "postgres://u:***@h/db?x=1"
        );
        assert_eq!(redact("postgres://h/db"), "postgres://h/db");
    }
}
