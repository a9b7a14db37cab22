//! Conformance for approved re-drive: storing dead letters directly
//! (`DeadLetters::insert_dead_letters`), approving them (`approve_dead_letters`) and
//! moving the approved ones back (`redrive_approved`).
//!
//! Kept apart from the delivery guarantees because re-drive is an operator's tool with
//! its own promise, the one the Go bus ferry replaces did not keep: several processes
//! re-driving one queue never requeue a dead letter twice for one approval, and a
//! message that dies again is not approved any more. The live-id rule is its own
//! function (`redrive_leaves_live_ids_approved`), so a backend without an index of live
//! ids (RabbitMQ) can leave it out by name, as it does `dead_letter_and_requeue`.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use ferry_core::time::{from_millis, now_millis};
use ferry_core::{
    DeadLetter, DeadLetterQuery, Driver, ErrorKind, Message, QueueName, QueueOptions, Selection,
    SettleAction, Settlement, reason,
};

use super::{LONG_LEASE, ack, expect_kind, ids, new_queue, recv, send, stats};
use crate::util::unique_queue;

/// Sends messages with these ids and dead-letters them all (reason `rejected`), in
/// this order.
async fn kill(d: &dyn Driver, q: &QueueName, names: &[&str]) {
    let batch = names
        .iter()
        .map(|id| Message::new(format!("payload of {id}")).with_id(*id))
        .collect();
    send(d, q, batch).await;
    let mut got = Vec::new();
    while got.len() < names.len() {
        let more = recv(d, q, names.len() - got.len(), LONG_LEASE).await;
        assert!(!more.is_empty(), "every message sent is received");
        got.extend(more);
    }
    assert_eq!(ids(&got), names, "received in send order");
    let settlements = got
        .iter()
        .map(|g| Settlement {
            receipt: g.receipt.clone(),
            action: SettleAction::DeadLetter {
                reason: reason::REJECTED.into(),
                error: Some("bad".into()),
            },
        })
        .collect();
    let results = d
        .settle(settlements)
        .await
        .unwrap_or_else(|e| panic!("settle failed: {e}"));
    assert!(results.iter().all(Result::is_ok), "{results:?}");
}

async fn listed(d: &dyn Driver, q: &QueueName, query: DeadLetterQuery) -> Vec<String> {
    d.list_dead_letters(q, query)
        .await
        .unwrap_or_else(|e| panic!("list_dead_letters failed: {e}"))
        .into_iter()
        .map(|l| l.id)
        .collect()
}

async fn approve(d: &dyn Driver, q: &QueueName, selection: Selection) -> u64 {
    d.approve_dead_letters(q, selection)
        .await
        .unwrap_or_else(|e| panic!("approve_dead_letters failed: {e}"))
}

async fn redrive(d: &dyn Driver, q: &QueueName, max: u64) -> Vec<String> {
    let moved = d
        .redrive_approved(q, max)
        .await
        .unwrap_or_else(|e| panic!("redrive_approved failed: {e}"));
    assert!(
        moved.len() as u64 <= max,
        "redrive_approved({max}) moved {}",
        moved.len()
    );
    moved
}

fn sel(names: &[&str]) -> Selection {
    Selection::Ids(names.iter().map(|s| s.to_string()).collect())
}

fn sorted(v: Vec<String>) -> Vec<String> {
    let mut v = v;
    v.sort();
    v
}

fn letter(q: &QueueName, id: &str, dead_ms: i64) -> DeadLetter {
    DeadLetter {
        id: id.into(),
        queue: q.clone(),
        payload: format!("payload of {id}").into(),
        headers: BTreeMap::new(),
        route_key: None,
        priority: 0,
        enqueued_at: from_millis(dead_ms - 60_000),
        attempts: 0,
        reason: reason::TX_CHECK_EXHAUSTED.into(),
        last_error: None,
        first_failed_at: Some(from_millis(dead_ms - 30_000)),
        dead_at: from_millis(dead_ms),
    }
}

