//! Conformance for what an operator's dashboard leans on: pausing a queue's deliveries
//! (`Topology::set_paused`) and the age of its backlog (`QueueStats::oldest_ready_at`).
//!
//! Kept apart from the delivery guarantees because a backend may be unable to tell the
//! backlog's age cheaply (RabbitMQ) and then excludes `stats_report_oldest_ready_at` by
//! name, while pausing is part of every backend's contract.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use ferry_core::{Driver, ErrorKind, Message, QueueName, QueueOptions, QueueStats, ReceiveOptions};

use super::{LONG_LEASE, ack, expect_kind, ids, new_queue, recv, send, stats};
use crate::util::unique_queue;

/// How far a backend's clock (Redis stamps with the server's) may be from ours.
const CLOCK_SLACK: Duration = Duration::from_secs(1);

async fn paused(d: &dyn Driver, q: &QueueName) -> (bool, bool) {
    let one = d
        .get_queue(q)
        .await
        .unwrap_or_else(|e| panic!("get_queue failed: {e}"))
        .paused;
    let listed = d
        .list_queues()
        .await
        .unwrap_or_else(|e| panic!("list_queues failed: {e}"))
        .into_iter()
        .find(|i| i.name == *q)
        .unwrap_or_else(|| panic!("list_queues lists {q}"))
        .paused;
    (one, listed)
}

async fn set_paused(d: &dyn Driver, q: &QueueName, on: bool) {
    d.set_paused(q, on)
        .await
        .unwrap_or_else(|e| panic!("set_paused({on}) failed: {e}"));
}

