//! Group commit: one thread owns the write connection and batches concurrent
//! operations into one transaction, so they share one fsync.
//!
//! Written by hand because no crate does this for SQLite: an async pool would give each
//! operation its own transaction and its own fsync. Here, while one commit is syncing,
//! new operations queue up in the channel; the next loop takes all of them (up to
//! `max_batch`) into one `BEGIN IMMEDIATE … COMMIT`. Each operation runs inside its own
//! savepoint, so one failing operation (queue not found, stale receipt) rolls back
//! alone. Callers get their result only after the commit is durable; if the commit
//! fails, every operation in it gets the error. The measured effect is in
//! ARCHITECTURE.md.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread;

use ferry_core::{Error, ErrorKind};
use rusqlite::{Connection, TransactionBehavior};
use tokio::sync::{Notify, oneshot};

use crate::error::from_sqlite;

/// An operation queued for the writer thread.
trait Job: Send {
    /// Whether the caller stopped waiting (its future was dropped): such work is
    /// skipped, so a cancelled receive does not lease messages nobody will handle.
    fn abandoned(&self) -> bool;
    /// Whether a successful commit of this job can make messages deliverable, so
    /// long-polling receivers in this process should look again.
    fn wakes(&self) -> bool;
    /// Runs the operation inside the open transaction (within its own savepoint).
    fn run(&mut self, conn: &Connection);
    /// Delivers the result once the commit succeeded, or the commit's error.
    fn finish(self: Box<Self>, commit: Result<(), &Error>);
}

struct TypedJob<R, F> {
    wakes: bool,
    work: Option<F>,
    result: Option<Result<R, Error>>,
    reply: oneshot::Sender<Result<R, Error>>,
}

impl<R, F> Job for TypedJob<R, F>
where
    R: Send,
    F: FnOnce(&Connection) -> Result<R, Error> + Send,
{
    fn wakes(&self) -> bool {
        self.wakes
    }

    fn abandoned(&self) -> bool {
        self.reply.is_closed()
    }

    fn run(&mut self, conn: &Connection) {
        let Some(work) = self.work.take() else {
            return;
        };
        if let Err(e) = exec_cached(conn, "SAVEPOINT op") {
            self.result = Some(Err(from_sqlite("cannot start an operation", e)));
            return;
        }
        // A panic in one operation (a bug) must not take the writer thread, and with
        // it every later operation of the process, down.
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| work(conn)))
            .unwrap_or_else(|_| Err(Error::internal("an embedded-store operation panicked")));
        let end = if result.is_ok() {
            exec_cached(conn, "RELEASE op")
        } else {
            exec_cached(conn, "ROLLBACK TO op").and_then(|()| exec_cached(conn, "RELEASE op"))
        };
        self.result = Some(match end {
            Ok(()) => result,
            Err(e) => Err(from_sqlite("cannot finish an operation", e)),
        });
    }

    fn finish(self: Box<Self>, commit: Result<(), &Error>) {
        let result = match commit {
            Ok(()) => self
                .result
                .unwrap_or_else(|| Err(Error::internal("operation was not run"))),
            Err(e) => Err(Error::new(e.kind(), e.message().to_string())),
        };
        // The caller may have gone away (cancelled); the work is done either way.
        let _ = self.reply.send(result);
    }
}

/// Runs a parameterless statement through the statement cache (savepoints run once
/// per operation; parsing them each time showed up in profiles).
pub(crate) fn exec_cached(conn: &Connection, sql: &str) -> rusqlite::Result<()> {
    conn.prepare_cached(sql)?.execute([]).map(|_| ())
}

/// Counters of the writer thread, for observability and for tests.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    /// Transactions committed.
    pub(crate) commits: AtomicU64,
    /// Operations applied (each in one of those commits).
    pub(crate) operations: AtomicU64,
}

/// Handle to the writer thread.
#[derive(Debug)]
pub(crate) struct Writer {
    counters: Arc<Counters>,
    jobs: Mutex<Option<mpsc::Sender<Box<dyn Job>>>>,
    thread: Mutex<Option<thread::JoinHandle<()>>>,
}

impl Writer {
    /// Starts the writer thread on `conn`; `committed` is notified after every commit.
    pub(crate) fn start(conn: Connection, max_batch: usize, committed: Arc<Notify>) -> Self {
        let (tx, rx) = mpsc::channel::<Box<dyn Job>>();
        let counters = Arc::new(Counters::default());
        let c = counters.clone();
        let thread = thread::Builder::new()
            .name("ferry-embedded-writer".into())
            .spawn(move || writer_loop(conn, rx, max_batch.max(1), committed, c))
            .ok();
        Writer {
            counters,
            jobs: Mutex::new(thread.as_ref().map(|_| tx)),
            thread: Mutex::new(thread),
        }
    }

    /// Runs `work` in the next group commit; resolves once it is durable. `wakes`
    /// says whether the work can make messages deliverable (sends, retries, requeues):
    /// only those commits wake this process's long-polling receivers, so idle
    /// receives do not wake each other in a loop.
    pub(crate) async fn run<R, F>(&self, wakes: bool, work: F) -> Result<R, Error>
    where
        R: Send + 'static,
        F: FnOnce(&Connection) -> Result<R, Error> + Send + 'static,
    {
        let (reply, rx) = oneshot::channel();
        let job = Box::new(TypedJob {
            wakes,
            work: Some(work),
            result: None,
            reply,
        });
        let sent = match &*self.jobs.lock().unwrap_or_else(|p| p.into_inner()) {
            Some(tx) => tx.send(job).is_ok(),
            None => false,
        };
        if !sent {
            return Err(Error::new(
                ErrorKind::Closed,
                "the embedded store is closed (or its writer thread could not start)",
            ));
        }
        rx.await.unwrap_or_else(|_| {
            Err(Error::new(
                ErrorKind::Indeterminate,
                "the embedded store's writer stopped before answering; the operation may or may not have been applied",
            ))
        })
    }

