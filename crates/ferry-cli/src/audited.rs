//! The audit trail of changes made from the command line.
//!
//! An operator's `ferry dlq purge` is as much a change as a purge in the dashboard, so
//! the CLI appends to the same audit log `ferry serve` writes (the file is shared
//! safely; see `ferry_http::AuditLog`), as actor `cli:$USER`. The log is opened lazily,
//! only when a command changes something. A failure to write it is reported on stderr
//! and does not turn a change that happened into a failed command.

use std::path::PathBuf;
use std::sync::OnceLock;

use ferry_http::{AuditLog, AuditRecord};

static PATH: OnceLock<PathBuf> = OnceLock::new();

/// Sets where the audit log is (called once by `main`).
pub fn init(path: PathBuf) {
    let _ = PATH.set(path);
}

/// Who the CLI's entries name.
fn actor() -> String {
    let user = std::env::var("USER")
        .or_else(|_| std::env::var("USERNAME"))
        .unwrap_or_else(|_| "unknown".to_string());
    format!("cli:{user}")
}

/// Records a change made by this command.
pub async fn record(action: &str, target: impl Into<String>, count: u64, detail: Option<String>) {
    let Some(path) = PATH.get() else {
        return;
    };
    let entry = AuditRecord {
        actor: actor(),
        role: "admin".to_string(),
        action: action.to_string(),
        target: target.into(),
        count,
        detail,
        remote: None,
    };
    let written = match AuditLog::open(path) {
        Ok(log) => log.record(entry).await.map(|_| ()),
        Err(e) => Err(e),
    };
    if let Err(e) = written {
        eprintln!("warning: the change was made, but its audit entry was not written: {e}");
    }
}
