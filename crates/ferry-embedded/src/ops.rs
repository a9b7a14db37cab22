//! The SQL behind each driver operation. Every function here runs inside the writer's
//! transaction (or on a read connection for the read-only ones) and is synchronous.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use ferry_core::time::{duration_millis, from_millis, now_millis, to_millis, to_millis_ceil};
use ferry_core::{
    Binding, DeadLetter, DeadLetterQuery, Delivery, Error, ErrorKind, Message, QueueInfo,
    QueueName, QueueOptions, QueueStats, Receipt, Selection, SettleAction, TopicName, reason,
    route_matches,
};
use rusqlite::{Connection, OptionalExtension, Row, params};

use crate::error::Context;
use crate::history;
use crate::schema::{STATE_DELAYED, STATE_READY};

type Result<T> = std::result::Result<T, Error>;

/// The integrity check stored with every message: CRC-32 of id, route key, headers
/// and payload (each followed by a 0 byte so fields cannot shift into each other).
pub(crate) fn checksum(id: &[u8], route_key: Option<&[u8]>, headers: &[u8], payload: &[u8]) -> i64 {
    let mut h = crc32fast::Hasher::new();
    for part in [id, route_key.unwrap_or(b""), headers, payload] {
        h.update(part);
        h.update(&[0]);
    }
    i64::from(h.finalize())
}

/// A TEXT (or NULL) column as raw bytes, so damaged UTF-8 is detected by the checksum
/// instead of failing the whole query.
fn raw_text(r: &Row<'_>, i: usize) -> rusqlite::Result<Option<Vec<u8>>> {
    use rusqlite::types::ValueRef;
    Ok(match r.get_ref(i)? {
        ValueRef::Null => None,
        ValueRef::Text(t) | ValueRef::Blob(t) => Some(t.to_vec()),
        ValueRef::Integer(n) => Some(n.to_string().into_bytes()),
        ValueRef::Real(x) => Some(x.to_string().into_bytes()),
    })
}

fn lane(priority: u8) -> i64 {
    255 - i64::from(priority)
}

pub(crate) fn encode_headers(headers: &BTreeMap<String, String>) -> String {
    if headers.is_empty() {
        String::new()
    } else {
        serde_json::to_string(headers).unwrap_or_default()
    }
}

fn decode_headers(s: &str) -> Option<BTreeMap<String, String>> {
    if s.is_empty() {
        Some(BTreeMap::new())
    } else {
        serde_json::from_str(s).ok()
    }
}

fn ms_to_duration(ms: i64) -> Duration {
    Duration::from_millis(u64::try_from(ms).unwrap_or(0))
}

/// A queue's row: its internal id (messages and dead letters are keyed by it: short
/// index keys, and a deleted-then-recreated queue never sees old rows), its settings
/// and whether its deliveries are paused.
struct QueueRow {
    qid: i64,
    options: QueueOptions,
    paused: bool,
}

fn queue_row(conn: &Connection, queue: &QueueName) -> Result<QueueRow> {
    conn.prepare_cached(
        "SELECT qid, default_delay_ms, max_attempts, lease_ms, paused FROM queues WHERE name = ?1",
    )
    .ctx("cannot read queue settings")?
    .query_row([queue.as_str()], |r| {
        Ok(QueueRow {
            qid: r.get(0)?,
            options: QueueOptions::default()
                .with_default_delay(ms_to_duration(r.get(1)?))
                .with_max_attempts(u32::try_from(r.get::<_, i64>(2)?).unwrap_or(u32::MAX))
                .with_lease(ms_to_duration(r.get(3)?)),
            paused: r.get::<_, i64>(4)? != 0,
        })
    })
    .optional()
    .ctx("cannot read queue settings")?
    .ok_or_else(|| Error::queue_not_found(queue.as_str()))
}

/// The queue's internal id and its settings (see [`QueueRow`]).
pub(crate) fn queue_options(conn: &Connection, queue: &QueueName) -> Result<(i64, QueueOptions)> {
    queue_row(conn, queue).map(|r| (r.qid, r.options))
}

// ---------------------------------------------------------------- topology

pub(crate) fn create_queue(conn: &Connection, q: &QueueName, o: &QueueOptions) -> Result<()> {
    conn.execute(
        "INSERT INTO queues (name, default_delay_ms, max_attempts, lease_ms, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5)
         ON CONFLICT (name) DO UPDATE SET default_delay_ms = ?2, max_attempts = ?3, lease_ms = ?4",
        params![
            q.as_str(),
            duration_millis(o.default_delay),
            i64::from(o.max_attempts),
            duration_millis(o.lease),
            now_millis()
        ],
    )
    .ctx("cannot create queue")?;
    Ok(())
}

pub(crate) fn get_queue(conn: &Connection, q: &QueueName) -> Result<QueueInfo> {
    let row = queue_row(conn, q)?;
    Ok(QueueInfo::new(q.clone(), row.options).with_paused(row.paused))
}

/// Pauses or resumes deliveries from `q` (`create_queue` never touches the flag).
pub(crate) fn set_paused(conn: &Connection, q: &QueueName, paused: bool) -> Result<()> {
    let n = conn
        .prepare_cached("UPDATE queues SET paused = ?2 WHERE name = ?1")
        .ctx("cannot pause or resume the queue")?
        .execute(params![q.as_str(), i64::from(paused)])
        .ctx("cannot pause or resume the queue")?;
    if n == 0 {
        return Err(Error::queue_not_found(q.as_str()));
    }
    Ok(())
}