    /// The commit and operation counters.
    pub(crate) fn counters(&self) -> &Counters {
        &self.counters
    }

    /// Stops accepting work, lets queued work finish, and joins the thread.
    pub(crate) fn close(&self) {
        self.jobs.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(t) = self.thread.lock().unwrap_or_else(|p| p.into_inner()).take() {
            let _ = t.join();
        }
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        self.jobs.lock().unwrap_or_else(|p| p.into_inner()).take();
        // Do not join in drop: it may run on an async worker thread. The thread exits
        // on its own once the channel is closed and the queued work is done; callers
        // that need the file closed (tests, tools) use `EmbeddedDriver::close`.
    }
}

fn writer_loop(
    mut conn: Connection,
    rx: mpsc::Receiver<Box<dyn Job>>,
    max_batch: usize,
    committed: Arc<Notify>,
    counters: Arc<Counters>,
) {
    let mut batch: Vec<Box<dyn Job>> = Vec::with_capacity(max_batch);
    while let Ok(first) = rx.recv() {
        batch.push(first);
        while batch.len() < max_batch {
            match rx.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let outcome = commit_batch(&mut conn, &mut batch);
        let wakes = batch.iter().any(|j| j.wakes());
        if outcome.is_ok() {
            counters.commits.fetch_add(1, Ordering::Relaxed);
            counters
                .operations
                .fetch_add(batch.len() as u64, Ordering::Relaxed);
        }
        for job in batch.drain(..) {
            job.finish(outcome.as_ref().map(|_| ()));
        }
        if outcome.is_ok() && wakes {
            committed.notify_waiters();
        }
    }
}

fn commit_batch(conn: &mut Connection, batch: &mut [Box<dyn Job>]) -> Result<(), Error> {
    let txn = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(|e| from_sqlite("cannot start a write transaction", e))?;
    for job in batch.iter_mut() {
        if job.abandoned() {
            continue;
        }
        job.run(&txn);
        // After disk full, an I/O error or an interrupt, SQLite may roll the whole
        // transaction back on its own. Running more jobs would then commit each of them
        // separately (SAVEPOINT outside a transaction starts one, RELEASE commits it)
        // while the batch reports failure. Stop: nothing of this batch is committed.
        if txn.is_autocommit() {
            return Err(Error::new(
                ErrorKind::Unavailable,
                "the data file's transaction was rolled back by SQLite (disk full or I/O error?); nothing was applied, try again",
            ));
        }
    }
    txn.commit().map_err(|e| {
        let err = from_sqlite("cannot commit to the data file", e);
        if err.kind() != ErrorKind::Io {
            err
        } else {
            // An I/O failure during commit may leave the outcome unknown to the caller.
            Error::new(
                ErrorKind::Indeterminate,
                format!("{err}; the operation may or may not have been applied"),
            )
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job<F>(work: F) -> (Box<dyn Job>, oneshot::Receiver<Result<(), Error>>)
    where
        F: FnOnce(&Connection) -> Result<(), Error> + Send + 'static,
    {
        let (reply, rx) = oneshot::channel();
        (
            Box::new(TypedJob {
                wakes: false,
                work: Some(work),
                result: None,
                reply,
            }),
            rx,
        )
    }

    fn insert(bytes: usize) -> impl FnOnce(&Connection) -> Result<(), Error> + Send {
        move |c: &Connection| {
            c.execute("INSERT INTO t (x) VALUES (?1)", [vec![7u8; bytes]])
                .map(|_| ())
                .map_err(|e| from_sqlite("insert", e))
        }
    }

    /// When SQLite rolls the transaction back by itself (here: the file hits its size
    /// limit, as on a full disk), no later job of the batch may be committed on its own
    /// while the batch reports failure.
    #[test]
    fn rollback_by_sqlite_stops_the_batch() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut conn = Connection::open(dir.path().join("t.db")).expect("open");
        conn.execute_batch("CREATE TABLE t (x BLOB)")
            .expect("create");
        let pages: i64 = conn
            .query_row("PRAGMA page_count", [], |r| r.get(0))
            .expect("page_count");
        conn.pragma_update(None, "max_page_count", pages + 3)
            .expect("limit");
        let (j1, r1) = job(insert(100));
        let (j2, r2) = job(insert(1_000_000));
        let (j3, r3) = job(insert(100));
        let mut batch = vec![j1, j2, j3];
        let outcome = commit_batch(&mut conn, &mut batch);
        let failed = outcome.is_err();
        for j in batch {
            j.finish(outcome.as_ref().map(|_| ()));
        }
        let rows: i64 = conn
            .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
            .expect("count");
        let results: Vec<bool> = [r1, r2, r3]
            .into_iter()
            .map(|mut r| matches!(r.try_recv(), Ok(Ok(()))))
            .collect();
        // Whatever SQLite did, what callers were told must match what is on disk.
        let told_ok = results.iter().filter(|ok| **ok).count() as i64;
        assert_eq!(
            rows, told_ok,
            "callers told {results:?}, rows on disk {rows}, batch failed {failed}"
        );
        assert!(!results[1], "the oversized insert cannot succeed");
    }
}
