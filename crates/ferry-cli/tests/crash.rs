//! Crash test: `ferry consume` workers are SIGKILLed at random points (mid-handler,
//! mid-ack, mid-receive) over many cycles on one data directory while this process
//! keeps sending into the same directory. The ledger must show nothing lost, no
//! phantom, and every duplicate explained by a kill.
//!
//! The handler is a shell snippet that appends `delivered` and `effect` lines to the
//! ledger, so the worker is the real binary doing real fsyncs. Each worker runs in its
//! own process group and the whole group is killed at once, so no orphaned handler can
//! write an effect after the kill is recorded.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use ferry::{DeadLetterQuery, Message, QueueName, QueueOptions, Selection};
use ferry_testkit::ledger::{Event, FinalState, Ledger, check};

const CYCLES: usize = 24;
const PER_CYCLE: usize = 20;

fn ferry_bin() -> &'static str {
    env!("CARGO_BIN_EXE_ferry")
}

fn handler_script(ledger: &Path) -> String {
    let l = ledger.display();
    format!(
        r#"p=$(cat); printf '{{"ev":"delivered","id":"%s","attempt":%s}}\n' "$FERRY_MESSAGE_ID" "$FERRY_ATTEMPT" >> '{l}'; case "$p" in poison*) echo "cannot handle $p" >&2; exit 7;; slow*) sleep 0.2;; esac; printf '{{"ev":"effect","id":"%s"}}\n' "$FERRY_MESSAGE_ID" >> '{l}'"#
    )
}

fn consume_cmd(backend: &str, script: &str, extra: &[&str]) -> Command {
    let mut cmd = Command::new(ferry_bin());
    cmd.args(["--backend", backend, "consume", "jobs", "--exec", script])
        .args([
            "--concurrency",
            "4",
            "--lease",
            "1s",
            "--backoff",
            "10ms",
            "--max-backoff",
            "50ms",
        ])
        .args(["--max-attempts", "3"])
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    cmd
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_workers_lose_nothing() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("data");
    let backend = format!("file:{}", data.display());
    let ledger = Ledger::new(tmp.path().join("ledger.jsonl"));
    let script = handler_script(ledger.path());
    let driver = ferry::connect(&backend).expect("connect");
    let q = QueueName::new("jobs").expect("name");
    driver
        .create_queue(
            &q,
            QueueOptions::default()
                .with_max_attempts(1000)
                .with_lease(Duration::from_secs(1)),
        )
        .await
        .expect("create queue");

    let seed = fastrand::u64(..);
    eprintln!("crash test seed {seed}");
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut poison = BTreeSet::new();
    for cycle in 0..CYCLES {
        let mut worker = consume_cmd(&backend, &script, &[]);
        std::os::unix::process::CommandExt::process_group(&mut worker, 0);
        let mut child = worker.spawn().expect("spawn worker");

        // Send while the worker runs: two processes writing one directory.
        let batch: Vec<Message> = (0..PER_CYCLE)
            .map(|i| {
                let kind = match rng.u8(..100) {
                    0..=2 => "poison",
                    3..=12 => "slow",
                    _ => "ok",
                };
                Message::new(format!("{kind}-{cycle}-{i}"))
            })
            .collect();
        for m in &batch {
            if m.payload().starts_with(b"poison") {
                poison.insert(m.id().to_string());
            }
        }
        let ids: Vec<Event> = batch
            .iter()
            .map(|m| Event::Sent {
                id: m.id().to_string(),
            })
            .collect();
        driver.send(&q, batch).await.expect("send");
        ledger.append_all(&ids).expect("ledger");

        tokio::time::sleep(Duration::from_millis(rng.u64(50..500))).await;
        let pgid = child.id();
        let killed = Command::new("kill")
            .args(["-KILL", "--", &format!("-{pgid}")])
            .status()
            .expect("kill");
        assert!(killed.success(), "kill the worker's process group");
        let status = child.wait().expect("wait");
        assert!(!status.success(), "worker was killed, not finished");
        ledger
            .append(&Event::Fault {
                kind: format!("SIGKILL worker group {pgid} in cycle {cycle}"),
            })
            .expect("ledger");
    }

    // Heal: one worker drains everything (expired leases come back after 1 s).
    let mut drain = consume_cmd(&backend, &script, &["--until-empty"]);
    let mut child = drain.spawn().expect("spawn drain worker");
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    let status = loop {
        if let Some(s) = child.try_wait().expect("try_wait") {
            break s;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("drain worker did not finish within 120 s");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(status.success(), "drain worker exited with {status}");

    let stats = driver.stats(Some(&q)).await.expect("stats");
    assert!(stats[0].is_drained(), "queue drained: {stats:?}");
    let dead: BTreeSet<String> = driver
        .list_dead_letters(&q, DeadLetterQuery::page(0, 100_000))
        .await
        .expect("dead letters")
        .into_iter()
        .map(|d| d.id)
        .collect();
    let (events, torn) = ledger.read().expect("read ledger");
    let verdict = check(
        &events,
        &FinalState {
            queued: BTreeSet::new(),
            dead: dead.clone(),
        },
    );
    eprintln!("seed {seed}: {verdict:?}, torn ledger lines {torn}");
    verdict.assert_ok();
    assert_eq!(verdict.sent, CYCLES * PER_CYCLE);
    assert_eq!(verdict.faults, CYCLES);
    assert_eq!(
        dead, poison,
        "exactly the poison messages are dead-lettered"
    );
    for d in driver
        .list_dead_letters(&q, DeadLetterQuery::page(0, 100_000))
        .await
        .expect("dead letters")
    {
        assert_eq!(d.reason, "max_attempts");
        assert!(
            d.last_error
                .as_deref()
                .is_some_and(|e| e.contains("exit status 7")),
            "{d:?}"
        );
    }
    let purged = driver
        .delete_dead_letters(&q, Selection::All)
        .await
        .expect("purge");
    assert_eq!(purged as usize, poison.len());
}