pub(crate) fn list_queues(conn: &Connection) -> Result<Vec<QueueInfo>> {
    let mut stmt = conn
        .prepare_cached("SELECT name FROM queues ORDER BY name")
        .ctx("cannot list queues")?;
    let names: Vec<String> = stmt
        .query_map([], |r| r.get(0))
        .ctx("cannot list queues")?
        .collect::<std::result::Result<_, _>>()
        .ctx("cannot list queues")?;
    names
        .into_iter()
        .map(|n| {
            let q = QueueName::new(n)?;
            get_queue(conn, &q)
        })
        .collect()
}

pub(crate) fn delete_queue(conn: &Connection, q: &QueueName) -> Result<()> {
    let (qid, _) = queue_options(conn, q)?;
    for sql in [
        "DELETE FROM messages WHERE qid = ?1",
        "DELETE FROM dead_letters WHERE qid = ?1",
        "DELETE FROM history WHERE qid = ?1",
        "DELETE FROM queues WHERE qid = ?1",
    ] {
        conn.execute(sql, [qid]).ctx("cannot delete queue")?;
    }
    conn.execute("DELETE FROM bindings WHERE queue = ?1", [q.as_str()])
        .ctx("cannot delete queue")?;
    Ok(())
}

pub(crate) fn create_topic(conn: &Connection, t: &TopicName) -> Result<()> {
    conn.execute(
        "INSERT INTO topics (name, created_at) VALUES (?1, ?2) ON CONFLICT DO NOTHING",
        params![t.as_str(), now_millis()],
    )
    .ctx("cannot create topic")?;
    Ok(())
}

fn topic_exists(conn: &Connection, t: &TopicName) -> Result<()> {
    let found: Option<i64> = conn
        .prepare_cached("SELECT 1 FROM topics WHERE name = ?1")
        .ctx("cannot read topic")?
        .query_row([t.as_str()], |r| r.get(0))
        .optional()
        .ctx("cannot read topic")?;
    found
        .map(|_| ())
        .ok_or_else(|| Error::topic_not_found(t.as_str()))
}

pub(crate) fn list_topics(conn: &Connection) -> Result<Vec<TopicName>> {
    let mut stmt = conn
        .prepare_cached("SELECT name FROM topics ORDER BY name")
        .ctx("cannot list topics")?;
    let names: Vec<String> = stmt
        .query_map([], |r| r.get(0))
        .ctx("cannot list topics")?
        .collect::<std::result::Result<_, _>>()
        .ctx("cannot list topics")?;
    names.into_iter().map(TopicName::new).collect()
}

pub(crate) fn delete_topic(conn: &Connection, t: &TopicName) -> Result<()> {
    let n = conn
        .execute("DELETE FROM topics WHERE name = ?1", [t.as_str()])
        .ctx("cannot delete topic")?;
    if n == 0 {
        return Err(Error::topic_not_found(t.as_str()));
    }
    conn.execute("DELETE FROM bindings WHERE topic = ?1", [t.as_str()])
        .ctx("cannot delete topic")?;
    Ok(())
}

pub(crate) fn bind(conn: &Connection, t: &TopicName, q: &QueueName, pattern: &str) -> Result<()> {
    topic_exists(conn, t)?;
    queue_options(conn, q)?;
    conn.execute(
        "INSERT INTO bindings (topic, queue, pattern) VALUES (?1, ?2, ?3) ON CONFLICT DO NOTHING",
        params![t.as_str(), q.as_str(), pattern],
    )
    .ctx("cannot bind")?;
    Ok(())
}

pub(crate) fn unbind(conn: &Connection, t: &TopicName, q: &QueueName, pattern: &str) -> Result<()> {
    topic_exists(conn, t)?;
    let n = conn
        .execute(
            "DELETE FROM bindings WHERE topic = ?1 AND queue = ?2 AND pattern = ?3",
            params![t.as_str(), q.as_str(), pattern],
        )
        .ctx("cannot unbind")?;
    if n == 0 {
        return Err(Error::invalid_input(format!(
            "topic '{t}' has no binding to queue '{q}' with pattern '{pattern}'"
        )));
    }
    Ok(())
}

pub(crate) fn list_bindings(conn: &Connection, t: &TopicName) -> Result<Vec<Binding>> {
    topic_exists(conn, t)?;
    let mut stmt = conn
        .prepare_cached(
            "SELECT queue, pattern FROM bindings WHERE topic = ?1 ORDER BY queue, pattern",
        )
        .ctx("cannot list bindings")?;
    let rows: Vec<(String, String)> = stmt
        .query_map([t.as_str()], |r| Ok((r.get(0)?, r.get(1)?)))
        .ctx("cannot list bindings")?
        .collect::<std::result::Result<_, _>>()
        .ctx("cannot list bindings")?;
    rows.into_iter()
        .map(|(q, p)| Ok(Binding::new(t.clone(), QueueName::new(q)?, p)))
        .collect()
}

// ---------------------------------------------------------------- send / publish

