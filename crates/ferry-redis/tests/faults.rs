//! Fault tests of the Redis driver: what the network and the server do to it, judged by
//! the ledger (`ferry_testkit::ledger`): every id sent accounted for, every duplicate
//! explained by a recorded fault.
//!
//! - A consumer talks to the machine's Redis through a fault proxy
//!   (`ferry_testkit::proxy`) that cuts its connection four times, refuses connections for a while, stalls it (a
//!   partition that heals: commands the client gave up on reach the server late) and
//!   blackholes it (the connection goes silent for good, new ones work), each outage
//!   longer than the response timeout and the lease; the consumer must finish the queue
//!   with nothing lost and without a reconnect busy loop.
//! - A silenced connection is replaced after one timed-out reply (the regression test of
//!   the driver's `conn.rs`).
//! - A throwaway `redis-server` with `appendfsync always` is SIGKILLed and restarted on
//!   the same files: every confirmed send that was not acked is delivered afterwards (to
//!   the driver that lived through the restart and to a fresh one), and nothing acked
//!   comes back.
//!
//! A fault's window runs from its injection until the consumer is seen making progress
//! again; the ledger gets a `fault` line at its start, at the end of an outage and at its
//! end: a handler that finished inside the window may have lost its ack (or its lease)
//! to the fault, and its redelivery runs after the window.

mod support;

use std::collections::BTreeSet;
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::Arc;
use std::sync::atomic::AtomicUsize;
use std::time::Duration;

use ferry_core::{
    Consumer, DeadLetterQuery, DeadLetters, Delivery, Driver, Message, QueueName, QueueOptions,
    ReceiveOptions, Settlement, Topology,
};
use ferry_redis::{RedisConfig, RedisDriver};
use ferry_testkit::fault_script::{Fault, inject_faults, recording_handler, send_recorded};
use ferry_testkit::ledger::{Event, FinalState, Ledger, check};
use ferry_testkit::proxy::Proxy;
use ferry_testkit::{eventually, unique_queue};

