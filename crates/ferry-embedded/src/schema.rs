//! The on-disk format: one SQLite database, versioned in its file header.
//!
//! SQLite's header carries two 32-bit fields for applications: `application_id` marks
//! the file as ferry's (`FRRY`), `user_version` is the format version. Opening a file
//! with another application id, or a newer format than this build knows, fails with
//! [`ErrorKind::IncompatibleFormat`] before anything is read or written; an older
//! format is upgraded in place (`migrate.rs`).
//!
//! `messages` holds live messages in three states (ready, delayed, leased). One index
//! serves both hot queries through the `lane` column:
//! - ready messages have `lane = 255 - priority`, so `ORDER BY lane, avail_at, seq`
//!   is "highest priority first, then the time it became ready, then send order";
//! - delayed and leased messages have `lane = 0`, so "which of them are due"
//!   (`state = ? AND lane = 0 AND avail_at <= now`) is one contiguous index range,
//!   even with millions of delayed messages, none of which is ever loaded to find it.
//!
//! Full description: `docs/embedded-format.md`.

use ferry_core::{Error, ErrorKind};
use rusqlite::Connection;

use crate::error::Context;
use crate::migrate::{FORMAT_VERSION, schema_sql, upgrade_sql};

/// `FRRY` in ASCII: marks a SQLite file as ferry's.
pub(crate) const APPLICATION_ID: i32 = 0x4652_5259;

/// `messages.state` of a message deliverable now.
pub(crate) const STATE_READY: i64 = 0;
/// `messages.state` of a message waiting for its delay or retry backoff.
/// (State 2 is "leased"; the SQL spells the states as literals so the index use is plain.)
pub(crate) const STATE_DELAYED: i64 = 1;

/// Format 1's schema, frozen: later formats are this plus `migrate.rs`'s migrations.
pub(crate) const SCHEMA_V1: &str = "
CREATE TABLE queues (
    qid              INTEGER PRIMARY KEY,
    name             TEXT NOT NULL UNIQUE,
    default_delay_ms INTEGER NOT NULL,
    max_attempts     INTEGER NOT NULL,
    lease_ms         INTEGER NOT NULL,
    created_at       INTEGER NOT NULL
) STRICT;
CREATE TABLE topics (
    name       TEXT PRIMARY KEY,
    created_at INTEGER NOT NULL
) STRICT;
CREATE TABLE bindings (
    topic   TEXT NOT NULL,
    queue   TEXT NOT NULL,
    pattern TEXT NOT NULL,
    PRIMARY KEY (topic, queue, pattern)
) STRICT;
CREATE TABLE messages (
    seq             INTEGER PRIMARY KEY,
    qid             INTEGER NOT NULL,
    id              TEXT NOT NULL,
    state           INTEGER NOT NULL,
    lane            INTEGER NOT NULL,
    priority        INTEGER NOT NULL,
    avail_at        INTEGER NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    lease_token     INTEGER,
    enqueued_at     INTEGER NOT NULL,
    route_key       TEXT,
    headers         TEXT,
    payload         BLOB NOT NULL,
    checksum        INTEGER NOT NULL,
    last_error      TEXT,
    first_failed_at INTEGER,
    events          TEXT NOT NULL DEFAULT ''
) STRICT;
CREATE UNIQUE INDEX messages_by_id ON messages (qid, id);
CREATE INDEX messages_by_lane ON messages (qid, state, lane, avail_at, seq);
CREATE TABLE dead_letters (
    seq             INTEGER PRIMARY KEY,
    qid             INTEGER NOT NULL,
    id              TEXT NOT NULL,
    priority        INTEGER NOT NULL,
    enqueued_at     INTEGER NOT NULL,
    route_key       TEXT,
    headers         TEXT,
    payload         BLOB NOT NULL,
    checksum        INTEGER NOT NULL,
    attempts        INTEGER NOT NULL,
    reason          TEXT NOT NULL,
    last_error      TEXT,
    first_failed_at INTEGER,
    dead_at         INTEGER NOT NULL,
    events          TEXT NOT NULL DEFAULT ''
) STRICT;
CREATE INDEX dead_letters_by_queue ON dead_letters (qid);
CREATE INDEX dead_letters_by_id ON dead_letters (qid, id);
CREATE TABLE idempotency (
    key        TEXT PRIMARY KEY,
    state      INTEGER NOT NULL,
    token      INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
) STRICT, WITHOUT ROWID;
CREATE INDEX idempotency_by_expiry ON idempotency (state, expires_at);
CREATE TABLE history (
    seq    INTEGER PRIMARY KEY,
    qid    INTEGER NOT NULL,
    id     TEXT NOT NULL,
    at     INTEGER NOT NULL,
    events TEXT NOT NULL
) STRICT;
CREATE INDEX history_by_id ON history (qid, id);
";