/// Inserts `batch` into `queue`; returns (enqueued, duplicate ids).
pub(crate) fn enqueue(
    conn: &Connection,
    queue: &QueueName,
    batch: &[Message],
    route_key: Option<&str>,
    hist: bool,
) -> Result<(u64, Vec<String>)> {
    let (qid, options) = queue_options(conn, queue)?;
    let now = SystemTime::now();
    let now_ms = to_millis(now);
    let mut stmt = conn
        .prepare_cached(
            "INSERT INTO messages
               (qid, id, state, lane, priority, avail_at, enqueued_at, route_key, headers, payload, checksum, events)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)
             ON CONFLICT (qid, id) DO UPDATE SET
               state = excluded.state, lane = excluded.lane, priority = excluded.priority,
               avail_at = excluded.avail_at, attempts = 0, lease_token = NULL,
               enqueued_at = excluded.enqueued_at, route_key = excluded.route_key,
               headers = excluded.headers, payload = excluded.payload,
               checksum = excluded.checksum, last_error = NULL, first_failed_at = NULL,
               events = substr(messages.events, -16384) || excluded.events
             WHERE messages.state = 3",
        )
        .ctx("cannot enqueue")?;
    let mut enqueued = 0;
    let mut duplicates = Vec::new();
    // Re-sending an id whose row is done reuses the row; its history keeps only the
    // last 16 KiB of event lines (`substr(.., -16384)` below), so an id that is sent
    // again and again does not grow a row without bound.
    let sent = if hist {
        let detail = route_key.map(|k| format!("route key {k}"));
        history::line(now_ms, "sent", 0, detail.as_deref())
    } else {
        String::new()
    };
    for m in batch {
        let visible = m.visible_at(now, options.default_delay);
        let avail_at = if visible <= now {
            now_ms
        } else {
            to_millis_ceil(visible)
        };
        let (state, lane) = if avail_at <= now_ms {
            (STATE_READY, lane(m.priority()))
        } else {
            (STATE_DELAYED, 0)
        };
        let headers = encode_headers(m.headers());
        let sum = checksum(
            m.id().as_bytes(),
            route_key.map(str::as_bytes),
            headers.as_bytes(),
            m.payload(),
        );
        let n = stmt
            .execute(params![
                qid,
                m.id(),
                state,
                lane,
                i64::from(m.priority()),
                avail_at,
                now_ms,
                route_key,
                headers,
                m.payload().as_ref(),
                sum,
                sent
            ])
            .ctx("cannot enqueue")?;
        if n == 0 {
            duplicates.push(m.id().to_string());
        } else {
            enqueued += 1;
        }
    }
    Ok((enqueued, duplicates))
}

/// The queues `route_key` reaches through `topic`'s bindings, sorted, deduplicated.
pub(crate) fn route(
    conn: &Connection,
    topic: &TopicName,
    route_key: &str,
) -> Result<Vec<QueueName>> {
    let bindings = list_bindings(conn, topic)?;
    let mut queues: Vec<QueueName> = bindings
        .into_iter()
        .filter(|b| route_matches(&b.pattern, route_key))
        .map(|b| b.queue)
        .collect();
    queues.sort();
    queues.dedup();
    Ok(queues)
}

// ---------------------------------------------------------------- receive

/// Makes due delayed messages and expired leases ready; dead-letters expired leases
/// that were on their last attempt.
fn promote(conn: &Connection, qid: i64, max_attempts: u32, now: i64, hist: bool) -> Result<()> {
    // Bounded per receive (1,000 rows) so a huge backlog falling due at once never
    // holds the writer long; the next receive takes the next slice.
    let expired: Vec<i64> = {
        let mut stmt = conn
            .prepare_cached(
                "SELECT seq FROM messages
                 WHERE qid = ?1 AND state = 2 AND lane = 0 AND avail_at <= ?2 AND attempts >= ?3
                 LIMIT 1000",
            )
            .ctx("cannot reclaim expired leases")?;
        stmt.query_map(params![qid, now, i64::from(max_attempts)], |r| r.get(0))
            .ctx("cannot reclaim expired leases")?
            .collect::<std::result::Result<_, _>>()
            .ctx("cannot reclaim expired leases")?
    };
    for seq in expired {
        dead_letter_seq(conn, seq, None, reason::LEASE_EXPIRED, None, now, hist)?;
    }
    conn.prepare_cached(
        "UPDATE messages
         SET state = 0, lane = 255 - priority,
             first_failed_at = CASE WHEN state = 2 THEN COALESCE(first_failed_at, avail_at)
                                    ELSE first_failed_at END,
             events = CASE WHEN ?3 AND state = 2
                           THEN events || json_array(?2, 'lease_expired', attempts, NULL) || char(10)
                           ELSE events END
         WHERE seq IN (SELECT seq FROM messages
                       WHERE qid = ?1 AND state IN (1, 2) AND lane = 0 AND avail_at <= ?2
                       LIMIT 1000)",
    )
    .ctx("cannot promote due messages")?
    .execute(params![qid, now, hist])
    .ctx("cannot promote due messages")?;
    Ok(())
}

/// What a receive found: deliveries, and when the next delayed or leased message of
/// the queue falls due (for the long-poll wait).
#[derive(Debug)]
pub(crate) struct Received {
    pub(crate) deliveries: Vec<Delivery>,
    pub(crate) next_due: Option<i64>,
}

