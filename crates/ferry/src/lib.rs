//! # ferry
//!
//! Reliable messaging for services: durable queues, topics with AMQP-style route keys,
//! delays, priorities, leases, retries with backoff and dead letters you can inspect and
//! requeue.
//!
//! This is the crate applications depend on. It re-exports everything from
//! `ferry-core` (the message model, the [`Driver`] contract, the [`Consumer`] runtime,
//! the in-memory driver) and the backends compiled into this build, and [`connect`]
//! picks a backend from a URL, so the same code runs on the embedded store today and on
//! a server tomorrow by changing one string.
//!
//! | URL | backend | feature |
//! |---|---|---|
//! | `file:PATH` | embedded on-disk store in directory `PATH` ([`embedded`]) | `embedded` (default) |
//! | `memory:` | in-process, nothing survives the process ([`MemoryDriver`]) | always |
//! | `redis://`, `rediss://`, `redis+sentinel://`, `redis+cluster://` | Redis ([`connect_async`]) | `redis` (default) |
//! | `amqp://`, `amqps://` | RabbitMQ ([`connect_async`]) | `amqp` (default) |
//! | `postgres://USER@HOST:PORT/DB[?schema=NAME]` (or `postgresql://`) | PostgreSQL, tables in schema `NAME` (default `ferry`) ([`connect_async`]) | `postgres` (default) |
//!
//! ```
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! use ferry::*;
//!
//! let dir = tempfile::tempdir().unwrap();
//! let driver = ferry::connect(&format!("file:{}", dir.path().display()))?;
//! let orders = QueueName::new("orders")?;
//! driver.create_queue(&orders, QueueOptions::default()).await?;
//! driver.send(&orders, vec![Message::new(r#"{"order":42}"#)]).await?;
//!
//! let report = Consumer::builder(orders)
//!     .until_empty(true)
//!     .build(driver, |d: Delivery| async move {
//!         println!("processing {}", d.id);
//!         Ok::<(), std::io::Error>(())
//!     })
//!     .run(std::future::pending())
//!     .await?;
//! assert_eq!(report.acked, 1);
//! # Ok::<(), Error>(()) }).unwrap();
//! ```

pub use ferry_core::*;

/// The RabbitMQ backend (`amqp://`, `amqps://` URLs): see [`amqp::AmqpDriver`].
#[cfg(feature = "amqp")]
pub use ferry_amqp as amqp;
/// The embedded, durable, on-disk backend (`file:` URLs): see [`embedded::EmbeddedDriver`].
#[cfg(feature = "embedded")]
pub use ferry_embedded as embedded;
/// The PostgreSQL backend (`postgres://`, `postgresql://` URLs): see
/// [`postgres::PostgresDriver`].
#[cfg(feature = "postgres")]
pub use ferry_postgres as postgres;
#[cfg(feature = "redis")]
pub use ferry_redis as redis;

use std::sync::Arc;

/// The backend used when nothing is configured: the embedded store in `./ferry-data`.
pub const DEFAULT_BACKEND: &str = "file:./ferry-data";

/// URL schemes of server backends that exist in the ferry project but may not be
/// compiled into this build.
const SERVER_SCHEMES: &[&str] = &[
    "redis",
    "rediss",
    "redis+sentinel",
    "redis+cluster",
    "amqp",
    "amqps",
    "postgres",
    "postgresql",
];

/// The URL forms this build accepts, for error messages.
fn available() -> String {
    let mut forms = available_without_amqp().to_string();
    if cfg!(feature = "amqp") {
        forms.push_str(", or amqp[s]://USER:PASS@HOST:PORT/VHOST (through connect_async)");
    }
    if cfg!(feature = "postgres") {
        forms.push_str(
            ", or postgres://USER@HOST:PORT/DATABASE[?schema=NAME] (through connect_async)",
        );
    }
    forms
}