/// Inserted dead letters keep every field (times to the millisecond), count in stats,
/// and requeue, delete and approve like any other; a batch with one bad letter stores
/// none; a missing queue is `QueueNotFound`.
pub async fn insert_dead_letters_round_trip(d: Arc<dyn Driver>) {
    let q = new_queue(&*d, QueueOptions::default()).await;
    let t = now_millis() - 1_000;
    let mut full = letter(&q, "full", t);
    full.headers.insert("tenant".into(), "acme".into());
    full.headers.insert("trace".into(), "x-1".into());
    full.route_key = Some("orders.created".into());
    full.priority = 7;
    full.attempts = 4;
    full.last_error = Some("check-back: unknown".into());
    full.payload = vec![0u8, 159, 146, 150, 255].into();
    let plain = letter(&q, "plain", t + 1);
    let n = d
        .insert_dead_letters(&q, vec![full.clone(), plain.clone()])
        .await
        .expect("insert_dead_letters");
    assert_eq!(n, 2, "insert reports how many it stored");
    assert_eq!(
        stats(&*d, &q).await,
        (0, 0, 0, 2),
        "inserted ones count as dead"
    );

    let all = d
        .list_dead_letters(&q, DeadLetterQuery::default())
        .await
        .expect("list");
    assert_eq!(
        all,
        vec![full.clone(), plain.clone()],
        "every field as given"
    );
    assert_eq!(d.get_dead_letter(&q, "full").await.expect("get"), full);
    let mut by_reason = DeadLetterQuery::default();
    by_reason.reason = Some(reason::TX_CHECK_EXHAUSTED.into());
    assert_eq!(listed(&*d, &q, by_reason).await, ["full", "plain"]);
    assert_eq!(
        listed(&*d, &q, DeadLetterQuery::default().with_approved(false)).await,
        ["full", "plain"],
        "inserted dead letters are not approved"
    );

    // All or nothing: the bad letter (empty id) fails the whole batch.
    let bad = letter(&q, "", t + 2);
    expect_kind(
        d.insert_dead_letters(&q, vec![letter(&q, "good", t + 2), bad])
            .await,
        ErrorKind::InvalidName,
        "insert with an invalid id",
    );
    assert_eq!(
        stats(&*d, &q).await,
        (0, 0, 0, 2),
        "nothing of a refused batch"
    );
    expect_kind(
        d.insert_dead_letters(&unique_queue("missing"), vec![letter(&q, "x", t)])
            .await,
        ErrorKind::QueueNotFound,
        "insert into a missing queue",
    );

    // From here on they are ordinary dead letters.
    let n = d
        .requeue_dead_letters(&q, sel(&["full"]))
        .await
        .expect("requeue");
    assert_eq!(n, 1);
    let back = recv(&*d, &q, 10, LONG_LEASE).await;
    assert_eq!(ids(&back), ["full"]);
    assert_eq!(back[0].payload, full.payload);
    assert_eq!(back[0].headers, full.headers);
    assert_eq!(back[0].route_key, full.route_key);
    assert_eq!(back[0].priority, 7);
    assert_eq!(back[0].attempt, 1, "attempts reset by requeue");
    ack(&*d, &back[0].receipt).await;
    assert_eq!(approve(&*d, &q, sel(&["plain"])).await, 1);
    assert_eq!(
        d.delete_dead_letters(&q, Selection::All)
            .await
            .expect("purge"),
        1
    );
    assert_eq!(stats(&*d, &q).await, (0, 0, 0, 0));
}

/// Approving counts only newly approved dead letters (twice is a no-op, unknown ids are
/// skipped), `All` approves the rest, and list filters on approval (with reason too).
pub async fn approve_counts_and_filters(d: Arc<dyn Driver>) {
    let q = new_queue(&*d, QueueOptions::default()).await;
    kill(&*d, &q, &["a", "b", "c"]).await;
    assert_eq!(approve(&*d, &q, sel(&["a", "b", "nope"])).await, 2);
    assert_eq!(approve(&*d, &q, sel(&["a"])).await, 0, "approving twice");
    let yes = DeadLetterQuery::default().with_approved(true);
    let no = DeadLetterQuery::default().with_approved(false);
    assert_eq!(sorted(listed(&*d, &q, yes.clone()).await), ["a", "b"]);
    assert_eq!(listed(&*d, &q, no.clone()).await, ["c"]);
    assert_eq!(
        sorted(listed(&*d, &q, DeadLetterQuery::default()).await),
        ["a", "b", "c"],
        "no filter lists both"
    );
    let mut paged = yes.clone();
    paged.limit = 1;
    assert_eq!(
        listed(&*d, &q, paged.clone()).await.len(),
        1,
        "limit applies"
    );
    paged.offset = 1;
    assert_eq!(listed(&*d, &q, paged).await.len(), 1, "offset applies");
    let mut other_reason = yes.clone();
    other_reason.reason = Some(reason::LEASE_EXPIRED.into());
    assert!(listed(&*d, &q, other_reason).await.is_empty());
    let mut same_reason = yes.clone();
    same_reason.reason = Some(reason::REJECTED.into());
    assert_eq!(sorted(listed(&*d, &q, same_reason).await), ["a", "b"]);

    assert_eq!(approve(&*d, &q, Selection::All).await, 1, "only c was left");
    assert_eq!(approve(&*d, &q, Selection::All).await, 0);
    assert!(listed(&*d, &q, no).await.is_empty());
    assert_eq!(
        stats(&*d, &q).await,
        (0, 0, 0, 3),
        "approving moves nothing"
    );
    let missing = unique_queue("missing");
    expect_kind(
        d.approve_dead_letters(&missing, Selection::All).await,
        ErrorKind::QueueNotFound,
        "approve in a missing queue",
    );
    expect_kind(
        d.redrive_approved(&missing, 10).await,
        ErrorKind::QueueNotFound,
        "redrive of a missing queue",
    );
}