struct Row0 {
    seq: i64,
    id: Vec<u8>,
    priority: i64,
    attempts: i64,
    enqueued_at: i64,
    route_key: Option<Vec<u8>>,
    headers: Vec<u8>,
    payload: Vec<u8>,
    checksum: i64,
}

/// The fields of a row that passed its checksum.
struct Intact {
    id: String,
    route_key: Option<String>,
    headers: BTreeMap<String, String>,
}

impl Row0 {
    fn verify(&self) -> Option<Intact> {
        if checksum(
            &self.id,
            self.route_key.as_deref(),
            &self.headers,
            &self.payload,
        ) != self.checksum
        {
            return None;
        }
        Some(Intact {
            id: String::from_utf8(self.id.clone()).ok()?,
            route_key: match &self.route_key {
                Some(k) => Some(String::from_utf8(k.clone()).ok()?),
                None => None,
            },
            headers: decode_headers(std::str::from_utf8(&self.headers).ok()?)?,
        })
    }
}

pub(crate) fn receive(
    conn: &Connection,
    queue: &QueueName,
    max: usize,
    lease: Option<Duration>,
    hist: Option<Duration>,
) -> Result<Received> {
    let QueueRow {
        qid,
        options,
        paused,
    } = queue_row(conn, queue)?;
    if paused {
        // Nothing is handed out or changed; nothing falls due for the long poll to
        // wait on (the resume's commit wakes it).
        return Ok(Received {
            deliveries: Vec::new(),
            next_due: None,
        });
    }
    let now = now_millis();
    // Done rows are removed at least as fast as acks create them (up to twice the
    // batch, at least 100 per receive); with history off they go at once.
    let limit = i64::try_from(max)
        .unwrap_or(i64::MAX)
        .saturating_mul(2)
        .max(100);
    history::prune(conn, qid, hist.unwrap_or(Duration::ZERO), now, limit)?;
    let hist = hist.is_some();
    promote(conn, qid, options.max_attempts, now, hist)?;
    let lease_ms = duration_millis(lease.unwrap_or(options.lease)).max(1);
    let lease_until = now.saturating_add(lease_ms);
    let rows: Vec<Row0> = {
        let mut stmt = conn
            .prepare_cached(
                "SELECT seq, id, priority, attempts, enqueued_at, route_key, headers, payload, checksum
                 FROM messages WHERE qid = ?1 AND state = 0
                 ORDER BY lane, avail_at, seq LIMIT ?2",
            )
            .ctx("cannot receive")?;
        stmt.query_map(params![qid, i64::try_from(max).unwrap_or(i64::MAX)], |r| {
            Ok(Row0 {
                seq: r.get(0)?,
                id: raw_text(r, 1)?.unwrap_or_default(),
                priority: r.get(2)?,
                attempts: r.get(3)?,
                enqueued_at: r.get(4)?,
                route_key: raw_text(r, 5)?,
                headers: raw_text(r, 6)?.unwrap_or_default(),
                payload: raw_text(r, 7)?.unwrap_or_default(),
                checksum: r.get(8)?,
            })
        })
        .ctx("cannot receive")?
        .collect::<std::result::Result<_, _>>()
        .ctx("cannot receive")?
    };
    // One statement leases the whole batch: the subquery sees the same rows as the
    // SELECT above (same transaction). One random token per batch is enough for
    // fencing because a receipt is `seq:token` and a redelivery draws a new token.
    // Random rather than a counter: unguessable across processes, nothing shared to write.
    let token = fastrand::i64(1..);
    let leased = conn.prepare_cached(
        "UPDATE messages SET state = 2, lane = 0, avail_at = ?3, attempts = attempts + 1,
                             lease_token = ?4,
                             events = CASE WHEN ?6
                                 THEN events || '[' || ?5 || ',\"delivered\",' || (attempts + 1) || ',null]' || char(10)
                                 ELSE events END
         WHERE seq IN (SELECT seq FROM messages WHERE qid = ?1 AND state = 0
                       ORDER BY lane, avail_at, seq LIMIT ?2)
           AND state = 0",
    )
    .ctx("cannot lease")?
    .execute(params![
        qid,
        i64::try_from(max).unwrap_or(i64::MAX),
        lease_until,
        token,
        now,
        hist
    ])
    .ctx("cannot lease")?;
    // The SELECT and the UPDATE's subquery read the same rows through the same index
    // in one transaction; the UPDATE then checks each row's own state (found by its
    // rowid, not through the index). If they disagree, the index is damaged (a stale
    // entry says ready for a leased row): handing out those rows would deliver them
    // again and again, so stop here.
    if leased != rows.len() {
        return Err(Error::new(
            ErrorKind::Corrupt,
            format!(
                "queue '{queue}': the data file's index is inconsistent (selected {} messages, leased {leased}); restore the file from a backup or rebuild it with sqlite3's REINDEX",
                rows.len()
            ),
        ));
    }
    let mut deliveries = Vec::with_capacity(rows.len());
    for row in rows {
        let Some(intact) = row.verify() else {
            // Never hand out wrong data, never drop it: park it in the dead letters.
            tracing::error!(queue = %queue, id = %String::from_utf8_lossy(&row.id), "stored message failed its checksum; dead-lettering it");
            dead_letter_seq(
                conn,
                row.seq,
                None,
                reason::CORRUPT,
                Some("checksum mismatch in the data file".into()),
                now,
                hist,
            )?;
            continue;
        };
        let attempt = u32::try_from(row.attempts + 1).unwrap_or(u32::MAX);
        let Intact {
            id,
            route_key,
            headers,
        } = intact;
        deliveries.push(Delivery {
            id: id.clone(),
            queue: queue.clone(),
            payload: Bytes::from(row.payload),
            headers,
            route_key,
            priority: u8::try_from(row.priority).unwrap_or(0),
            enqueued_at: from_millis(row.enqueued_at),
            attempt,
            lease_until: from_millis(lease_until),
            receipt: Receipt::new(queue.clone(), id, format!("{}:{token}", row.seq)),
        });
    }
    let next_due: Option<i64> = conn
        .prepare_cached(
            "SELECT MIN(avail_at) FROM messages WHERE qid = ?1 AND state IN (1, 2) AND lane = 0",
        )
        .ctx("cannot receive")?
        .query_row([qid], |r| r.get(0))
        .ctx("cannot receive")?;
    Ok(Received {
        deliveries,
        next_due,
    })
}