fn available_without_amqp() -> &'static str {
    match (cfg!(feature = "embedded"), cfg!(feature = "redis")) {
        (true, true) => {
            "file:PATH (embedded, like file:./ferry-data), memory:, or redis[s]://HOST:PORT, redis+sentinel://HOSTS/MASTER, redis+cluster://HOSTS (through connect_async)"
        }
        (true, false) => "file:PATH (embedded, like file:./ferry-data) or memory:",
        (false, true) => {
            "memory: or redis[s]://HOST:PORT, redis+sentinel://HOSTS/MASTER, redis+cluster://HOSTS (through connect_async)"
        }
        (false, false) => "memory:",
    }
}

/// Opens the backend named by `url`, including the ones that connect over the network
/// (`redis://HOST:PORT` with the `redis` feature, `amqp://USER:PASS@HOST:PORT/VHOST` with
/// the `amqp` feature, `postgres://USER@HOST:PORT/DATABASE[?schema=NAME]` with the
/// `postgres` feature, all on by default); otherwise the same as [`connect`].
///
/// ```no_run
/// # async fn demo() -> ferry::Result<()> {
/// let driver = ferry::connect_async("redis://127.0.0.1:6379").await?;
/// # let _ = driver; Ok(()) }
/// ```
pub async fn connect_async(url: &str) -> Result<Arc<dyn Driver>> {
    let trimmed = url.trim();
    #[cfg(feature = "redis")]
    if is_redis(trimmed) {
        return Ok(Arc::new(ferry_redis::RedisDriver::connect(trimmed).await?));
    }
    #[cfg(feature = "amqp")]
    if is_amqp(trimmed) {
        return Ok(Arc::new(ferry_amqp::AmqpDriver::connect(trimmed).await?));
    }
    #[cfg(feature = "postgres")]
    if is_postgres(trimmed) {
        return Ok(Arc::new(
            ferry_postgres::PostgresDriver::connect(trimmed).await?,
        ));
    }
    connect(trimmed)
}

/// Whether `url` names a PostgreSQL server (`postgres://`, `postgresql://`).
fn is_postgres(url: &str) -> bool {
    url.split_once("://").is_some_and(|(scheme, _)| {
        matches!(
            scheme.to_ascii_lowercase().as_str(),
            "postgres" | "postgresql"
        )
    })
}

/// Whether `url` names a RabbitMQ broker (`amqp://`, `amqps://`).
fn is_amqp(url: &str) -> bool {
    url.split_once("://")
        .is_some_and(|(scheme, _)| matches!(scheme.to_ascii_lowercase().as_str(), "amqp" | "amqps"))
}

/// Whether `url` names a Redis deployment (`redis://`, `rediss://`, `redis+sentinel://`,
/// `redis+cluster://` and their TLS forms).
fn is_redis(url: &str) -> bool {
    url.split_once("://").is_some_and(|(scheme, _)| {
        matches!(
            scheme.to_ascii_lowercase().as_str(),
            "redis"
                | "rediss"
                | "redis+sentinel"
                | "rediss+sentinel"
                | "redis+cluster"
                | "rediss+cluster"
        )
    })
}

/// The backend URL to use when none was given: `FERRY_BACKEND` if set and not empty;
/// else, with the `redis` feature, the Redis deployment that `REDIS_MODE`, `REDIS_ADDRS`,
/// `REDIS_MASTER_NAME` and `REDIS_PASSWORD` describe (the variables of the Redis Streams
/// tool ferry replaces), if either of the first two is set; else [`DEFAULT_BACKEND`].
///
/// Errors: [`ErrorKind::InvalidInput`] when the `REDIS_*` variables are inconsistent
/// (for example `REDIS_MODE=sentinel` without `REDIS_MASTER_NAME`).
pub fn backend_from_env() -> Result<String> {
    if let Ok(url) = std::env::var("FERRY_BACKEND")
        && !url.trim().is_empty()
    {
        return Ok(url);
    }
    #[cfg(feature = "redis")]
    if let Some(url) = ferry_redis::Deployment::url_from_vars(|k| std::env::var(k).ok()) {
        return url;
    }
    Ok(DEFAULT_BACKEND.to_string())
}

