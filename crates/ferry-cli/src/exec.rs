//! Running a shell command per delivery, for `ferry consume --exec`.
//!
//! This is what lets a worker be written in any language: the payload goes to the
//! command's stdin, the metadata into its environment, and the exit status decides the
//! outcome. The command's stdout and stderr pass through to ferry's; the end of its
//! stderr also becomes the recorded error, so `ferry dlq show` says why a message died.
//!
//! The command stays in ferry's process group, so whoever stops the worker by its group
//! (a terminal's Ctrl-C, `kill -- -PGID`, a supervisor) stops its commands too, and no
//! orphaned command keeps working on a message that is delivered again elsewhere. An
//! abandoned attempt (timeout, end of the grace period) kills the `sh` and every
//! process it started (see `TreeGuard`).

use std::collections::VecDeque;
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ferry::{Delivery, Outcome};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// How much of the end of a failing command's stderr is kept as the message's error.
const STDERR_TAIL: usize = 500;

/// How long to keep reading stderr after the command exited (a background process it
/// started may hold the pipe open).
const STDERR_LINGER: Duration = Duration::from_millis(200);

/// Runs `sh -c COMMAND` for each delivery.
#[derive(Debug, Clone)]
pub struct ExecHandler {
    command: Arc<str>,
}

impl ExecHandler {
    /// A handler running `command` with `sh -c`.
    pub fn new(command: &str) -> Self {
        ExecHandler {
            command: Arc::from(command),
        }
    }

    /// Runs the command for `delivery`: exit status 0 acks it, anything else is a failed
    /// attempt whose error is the status and the end of stderr.
    pub async fn handle(&self, delivery: Delivery) -> Outcome {
        let mut cmd = shell(&self.command, &delivery);
        cmd.stderr(Stdio::piped());

        let mut child = match cmd.spawn() {
            Ok(child) => child,
            Err(e) => {
                return Outcome::fail(format!("cannot start `sh -c {}`: {e}", self.command));
            }
        };
        // If this attempt is abandoned (timeout, end of the grace period), the guard
        // kills everything the command started, not just the `sh`.
        let mut tree = TreeGuard(child.id());
        let payload = delivery.payload.clone();
        let stdin = child.stdin.take();
        let feed = async move {
            if let Some(mut stdin) = stdin {
                // A command that does not read its stdin closes the pipe: not an error.
                let _ = stdin.write_all(&payload).await;
                // Dropping stdin sends EOF.
            }
        };
        let tail = Arc::new(Mutex::new(VecDeque::with_capacity(STDERR_TAIL)));
        let drain = drain_stderr(child.stderr.take(), tail.clone());
        tokio::pin!(drain);

        let work = async {
            let ((), status) = tokio::join!(feed, child.wait());
            status
        };
        tokio::pin!(work);
        let status = tokio::select! {
            status = &mut work => {
                let _ = tokio::time::timeout(STDERR_LINGER, &mut drain).await;
                status
            }
            // The command closed its stderr but may still be reading its stdin.
            () = &mut drain => (&mut work).await,
        };

        tree.0 = None;
        let status = match status {
            Ok(status) => status,
            Err(e) => return Outcome::fail(format!("cannot wait for the command: {e}")),
        };
        if status.success() {
            return Outcome::Ack;
        }
        let tail = {
            let tail = tail.lock().unwrap_or_else(|p| p.into_inner());
            let bytes: Vec<u8> = tail.iter().copied().collect();
            String::from_utf8_lossy(&bytes).trim().to_string()
        };
        let what = describe(status);
        Outcome::Retry {
            after: None,
            error: Some(if tail.is_empty() {
                what
            } else {
                format!("{what}: {tail}")
            }),
        }
    }
}

/// `sh -c COMMAND` with the delivery's metadata in its environment, stdin piped,
/// stdout and stderr passed through, killed when dropped.
fn shell(command: &str, delivery: &Delivery) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new("sh");
    cmd.arg("-c")
        .arg(command)
        .env("FERRY_MESSAGE_ID", &delivery.id)
        .env("FERRY_QUEUE", delivery.queue.as_str())
        .env("FERRY_ATTEMPT", delivery.attempt.to_string())
        .env(
            "FERRY_ROUTE_KEY",
            delivery.route_key.as_deref().unwrap_or(""),
        )
        .stdin(Stdio::piped())
        .stdout(Stdio::inherit())
        .stderr(Stdio::inherit())
        .kill_on_drop(true);
    cmd
}

/// Runs `sh -c COMMAND` to answer "did this message's work already happen?" for a
/// suspected duplicate (`ferry consume --idempotent --ensure CMD`).
#[derive(Debug, Clone)]
pub struct ExecEnsure {
    command: Arc<str>,
}

impl ExecEnsure {
    /// An `ensure` check running `command` with `sh -c`.
    pub fn new(command: &str) -> Self {
        ExecEnsure {
            command: Arc::from(command),
        }
    }

    /// Exit 0: done; exit 1: not done; anything else is an error.
    pub async fn already_done(&self, delivery: Delivery) -> Result<bool, std::io::Error> {
        let mut cmd = shell(&self.command, &delivery);
        let mut child = cmd.spawn()?;
        if let Some(mut stdin) = child.stdin.take() {
            // A check that does not read its stdin closes the pipe: not an error.
            let _ = stdin.write_all(&delivery.payload).await;
        }
        let status = child.wait().await?;
        match status.code() {
            Some(0) => Ok(true),
            Some(1) => Ok(false),
            _ => Err(std::io::Error::other(format!(
                "--ensure command ended with {} (want exit 0 = done or 1 = not done)",
                describe(status)
            ))),
        }
    }
}

