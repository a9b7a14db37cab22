//! The contract suite every [`TxStore`] passes, and [`tx_store_suite!`](crate::tx_store_suite)
//! to run it as tests.
//!
//! Each function takes a store of its own (the macro calls the setup once per test),
//! because claims take whatever is due in the store: tests sharing one store would steal
//! each other's records. Backends give each setup call a unique key prefix, schema
//! partition or directory.
//!
//! ```ignore
//! ferry_testkit::tx_store_suite!(async { std::sync::Arc::new(MyTxStore::open().await) });
//! ```

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use ferry_core::tx::{Destination, Reschedule, TxState, TxStore};
use ferry_core::{ErrorKind, Message, QueueName, TopicName};

use crate::util::unique_name;

/// The names of every suite function, for [`tx_store_suite!`](crate::tx_store_suite).
pub const ALL: &[&str] = &[
    "tx_prepare_get_remove",
    "tx_prepare_twice_is_already_exists",
    "tx_record_keeps_every_field",
    "tx_hold_renews_and_is_fenced_by_claims",
    "tx_claim_takes_only_due_records_oldest_first",
    "tx_concurrent_claims_are_disjoint",
    "tx_claim_expires_and_record_comes_back",
    "tx_reschedule_is_fenced",
    "tx_mark_committed_applies_to_any_holder",
    "tx_mark_committed_restores_a_removed_record",
    "tx_list_pages_oldest_first",
];

const LONG: Duration = Duration::from_secs(3600);

fn queue() -> Destination {
    Destination::queue(QueueName::new(unique_name("txq")).unwrap_or_else(|e| panic!("name: {e}")))
}

fn msg(tag: &str) -> Message {
    Message::new(format!("payload {tag}")).with_id(unique_name(tag))
}

async fn wait_due() {
    // Records prepared with a zero hold are due "now" by the store's clock, which may
    // run a few milliseconds behind ours.
    tokio::time::sleep(Duration::from_millis(30)).await;
}

/// prepare → get → count → remove; removing twice reports `false`.
pub async fn tx_prepare_get_remove(store: Arc<dyn TxStore>) {
    let dest = queue();
    let m = msg("pgr");
    store.prepare(&dest, &m, LONG).await.expect("prepare");
    let got = store.get(m.id()).await.expect("get");
    assert_eq!(got.message, m, "the record keeps the message as prepared");
    assert_eq!(got.destination, dest);
    assert_eq!(got.state, TxState::Prepared);
    assert_eq!(got.checks, 0);
    assert!(
        got.due_at > SystemTime::now() + Duration::from_secs(3000),
        "due after the hold"
    );
    assert_eq!(store.count().await.expect("count"), 1);
    assert!(store.remove(m.id()).await.expect("remove"));
    assert!(
        !store.remove(m.id()).await.expect("remove again"),
        "second remove reports gone"
    );
    let err = store.get(m.id()).await.expect_err("gone");
    assert_eq!(err.kind(), ErrorKind::MessageNotFound);
    assert_eq!(store.count().await.expect("count"), 0);
}

/// A second prepare of one id is refused and leaves the first untouched.
pub async fn tx_prepare_twice_is_already_exists(store: Arc<dyn TxStore>) {
    let dest = queue();
    let m = msg("twice");
    store.prepare(&dest, &m, LONG).await.expect("prepare");
    let other = Message::new("other payload").with_id(m.id());
    let err = store
        .prepare(&dest, &other, Duration::ZERO)
        .await
        .expect_err("duplicate id");
    assert_eq!(err.kind(), ErrorKind::AlreadyExists, "{err}");
    assert_eq!(store.get(m.id()).await.expect("get").message, m);
}

/// Topic destinations, binary payloads, headers, priority and delays survive the store.
pub async fn tx_record_keeps_every_field(store: Arc<dyn TxStore>) {
    let topic = TopicName::new(unique_name("txt")).expect("topic");
    let dest = Destination::topic(topic, "order.created.eu").expect("dest");
    let m = Message::new(&b"\x00\x01\xfe\xff"[..])
        .with_id(unique_name("fields"))
        .with_header("content-type", "application/octet-stream")
        .with_header("tenant", "ümlaut ✓")
        .with_priority(7)
        .with_delay(Duration::from_secs(90));
    store.prepare(&dest, &m, LONG).await.expect("prepare");
    let got = store.get(m.id()).await.expect("get");
    assert_eq!(got.destination, dest);
    assert_eq!(got.message, m);
}

