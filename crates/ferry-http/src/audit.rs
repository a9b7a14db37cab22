//! The audit log: who changed what, when, and how many messages it touched.
//!
//! Operators' changes (requeue, purge, delete, edit, pause, topology) are the moments a
//! team later needs to reconstruct, and the peers' dashboards keep no record of them. The
//! log is a file of JSON lines opened append-only (`O_APPEND`) and synced after every
//! entry, so an entry that was answered is on disk, and nothing in ferry ever rewrites or
//! truncates it. `ferry audit` reads the same file.
//!
//! An entry is written after the change succeeded, with the count it reported. If the
//! write fails the change has still happened: the failure is logged and counted in
//! `ferry_audit_write_errors_total` rather than reported as a failed change.

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use ferry_core::{Error, ErrorKind, Result};
use serde::{Deserialize, Serialize};

/// One change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// Position in the log, from 1.
    pub seq: u64,
    /// Milliseconds since the Unix epoch.
    pub at: i64,
    /// The token's name.
    pub actor: String,
    /// The token's role.
    pub role: String,
    /// What was done, like `dead_letters.requeue` or `queue.delete`.
    pub action: String,
    /// What it was done to, like `emails` or `orders -> billing (order.*)`.
    pub target: String,
    /// How many messages or objects it touched.
    pub count: u64,
    /// Anything else worth keeping (the ids selected, the options set).
    pub detail: Option<String>,
    /// The client's address, when known.
    pub remote: Option<String>,
}

/// What a caller records; the log adds `seq` and `at`.
#[derive(Debug, Clone, Default)]
pub struct AuditRecord {
    /// See [`AuditEntry::actor`].
    pub actor: String,
    /// See [`AuditEntry::role`].
    pub role: String,
    /// See [`AuditEntry::action`].
    pub action: String,
    /// See [`AuditEntry::target`].
    pub target: String,
    /// See [`AuditEntry::count`].
    pub count: u64,
    /// See [`AuditEntry::detail`].
    pub detail: Option<String>,
    /// See [`AuditEntry::remote`].
    pub remote: Option<String>,
}

struct Inner {
    file: Option<std::fs::File>,
    entries: Vec<AuditEntry>,
    /// Bytes of the file already read into `entries`.
    read_to: u64,
}

impl Inner {
    /// Reads the complete lines other processes appended since the last read. Must be
    /// called with the file locked.
    fn catch_up(&mut self, path: &Path) -> Result<()> {
        use std::io::{Read, Seek, SeekFrom};
        let mut f = std::fs::File::open(path).map_err(|e| io_error(path, "open", e))?;
        f.seek(SeekFrom::Start(self.read_to))
            .map_err(|e| io_error(path, "seek", e))?;
        let mut tail = Vec::new();
        f.read_to_end(&mut tail)
            .map_err(|e| io_error(path, "read", e))?;
        let Some(end) = tail.iter().rposition(|b| *b == b'\n') else {
            return Ok(());
        };
        for line in tail[..end].split(|b| *b == b'\n') {
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            match serde_json::from_slice::<AuditEntry>(line) {
                Ok(entry) => self.entries.push(entry),
                Err(e) => tracing::warn!(
                    "audit log {}: skipped a line that is not an entry ({e})",
                    path.display()
                ),
            }
        }
        self.read_to += end as u64 + 1;
        Ok(())
    }
}

/// The audit log, in a file or (for tests and `memory:` backends) in memory.
///
/// ```
/// use ferry_http::{AuditLog, AuditRecord};
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let dir = tempfile::tempdir().unwrap();
/// let log = AuditLog::open(dir.path().join("audit.jsonl"))?;
/// log.record(AuditRecord { actor: "ops".into(), action: "queue.delete".into(), target: "old".into(), ..Default::default() }).await?;
/// let reopened = AuditLog::open(dir.path().join("audit.jsonl"))?;
/// assert_eq!(reopened.page(0, 10).0[0].action, "queue.delete");
/// # Ok::<(), ferry_core::Error>(()) }).unwrap();
/// ```
#[derive(Clone)]
pub struct AuditLog {
    path: Option<PathBuf>,
    inner: Arc<Mutex<Inner>>,
}