fn url() -> String {
    std::env::var("FERRY_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_string())
}

fn prefix() -> String {
    format!(
        "ferry-test:{}-{:08x}",
        std::process::id(),
        fastrand::u32(..)
    )
}

/// Splits `redis://[user:pass@]host:port[/db]` into (before host, host:port, after).
fn split_url(url: &str) -> (String, String, String) {
    let rest = url.strip_prefix("redis://").expect("a redis:// URL");
    let (auth, rest) = match rest.rsplit_once('@') {
        Some((auth, rest)) => (format!("{auth}@"), rest),
        None => (String::new(), rest),
    };
    let (host, tail) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    let host = if host.contains(':') {
        host.to_string()
    } else {
        format!("{host}:6379")
    };
    (format!("redis://{auth}"), host, tail.to_string())
}

/// The socket address of the test Redis.
fn redis_target() -> SocketAddr {
    let (_, host, _) = split_url(&url());
    host.to_socket_addrs()
        .expect("resolve the redis host")
        .next()
        .expect("an address for the redis host")
}

/// The test Redis URL with its host and port replaced by `addr`.
fn url_via(addr: SocketAddr) -> String {
    let (head, _, tail) = split_url(&url());
    format!("{head}{addr}{tail}")
}

/// Short timeouts, so the faults are noticed quickly.
fn impatient(url: String, prefix: &str) -> RedisConfig {
    let mut config = RedisConfig::new(url).with_prefix(prefix);
    config.response_timeout = Duration::from_millis(500);
    config.connection_timeout = Duration::from_millis(500);
    config
}

fn temp_ledger(tag: &str) -> (tempfile::TempDir, Ledger) {
    let dir = tempfile::tempdir().expect("tempdir");
    let ledger = Ledger::new(dir.path().join(format!("{tag}.jsonl")));
    (dir, ledger)
}

fn fault(ledger: &Ledger, kind: impl Into<String>) {
    ledger
        .append(&Event::Fault { kind: kind.into() })
        .expect("ledger fault line");
}

async fn dead_ids(d: &RedisDriver, q: &QueueName) -> BTreeSet<String> {
    d.list_dead_letters(q, DeadLetterQuery::page(0, 100_000))
        .await
        .expect("dead letters")
        .into_iter()
        .map(|d| d.id)
        .collect()
}

const MESSAGES: usize = 2_000;
const CONCURRENCY: usize = 8;
const LEASE: Duration = Duration::from_secs(2);
/// How long a stall, blackhole or refusal lasts: longer than the response timeout and the lease.
const OUTAGE: Duration = Duration::from_secs(3);

/// The fault script: each fault at a number of effects.
const SCHEDULE: &[(usize, Fault)] = &[
    (200, Fault::Cut),
    (450, Fault::Cut),
    (700, Fault::Stall),
    (1_000, Fault::Blackhole),
    (1_300, Fault::Down),
    (1_600, Fault::Cut),
    (1_800, Fault::Cut),
];

/// The consumer through the proxy finishes the queue through cuts and a blackhole:
/// nothing lost, duplicates only from faults, a bounded number of reconnects.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consumer_survives_cuts_and_a_blackhole() {
    let p = prefix();
    let direct = RedisDriver::connect_with(RedisConfig::new(url()).with_prefix(&p))
        .await
        .expect("connect directly");
    let proxy = Proxy::start(redis_target()).await.expect("start the proxy");
    let through = RedisDriver::connect_with(impatient(url_via(proxy.addr()), &p))
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
    let consumer = Consumer::builder(q.clone())
        .concurrency(CONCURRENCY)
        .lease(LEASE)
        .poll(Duration::from_millis(200))
        .until_empty(true)
        .build(Arc::new(through.clone()), handler);
    let run = tokio::spawn(consumer.run(std::future::pending()));
    tokio::time::timeout(
        Duration::from_secs(90),
        inject_faults(&proxy, &ledger, &effects, SCHEDULE, MESSAGES, OUTAGE),
    )
    .await
    .expect("the fault script finishes (the consumer keeps making progress)");
    let report = tokio::time::timeout(Duration::from_secs(60), run)
        .await
        .expect("the consumer drains the queue after the faults")
        .expect("consumer task")
        .expect("consumer run");
    eprintln!("consumer report: {report:?}");

    let stats = direct.stats(Some(&q)).await.expect("stats");
    assert!(stats[0].is_drained(), "queue drained: {stats:?}");
    let dead = dead_ids(&direct, &q).await;
    let (events, torn) = ledger.read().expect("read ledger");
    assert_eq!(torn, 0, "no torn ledger line (nothing was killed)");
    let verdict = check(
        &events,
        &FinalState {
            queued: BTreeSet::new(),
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
        proxy.connections() < 50,
        "no reconnect busy loop: {} connections for 4 cuts and 3 outages",
        proxy.connections()
    );
    direct.delete_queue(&q).await.expect("delete queue");
}

/// A connection that goes silent for good (the proxy's blackhole) is replaced after one
/// timed-out reply, while new connections work: the driver does not wait for the
/// kernel to give up on the socket.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_connection_is_replaced() {
    let p = prefix();
    let proxy = Proxy::start(redis_target()).await.expect("start the proxy");
    let d = RedisDriver::connect_with(impatient(url_via(proxy.addr()), &p))
        .await
        .expect("connect through the proxy");
    let q = unique_queue("silent");
    d.create_queue(&q, QueueOptions::default())
        .await
        .expect("create queue");
    // The current connection is silenced; new ones go through at once.
    proxy.blackhole(true);
    proxy.blackhole(false);
    let err = d
        .stats(Some(&q))
        .await
        .expect_err("the reply never comes on the silenced connection");
    assert!(err.is_transient(), "{err}");
    let stats = eventually(
        Duration::from_secs(10),
        "the driver answers on a new connection",
        || async { d.stats(Some(&q)).await.ok() },
    )
    .await;
    assert!(stats[0].is_drained());
    assert!(
        proxy.connections() <= 3,
        "one new connection, not a retry storm: {}",
        proxy.connections()
    );
    d.delete_queue(&q).await.expect("delete queue");
}

/// Receives from `d` until it gets something (or the wait ends); errors while a driver
/// reconnects count as "nothing yet".
async fn receive_some(d: &RedisDriver, q: &QueueName) -> Vec<Delivery> {
    let opts = ReceiveOptions::max(25)
        .with_lease(Duration::from_secs(30))
        .with_wait(Duration::from_millis(200));
    d.receive(q, opts).await.unwrap_or_default()
}

