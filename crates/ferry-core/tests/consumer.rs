//! The consumer runtime over the in-memory driver: every failure mode of a handler ends
//! as a durable retry or a dead letter with its reason, never as a lost message.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::time::Duration;

use ferry_core::consumer::DeadLetterEvent;
use ferry_core::{
    Backoff, Claim, Consumer, DeadLetterQuery, DeadLetters, Delivery, Driver, IdempotencyStore,
    MemoryDriver, MemoryIdempotencyStore, Message, Outcome, QueueName, QueueOptions, RetryPolicy,
    Topology, reason,
};

fn fast_retry(max: u32) -> RetryPolicy {
    RetryPolicy::default()
        .with_max_attempts(max)
        .with_backoff(Backoff::Fixed(Duration::from_millis(10)))
}

async fn setup(n: usize) -> (Arc<MemoryDriver>, QueueName) {
    let d = Arc::new(MemoryDriver::new());
    let q = QueueName::new("work").expect("name");
    d.create_queue(&q, QueueOptions::default())
        .await
        .expect("create");
    let batch = (0..n).map(|i| Message::new(format!("{i}")).with_id(format!("m{i}")));
    d.send(&q, batch.collect()).await.expect("send");
    (d, q)
}

async fn dead(d: &MemoryDriver, q: &QueueName) -> Vec<ferry_core::DeadLetter> {
    d.list_dead_letters(q, DeadLetterQuery::default())
        .await
        .expect("list")
}

#[tokio::test]
async fn success_acks_everything() {
    let (d, q) = setup(50).await;
    let report = Consumer::builder(q.clone())
        .concurrency(4)
        .until_empty(true)
        .build(d.clone(), |_d: Delivery| async {})
        .run(std::future::pending())
        .await
        .expect("run");
    assert_eq!(
        (
            report.received,
            report.acked,
            report.retried,
            report.dead_lettered
        ),
        (50, 50, 0, 0)
    );
    assert!(d.stats(Some(&q)).await.expect("stats")[0].is_drained());
}

#[tokio::test]
async fn failure_is_retried_then_succeeds() {
    let (d, q) = setup(10).await;
    let report = Consumer::builder(q.clone())
        .retry_policy(fast_retry(5))
        .until_empty(true)
        .build(d.clone(), |del: Delivery| async move {
            if del.attempt == 1 {
                Err("first try fails")
            } else {
                Ok(())
            }
        })
        .run(std::future::pending())
        .await
        .expect("run");
    assert_eq!(
        (report.acked, report.retried, report.dead_lettered),
        (10, 10, 0)
    );
}

#[tokio::test]
async fn last_attempt_dead_letters_with_the_error() {
    let (d, q) = setup(3).await;
    let report = Consumer::builder(q.clone())
        .retry_policy(fast_retry(3))
        .until_empty(true)
        .build(d.clone(), |del: Delivery| async move {
            Err::<(), _>(format!("cannot process {}", del.id))
        })
        .run(std::future::pending())
        .await
        .expect("run");
    assert_eq!(
        (report.received, report.retried, report.dead_lettered),
        (9, 6, 3)
    );
    let dl = dead(&d, &q).await;
    assert_eq!(dl.len(), 3);
    for x in &dl {
        assert_eq!(x.reason, reason::MAX_ATTEMPTS);
        assert_eq!(x.attempts, 3);
        assert_eq!(
            x.last_error.as_deref(),
            Some(format!("cannot process {}", x.id).as_str())
        );
    }
}

#[tokio::test]
async fn queue_max_attempts_applies_without_a_policy_max() {
    let d = Arc::new(MemoryDriver::new());
    let q = QueueName::new("work").expect("name");
    d.create_queue(&q, QueueOptions::default().with_max_attempts(2))
        .await
        .expect("create");
    d.send(&q, vec![Message::new("x")]).await.expect("send");
    let report = Consumer::builder(q.clone())
        .retry_policy(RetryPolicy::default().with_backoff(Backoff::Fixed(Duration::from_millis(5))))
        .until_empty(true)
        .build(d.clone(), |_d: Delivery| async { Err::<(), _>("no") })
        .run(std::future::pending())
        .await
        .expect("run");
    assert_eq!((report.received, report.dead_lettered), (2, 1));
}

