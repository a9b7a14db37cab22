//! Fault tests of the RabbitMQ driver, judged by the ledger (`ferry_testkit::ledger`):
//! every id sent is accounted for, every duplicate is explained by a recorded fault.
//!
//! - A consumer talks to the broker through the testkit's fault proxy, which cuts its
//!   connection, stalls it (a partition that heals), blackholes it (silent for good, new
//!   connections work) and refuses connections for a while (the broker is down), each
//!   outage longer than the driver's operation timeout and the lease; the consumer must
//!   finish the queue with nothing lost, stop when told, and not reconnect in a busy loop.
//! - A consumer process is SIGKILLed in the middle of its handler: the broker returns the
//!   unacked delivery and another driver gets it again, with the crash counted as an
//!   attempt.
//! - A message delayed by ten minutes and one delayed by one second are sent together:
//!   the one-second one arrives on time (the delay levels never hold a short delay
//!   behind a long one).
//!
//! A fault's window (see `ferry_testkit::fault_script`) runs from its injection until the consumer is seen making progress
//! again; the ledger gets a `fault` line at its start, at the end of an outage and at its
//! end: a handler that finished inside the window may have lost its ack to the fault,
//! and its redelivery runs after the window.

mod support;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::AtomicUsize;
use std::time::{Duration, Instant};

use ferry_amqp::AmqpDriver;
use ferry_core::{
    Consumer, Delivery, Driver, Message, QueueName, QueueOptions, ReceiveOptions, Topology,
};
use ferry_testkit::fault_script::{
    Fault, inject_faults, recording_handler, send_recorded, stop_when_drained,
};
use ferry_testkit::ledger::{Event, FinalState, Ledger, check};
use ferry_testkit::proxy::Proxy;
use ferry_testkit::{eventually, unique_queue};

use support::{broker_addr, connect, dead_ids, fault, temp_ledger, url_via};

const MESSAGES: usize = 1_500;
const CONCURRENCY: usize = 8;
const LEASE: Duration = Duration::from_secs(2);
/// How long a stall, blackhole or refusal lasts: longer than the operation timeout
/// (`timeout=1000` in the proxied URL) and the lease.
const OUTAGE: Duration = Duration::from_secs(3);

/// The fault script: each fault at a number of effects.
const SCHEDULE: &[(usize, Fault)] = &[
    (150, Fault::Cut),
    (300, Fault::Cut),
    (500, Fault::Stall),
    (750, Fault::Blackhole),
    (1_000, Fault::Down),
    (1_250, Fault::Cut),
];

/// The consumer through the proxy finishes the queue through cuts, a stall, a
/// blackhole and an outage: nothing lost, duplicates only from faults, a bounded number
/// of reconnects, and it stops when told.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consumer_survives_cuts_stalls_and_a_blackhole() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    let direct = connect().await;
    let proxy = Proxy::start(broker_addr()).await.expect("start the proxy");
    let through = AmqpDriver::connect(&url_via(proxy.addr(), "heartbeat=2&timeout=1000"))
        .await
        .expect("connect through the proxy");
    let (_dir, ledger) = temp_ledger("cuts");
    let q = unique_queue("faults");
    direct
        .create_queue(
            &q,
            QueueOptions::default()
                .with_max_attempts(1_000)
                .with_lease(LEASE),
        )
        .await
        .expect("create queue");
    send_recorded(&direct, &q, MESSAGES, &ledger).await;

    let effects = Arc::new(AtomicUsize::new(0));
    let handler = recording_handler(
        ledger.clone(),
        Arc::clone(&effects),
        Duration::from_millis(2),
    );
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let consumer = Consumer::builder(q.clone())
        .concurrency(CONCURRENCY)
        .lease(LEASE)
        .poll(Duration::from_millis(200))
        .build(Arc::new(through), handler);
    let run = tokio::spawn(consumer.run(async move {
        let _ = stop_rx.await;
    }));
    tokio::time::timeout(
        Duration::from_secs(120),
        inject_faults(&proxy, &ledger, &effects, SCHEDULE, MESSAGES, OUTAGE),
    )
    .await
    .expect("the fault script finishes (the consumer keeps making progress)");
    // The rest of the queue, then the stop: the consumer must stop when told, even
    // though its connection went through all of the above.
    let report = stop_when_drained(&direct, &q, stop_tx, run).await;
    eprintln!("consumer report: {report:?}");

    let dead = dead_ids(&direct, &q).await;
    let (events, torn) = ledger.read().expect("read ledger");
    assert_eq!(torn, 0, "no torn ledger line (nothing was killed)");
    let verdict = check(
        &events,
        &FinalState {
            queued: Default::default(),
            dead: dead.clone(),
        },
    );
    eprintln!(
        "{verdict:?}; proxy accepted {} connections",
        proxy.connections()
    );
    verdict.assert_ok();
    assert_eq!(verdict.sent, MESSAGES);
    assert_eq!(verdict.processed, MESSAGES, "every message was handled");
    assert!(dead.is_empty(), "nothing dead-lettered: {dead:?}");
    assert!(
        proxy.connections() < 60,
        "no reconnect busy loop: {} connections for 3 cuts and 3 outages",
        proxy.connections()
    );
    direct.delete_queue(&q).await.expect("delete queue");
}

