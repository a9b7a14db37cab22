//! The conformance suite: what every driver must do, as plain async functions.
//!
//! Each function takes a driver, creates its own uniquely named queues and topics (so
//! functions can run in parallel against one backend) and panics with a message naming
//! the broken guarantee. A backend runs the whole suite with
//! [`conformance_suite!`](crate::conformance_suite):
//!
//! ```ignore
//! ferry_testkit::conformance_suite!(async { std::sync::Arc::new(MyDriver::connect().await) });
//! ```
//!
//! Timing: leases and delays here are a few hundred milliseconds of real time, because
//! backends keep time on their own clocks (SQLite rows, Redis scripts). Waits poll with
//! a generous limit; nothing asserts that something was *fast*, only that it happened
//! and in the right order.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use ferry_core::{
    DeadLetterQuery, Delivery, Driver, ErrorKind, Message, QueueName, QueueOptions, Receipt,
    ReceiveOptions, Selection, SettleAction, Settlement, route_matches,
};

use crate::util::{eventually, unique_queue, unique_topic};

mod pause;
pub use pause::{
    pause_missing_queue_is_not_found, pause_stops_deliveries_and_resume_restores,
    stats_report_oldest_ready_at,
};
mod redrive;
pub use redrive::{
    approve_counts_and_filters, insert_dead_letters_round_trip,
    redrive_concurrent_claims_are_disjoint, redrive_leaves_live_ids_approved,
    redrive_moves_only_approved,
};

/// The names of every conformance function, for [`conformance_suite!`](crate::conformance_suite).
pub const ALL: &[&str] = &[
    "send_receive_ack",
    "fifo_within_priority",
    "priority_order",
    "lease_expiry_redelivers",
    "extend_keeps_lease",
    "stale_receipt_rejected",
    "release_does_not_count_an_attempt",
    "retry_at",
    "delays_do_not_block",
    "queue_default_delay",
    "dead_letter_and_requeue",
    "dead_letter_paging_and_purge",
    "lease_expiry_on_last_attempt_dead_letters",
    "topic_fanout_and_patterns",
    "route_matching_agrees_with_reference",
    "batch_all_or_nothing",
    "duplicate_id_is_noop_while_queued",
    "invalid_input",
    "long_poll_wakes_on_send",
    "stats_by_state",
    "delete_queue_removes_everything",
    "concurrent_receivers_never_share",
    "history_records_lifecycle",
    "pause_stops_deliveries_and_resume_restores",
    "pause_missing_queue_is_not_found",
    "stats_report_oldest_ready_at",
    "insert_dead_letters_round_trip",
    "approve_counts_and_filters",
    "redrive_moves_only_approved",
    "redrive_concurrent_claims_are_disjoint",
    "redrive_leaves_live_ids_approved",
];

const LONG_LEASE: Duration = Duration::from_secs(60);
const WAIT: Duration = Duration::from_secs(10);

async fn new_queue(d: &dyn Driver, options: QueueOptions) -> QueueName {
    let q = unique_queue("conf");
    d.create_queue(&q, options)
        .await
        .unwrap_or_else(|e| panic!("create_queue failed: {e}"));
    q
}

async fn recv(d: &dyn Driver, q: &QueueName, max: usize, lease: Duration) -> Vec<Delivery> {
    d.receive(q, ReceiveOptions::max(max).with_lease(lease))
        .await
        .unwrap_or_else(|e| panic!("receive failed: {e}"))
}

async fn recv_wait(d: &dyn Driver, q: &QueueName, lease: Duration) -> Vec<Delivery> {
    d.receive(q, ReceiveOptions::max(1).with_lease(lease).with_wait(WAIT))
        .await
        .unwrap_or_else(|e| panic!("receive failed: {e}"))
}

async fn ack(d: &dyn Driver, r: &Receipt) {
    d.ack(r)
        .await
        .unwrap_or_else(|e| panic!("ack of {} failed: {e}", r.message_id()));
}

async fn send(d: &dyn Driver, q: &QueueName, batch: Vec<Message>) {
    d.send(q, batch)
        .await
        .unwrap_or_else(|e| panic!("send failed: {e}"));
}

async fn stats(d: &dyn Driver, q: &QueueName) -> (u64, u64, u64, u64) {
    let s = d
        .stats(Some(q))
        .await
        .unwrap_or_else(|e| panic!("stats failed: {e}"));
    assert_eq!(s.len(), 1, "stats(Some(q)) returns one entry");
    assert_eq!(s[0].name, q.as_str());
    (s[0].ready, s[0].delayed, s[0].in_flight, s[0].dead)
}

fn ids(ds: &[Delivery]) -> Vec<String> {
    ds.iter().map(|d| d.id.clone()).collect()
}

fn expect_kind<T: std::fmt::Debug>(r: ferry_core::Result<T>, kind: ErrorKind, what: &str) {
    match r {
        Err(e) if e.kind() == kind => {
            assert!(!e.to_string().is_empty(), "{what}: error has a message");
        }
        other => panic!("{what}: expected an error of kind {kind}, got {other:?}"),
    }
}

