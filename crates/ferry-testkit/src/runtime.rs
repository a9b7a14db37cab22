//! The consumer runtime's guarantees, run against a real driver: the same scenarios
//! `ferry-core` unit-tests on the memory driver, here for every backend (retries are
//! durable driver calls, so each backend must get them right), plus the contract of
//! idempotency stores.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use ferry_core::consumer::DeadLetterEvent;
use ferry_core::{
    Backoff, Claim, ClaimToken, Consumer, DeadLetterQuery, Delivery, Driver, ErrorKind,
    IdempotencyStore, Message, Outcome, QueueName, QueueOptions, ReceiveOptions, RetryPolicy,
    reason,
};

use crate::util::{unique_name, unique_queue};

fn fast(max: u32) -> RetryPolicy {
    RetryPolicy::default()
        .with_max_attempts(max)
        .with_backoff(Backoff::Fixed(Duration::from_millis(10)))
}

async fn queue_with(d: &dyn Driver, n: usize) -> QueueName {
    let q = unique_queue("rt");
    d.create_queue(&q, QueueOptions::default())
        .await
        .expect("create");
    let batch = (0..n).map(|i| Message::new(format!("{i}")).with_id(format!("m{i}")));
    d.send(&q, batch.collect()).await.expect("send");
    q
}

/// Failures are retried durably and then succeed; the last failure dead-letters with
/// the handler's error; a panic counts as a failed attempt; other messages keep flowing.
pub async fn retries_dead_letters_and_panics(d: Arc<dyn Driver>) {
    let q = queue_with(&*d, 6).await;
    let report = Consumer::builder(q.clone())
        .concurrency(3)
        .retry_policy(fast(3))
        .until_empty(true)
        .build(d.clone(), |del: Delivery| async move {
            match del.id.as_str() {
                "m0" => panic!("always panics"),
                "m1" => Outcome::fail("always fails"),
                "m2" if del.attempt < 2 => Outcome::fail("fails once"),
                _ => Outcome::Ack,
            }
        })
        .run(std::future::pending())
        .await
        .expect("run");
    assert_eq!(report.acked, 4);
    assert_eq!(report.dead_lettered, 2);
    assert_eq!(report.panicked, 3);
    let dead = d
        .list_dead_letters(&q, DeadLetterQuery::default())
        .await
        .expect("list");
    let mut ids: Vec<&str> = dead.iter().map(|x| x.id.as_str()).collect();
    ids.sort();
    assert_eq!(ids, ["m0", "m1"]);
    for x in &dead {
        assert_eq!(x.reason, reason::MAX_ATTEMPTS);
        assert_eq!(x.attempts, 3);
        assert!(x.last_error.is_some());
    }
    assert!(d.stats(Some(&q)).await.expect("stats")[0].is_drained());
}

/// A handler that hangs is timed out, retried, and finally dead-lettered as `timeout`.
pub async fn hanging_handler_times_out(d: Arc<dyn Driver>) {
    let q = queue_with(&*d, 1).await;
    let report = Consumer::builder(q.clone())
        .retry_policy(fast(2))
        .timeout(Duration::from_millis(100))
        .until_empty(true)
        .build(d.clone(), |_d: Delivery| async {
            tokio::time::sleep(Duration::from_secs(3600)).await;
        })
        .run(std::future::pending())
        .await
        .expect("run");
    assert_eq!((report.timed_out, report.dead_lettered), (2, 1));
    let dl = d.get_dead_letter(&q, "m0").await.expect("dead letter");
    assert_eq!(dl.reason, reason::TIMEOUT);
}

/// Work cut short by shutdown goes back at once and its attempt is not counted.
pub async fn shutdown_releases_without_counting(d: Arc<dyn Driver>) {
    let q = queue_with(&*d, 1).await;
    let started = Arc::new(tokio::sync::Notify::new());
    let s = started.clone();
    let report = Consumer::builder(q.clone())
        .grace(Duration::from_millis(100))
        .build(d.clone(), move |_d: Delivery| {
            let s = s.clone();
            async move {
                s.notify_one();
                tokio::time::sleep(Duration::from_secs(3600)).await;
            }
        })
        .run(async move { started.notified().await })
        .await
        .expect("run");
    assert_eq!(report.released, 1);
    let again = d
        .receive(&q, ReceiveOptions::max(1))
        .await
        .expect("receive");
    assert_eq!(again.len(), 1, "ready again at once");
    assert_eq!(again[0].attempt, 1, "not counted");
}