// ---------------------------------------------------------------- settle / extend

fn parse_receipt(receipt: &Receipt) -> Result<(i64, i64)> {
    receipt
        .token()
        .split_once(':')
        .and_then(|(s, t)| Some((s.parse().ok()?, t.parse().ok()?)))
        .ok_or_else(|| {
            Error::new(
                ErrorKind::InvalidReceipt,
                "receipt was not issued by the embedded driver",
            )
        })
}

/// Moves the message at `seq` (optionally checking its lease token) to the dead letters.
fn dead_letter_seq(
    conn: &Connection,
    seq: i64,
    token: Option<i64>,
    why: &str,
    error: Option<String>,
    now: i64,
    hist: bool,
) -> Result<bool> {
    let n = conn
        .prepare_cached(
            "INSERT INTO dead_letters
               (qid, id, priority, enqueued_at, route_key, headers, payload, checksum,
                attempts, reason, last_error, first_failed_at, dead_at, events)
             SELECT qid, id, priority, enqueued_at, route_key, headers, payload, checksum,
                    attempts, ?3, COALESCE(?4, last_error), COALESCE(first_failed_at, ?5), ?5,
                    CASE WHEN ?6
                         THEN events || json_array(?5, 'dead_lettered', attempts, ?7) || char(10)
                         ELSE events END
             FROM messages WHERE seq = ?1 AND (?2 IS NULL OR lease_token = ?2)",
        )
        .ctx("cannot dead-letter")?
        .execute(params![
            seq,
            token,
            why,
            error,
            now,
            hist,
            match &error {
                Some(e) => format!("{why}: {e}"),
                None => why.to_string(),
            }
        ])
        .ctx("cannot dead-letter")?;
    if n == 0 {
        return Ok(false);
    }
    conn.prepare_cached("DELETE FROM messages WHERE seq = ?1")
        .ctx("cannot dead-letter")?
        .execute([seq])
        .ctx("cannot dead-letter")?;
    Ok(true)
}

pub(crate) fn settle(
    conn: &Connection,
    receipt: &Receipt,
    action: &SettleAction,
    hist: bool,
) -> Result<()> {
    let (seq, token) = parse_receipt(receipt)?;
    let queue = receipt.queue().as_str();
    let id = receipt.message_id();
    let now = now_millis();

    // The (queue, id) check guards against a receipt forged or mixed up between files.
    let applied = match action {
        SettleAction::Ack if hist => {
            // With history on, an acked message stays as a *done* row (state 3) until
            // the retention passes: one UPDATE now instead of a delete plus a history
            // insert, and the deletes happen later in bulk (see `history::prune`).
            conn.prepare_cached(
                "UPDATE messages SET state = 3, lane = 0, avail_at = ?5, lease_token = NULL,
                        payload = X'', headers = '', checksum = 0,
                        events = events || '[' || ?5 || ',\"acked\",' || attempts || ',null]' || char(10)
                 WHERE seq = ?1 AND lease_token = ?2 AND id = ?4
                   AND qid = (SELECT qid FROM queues WHERE name = ?3)",
            )
            .ctx("cannot ack")?
            .execute(params![seq, token, queue, id, now])
            .ctx("cannot ack")?
                > 0
        }
        SettleAction::Ack => {
            conn.prepare_cached(
                "DELETE FROM messages WHERE seq = ?1 AND lease_token = ?2 AND id = ?4 AND qid = (SELECT qid FROM queues WHERE name = ?3)",
            )
            .ctx("cannot ack")?
            .execute(params![seq, token, queue, id])
            .ctx("cannot ack")?
                > 0
        }
        SettleAction::Retry { not_before, error } => {
            let at = if *not_before <= SystemTime::now() {
                now
            } else {
                to_millis_ceil(*not_before).max(now)
            };
            let (state, lane_sql) = if at <= now {
                (STATE_READY, "255 - priority")
            } else {
                (STATE_DELAYED, "0")
            };
            let sql = format!(
                "UPDATE messages SET state = ?5, lane = {lane_sql}, avail_at = ?6, lease_token = NULL,
                        last_error = ?7, first_failed_at = COALESCE(first_failed_at, ?8),
                        events = CASE WHEN ?9
                            THEN events || json_array(?8, 'retried', attempts, ?7) || char(10)
                            ELSE events END
                 WHERE seq = ?1 AND lease_token = ?2 AND id = ?4 AND qid = (SELECT qid FROM queues WHERE name = ?3)"
            );
            conn.prepare_cached(&sql)
                .ctx("cannot retry")?
                .execute(params![seq, token, queue, id, state, at, error, now, hist])
                .ctx("cannot retry")?
                > 0
        }
        SettleAction::Release => {
            conn.prepare_cached(
                "UPDATE messages SET state = 0, lane = 255 - priority, avail_at = ?5,
                        lease_token = NULL, attempts = MAX(attempts - 1, 0),
                        events = CASE WHEN ?6
                            THEN events || json_array(?5, 'released', attempts, NULL) || char(10)
                            ELSE events END
                 WHERE seq = ?1 AND lease_token = ?2 AND id = ?4
                   AND qid = (SELECT qid FROM queues WHERE name = ?3)",
            )
            .ctx("cannot release")?
            .execute(params![seq, token, queue, id, now, hist])
            .ctx("cannot release")?
                > 0
        }
        SettleAction::DeadLetter { reason, error } => {
            let owned: Option<i64> = conn
                .prepare_cached("SELECT seq FROM messages WHERE seq = ?1 AND id = ?3 AND qid = (SELECT qid FROM queues WHERE name = ?2)")
                .ctx("cannot dead-letter")?
                .query_row(params![seq, queue, id], |r| r.get(0))
                .optional()
                .ctx("cannot dead-letter")?;
            owned.is_some()
                && dead_letter_seq(conn, seq, Some(token), reason, error.clone(), now, hist)?
        }
    };
    if applied {
        Ok(())
    } else {
        Err(Error::stale_receipt(queue, id))
    }
}