#[tokio::test]
async fn panic_is_a_failed_attempt_and_the_worker_survives() {
    let (d, q) = setup(5).await;
    let report = Consumer::builder(q.clone())
        .retry_policy(fast_retry(2))
        .until_empty(true)
        .build(d.clone(), |del: Delivery| async move {
            if del.id == "m2" {
                panic!("handler bug on {}", del.id);
            }
        })
        .run(std::future::pending())
        .await
        .expect("run");
    assert_eq!(
        (report.acked, report.panicked, report.dead_lettered),
        (4, 2, 1)
    );
    let dl = dead(&d, &q).await;
    assert!(
        dl[0]
            .last_error
            .as_deref()
            .is_some_and(|e| e.contains("handler bug on m2")),
        "{dl:?}"
    );
}

#[tokio::test]
async fn timeout_fails_the_attempt() {
    let (d, q) = setup(1).await;
    let report = Consumer::builder(q.clone())
        .retry_policy(fast_retry(2))
        .timeout(Duration::from_millis(50))
        .until_empty(true)
        .build(d.clone(), |_d: Delivery| async {
            tokio::time::sleep(Duration::from_secs(30)).await;
        })
        .run(std::future::pending())
        .await
        .expect("run");
    assert_eq!((report.timed_out, report.dead_lettered), (2, 1));
    let dl = dead(&d, &q).await;
    assert_eq!(dl[0].reason, reason::TIMEOUT);
    assert!(
        dl[0]
            .last_error
            .as_deref()
            .is_some_and(|e| e.contains("timed out"))
    );
}

#[tokio::test]
async fn reject_dead_letters_at_once() {
    let (d, q) = setup(1).await;
    let report = Consumer::builder(q.clone())
        .until_empty(true)
        .build(d.clone(), |_d: Delivery| async {
            Outcome::reject("malformed order")
        })
        .run(std::future::pending())
        .await
        .expect("run");
    assert_eq!((report.received, report.dead_lettered), (1, 1));
    assert_eq!(dead(&d, &q).await[0].reason, reason::REJECTED);
}

#[tokio::test]
async fn custom_backoff_none_stops_retrying() {
    let (d, q) = setup(1).await;
    let policy = RetryPolicy::default().with_backoff(Backoff::Custom(Arc::new(|attempt| {
        (attempt < 2).then_some(Duration::from_millis(5))
    })));
    let report = Consumer::builder(q.clone())
        .retry_policy(policy)
        .until_empty(true)
        .build(d.clone(), |_d: Delivery| async { Err::<(), _>("x") })
        .run(std::future::pending())
        .await
        .expect("run");
    assert_eq!((report.received, report.dead_lettered), (2, 1));
}

#[tokio::test]
async fn lease_is_extended_while_the_handler_runs() {
    let (d, q) = setup(1).await;
    let report = Consumer::builder(q.clone())
        .lease(Duration::from_millis(150))
        .concurrency(2)
        .until_empty(true)
        .build(d.clone(), |_d: Delivery| async {
            tokio::time::sleep(Duration::from_millis(700)).await;
        })
        .run(std::future::pending())
        .await
        .expect("run");
    assert_eq!(
        (report.received, report.acked, report.settle_errors),
        (1, 1, 0),
        "no redelivery while extended"
    );
}

