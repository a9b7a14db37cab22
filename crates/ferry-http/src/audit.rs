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
            })),
        }
    }

    /// Opens (or creates) the log file at `path` and loads its entries. A line that is
    /// not an entry (a torn last line after a crash) is skipped with a warning; the file
    /// itself is never rewritten.
    pub fn open(path: impl Into<PathBuf>) -> Result<Self> {
        let path = path.into();
        let entries = read_entries(&path)?;
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| io_error(&path, "create its folder", e))?;
        }
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|e| io_error(&path, "open for appending", e))?;
        // After a torn write the file ends mid-line; end that line so the next entry
        // starts on its own instead of being glued to the fragment.
        if !ends_with_newline(&path)? {
            file.write_all(b"\n")
                .map_err(|e| io_error(&path, "append", e))?;
        }
        Ok(AuditLog {
            path: Some(path),
            inner: Arc::new(Mutex::new(Inner {
                file: Some(file),
                entries,
            })),
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
            let entry = AuditEntry {
                seq: guard.entries.last().map_or(1, |e| e.seq + 1),
                at: ferry_core::time::to_millis(std::time::SystemTime::now()),
                actor: record.actor,
                role: record.role,
                action: record.action,
                target: record.target,
                count: record.count,
                detail: record.detail,
                remote: record.remote,
            };
            if let (Some(file), Some(path)) = (guard.file.as_mut(), path.as_ref()) {
                let mut line = serde_json::to_vec(&entry)
                    .map_err(|e| Error::new(ErrorKind::Io, format!("audit entry encoding: {e}")))?;
                line.push(b'\n');
                file.write_all(&line)
                    .map_err(|e| io_error(path, "append", e))?;
                file.sync_data().map_err(|e| io_error(path, "sync", e))?;
            }
            guard.entries.push(entry.clone());
            Ok(entry)
        })
        .await;
        joined.map_err(|e| Error::new(ErrorKind::Io, format!("audit writer stopped: {e}")))?
    }

    /// A page of entries, newest first, and the total count.
    pub fn page(&self, offset: usize, limit: usize) -> (Vec<AuditEntry>, usize) {
        let guard = self
            .inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
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
}