pub(crate) fn extend(conn: &Connection, receipt: &Receipt, lease: Duration) -> Result<i64> {
    let (seq, token) = parse_receipt(receipt)?;
    let lease = lease.min(ferry_core::MAX_LEASE);
    let until = now_millis().saturating_add(duration_millis(lease).max(1));
    let n = conn
        .prepare_cached(
            "UPDATE messages SET state = 2, lane = 0, avail_at = ?3
             WHERE seq = ?1 AND lease_token = ?2 AND id = ?5
               AND qid = (SELECT qid FROM queues WHERE name = ?4)",
        )
        .ctx("cannot extend lease")?
        .execute(params![
            seq,
            token,
            until,
            receipt.queue().as_str(),
            receipt.message_id()
        ])
        .ctx("cannot extend lease")?;
    if n == 0 {
        return Err(Error::stale_receipt(
            receipt.queue().as_str(),
            receipt.message_id(),
        ));
    }
    Ok(until)
}

// ---------------------------------------------------------------- stats

pub(crate) fn stats(conn: &Connection, only: Option<&QueueName>) -> Result<Vec<QueueStats>> {
    let queues: Vec<QueueName> = match only {
        Some(q) => {
            vec![q.clone()]
        }
        None => list_queues(conn)?.into_iter().map(|i| i.name).collect(),
    };
    let now = now_millis();
    // Ready rows (state 0) and delayed rows already due (state 1, not promoted yet)
    // are both ready; each range is counted and its oldest `avail_at` (when the row
    // became ready) found in the same scan of the index.
    let mut count = conn
        .prepare_cached(
            "SELECT r.n, r.oldest, d.n, d.oldest,
               (SELECT count(*) FROM messages WHERE qid = ?1 AND state = 1 AND lane = 0 AND avail_at > ?2),
               (SELECT count(*) FROM messages WHERE qid = ?1 AND state = 2),
               (SELECT count(*) FROM dead_letters WHERE qid = ?1)
             FROM (SELECT count(*) AS n, min(avail_at) AS oldest
                   FROM messages WHERE qid = ?1 AND state = 0) AS r,
                  (SELECT count(*) AS n, min(avail_at) AS oldest
                   FROM messages WHERE qid = ?1 AND state = 1 AND lane = 0 AND avail_at <= ?2) AS d",
        )
        .ctx("cannot read stats")?;
    let mut out = Vec::with_capacity(queues.len());
    for q in queues {
        type Counts = (i64, Option<i64>, i64, Option<i64>, i64, i64, i64);
        let (ready, ready_at, due, due_at, delayed, in_flight, dead): Counts = count
            .query_row(params![queue_options(conn, &q)?.0, now], |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                    r.get(6)?,
                ))
            })
            .ctx("cannot read stats")?;
        let n = |v: i64| u64::try_from(v).unwrap_or(0);
        let oldest = match (ready_at, due_at) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        out.push(
            QueueStats::new(
                q.as_str(),
                n(ready + due),
                n(delayed),
                n(in_flight),
                n(dead),
            )
            .with_oldest_ready_at(oldest.map(from_millis)),
        );
    }
    Ok(out)
}

// ---------------------------------------------------------------- dead letters

const DEAD_COLUMNS: &str =
    "seq, qid, id, priority, enqueued_at, route_key, headers, payload, checksum,
     attempts, reason, last_error, first_failed_at, dead_at";

