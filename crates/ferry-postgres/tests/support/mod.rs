//! Shared by the test binaries: the server URL and a schema unique to this run.

#![allow(dead_code)]

use std::sync::OnceLock;

/// `FERRY_TEST_POSTGRES_URL`, default the machine's server, database `test`.
pub fn base_url() -> String {
    std::env::var("FERRY_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_string())
}

/// A fresh schema name `ferry_test_<pid>_<random>`.
pub fn fresh_schema() -> String {
    format!(
        "ferry_test_{}_{:08x}",
        std::process::id(),
        fastrand::u32(..)
    )
}

/// The schema of this test binary (one per process).
pub fn schema() -> &'static str {
    static SCHEMA: OnceLock<String> = OnceLock::new();
    SCHEMA.get_or_init(fresh_schema)
}

/// `base_url()` with `schema=NAME` added.
pub fn url_with_schema(schema: &str) -> String {
    let base = base_url();
    let sep = if base.contains('?') { '&' } else { '?' };
    format!("{base}{sep}schema={schema}")
}
