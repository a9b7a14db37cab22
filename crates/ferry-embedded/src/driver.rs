//! [`EmbeddedDriver`]: the driver traits over the writer thread and a read connection.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use ferry_core::time::{from_millis, now_millis};
use ferry_core::{
    Binding, DeadLetter, DeadLetterQuery, DeadLetters, Delivery, Driver, Error, ErrorKind, Limits,
    Message, PublishReport, QueueInfo, QueueName, QueueOptions, QueueStats, Receipt,
    ReceiveOptions, Result, Selection, SendReport, Settlement, TopicName, Topology,
    validate_pattern, validate_route_key,
};
use rusqlite::{Connection, OpenFlags};
use tokio::sync::Notify;

use crate::error::Context;
use crate::ops;
use crate::redrive;
use crate::schema;
use crate::writer::{Writer, exec_cached};

/// Settings of an [`EmbeddedDriver`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EmbeddedOptions {
    /// Size limits enforced at send.
    pub limits: Limits,
    /// Most operations folded into one commit (1 disables group commit). Default 512.
    pub max_group: usize,
    /// How often an idle long-poll checks whether another process wrote. Default 25 ms.
    pub poll_interval: Duration,
    /// How long message history is kept (`None` records none). Default 7 days.
    pub history: Option<Duration>,
}

impl Default for EmbeddedOptions {
    fn default() -> Self {
        EmbeddedOptions {
            limits: Limits::default(),
            max_group: 512,
            poll_interval: Duration::from_millis(25),
            history: Some(Duration::from_secs(7 * 86_400)),
        }
    }
}

/// How much work the group-commit writer of this handle has done.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CommitStats {
    /// Transactions committed (each one fsync).
    pub commits: u64,
    /// Operations applied in those commits; `operations / commits` is the average
    /// group size.
    pub operations: u64,
}

/// The embedded, durable, multi-process [`Driver`]; see the crate docs.
#[derive(Debug, Clone)]
pub struct EmbeddedDriver {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    path: PathBuf,
    writer: Writer,
    reader: Arc<Mutex<Connection>>,
    committed: Arc<Notify>,
    options: EmbeddedOptions,
}

