//! The BRPOP loss window, on the machine's Redis through the real binary: a
//! `ferry consume --exec` worker is SIGKILLed (its whole process group) right after it
//! received a message, while the handler is still running. A list-based queue that pops
//! the message on receive would have lost it; here the message stays leased and, once
//! the lease expires, another worker gets it (attempt 2) and acks it.
//!
//! The CLI has no key-prefix flag, so the test uses a queue name unique to the run under
//! the default prefix, and deletes the queue at the end. The handler appends ledger lines
//! (`ferry_testkit::ledger`); on its first attempt it touches a marker file and sleeps, and
//! the test kills the worker as soon as the marker exists.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ferry::{Message, QueueName, QueueOptions};
use ferry_testkit::ledger::{Event, FinalState, Ledger, check};

fn ferry_bin() -> &'static str {
    env!("CARGO_BIN_EXE_ferry")
}

fn redis_url() -> String {
    std::env::var("FERRY_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_string())
}

/// Records `delivered`; on the first delivery of the run touches the marker and sleeps
/// (the kill lands here); otherwise records the effect.
fn handler_script(ledger: &Path, marker: &Path) -> String {
    r#"cat > /dev/null; printf '{"ev":"delivered","id":"%s","attempt":%s}\n' "$FERRY_MESSAGE_ID" "$FERRY_ATTEMPT" >> 'LEDGER'; if [ ! -e 'MARKER' ]; then touch 'MARKER'; exec sleep 60; fi; printf '{"ev":"effect","id":"%s"}\n' "$FERRY_MESSAGE_ID" >> 'LEDGER'"#
        .replace("LEDGER", &ledger.display().to_string())
        .replace("MARKER", &marker.display().to_string())
}

fn consume(queue: &QueueName, script: &str, extra: &[&str]) -> Command {
    let mut cmd = Command::new(ferry_bin());
    cmd.args(["--backend", &redis_url(), "consume", queue.as_str()])
        .args(["--exec", script, "--concurrency", "1", "--lease", "2s"])
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
    cmd
}

/// Kills a worker's process group on drop, so a failing test leaves no worker behind.
struct Worker(Child);

impl Worker {
    fn kill_group(&mut self) {
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.0.id())])
            .status();
        let _ = self.0.wait();
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        if matches!(self.0.try_wait(), Ok(None)) {
            self.kill_group();
        }
    }
}

async fn wait_for_file(path: &Path, limit: Duration) {
    ferry_testkit::eventually(limit, "the handler started (marker file)", || async {
        path.exists().then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_redis_worker_loses_nothing() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let ledger = Ledger::new(tmp.path().join("ledger.jsonl"));
    let marker = tmp.path().join("started");
    let script = handler_script(ledger.path(), &marker);
    let driver = ferry::connect_async(&redis_url())
        .await
        .expect("connect to redis");
    let q = ferry_testkit::unique_queue("cli-redis-crash");
    driver
        .create_queue(&q, QueueOptions::default().with_max_attempts(5))
        .await
        .expect("create queue");
    let batch: Vec<Message> = (0..3).map(|i| Message::new(format!("job-{i}"))).collect();
    let sent: Vec<Event> = batch
        .iter()
        .map(|m| Event::Sent {
            id: m.id().to_string(),
        })
        .collect();
    driver.send(&q, batch).await.expect("send");
    ledger.append_all(&sent).expect("ledger");

    // Worker 1 receives the first message and is killed inside its handler.
    let mut worker = Worker(consume(&q, &script, &[]).spawn().expect("spawn worker"));
    wait_for_file(&marker, Duration::from_secs(30)).await;
    worker.kill_group();
    ledger
        .append(&Event::Fault {
            kind: format!("SIGKILL worker group {} mid-handler", worker.0.id()),
        })
        .expect("ledger");
    let stats = driver.stats(Some(&q)).await.expect("stats");
    assert_eq!(
        (stats[0].in_flight, stats[0].ready),
        (1, 2),
        "the killed worker's message is still there, leased: {stats:?}"
    );

    // Worker 2 drains the queue, the killed worker's message once its lease expires.
    let mut drain = Worker(
        consume(&q, &script, &["--until-empty"])
            .spawn()
            .expect("spawn drain worker"),
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(s) = drain.0.try_wait().expect("try_wait") {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "drain worker did not finish in 30 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let mut stderr = String::new();
    if let Some(mut e) = drain.0.stderr.take() {
        let _ = std::io::Read::read_to_string(&mut e, &mut stderr);
    }
    assert!(
        status.success(),
        "drain worker exited with {status}: {stderr}"
    );

    let stats = driver.stats(Some(&q)).await.expect("stats");
    assert!(stats[0].is_drained(), "{stats:?}");
    assert_eq!(stats[0].dead, 0, "{stats:?}");
    let (events, _) = ledger.read().expect("read ledger");
    // The message the killed worker held: the one delivery before the fault line.
    let killed: Vec<&String> = events
        .iter()
        .take_while(|e| !matches!(e, Event::Fault { .. }))
        .filter_map(|e| match e {
            Event::Delivered { id, .. } => Some(id),
            _ => None,
        })
        .collect();
    assert_eq!(killed.len(), 1, "one delivery before the kill: {events:?}");
    let killed = killed[0].clone();
    let verdict = check(&events, &FinalState::default());
    verdict.assert_ok();
    assert_eq!((verdict.sent, verdict.processed), (3, 3), "{verdict:?}");
    let attempts: BTreeSet<u32> = events
        .iter()
        .filter_map(|e| match e {
            Event::Delivered { id, attempt } if *id == killed => Some(*attempt),
            _ => None,
        })
        .collect();
    assert_eq!(
        attempts,
        BTreeSet::from([1, 2]),
        "the killed delivery counted as attempt 1, the redelivery is attempt 2"
    );
    driver.delete_queue(&q).await.expect("delete queue");
}