/// The child side of [`sigkill_mid_handler_redelivers`]: consumes the queue named by
/// `FERRY_CHILD_QUEUE` with a handler that writes `HANDLING <id>` and never returns.
/// Ignored in a normal run; the parent test starts it in a process of its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "the child process of sigkill_mid_handler_redelivers"]
async fn child_consumer() {
    let (Ok(queue), Ok(ledger)) = (
        std::env::var("FERRY_CHILD_QUEUE"),
        std::env::var("FERRY_CHILD_LEDGER"),
    ) else {
        panic!("run by sigkill_mid_handler_redelivers only");
    };
    let q = QueueName::new(queue).expect("queue name");
    let ledger = Ledger::new(ledger);
    let handler = move |d: Delivery| {
        let ledger = ledger.clone();
        async move {
            ledger.append(&Event::Delivered {
                id: d.id.clone(),
                attempt: d.attempt,
            })?;
            println!("HANDLING {}", d.id);
            std::future::pending::<()>().await;
            Ok::<(), std::io::Error>(())
        }
    };
    let consumer = Consumer::builder(q)
        .lease(Duration::from_secs(60))
        .build(Arc::new(connect().await), handler);
    let _ = consumer.run(std::future::pending()).await;
}

/// SIGKILL of a consumer process mid-handler: the broker hands its unacked delivery
/// back, and the next receiver gets it with the crash counted as an attempt.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_handler_redelivers() {
    let d = connect().await;
    let q = unique_queue("sigkill");
    d.create_queue(&q, QueueOptions::default().with_max_attempts(5))
        .await
        .expect("create queue");
    let (_dir, ledger) = temp_ledger("sigkill");
    d.send(&q, vec![Message::new("work").with_id("job-1")])
        .await
        .expect("send");
    ledger
        .append(&Event::Sent { id: "job-1".into() })
        .expect("ledger");

    let mut child = Command::new(std::env::current_exe().expect("the test binary"))
        .args(["child_consumer", "--exact", "--ignored", "--nocapture"])
        .env("FERRY_CHILD_QUEUE", q.as_str())
        .env("FERRY_CHILD_LEDGER", ledger.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start the child consumer");
    let stdout = child.stdout.take().expect("child stdout");
    let seen = tokio::task::spawn_blocking(move || {
        BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .find(|l| l.starts_with("HANDLING "))
    });
    let line = tokio::time::timeout(Duration::from_secs(30), seen)
        .await
        .expect("the child starts handling within 30 s")
        .expect("reader task");
    assert_eq!(line.as_deref(), Some("HANDLING job-1"));
    child.kill().expect("SIGKILL the child");
    let _ = child.wait();
    fault(&ledger, "SIGKILL of the consumer mid-handler");

    let got = eventually(Duration::from_secs(30), "redelivery after the kill", || {
        let d = &d;
        let q = &q;
        async move {
            let got = d
                .receive(
                    q,
                    ReceiveOptions::max(1).with_lease(Duration::from_secs(30)),
                )
                .await
                .ok()?;
            got.into_iter().next()
        }
    })
    .await;
    assert_eq!(got.id, "job-1");
    assert_eq!(got.payload.as_ref(), b"work");
    assert_eq!(got.attempt, 2, "the killed delivery counted as attempt 1");
    ledger
        .append(&Event::Delivered {
            id: got.id.clone(),
            attempt: got.attempt,
        })
        .expect("ledger");
    ledger
        .append(&Event::Effect { id: got.id.clone() })
        .expect("ledger");
    d.ack(&got.receipt).await.expect("ack");
    let (events, _) = ledger.read().expect("read ledger");
    let verdict = check(&events, &FinalState::default());
    verdict.assert_ok();
    assert_eq!(verdict.processed, 1);
    d.delete_queue(&q).await.expect("delete queue");
}

/// A ten-minute delay and a one-second delay sent together: the one-second message is
/// delivered on time while the long one stays delayed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn short_delay_is_not_held_back_by_a_long_one() {
    let d = connect().await;
    let q = unique_queue("delays");
    d.create_queue(&q, QueueOptions::default())
        .await
        .expect("create queue");
    let sent = Instant::now();
    d.send(
        &q,
        vec![
            Message::new("later")
                .with_id("ten-minutes")
                .with_delay(Duration::from_secs(600)),
            Message::new("soon")
                .with_id("one-second")
                .with_delay(Duration::from_secs(1)),
        ],
    )
    .await
    .expect("send");
    let got = d
        .receive(
            &q,
            ReceiveOptions::max(2)
                .with_lease(Duration::from_secs(30))
                .with_wait(Duration::from_secs(20)),
        )
        .await
        .expect("receive");
    let waited = sent.elapsed();
    let ids: Vec<&str> = got.iter().map(|g| g.id.as_str()).collect();
    assert_eq!(ids, ["one-second"], "only the short delay is due");
    assert!(
        waited >= Duration::from_secs(1),
        "never early: delivered after {waited:?}"
    );
    // RabbitMQ expires TTL messages at the head of each level queue on its own timer;
    // "on time" here means well before the long delay, not a latency figure.
    assert!(
        waited < Duration::from_secs(10),
        "the one-second message waited {waited:?} behind the ten-minute one"
    );
    d.ack(&got[0].receipt).await.expect("ack");
    let stats = d.stats(Some(&q)).await.expect("stats");
    assert_eq!(
        stats[0].delayed, 1,
        "the long one is still delayed: {stats:?}"
    );
    d.delete_queue(&q).await.expect("delete queue");
}
