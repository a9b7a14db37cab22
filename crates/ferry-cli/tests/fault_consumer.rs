//! Fault tests of the consumer runtime with real `ferry consume --exec` processes on the
//! embedded backend:
//!
//! - workers SIGKILLed mid-handler, with `--idempotent --ensure`: every message's effect
//!   happens exactly once (not merely "at least once, duplicates explained by kills");
//! - a worker stopped with SIGTERM mid-handler finishes its running handlers within
//!   `--grace`, exits 0, and the next worker picks up the rest with no duplicate;
//! - a hanging handler is cut off by `--timeout`, retried, and dead-lettered with reason
//!   `timeout`, while the other messages keep flowing past it.
//!
//! Handlers are shell snippets that append one JSON line per event to a ledger
//! (`ferry_testkit::ledger`), each line in one `write` to a file opened with `O_APPEND`.
//! Workers run in their own process group; every wait is a poll with a deadline.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::OpenOptions;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ferry::{DeadLetter, DeadLetterQuery, Driver, Message, QueueName, QueueOptions};
use ferry_testkit::ledger::{Event, FinalState, Ledger, Verdict, check};

fn ferry_bin() -> &'static str {
    env!("CARGO_BIN_EXE_ferry")
}

/// The handler: records `delivered`, sleeps for `slow*` payloads (`slow_secs`), sleeps
/// 60 s for `hang*` payloads (as the `sleep` itself, so a timeout's kill reaches it),
/// then records the effect in ONE append, so the effect line is either wholly in the
/// ledger or not at all. `late*` payloads sleep after the effect instead: a kill then
/// lands after the effect but before the ack, the window `--ensure` exists for.
fn handler_script(ledger: &Path, slow_secs: &str) -> String {
    r#"p=$(cat); printf '{"ev":"delivered","id":"%s","attempt":%s}\n' "$FERRY_MESSAGE_ID" "$FERRY_ATTEMPT" >> 'LEDGER'; case "$p" in hang*) exec sleep 60;; slow*) sleep SLOW;; esac; printf '{"ev":"effect","id":"%s"}\n' "$FERRY_MESSAGE_ID" >> 'LEDGER'; case "$p" in late*) sleep SLOW;; esac"#
        .replace("LEDGER", &ledger.display().to_string())
        .replace("SLOW", slow_secs)
}

/// The `--ensure` check: exit 0 when the message's effect line is in the ledger (the
/// effects record), 1 when it is not. Each answer is also logged to `answers`, for the
/// report.
fn ensure_script(ledger: &Path, answers: &Path) -> String {
    r#"if grep -qxF "{\"ev\":\"effect\",\"id\":\"$FERRY_MESSAGE_ID\"}" 'LEDGER'; then echo "done $FERRY_MESSAGE_ID" >> 'ANSWERS'; exit 0; fi; echo "not_done $FERRY_MESSAGE_ID" >> 'ANSWERS'; exit 1"#
        .replace("LEDGER", &ledger.display().to_string())
        .replace("ANSWERS", &answers.display().to_string())
}

/// A `ferry consume` process in its own process group; dropping it kills the group, so
/// a failing test leaves no worker (or handler) behind.
struct Worker {
    child: Child,
    pgid: u32,
    exited: Option<ExitStatus>,
    group_killed: bool,
}

impl Worker {
    fn spawn(backend: &str, args: &[&str], log: &Path) -> Worker {
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .expect("open worker log");
        let mut cmd = Command::new(ferry_bin());
        cmd.env_remove("FERRY_BACKEND")
            .args(["--backend", backend, "consume", "jobs"])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::from(log.try_clone().expect("clone log")))
            .stderr(Stdio::from(log));
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        let child = cmd.spawn().expect("spawn ferry consume");
        let pgid = child.id();
        Worker {
            child,
            pgid,
            exited: None,
            group_killed: false,
        }
    }

    /// SIGKILL to the whole group (ferry and its handler processes) at once.
    fn kill_group(&mut self) {
        let killed = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.pgid)])
            .status()
            .expect("run kill");
        assert!(killed.success(), "kill the worker's process group");
        self.group_killed = true;
        let status = self.child.wait().expect("wait for the killed worker");
        assert!(!status.success(), "the worker was killed, not finished");
        self.exited = Some(status);
    }

    /// SIGTERM to the ferry process only (its handlers do not get it).
    fn terminate(&self) {
        let sent = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(sent.success(), "SIGTERM the worker");
    }

    /// Waits for the worker to exit; `None` if it is still running at the deadline.
    async fn wait_for(&mut self, limit: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(s) = self.child.try_wait().expect("try_wait") {
                self.exited = Some(s);
                return Some(s);
            }
            if Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        if self.group_killed {
            return;
        }
        // The group may hold handler processes even after ferry exited (a `sleep` a
        // timed-out handler left behind): sweep it.
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.pgid)])
            .stderr(Stdio::null())
            .status();
        if self.exited.is_none() {
            let _ = self.child.wait();
        }
    }
}