/// Re-drive moves only approved dead letters, oldest death first, at most `max` per
/// call, back ready with attempts reset; the move clears the approval, so a message
/// that dies again stays dead until approved again.
pub async fn redrive_moves_only_approved(d: Arc<dyn Driver>) {
    let q = new_queue(&*d, QueueOptions::default()).await;
    assert!(
        redrive(&*d, &q, 10).await.is_empty(),
        "nothing approved yet"
    );
    kill(&*d, &q, &["a", "b", "c"]).await;
    assert!(
        redrive(&*d, &q, 10).await.is_empty(),
        "unapproved never move"
    );
    assert_eq!(approve(&*d, &q, sel(&["a", "b"])).await, 2);
    assert_eq!(
        redrive(&*d, &q, 1).await,
        ["a"],
        "oldest death first, max 1"
    );
    assert_eq!(redrive(&*d, &q, 100).await, ["b"]);
    assert!(redrive(&*d, &q, 100).await.is_empty());
    assert_eq!(stats(&*d, &q).await, (2, 0, 0, 1));
    assert!(
        listed(&*d, &q, DeadLetterQuery::default().with_approved(true))
            .await
            .is_empty(),
        "no approved dead letter left"
    );
    assert_eq!(
        listed(&*d, &q, DeadLetterQuery::default().with_approved(false)).await,
        ["c"]
    );

    let back = recv(&*d, &q, 10, LONG_LEASE).await;
    assert_eq!(ids(&back), ["a", "b"]);
    assert!(back.iter().all(|b| b.attempt == 1), "attempts reset");
    assert_eq!(back[0].payload.as_ref(), b"payload of a");
    // "a" dies again: its approval belonged to the first death.
    d.dead_letter(&back[0].receipt, reason::REJECTED, Some("again".into()))
        .await
        .expect("dead_letter");
    ack(&*d, &back[1].receipt).await;
    assert!(
        redrive(&*d, &q, 100).await.is_empty(),
        "a dead letter re-driven once is not re-driven again after it dies again"
    );
    assert_eq!(
        sorted(listed(&*d, &q, DeadLetterQuery::default().with_approved(false)).await),
        ["a", "c"]
    );
    assert_eq!(approve(&*d, &q, sel(&["a"])).await, 1, "approved anew");
    assert_eq!(redrive(&*d, &q, 100).await, ["a"]);
    assert_eq!(stats(&*d, &q).await, (1, 0, 0, 1));
}

/// Eight concurrent re-drives over 50 approved dead letters each get disjoint ids, and
/// together exactly the 50: none is requeued twice, none is left.
pub async fn redrive_concurrent_claims_are_disjoint(d: Arc<dyn Driver>) {
    let q = new_queue(&*d, QueueOptions::default()).await;
    let names: Vec<String> = (0..50).map(|i| format!("m{i:02}")).collect();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    kill(&*d, &q, &refs).await;
    assert_eq!(approve(&*d, &q, Selection::All).await, 50);
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let (d, q) = (d.clone(), q.clone());
            tokio::spawn(async move {
                let mut mine = Vec::new();
                loop {
                    let got = redrive(&*d, &q, 4).await;
                    if got.is_empty() {
                        return mine;
                    }
                    mine.extend(got);
                    tokio::task::yield_now().await;
                }
            })
        })
        .collect();
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.expect("redrive task"));
    }
    // A backend whose claim makes a concurrent caller see nothing for a moment may let
    // a task stop early; whatever is left must still be there, exactly once.
    all.extend(redrive(&*d, &q, 100).await);
    let unique: BTreeSet<&String> = all.iter().collect();
    assert_eq!(
        unique.len(),
        all.len(),
        "an id was re-driven twice: {all:?}"
    );
    let expected: BTreeSet<&String> = names.iter().collect();
    assert_eq!(unique, expected, "the union is exactly the approved ones");
    assert_eq!(stats(&*d, &q).await, (50, 0, 0, 0));
}

/// An approved dead letter whose id is live in the queue again stays, still approved,
/// and moves once the live message is gone.
pub async fn redrive_leaves_live_ids_approved(d: Arc<dyn Driver>) {
    let q = new_queue(&*d, QueueOptions::default()).await;
    kill(&*d, &q, &["x"]).await;
    assert_eq!(approve(&*d, &q, sel(&["x"])).await, 1);
    send(&*d, &q, vec![Message::new("live again").with_id("x")]).await;
    assert!(redrive(&*d, &q, 10).await.is_empty(), "a live id blocks it");
    assert_eq!(
        listed(&*d, &q, DeadLetterQuery::default().with_approved(true)).await,
        ["x"],
        "still approved"
    );
    let live = recv(&*d, &q, 1, LONG_LEASE).await;
    ack(&*d, &live[0].receipt).await;
    let moved = crate::util::eventually(Duration::from_secs(5), "re-drive after ack", || {
        let (d, q) = (d.clone(), q.clone());
        async move {
            let m = redrive(&*d, &q, 10).await;
            (!m.is_empty()).then_some(m)
        }
    })
    .await;
    assert_eq!(moved, ["x"]);
    let back = recv(&*d, &q, 1, LONG_LEASE).await;
    assert_eq!(back[0].payload.as_ref(), b"payload of x");
}