fn dead_from_row(queue: &QueueName, r: &Row<'_>) -> rusqlite::Result<(DeadLetter, bool)> {
    let id_raw = raw_text(r, 2)?.unwrap_or_default();
    let route_raw = raw_text(r, 5)?;
    let headers_raw = raw_text(r, 6)?.unwrap_or_default();
    let payload = raw_text(r, 7)?.unwrap_or_default();
    let sum: i64 = r.get(8)?;
    let intact = checksum(&id_raw, route_raw.as_deref(), &headers_raw, &payload) == sum;
    let id = String::from_utf8_lossy(&id_raw).into_owned();
    let headers = std::str::from_utf8(&headers_raw)
        .ok()
        .and_then(decode_headers);
    let why: String = r.get(10)?;
    // A message dead-lettered *because* it was corrupt is shown as it is: its reason
    // already says the bytes are damaged, and hiding it would hide the evidence.
    let intact = (intact && headers.is_some()) || why == reason::CORRUPT;
    Ok((
        DeadLetter {
            id,
            queue: queue.clone(),
            payload: Bytes::from(payload),
            headers: headers.unwrap_or_default(),
            route_key: route_raw.map(|k| String::from_utf8_lossy(&k).into_owned()),
            priority: u8::try_from(r.get::<_, i64>(3)?).unwrap_or(0),
            enqueued_at: from_millis(r.get(4)?),
            attempts: u32::try_from(r.get::<_, i64>(9)?).unwrap_or(u32::MAX),
            reason: why,
            last_error: r.get(11)?,
            first_failed_at: r.get::<_, Option<i64>>(12)?.map(from_millis),
            dead_at: from_millis(r.get(13)?),
        },
        intact,
    ))
}

fn corrupt_dead_letter(queue: &QueueName, id: &str) -> Error {
    Error::new(
        ErrorKind::Corrupt,
        format!(
            "dead letter '{id}' in queue '{queue}' failed its checksum: the data file is damaged"
        ),
    )
}

pub(crate) fn list_dead_letters(
    conn: &Connection,
    queue: &QueueName,
    query: &DeadLetterQuery,
) -> Result<Vec<DeadLetter>> {
    let (qid, _) = queue_options(conn, queue)?;
    let sql = format!(
        "SELECT {DEAD_COLUMNS} FROM dead_letters
         WHERE qid = ?1 AND (?2 IS NULL OR reason = ?2) AND (?5 IS NULL OR approved = ?5)
         ORDER BY seq LIMIT ?3 OFFSET ?4"
    );
    let mut stmt = conn.prepare_cached(&sql).ctx("cannot list dead letters")?;
    let rows = stmt
        .query_map(
            params![
                qid,
                query.reason,
                i64::try_from(query.limit).unwrap_or(i64::MAX),
                i64::try_from(query.offset).unwrap_or(i64::MAX),
                query.approved
            ],
            |r| dead_from_row(queue, r),
        )
        .ctx("cannot list dead letters")?;
    let mut out = Vec::new();
    for row in rows {
        let (d, intact) = row.ctx("cannot list dead letters")?;
        if !intact {
            return Err(corrupt_dead_letter(queue, &d.id));
        }
        out.push(d);
    }
    Ok(out)
}

pub(crate) fn get_dead_letter(
    conn: &Connection,
    queue: &QueueName,
    id: &str,
) -> Result<DeadLetter> {
    let (qid, _) = queue_options(conn, queue)?;
    let sql = format!(
        "SELECT {DEAD_COLUMNS} FROM dead_letters WHERE qid = ?1 AND id = ?2 ORDER BY seq DESC LIMIT 1"
    );
    let (d, intact) = conn
        .prepare_cached(&sql)
        .ctx("cannot read dead letter")?
        .query_row(params![qid, id], |r| dead_from_row(queue, r))
        .optional()
        .ctx("cannot read dead letter")?
        .ok_or_else(|| {
            Error::new(
                ErrorKind::MessageNotFound,
                format!("no dead letter '{id}' in queue '{queue}' (list them with: ferry dlq list {queue})"),
            )
        })?;
    if !intact {
        return Err(corrupt_dead_letter(queue, id));
    }
    Ok(d)
}

/// The dead-letter rows `selection` picks, newest death of each id first.
/// Dead letters moved or deleted per writer job, so a million-row requeue or purge
/// never holds the writer (and every ack and lease extension behind it) for long.
pub(crate) const CHUNK: i64 = 1000;

fn selected_seqs(
    conn: &Connection,
    qid: i64,
    selection: &Selection,
    before: i64,
) -> Result<Vec<i64>> {
    let mut out = Vec::new();
    match selection {
        Selection::All => {
            let mut stmt = conn
                .prepare_cached(
                    "SELECT seq FROM dead_letters WHERE qid = ?1 AND seq < ?2
                     ORDER BY seq DESC LIMIT ?3",
                )
                .ctx("cannot select dead letters")?;
            let rows = stmt
                .query_map(params![qid, before, CHUNK], |r| r.get(0))
                .ctx("cannot select dead letters")?;
            for r in rows {
                out.push(r.ctx("cannot select dead letters")?);
            }
        }
        Selection::Ids(ids) => {
            let mut stmt = conn
                .prepare_cached(
                    "SELECT seq FROM dead_letters WHERE qid = ?1 AND id = ?2 ORDER BY seq DESC",
                )
                .ctx("cannot select dead letters")?;
            for id in ids {
                let rows = stmt
                    .query_map(params![qid, id], |r| r.get(0))
                    .ctx("cannot select dead letters")?;
                for r in rows {
                    out.push(r.ctx("cannot select dead letters")?);
                }
            }
        }
    }
    Ok(out)
}