/// The producer's hold pushes the due time; once a checker claimed the record, the
/// producer's token no longer holds it.
pub async fn tx_hold_renews_and_is_fenced_by_claims(store: Arc<dyn TxStore>) {
    let dest = queue();
    let m = msg("hold");
    let token = store
        .prepare(&dest, &m, Duration::ZERO)
        .await
        .expect("prepare");
    store.hold(m.id(), token, LONG).await.expect("renew");
    assert!(
        store.claim_due(10, LONG).await.expect("claim").is_empty(),
        "a held record is not due"
    );
    store
        .hold(m.id(), token, Duration::ZERO)
        .await
        .expect("renew to now");
    wait_due().await;
    let claimed = store.claim_due(10, LONG).await.expect("claim");
    assert_eq!(claimed.len(), 1);
    let err = store
        .hold(m.id(), token, LONG)
        .await
        .expect_err("claimed since");
    assert_eq!(err.kind(), ErrorKind::StaleReceipt, "{err}");
    store.remove(m.id()).await.expect("remove");
    let err = store.hold(m.id(), token, LONG).await.expect_err("gone");
    assert_eq!(err.kind(), ErrorKind::MessageNotFound, "{err}");
}

/// Claims take due records only, oldest due first, at most `max`.
pub async fn tx_claim_takes_only_due_records_oldest_first(store: Arc<dyn TxStore>) {
    let dest = queue();
    let mut due = Vec::new();
    for i in 0..3 {
        let m = msg(&format!("due{i}"));
        store
            .prepare(&dest, &m, Duration::ZERO)
            .await
            .expect("prepare");
        due.push(m.id().to_string());
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let held = msg("held");
    store.prepare(&dest, &held, LONG).await.expect("prepare");
    wait_due().await;
    let first = store.claim_due(2, LONG).await.expect("claim");
    let ids: Vec<&str> = first.iter().map(|c| c.prepared.id()).collect();
    assert_eq!(ids, [due[0].as_str(), due[1].as_str()], "oldest due first");
    let rest = store.claim_due(10, LONG).await.expect("claim");
    let ids: Vec<&str> = rest.iter().map(|c| c.prepared.id()).collect();
    assert_eq!(
        ids,
        [due[2].as_str()],
        "claimed records are not due again within the lease, held ones never"
    );
}

/// Eight claimers at once share 40 due records without overlap or loss.
pub async fn tx_concurrent_claims_are_disjoint(store: Arc<dyn TxStore>) {
    let dest = queue();
    let mut all = BTreeSet::new();
    for i in 0..40 {
        let m = msg(&format!("c{i}"));
        store
            .prepare(&dest, &m, Duration::ZERO)
            .await
            .expect("prepare");
        all.insert(m.id().to_string());
    }
    wait_due().await;
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            loop {
                let got = store.claim_due(3, LONG).await.expect("claim");
                if got.is_empty() {
                    return mine;
                }
                mine.extend(got.into_iter().map(|c| c.prepared.id().to_string()));
            }
        }));
    }
    let mut seen = BTreeSet::new();
    for t in tasks {
        for id in t.await.expect("task") {
            assert!(seen.insert(id.clone()), "{id} was claimed twice");
        }
    }
    assert_eq!(seen, all, "every due record was claimed exactly once");
}

/// A checker that dies mid-check leaves its claim to expire; the record is due again
/// with a new token, and the old token is fenced out.
pub async fn tx_claim_expires_and_record_comes_back(store: Arc<dyn TxStore>) {
    let dest = queue();
    let m = msg("expire");
    store
        .prepare(&dest, &m, Duration::ZERO)
        .await
        .expect("prepare");
    wait_due().await;
    let first = store
        .claim_due(10, Duration::from_millis(200))
        .await
        .expect("claim");
    assert_eq!(first.len(), 1);
    tokio::time::sleep(Duration::from_millis(400)).await;
    let second = store.claim_due(10, LONG).await.expect("claim again");
    assert_eq!(second.len(), 1, "the expired claim's record is due again");
    assert_ne!(second[0].token, first[0].token, "a new claim, a new token");
    let update = Reschedule {
        state: TxState::Prepared,
        checks: 1,
        due_at: SystemTime::now(),
        error: None,
    };
    let err = store
        .reschedule(m.id(), first[0].token, update)
        .await
        .expect_err("stale claim");
    assert_eq!(err.kind(), ErrorKind::StaleReceipt, "{err}");
}

/// A claimed record's reschedule keeps its checks, state, error and due time; a wrong
/// token changes nothing.
pub async fn tx_reschedule_is_fenced(store: Arc<dyn TxStore>) {
    let dest = queue();
    let m = msg("resched");
    store
        .prepare(&dest, &m, Duration::ZERO)
        .await
        .expect("prepare");
    wait_due().await;
    let claimed = store.claim_due(1, LONG).await.expect("claim");
    let token = claimed[0].token;
    let wrong = ferry_core::tx::TxToken(token.0.wrapping_add(1));
    let update = |checks| Reschedule {
        state: TxState::Prepared,
        checks,
        due_at: SystemTime::now() + Duration::from_secs(600),
        error: Some(format!("unknown {checks}")),
    };
    let err = store
        .reschedule(m.id(), wrong, update(9))
        .await
        .expect_err("wrong token");
    assert_eq!(err.kind(), ErrorKind::StaleReceipt);
    store
        .reschedule(m.id(), token, update(3))
        .await
        .expect("reschedule");
    let got = store.get(m.id()).await.expect("get");
    assert_eq!(got.checks, 3);
    assert_eq!(got.last_error.as_deref(), Some("unknown 3"));
    assert!(got.due_at > SystemTime::now() + Duration::from_secs(500));
    assert!(store.claim_due(10, LONG).await.expect("claim").is_empty());
    store.remove(m.id()).await.expect("remove");
    let err = store
        .reschedule(m.id(), token, update(4))
        .await
        .expect_err("gone");
    assert_eq!(err.kind(), ErrorKind::MessageNotFound);
}