fn open_connection(file: &Path) -> Result<Connection> {
    let shown = file.display().to_string();
    let conn = Connection::open_with_flags(
        file,
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .ctx(&format!("cannot open data file {shown}"))?;
    schema::configure(&conn)?;
    Ok(conn)
}

impl EmbeddedDriver {
    /// Opens (creating if needed) the data directory `dir` with default options.
    pub fn open(dir: impl AsRef<Path>) -> Result<Self> {
        Self::open_with(dir, EmbeddedOptions::default())
    }

    /// Opens (creating if needed) the data directory `dir`.
    ///
    /// Fails with `IncompatibleFormat` if the file is not ferry's or is newer than this
    /// build, `Corrupt` if it is damaged, `Io` if the directory cannot be created.
    pub fn open_with(dir: impl AsRef<Path>, options: EmbeddedOptions) -> Result<Self> {
        let dir = dir.as_ref();
        std::fs::create_dir_all(dir).map_err(|e| {
            Error::new(
                ErrorKind::Io,
                format!("cannot create data directory {}", dir.display()),
            )
            .with_source(e)
        })?;
        let file = dir.join(crate::DATA_FILE);
        let shown = file.display().to_string();
        let mut conn = open_connection(&file)?;
        schema::open_or_create(&mut conn, &shown)?;
        // A quick structural look at the file: catches torn or overwritten pages at open
        // instead of in the middle of a consumer's work.
        let check: String = conn
            .query_row("PRAGMA quick_check(1)", [], |r| r.get(0))
            .ctx(&format!("cannot check data file {shown}"))?;
        if check != "ok" {
            return Err(Error::new(
                ErrorKind::Corrupt,
                format!(
                    "data file {shown} is damaged ({check}); restore it from a backup, or inspect it with sqlite3's .recover"
                ),
            ));
        }
        let reader = open_connection(&file)?;
        let committed = Arc::new(Notify::new());
        let writer = Writer::start(conn, options.max_group, committed.clone());
        Ok(EmbeddedDriver {
            inner: Arc::new(Inner {
                path: dir.to_path_buf(),
                writer,
                reader: Arc::new(Mutex::new(reader)),
                committed,
                options,
            }),
        })
    }

    /// Finishes queued writes and closes the data file, blocking until done (call it
    /// from a blocking context, not an async task). Other clones of this handle get
    /// `Closed` errors afterwards. Dropping the last handle also closes the file, in
    /// the background.
    pub fn close(&self) {
        self.inner.writer.close();
    }

    /// The data directory.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Commits and operations of this handle's writer since it was opened.
    ///
    /// ```
    /// # let dir = tempfile::tempdir().unwrap();
    /// let driver = ferry_embedded::EmbeddedDriver::open(dir.path())?;
    /// assert!(driver.commit_stats().commits <= driver.commit_stats().operations);
    /// # Ok::<(), ferry_core::Error>(())
    /// ```
    pub fn commit_stats(&self) -> CommitStats {
        use std::sync::atomic::Ordering;
        let c = self.inner.writer.counters();
        CommitStats {
            commits: c.commits.load(Ordering::Relaxed),
            operations: c.operations.load(Ordering::Relaxed),
        }
    }

    /// This directory's durable idempotency store.
    pub fn idempotency(&self) -> crate::EmbeddedIdempotencyStore {
        crate::EmbeddedIdempotencyStore::new(self.clone())
    }

    /// This directory's durable store of prepared two-phase messages
    /// (`ferry_core::tx`), shared by every process using the directory.
    pub fn tx_store(&self) -> crate::EmbeddedTxStore {
        crate::EmbeddedTxStore::new(self.clone())
    }

    /// Runs `work` in a group commit; it cannot make messages deliverable.
    pub(crate) async fn write<R, F>(&self, work: F) -> Result<R>
    where
        R: Send + 'static,
        F: FnOnce(&Connection) -> Result<R> + Send + 'static,
    {
        self.inner.writer.run(false, work).await
    }

    /// Runs `work` in a group commit and wakes this process's long polls after it.
    async fn write_waking<R, F>(&self, work: F) -> Result<R>
    where
        R: Send + 'static,
        F: FnOnce(&Connection) -> Result<R> + Send + 'static,
    {
        self.inner.writer.run(true, work).await
    }

    /// Runs a read-only `work` on the read connection, off the async threads.
    pub(crate) async fn read<R, F>(&self, work: F) -> Result<R>
    where
        R: Send + 'static,
        F: FnOnce(&Connection) -> Result<R> + Send + 'static,
    {
        let reader = self.inner.reader.clone();
        tokio::task::spawn_blocking(move || {
            let conn = reader.lock().unwrap_or_else(|p| p.into_inner());
            work(&conn)
        })
        .await
        .map_err(|e| Error::internal(format!("read task failed: {e}")))?
    }
}

#[async_trait]
impl Topology for EmbeddedDriver {
    async fn create_queue(&self, queue: &QueueName, options: QueueOptions) -> Result<()> {
        options.validate()?;
        let q = queue.clone();
        self.write(move |c| ops::create_queue(c, &q, &options))
            .await
    }

    async fn get_queue(&self, queue: &QueueName) -> Result<QueueInfo> {
        let q = queue.clone();
        self.read(move |c| ops::get_queue(c, &q)).await
    }

    async fn list_queues(&self) -> Result<Vec<QueueInfo>> {
        self.read(ops::list_queues).await
    }

    async fn set_paused(&self, queue: &QueueName, paused: bool) -> Result<()> {
        let q = queue.clone();
        // A resume wakes this process's long polls; other processes' see the commit
        // through `data_version`.
        self.inner
            .writer
            .run(!paused, move |c| ops::set_paused(c, &q, paused))
            .await
    }

    async fn delete_queue(&self, queue: &QueueName) -> Result<()> {
        let q = queue.clone();
        self.write(move |c| ops::delete_queue(c, &q)).await
    }

    async fn create_topic(&self, topic: &TopicName) -> Result<()> {
        let t = topic.clone();
        self.write(move |c| ops::create_topic(c, &t)).await
    }

    async fn list_topics(&self) -> Result<Vec<TopicName>> {
        self.read(ops::list_topics).await
    }

    async fn delete_topic(&self, topic: &TopicName) -> Result<()> {
        let t = topic.clone();
        self.write(move |c| ops::delete_topic(c, &t)).await
    }

    async fn bind(&self, topic: &TopicName, queue: &QueueName, pattern: &str) -> Result<()> {
        validate_pattern(pattern)?;
        let (t, q, p) = (topic.clone(), queue.clone(), pattern.to_string());
        self.write(move |c| ops::bind(c, &t, &q, &p)).await
    }

    async fn unbind(&self, topic: &TopicName, queue: &QueueName, pattern: &str) -> Result<()> {
        let (t, q, p) = (topic.clone(), queue.clone(), pattern.to_string());
        self.write(move |c| ops::unbind(c, &t, &q, &p)).await
    }

    async fn list_bindings(&self, topic: &TopicName) -> Result<Vec<Binding>> {
        let t = topic.clone();
        self.read(move |c| ops::list_bindings(c, &t)).await
    }
}

#[async_trait]
impl DeadLetters for EmbeddedDriver {
    async fn list_dead_letters(
        &self,
        queue: &QueueName,
        query: DeadLetterQuery,
    ) -> Result<Vec<DeadLetter>> {
        let q = queue.clone();
        self.read(move |c| ops::list_dead_letters(c, &q, &query))
            .await
    }

    async fn get_dead_letter(&self, queue: &QueueName, id: &str) -> Result<DeadLetter> {
        let (q, id) = (queue.clone(), id.to_string());
        self.read(move |c| ops::get_dead_letter(c, &q, &id)).await
    }

    async fn requeue_dead_letters(&self, queue: &QueueName, selection: Selection) -> Result<u64> {
        let mut total = 0;
        let mut before = i64::MAX;
        let hist = self.inner.options.history.is_some();
        loop {
            let (q, sel) = (queue.clone(), selection.clone());
            let (n, next) = self
                .write_waking(move |c| ops::requeue_dead_letters(c, &q, &sel, before, hist))
                .await?;
            total += n;
            match next {
                Some(cursor) => before = cursor,
                None => return Ok(total),
            }
        }
    }

    async fn delete_dead_letters(&self, queue: &QueueName, selection: Selection) -> Result<u64> {
        let mut total = 0;
        let hist = self.inner.options.history.is_some();
        loop {
            let (q, sel) = (queue.clone(), selection.clone());
            let n = self
                .write(move |c| ops::delete_dead_letters(c, &q, &sel, hist))
                .await?;
            total += n;
            if !matches!(selection, Selection::All) || n < ops::CHUNK as u64 {
                return Ok(total);
            }
        }
    }

    async fn insert_dead_letters(
        &self,
        queue: &QueueName,
        letters: Vec<DeadLetter>,
    ) -> Result<u64> {
        self.inner.options.limits.validate_dead_letters(&letters)?;
        let q = queue.clone();
        let hist = self.inner.options.history.is_some();
        self.write(move |c| redrive::insert(c, &q, &letters, hist))
            .await
    }

    async fn approve_dead_letters(&self, queue: &QueueName, selection: Selection) -> Result<u64> {
        // `All` in chunks (as requeue and purge), so a million approvals never hold the
        // writer for long; each chunk is its own commit.
        let (mut total, mut after) = (0, i64::MIN);
        loop {
            let (q, sel) = (queue.clone(), selection.clone());
            let (n, next) = self
                .write(move |c| redrive::approve(c, &q, &sel, after))
                .await?;
            total += n;
            match next {
                Some(cursor) => after = cursor,
                None => return Ok(total),
            }
        }
    }

    async fn redrive_approved(&self, queue: &QueueName, max: u64) -> Result<Vec<String>> {
        let q = queue.clone();
        let hist = self.inner.options.history.is_some();
        // One writer job = one write transaction: the claim (see `redrive.rs`).
        self.write_waking(move |c| redrive::redrive(c, &q, max, hist))
            .await
    }
}

#[async_trait]
impl Driver for EmbeddedDriver {
    fn limits(&self) -> Limits {
        self.inner.options.limits
    }

    fn idempotency_store(&self) -> Option<Arc<dyn ferry_core::IdempotencyStore>> {
        Some(Arc::new(self.idempotency()))
    }

    fn tx_store(&self) -> Option<Arc<dyn ferry_core::tx::TxStore>> {
        Some(Arc::new(EmbeddedDriver::tx_store(self)))
    }

    async fn send(&self, queue: &QueueName, batch: Vec<Message>) -> Result<SendReport> {
        self.inner.options.limits.validate_batch(&batch)?;
        let q = queue.clone();
        let hist = self.inner.options.history.is_some();
        let (enqueued, duplicates) = self
            .write_waking(move |c| ops::enqueue(c, &q, &batch, None, hist))
            .await?;
        let mut report = SendReport::default();
        report.enqueued = enqueued;
        report.duplicates = duplicates;
        Ok(report)
    }

    async fn publish(
        &self,
        topic: &TopicName,
        route_key: &str,
        batch: Vec<Message>,
    ) -> Result<PublishReport> {
        validate_route_key(route_key)?;
        self.inner.options.limits.validate_batch(&batch)?;
        let (t, key) = (topic.clone(), route_key.to_string());
        let hist = self.inner.options.history.is_some();
        self.write_waking(move |c| {
            let queues = ops::route(c, &t, &key)?;
            if queues.is_empty() {
                return Err(Error::unroutable(t.as_str(), &key));
            }
            let mut report = PublishReport::default();
            for q in &queues {
                let (n, dups) = ops::enqueue(c, q, &batch, Some(&key), hist)?;
                report.enqueued += n;
                report.duplicates += dups.len() as u64;
            }
            report.queues = queues;
            Ok(report)
        })
        .await
    }

    async fn receive(&self, queue: &QueueName, options: ReceiveOptions) -> Result<Vec<Delivery>> {
        options.validate()?;
        let deadline = tokio::time::Instant::now() + options.wait;
        loop {
            // Both change signals are taken *before* looking, so a send that commits
            // between the look and the wait is never missed.
            let committed = self.inner.committed.notified();
            let version = if options.wait.is_zero() {
                None
            } else {
                Some(self.read(ops::data_version).await?)
            };
            let (q, max, lease) = (queue.clone(), options.max, options.lease);
            let hist = self.inner.options.history;
            let got = self
                .write(move |c| ops::receive(c, &q, max, lease, hist))
                .await?;
            let Some(version) = version else {
                return Ok(got.deliveries);
            };
            if !got.deliveries.is_empty() || tokio::time::Instant::now() >= deadline {
                return Ok(got.deliveries);
            }
            self.wait_for_change(committed, version, deadline, got.next_due)
                .await?;
        }
    }

    async fn settle(&self, batch: Vec<Settlement>) -> Result<Vec<Result<()>>> {
        let hist = self.inner.options.history.is_some();
        let wakes = batch.iter().any(|s| {
            matches!(
                s.action,
                ferry_core::SettleAction::Retry { .. } | ferry_core::SettleAction::Release
            )
        });
        self.inner
            .writer
            .run(wakes, move |c| {
                // A dead-letter move (insert, then delete) runs in its own savepoint, so
                // one failing half-way leaves nothing behind; the other settlements
                // are single statements, atomic by themselves.
                batch
                    .iter()
                    .map(|s| {
                        if !matches!(s.action, ferry_core::SettleAction::DeadLetter { .. }) {
                            return Ok(ops::settle(c, &s.receipt, &s.action, hist));
                        }
                        exec_cached(c, "SAVEPOINT settle").ctx("cannot settle")?;
                        let r = ops::settle(c, &s.receipt, &s.action, hist);
                        let end = if r.is_ok() {
                            exec_cached(c, "RELEASE settle")
                        } else {
                            exec_cached(c, "ROLLBACK TO settle")
                                .and_then(|()| exec_cached(c, "RELEASE settle"))
                        };
                        end.ctx("cannot settle")?;
                        Ok(r)
                    })
                    .collect::<Result<Vec<Result<()>>>>()
            })
            .await
    }

    async fn extend(&self, receipt: &Receipt, lease: Duration) -> Result<SystemTime> {
        let r = receipt.clone();
        let until = self.write(move |c| ops::extend(c, &r, lease)).await?;
        Ok(from_millis(until))
    }

    async fn history(&self, queue: &QueueName, id: &str) -> Result<Vec<ferry_core::HistoryEvent>> {
        if self.inner.options.history.is_none() {
            return Err(Error::new(
                ErrorKind::Unsupported,
                "message history is turned off for this data directory",
            ));
        }
        let (q, id) = (queue.clone(), id.to_string());
        self.read(move |c| ops::message_history(c, &q, &id)).await
    }

    async fn stats(&self, queue: Option<&QueueName>) -> Result<Vec<QueueStats>> {
        let q = queue.cloned();
        self.read(move |c| ops::stats(c, q.as_ref())).await
    }
}

impl EmbeddedDriver {
    /// Waits until this process commits, another process commits (seen through
    /// SQLite's `data_version`), the next delayed message falls due, or the deadline.
    async fn wait_for_change(
        &self,
        committed: tokio::sync::futures::Notified<'_>,
        start_version: i64,
        deadline: tokio::time::Instant,
        next_due: Option<i64>,
    ) -> Result<()> {
        tokio::pin!(committed);
        let due_at = next_due.map(|due| {
            let ms = u64::try_from(due.saturating_sub(now_millis())).unwrap_or(0);
            tokio::time::Instant::now() + Duration::from_millis(ms)
        });
        let until = due_at.map_or(deadline, |d| d.min(deadline));
        loop {
            let now = tokio::time::Instant::now();
            if now >= until {
                return Ok(());
            }
            let nap = (until - now).min(self.inner.options.poll_interval);
            tokio::select! {
                _ = &mut committed => return Ok(()),
                _ = tokio::time::sleep(nap) => {}
            }
            if self.read(ops::data_version).await? != start_version {
                return Ok(());
            }
        }
    }
}