/// Requeues one chunk: dead letters with `seq < before`. Returns how many were
/// requeued and, when more may remain, the cursor for the next chunk.
pub(crate) fn requeue_dead_letters(
    conn: &Connection,
    queue: &QueueName,
    selection: &Selection,
    before: i64,
    hist: bool,
) -> Result<(u64, Option<i64>)> {
    let (qid, _) = queue_options(conn, queue)?;
    let now = now_millis();
    let mut requeued = 0;
    let seqs = selected_seqs(conn, qid, selection, before)?;
    let next = match selection {
        Selection::All if seqs.len() as i64 == CHUNK => seqs.last().copied(),
        _ => None,
    };
    for seq in seqs {
        if requeue_seq(conn, seq, now, hist)? {
            requeued += 1;
        }
    }
    Ok((requeued, next))
}

/// Moves dead letter `seq` back into its queue, ready at `now` with attempts reset,
/// unless its id is live there again (then it stays, unchanged). Returns whether it
/// moved. Shared by requeue and re-drive (`redrive.rs`).
pub(crate) fn requeue_seq(conn: &Connection, seq: i64, now: i64, hist: bool) -> Result<bool> {
    // ON CONFLICT: an id that is live again stays in the dead letters.
    let n = conn
        .prepare_cached(
            "INSERT INTO messages
               (qid, id, state, lane, priority, avail_at, enqueued_at, route_key, headers,
                payload, checksum, last_error, events)
             SELECT qid, id, 0, 255 - priority, priority, ?2, enqueued_at, route_key, headers,
                    payload, checksum, last_error,
                    CASE WHEN ?3
                         THEN events || json_array(?2, 'requeued', 0, NULL) || char(10)
                         ELSE events END
             FROM dead_letters WHERE seq = ?1
             ON CONFLICT (qid, id) DO UPDATE SET
               state = 0, lane = excluded.lane, priority = excluded.priority,
               avail_at = excluded.avail_at, attempts = 0, lease_token = NULL,
               enqueued_at = excluded.enqueued_at, route_key = excluded.route_key,
               headers = excluded.headers, payload = excluded.payload,
               checksum = excluded.checksum, last_error = excluded.last_error,
               first_failed_at = NULL, events = substr(messages.events, -16384) || excluded.events
             WHERE messages.state = 3",
        )
        .ctx("cannot requeue")?
        .execute(params![seq, now, hist])
        .ctx("cannot requeue")?;
    if n == 0 {
        return Ok(false);
    }
    conn.prepare_cached("DELETE FROM dead_letters WHERE seq = ?1")
        .ctx("cannot requeue")?
        .execute([seq])
        .ctx("cannot requeue")?;
    Ok(true)
}

pub(crate) fn delete_dead_letters(
    conn: &Connection,
    queue: &QueueName,
    selection: &Selection,
    hist: bool,
) -> Result<u64> {
    let (qid, _) = queue_options(conn, queue)?;
    let now = now_millis();
    // The deleted dead letters' events are kept in the history (until its retention).
    let keep = "INSERT INTO history (qid, id, at, events)
                SELECT qid, id, ?3, events || json_array(?3, 'deleted', attempts, NULL) || char(10)
                FROM dead_letters";
    let n = match selection {
        Selection::All => {
            let chunk =
                "seq IN (SELECT seq FROM dead_letters WHERE qid = ?1 ORDER BY seq LIMIT ?2)";
            if hist {
                conn.prepare_cached(&format!("{keep} WHERE {chunk}"))
                    .ctx("cannot purge dead letters")?
                    .execute(params![qid, CHUNK, now])
                    .ctx("cannot purge dead letters")?;
            }
            conn.prepare_cached(&format!("DELETE FROM dead_letters WHERE {chunk}"))
                .ctx("cannot purge dead letters")?
                .execute(params![qid, CHUNK])
                .ctx("cannot purge dead letters")?
        }
        Selection::Ids(ids) => {
            let mut n = 0;
            for id in ids {
                if hist {
                    conn.prepare_cached(&format!("{keep} WHERE qid = ?1 AND id = ?2"))
                        .ctx("cannot delete dead letters")?
                        .execute(params![qid, id, now])
                        .ctx("cannot delete dead letters")?;
                }
                n += conn
                    .prepare_cached("DELETE FROM dead_letters WHERE qid = ?1 AND id = ?2")
                    .ctx("cannot delete dead letters")?
                    .execute(params![qid, id])
                    .ctx("cannot delete dead letters")?;
            }
            n
        }
    };
    Ok(n as u64)
}

/// Whether `data_version` changed: another connection committed since the last look.
pub(crate) fn data_version(conn: &Connection) -> Result<i64> {
    conn.query_row("PRAGMA data_version", [], |r| r.get(0))
        .ctx("cannot poll the data file")
}

/// The history of message `id` in `queue`.
pub(crate) fn message_history(
    conn: &Connection,
    queue: &QueueName,
    id: &str,
) -> Result<Vec<ferry_core::HistoryEvent>> {
    let (qid, _) = queue_options(conn, queue)?;
    history::events(conn, qid, id)
}
