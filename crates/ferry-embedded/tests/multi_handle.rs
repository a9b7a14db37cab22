//! Two independent handles on one data directory behave like two processes: each sees
//! the other's writes, a long poll in one wakes on a send from the other, and leases
//! are exclusive across them. (Real separate processes are exercised by the CLI's
//! crash test.)

use std::collections::HashSet;
use std::time::Duration;

use ferry_core::{Driver, Message, QueueOptions, ReceiveOptions, Settlement, Topology};
use ferry_embedded::{EmbeddedDriver, EmbeddedOptions};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_handles_share_one_directory() {
    let dir = tempfile::tempdir().expect("tempdir");
    let a = EmbeddedDriver::open(dir.path()).expect("open a");
    let b = EmbeddedDriver::open_with(dir.path(), EmbeddedOptions::default()).expect("open b");
    let q = ferry_testkit::unique_queue("multi");
    a.create_queue(&q, QueueOptions::default())
        .await
        .expect("create");
    assert!(b.get_queue(&q).await.is_ok(), "b sees a's queue");

    let (b2, q2) = (b.clone(), q.clone());
    let waiter = tokio::spawn(async move {
        b2.receive(
            &q2,
            ReceiveOptions::max(1).with_wait(Duration::from_secs(20)),
        )
        .await
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let started = tokio::time::Instant::now();
    a.send(&q, vec![Message::new("hello")]).await.expect("send");
    let got = waiter.await.expect("join").expect("receive");
    assert_eq!(got.len(), 1, "b's long poll saw a's send");
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "woken by the other handle's commit"
    );
    a.ack(&got[0].receipt).await.expect("a acks b's delivery");

    let batch: Vec<Message> = (0..300).map(|i| Message::new(format!("m{i}"))).collect();
    a.send(&q, batch).await.expect("send");
    let mut tasks = Vec::new();
    for d in [a.clone(), b.clone(), a.clone(), b.clone()] {
        let q = q.clone();
        tasks.push(tokio::spawn(async move {
            let mut ids = Vec::new();
            loop {
                let got = d
                    .receive(&q, ReceiveOptions::max(10))
                    .await
                    .expect("receive");
                if got.is_empty() {
                    return ids;
                }
                let acks = got
                    .iter()
                    .map(|g| Settlement::ack(g.receipt.clone()))
                    .collect();
                assert!(
                    d.settle(acks)
                        .await
                        .expect("settle")
                        .iter()
                        .all(Result::is_ok)
                );
                ids.extend(got.into_iter().map(|g| g.id));
            }
        }));
    }
    let mut seen = HashSet::new();
    for t in tasks {
        for id in t.await.expect("join") {
            assert!(seen.insert(id.clone()), "{id} delivered to two handles");
        }
    }
    assert_eq!(seen.len(), 300);
}

/// An idle long poll watches for changes without hammering the writer: without this,
/// a waiting receive that wakes on its own commit spins through thousands of empty
/// transactions a second.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_long_poll_does_not_spin() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = EmbeddedDriver::open(dir.path()).expect("open");
    let q = ferry_testkit::unique_queue("idle");
    d.create_queue(&q, QueueOptions::default())
        .await
        .expect("create");
    let before = d.commit_stats();
    let got = d
        .receive(
            &q,
            ReceiveOptions::max(1).with_wait(Duration::from_millis(1500)),
        )
        .await
        .expect("receive");
    assert!(got.is_empty());
    let after = d.commit_stats();
    let ops = after.operations - before.operations;
    assert!(
        ops <= 5,
        "an idle 1.5 s long poll ran {ops} write operations"
    );
}