/// `mark_committed` applies whoever holds the record: it fences out an earlier claim
/// (so that checker cannot remove a committed record) and makes it due at `retry_at`.
pub async fn tx_mark_committed_applies_to_any_holder(store: Arc<dyn TxStore>) {
    let dest = queue();
    let m = msg("commit");
    store
        .prepare(&dest, &m, Duration::ZERO)
        .await
        .expect("prepare");
    wait_due().await;
    let claim = store.claim_due(10, LONG).await.expect("claim");
    assert_eq!(claim.len(), 1);
    store
        .mark_committed(&dest, &m, SystemTime::now(), "broker down")
        .await
        .expect("mark");
    let got = store.get(m.id()).await.expect("get");
    assert_eq!(got.state, TxState::Committed);
    assert_eq!(got.last_error.as_deref(), Some("broker down"));
    let err = store
        .remove_claimed(m.id(), claim[0].token)
        .await
        .expect_err("the earlier claim is fenced out");
    assert_eq!(err.kind(), ErrorKind::StaleReceipt, "{err}");
    wait_due().await;
    let claimed = store.claim_due(10, LONG).await.expect("claim");
    assert_eq!(claimed.len(), 1, "due at retry_at");
    assert_eq!(claimed[0].prepared.state, TxState::Committed);
    store
        .remove_claimed(m.id(), claimed[0].token)
        .await
        .expect("the new claim removes it");
    assert_eq!(store.count().await.expect("count"), 0);
}

/// A record a checker already removed is stored again by `mark_committed`, so a
/// committed message always has an owner.
pub async fn tx_mark_committed_restores_a_removed_record(store: Arc<dyn TxStore>) {
    let dest = queue();
    let m = msg("restore").with_header("k", "v");
    store.prepare(&dest, &m, LONG).await.expect("prepare");
    assert!(store.remove(m.id()).await.expect("remove"));
    store
        .mark_committed(&dest, &m, SystemTime::now(), "publish failed")
        .await
        .expect("mark");
    let got = store.get(m.id()).await.expect("stored again");
    assert_eq!(got.state, TxState::Committed);
    assert_eq!(got.message, m);
    assert_eq!(got.destination, dest);
    let err = store
        .remove_claimed(m.id(), ferry_core::tx::TxToken(fastrand::i64(1..)))
        .await
        .expect_err("a wrong token removes nothing");
    assert_eq!(err.kind(), ErrorKind::StaleReceipt, "{err}");
    assert!(store.remove(m.id()).await.expect("remove"));
    let err = store
        .remove_claimed(m.id(), ferry_core::tx::TxToken(1))
        .await
        .expect_err("gone");
    assert_eq!(err.kind(), ErrorKind::MessageNotFound, "{err}");
}

/// `list` pages oldest prepared first; `count` counts.
pub async fn tx_list_pages_oldest_first(store: Arc<dyn TxStore>) {
    let dest = queue();
    let mut ids = Vec::new();
    for i in 0..5 {
        let m = msg(&format!("l{i}"));
        store.prepare(&dest, &m, LONG).await.expect("prepare");
        ids.push(m.id().to_string());
        tokio::time::sleep(Duration::from_millis(3)).await;
    }
    assert_eq!(store.count().await.expect("count"), 5);
    let page: Vec<String> = store
        .list(1, 3)
        .await
        .expect("list")
        .iter()
        .map(|p| p.id().to_string())
        .collect();
    assert_eq!(page, ids[1..4]);
}

/// Runs the whole [`TxStore`] suite as `#[tokio::test]`s; `$setup` is evaluated once
/// per test and must give a fresh, empty store.
#[macro_export]
macro_rules! tx_store_suite {
    ($setup:expr) => {
        $crate::tx_store_suite!(@each $setup;
            tx_prepare_get_remove, tx_prepare_twice_is_already_exists,
            tx_record_keeps_every_field, tx_hold_renews_and_is_fenced_by_claims,
            tx_claim_takes_only_due_records_oldest_first, tx_concurrent_claims_are_disjoint,
            tx_claim_expires_and_record_comes_back, tx_reschedule_is_fenced,
            tx_mark_committed_applies_to_any_holder, tx_mark_committed_restores_a_removed_record,
            tx_list_pages_oldest_first
        );
    };
    (@each $setup:expr; $($name:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                let store: ::std::sync::Arc<dyn $crate::__private::TxStore> = $setup.await;
                $crate::tx::$name(store).await;
            }
        )*
    };
}