/// A temp directory with a data directory, a ledger, a worker log and a driver.
struct Setup {
    tmp: tempfile::TempDir,
    backend: String,
    ledger: Ledger,
    driver: Arc<dyn Driver>,
    queue: QueueName,
}

impl Setup {
    async fn new(options: QueueOptions) -> Setup {
        let tmp = tempfile::tempdir().expect("tempdir");
        let backend = format!("file:{}", tmp.path().join("data").display());
        let ledger = Ledger::new(tmp.path().join("ledger.jsonl"));
        let driver = ferry::connect(&backend).expect("connect");
        let queue = QueueName::new("jobs").expect("name");
        driver
            .create_queue(&queue, options)
            .await
            .expect("create queue");
        Setup {
            tmp,
            backend,
            ledger,
            driver,
            queue,
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.tmp.path().join(name)
    }

    fn log(&self) -> PathBuf {
        self.path("workers.log")
    }

    /// The end of the workers' log, for failure messages.
    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(self.log()).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }

    /// Sends `batch` through the library, then records it as sent.
    async fn send(&self, batch: Vec<Message>) -> Vec<String> {
        let ids: Vec<String> = batch.iter().map(|m| m.id().to_string()).collect();
        self.driver.send(&self.queue, batch).await.expect("send");
        let events: Vec<Event> = ids
            .iter()
            .map(|id| Event::Sent { id: id.clone() })
            .collect();
        self.ledger.append_all(&events).expect("ledger");
        ids
    }

    fn events(&self) -> Vec<Event> {
        let (events, torn) = self.ledger.read().expect("read ledger");
        assert_eq!(torn, 0, "every ledger line is whole (one write per line)");
        events
    }

    async fn dead_letters(&self) -> Vec<DeadLetter> {
        self.driver
            .list_dead_letters(&self.queue, DeadLetterQuery::page(0, 100_000))
            .await
            .expect("dead letters")
    }

    async fn assert_drained(&self) {
        let stats = self.driver.stats(Some(&self.queue)).await.expect("stats");
        assert!(stats[0].is_drained(), "queue drained: {stats:?}");
    }

    /// Runs a worker with `args` plus `--until-empty` and waits (bounded) for it to exit 0.
    async fn drain(&self, args: &[&str], limit: Duration) {
        let mut all = args.to_vec();
        all.push("--until-empty");
        let mut worker = Worker::spawn(&self.backend, &all, &self.log());
        match worker.wait_for(limit).await {
            Some(s) if s.success() => {}
            Some(s) => panic!("drain worker exited with {s}\n{}", self.log_tail()),
            None => panic!(
                "drain worker did not finish within {limit:?}\n{}",
                self.log_tail()
            ),
        }
    }

    /// Judges the ledger against the backend's final state.
    async fn verdict(&self) -> Verdict {
        let dead: BTreeSet<String> = self
            .dead_letters()
            .await
            .into_iter()
            .map(|d| d.id)
            .collect();
        check(
            &self.events(),
            &FinalState {
                queued: BTreeSet::new(),
                dead,
            },
        )
    }
}

/// How many `effect` lines each id has.
fn effects_per_id(events: &[Event]) -> BTreeMap<String, usize> {
    let mut n = BTreeMap::new();
    for e in events {
        if let Event::Effect { id } = e {
            *n.entry(id.clone()).or_insert(0) += 1;
        }
    }
    n
}

/// Asserts that each of `ids` has exactly one effect line.
fn assert_one_effect_each(events: &[Event], ids: &[String]) {
    let effects = effects_per_id(events);
    let wrong: Vec<(&String, usize)> = ids
        .iter()
        .map(|id| (id, effects.get(id).copied().unwrap_or(0)))
        .filter(|(_, n)| *n != 1)
        .collect();
    assert!(
        wrong.is_empty(),
        "ids without exactly one effect (id, effects): {wrong:?}"
    );
}

