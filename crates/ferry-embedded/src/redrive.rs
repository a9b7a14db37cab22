//! The SQL of approved re-drive: storing dead letters as given, approving them, and
//! moving approved ones back (`DeadLetters::insert_dead_letters`,
//! `approve_dead_letters`, `redrive_approved`).
//!
//! The approval is the column `dead_letters.approved` (format 4), so it belongs to one
//! dead-letter row, that is to one death: a re-drive deletes the row, and if the message
//! dies again its new row starts unapproved. A re-drive is one writer job, that is one
//! SQLite write transaction: the file's write lock is exclusive across processes, so
//! redrivers in several processes each see and move a disjoint set of rows, and a row
//! moved by one is gone for the others.

use ferry_core::time::{now_millis, to_millis};
use ferry_core::{DeadLetter, Error, QueueName, Selection};
use rusqlite::{Connection, OptionalExtension, params};

use crate::error::Context;
use crate::history;
use crate::ops::{CHUNK, checksum, encode_headers, queue_options, requeue_seq};

type Result<T> = std::result::Result<T, Error>;

/// Stores `letters` in `queue`'s dead letters (the caller's job is one savepoint:
/// all or nothing).
pub(crate) fn insert(
    conn: &Connection,
    queue: &QueueName,
    letters: &[DeadLetter],
    hist: bool,
) -> Result<u64> {
    let (qid, _) = queue_options(conn, queue)?;
    let now = now_millis();
    let mut stmt = conn
        .prepare_cached(
            "INSERT INTO dead_letters
               (qid, id, priority, enqueued_at, route_key, headers, payload, checksum,
                attempts, reason, last_error, first_failed_at, dead_at, events)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
        )
        .ctx("cannot store dead letters")?;
    for d in letters {
        let headers = encode_headers(&d.headers);
        let sum = checksum(
            d.id.as_bytes(),
            d.route_key.as_deref().map(str::as_bytes),
            headers.as_bytes(),
            &d.payload,
        );
        let events = if hist {
            history::line(
                now,
                "dead_lettered",
                i64::from(d.attempts),
                Some(d.reason.as_str()),
            )
        } else {
            String::new()
        };
        stmt.execute(params![
            qid,
            d.id,
            i64::from(d.priority),
            to_millis(d.enqueued_at),
            d.route_key,
            headers,
            d.payload.as_ref(),
            sum,
            i64::from(d.attempts),
            d.reason,
            d.last_error,
            d.first_failed_at.map(to_millis),
            to_millis(d.dead_at),
            events
        ])
        .ctx("cannot store dead letters")?;
    }
    Ok(letters.len() as u64)
}

/// Approves one chunk of `selection`: for `All`, the rows after seq `after` (the
/// cursor of the next chunk is returned while more may remain); for ids, every death
/// of each id. Returns how many rows were newly approved.
pub(crate) fn approve(
    conn: &Connection,
    queue: &QueueName,
    selection: &Selection,
    after: i64,
) -> Result<(u64, Option<i64>)> {
    let (qid, _) = queue_options(conn, queue)?;
    match selection {
        Selection::Ids(ids) => {
            let mut stmt = conn
                .prepare_cached(
                    "UPDATE dead_letters SET approved = 1
                     WHERE qid = ?1 AND id = ?2 AND approved = 0",
                )
                .ctx("cannot approve dead letters")?;
            let mut n = 0;
            for id in ids {
                n += stmt
                    .execute(params![qid, id])
                    .ctx("cannot approve dead letters")?;
            }
            Ok((n as u64, None))
        }
        Selection::All => {
            // The end of this chunk: the CHUNK-th row after the cursor, if there is one.
            let end: Option<i64> = conn
                .prepare_cached(
                    "SELECT seq FROM dead_letters WHERE qid = ?1 AND seq > ?2
                     ORDER BY seq LIMIT 1 OFFSET ?3",
                )
                .ctx("cannot approve dead letters")?
                .query_row(params![qid, after, CHUNK - 1], |r| r.get(0))
                .optional()
                .ctx("cannot approve dead letters")?;
            let n = conn
                .prepare_cached(
                    "UPDATE dead_letters SET approved = 1
                     WHERE qid = ?1 AND seq > ?2 AND seq <= ?3 AND approved = 0",
                )
                .ctx("cannot approve dead letters")?
                .execute(params![qid, after, end.unwrap_or(i64::MAX)])
                .ctx("cannot approve dead letters")?;
            Ok((n as u64, end))
        }
    }
}

/// Moves up to `max` approved dead letters of `queue` back, oldest death first, and
/// returns their ids; approved rows whose id is live again are passed over (they stay
/// approved). Runs as one write transaction, which is the claim.
pub(crate) fn redrive(
    conn: &Connection,
    queue: &QueueName,
    max: u64,
    hist: bool,
) -> Result<Vec<String>> {
    let (qid, _) = queue_options(conn, queue)?;
    let now = now_millis();
    let max = usize::try_from(max).unwrap_or(usize::MAX);
    let mut moved = Vec::new();
    let mut after = i64::MIN;
    while moved.len() < max {
        let rows: Vec<(i64, String)> = {
            let mut stmt = conn
                .prepare_cached(
                    "SELECT seq, id FROM dead_letters
                     WHERE qid = ?1 AND approved = 1 AND seq > ?2 ORDER BY seq LIMIT ?3",
                )
                .ctx("cannot re-drive dead letters")?;
            let rows = stmt
                .query_map(params![qid, after, CHUNK], |r| Ok((r.get(0)?, r.get(1)?)))
                .ctx("cannot re-drive dead letters")?;
            rows.collect::<rusqlite::Result<_>>()
                .ctx("cannot re-drive dead letters")?
        };
        let Some(&(last, _)) = rows.last() else {
            break;
        };
        let full = rows.len() as i64 == CHUNK;
        for (seq, id) in rows {
            if moved.len() >= max {
                break;
            }
            if requeue_seq(conn, seq, now, hist)? {
                moved.push(id);
            }
        }
        if !full {
            break;
        }
        after = last;
    }
    Ok(moved)
}