/// Copies the command's stderr to ferry's stderr, keeping the last bytes in `tail`.
async fn drain_stderr(stderr: Option<tokio::process::ChildStderr>, tail: Arc<Mutex<VecDeque<u8>>>) {
    let Some(mut stderr) = stderr else { return };
    let mut buf = [0u8; 4096];
    let mut out = tokio::io::stderr();
    loop {
        let n = match stderr.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        let chunk = &buf[..n];
        // Our own stderr being closed must not fail the message.
        let _ = out.write_all(chunk).await;
        let mut tail = tail.lock().unwrap_or_else(|p| p.into_inner());
        tail.extend(chunk);
        let excess = tail.len().saturating_sub(STDERR_TAIL);
        tail.drain(..excess);
    }
}

/// Kills a command's whole process tree when an attempt is abandoned while it runs.
///
/// `kill_on_drop` only kills the `sh`; whatever it started (`sh -c "prog; ..."`) would
/// keep running and could finish its side effect while the message is retried
/// elsewhere. The tree is found through `/proc` (Linux), and the `kill` program sends
/// the signals, because this crate forbids the `unsafe` a direct `kill(2)` needs.
struct TreeGuard(Option<u32>);

impl Drop for TreeGuard {
    fn drop(&mut self) {
        let Some(root) = self.0 else { return };
        let mut pids = descendants(root);
        pids.push(root);
        let args: Vec<String> = pids.iter().map(u32::to_string).collect();
        let _ = std::process::Command::new("kill")
            .arg("-KILL")
            .args(&args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// Every process below `root`, from each `/proc/PID/stat`'s parent field.
fn descendants(root: u32) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut parent_of = Vec::new();
    for entry in dir.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // "pid (comm) state ppid ...": comm may contain spaces and parentheses.
        let ppid = stat
            .rfind(')')
            .and_then(|i| stat[i + 1..].split_whitespace().nth(1))
            .and_then(|p| p.parse::<u32>().ok());
        if let Some(ppid) = ppid {
            parent_of.push((pid, ppid));
        }
    }
    let mut found = Vec::new();
    let mut frontier = vec![root];
    while let Some(p) = frontier.pop() {
        for (pid, ppid) in &parent_of {
            if *ppid == p && !found.contains(pid) {
                found.push(*pid);
                frontier.push(*pid);
            }
        }
    }
    found
}

/// `exit status N`, or `killed by signal N` for a command that did not exit.
fn describe(status: ExitStatus) -> String {
    if let Some(code) = status.code() {
        return format!("exit status {code}");
    }
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        if let Some(signal) = status.signal() {
            return format!("killed by signal {signal}");
        }
    }
    status.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferry::QueueName;

    fn delivery(payload: &str) -> Delivery {
        let q = QueueName::new("q").unwrap_or_else(|e| panic!("{e}"));
        Delivery::new_for_test(q, "m1", payload.to_string())
    }

    #[tokio::test]
    async fn exit_zero_acks_and_sees_env_and_stdin() {
        let h = ExecHandler::new(
            r#"read line; [ "$line" = hello ] && [ "$FERRY_MESSAGE_ID" = m1 ] && [ "$FERRY_QUEUE" = q ] && [ "$FERRY_ATTEMPT" = 1 ] && [ -z "$FERRY_ROUTE_KEY" ]"#,
        );
        assert_eq!(h.handle(delivery("hello\n")).await, Outcome::Ack);
    }

    #[tokio::test]
    async fn failure_records_status_and_stderr() {
        let h = ExecHandler::new("echo boom >&2; exit 3");
        match h.handle(delivery("x")).await {
            Outcome::Retry {
                after: None,
                error: Some(e),
            } => assert_eq!(e, "exit status 3: boom"),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[tokio::test]
    async fn stderr_tail_is_bounded() {
        let h = ExecHandler::new("head -c 800 /dev/zero | tr '\\0' a >&2; exit 1");
        match h.handle(delivery("")).await {
            Outcome::Retry { error: Some(e), .. } => {
                assert!(e.starts_with("exit status 1: aaa"), "{e}");
                assert!(e.len() <= STDERR_TAIL + 20, "{}", e.len());
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    /// Regression: a timeout once killed only the `sh`, and what it had started went on
    /// to do its side effect after the attempt was given up.
    #[tokio::test]
    async fn abandoned_attempt_kills_the_whole_tree() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let marker = dir.path().join("effect");
        let h = ExecHandler::new(&format!(
            "sh -c 'sleep 1; echo effect > {}'; echo done",
            marker.display()
        ));
        let attempt = tokio::time::timeout(Duration::from_millis(300), h.handle(delivery("")));
        assert!(attempt.await.is_err(), "the attempt is abandoned");
        tokio::time::sleep(Duration::from_millis(1500)).await;
        assert!(
            !marker.exists(),
            "a grandchild of the abandoned attempt still ran"
        );
    }

    #[tokio::test]
    async fn ignoring_stdin_is_fine() {
        let big = "x".repeat(1 << 20);
        let h = ExecHandler::new("exit 0");
        assert_eq!(h.handle(delivery(&big)).await, Outcome::Ack);
    }
}