/// Send a batch, receive it with payloads, headers and attempt 1, ack it; a second ack
/// of the same receipt fails and the queue is empty.
pub async fn send_receive_ack(d: Arc<dyn Driver>) {
    let q = new_queue(&*d, QueueOptions::default()).await;
    let batch: Vec<Message> = (0..3)
        .map(|i| Message::new(format!("payload-{i}")).with_header("n", i.to_string()))
        .collect();
    let sent: Vec<String> = batch.iter().map(|m| m.id().to_string()).collect();
    let report = d.send(&q, batch).await.expect("send");
    assert_eq!(report.enqueued, 3);
    assert!(report.duplicates.is_empty());
    assert_eq!(stats(&*d, &q).await, (3, 0, 0, 0));

    let got = recv(&*d, &q, 10, LONG_LEASE).await;
    assert_eq!(ids(&got), sent, "all three, in send order");
    for (i, g) in got.iter().enumerate() {
        assert_eq!(g.payload.as_ref(), format!("payload-{i}").as_bytes());
        assert_eq!(
            g.headers.get("n").map(String::as_str),
            Some(i.to_string().as_str())
        );
        assert_eq!(g.attempt, 1);
        assert_eq!(g.route_key, None);
        assert_eq!(g.queue, q);
        assert!(g.lease_until > SystemTime::now());
    }
    assert_eq!(stats(&*d, &q).await, (0, 0, 3, 0));
    assert!(
        recv(&*d, &q, 10, LONG_LEASE).await.is_empty(),
        "leased messages are not handed out twice"
    );
    for g in &got {
        ack(&*d, &g.receipt).await;
    }
    assert_eq!(stats(&*d, &q).await, (0, 0, 0, 0));
    expect_kind(
        d.ack(&got[0].receipt).await,
        ErrorKind::StaleReceipt,
        "second ack",
    );
}

/// Within one priority, messages are delivered in send order.
pub async fn fifo_within_priority(d: Arc<dyn Driver>) {
    let q = new_queue(&*d, QueueOptions::default()).await;
    let mut sent = Vec::new();
    let batch: Vec<Message> = (0..20).map(|i| Message::new(format!("b{i}"))).collect();
    sent.extend(batch.iter().map(|m| m.id().to_string()));
    send(&*d, &q, batch).await;
    for i in 0..20 {
        let m = Message::new(format!("s{i}"));
        sent.push(m.id().to_string());
        send(&*d, &q, vec![m]).await;
    }
    let mut got = Vec::new();
    for _ in 0..40 {
        let one = recv(&*d, &q, 1, LONG_LEASE).await;
        assert_eq!(one.len(), 1);
        got.push(one[0].id.clone());
        ack(&*d, &one[0].receipt).await;
    }
    assert_eq!(got, sent, "FIFO within one priority");
}

/// Higher priority first, FIFO within a priority.
pub async fn priority_order(d: Arc<dyn Driver>) {
    let q = new_queue(&*d, QueueOptions::default()).await;
    let batch = vec![
        Message::new("a").with_id("a").with_priority(0),
        Message::new("b").with_id("b").with_priority(5),
        Message::new("c").with_id("c").with_priority(0),
        Message::new("d").with_id("d").with_priority(9),
        Message::new("e").with_id("e").with_priority(5),
    ];
    send(&*d, &q, batch).await;
    let got = recv(&*d, &q, 10, LONG_LEASE).await;
    assert_eq!(ids(&got), ["d", "b", "e", "a", "c"]);
}

/// A lease that expires makes the message deliverable again with the next attempt
/// number, and the old receipt can no longer ack it.
pub async fn lease_expiry_redelivers(d: Arc<dyn Driver>) {
    let q = new_queue(&*d, QueueOptions::default()).await;
    send(&*d, &q, vec![Message::new("x")]).await;
    let first = recv(&*d, &q, 1, Duration::from_millis(300)).await;
    assert_eq!(first.len(), 1);
    let second = recv_wait(&*d, &q, LONG_LEASE).await;
    assert_eq!(second.len(), 1, "redelivered after lease expiry");
    assert_eq!(second[0].id, first[0].id);
    assert_eq!(
        second[0].attempt, 2,
        "an expired lease counts as an attempt"
    );
    assert_ne!(second[0].receipt, first[0].receipt);
    expect_kind(
        d.ack(&first[0].receipt).await,
        ErrorKind::StaleReceipt,
        "ack with the expired receipt",
    );
    ack(&*d, &second[0].receipt).await;
    assert_eq!(stats(&*d, &q).await, (0, 0, 0, 0));
}

/// Extending a lease keeps the message away from other receivers.
pub async fn extend_keeps_lease(d: Arc<dyn Driver>) {
    let q = new_queue(&*d, QueueOptions::default()).await;
    send(&*d, &q, vec![Message::new("x")]).await;
    let got = recv(&*d, &q, 1, Duration::from_millis(400)).await;
    assert_eq!(got.len(), 1);
    for _ in 0..5 {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let until = d
            .extend(&got[0].receipt, Duration::from_millis(400))
            .await
            .expect("extend");
        assert!(until > SystemTime::now());
        assert!(
            recv(&*d, &q, 1, LONG_LEASE).await.is_empty(),
            "extended lease holds"
        );
    }
    ack(&*d, &got[0].receipt).await;
}