/// Pausing stops deliveries (a receive waits out its wait and returns none) but not
/// sends, settlements of earlier leases, extends or stats; get_queue and list_queues
/// show it; create_queue on the paused queue keeps it paused; resuming, even during a
/// long poll, delivers everything in order.
pub async fn pause_stops_deliveries_and_resume_restores(d: Arc<dyn Driver>) {
    let q = new_queue(&*d, QueueOptions::default()).await;
    assert_eq!(paused(&*d, &q).await, (false, false), "a new queue runs");
    send(&*d, &q, vec![Message::new("early").with_id("early")]).await;
    let early = recv(&*d, &q, 1, LONG_LEASE).await;
    assert_eq!(ids(&early), ["early"]);
    send(
        &*d,
        &q,
        vec![
            Message::new("a").with_id("a"),
            Message::new("b").with_id("b"),
        ],
    )
    .await;

    set_paused(&*d, &q, true).await;
    set_paused(&*d, &q, true).await; // already paused: a no-op
    assert_eq!(
        paused(&*d, &q).await,
        (true, true),
        "get_queue and list_queues report the pause"
    );
    let wait = Duration::from_millis(300);
    let started = tokio::time::Instant::now();
    let got = d
        .receive(&q, ReceiveOptions::max(10).with_wait(wait))
        .await
        .expect("receive while paused");
    assert!(
        got.is_empty(),
        "a paused queue delivers nothing: {:?}",
        ids(&got)
    );
    assert!(
        started.elapsed() >= wait - Duration::from_millis(50),
        "a receive on a paused queue waits out its wait (returned after {:?}), so long polls do not spin",
        started.elapsed()
    );

    // Everything but delivery goes on.
    let report = d
        .send(&q, vec![Message::new("c").with_id("c")])
        .await
        .expect("send while paused");
    assert_eq!(report.enqueued, 1);
    assert_eq!(stats(&*d, &q).await, (3, 0, 1, 0), "stats while paused");
    d.extend(&early[0].receipt, LONG_LEASE)
        .await
        .expect("extend a lease taken before the pause");
    ack(&*d, &early[0].receipt).await;
    assert_eq!(stats(&*d, &q).await, (3, 0, 0, 0));

    let changed = QueueOptions::default().with_max_attempts(7);
    d.create_queue(&q, changed)
        .await
        .expect("create_queue on a paused queue");
    let info = d.get_queue(&q).await.expect("get_queue");
    assert!(
        info.paused,
        "create_queue on an existing queue keeps its pause"
    );
    assert_eq!(info.options.max_attempts, 7, "and updates its options");
    assert!(
        recv(&*d, &q, 10, LONG_LEASE).await.is_empty(),
        "still paused after create_queue"
    );

    // A resume during a long poll lets that poll deliver.
    let (d2, q2) = (d.clone(), q.clone());
    let started = tokio::time::Instant::now();
    let waiter = tokio::spawn(async move {
        d2.receive(
            &q2,
            ReceiveOptions::max(10)
                .with_lease(LONG_LEASE)
                .with_wait(Duration::from_secs(20)),
        )
        .await
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    set_paused(&*d, &q, false).await;
    set_paused(&*d, &q, false).await; // already running: a no-op
    let mut got = waiter.await.expect("join").expect("receive after resume");
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "the long poll delivered after the resume, not at the end of its 20 s wait"
    );
    assert_eq!(paused(&*d, &q).await, (false, false), "resumed");
    while got.len() < 3 {
        let more = d
            .receive(
                &q,
                ReceiveOptions::max(10)
                    .with_lease(LONG_LEASE)
                    .with_wait(Duration::from_secs(10)),
            )
            .await
            .expect("receive after resume");
        assert!(!more.is_empty(), "all of a, b, c come after the resume");
        got.extend(more);
    }
    assert_eq!(ids(&got), ["a", "b", "c"], "in order, nothing lost");
    for g in &got {
        ack(&*d, &g.receipt).await;
    }
    assert_eq!(stats(&*d, &q).await, (0, 0, 0, 0));
}

/// Pausing or resuming a queue that does not exist (or no longer does) is
/// `QueueNotFound`; a queue deleted while paused comes back running when recreated.
pub async fn pause_missing_queue_is_not_found(d: Arc<dyn Driver>) {
    let missing = unique_queue("conf-missing");
    for on in [true, false] {
        expect_kind(
            d.set_paused(&missing, on).await,
            ErrorKind::QueueNotFound,
            "set_paused on a missing queue",
        );
    }
    expect_kind(
        d.get_queue(&missing).await,
        ErrorKind::QueueNotFound,
        "set_paused does not create the queue",
    );
    let q = new_queue(&*d, QueueOptions::default()).await;
    set_paused(&*d, &q, true).await;
    d.delete_queue(&q).await.expect("delete");
    expect_kind(
        d.set_paused(&q, false).await,
        ErrorKind::QueueNotFound,
        "set_paused on a deleted queue",
    );
    d.create_queue(&q, QueueOptions::default())
        .await
        .expect("recreate");
    assert_eq!(
        paused(&*d, &q).await,
        (false, false),
        "a recreated queue starts running (deleting a queue removes its pause)"
    );
    send(&*d, &q, vec![Message::new("x")]).await;
    let got = recv(&*d, &q, 1, LONG_LEASE).await;
    assert_eq!(got.len(), 1, "and delivers");
    ack(&*d, &got[0].receipt).await;
}

async fn stats_of(d: &dyn Driver, q: &QueueName) -> QueueStats {
    let mut s = d
        .stats(Some(q))
        .await
        .unwrap_or_else(|e| panic!("stats failed: {e}"));
    assert_eq!(s.len(), 1, "stats(Some(q)) returns one entry");
    s.remove(0)
}

fn assert_between(t: SystemTime, lo: SystemTime, hi: SystemTime, what: &str) {
    assert!(
        t + CLOCK_SLACK >= lo && t <= hi + CLOCK_SLACK,
        "{what}: {t:?} is not within [{lo:?}, {hi:?}] (±{CLOCK_SLACK:?})"
    );
}

/// `oldest_ready_at` is when the oldest ready message became ready: None for an empty
/// queue, a queue of delayed messages only, or one whose messages are all in flight;
/// the send time of the oldest ready one; the end of the delay for a message that fell
/// due.
pub async fn stats_report_oldest_ready_at(d: Arc<dyn Driver>) {
    let q = new_queue(&*d, QueueOptions::default()).await;
    assert_eq!(stats_of(&*d, &q).await.oldest_ready_at, None, "empty queue");
    send(
        &*d,
        &q,
        vec![Message::new("later").with_delay(Duration::from_secs(600))],
    )
    .await;
    let s = stats_of(&*d, &q).await;
    assert_eq!((s.ready, s.delayed), (0, 1));
    assert_eq!(s.oldest_ready_at, None, "a delayed message is not ready");

    let before = SystemTime::now();
    send(&*d, &q, vec![Message::new("first").with_id("first")]).await;
    let after = SystemTime::now();
    let s = stats_of(&*d, &q).await;
    assert_eq!(s.ready, 1);
    let first_at = s
        .oldest_ready_at
        .unwrap_or_else(|| panic!("a ready message gives oldest_ready_at: {s:?}"));
    assert_between(first_at, before, after, "oldest_ready_at of a fresh send");
    let all = d.stats(None).await.expect("stats(None)");
    let listed = all
        .iter()
        .find(|s| s.name == q.as_str())
        .unwrap_or_else(|| panic!("stats(None) lists {q}"));
    assert_eq!(
        listed.oldest_ready_at,
        Some(first_at),
        "stats(None) reports it too"
    );

    tokio::time::sleep(Duration::from_millis(100)).await;
    send(&*d, &q, vec![Message::new("second").with_id("second")]).await;
    assert_eq!(
        stats_of(&*d, &q).await.oldest_ready_at,
        Some(first_at),
        "the oldest ready message decides, not the newest"
    );
    let got = recv(&*d, &q, 1, LONG_LEASE).await;
    assert_eq!(ids(&got), ["first"]);
    let second_at = stats_of(&*d, &q)
        .await
        .oldest_ready_at
        .unwrap_or_else(|| panic!("second is still ready"));
    assert!(
        second_at > first_at,
        "with first in flight, second is the oldest ready: {second_at:?} vs {first_at:?}"
    );
    let got2 = recv(&*d, &q, 1, LONG_LEASE).await;
    assert_eq!(ids(&got2), ["second"]);
    let s = stats_of(&*d, &q).await;
    assert_eq!((s.ready, s.delayed, s.in_flight), (0, 1, 2));
    assert_eq!(s.oldest_ready_at, None, "in-flight messages are not ready");
    ack(&*d, &got[0].receipt).await;
    ack(&*d, &got2[0].receipt).await;

    // A delayed message that fell due became ready at the end of its delay, not when
    // it was sent.
    let q = new_queue(&*d, QueueOptions::default()).await;
    let delay = Duration::from_millis(2500);
    let before = SystemTime::now();
    send(&*d, &q, vec![Message::new("due").with_delay(delay)]).await;
    let after = SystemTime::now();
    let at = crate::util::eventually(
        Duration::from_secs(20),
        "the delayed message falls due",
        || {
            let d = d.clone();
            let q = q.clone();
            async move {
                let s = stats_of(&*d, &q).await;
                (s.ready == 1).then_some(s.oldest_ready_at)
            }
        },
    )
    .await
    .unwrap_or_else(|| panic!("a message that fell due gives oldest_ready_at"));
    assert_between(
        at,
        before + delay,
        after + delay,
        "oldest_ready_at of a due message",
    );
}