/// Opens the backend named by `url` and returns it as a shareable driver.
///
/// - `file:PATH` (or `file:///abs/path`): the embedded store in directory `PATH`,
///   created if missing. Needs the `embedded` feature (on by default).
/// - `memory:`: an empty in-process driver; nothing survives the process.
///
/// Errors: [`ErrorKind::InvalidInput`] when `url` is not a backend URL (the message lists
/// the accepted forms); [`ErrorKind::Unsupported`] for a known backend that this build
/// does not include (`redis://`, `amqp://`, `postgres://`, ...); whatever the backend
/// reports when it cannot open (for the embedded store: `Io`, `Corrupt`,
/// `IncompatibleFormat`).
///
/// ```
/// use ferry::ErrorKind;
///
/// let memory = ferry::connect("memory:")?;
/// # let _ = memory;
///
/// let dir = tempfile::tempdir().unwrap();
/// let embedded = ferry::connect(&format!("file:{}", dir.path().display()))?;
/// # let _ = embedded;
///
/// assert_eq!(ferry::connect("file:").unwrap_err().kind(), ErrorKind::InvalidInput);
/// assert_eq!(ferry::connect("nonsense").unwrap_err().kind(), ErrorKind::InvalidInput);
/// assert_eq!(
///     ferry::connect("redis://localhost:6379").unwrap_err().kind(),
///     ErrorKind::Unsupported
/// );
/// # Ok::<(), ferry::Error>(())
/// ```
pub fn connect(url: &str) -> Result<Arc<dyn Driver>> {
    let url = url.trim();
    if url == "memory:" || url == "memory://" {
        return Ok(Arc::new(MemoryDriver::new()));
    }
    if url.starts_with("memory:") {
        return Err(Error::invalid_input(format!(
            "backend URL '{url}': the memory backend takes no path; write memory:"
        )));
    }
    if let Some(rest) = url.strip_prefix("file:") {
        // `file:///abs` and `file://./rel` are accepted alongside the short `file:PATH`.
        let path = rest.strip_prefix("//").unwrap_or(rest);
        return open_file(url, path);
    }
    if let Some((scheme, _)) = url.split_once("://") {
        let scheme = scheme.to_ascii_lowercase();
        if (is_redis(url) && cfg!(feature = "redis"))
            || (is_amqp(url) && cfg!(feature = "amqp"))
            || (is_postgres(url) && cfg!(feature = "postgres"))
        {
            return Err(Error::new(
                ErrorKind::Unsupported,
                format!("'{url}' connects over the network: open it with ferry::connect_async"),
            ));
        }
        if SERVER_SCHEMES.contains(&scheme.as_str()) {
            return Err(Error::new(
                ErrorKind::Unsupported,
                format!(
                    "the {scheme} backend is not part of this build of ferry; this build has {}",
                    available()
                ),
            ));
        }
    }
    let hint = if !url.is_empty() && !url.contains(':') {
        format!(" (for a data directory, write file:{url})")
    } else {
        String::new()
    };
    Err(Error::invalid_input(format!(
        "'{url}' is not a backend URL{hint}; this build accepts {}",
        available()
    )))
}

#[cfg(feature = "embedded")]
fn open_file(_url: &str, path: &str) -> Result<Arc<dyn Driver>> {
    if path.trim().is_empty() {
        return Err(Error::invalid_input(
            "backend URL 'file:' has no path; name the data directory, like file:./ferry-data",
        ));
    }
    Ok(Arc::new(ferry_embedded::EmbeddedDriver::open(path)?))
}