/// Once a message was redelivered, every action with the old receipt is rejected and
/// changes nothing.
pub async fn stale_receipt_rejected(d: Arc<dyn Driver>) {
    let q = new_queue(&*d, QueueOptions::default()).await;
    send(&*d, &q, vec![Message::new("x")]).await;
    let old = recv(&*d, &q, 1, Duration::from_millis(200)).await;
    let new = recv_wait(&*d, &q, LONG_LEASE).await;
    assert_eq!(new.len(), 1);
    let r = &old[0].receipt;
    expect_kind(d.ack(r).await, ErrorKind::StaleReceipt, "stale ack");
    expect_kind(
        d.retry(r, SystemTime::now(), Some("late".into())).await,
        ErrorKind::StaleReceipt,
        "stale retry",
    );
    expect_kind(
        d.dead_letter(r, "rejected", None).await,
        ErrorKind::StaleReceipt,
        "stale dead-letter",
    );
    expect_kind(
        d.extend(r, Duration::from_secs(5)).await,
        ErrorKind::StaleReceipt,
        "stale extend",
    );
    assert_eq!(
        stats(&*d, &q).await,
        (0, 0, 1, 0),
        "still leased to the new holder"
    );
    // A batch settle fails only the stale entry.
    let results = d
        .settle(vec![
            Settlement::ack(r.clone()),
            Settlement::ack(new[0].receipt.clone()),
        ])
        .await
        .expect("settle");
    assert_eq!(results.len(), 2);
    assert!(matches!(&results[0], Err(e) if e.kind() == ErrorKind::StaleReceipt));
    assert!(results[1].is_ok());
    assert_eq!(stats(&*d, &q).await, (0, 0, 0, 0));
}

/// Releasing hands the message back at once without counting the attempt (graceful
/// shutdown), and a stale receipt cannot release.
pub async fn release_does_not_count_an_attempt(d: Arc<dyn Driver>) {
    let q = new_queue(&*d, QueueOptions::default().with_max_attempts(2)).await;
    send(&*d, &q, vec![Message::new("x").with_id("x")]).await;
    for _ in 0..5 {
        let got = recv(&*d, &q, 1, LONG_LEASE).await;
        assert_eq!(got.len(), 1, "released message is ready again at once");
        assert_eq!(got[0].attempt, 1, "a released delivery is not counted");
        d.release(&got[0].receipt).await.expect("release");
        assert_eq!(stats(&*d, &q).await, (1, 0, 0, 0));
        expect_kind(
            d.ack(&got[0].receipt).await,
            ErrorKind::StaleReceipt,
            "ack after release",
        );
    }
    let old = recv(&*d, &q, 1, Duration::from_millis(200)).await;
    let new = recv_wait(&*d, &q, LONG_LEASE).await;
    assert_eq!(new[0].attempt, 2);
    expect_kind(
        d.release(&old[0].receipt).await,
        ErrorKind::StaleReceipt,
        "stale release",
    );
    ack(&*d, &new[0].receipt).await;
}

/// `retry(not_before)` hides the message until then, records the error, and the next
/// delivery is the next attempt.
pub async fn retry_at(d: Arc<dyn Driver>) {
    let q = new_queue(&*d, QueueOptions::default()).await;
    send(&*d, &q, vec![Message::new("x")]).await;
    let got = recv(&*d, &q, 1, LONG_LEASE).await;
    let not_before = SystemTime::now() + Duration::from_millis(500);
    d.retry(&got[0].receipt, not_before, Some("boom".into()))
        .await
        .expect("retry");
    assert_eq!(stats(&*d, &q).await, (0, 1, 0, 0));
    assert!(
        recv(&*d, &q, 1, LONG_LEASE).await.is_empty(),
        "not before its time"
    );
    let again = recv_wait(&*d, &q, LONG_LEASE).await;
    assert_eq!(again.len(), 1);
    assert!(
        SystemTime::now() >= not_before,
        "delivered no earlier than not_before"
    );
    assert_eq!(again[0].attempt, 2);
    // The recorded error shows up when it is dead-lettered.
    d.dead_letter(&again[0].receipt, "rejected", None)
        .await
        .expect("dead_letter");
    let dl = d.get_dead_letter(&q, &got[0].id).await.expect("get");
    assert_eq!(dl.last_error.as_deref(), Some("boom"));
    assert!(dl.first_failed_at.is_some());
}

/// A long delay never holds back a short one or an undelayed one.
pub async fn delays_do_not_block(d: Arc<dyn Driver>) {
    let q = new_queue(&*d, QueueOptions::default()).await;
    let long = Message::new("long")
        .with_id("long")
        .with_delay(Duration::from_secs(1800));
    let short = Message::new("short")
        .with_id("short")
        .with_delay(Duration::from_millis(300));
    let now = Message::new("now").with_id("now");
    let past = Message::new("past")
        .with_id("past")
        .with_deliver_at(SystemTime::now() - Duration::from_secs(60));
    let sent_at = SystemTime::now();
    send(&*d, &q, vec![long, short, now, past]).await;
    let first = recv(&*d, &q, 10, LONG_LEASE).await;
    assert_eq!(ids(&first), ["now", "past"]);
    let second = recv_wait(&*d, &q, LONG_LEASE).await;
    assert_eq!(ids(&second), ["short"]);
    assert!(
        SystemTime::now() >= sent_at + Duration::from_millis(300),
        "short delay respected"
    );
    assert_eq!(
        stats(&*d, &q).await,
        (0, 1, 3, 0),
        "the long one is still delayed"
    );
}

