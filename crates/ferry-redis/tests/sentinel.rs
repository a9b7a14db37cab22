//! Sentinel: ferry finds the master through three local sentinels, survives a
//! `SENTINEL FAILOVER` and keeps consuming on the promoted replica; the ledger shows
//! nothing lost and duplicates only after the failover.

mod support;

use std::time::{Duration, Instant};

use ferry_core::{Driver, Message, QueueOptions, ReceiveOptions, Settlement, Topology};
use ferry_redis::{RedisConfig, RedisDriver};
use ferry_testkit::ledger::{Event, FinalState, check};

/// Receives and acks until `want` more ids were processed or `limit` passes; errors
/// (expected while the failover runs) are counted, not fatal.
async fn drain(
    d: &RedisDriver,
    q: &ferry_core::QueueName,
    events: &mut Vec<Event>,
    want: usize,
    limit: Duration,
) -> usize {
    let deadline = Instant::now() + limit;
    let mut done = 0;
    let mut errors = 0;
    while done < want && Instant::now() < deadline {
        let got = match d
            .receive(
                q,
                ReceiveOptions::max(50).with_wait(Duration::from_millis(200)),
            )
            .await
        {
            Ok(got) => got,
            Err(_) => {
                errors += 1;
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        for g in &got {
            events.push(Event::Effect { id: g.id.clone() });
        }
        let acks = got
            .iter()
            .map(|g| Settlement::ack(g.receipt.clone()))
            .collect();
        match d.settle(acks).await {
            Ok(results) => done += results.iter().filter(|r| r.is_ok()).count(),
            Err(_) => errors += 1,
        }
    }
    errors
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn survives_a_failover_and_keeps_consuming() {
    let set = support::SentinelSet::start();
    let old_master = set.master_port();
    assert_eq!(old_master, set.master.port);
    let mut config = RedisConfig::new(set.url()).with_prefix("ferry-test");
    config.response_timeout = Duration::from_secs(2);
    let d = RedisDriver::connect_with(config)
        .await
        .expect("connect via sentinels");
    let q = ferry_testkit::unique_queue("sentinel");
    d.create_queue(
        &q,
        QueueOptions::default().with_lease(Duration::from_secs(3)),
    )
    .await
    .expect("create");
    let mut events = Vec::new();
    let batch: Vec<Message> = (0..300)
        .map(|i| Message::new(format!("m{i}")).with_id(format!("a{i}")))
        .collect();
    d.send(&q, batch).await.expect("send");
    events.extend((0..300).map(|i| Event::Sent {
        id: format!("a{i}"),
    }));
    assert_eq!(
        drain(&d, &q, &mut events, 100, Duration::from_secs(20)).await,
        0
    );

    // What a failover can lose is what the replica had not received: make sure it has
    // everything, so that any loss below is ferry's.
    let acked = set.master.cli(&["WAIT", "1", "5000"]);
    assert_eq!(acked.trim(), "1", "replica did not acknowledge the writes");
    events.push(Event::Fault {
        kind: "SENTINEL FAILOVER".into(),
    });
    let reply = set.sentinels[0].cli(&["SENTINEL", "FAILOVER", support::MASTER_NAME]);
    assert_eq!(reply.trim(), "OK", "failover refused: {reply}");
    let deadline = Instant::now() + Duration::from_secs(30);
    while set.master_port() == old_master {
        assert!(Instant::now() < deadline, "failover did not happen");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(set.master_port(), set.replica.port);
    // Writes the old master takes between the promotion and its own demotion are lost
    // when it resyncs as a replica (documented); wait for the demotion so the ledger
    // judges ferry, not that window.
    while !set.master.cli(&["ROLE"]).starts_with("slave") {
        assert!(Instant::now() < deadline, "old master never demoted");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Keep consuming, and sending, through the same driver.
    let more: Vec<Message> = (0..50)
        .map(|i| Message::new(format!("n{i}")).with_id(format!("b{i}")))
        .collect();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match d.send(&q, more.clone()).await {
            Ok(_) => break,
            Err(e) => {
                assert!(e.is_transient(), "send after failover: {e}");
                assert!(
                    Instant::now() < deadline,
                    "no send succeeded after failover: {e}"
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    events.extend((0..50).map(|i| Event::Sent {
        id: format!("b{i}"),
    }));
    drain(&d, &q, &mut events, 250, Duration::from_secs(60)).await;

    let stats = d.stats(Some(&q)).await.expect("stats");
    assert_eq!(
        stats[0].ready + stats[0].delayed + stats[0].in_flight,
        0,
        "{stats:?}"
    );
    let verdict = check(&events, &FinalState::default());
    verdict.assert_ok();
    assert_eq!(verdict.processed, 350);
    d.delete_queue(&q).await.expect("delete");

    // The doctor checks the master the sentinels name now.
    let findings = d.doctor().await.expect("doctor");
    let deployment = findings
        .iter()
        .find(|f| f.check == "deployment")
        .expect("deployment finding");
    assert!(
        deployment
            .message
            .contains(&format!(":{}", set.replica.port)),
        "{findings:#?}"
    );
    let role = findings.iter().find(|f| f.check == "role").expect("role");
    assert_eq!(role.severity, ferry_redis::Severity::Ok, "{findings:#?}");
}
