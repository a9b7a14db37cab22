//! A Redis restart under a running driver: while the server is gone every call fails
//! soon with a transient error; once it is back (same port, its AOF replayed) the same
//! driver works again without a new connect, in-flight messages come back after their
//! lease and nothing acknowledged is lost or undone.

mod support;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use ferry_core::{Driver, Message, QueueOptions, ReceiveOptions, Topology};
use ferry_redis::{RedisConfig, RedisDriver};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn same_driver_recovers_after_a_restart() {
    let dir = support::TempDir::new("restart");
    let mut server = support::single(
        dir.path(),
        &["--appendonly", "yes", "--appendfsync", "always"],
    );
    let mut config = RedisConfig::new(server.url()).with_prefix("ferry-test");
    config.response_timeout = Duration::from_secs(2);
    let d = RedisDriver::connect_with(config).await.expect("connect");
    let q = ferry_testkit::unique_queue("restart");
    d.create_queue(
        &q,
        QueueOptions::default().with_lease(Duration::from_secs(2)),
    )
    .await
    .expect("create");
    let all: BTreeSet<String> = (0..20).map(|i| format!("m{i:02}")).collect();
    d.send(
        &q,
        all.iter().map(|id| Message::new("x").with_id(id)).collect(),
    )
    .await
    .expect("send");

    // Five in flight; two of them acknowledged before the crash.
    let got = d
        .receive(&q, ReceiveOptions::max(5))
        .await
        .expect("receive");
    assert_eq!(got.len(), 5);
    for g in &got[..2] {
        d.ack(&g.receipt).await.expect("ack");
    }
    let acked: BTreeSet<String> = got[..2].iter().map(|g| g.id.clone()).collect();
    let in_flight: BTreeSet<String> = got[2..].iter().map(|g| g.id.clone()).collect();

    server.kill();

    // While it is down: every call fails with a transient kind, and returns (several
    // calls fit in the window) without spinning (each waits a little for the
    // reconnection first). The bounds are loose on purpose.
    let window = Duration::from_secs(3);
    let start = Instant::now();
    let mut calls = 0u32;
    while start.elapsed() < window {
        calls += 1;
        match d.receive(&q, ReceiveOptions::max(5)).await {
            Ok(got) => panic!("receive succeeded with redis down: {got:?}"),
            Err(e) => assert!(e.is_transient(), "not transient: {:?} {e}", e.kind()),
        }
    }
    assert!(
        calls >= 3,
        "calls hung while redis was down: {calls} in {window:?}"
    );
    assert!(
        calls < 1_000,
        "calls spun while redis was down: {calls} in {window:?}"
    );
    let e = d
        .send(&q, vec![Message::new("x").with_id("during-outage")])
        .await
        .expect_err("send with redis down");
    assert!(e.is_transient(), "not transient: {:?} {e}", e.kind());

    server.restart(dir.path());

    // The same driver reconnects by itself.
    ferry_testkit::eventually(
        Duration::from_secs(15),
        "the driver to reconnect",
        || async { d.stats(Some(&q)).await.ok() },
    )
    .await;

    // Everything not acknowledged comes back (the in-flight ones after their lease, on
    // their second attempt); nothing acknowledged does.
    let mut seen = BTreeSet::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while seen.len() < all.len() - acked.len() && Instant::now() < deadline {
        let got = match d
            .receive(
                &q,
                ReceiveOptions::max(50).with_wait(Duration::from_millis(500)),
            )
            .await
        {
            Ok(got) => got,
            Err(e) if e.is_transient() => continue,
            Err(e) => panic!("receive after the restart: {e}"),
        };
        for g in got {
            assert!(!acked.contains(&g.id), "acked message {} came back", g.id);
            if in_flight.contains(&g.id) {
                assert_eq!(g.attempt, 2, "{} was in flight", g.id);
            }
            d.ack(&g.receipt).await.expect("ack after the restart");
            assert!(seen.insert(g.id.clone()), "{} delivered twice", g.id);
        }
    }
    let expected: BTreeSet<String> = all.difference(&acked).cloned().collect();
    assert_eq!(seen, expected, "messages lost across the restart");
    let stats = d.stats(Some(&q)).await.expect("stats");
    assert_eq!(
        (
            stats[0].ready,
            stats[0].delayed,
            stats[0].in_flight,
            stats[0].dead
        ),
        (0, 0, 0, 0)
    );
}