/// A queue's default delay applies to messages sent without their own.
pub async fn queue_default_delay(d: Arc<dyn Driver>) {
    let q = new_queue(
        &*d,
        QueueOptions::default().with_default_delay(Duration::from_millis(400)),
    )
    .await;
    let info = d.get_queue(&q).await.expect("get_queue");
    assert_eq!(info.options.default_delay, Duration::from_millis(400));
    send(
        &*d,
        &q,
        vec![
            Message::new("x"),
            Message::new("y").with_delay(Duration::ZERO),
        ],
    )
    .await;
    let now = recv(&*d, &q, 10, LONG_LEASE).await;
    assert_eq!(now.len(), 1, "only the one with an explicit zero delay");
    let later = recv_wait(&*d, &q, LONG_LEASE).await;
    assert_eq!(later.len(), 1);
}

/// Dead-lettering keeps everything about the message; requeue brings it back with its
/// id and attempts reset.
pub async fn dead_letter_and_requeue(d: Arc<dyn Driver>) {
    let q = new_queue(&*d, QueueOptions::default()).await;
    let m = Message::new(vec![0u8, 159, 146, 150])
        .with_id("poison")
        .with_header("k", "v")
        .with_priority(3);
    send(&*d, &q, vec![m]).await;
    let got = recv(&*d, &q, 1, LONG_LEASE).await;
    d.dead_letter(&got[0].receipt, "rejected", Some("bad input".into()))
        .await
        .expect("dead_letter");
    assert_eq!(stats(&*d, &q).await, (0, 0, 0, 1));
    let list = d
        .list_dead_letters(&q, DeadLetterQuery::default())
        .await
        .expect("list");
    assert_eq!(list.len(), 1);
    let dl = &list[0];
    assert_eq!(dl.id, "poison");
    assert_eq!(dl.payload.as_ref(), &[0u8, 159, 146, 150]);
    assert_eq!(dl.headers.get("k").map(String::as_str), Some("v"));
    assert_eq!(dl.priority, 3);
    assert_eq!(dl.reason, "rejected");
    assert_eq!(dl.last_error.as_deref(), Some("bad input"));
    assert_eq!(dl.attempts, 1);
    assert!(dl.dead_at >= dl.enqueued_at);
    assert_eq!(&d.get_dead_letter(&q, "poison").await.expect("get"), dl);
    expect_kind(
        d.get_dead_letter(&q, "nope").await,
        ErrorKind::MessageNotFound,
        "unknown dead letter",
    );

    // While the id is live again, requeue leaves the dead letter where it is.
    send(&*d, &q, vec![Message::new("fresh").with_id("poison")]).await;
    let n = d
        .requeue_dead_letters(&q, Selection::Ids(vec!["poison".into()]))
        .await
        .expect("requeue");
    assert_eq!(n, 0, "live id blocks requeue");
    assert_eq!(stats(&*d, &q).await, (1, 0, 0, 1));
    let fresh = recv(&*d, &q, 1, LONG_LEASE).await;
    ack(&*d, &fresh[0].receipt).await;

    let n = d
        .requeue_dead_letters(&q, Selection::Ids(vec!["poison".into()]))
        .await
        .expect("requeue");
    assert_eq!(n, 1);
    assert_eq!(stats(&*d, &q).await, (1, 0, 0, 0));
    let back = recv(&*d, &q, 1, LONG_LEASE).await;
    assert_eq!(back[0].id, "poison");
    assert_eq!(back[0].payload.as_ref(), &[0u8, 159, 146, 150]);
    assert_eq!(back[0].attempt, 1, "attempts reset by requeue");
    ack(&*d, &back[0].receipt).await;
}