/// Waits until `probe` holds, polling; panics with `what` at the deadline.
async fn eventually(limit: Duration, what: &str, mut probe: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !probe() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

const KILL_CYCLES: usize = 16;
const PER_CYCLE: usize = 12;

/// (a) Workers with the idempotency store and an `ensure` check are SIGKILLed at random
/// points; each message's effect must still happen exactly once.
///
/// Why zero duplicates is the right bar: a kill before the effect append leaves no
/// effect (the next worker's `ensure` says "not done" and runs it); a kill after the
/// append but before the key is marked done leaves an expired claim, so the next worker
/// asks `ensure`, which finds the effect line; a kill after "done" is answered by the
/// store. The effect append is one `write`, so there is no half-done effect. (The one
/// window left is a worker that stays alive while both its lease and its claim expire,
/// every extension failing for a whole lease; one worker runs at a time here.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_with_idempotency_store_gives_one_effect_per_message() {
    let started = Instant::now();
    let s = Setup::new(
        QueueOptions::default()
            .with_max_attempts(1000)
            .with_lease(Duration::from_secs(1)),
    )
    .await;
    let answers = s.path("ensure-answers.log");
    let script = handler_script(s.ledger.path(), "0.3");
    let check_cmd = ensure_script(s.ledger.path(), &answers);
    let args = [
        "--exec",
        script.as_str(),
        "--idempotent",
        "--ensure",
        check_cmd.as_str(),
        "--concurrency",
        "4",
        "--lease",
        "1s",
        "--backoff",
        "10ms",
        "--max-backoff",
        "50ms",
    ];

    let seed = fastrand::u64(..);
    eprintln!("fault_consumer sigkill seed {seed}");
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut sent = Vec::new();
    for cycle in 0..KILL_CYCLES {
        let mut worker = Worker::spawn(&s.backend, &args, &s.log());
        let batch: Vec<Message> = (0..PER_CYCLE)
            .map(|i| {
                let kind = match rng.u8(..100) {
                    0..=24 => "slow",
                    25..=49 => "late",
                    _ => "ok",
                };
                Message::new(format!("{kind}-{cycle}-{i}"))
            })
            .collect();
        sent.extend(s.send(batch).await);
        tokio::time::sleep(Duration::from_millis(rng.u64(50..=500))).await;
        worker.kill_group();
        s.ledger
            .append(&Event::Fault {
                kind: format!("SIGKILL worker group {} in cycle {cycle}", worker.pgid),
            })
            .expect("ledger");
    }

    // Heal: one worker drains everything (leases and claims of the killed workers
    // expire after 1 s).
    s.drain(&args, Duration::from_secs(120)).await;

    s.assert_drained().await;
    let dead = s.dead_letters().await;
    assert!(dead.is_empty(), "nothing is dead-lettered: {dead:?}");
    let events = s.events();
    let verdict = s.verdict().await;
    let delivered: usize = events
        .iter()
        .filter(|e| matches!(e, Event::Delivered { .. }))
        .count();
    let answers = std::fs::read_to_string(&answers).unwrap_or_default();
    let said_done = answers.lines().filter(|l| l.starts_with("done ")).count();
    let said_not_done = answers
        .lines()
        .filter(|l| l.starts_with("not_done "))
        .count();
    eprintln!(
        "seed {seed}: {verdict:?}; handler runs {delivered} for {} messages; \
         ensure answered done {said_done} (duplicates avoided), not done {said_not_done}; \
         took {:?}",
        sent.len(),
        started.elapsed()
    );
    if !verdict.is_ok() || verdict.explained_duplicates > 0 {
        eprintln!("workers' log (tail):\n{}", s.log_tail());
    }
    verdict.assert_ok();
    assert_eq!(verdict.sent, KILL_CYCLES * PER_CYCLE);
    assert_eq!(verdict.faults, KILL_CYCLES);
    assert_eq!(
        verdict.explained_duplicates, 0,
        "with the idempotency store and ensure, no kill may cause a second effect"
    );
    assert_one_effect_each(&events, &sent);
}

