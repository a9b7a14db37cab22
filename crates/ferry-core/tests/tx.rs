//! Two-phase sends and the checker on the in-memory driver and store: every branch of
//! prepare → local transaction → commit / roll back / in doubt, and every answer of the
//! check-back. Crash behaviour with real processes is tested in `ferry-postgres`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use ferry_core::tx::{
    Destination, LocalTxError, MemoryTxStore, Prepared, SendTxError, TxChecker, TxState, TxStatus,
    TxStore,
};
use ferry_core::{
    Backoff, DeadLetterQuery, DeadLetters, Driver, MemoryDriver, Message, Producer, QueueName,
    QueueOptions, ReceiveOptions, TopicName, Topology,
};

/// Long enough that a loaded 2-core machine renews it in time (every third of it).
const HOLD: Duration = Duration::from_millis(600);

async fn setup() -> (Arc<MemoryDriver>, QueueName, Arc<MemoryTxStore>, Producer) {
    let driver = Arc::new(MemoryDriver::new());
    let q = QueueName::new("orders").expect("name");
    driver
        .create_queue(&q, QueueOptions::default())
        .await
        .expect("create");
    let store = Arc::new(MemoryTxStore::new());
    let producer = Producer::new(driver.clone()).with_tx_hold(HOLD);
    (driver, q, store, producer)
}

async fn ids(driver: &MemoryDriver, q: &QueueName) -> Vec<String> {
    driver
        .receive(q, ReceiveOptions::max(100))
        .await
        .expect("receive")
        .into_iter()
        .map(|d| d.id)
        .collect()
}