/// Dead-letter listing pages and filters; delete and purge remove exactly what they say.
pub async fn dead_letter_paging_and_purge(d: Arc<dyn Driver>) {
    let q = new_queue(&*d, QueueOptions::default()).await;
    let batch: Vec<Message> = (0..10)
        .map(|i| Message::new("x").with_id(format!("m{i}")))
        .collect();
    send(&*d, &q, batch).await;
    let got = recv(&*d, &q, 10, LONG_LEASE).await;
    assert_eq!(got.len(), 10);
    for (i, g) in got.iter().enumerate() {
        let why = if i % 2 == 0 { "even" } else { "odd" };
        d.dead_letter(&g.receipt, why, None)
            .await
            .expect("dead_letter");
    }
    let page = |offset, limit| {
        let d = d.clone();
        let q = q.clone();
        async move {
            d.list_dead_letters(&q, DeadLetterQuery::page(offset, limit))
                .await
                .expect("list")
                .into_iter()
                .map(|x| x.id)
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(page(0, 3).await, ["m0", "m1", "m2"], "oldest death first");
    assert_eq!(page(8, 5).await, ["m8", "m9"]);
    let mut odd = DeadLetterQuery::page(0, 100);
    odd.reason = Some("odd".into());
    let odd: Vec<String> = d
        .list_dead_letters(&q, odd)
        .await
        .expect("list")
        .into_iter()
        .map(|x| x.id)
        .collect();
    assert_eq!(odd, ["m1", "m3", "m5", "m7", "m9"]);

    let n = d
        .delete_dead_letters(&q, Selection::Ids(vec!["m0".into(), "nope".into()]))
        .await
        .expect("delete");
    assert_eq!(n, 1);
    let n = d
        .requeue_dead_letters(&q, Selection::Ids(vec!["m1".into()]))
        .await
        .expect("requeue");
    assert_eq!(n, 1);
    let n = d
        .delete_dead_letters(&q, Selection::All)
        .await
        .expect("purge");
    assert_eq!(n, 8);
    assert_eq!(stats(&*d, &q).await, (1, 0, 0, 0));
    let n = d
        .requeue_dead_letters(&q, Selection::All)
        .await
        .expect("requeue all");
    assert_eq!(n, 0);
}

/// A message whose lease expires on its last allowed attempt goes to the dead letters
/// with reason `lease_expired` (a crash counts as an attempt; no infinite crash loop).
pub async fn lease_expiry_on_last_attempt_dead_letters(d: Arc<dyn Driver>) {
    let q = new_queue(&*d, QueueOptions::default().with_max_attempts(2)).await;
    send(&*d, &q, vec![Message::new("crashy").with_id("crashy")]).await;
    let lease = Duration::from_millis(200);
    let first = recv(&*d, &q, 1, lease).await;
    assert_eq!(first.len(), 1);
    let second = d
        .receive(&q, ReceiveOptions::max(1).with_lease(lease).with_wait(WAIT))
        .await
        .expect("receive");
    assert_eq!(second.len(), 1);
    assert_eq!(second[0].attempt, 2);
    let dl = eventually(WAIT, "lease-expired message in the dead letters", || {
        let d = d.clone();
        let q = q.clone();
        async move {
            let _ = d
                .receive(&q, ReceiveOptions::max(1).with_lease(lease))
                .await;
            d.get_dead_letter(&q, "crashy").await.ok()
        }
    })
    .await;
    assert_eq!(dl.reason, ferry_core::reason::LEASE_EXPIRED);
    assert_eq!(dl.attempts, 2);
    assert_eq!(stats(&*d, &q).await, (0, 0, 0, 1));
}

/// Publishing fans out to every queue whose binding matches, carries the route key,
/// and is refused (with nothing enqueued) when no binding matches.
pub async fn topic_fanout_and_patterns(d: Arc<dyn Driver>) {
    let t = unique_topic("conf");
    d.create_topic(&t).await.expect("create_topic");
    d.create_topic(&t)
        .await
        .expect("create_topic is idempotent");
    let paid = new_queue(&*d, QueueOptions::default()).await;
    let all = new_queue(&*d, QueueOptions::default()).await;
    let refunds = new_queue(&*d, QueueOptions::default()).await;
    d.bind(&t, &paid, "order.*.paid").await.expect("bind");
    d.bind(&t, &all, "order.#").await.expect("bind");
    d.bind(&t, &all, "order.#")
        .await
        .expect("bind twice is a no-op");
    d.bind(&t, &refunds, "#.refunded").await.expect("bind");
    assert_eq!(d.list_bindings(&t).await.expect("list").len(), 3);
    assert!(d.list_topics().await.expect("topics").contains(&t));

    let report = d
        .publish(&t, "order.eu.paid", vec![Message::new("p1").with_id("p1")])
        .await
        .expect("publish");
    let mut want = vec![paid.clone(), all.clone()];
    want.sort();
    assert_eq!(report.queues, want);
    assert_eq!(report.enqueued, 2);
    let report = d
        .publish(&t, "order.refunded", vec![Message::new("r1").with_id("r1")])
        .await
        .expect("publish");
    let mut want = vec![refunds.clone(), all.clone()];
    want.sort();
    assert_eq!(report.queues, want);

    let before: Vec<_> = [&paid, &all, &refunds]
        .iter()
        .map(|q| q.to_string())
        .collect();
    expect_kind(
        d.publish(&t, "user.created", vec![Message::new("u")]).await,
        ErrorKind::Unroutable,
        "publish that matches nothing",
    );
    let _ = before;
    let got = recv(&*d, &all, 10, LONG_LEASE).await;
    assert_eq!(ids(&got), ["p1", "r1"]);
    assert_eq!(got[0].route_key.as_deref(), Some("order.eu.paid"));
    assert_eq!(got[1].route_key.as_deref(), Some("order.refunded"));
    assert_eq!(ids(&recv(&*d, &paid, 10, LONG_LEASE).await), ["p1"]);
    assert_eq!(ids(&recv(&*d, &refunds, 10, LONG_LEASE).await), ["r1"]);

    d.unbind(&t, &paid, "order.*.paid").await.expect("unbind");
    expect_kind(
        d.unbind(&t, &paid, "order.*.paid").await,
        ErrorKind::InvalidInput,
        "unbind of a missing binding",
    );
    let report = d
        .publish(&t, "order.us.paid", vec![Message::new("p2")])
        .await
        .expect("publish");
    assert_eq!(report.queues, vec![all.clone()]);
    d.delete_topic(&t).await.expect("delete_topic");
    expect_kind(
        d.publish(&t, "order.us.paid", vec![Message::new("p3")])
            .await,
        ErrorKind::TopicNotFound,
        "publish to a deleted topic",
    );
}

/// The backend routes exactly as [`route_matches`] says, for a table of tricky cases.
pub async fn route_matching_agrees_with_reference(d: Arc<dyn Driver>) {
    let patterns = [
        "#", "*", "a", "a.*", "a.#", "*.b", "#.b", "a.#.b", "*.*", "a.*.#", "#.#",
    ];
    let keys = [
        "", "a", "b", "a.b", "a.c", "a.b.b", "a.x.y.b", "c.b", "a.b.c",
    ];
    let t = unique_topic("route");
    d.create_topic(&t).await.expect("create_topic");
    let mut queue_of = BTreeMap::new();
    for p in patterns {
        let q = new_queue(&*d, QueueOptions::default()).await;
        d.bind(&t, &q, p).await.expect("bind");
        queue_of.insert(q, p);
    }
    for key in keys {
        let expected: BTreeSet<QueueName> = queue_of
            .iter()
            .filter(|(_, p)| route_matches(p, key))
            .map(|(q, _)| q.clone())
            .collect();
        let got = d
            .publish(&t, key, vec![Message::new(key.to_string())])
            .await;
        match got {
            Ok(r) => assert_eq!(
                r.queues.into_iter().collect::<BTreeSet<_>>(),
                expected,
                "route key {key:?}"
            ),
            Err(e) if e.kind() == ErrorKind::Unroutable => {
                assert!(
                    expected.is_empty(),
                    "route key {key:?} should reach {expected:?}"
                )
            }
            Err(e) => panic!("publish {key:?}: {e}"),
        }
    }
}

/// A batch is all or nothing: one invalid message rejects the whole batch.
pub async fn batch_all_or_nothing(d: Arc<dyn Driver>) {
    let q = new_queue(&*d, QueueOptions::default()).await;
    let limit = d.limits().max_payload_bytes;
    let mut batch: Vec<Message> = (0..5).map(|i| Message::new(format!("ok{i}"))).collect();
    batch.push(Message::new(vec![7u8; limit + 1]));
    expect_kind(
        d.send(&q, batch).await,
        ErrorKind::TooLarge,
        "oversize message in batch",
    );
    let mut batch: Vec<Message> = (0..5).map(|i| Message::new(format!("ok{i}"))).collect();
    batch.push(Message::new("x").with_id(""));
    expect_kind(
        d.send(&q, batch).await,
        ErrorKind::InvalidName,
        "empty id in batch",
    );
    assert_eq!(
        stats(&*d, &q).await,
        (0, 0, 0, 0),
        "nothing from a rejected batch"
    );

    send(&*d, &q, vec![Message::new(vec![1u8; limit])]).await;
    let big = recv(&*d, &q, 1, LONG_LEASE).await;
    assert_eq!(
        big[0].payload.len(),
        limit,
        "a payload at the limit is accepted intact"
    );
    ack(&*d, &big[0].receipt).await;

    let batch: Vec<Message> = (0..500).map(|i| Message::new(format!("m{i}"))).collect();
    let want: Vec<String> = batch.iter().map(|m| m.id().to_string()).collect();
    assert_eq!(d.send(&q, batch).await.expect("send").enqueued, 500);
    let mut got = Vec::new();
    while got.len() < 500 {
        let part = recv(&*d, &q, 128, LONG_LEASE).await;
        assert!(!part.is_empty(), "all 500 receivable");
        let settle: Vec<Settlement> = part
            .iter()
            .map(|p| Settlement::ack(p.receipt.clone()))
            .collect();
        let results = d.settle(settle).await.expect("settle");
        assert!(results.iter().all(Result::is_ok));
        got.extend(ids(&part));
    }
    assert_eq!(got, want);
}

/// While an id is queued, sending it again is a no-op; once acked, it can be sent again.
pub async fn duplicate_id_is_noop_while_queued(d: Arc<dyn Driver>) {
    let q = new_queue(&*d, QueueOptions::default()).await;
    send(&*d, &q, vec![Message::new("one").with_id("order-1")]).await;
    let again = d
        .send(
            &q,
            vec![
                Message::new("two").with_id("order-1"),
                Message::new("x").with_id("order-2"),
            ],
        )
        .await
        .expect("send");
    assert_eq!(again.enqueued, 1);
    assert_eq!(again.duplicates, ["order-1"]);
    let got = recv(&*d, &q, 10, LONG_LEASE).await;
    assert_eq!(ids(&got), ["order-1", "order-2"]);
    assert_eq!(got[0].payload.as_ref(), b"one", "the first copy wins");
    // Still a duplicate while in flight.
    let dup = d
        .send(&q, vec![Message::new("three").with_id("order-1")])
        .await
        .expect("send");
    assert_eq!(dup.duplicates, ["order-1"]);
    ack(&*d, &got[0].receipt).await;
    let fresh = d
        .send(&q, vec![Message::new("four").with_id("order-1")])
        .await
        .expect("send");
    assert_eq!(fresh.enqueued, 1, "after ack the id is free again");
    expect_kind(
        d.send(
            &q,
            vec![
                Message::new("a").with_id("z"),
                Message::new("b").with_id("z"),
            ],
        )
        .await,
        ErrorKind::InvalidInput,
        "the same id twice in one batch",
    );
}

/// Bad input gets an error of the right kind, with a message, and changes nothing.
pub async fn invalid_input(d: Arc<dyn Driver>) {
    let missing = unique_queue("missing");
    expect_kind(
        d.send(&missing, vec![Message::new("x")]).await,
        ErrorKind::QueueNotFound,
        "send to a missing queue",
    );
    expect_kind(
        d.receive(&missing, ReceiveOptions::max(1)).await,
        ErrorKind::QueueNotFound,
        "receive from a missing queue",
    );
    expect_kind(
        d.get_queue(&missing).await,
        ErrorKind::QueueNotFound,
        "get a missing queue",
    );
    expect_kind(
        d.stats(Some(&missing)).await,
        ErrorKind::QueueNotFound,
        "stats of a missing queue",
    );
    expect_kind(
        d.delete_queue(&missing).await,
        ErrorKind::QueueNotFound,
        "delete a missing queue",
    );
    let q = new_queue(&*d, QueueOptions::default()).await;
    expect_kind(
        d.create_queue(&q, QueueOptions::default().with_max_attempts(0))
            .await,
        ErrorKind::InvalidInput,
        "max attempts 0",
    );
    expect_kind(
        d.receive(&q, ReceiveOptions::max(0)).await,
        ErrorKind::InvalidInput,
        "receive max 0",
    );
    expect_kind(
        d.receive(&q, ReceiveOptions::max(1).with_lease(Duration::MAX))
            .await,
        ErrorKind::InvalidInput,
        "absurd lease",
    );
    expect_kind(
        d.send(&q, vec![Message::new("x").with_delay(Duration::MAX)])
            .await,
        ErrorKind::InvalidInput,
        "absurd delay",
    );
    expect_kind(
        d.create_queue(&q, QueueOptions::default().with_lease(Duration::MAX))
            .await,
        ErrorKind::InvalidInput,
        "absurd queue lease",
    );
    let t = unique_topic("conf");
    expect_kind(
        d.bind(&t, &q, "a").await,
        ErrorKind::TopicNotFound,
        "bind to a missing topic",
    );
    d.create_topic(&t).await.expect("create_topic");
    expect_kind(
        d.bind(&t, &q, "a.b*").await,
        ErrorKind::InvalidInput,
        "bad pattern",
    );
    expect_kind(
        d.bind(&t, &missing, "a").await,
        ErrorKind::QueueNotFound,
        "bind a missing queue",
    );
    d.bind(&t, &q, "#").await.expect("bind");
    expect_kind(
        d.publish(&t, "a.*", vec![Message::new("x")]).await,
        ErrorKind::InvalidInput,
        "wildcard in a route key",
    );
    let forged = Receipt::new(q.clone(), "nope", "garbage");
    match d.ack(&forged).await {
        Err(e)
            if matches!(
                e.kind(),
                ErrorKind::InvalidReceipt | ErrorKind::StaleReceipt
            ) => {}
        other => panic!("forged receipt: expected InvalidReceipt or StaleReceipt, got {other:?}"),
    }
    expect_kind(
        d.list_dead_letters(&missing, DeadLetterQuery::default())
            .await,
        ErrorKind::QueueNotFound,
        "dead letters of a missing queue",
    );
    assert_eq!(stats(&*d, &q).await, (0, 0, 0, 0));
}

/// A long-polling receive returns as soon as a message arrives, not at the end of its wait.
pub async fn long_poll_wakes_on_send(d: Arc<dyn Driver>) {
    let q = new_queue(&*d, QueueOptions::default()).await;
    let (d2, q2) = (d.clone(), q.clone());
    let started = tokio::time::Instant::now();
    let waiter = tokio::spawn(async move {
        d2.receive(
            &q2,
            ReceiveOptions::max(1).with_wait(Duration::from_secs(20)),
        )
        .await
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    send(&*d, &q, vec![Message::new("wake")]).await;
    let got = waiter.await.expect("join").expect("receive");
    assert_eq!(got.len(), 1);
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "long poll returned when the message arrived, not at the end of its 20 s wait"
    );
}

/// Stats count each state separately.
pub async fn stats_by_state(d: Arc<dyn Driver>) {
    let q = new_queue(&*d, QueueOptions::default()).await;
    let batch = vec![
        Message::new("r1"),
        Message::new("r2"),
        Message::new("r3"),
        Message::new("d1").with_delay(Duration::from_secs(600)),
        Message::new("d2").with_delay(Duration::from_secs(600)),
    ];
    send(&*d, &q, batch).await;
    let got = recv(&*d, &q, 2, LONG_LEASE).await;
    d.dead_letter(&got[1].receipt, "rejected", None)
        .await
        .expect("dead_letter");
    assert_eq!(stats(&*d, &q).await, (1, 2, 1, 1));
    let all = d.stats(None).await.expect("stats");
    assert!(
        all.iter().any(|s| s.name == q.as_str()),
        "stats(None) lists every queue"
    );
    let names: Vec<&str> = all.iter().map(|s| s.name.as_str()).collect();
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(names, sorted, "stats(None) is sorted by name");
}

/// Deleting a queue removes its messages, dead letters and bindings.
pub async fn delete_queue_removes_everything(d: Arc<dyn Driver>) {
    let q = new_queue(&*d, QueueOptions::default()).await;
    let t = unique_topic("conf");
    d.create_topic(&t).await.expect("create_topic");
    d.bind(&t, &q, "#").await.expect("bind");
    send(&*d, &q, vec![Message::new("a"), Message::new("b")]).await;
    let got = recv(&*d, &q, 1, LONG_LEASE).await;
    d.dead_letter(&got[0].receipt, "rejected", None)
        .await
        .expect("dead_letter");
    assert!(
        d.list_queues()
            .await
            .expect("list")
            .iter()
            .any(|i| i.name == q)
    );
    d.delete_queue(&q).await.expect("delete");
    assert!(
        !d.list_queues()
            .await
            .expect("list")
            .iter()
            .any(|i| i.name == q)
    );
    expect_kind(
        d.get_queue(&q).await,
        ErrorKind::QueueNotFound,
        "deleted queue",
    );
    assert!(
        d.list_bindings(&t).await.expect("bindings").is_empty(),
        "its bindings are gone"
    );
    d.create_queue(&q, QueueOptions::default())
        .await
        .expect("recreate");
    assert_eq!(
        stats(&*d, &q).await,
        (0, 0, 0, 0),
        "a recreated queue starts empty"
    );
}

/// Concurrent receivers never get the same message while its lease holds.
pub async fn concurrent_receivers_never_share(d: Arc<dyn Driver>) {
    let q = new_queue(&*d, QueueOptions::default()).await;
    let batch: Vec<Message> = (0..200).map(|i| Message::new(format!("m{i}"))).collect();
    let want: HashSet<String> = batch.iter().map(|m| m.id().to_string()).collect();
    send(&*d, &q, batch).await;
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let (d, q) = (d.clone(), q.clone());
        tasks.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            loop {
                let got = d
                    .receive(&q, ReceiveOptions::max(7).with_lease(LONG_LEASE))
                    .await
                    .expect("receive");
                if got.is_empty() {
                    return mine;
                }
                mine.extend(got);
            }
        }));
    }
    let mut seen = HashSet::new();
    let mut receipts = Vec::new();
    for t in tasks {
        for delivery in t.await.expect("join") {
            assert!(
                seen.insert(delivery.id.clone()),
                "{} delivered twice",
                delivery.id
            );
            receipts.push(Settlement {
                receipt: delivery.receipt,
                action: SettleAction::Ack,
            });
        }
    }
    assert_eq!(seen, want);
    assert!(
        d.settle(receipts)
            .await
            .expect("settle")
            .iter()
            .all(Result::is_ok)
    );
}

