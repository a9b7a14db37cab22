//! `ferry dlq approve` / `list --approved` / `redrive` end to end, with real processes:
//! two `ferry dlq redrive --every 100ms` running at once over one data directory must
//! requeue each of 200 approved dead letters exactly once, and their printed ids,
//! joined like a ledger, must hold each id once.

use std::collections::BTreeMap;
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use ferry::{Driver, Message, QueueName, QueueOptions, ReceiveOptions, SettleAction, Settlement};
use serde_json::Value;

fn ferry(backend: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ferry"))
        .env_remove("FERRY_BACKEND")
        .args(["--backend", backend])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run ferry")
}

fn ok(backend: &str, args: &[&str]) -> String {
    let out = ferry(backend, args);
    assert!(
        out.status.success(),
        "ferry {args:?} failed with {}: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 stdout")
}

fn spawn_redrive(backend: &str) -> Child {
    Command::new(env!("CARGO_BIN_EXE_ferry"))
        .env_remove("FERRY_BACKEND")
        .args(["--backend", backend, "dlq", "redrive", "jobs"])
        .args(["--every", "100ms", "--max", "7", "--json"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn ferry dlq redrive")
}

/// `n` messages sent and dead-lettered (reason `rejected`) through the library.
async fn dead_letters(driver: &dyn Driver, q: &QueueName, n: usize) {
    let batch: Vec<Message> = (0..n)
        .map(|i| Message::new(format!("payload {i}")).with_id(format!("m{i:03}")))
        .collect();
    driver.send(q, batch).await.expect("send");
    let mut left = n;
    while left > 0 {
        let got = driver
            .receive(q, ReceiveOptions::max(left))
            .await
            .expect("receive");
        assert!(!got.is_empty(), "every message is received");
        left -= got.len();
        let settle = got
            .into_iter()
            .map(|g| Settlement {
                receipt: g.receipt,
                action: SettleAction::DeadLetter {
                    reason: "rejected".into(),
                    error: None,
                },
            })
            .collect();
        for r in driver.settle(settle).await.expect("settle") {
            r.expect("dead-lettered");
        }
    }
}

async fn counts(driver: &dyn Driver, q: &QueueName) -> (u64, u64) {
    let s = driver.stats(Some(q)).await.expect("stats");
    (s[0].ready, s[0].dead)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_redrive_processes_requeue_each_approved_dead_letter_once() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("data");
    let backend = format!("file:{}", data.display());
    let driver = ferry::connect(&backend).expect("connect");
    let q = QueueName::new("jobs").expect("name");
    driver
        .create_queue(&q, QueueOptions::default())
        .await
        .expect("create");
    dead_letters(&*driver, &q, 200).await;

    // Nothing is approved yet: a one-shot re-drive moves nothing.
    assert_eq!(ok(&backend, &["dlq", "redrive", "jobs"]), "");
    let listed = ok(&backend, &["dlq", "list", "jobs", "--approved", "--json"]);
    let listed: Value = serde_json::from_str(&listed).expect("JSON");
    assert_eq!(listed["dead_letters"].as_array().map(Vec::len), Some(0));

    let out = ferry(&backend, &["dlq", "approve", "jobs", "--all"]);
    assert!(out.status.success(), "{out:?}");
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(said.contains("approved 200 dead letters"), "{said}");
    let listed = ok(
        &backend,
        &[
            "dlq",
            "list",
            "jobs",
            "--approved",
            "--json",
            "--limit",
            "1000",
        ],
    );
    let listed: Value = serde_json::from_str(&listed).expect("JSON");
    assert_eq!(listed["dead_letters"].as_array().map(Vec::len), Some(200));

    let a = spawn_redrive(&backend);
    let b = spawn_redrive(&backend);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while counts(&*driver, &q).await != (200, 0) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "re-drive did not finish: {:?}",
            counts(&*driver, &q).await
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Let both run a few more rounds over an empty approved set, then stop them.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut outputs = Vec::new();
    for child in [a, b] {
        let status = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .expect("kill");
        assert!(status.success());
        let out = child.wait_with_output().expect("wait");
        assert!(
            out.status.success(),
            "redrive exits cleanly on SIGTERM: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(err.contains("stopped after"), "{err}");
        outputs.push(String::from_utf8(out.stdout).expect("utf-8"));
    }

    // The ledger: every printed id, by the process that moved it.
    let mut moved: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for (who, out) in outputs.iter().enumerate() {
        for line in out.lines() {
            let v: Value = serde_json::from_str(line).expect("one JSON object per line");
            assert_eq!(v["queue"], "jobs");
            let id = v["id"].as_str().expect("id").to_string();
            moved.entry(id).or_default().push(who);
        }
    }
    let twice: Vec<_> = moved.iter().filter(|(_, w)| w.len() > 1).collect();
    assert!(twice.is_empty(), "re-driven more than once: {twice:?}");
    assert_eq!(moved.len(), 200, "every approved dead letter reported once");
    for who in 0..2 {
        assert!(
            moved.values().any(|w| w == &[who]),
            "process {who} re-drove some too (they ran at the same time)"
        );
    }
    assert_eq!(counts(&*driver, &q).await, (200, 0));
    let attempts: Vec<u32> = driver
        .receive(&q, ReceiveOptions::max(200))
        .await
        .expect("receive")
        .iter()
        .map(|d| d.attempt)
        .collect();
    assert_eq!(attempts.len(), 200);
    assert!(attempts.iter().all(|&a| a == 1), "attempts reset");

    // Audited like the other dlq changes: one approve of 200, re-drives adding to 200.
    let audit = std::fs::read_to_string(data.join("audit.jsonl")).expect("audit log");
    let entries: Vec<Value> = audit
        .lines()
        .map(|l| serde_json::from_str(l).expect("audit JSON"))
        .collect();
    let count = |action: &str| -> u64 {
        entries
            .iter()
            .filter(|e| e["action"] == action)
            .map(|e| e["count"].as_u64().unwrap_or(0))
            .sum()
    };
    assert_eq!(count("dead_letters.approve"), 200);
    assert_eq!(count("dead_letters.redrive"), 200);
}

/// `approve` with an unknown id changes nothing; a plain (non-JSON) re-drive prints
/// `QUEUE ID` per message; a message that dies again is not re-driven again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approve_is_checked_and_approval_ends_with_the_death() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let backend = format!("file:{}", tmp.path().join("data").display());
    let driver = ferry::connect(&backend).expect("connect");
    let q = QueueName::new("jobs").expect("name");
    driver
        .create_queue(&q, QueueOptions::default())
        .await
        .expect("create");
    dead_letters(&*driver, &q, 2).await;

    let out = ferry(&backend, &["dlq", "approve", "jobs", "m000", "nope"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("'nope'"));
    assert_eq!(
        ok(&backend, &["dlq", "redrive", "jobs"]),
        "",
        "nothing approved"
    );

    ok(&backend, &["dlq", "approve", "jobs", "m000"]);
    assert_eq!(ok(&backend, &["dlq", "redrive", "jobs"]), "jobs m000\n");
    assert_eq!(counts(&*driver, &q).await, (1, 1));

    // It dies again: the old approval does not carry over.
    let got = driver
        .receive(&q, ReceiveOptions::max(1))
        .await
        .expect("receive");
    driver
        .dead_letter(&got[0].receipt, "rejected", None)
        .await
        .expect("dead_letter");
    assert_eq!(ok(&backend, &["dlq", "redrive", "jobs"]), "");
    assert_eq!(counts(&*driver, &q).await, (0, 2));
}