fn fast(
    store: Arc<MemoryTxStore>,
    driver: Arc<MemoryDriver>,
    answer: impl Fn(&Prepared) -> TxStatus + Send + Sync + 'static,
) -> TxChecker {
    let answer = Arc::new(answer);
    TxChecker::builder(store, driver, move |p: Prepared| {
        let answer = answer.clone();
        async move { answer(&p) }
    })
    .backoff(Backoff::Fixed(Duration::ZERO))
    .max_checks(3)
    .build()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn committed_transaction_publishes_and_forgets_the_record() {
    let (driver, q, store, producer) = setup().await;
    let sent = producer
        .send_tx(
            store.as_ref(),
            Destination::queue(q.clone()),
            Message::new("created").with_id("order-1"),
            async { Ok::<_, LocalTxError>("row 1") },
        )
        .await
        .expect("send_tx");
    assert!(sent.is_published());
    assert_eq!(sent.into_value(), "row 1");
    assert_eq!(ids(&driver, &q).await, ["order-1"]);
    assert_eq!(store.count().await.expect("count"), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rolled_back_transaction_sends_nothing_and_keeps_nothing() {
    let (driver, q, store, producer) = setup().await;
    let err = producer
        .send_tx(
            store.as_ref(),
            Destination::queue(q.clone()),
            Message::new("created"),
            async { Err::<(), _>(LocalTxError::rolled_back("insufficient stock")) },
        )
        .await
        .expect_err("rolled back");
    assert!(matches!(err, SendTxError::RolledBack(_)), "{err}");
    assert!(ids(&driver, &q).await.is_empty());
    assert_eq!(store.count().await.expect("count"), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_doubt_commit_is_resolved_by_the_check_back() {
    let (driver, q, store, producer) = setup().await;
    for id in ["yes", "no"] {
        let err = producer
            .send_tx(
                store.as_ref(),
                Destination::queue(q.clone()),
                Message::new(id).with_id(id),
                async {
                    Err::<(), _>(std::io::Error::other("connection lost during COMMIT").into())
                },
            )
            .await
            .expect_err("in doubt");
        assert!(matches!(err, SendTxError::InDoubt(_)), "{err}");
    }
    assert_eq!(
        store.count().await.expect("count"),
        2,
        "both wait for the checker"
    );
    let checker = fast(store.clone(), driver.clone(), |p| match p.id() {
        "yes" => TxStatus::Committed,
        _ => TxStatus::RolledBack,
    });
    // Not due until the hold ran out.
    assert_eq!(checker.run_once().await.expect("round").claimed, 0);
    tokio::time::sleep(HOLD + Duration::from_millis(100)).await;
    let report = checker.run_once().await.expect("round");
    assert_eq!((report.published, report.rolled_back), (1, 1));
    assert_eq!(ids(&driver, &q).await, ["yes"]);
    assert_eq!(store.count().await.expect("count"), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_publish_after_commit_is_deferred_to_the_checker_without_a_check_back() {
    let (driver, _, store, producer) = setup().await;
    let missing = QueueName::new("not-yet").expect("name");
    let sent = producer
        .send_tx(
            store.as_ref(),
            Destination::queue(missing.clone()),
            Message::new("x").with_id("late"),
            async { Ok::<_, LocalTxError>(()) },
        )
        .await
        .expect("committed");
    assert!(!sent.is_published(), "never reported as published");
    let record = store.get("late").await.expect("record stays");
    assert_eq!(record.state, TxState::Committed);
    assert!(record.last_error.is_some());

    driver
        .create_queue(&missing, QueueOptions::default())
        .await
        .expect("create");
    let asked = Arc::new(AtomicU32::new(0));
    let counter = asked.clone();
    let checker = fast(store.clone(), driver.clone(), move |_| {
        counter.fetch_add(1, Ordering::SeqCst);
        TxStatus::RolledBack
    });
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let report = checker.run_once().await.expect("round");
    assert_eq!(report.published, 1);
    assert_eq!(
        asked.load(Ordering::SeqCst),
        0,
        "a committed record needs no check-back"
    );
    assert_eq!(ids(&driver, &missing).await, ["late"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transaction_longer_than_the_hold_is_never_checked_behind_its_back() {
    let (driver, q, store, producer) = setup().await;
    let asked = Arc::new(AtomicU32::new(0));
    let counter = asked.clone();
    let checker = Arc::new(fast(store.clone(), driver.clone(), move |_| {
        counter.fetch_add(1, Ordering::SeqCst);
        TxStatus::RolledBack
    }));
    let stop = Arc::new(tokio::sync::Notify::new());
    let running = {
        let (checker, stop) = (checker.clone(), stop.clone());
        tokio::spawn(async move {
            loop {
                checker.run_once().await.expect("round");
                tokio::select! {
                    () = stop.notified() => return,
                    () = tokio::time::sleep(Duration::from_millis(5)) => {}
                }
            }
        })
    };
    // Four holds long.
    producer
        .send_tx(
            store.as_ref(),
            Destination::queue(q.clone()),
            Message::new("slow").with_id("slow"),
            async {
                tokio::time::sleep(HOLD * 4).await;
                Ok::<_, LocalTxError>(())
            },
        )
        .await
        .expect("send_tx");
    stop.notify_one();
    running.await.expect("checker");
    assert_eq!(asked.load(Ordering::SeqCst), 0, "the hold was renewed");
    assert_eq!(ids(&driver, &q).await, ["slow"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_answers_are_retried_then_dead_lettered() {
    let (driver, q, store, _) = setup().await;
    store
        .prepare(
            &Destination::queue(q.clone()),
            &Message::new("who knows").with_id("doubt"),
            Duration::ZERO,
        )
        .await
        .expect("prepare");
    let checker = fast(store.clone(), driver.clone(), |_| TxStatus::Unknown);
    let mut total = ferry_core::tx::TxCheckReport::default();
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_millis(5)).await;
        total += checker.run_once().await.expect("round");
    }
    assert_eq!((total.unknown, total.dead_lettered), (2, 1), "{total:?}");
    assert_eq!(
        store.count().await.expect("count"),
        0,
        "not orphaned in the store"
    );
    let dead = driver
        .list_dead_letters(&q, DeadLetterQuery::default())
        .await
        .expect("dead letters");
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].id, "doubt");
    assert_eq!(dead[0].reason, ferry_core::reason::TX_CHECK_EXHAUSTED);
    assert_eq!(dead[0].payload.as_ref(), b"who knows");
    assert!(ids(&driver, &q).await.is_empty(), "not delivered");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_check_back_counts_as_unknown() {
    let (driver, q, store, _) = setup().await;
    store
        .prepare(
            &Destination::queue(q.clone()),
            &Message::new("p").with_id("boom"),
            Duration::ZERO,
        )
        .await
        .expect("prepare");
    let checker = fast(store.clone(), driver.clone(), |_| {
        panic!("bug in check-back")
    });
    tokio::time::sleep(Duration::from_millis(5)).await;
    let report = checker.run_once().await.expect("round");
    assert_eq!(report.unknown, 1);
    assert_eq!(store.get("boom").await.expect("kept").checks, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topic_destinations_publish_and_dead_letter_into_every_bound_queue() {
    let (driver, q, store, producer) = setup().await;
    let audit = QueueName::new("audit").expect("name");
    driver
        .create_queue(&audit, QueueOptions::default())
        .await
        .expect("create");
    let topic = TopicName::new("orders").expect("topic");
    driver.create_topic(&topic).await.expect("topic");
    driver.bind(&topic, &q, "order.*").await.expect("bind");
    driver.bind(&topic, &audit, "#").await.expect("bind");
    let dest = Destination::topic(topic, "order.created").expect("dest");
    producer
        .send_tx(
            store.as_ref(),
            dest.clone(),
            Message::new("o").with_id("t-1"),
            async { Ok::<_, LocalTxError>(()) },
        )
        .await
        .expect("send_tx");
    assert_eq!(ids(&driver, &q).await, ["t-1"]);
    assert_eq!(ids(&driver, &audit).await, ["t-1"]);

    store
        .prepare(&dest, &Message::new("o").with_id("t-2"), Duration::ZERO)
        .await
        .expect("prepare");
    let checker = TxChecker::builder(store.clone(), driver.clone(), |_: Prepared| async {
        TxStatus::Unknown
    })
    .max_checks(1)
    .build();
    tokio::time::sleep(Duration::from_millis(5)).await;
    assert_eq!(checker.run_once().await.expect("round").dead_lettered, 1);
    for queue in [&q, &audit] {
        let dead = driver
            .list_dead_letters(queue, DeadLetterQuery::default())
            .await
            .expect("dead");
        assert_eq!(dead.len(), 1, "{queue}");
        assert_eq!(dead[0].route_key.as_deref(), Some("order.created"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_checkers_share_the_work_and_publish_each_message_once() {
    let (driver, q, store, _) = setup().await;
    for i in 0..60 {
        store
            .prepare(
                &Destination::queue(q.clone()),
                &Message::new("x").with_id(format!("m{i}")),
                Duration::ZERO,
            )
            .await
            .expect("prepare");
    }
    tokio::time::sleep(Duration::from_millis(5)).await;
    let a = Arc::new(fast(store.clone(), driver.clone(), |_| TxStatus::Committed));
    let b = Arc::new(fast(store.clone(), driver.clone(), |_| TxStatus::Committed));
    let (ra, rb) = tokio::join!(
        tokio::spawn(async move { a.run_once().await }),
        tokio::spawn(async move { b.run_once().await })
    );
    let published = ra.expect("a").expect("a").published + rb.expect("b").expect("b").published;
    assert_eq!(published, 60);
    let stats = driver.stats(Some(&q)).await.expect("stats");
    assert_eq!(stats[0].ready, 60);
}

/// A store whose hold renewals fail, as when a live producer cannot reach it.
#[derive(Debug)]
struct Unreachable(Arc<MemoryTxStore>);

#[async_trait::async_trait]
impl TxStore for Unreachable {
    async fn prepare(
        &self,
        d: &Destination,
        m: &Message,
        hold: Duration,
    ) -> ferry_core::Result<ferry_core::tx::TxToken> {
        self.0.prepare(d, m, hold).await
    }
    async fn hold(
        &self,
        _: &str,
        _: ferry_core::tx::TxToken,
        _: Duration,
    ) -> ferry_core::Result<()> {
        Err(ferry_core::Error::new(
            ferry_core::ErrorKind::Unavailable,
            "store unreachable",
        ))
    }
    async fn mark_committed(
        &self,
        d: &Destination,
        m: &Message,
        at: std::time::SystemTime,
        e: &str,
    ) -> ferry_core::Result<()> {
        self.0.mark_committed(d, m, at, e).await
    }
    async fn remove(&self, id: &str) -> ferry_core::Result<bool> {
        self.0.remove(id).await
    }
    async fn remove_claimed(&self, id: &str, t: ferry_core::tx::TxToken) -> ferry_core::Result<()> {
        self.0.remove_claimed(id, t).await
    }
    async fn claim_due(
        &self,
        max: usize,
        lease: Duration,
    ) -> ferry_core::Result<Vec<ferry_core::tx::Claimed>> {
        self.0.claim_due(max, lease).await
    }
    async fn reschedule(
        &self,
        id: &str,
        t: ferry_core::tx::TxToken,
        u: ferry_core::tx::Reschedule,
    ) -> ferry_core::Result<()> {
        self.0.reschedule(id, t, u).await
    }
    async fn get(&self, id: &str) -> ferry_core::Result<Prepared> {
        self.0.get(id).await
    }
    async fn list(&self, o: u64, l: u64) -> ferry_core::Result<Vec<Prepared>> {
        self.0.list(o, l).await
    }
    async fn count(&self) -> ferry_core::Result<u64> {
        self.0.count().await
    }
}

/// The old bus's loss: a live producer's slow transaction is checked behind its back
/// (its hold lapsed), the check-back sees no row yet and answers "rolled back", the
/// record is removed; then the transaction commits and the publish fails. The message
/// must still have an owner and go out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lapsed_hold_and_a_failed_publish_still_deliver_the_committed_message() {
    let (driver, _, store, producer) = setup().await;
    let later_queue = QueueName::new("created-later").expect("name");
    let checker = fast(store.clone(), driver.clone(), |_| TxStatus::RolledBack);
    let sent = producer
        .send_tx(
            &Unreachable(store.clone()),
            Destination::queue(later_queue.clone()),
            Message::new("x").with_id("slow-commit"),
            async {
                tokio::time::sleep(HOLD + Duration::from_millis(200)).await;
                let round = checker.run_once().await.expect("round");
                assert_eq!(
                    round.rolled_back, 1,
                    "the checker wrongly dropped the record"
                );
                Ok::<_, LocalTxError>(())
            },
        )
        .await
        .expect("committed");
    assert!(!sent.is_published(), "the queue does not exist yet");
    assert_eq!(
        store.get("slow-commit").await.expect("owned again").state,
        TxState::Committed
    );
    driver
        .create_queue(&later_queue, QueueOptions::default())
        .await
        .expect("create");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(checker.run_once().await.expect("round").published, 1);
    assert_eq!(ids(&driver, &later_queue).await, ["slow-commit"]);
}

/// A checker whose claim was overtaken by the producer's commit (the record marked
/// committed while the check-back ran) must not remove it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_during_the_check_back_is_not_removed_by_the_checker() {
    let (driver, q, store, _) = setup().await;
    let dest = Destination::queue(q.clone());
    let message = Message::new("x").with_id("raced");
    store
        .prepare(&dest, &message, Duration::ZERO)
        .await
        .expect("prepare");
    let racing = store.clone();
    let checker = TxChecker::builder(store.clone(), driver.clone(), move |p: Prepared| {
        let (store, dest) = (racing.clone(), dest.clone());
        async move {
            // The producer commits and its publish fails while we look.
            store
                .mark_committed(
                    &dest,
                    &p.message,
                    std::time::SystemTime::now(),
                    "broker down",
                )
                .await
                .expect("mark");
            TxStatus::RolledBack
        }
    })
    .build();
    tokio::time::sleep(Duration::from_millis(5)).await;
    let report = checker.run_once().await.expect("round");
    assert_eq!((report.rolled_back, report.lost), (0, 1), "{report:?}");
    assert_eq!(
        store.get("raced").await.expect("kept").state,
        TxState::Committed
    );
    let report = checker.run_once().await.expect("round");
    assert_eq!(report.published, 1);
    assert_eq!(ids(&driver, &q).await, ["raced"]);
}