/// With the backend's idempotency store, work already done is acked without running
/// the handler, and the dead-letter hook sees every dead letter.
pub async fn idempotency_and_fail_hook(d: Arc<dyn Driver>) {
    let store = d
        .idempotency_store()
        .expect("backend has an idempotency store");
    let q = queue_with(&*d, 3).await;
    let done_key = format!("{q}/m1");
    let Claim::Acquired(t) = store
        .claim(&done_key, Duration::from_secs(5))
        .await
        .expect("claim")
    else {
        panic!("fresh key")
    };
    store
        .complete(&done_key, t, Duration::from_secs(60))
        .await
        .expect("complete");
    let runs = Arc::new(AtomicU32::new(0));
    let hooked = Arc::new(AtomicU32::new(0));
    let (r, h) = (runs.clone(), hooked.clone());
    let report = Consumer::builder(q.clone())
        .idempotency(store.clone())
        .retry_policy(fast(1))
        .on_dead_letter(move |_e: DeadLetterEvent| {
            let h = h.clone();
            async move {
                h.fetch_add(1, Ordering::SeqCst);
                Ok::<(), std::io::Error>(())
            }
        })
        .until_empty(true)
        .build(d.clone(), move |del: Delivery| {
            let r = r.clone();
            async move {
                r.fetch_add(1, Ordering::SeqCst);
                if del.id == "m2" {
                    Outcome::reject("bad")
                } else {
                    Outcome::Ack
                }
            }
        })
        .run(std::future::pending())
        .await
        .expect("run");
    assert_eq!(runs.load(Ordering::SeqCst), 2, "m1 was done already");
    assert_eq!(
        (report.acked, report.duplicates, report.dead_lettered),
        (1, 1, 1)
    );
    assert_eq!(hooked.load(Ordering::SeqCst), 1);
    let key0 = format!("{q}/m0");
    assert_eq!(
        store
            .claim(&key0, Duration::from_secs(5))
            .await
            .expect("claim"),
        Claim::Done
    );
}

fn token(c: Claim) -> ClaimToken {
    match c {
        Claim::Acquired(t) | Claim::Suspect(t) => t,
        other => panic!("expected a claim, got {other:?}"),
    }
}

/// The contract of an [`IdempotencyStore`]: claim, busy, done, expiry into suspect,
/// fencing of stale tokens, release, and done keys expiring after their retention.
pub async fn idempotency_store_contract(s: Arc<dyn IdempotencyStore>) {
    const LEASE: Duration = Duration::from_secs(30);
    let k = unique_name("idem");
    let t = token(s.claim(&k, LEASE).await.expect("claim"));
    assert!(matches!(
        s.claim(&k, LEASE).await.expect("claim"),
        Claim::Busy { .. }
    ));
    s.extend(&k, t, LEASE).await.expect("extend");
    s.complete(&k, t, Duration::from_secs(60))
        .await
        .expect("complete");
    assert_eq!(s.claim(&k, LEASE).await.expect("claim"), Claim::Done);

    let k = unique_name("idem");
    let old = token(s.claim(&k, Duration::from_millis(1)).await.expect("claim"));
    tokio::time::sleep(Duration::from_millis(20)).await;
    let new = s.claim(&k, LEASE).await.expect("claim");
    assert!(
        matches!(new, Claim::Suspect(_)),
        "expired claim is suspect: {new:?}"
    );
    assert_eq!(
        s.complete(&k, old, LEASE)
            .await
            .expect_err("stale complete")
            .kind(),
        ErrorKind::StaleReceipt
    );
    assert_eq!(
        s.extend(&k, old, LEASE)
            .await
            .expect_err("stale extend")
            .kind(),
        ErrorKind::StaleReceipt
    );
    s.release(&k, old)
        .await
        .expect("a stale release is a no-op");
    assert!(matches!(
        s.claim(&k, LEASE).await.expect("claim"),
        Claim::Busy { .. }
    ));
    s.release(&k, token(new)).await.expect("release");
    let t = token(s.claim(&k, LEASE).await.expect("claim after release"));
    s.complete(&k, t, Duration::from_millis(1))
        .await
        .expect("complete");
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert!(
        matches!(s.claim(&k, LEASE).await.expect("claim"), Claim::Acquired(_)),
        "done keys expire after their retention"
    );
}

/// Stamps out the runtime scenarios as tests; `$setup` is an async expression giving
/// an `Arc<dyn Driver>` whose `idempotency_store()` is `Some`.
#[macro_export]
macro_rules! runtime_suite {
    ($setup:expr) => {
        $crate::runtime_suite!(@each $setup;
            retries_dead_letters_and_panics, hanging_handler_times_out,
            shutdown_releases_without_counting, idempotency_and_fail_hook
        );
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn idempotency_store_contract() {
            let driver: ::std::sync::Arc<dyn $crate::__private::Driver> = $setup.await;
            let store = driver.idempotency_store().expect("backend has an idempotency store");
            $crate::runtime::idempotency_store_contract(store).await;
        }
    };
    (@each $setup:expr; $($name:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                let driver: ::std::sync::Arc<dyn $crate::__private::Driver> = $setup.await;
                $crate::runtime::$name(driver).await;
            }
        )*
    };
}