#[cfg(not(feature = "embedded"))]
fn open_file(url: &str, _path: &str) -> Result<Arc<dyn Driver>> {
    Err(Error::new(
        ErrorKind::Unsupported,
        format!(
            "'{url}' needs the embedded backend, which is not part of this build (enable ferry's `embedded` feature); this build has {}",
            available()
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn memory_works() -> Result<()> {
        let d = connect("memory:")?;
        let q = QueueName::new("q")?;
        d.create_queue(&q, QueueOptions::default()).await?;
        d.send(&q, vec![Message::new("x")]).await?;
        assert_eq!(d.stats(Some(&q)).await?[0].ready, 1);
        Ok(())
    }

    #[cfg(feature = "embedded")]
    #[tokio::test]
    async fn file_is_durable_across_connects() -> Result<()> {
        let dir =
            tempfile::tempdir().map_err(|e| Error::new(ErrorKind::Io, "tempdir").with_source(e))?;
        let url = format!("file:{}", dir.path().join("data").display());
        let q = QueueName::new("q")?;
        {
            let d = connect(&url)?;
            d.create_queue(&q, QueueOptions::default()).await?;
            d.send(&q, vec![Message::new("x").with_id("m1")]).await?;
        }
        let d = connect(&url)?;
        let got = d.receive(&q, ReceiveOptions::max(10)).await?;
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].id, "m1");
        Ok(())
    }

    #[cfg(feature = "embedded")]
    #[test]
    fn file_url_forms() -> Result<()> {
        let dir =
            tempfile::tempdir().map_err(|e| Error::new(ErrorKind::Io, "tempdir").with_source(e))?;
        connect(&format!("file://{}", dir.path().join("a").display()))?;
        assert!(
            dir.path()
                .join("a")
                .join(ferry_embedded::DATA_FILE)
                .exists()
        );
        Ok(())
    }

    #[test]
    fn empty_file_path_is_invalid_and_names_the_form() {
        for url in ["file:", "file:  ", "file://"] {
            let err = connect(url).err().map(|e| (e.kind(), e.to_string()));
            let Some((kind, text)) = err else {
                panic!("{url} should fail");
            };
            assert_eq!(kind, ErrorKind::InvalidInput, "{url}");
            assert!(text.contains("file:./ferry-data"), "{text}");
        }
    }

    /// `postgres://` through `connect_async` gives the PostgreSQL driver (the test server
    /// at 127.0.0.1:5432, or `FERRY_TEST_POSTGRES_URL`), in a schema of its own.
    #[cfg(feature = "postgres")]
    #[tokio::test]
    async fn postgres_through_connect_async() -> Result<()> {
        let base = std::env::var("FERRY_TEST_POSTGRES_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_string());
        let sep = if base.contains('?') { '&' } else { '?' };
        let url = format!("{base}{sep}schema=ferry_test_facade_{}", std::process::id());
        let d = connect_async(&url).await?;
        let q = QueueName::new("facade")?;
        d.create_queue(&q, QueueOptions::default()).await?;
        d.send(&q, vec![Message::new("x")]).await?;
        let got = d.receive(&q, ReceiveOptions::max(1)).await?;
        assert_eq!(got.len(), 1);
        d.ack(&got[0].receipt).await?;
        d.delete_queue(&q).await?;
        Ok(())
    }

    #[test]
    fn server_backends_are_unsupported_here() {
        for url in [
            "redis://localhost:6379",
            "rediss://h",
            "redis+sentinel://h",
            "redis+cluster://h",
            "amqp://guest:guest@localhost:5672/%2f",
            "postgres://localhost/ferry",
            "postgresql://localhost/ferry",
        ] {
            let err = connect(url).err();
            let Some(err) = err else {
                panic!("{url} should fail");
            };
            assert_eq!(err.kind(), ErrorKind::Unsupported, "{url}");
            let text = err.to_string();
            assert!(
                text.contains("this build has") || text.contains("connect_async"),
                "{err}"
            );
        }
    }

    #[test]
    fn unknown_text_is_invalid_input_listing_forms() {
        for url in ["", "nonsense", "http://x", "memory:abc", "./data"] {
            let err = connect(url).err();
            let Some(err) = err else {
                panic!("{url} should fail");
            };
            assert_eq!(err.kind(), ErrorKind::InvalidInput, "{url}");
        }
        let err = connect("./data").err().map(|e| e.to_string());
        assert!(err.is_some_and(|t| t.contains("file:./data")));
        let err = connect("http://x").err().map(|e| e.to_string());
        assert!(err.is_some_and(|t| t.contains("memory:")));
    }
}