/// SIGKILL and restart of an AOF (`appendfsync always`) server: every confirmed send not
/// acked is delivered afterwards, nothing acked comes back, and the driver that lived
/// through the restart reconnects by itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aof_restart_keeps_unacked_and_forgets_acked() {
    const SENT: usize = 200;
    const ACKED: usize = SENT / 2;
    const IN_FLIGHT: usize = 20;
    let dir = support::TempDir::new("aof");
    let mut server = support::single(
        dir.path(),
        &["--appendonly", "yes", "--appendfsync", "always"],
    );
    let p = prefix();
    let mut config = RedisConfig::new(server.url()).with_prefix(&p);
    config.response_timeout = Duration::from_secs(2);
    config.connection_timeout = Duration::from_millis(500);
    let survivor = RedisDriver::connect_with(config.clone())
        .await
        .expect("connect");
    let (_dir, ledger) = temp_ledger("aof");
    let q = unique_queue("aof");
    survivor
        .create_queue(&q, QueueOptions::default().with_max_attempts(100))
        .await
        .expect("create queue");

    // Each send is confirmed before the next: 20 batches of 10.
    let mut sent = BTreeSet::new();
    for b in 0..SENT / 10 {
        let batch: Vec<Message> = (0..10).map(|i| Message::new(format!("{b}-{i}"))).collect();
        let ids: Vec<String> = batch.iter().map(|m| m.id().to_string()).collect();
        survivor.send(&q, batch).await.expect("send");
        for id in ids {
            ledger
                .append(&Event::Sent { id: id.clone() })
                .expect("ledger");
            sent.insert(id);
        }
    }
    // Ack half of them.
    let mut acked = BTreeSet::new();
    while acked.len() < ACKED {
        let want = (ACKED - acked.len()).min(25);
        let got = survivor
            .receive(
                &q,
                ReceiveOptions::max(want).with_lease(Duration::from_secs(30)),
            )
            .await
            .expect("receive");
        assert!(!got.is_empty(), "messages are ready");
        for d in &got {
            ledger
                .append(&Event::Effect { id: d.id.clone() })
                .expect("ledger");
        }
        let results = survivor
            .settle(
                got.iter()
                    .map(|d| Settlement::ack(d.receipt.clone()))
                    .collect(),
            )
            .await
            .expect("ack");
        assert!(results.iter().all(Result::is_ok), "{results:?}");
        acked.extend(got.into_iter().map(|d| d.id));
    }
    // Some more are leased (1 s) but not settled when the server dies.
    let leased = survivor
        .receive(
            &q,
            ReceiveOptions::max(IN_FLIGHT).with_lease(Duration::from_secs(1)),
        )
        .await
        .expect("receive in-flight ones");
    assert_eq!(leased.len(), IN_FLIGHT);

    fault(
        &ledger,
        format!("SIGKILL redis-server on port {}", server.port),
    );
    server.kill();
    server.restart(dir.path());

    // A fresh driver sees every unacked message (in flight or ready).
    let fresh = RedisDriver::connect_with(config).await.expect("reconnect");
    let stats = fresh.stats(Some(&q)).await.expect("stats after restart");
    let s = &stats[0];
    assert_eq!(
        (s.ready + s.in_flight + s.delayed, s.dead),
        ((SENT - ACKED) as u64, 0),
        "every confirmed, unacked message survived the restart: {s:?}"
    );
    // The surviving driver reconnects by itself (its first calls may fail while it does).
    eventually(
        Duration::from_secs(20),
        "the surviving driver reconnects",
        || async { survivor.stats(Some(&q)).await.ok() },
    )
    .await;

    // Both drivers drain the queue; the leased ones come back when their lease expires.
    let mut after = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while after.len() < SENT - ACKED {
        assert!(
            tokio::time::Instant::now() < deadline,
            "only {} of {} unacked messages delivered after the restart",
            after.len(),
            SENT - ACKED
        );
        for d in [&survivor, &fresh] {
            let got = receive_some(d, &q).await;
            for x in &got {
                ledger
                    .append(&Event::Effect { id: x.id.clone() })
                    .expect("ledger");
            }
            let receipts = got.iter().map(|x| Settlement::ack(x.receipt.clone()));
            let results = d.settle(receipts.collect()).await.expect("ack");
            assert!(results.iter().all(Result::is_ok), "{results:?}");
            after.extend(got.into_iter().map(|x| (x.id, x.attempt)));
        }
    }

    let ids: BTreeSet<String> = after.iter().map(|(id, _)| id.clone()).collect();
    assert_eq!(
        ids.len(),
        after.len(),
        "each message delivered once after the restart"
    );
    let resurrected: Vec<&String> = ids.intersection(&acked).collect();
    assert!(
        resurrected.is_empty(),
        "acked before the kill, back after it: {resurrected:?}"
    );
    let expected: BTreeSet<String> = sent.difference(&acked).cloned().collect();
    assert_eq!(ids, expected, "exactly the unacked messages came back");
    for d in &leased {
        let attempt = after.iter().find(|(id, _)| *id == d.id).map(|(_, a)| *a);
        assert_eq!(
            attempt,
            Some(2),
            "the lease held at the kill counted as an attempt"
        );
    }
    let stats = fresh.stats(Some(&q)).await.expect("stats");
    assert!(stats[0].is_drained(), "{stats:?}");
    let (events, _) = ledger.read().expect("read ledger");
    let verdict = check(&events, &FinalState::default());
    verdict.assert_ok();
    assert_eq!(verdict.sent, SENT);
    assert_eq!(verdict.processed, SENT);
}