/// A pause made through one handle holds for the other (it is in the file, not in the
/// process): the other's receives hand out nothing, its idle long poll does not spin
/// on the paused queue's ready messages, and a resume wakes its long poll.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_is_seen_by_the_other_handle() {
    let dir = tempfile::tempdir().expect("tempdir");
    let a = EmbeddedDriver::open(dir.path()).expect("open a");
    let b = EmbeddedDriver::open(dir.path()).expect("open b");
    let q = ferry_testkit::unique_queue("pause");
    a.create_queue(&q, QueueOptions::default())
        .await
        .expect("create");
    a.send(&q, vec![Message::new("x")]).await.expect("send");
    a.set_paused(&q, true).await.expect("pause");
    assert!(
        b.get_queue(&q).await.expect("get").paused,
        "b sees a's pause"
    );

    let before = b.commit_stats();
    let got = b
        .receive(
            &q,
            ReceiveOptions::max(1).with_wait(Duration::from_millis(1500)),
        )
        .await
        .expect("receive");
    assert!(got.is_empty(), "b gets nothing from the paused queue");
    let ops = b.commit_stats().operations - before.operations;
    assert!(
        ops <= 5,
        "a 1.5 s long poll on a paused queue ran {ops} write operations"
    );

    let (b2, q2) = (b.clone(), q.clone());
    let waiter = tokio::spawn(async move {
        b2.receive(
            &q2,
            ReceiveOptions::max(1).with_wait(Duration::from_secs(20)),
        )
        .await
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let started = tokio::time::Instant::now();
    a.set_paused(&q, false).await.expect("resume");
    let got = waiter.await.expect("join").expect("receive");
    assert_eq!(got.len(), 1, "b's long poll delivers after a's resume");
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "woken by the other handle's resume"
    );
    b.ack(&got[0].receipt).await.expect("ack");
}

/// Concurrent sends share commits (group commit), and every one is still durable on return.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_sends_share_commits() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = EmbeddedDriver::open(dir.path()).expect("open");
    let q = ferry_testkit::unique_queue("group");
    d.create_queue(&q, QueueOptions::default())
        .await
        .expect("create");
    let before = d.commit_stats();
    let mut tasks = Vec::new();
    for _ in 0..32 {
        let (d, q) = (d.clone(), q.clone());
        tasks.push(tokio::spawn(async move {
            for _ in 0..20 {
                d.send(&q, vec![Message::new("x")]).await.expect("send");
            }
        }));
    }
    for t in tasks {
        t.await.expect("join");
    }
    let after = d.commit_stats();
    let (ops, commits) = (
        after.operations - before.operations,
        after.commits - before.commits,
    );
    assert_eq!(ops, 640);
    assert!(
        commits < ops,
        "{commits} commits for {ops} sends: no grouping happened"
    );
    drop(d);
    let reopened = EmbeddedDriver::open(dir.path()).expect("reopen");
    assert_eq!(reopened.stats(Some(&q)).await.expect("stats")[0].ready, 640);
}

/// Re-drives from two handles (two writer threads, as two processes would have) over
/// one directory claim disjoint dead letters: each approved one is moved exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redrives_from_two_handles_never_move_one_dead_letter_twice() {
    use ferry_core::{DeadLetters, Selection};
    let dir = tempfile::tempdir().expect("tempdir");
    let a = EmbeddedDriver::open(dir.path()).expect("open a");
    let b = EmbeddedDriver::open(dir.path()).expect("open b");
    let q = ferry_testkit::unique_queue("redrive");
    a.create_queue(&q, QueueOptions::default())
        .await
        .expect("create");
    let batch: Vec<Message> = (0..300).map(|i| Message::new(format!("m{i}"))).collect();
    a.send(&q, batch).await.expect("send");
    let got = a
        .receive(&q, ReceiveOptions::max(300))
        .await
        .expect("receive");
    for g in &got {
        a.dead_letter(&g.receipt, "rejected", None)
            .await
            .expect("dead_letter");
    }
    assert_eq!(
        b.approve_dead_letters(&q, Selection::All)
            .await
            .expect("approve"),
        300
    );
    let mut tasks = Vec::new();
    for d in [a.clone(), b.clone(), a.clone(), b.clone()] {
        let q = q.clone();
        tasks.push(tokio::spawn(async move {
            let mut ids = Vec::new();
            loop {
                let moved = d.redrive_approved(&q, 7).await.expect("redrive");
                if moved.is_empty() {
                    return ids;
                }
                ids.extend(moved);
            }
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.expect("join"));
    }
    let unique: HashSet<&String> = all.iter().collect();
    assert_eq!(all.len(), 300, "every approved one moved");
    assert_eq!(unique.len(), 300, "none moved twice");
    let s = a.stats(Some(&q)).await.expect("stats");
    assert_eq!((s[0].ready, s[0].dead), (300, 0));
}
