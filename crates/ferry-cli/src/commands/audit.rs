//! `ferry audit`: the audit log that `ferry serve` writes, newest first.

use std::path::{Path, PathBuf};

use ferry::Result;

use crate::args::AuditArgs;
use crate::output::{Align, clip, outln, table};

/// Where the audit log lives when not configured: beside a `file:` backend's data, else
/// `./ferry-audit.jsonl`, so `ferry audit` finds what `ferry serve` wrote on the same
/// backend without being told.
pub fn default_path(backend: &str) -> PathBuf {
    let dir = backend
        .strip_prefix("file://")
        .or_else(|| backend.strip_prefix("file:"))
        .map(str::trim)
        .filter(|d| !d.is_empty());
    match dir {
        Some(d) => Path::new(d).join("audit.jsonl"),
        None => PathBuf::from("ferry-audit.jsonl"),
    }
}

fn time(ms: i64) -> String {
    humantime::format_rfc3339_seconds(ferry::time::from_millis(ms)).to_string()
}

/// Prints the newest `limit` entries.
pub fn run(path: &Path, args: AuditArgs) -> Result<()> {
    let entries = ferry_http::read_entries(path)?;
    let newest: Vec<_> = entries.iter().rev().take(args.limit).collect();
    if args.json {
        for e in newest {
            let line = serde_json::to_string(e)
                .map_err(|e| ferry::Error::internal("audit entry encoding").with_source(e))?;
            outln!("{line}")?;
        }
        return Ok(());
    }
    if newest.is_empty() {
        outln!("no audit entries in {}", path.display())?;
        return Ok(());
    }
    let rows: Vec<Vec<String>> = newest
        .iter()
        .map(|e| {
            vec![
                e.seq.to_string(),
                time(e.at),
                clip(&e.actor, 20),
                e.action.clone(),
                clip(&e.target, 40),
                e.count.to_string(),
                clip(e.detail.as_deref().unwrap_or("-"), 50),
            ]
        })
        .collect();
    outln!(
        "{}",
        table(
            &[
                ("SEQ", Align::Right),
                ("AT", Align::Left),
                ("ACTOR", Align::Left),
                ("ACTION", Align::Left),
                ("TARGET", Align::Left),
                ("COUNT", Align::Right),
                ("DETAIL", Align::Left),
            ],
            &rows
        )
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_paths_follow_the_backend() {
        assert_eq!(default_path("file:./data"), Path::new("./data/audit.jsonl"));
        assert_eq!(
            default_path("redis://h:6379"),
            Path::new("ferry-audit.jsonl")
        );
    }

    #[test]
    fn times_are_utc() {
        assert_eq!(time(0), "1970-01-01T00:00:00Z");
        assert_eq!(time(1_796_300_000_000), "2026-12-03T12:13:20Z");
    }
}
