//! Creating and upgrading ferry's schema with sqlx's migrator, and refusing a schema
//! that a newer ferry upgraded.
//!
//! The migrations are the versioned SQL files in `migrations/` (`0001_queues.sql`, ...),
//! compiled into the binary. They run on one dedicated connection whose `search_path`
//! is the ferry schema, and the migrator's own bookkeeping table lives in that schema
//! too (`SCHEMA._sqlx_migrations`), so two ferry schemas in one database are upgraded
//! independently. sqlx takes a PostgreSQL advisory lock (per database) around the whole
//! run, so processes connecting at once take turns: the first applies the migrations,
//! the others find them applied.
//!
//! A database with an applied migration this binary does not know was upgraded by a
//! newer ferry: `connect` fails with [`ErrorKind::IncompatibleFormat`] instead of
//! running old code against a newer layout.

use ferry_core::{Error, ErrorKind, Result};
use sqlx::migrate::{MigrateError, Migrator};
use sqlx::{Connection, PgConnection};

use crate::error::from_sqlx;

/// The migrations compiled into this binary.
fn migrator(schema: &str) -> Migrator {
    let mut m = sqlx::migrate!("./migrations");
    m.create_schema(schema.to_string());
    m.dangerous_set_table_name(format!("{schema}._sqlx_migrations"));
    m
}

/// The newest migration version this binary knows.
pub(crate) fn latest_version() -> i64 {
    migrator("ferry")
        .iter()
        .map(|m| m.version)
        .max()
        .unwrap_or(0)
}

/// Brings `schema` up to this binary's version on `conn` (whose `search_path` is the
/// schema), then closes the connection.
pub(crate) async fn run(mut conn: PgConnection, schema: &str) -> Result<()> {
    let result = migrator(schema).run_direct(None, &mut conn, false).await;
    // The advisory lock goes with the connection, also when the run failed half-way.
    let _ = conn.close().await;
    result.map_err(|e| migrate_error(schema, e))
}

fn migrate_error(schema: &str, e: MigrateError) -> Error {
    let known = latest_version();
    match e {
        MigrateError::VersionMissing(v) => Error::new(
            ErrorKind::IncompatibleFormat,
            format!(
                "schema '{schema}' has migration {v} applied, which this ferry does not know (it knows versions 1 to {known}): a newer ferry upgraded the schema; upgrade ferry to use it"
            ),
        ),
        MigrateError::VersionMismatch(v) => Error::new(
            ErrorKind::IncompatibleFormat,
            format!(
                "migration {v} in schema '{schema}' differs from the one this ferry ships: the schema was made by another ferry build; use the same ferry version everywhere"
            ),
        ),
        MigrateError::Dirty(v) => Error::new(
            ErrorKind::Corrupt,
            format!(
                "migration {v} in schema '{schema}' was only partly applied; restore the schema from a backup"
            ),
        ),
        MigrateError::Execute(inner) | MigrateError::ExecuteMigration(inner, _) => from_sqlx(
            &format!("cannot create or upgrade schema '{schema}'"),
            inner,
        ),
        other => Error::new(
            ErrorKind::Internal,
            format!("cannot create or upgrade schema '{schema}'"),
        )
        .with_source(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_migration_is_version_1() {
        let m = migrator("ferry");
        let first = m
            .iter()
            .next()
            .map(|m| (m.version, m.description.to_string()));
        assert_eq!(first, Some((1, "queues".to_string())));
        assert!(latest_version() >= 1);
    }
}