/// Every lifecycle event is in the message's history, in order, with attempt numbers.
pub async fn history_records_lifecycle(d: Arc<dyn Driver>) {
    let q = new_queue(&*d, QueueOptions::default()).await;
    send(&*d, &q, vec![Message::new("x").with_id("h")]).await;
    let r = recv(&*d, &q, 1, LONG_LEASE).await;
    d.retry(&r[0].receipt, SystemTime::now(), Some("boom".into()))
        .await
        .expect("retry");
    let r = recv(&*d, &q, 1, LONG_LEASE).await;
    d.dead_letter(&r[0].receipt, "rejected", Some("bad".into()))
        .await
        .expect("dead_letter");
    d.requeue_dead_letters(&q, Selection::Ids(vec!["h".into()]))
        .await
        .expect("requeue");
    let released = recv(&*d, &q, 1, LONG_LEASE).await;
    d.release(&released[0].receipt).await.expect("release");
    let r = recv(&*d, &q, 1, LONG_LEASE).await;
    // A stale settle changes nothing, so it leaves no trace in the history either.
    expect_kind(
        d.ack(&released[0].receipt).await,
        ErrorKind::StaleReceipt,
        "stale ack",
    );
    ack(&*d, &r[0].receipt).await;
    let events = d.history(&q, "h").await.expect("history");
    let names: Vec<(&str, u32)> = events
        .iter()
        .map(|e| (e.event.as_str(), e.attempt))
        .collect();
    assert_eq!(
        names,
        [
            ("sent", 0),
            ("delivered", 1),
            ("retried", 1),
            ("delivered", 2),
            ("dead_lettered", 2),
            ("requeued", 0),
            ("delivered", 1),
            ("released", 1),
            ("delivered", 1),
            ("acked", 1),
        ],
        "{events:#?}"
    );
    assert_eq!(events[2].detail.as_deref(), Some("boom"));
    assert!(
        events[4]
            .detail
            .as_deref()
            .is_some_and(|d| d.contains("rejected"))
    );
    assert!(
        events.windows(2).all(|w| w[0].at <= w[1].at),
        "in time order"
    );
    assert!(d.history(&q, "unknown").await.expect("history").is_empty());
}