/// Per-connection settings: WAL, fsync on every commit, wait for other processes' locks.
pub(crate) fn configure(conn: &Connection) -> Result<(), Error> {
    conn.busy_timeout(std::time::Duration::from_secs(10))
        .ctx("cannot configure the data file")?;
    conn.pragma_update(None, "synchronous", "FULL")
        .ctx("cannot configure the data file")?;
    conn.pragma_update(None, "foreign_keys", "OFF")
        .ctx("cannot configure the data file")?;
    Ok(())
}

/// Checks the header and creates the schema on a new file, under the write lock so two
/// processes opening a fresh directory at once cannot both create it.
pub(crate) fn open_or_create(conn: &mut Connection, path: &str) -> Result<(), Error> {
    let mode: String = conn
        .query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))
        .ctx(&format!("cannot open data file {path}"))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(Error::new(
            ErrorKind::Io,
            format!(
                "data file {path} cannot use write-ahead logging (got journal mode {mode}); put it on a local file system"
            ),
        ));
    }
    let txn = conn
        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
        .ctx(&format!("cannot lock data file {path}"))?;
    let app_id: i32 = txn
        .query_row("PRAGMA application_id", [], |r| r.get(0))
        .ctx(&format!("cannot read the header of {path}"))?;
    let version: i32 = txn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .ctx(&format!("cannot read the header of {path}"))?;
    let tables: i64 = txn
        .query_row("SELECT count(*) FROM sqlite_schema", [], |r| r.get(0))
        .ctx(&format!("cannot read the schema of {path}"))?;
    if app_id == 0 && version == 0 && tables == 0 {
        txn.execute_batch(&schema_sql(FORMAT_VERSION))
            .ctx(&format!("cannot create the schema in {path}"))?;
        txn.pragma_update(None, "application_id", APPLICATION_ID)
            .ctx("cannot write the header")?;
        txn.pragma_update(None, "user_version", FORMAT_VERSION)
            .ctx("cannot write the header")?;
        txn.commit()
            .ctx(&format!("cannot create the schema in {path}"))?;
        return Ok(());
    }
    if app_id != APPLICATION_ID {
        return Err(Error::new(
            ErrorKind::IncompatibleFormat,
            format!(
                "{path} is a SQLite file but not a ferry data file (application id {app_id:#x}); point --backend at a ferry data directory"
            ),
        ));
    }
    if version > FORMAT_VERSION {
        return Err(Error::new(
            ErrorKind::IncompatibleFormat,
            format!(
                "{path} has format version {version}, written by a newer ferry; this ferry reads up to version {FORMAT_VERSION}: upgrade ferry"
            ),
        ));
    }
    if version < 1 {
        return Err(Error::new(
            ErrorKind::IncompatibleFormat,
            format!("{path} has format version {version}, which no ferry release wrote"),
        ));
    }
    let expected = schema_rows_of(&schema_sql(version))?;
    let actual = schema_rows(&txn).map_err(|e| {
        Error::new(
            ErrorKind::Corrupt,
            format!("the schema of {path} cannot be read; the file is damaged"),
        )
        .with_source(e)
    })?;
    if actual != expected {
        return Err(Error::new(
            ErrorKind::Corrupt,
            format!(
                "the schema of {path} is not ferry's format {version} schema: the file is damaged or was modified by hand; restore it from a backup"
            ),
        ));
    }
    if version < FORMAT_VERSION {
        // Under the write lock taken above: a process opening the file meanwhile waits,
        // then finds the new version; a failure leaves the file at its old version.
        txn.execute_batch(&upgrade_sql(version)).ctx(&format!(
            "cannot upgrade {path} from format {version} to {FORMAT_VERSION}"
        ))?;
        txn.pragma_update(None, "user_version", FORMAT_VERSION)
            .ctx("cannot write the header")?;
        tracing::info!(
            path,
            from = version,
            to = FORMAT_VERSION,
            "upgraded the data file's format"
        );
    }
    txn.commit().ctx("cannot release the data file lock")?;
    Ok(())
}

type SchemaRow = (String, String, String, Option<String>);

fn schema_rows(conn: &Connection) -> rusqlite::Result<Vec<SchemaRow>> {
    let mut stmt =
        // sqlite_stat* tables appear when an operator runs ANALYZE or PRAGMA optimize:
        // harmless, and not part of the format.
        conn.prepare(
            "SELECT type, name, tbl_name, sql FROM sqlite_schema
             WHERE name NOT LIKE 'sqlite_stat%' ORDER BY type, name",
        )?;
    let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?;
    rows.collect()
}

/// The `sqlite_schema` rows that `sql` creates, from a scratch in-memory database: the
/// reference a data file's schema must match exactly.
fn schema_rows_of(sql: &str) -> Result<Vec<SchemaRow>, Error> {
    let scratch = Connection::open_in_memory().ctx("cannot build the reference schema")?;
    scratch
        .execute_batch(sql)
        .ctx("cannot build the reference schema")?;
    schema_rows(&scratch).ctx("cannot build the reference schema")
}
