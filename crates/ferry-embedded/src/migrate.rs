//! Upgrading data files written by older ferry builds, in place, on first open.
//!
//! Format 1's schema is frozen (`schema::SCHEMA_V1`); every later format is format 1
//! plus the migrations up to it, applied in order. New files are made the same way,
//! so a new file and an upgraded one have byte-identical schemas and the strict
//! schema check at open holds for both. An upgrade runs inside the open's write
//! transaction: another process opening the file at the same moment waits for it and
//! then finds the new version; a crash mid-upgrade leaves the old version intact. Once
//! upgraded, older ferry builds refuse the file ("written by a newer ferry") instead of
//! misreading it.

/// `MIGRATIONS[i]` upgrades format `i + 1` to `i + 2`.
const MIGRATIONS: &[&str] = &[
    // 1 → 2: pausing a queue's deliveries (`Topology::set_paused`).
    "ALTER TABLE queues ADD COLUMN paused INTEGER NOT NULL DEFAULT 0;",
    // 2 → 3: prepared two-phase messages (`ferry_core::tx::TxStore`). `seq` orders
    // listing; claims read `tx_by_due`.
    "CREATE TABLE tx_prepared (
        seq         INTEGER PRIMARY KEY,
        id          TEXT NOT NULL UNIQUE,
        body        BLOB NOT NULL,
        state       TEXT NOT NULL,
        checks      INTEGER NOT NULL,
        token       INTEGER NOT NULL,
        prepared_at INTEGER NOT NULL,
        due_at      INTEGER NOT NULL,
        last_error  TEXT
    ) STRICT;
    CREATE INDEX tx_by_due ON tx_prepared (due_at);",
    // 3 → 4: approving dead letters for re-drive (`DeadLetters::approve_dead_letters`).
    // The partial index holds only the approved rows, so a re-drive finds them
    // oldest first without reading the rest.
    "ALTER TABLE dead_letters ADD COLUMN approved INTEGER NOT NULL DEFAULT 0;
    CREATE INDEX dead_letters_approved ON dead_letters (qid, seq) WHERE approved = 1;",
];

/// The format version this build writes and the newest it reads (the data file's
/// `user_version`; see `docs/embedded-format.md`).
pub const FORMAT_VERSION: i32 = 1 + MIGRATIONS.len() as i32;

/// The SQL that takes a format-`from` file to the current format (empty when current).
pub(crate) fn upgrade_sql(from: i32) -> String {
    let done = usize::try_from(from.saturating_sub(1)).unwrap_or(0);
    MIGRATIONS.iter().skip(done).copied().collect()
}

/// The SQL that builds format `version`'s schema from nothing.
pub(crate) fn schema_sql(version: i32) -> String {
    let steps = usize::try_from(version.saturating_sub(1)).unwrap_or(0);
    let mut sql = crate::schema::SCHEMA_V1.to_string();
    sql.extend(MIGRATIONS.iter().take(steps).copied());
    sql
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_format_builds_and_upgrades_to_the_current_one() {
        for version in 1..=FORMAT_VERSION {
            let conn = rusqlite::Connection::open_in_memory().expect("memory db");
            conn.execute_batch(&schema_sql(version)).expect("schema");
            conn.execute_batch(&upgrade_sql(version)).expect("upgrade");
            let paused: i64 = conn
                .query_row(
                    "SELECT count(*) FROM pragma_table_info('queues') WHERE name = 'paused'",
                    [],
                    |r| r.get(0),
                )
                .expect("table info");
            assert_eq!(paused, 1, "format {version} upgraded has queues.paused");
            let approved: i64 = conn
                .query_row(
                    "SELECT count(*) FROM pragma_table_info('dead_letters') WHERE name = 'approved'",
                    [],
                    |r| r.get(0),
                )
                .expect("table info");
            assert_eq!(
                approved, 1,
                "format {version} upgraded has dead_letters.approved"
            );
        }
        assert_eq!(upgrade_sql(FORMAT_VERSION), "");
    }
}
