//! The ledger: an append-only record of a test run, and the checker that judges it.
//!
//! Producers, workers (in any process, any language: a shell handler can `printf` a line)
//! and the fault injector append one JSON object per line to one file opened with
//! `O_APPEND`, each line in a single `write`, so lines from concurrent processes never
//! interleave and a `SIGKILL` can at most tear the last line (which the reader skips).
//! The file order is the order of events.
//!
//! [`check`] compares the ledger with the backend's final state:
//! - **lost**: sent, but neither processed (an `effect` line), nor dead-lettered, nor
//!   still queued: must be empty;
//! - **phantoms**: processed, queued or dead-lettered but never sent: must be empty;
//! - **duplicates**: processed more than once; each repeat must be explained by a
//!   `fault` line between the two `effect` lines (a worker killed after its side effect
//!   but before its ack), otherwise it is **unexplained**: must be empty.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// One line of the ledger.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "ev", rename_all = "snake_case")]
pub enum Event {
    /// `send` returned Ok for this id.
    Sent {
        /// Message id.
        id: String,
    },
    /// `send` returned an indeterminate error: the id may or may not be stored.
    SendUnknown {
        /// Message id.
        id: String,
    },
    /// A handler started on this id.
    Delivered {
        /// Message id.
        id: String,
        /// Attempt number.
        #[serde(default)]
        attempt: u32,
    },
    /// A handler finished its side effect for this id (before the ack).
    Effect {
        /// Message id.
        id: String,
    },
    /// A fault was injected (a process killed, a connection cut).
    Fault {
        /// What was done, for the report.
        kind: String,
    },
}

/// Appends events to a ledger file.
#[derive(Debug, Clone)]
pub struct Ledger {
    path: PathBuf,
}

impl Ledger {
    /// A ledger at `path` (created on first append).
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Ledger { path: path.into() }
    }

    /// The file path (to hand to worker processes).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends one event as one line, in one `write`.
    pub fn append(&self, event: &Event) -> std::io::Result<()> {
        let mut line = serde_json::to_vec(event).map_err(std::io::Error::other)?;
        line.push(b'\n');
        let mut f = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)?;
        f.write_all(&line)
    }

    /// Appends many events, each its own line.
    pub fn append_all<'a>(
        &self,
        events: impl IntoIterator<Item = &'a Event>,
    ) -> std::io::Result<()> {
        let mut buf = Vec::new();
        for e in events {
            buf.extend(serde_json::to_vec(e).map_err(std::io::Error::other)?);
            buf.push(b'\n');
        }
        let mut f = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)?;
        f.write_all(&buf)
    }

    /// Reads every complete line; a torn or foreign line is skipped and counted.
    pub fn read(&self) -> std::io::Result<(Vec<Event>, usize)> {
        let text = match std::fs::read_to_string(&self.path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) => return Err(e),
        };
        let mut events = Vec::new();
        let mut skipped = 0;
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            match serde_json::from_str(line) {
                Ok(e) => events.push(e),
                Err(_) => skipped += 1,
            }
        }
        Ok((events, skipped))
    }
}

/// What the backend holds at the end of the run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FinalState {
    /// Ids still in the queue (ready, delayed or in flight).
    pub queued: BTreeSet<String>,
    /// Ids in the dead letters.
    pub dead: BTreeSet<String>,
}

/// The checker's verdict.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Verdict {
    /// Ids whose send succeeded.
    pub sent: usize,
    /// Ids processed at least once.
    pub processed: usize,
    /// Ids dead-lettered.
    pub dead: usize,
    /// Ids still queued.
    pub queued: usize,
    /// Faults injected.
    pub faults: usize,
    /// Sent ids that vanished. Must be empty.
    pub lost: Vec<String>,
    /// Ids that appeared without being sent. Must be empty.
    pub phantoms: Vec<String>,
    /// Extra processings explained by a fault.
    pub explained_duplicates: usize,
    /// Ids processed again without a fault in between. Must be empty.
    pub unexplained_duplicates: Vec<String>,
}

impl Verdict {
    /// Whether the run kept every promise.
    pub fn is_ok(&self) -> bool {
        self.lost.is_empty() && self.phantoms.is_empty() && self.unexplained_duplicates.is_empty()
    }

    /// Panics with the whole verdict unless [`is_ok`](Self::is_ok).
    pub fn assert_ok(&self) {
        assert!(self.is_ok(), "ledger check failed: {self:#?}");
    }
}