/// Stamps out one `#[tokio::test]` per conformance function. `$setup` is an async
/// expression producing an `Arc<dyn Driver>`; it is evaluated once per test.
///
/// ```ignore
/// ferry_testkit::conformance_suite!(async {
///     std::sync::Arc::new(ferry_core::MemoryDriver::new()) as std::sync::Arc<dyn ferry_core::Driver>
/// });
/// ```
#[macro_export]
macro_rules! conformance_suite {
    ($setup:expr) => {
        $crate::conformance_suite!(@each $setup;
            send_receive_ack, fifo_within_priority, priority_order, lease_expiry_redelivers,
            extend_keeps_lease, stale_receipt_rejected, release_does_not_count_an_attempt,
            retry_at, delays_do_not_block,
            queue_default_delay, dead_letter_and_requeue, dead_letter_paging_and_purge,
            lease_expiry_on_last_attempt_dead_letters, topic_fanout_and_patterns,
            route_matching_agrees_with_reference, batch_all_or_nothing,
            duplicate_id_is_noop_while_queued, invalid_input, long_poll_wakes_on_send,
            stats_by_state, delete_queue_removes_everything, concurrent_receivers_never_share,
            history_records_lifecycle, pause_stops_deliveries_and_resume_restores,
            pause_missing_queue_is_not_found, stats_report_oldest_ready_at,
            insert_dead_letters_round_trip, approve_counts_and_filters,
            redrive_moves_only_approved, redrive_concurrent_claims_are_disjoint,
            redrive_leaves_live_ids_approved
        );
    };
    (@each $setup:expr; $($name:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                let driver: ::std::sync::Arc<dyn $crate::__private::Driver> = $setup.await;
                $crate::conformance::$name(driver).await;
            }
        )*
    };
}