/// (b) SIGTERM mid-handler: running handlers finish within the grace period, the worker
/// exits 0, and the next worker processes the rest; no effect twice, nothing lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_mid_handler_finishes_running_work_and_exits_zero() {
    let started = Instant::now();
    let s = Setup::new(QueueOptions::default().with_lease(Duration::from_secs(5))).await;
    let script = handler_script(s.ledger.path(), "1");
    let args = [
        "--exec",
        script.as_str(),
        "--concurrency",
        "2",
        "--grace",
        "5s",
        "--backoff",
        "10ms",
        "--max-backoff",
        "50ms",
    ];
    let mut worker = Worker::spawn(&s.backend, &args, &s.log());
    let batch: Vec<Message> = (0..10).map(|i| Message::new(format!("slow-{i}"))).collect();
    let sent = s.send(batch).await;

    let ledger = s.ledger.clone();
    eventually(Duration::from_secs(30), "a first delivered line", || {
        ledger
            .read()
            .is_ok_and(|(events, _)| events.iter().any(|e| matches!(e, Event::Delivered { .. })))
    })
    .await;
    worker.terminate();
    let status = worker.wait_for(Duration::from_secs(10)).await;
    let log = std::fs::read_to_string(s.log()).unwrap_or_default();
    match status {
        Some(st) => assert_eq!(st.code(), Some(0), "exit status after SIGTERM\n{log}"),
        None => panic!("worker did not exit within 10 s of SIGTERM\n{log}"),
    }
    assert!(log.contains("SIGTERM received"), "{log}");
    assert!(
        !log.contains("handed back unfinished"),
        "running handlers finished within the grace period: {log}"
    );

    // Everything the first worker started, it finished.
    let events = s.events();
    let started_ids: BTreeSet<&String> = events
        .iter()
        .filter_map(|e| match e {
            Event::Delivered { id, .. } => Some(id),
            _ => None,
        })
        .collect();
    let finished: BTreeSet<&String> = events
        .iter()
        .filter_map(|e| match e {
            Event::Effect { id } => Some(id),
            _ => None,
        })
        .collect();
    assert_eq!(started_ids, finished, "no handler was cut off by SIGTERM");
    let first_worker = finished.len();
    assert!(
        first_worker >= 1 && first_worker < sent.len(),
        "{first_worker}"
    );

    s.drain(&args, Duration::from_secs(60)).await;
    s.assert_drained().await;
    let dead = s.dead_letters().await;
    assert!(dead.is_empty(), "nothing is dead-lettered: {dead:?}");
    let verdict = s.verdict().await;
    verdict.assert_ok();
    assert_eq!(verdict.explained_duplicates, 0);
    let events = s.events();
    assert_one_effect_each(&events, &sent);
    eprintln!(
        "sigterm: first worker finished {first_worker} of {}; took {:?}",
        sent.len(),
        started.elapsed()
    );
}

/// (c) A handler that hangs is killed at `--timeout`, retried, and dead-lettered with
/// reason `timeout` after `--max-attempts`, while the others keep being processed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hanging_handler_times_out_into_dead_letters_while_others_flow() {
    let started = Instant::now();
    let s = Setup::new(QueueOptions::default().with_lease(Duration::from_secs(5))).await;
    let script = handler_script(s.ledger.path(), "0");
    let args = [
        "--exec",
        script.as_str(),
        "--timeout",
        "300ms",
        "--max-attempts",
        "2",
        "--concurrency",
        "2",
        "--backoff",
        "10ms",
        "--max-backoff",
        "50ms",
    ];
    let hang = Message::new("hang");
    let hang_id = hang.id().to_string();
    let mut batch = vec![hang];
    batch.extend((0..20).map(|i| Message::new(format!("ok-{i}"))));
    let sent = s.send(batch).await;

    s.drain(&args, Duration::from_secs(60)).await;
    let took = started.elapsed();

    // The hanging message, through the CLI as an operator would see it.
    let out = Command::new(ferry_bin())
        .env_remove("FERRY_BACKEND")
        .args(["--backend", &s.backend, "dlq", "list", "jobs", "--json"])
        .output()
        .expect("ferry dlq list");
    assert!(out.status.success(), "dlq list: {out:?}");
    let listed: serde_json::Value = serde_json::from_slice(&out.stdout).expect("dlq list JSON");
    let dead = listed["dead_letters"]
        .as_array()
        .expect("dead_letters array");
    assert_eq!(
        dead.len(),
        1,
        "only the hanging message is dead: {listed:#}"
    );
    assert_eq!(dead[0]["id"], hang_id.as_str());
    assert_eq!(dead[0]["reason"], "timeout");
    assert_eq!(dead[0]["attempts"], 2);
    let error = dead[0]["last_error"].as_str().unwrap_or_default();
    assert!(error.contains("timed out after 300ms"), "{error}");

    s.assert_drained().await;
    let events = s.events();
    let others: Vec<String> = sent.iter().filter(|id| **id != hang_id).cloned().collect();
    assert_one_effect_each(&events, &others);
    assert_eq!(
        effects_per_id(&events).get(&hang_id),
        None,
        "no effect for hang"
    );
    let verdict = s.verdict().await;
    verdict.assert_ok();

    // Others kept flowing while `hang` held a slot: effects landed between its two
    // attempts.
    let hang_attempts: Vec<usize> = events
        .iter()
        .enumerate()
        .filter(|(_, e)| matches!(e, Event::Delivered { id, .. } if *id == hang_id))
        .map(|(i, _)| i)
        .collect();
    assert_eq!(hang_attempts.len(), 2, "two attempts of hang");
    let between = events[hang_attempts[0]..hang_attempts[1]]
        .iter()
        .filter(|e| matches!(e, Event::Effect { .. }))
        .count();
    assert!(
        between >= 1,
        "other messages were processed while hang hung"
    );
    let log = std::fs::read_to_string(s.log()).unwrap_or_default();
    assert!(log.contains("timed out 2"), "{log}");
    eprintln!("timeout: {between} effects between the two hang attempts; took {took:?}");
}