/// Judges a run: see the module docs.
///
/// ```
/// use ferry_testkit::ledger::{check, Event, FinalState};
/// let ev = |e: &str, id: &str| match e {
///     "sent" => Event::Sent { id: id.into() },
///     _ => Event::Effect { id: id.into() },
/// };
/// let events = vec![ev("sent", "a"), ev("sent", "b"), ev("effect", "a"), ev("effect", "a")];
/// let v = check(&events, &FinalState::default());
/// assert_eq!(v.lost, ["b"]);
/// assert_eq!(v.unexplained_duplicates, ["a"]);
/// ```
pub fn check(events: &[Event], end: &FinalState) -> Verdict {
    let mut sent = BTreeSet::new();
    let mut maybe_sent = BTreeSet::new();
    let mut effects: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    let mut fault_positions = Vec::new();
    for (i, e) in events.iter().enumerate() {
        match e {
            Event::Sent { id } => {
                sent.insert(id.as_str());
            }
            Event::SendUnknown { id } => {
                maybe_sent.insert(id.as_str());
            }
            Event::Effect { id } => effects.entry(id.as_str()).or_default().push(i),
            Event::Delivered { .. } => {}
            Event::Fault { .. } => fault_positions.push(i),
        }
    }
    let mut v = Verdict {
        sent: sent.len(),
        processed: effects.len(),
        dead: end.dead.len(),
        queued: end.queued.len(),
        faults: fault_positions.len(),
        ..Verdict::default()
    };
    for id in &sent {
        if !effects.contains_key(id) && !end.dead.contains(*id) && !end.queued.contains(*id) {
            v.lost.push(id.to_string());
        }
    }
    let known = |id: &str| sent.contains(id) || maybe_sent.contains(id);
    let mut phantoms: BTreeSet<String> = BTreeSet::new();
    for id in effects
        .keys()
        .copied()
        .chain(end.dead.iter().map(String::as_str))
        .chain(end.queued.iter().map(String::as_str))
    {
        if !known(id) {
            phantoms.insert(id.to_string());
        }
    }
    v.phantoms = phantoms.into_iter().collect();
    for (id, positions) in &effects {
        for pair in positions.windows(2) {
            let explained = fault_positions.iter().any(|&f| f > pair[0] && f < pair[1]);
            if explained {
                v.explained_duplicates += 1;
            } else {
                v.unexplained_duplicates.push(id.to_string());
            }
        }
    }
    v.unexplained_duplicates.dedup();
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sent(id: &str) -> Event {
        Event::Sent { id: id.into() }
    }
    fn effect(id: &str) -> Event {
        Event::Effect { id: id.into() }
    }
    fn fault() -> Event {
        Event::Fault {
            kind: "kill".into(),
        }
    }

    #[test]
    fn clean_run_passes() {
        let events = [sent("a"), sent("b"), sent("c"), effect("a"), effect("b")];
        let end = FinalState {
            queued: BTreeSet::new(),
            dead: ["c".to_string()].into(),
        };
        let v = check(&events, &end);
        assert!(v.is_ok(), "{v:?}");
        assert_eq!((v.sent, v.processed, v.dead), (3, 2, 1));
    }

    #[test]
    fn still_queued_is_not_lost() {
        let end = FinalState {
            queued: ["a".to_string()].into(),
            dead: BTreeSet::new(),
        };
        assert!(check(&[sent("a")], &end).is_ok());
    }

    #[test]
    fn lost_message_fails() {
        let v = check(&[sent("a"), sent("b"), effect("a")], &FinalState::default());
        assert_eq!(v.lost, ["b"]);
        assert!(!v.is_ok());
    }

    #[test]
    fn duplicate_after_fault_is_explained() {
        let events = [sent("a"), effect("a"), fault(), effect("a")];
        let v = check(&events, &FinalState::default());
        assert!(v.is_ok(), "{v:?}");
        assert_eq!(v.explained_duplicates, 1);
    }

    #[test]
    fn duplicate_with_fault_elsewhere_is_not_explained() {
        let events = [sent("a"), fault(), effect("a"), effect("a")];
        let v = check(&events, &FinalState::default());
        assert_eq!(v.unexplained_duplicates, ["a"]);
    }

    #[test]
    fn phantom_fails() {
        let v = check(&[effect("x")], &FinalState::default());
        assert_eq!(v.phantoms, ["x"]);
        let end = FinalState {
            queued: BTreeSet::new(),
            dead: ["y".to_string()].into(),
        };
        assert_eq!(check(&[], &end).phantoms, ["y"]);
    }

    #[test]
    fn indeterminate_send_may_or_may_not_exist() {
        let events = [Event::SendUnknown { id: "u".into() }, effect("u")];
        assert!(check(&events, &FinalState::default()).is_ok());
        assert!(check(&events[..1], &FinalState::default()).is_ok());
    }

    #[test]
    fn torn_last_line_is_skipped() {
        let dir = std::env::temp_dir().join(crate::unique_name("ledger"));
        let ledger = Ledger::new(&dir);
        ledger.append(&sent("a")).expect("append");
        ledger.append_all([&effect("a")]).expect("append");
        let mut f = OpenOptions::new().append(true).open(&dir).expect("open");
        f.write_all(b"{\"ev\":\"sen").expect("write");
        let (events, skipped) = ledger.read().expect("read");
        assert_eq!(events, [sent("a"), effect("a")]);
        assert_eq!(skipped, 1);
        let _ = std::fs::remove_file(&dir);
    }
}
