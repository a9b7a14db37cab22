//! Who forwards: one relay per schema at a time, chosen by a session-level advisory
//! lock held on the connection that also runs the rounds.
//!
//! Why one at a time: two relays taking rows with `FOR UPDATE SKIP LOCKED` alone never
//! forward a row twice, but the second takes rows 101–200 while the first still
//! forwards rows 1–100, and its batch can reach the target first: the queue's order is
//! lost. So a relay forwards only while it holds `pg_try_advisory_lock(key)`; the
//! others stand by and try again every poll interval.
//!
//! Why on the round connection: the lock lives as long as the session. If the leader's
//! connection dies (process killed, network cut), PostgreSQL rolls back its open round
//! (its rows come back untouched) and releases the lock in the same moment, so a
//! standby that takes over never sees a half-finished round. A leader that loses its
//! connection learns it on its next statement and stands by again. The one reordering
//! left: a leader cut off while a batch was already on its way to the target may land
//! that batch after its successor re-forwarded the same rows (same ids, dropped as
//! duplicates while queued) and the ones after them.

use std::time::Duration;

use ferry_core::{Error, ErrorKind, Result};
use sqlx::postgres::PgConnectOptions;
use sqlx::{Connection, PgConnection};

use crate::error::Context;

/// The advisory-lock key of `schema`'s relay: FNV-1a of a fixed prefix and the schema
/// (stable across builds and PostgreSQL versions, unlike `hashtext`).
pub(crate) fn lock_key(schema: &str) -> i64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in "ferry.outbox.relay:".bytes().chain(schema.bytes()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    i64::from_ne_bytes(h.to_ne_bytes())
}

/// This relay's connection and whether it holds the lock.
#[derive(Debug, Default)]
pub(crate) struct Session {
    conn: Option<PgConnection>,
    leading: bool,
}

/// What [`Session::ensure`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    /// This relay holds the lock (`new`: it just took it).
    Leader {
        /// Taken by this call.
        new: bool,
    },
    /// Another relay holds it.
    Standby,
}

impl Session {
    /// Connects if needed and takes the lock if this relay does not hold it.
    pub(crate) async fn ensure(
        &mut self,
        options: &PgConnectOptions,
        key: i64,
        timeout: Duration,
    ) -> Result<Role> {
        if self.leading && self.conn.is_some() {
            return Ok(Role::Leader { new: false });
        }
        let conn = match self.conn.as_mut() {
            Some(c) => c,
            None => {
                let c = bounded(timeout, PgConnection::connect_with(options))
                    .await?
                    .ctx("cannot connect to PostgreSQL")?;
                self.conn.insert(c)
            }
        };
        let got: Result<bool> = bounded(
            timeout,
            sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
                .bind(key)
                .fetch_one(&mut *conn),
        )
        .await
        .and_then(|r| r.ctx("cannot take the relay lock"));
        match got {
            Ok(true) => {
                self.leading = true;
                Ok(Role::Leader { new: true })
            }
            Ok(false) => Ok(Role::Standby),
            Err(e) => {
                self.drop_connection();
                Err(e)
            }
        }
    }

    /// The leader's connection (None when not leading).
    pub(crate) fn leader_conn(&mut self) -> Option<&mut PgConnection> {
        if self.leading {
            self.conn.as_mut()
        } else {
            None
        }
    }

    /// Forgets the connection (after an error: its state is unknown). The server
    /// rolls back its transaction and releases the lock when it notices the close.
    pub(crate) fn drop_connection(&mut self) {
        self.leading = false;
        if let Some(conn) = self.conn.take() {
            // Closing politely tells the server at once; don't wait for it.
            tokio::spawn(async move {
                let _ = tokio::time::timeout(Duration::from_secs(2), conn.close()).await;
            });
        }
    }

    /// Releases the lock and closes the connection (graceful shutdown).
    pub(crate) async fn release(&mut self) {
        if let Some(conn) = self.conn.take() {
            let _ = tokio::time::timeout(Duration::from_secs(2), conn.close()).await;
        }
        self.leading = false;
    }
}

/// `fut` under `timeout`; a timeout is [`ErrorKind::Timeout`].
pub(crate) async fn bounded<T>(timeout: Duration, fut: impl Future<Output = T>) -> Result<T> {
    tokio::time::timeout(timeout, fut).await.map_err(|_| {
        Error::new(
            ErrorKind::Timeout,
            format!("PostgreSQL did not answer within {timeout:?}"),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_differ_by_schema_and_are_stable() {
        assert_ne!(lock_key("ferry"), lock_key("ferry2"));
        assert_eq!(lock_key("ferry"), lock_key("ferry"));
    }
}