#[tokio::test]
async fn concurrency_is_bounded() {
    let (d, q) = setup(40).await;
    let running = Arc::new(AtomicUsize::new(0));
    let peak = Arc::new(AtomicUsize::new(0));
    let (r, p) = (running.clone(), peak.clone());
    Consumer::builder(q.clone())
        .concurrency(3)
        .prefetch(10)
        .until_empty(true)
        .build(d.clone(), move |_d: Delivery| {
            let (r, p) = (r.clone(), p.clone());
            async move {
                let now = r.fetch_add(1, Ordering::SeqCst) + 1;
                p.fetch_max(now, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(5)).await;
                r.fetch_sub(1, Ordering::SeqCst);
            }
        })
        .run(std::future::pending())
        .await
        .expect("run");
    assert_eq!(peak.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn shutdown_lets_running_handlers_finish() {
    let (d, q) = setup(1).await;
    let started = Arc::new(tokio::sync::Notify::new());
    let s = started.clone();
    let consumer = Consumer::builder(q.clone()).build(d.clone(), move |_d: Delivery| {
        let s = s.clone();
        async move {
            s.notify_one();
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    });
    let report = consumer
        .run(async move { started.notified().await })
        .await
        .expect("run");
    assert_eq!(
        report.acked, 1,
        "the running handler finished and was acked"
    );
    assert!(d.stats(Some(&q)).await.expect("stats")[0].is_drained());
}

#[tokio::test]
async fn handlers_past_the_grace_period_hand_their_message_back() {
    let (d, q) = setup(1).await;
    let started = Arc::new(tokio::sync::Notify::new());
    let calls = Arc::new(AtomicU32::new(0));
    let (s, c) = (started.clone(), calls.clone());
    let report = Consumer::builder(q.clone())
        .grace(Duration::from_millis(100))
        .build(d.clone(), move |_d: Delivery| {
            let (s, c) = (s.clone(), c.clone());
            async move {
                c.fetch_add(1, Ordering::SeqCst);
                s.notify_one();
                tokio::time::sleep(Duration::from_secs(60)).await;
            }
        })
        .run(async move { started.notified().await })
        .await
        .expect("run");
    assert_eq!((report.acked, report.retried, report.released), (0, 0, 1));
    let stats = d.stats(Some(&q)).await.expect("stats");
    assert_eq!(
        stats[0].ready, 1,
        "the message is ready for the next worker at once"
    );
    let again = d
        .receive(&q, ferry_core::ReceiveOptions::max(1))
        .await
        .expect("receive");
    assert_eq!(again[0].attempt, 1, "the cut-short attempt was not counted");
}

#[tokio::test]
async fn missing_queue_is_an_error_not_a_hang() {
    let d = Arc::new(MemoryDriver::new());
    let err = Consumer::builder(QueueName::new("nope").expect("name"))
        .build(d, |_d: Delivery| async {})
        .run(std::future::pending())
        .await
        .expect_err("missing queue");
    assert_eq!(err.kind(), ferry_core::ErrorKind::QueueNotFound);
}

#[tokio::test]
async fn fail_hook_runs_after_dead_letter_and_its_failure_keeps_the_message() {
    let (d, q) = setup(2).await;
    let seen = Arc::new(std::sync::Mutex::new(Vec::<DeadLetterEvent>::new()));
    let s2 = seen.clone();
    let report = Consumer::builder(q.clone())
        .retry_policy(fast_retry(2))
        .until_empty(true)
        .on_dead_letter(move |e: DeadLetterEvent| {
            let s2 = s2.clone();
            async move {
                let fail = e.id == "m1";
                s2.lock().unwrap_or_else(|p| p.into_inner()).push(e);
                if fail {
                    Err("alerting is down")
                } else {
                    Ok(())
                }
            }
        })
        .build(d.clone(), |_d: Delivery| async { Err::<(), _>("bad") })
        .run(std::future::pending())
        .await
        .expect("run");
    assert_eq!((report.dead_lettered, report.hook_errors), (2, 1));
    let events = seen.lock().unwrap_or_else(|p| p.into_inner()).clone();
    assert_eq!(events.len(), 2);
    for e in &events {
        assert_eq!(e.reason, reason::MAX_ATTEMPTS);
        assert_eq!(e.attempts, 2);
        assert_eq!(e.error.as_deref(), Some("bad"));
    }
    assert_eq!(
        dead(&d, &q).await.len(),
        2,
        "a failing hook never loses the dead letter"
    );
}

#[tokio::test]
async fn idempotency_skips_work_already_done() {
    let (d, q) = setup(3).await;
    let store = Arc::new(MemoryIdempotencyStore::new());
    // m1's work was done earlier (by a worker that then crashed before its ack).
    let Claim::Acquired(t) = store
        .claim("work/m1", Duration::from_secs(5))
        .await
        .expect("claim")
    else {
        panic!("fresh")
    };
    store
        .complete("work/m1", t, Duration::from_secs(60))
        .await
        .expect("complete");
    let runs = Arc::new(AtomicU32::new(0));
    let r = runs.clone();
    let report = Consumer::builder(q.clone())
        .idempotency(store.clone())
        .until_empty(true)
        .build(d.clone(), move |_d: Delivery| {
            let r = r.clone();
            async move {
                r.fetch_add(1, Ordering::SeqCst);
            }
        })
        .run(std::future::pending())
        .await
        .expect("run");
    assert_eq!(runs.load(Ordering::SeqCst), 2, "m1 is not processed twice");
    assert_eq!((report.acked, report.duplicates), (2, 1));
    assert_eq!(
        store
            .claim("work/m0", Duration::from_secs(5))
            .await
            .expect("claim"),
        Claim::Done
    );
}

#[tokio::test]
async fn suspected_duplicate_asks_ensure() {
    let (d, q) = setup(2).await;
    let store = Arc::new(MemoryIdempotencyStore::new());
    // Both keys were claimed by workers that died mid-handler (claims expired).
    for k in ["work/m0", "work/m1"] {
        store
            .claim(k, Duration::from_millis(1))
            .await
            .expect("claim");
    }
    tokio::time::sleep(Duration::from_millis(5)).await;
    let runs = Arc::new(AtomicU32::new(0));
    let r = runs.clone();
    let report = Consumer::builder(q.clone())
        .idempotency(store.clone())
        // m0's effect is found in "the database"; m1's is not.
        .ensure(|d: Delivery| async move { Ok::<bool, std::io::Error>(d.id == "m0") })
        .until_empty(true)
        .build(d.clone(), move |_d: Delivery| {
            let r = r.clone();
            async move {
                r.fetch_add(1, Ordering::SeqCst);
            }
        })
        .run(std::future::pending())
        .await
        .expect("run");
    assert_eq!(runs.load(Ordering::SeqCst), 1, "only m1 runs again");
    assert_eq!((report.acked, report.duplicates), (1, 1));
}

#[tokio::test]
async fn failed_attempt_releases_the_idempotency_claim() {
    let (d, q) = setup(1).await;
    let store = Arc::new(MemoryIdempotencyStore::new());
    let report = Consumer::builder(q.clone())
        .idempotency(store.clone())
        .retry_policy(fast_retry(3))
        .until_empty(true)
        .build(d.clone(), |d: Delivery| async move {
            if d.attempt < 3 {
                Err("not yet")
            } else {
                Ok(())
            }
        })
        .run(std::future::pending())
        .await
        .expect("run");
    assert_eq!((report.retried, report.acked, report.duplicates), (2, 1, 0));
    assert_eq!(
        store
            .claim("work/m0", Duration::from_secs(1))
            .await
            .expect("claim"),
        Claim::Done
    );
}

#[tokio::test]
async fn circuit_breaker_stops_receiving_when_failures_pile_up() {
    use ferry_core::consumer::{BreakerConfig, BreakerState, CircuitBreaker};
    let (d, q) = setup(10).await;
    let breaker = CircuitBreaker::new(BreakerConfig {
        window: 4,
        min_samples: 4,
        failure_ratio: 0.5,
        cool_down: Duration::from_secs(60),
    });
    let report = Consumer::builder(q.clone())
        .retry_policy(fast_retry(100))
        .circuit_breaker(breaker.clone())
        .build(d.clone(), |_d: Delivery| async {
            Err::<(), _>("downstream is down")
        })
        .run(tokio::time::sleep(Duration::from_millis(500)))
        .await
        .expect("run");
    assert_eq!(
        report.received, 4,
        "receiving paused once 4 of 4 attempts failed"
    );
    assert!(
        matches!(breaker.state(), BreakerState::Open { .. }),
        "{}",
        breaker.state()
    );
    let stats = d.stats(Some(&q)).await.expect("stats");
    assert_eq!(
        stats[0].ready + stats[0].delayed,
        10,
        "nothing lost while paused"
    );
}

#[tokio::test]
async fn rate_limit_paces_handlers() {
    let (d, q) = setup(10).await;
    let started = std::time::Instant::now();
    let report = Consumer::builder(q.clone())
        .concurrency(4)
        .rate_limit(ferry_core::consumer::RateLimit::per_second(20).expect("rate"))
        .until_empty(true)
        .build(d.clone(), |_d: Delivery| async {})
        .run(std::future::pending())
        .await
        .expect("run");
    assert_eq!(report.acked, 10);
    // 10 handler starts at 20/s need at least 9 intervals of 50 ms.
    assert!(
        started.elapsed() >= Duration::from_millis(440),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn batch_handler_gets_slices_and_settles_per_message() {
    let (d, q) = setup(25).await;
    let sizes = Arc::new(std::sync::Mutex::new(Vec::new()));
    let s2 = sizes.clone();
    let report = Consumer::builder(q.clone())
        .retry_policy(fast_retry(2))
        .until_empty(true)
        .build_batch(d.clone(), 10, move |batch: Vec<Delivery>| {
            let s2 = s2.clone();
            async move {
                s2.lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push(batch.len());
                batch
                    .iter()
                    .map(|d| match d.id.as_str() {
                        "m3" => Outcome::reject("bad row"),
                        "m7" => Outcome::fail("always"),
                        _ => Outcome::Ack,
                    })
                    .collect::<Vec<_>>()
            }
        })
        .run(std::future::pending())
        .await
        .expect("run");
    assert_eq!(
        (report.acked, report.dead_lettered, report.retried),
        (23, 2, 1)
    );
    let sizes = sizes.lock().unwrap_or_else(|p| p.into_inner()).clone();
    assert!(sizes.iter().all(|n| *n <= 10), "{sizes:?}");
    assert_eq!(
        sizes.iter().take(3).sum::<usize>(),
        25,
        "first three batches carry all 25: {sizes:?}"
    );
    let dl = dead(&d, &q).await;
    let mut ids: Vec<&str> = dl.iter().map(|x| x.id.as_str()).collect();
    ids.sort();
    assert_eq!(ids, ["m3", "m7"]);
}

#[tokio::test]
async fn batch_handler_short_answer_and_panic_fail_the_rest() {
    let (d, q) = setup(4).await;
    let report = Consumer::builder(q.clone())
        .retry_policy(fast_retry(2))
        .until_empty(true)
        .build_batch(d.clone(), 4, |batch: Vec<Delivery>| async move {
            if batch.iter().any(|d| d.attempt > 1) {
                panic!("second try panics");
            }
            vec![Outcome::Ack; 2] // only two answers for four messages
        })
        .run(std::future::pending())
        .await
        .expect("run");
    assert_eq!((report.acked, report.dead_lettered), (2, 2));
    assert_eq!(report.panicked, 2);
    let dl = dead(&d, &q).await;
    assert!(
        dl.iter().all(|x| x
            .last_error
            .as_deref()
            .is_some_and(|e| e.contains("panicked"))),
        "{dl:?}"
    );
}

/// Regression: the rate-limit wait once happened after receiving, with the lease not
/// yet extended and shutdown not observed: a SIGTERM waited for every permit.
#[tokio::test]
async fn rate_limit_wait_does_not_hold_up_shutdown_or_leases() {
    let (d, q) = setup(20).await;
    let started = std::time::Instant::now();
    let report = Consumer::builder(q.clone())
        .concurrency(20)
        .lease(Duration::from_millis(300))
        .grace(Duration::from_millis(200))
        .rate_limit(ferry_core::consumer::RateLimit::per_second(2).expect("rate"))
        .build(d.clone(), |_d: Delivery| async {})
        .run(tokio::time::sleep(Duration::from_millis(1200)))
        .await
        .expect("run");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "shutdown took {:?}",
        started.elapsed()
    );
    assert_eq!(
        report.settle_errors, 0,
        "no lease expired while waiting for a permit"
    );
    assert_eq!(
        report.received,
        report.acked + report.released,
        "{report:?}"
    );
    let stats = d.stats(Some(&q)).await.expect("stats");
    assert_eq!(
        stats[0].ready + report.acked,
        20,
        "the unstarted ones are back, ready"
    );
}

/// Regression: a slow `ensure` once ran with the lease unextended, so the message was
/// redelivered to another worker while `ensure` was still deciding.
#[tokio::test]
async fn slow_ensure_keeps_the_lease() {
    let (d, q) = setup(1).await;
    let store = Arc::new(MemoryIdempotencyStore::new());
    store
        .claim("work/m0", Duration::from_millis(1))
        .await
        .expect("claim");
    tokio::time::sleep(Duration::from_millis(5)).await;
    let runs = Arc::new(AtomicU32::new(0));
    let r = runs.clone();
    let report = Consumer::builder(q.clone())
        .concurrency(2)
        .lease(Duration::from_millis(300))
        .idempotency(store)
        .ensure(|_d: Delivery| async {
            tokio::time::sleep(Duration::from_millis(800)).await;
            Ok::<bool, std::io::Error>(false)
        })
        .until_empty(true)
        .build(d.clone(), move |_d: Delivery| {
            let r = r.clone();
            async move {
                r.fetch_add(1, Ordering::SeqCst);
            }
        })
        .run(std::future::pending())
        .await
        .expect("run");
    assert_eq!(runs.load(Ordering::SeqCst), 1, "handled once");
    assert_eq!(
        (report.received, report.acked, report.settle_errors),
        (1, 1, 0),
        "{report:?}"
    );
}

/// Regression: a half-open probe that ran no attempt (its work was already done) kept
/// the probe, so the next message waited a whole extra cool-down.
#[tokio::test]
async fn probe_without_attempt_is_handed_back() {
    use ferry_core::consumer::{BreakerConfig, CircuitBreaker};
    let (d, q) = setup(4).await;
    let store = Arc::new(MemoryIdempotencyStore::new());
    let Claim::Acquired(t) = store
        .claim("work/m2", Duration::from_secs(5))
        .await
        .expect("claim")
    else {
        panic!("fresh")
    };
    store
        .complete("work/m2", t, Duration::from_secs(60))
        .await
        .expect("complete");
    let breaker = CircuitBreaker::new(BreakerConfig {
        window: 2,
        min_samples: 2,
        failure_ratio: 0.5,
        cool_down: Duration::from_secs(1),
    });
    let report = Consumer::builder(q.clone())
        .retry_policy(RetryPolicy::default().with_backoff(Backoff::Fixed(Duration::from_secs(60))))
        .idempotency(store)
        .circuit_breaker(breaker.clone())
        .build(d.clone(), |d: Delivery| async move {
            if d.id == "m0" || d.id == "m1" {
                Err("down")
            } else {
                Ok(())
            }
        })
        // Opens after m0 and m1; half-open after 1 s; m2 is a duplicate; m3 must be the
        // next probe right away, well before a second cool-down would end.
        .run(tokio::time::sleep(Duration::from_millis(1700)))
        .await
        .expect("run");
    assert_eq!((report.duplicates, report.acked), (1, 1), "{report:?}");
}