impl std::fmt::Debug for AuditLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditLog")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

fn io_error(path: &Path, what: &str, e: std::io::Error) -> Error {
    Error::new(
        ErrorKind::Io,
        format!("audit log {}: {what}: {e}", path.display()),
    )
    .with_source(e)
}

impl AuditLog {
    /// A log kept in memory only (lost when the process ends).
    pub fn memory() -> Self {
        AuditLog {
            path: None,
            inner: Arc::new(Mutex::new(Inner {
                file: None,
                entries: Vec::new(),
                read_to: 0,
            })),
        }
    }

    /// Opens (or creates) the log file at `path` and loads its entries. A line that is
    /// not an entry (a torn last line after a crash) is skipped with a warning; the file
    /// itself is never rewritten.
    pub fn open(path: impl Into<PathBuf>) -> Result<Self> {
        let path = path.into();
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| io_error(&path, "create its folder", e))?;
        }
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|e| io_error(&path, "open for appending", e))?;
        let mut inner = Inner {
            file: None,
            entries: Vec::new(),
            read_to: 0,
        };
        file.lock_shared().map_err(|e| io_error(&path, "lock", e))?;
        let read = inner.catch_up(&path);
        let _ = file.unlock();
        read?;
        inner.file = Some(file);
        Ok(AuditLog {
            path: Some(path),
            inner: Arc::new(Mutex::new(inner)),
        })
    }

    /// The file, if the log has one.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// Appends an entry and syncs it to disk before returning.
    pub async fn record(&self, record: AuditRecord) -> Result<AuditEntry> {
        let inner = self.inner.clone();
        let path = self.path.clone();
        let joined = tokio::task::spawn_blocking(move || {
            let mut guard = inner
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let guard = &mut *guard;
            if let (Some(file), Some(path)) = (guard.file.as_ref(), path.as_ref()) {
                file.lock().map_err(|e| io_error(path, "lock", e))?;
            }
            let written = append(guard, path.as_deref(), record);
            if let Some(file) = guard.file.as_ref() {
                let _ = file.unlock();
            }
            let entry = written?;
            guard.entries.push(entry.clone());
            Ok(entry)
        })
        .await;
        joined.map_err(|e| Error::new(ErrorKind::Io, format!("audit writer stopped: {e}")))?
    }

    /// A page of entries, newest first, and the total count (including what other
    /// processes appended since).
    pub fn page(&self, offset: usize, limit: usize) -> (Vec<AuditEntry>, usize) {
        let mut guard = self
            .inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(path) = &self.path {
            let locked = guard.file.as_ref().map(std::fs::File::lock_shared);
            if let Some(Ok(())) = locked
                && let Err(e) = guard.catch_up(path)
            {
                tracing::warn!("{e}");
            }
            if let Some(file) = guard.file.as_ref() {
                let _ = file.unlock();
            }
        }
        let total = guard.entries.len();
        let page = guard
            .entries
            .iter()
            .rev()
            .skip(offset)
            .take(limit)
            .cloned()
            .collect();
        (page, total)
    }
}

/// Appends one entry under the writer's lock: catches up with other writers, ends a
/// torn line a crash left, numbers the entry after the last one, writes and syncs.
fn append(inner: &mut Inner, path: Option<&Path>, record: AuditRecord) -> Result<AuditEntry> {
    if let Some(path) = path {
        inner.catch_up(path)?;
    }
    let entry = AuditEntry {
        seq: inner.entries.last().map_or(1, |e| e.seq + 1),
        at: ferry_core::time::to_millis(std::time::SystemTime::now()),
        actor: record.actor,
        role: record.role,
        action: record.action,
        target: record.target,
        count: record.count,
        detail: record.detail,
        remote: record.remote,
    };
    if let (Some(file), Some(path)) = (inner.file.as_mut(), path) {
        let mut line = Vec::new();
        if !ends_with_newline(path)? {
            // After a torn write the file ends mid-line; end that line so this entry
            // starts on its own instead of being glued to the fragment.
            line.push(b'\n');
        }
        serde_json::to_writer(&mut line, &entry)
            .map_err(|e| Error::new(ErrorKind::Io, format!("audit entry encoding: {e}")))?;
        line.push(b'\n');
        file.write_all(&line)
            .map_err(|e| io_error(path, "append", e))?;
        file.sync_data().map_err(|e| io_error(path, "sync", e))?;
        inner.read_to = std::fs::metadata(path)
            .map_err(|e| io_error(path, "stat", e))?
            .len();
    }
    Ok(entry)
}

fn ends_with_newline(path: &Path) -> Result<bool> {
    use std::io::{Read, Seek, SeekFrom};
    let mut f = std::fs::File::open(path).map_err(|e| io_error(path, "open", e))?;
    let len = f
        .seek(SeekFrom::End(0))
        .map_err(|e| io_error(path, "seek", e))?;
    if len == 0 {
        return Ok(true);
    }
    f.seek(SeekFrom::End(-1))
        .map_err(|e| io_error(path, "seek", e))?;
    let mut last = [0u8; 1];
    f.read_exact(&mut last)
        .map_err(|e| io_error(path, "read", e))?;
    Ok(last[0] == b'\n')
}

/// Reads the entries of the log file at `path`, oldest first (none if the file does
/// not exist). What `ferry audit` prints.
pub fn read_entries(path: &Path) -> Result<Vec<AuditEntry>> {
    let file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_error(path, "open", e)),
    };
    let mut entries = Vec::new();
    for (n, line) in std::io::BufReader::new(file).lines().enumerate() {
        let line = line.map_err(|e| io_error(path, "read", e))?;
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<AuditEntry>(&line) {
            Ok(entry) => entries.push(entry),
            Err(e) => tracing::warn!(
                "audit log {} line {}: skipped, not an entry ({e})",
                path.display(),
                n + 1
            ),
        }
    }
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn entries_append_and_survive_a_torn_line() -> Result<()> {
        let dir = tempfile::tempdir().map_err(|e| Error::new(ErrorKind::Io, e.to_string()))?;
        let path = dir.path().join("a").join("audit.jsonl");
        let log = AuditLog::open(&path)?;
        for n in 0..3 {
            log.record(AuditRecord {
                actor: "ops".into(),
                action: "dead_letters.purge".into(),
                count: n,
                ..AuditRecord::default()
            })
            .await?;
        }
        // A crash mid-write leaves half a line.
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .map_err(|e| Error::new(ErrorKind::Io, e.to_string()))?;
        f.write_all(b"{\"seq\":4,\"at")
            .map_err(|e| Error::new(ErrorKind::Io, e.to_string()))?;
        let log = AuditLog::open(&path)?;
        let (page, total) = log.page(0, 2);
        assert_eq!(total, 3);
        assert_eq!(page.iter().map(|e| e.seq).collect::<Vec<_>>(), vec![3, 2]);
        // The next entry is not glued to the fragment.
        log.record(AuditRecord::default()).await?;
        assert_eq!(
            AuditLog::open(&path)?.page(0, 1),
            (vec![log.page(0, 1).0[0].clone()], 4)
        );
        Ok(())
    }

    #[tokio::test]
    async fn two_writers_share_one_numbering() -> Result<()> {
        let dir = tempfile::tempdir().map_err(|e| Error::new(ErrorKind::Io, e.to_string()))?;
        let path = dir.path().join("audit.jsonl");
        let serve = AuditLog::open(&path)?;
        let cli = AuditLog::open(&path)?;
        for (n, log) in [&serve, &cli, &serve, &cli].into_iter().enumerate() {
            let e = log
                .record(AuditRecord {
                    action: format!("a{n}"),
                    ..AuditRecord::default()
                })
                .await?;
            assert_eq!(e.seq, n as u64 + 1);
        }
        let (page, total) = serve.page(0, 10);
        assert_eq!(total, 4, "the other writer's entries are seen");
        assert_eq!(page[0].action, "a3");
        assert_eq!(read_entries(&path)?.len(), 4);
        Ok(())
    }
}
