//! The driver survives a lost connection: the broker returns the unacked deliveries,
//! the old receipts are stale, and the next call reconnects. The connection is closed
//! with `rabbitmqctl close_connection` (found by this driver's connection name), so
//! other clients of the broker are not touched.

mod support;

use std::time::Duration;

use ferry_amqp::AmqpDriver;
use ferry_core::{DeadLetters, Driver, ErrorKind, Message, QueueOptions, ReceiveOptions, Topology};
use ferry_testkit::unique_queue;

use support::close_connection;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconnects_after_the_connection_is_closed() {
    let url = support::url();
    let d = AmqpDriver::connect(&url).await.expect("connect");
    let q = unique_queue("reconnect");
    d.create_queue(&q, QueueOptions::default())
        .await
        .expect("create_queue");
    d.send(&q, vec![Message::new("x").with_id("x")])
        .await
        .expect("send");
    let got = d
        .receive(
            &q,
            ReceiveOptions::max(1).with_lease(Duration::from_secs(60)),
        )
        .await
        .expect("receive");
    assert_eq!(got.len(), 1);

    close_connection(d.connection_name());
    tokio::time::sleep(Duration::from_millis(500)).await;

    // The first call after the loss is an extend (every handler slot busy, no receive
    // ran): the lease died with its channel, so it is stale, not extended.
    let extended = d.extend(&got[0].receipt, Duration::from_secs(60)).await;
    assert!(
        matches!(&extended, Err(e) if e.kind() == ErrorKind::StaleReceipt),
        "extending a lease of the closed channel is refused: {extended:?}"
    );

    let again = d
        .receive(
            &q,
            ReceiveOptions::max(1)
                .with_lease(Duration::from_secs(60))
                .with_wait(Duration::from_secs(10)),
        )
        .await
        .expect("receive after the connection was closed");
    assert_eq!(again.len(), 1, "the broker returned the unacked delivery");
    assert_eq!(again[0].id, "x");
    assert_eq!(
        again[0].attempt, 2,
        "the lost delivery counts as an attempt"
    );
    let stale = d.ack(&got[0].receipt).await;
    assert!(
        matches!(&stale, Err(e) if e.kind() == ErrorKind::StaleReceipt),
        "a receipt from the closed channel is stale: {stale:?}"
    );
    d.ack(&again[0].receipt).await.expect("ack");
    d.delete_queue(&q).await.expect("delete_queue");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_on_the_last_attempt_dead_letters() {
    let url = support::url();
    let crashing = AmqpDriver::connect(&url).await.expect("connect");
    let other = AmqpDriver::connect(&url).await.expect("connect");
    let q = unique_queue("crash");
    crashing
        .create_queue(&q, QueueOptions::default().with_max_attempts(1))
        .await
        .expect("create_queue");
    crashing
        .send(&q, vec![Message::new("x").with_id("crashy")])
        .await
        .expect("send");
    let got = crashing
        .receive(
            &q,
            ReceiveOptions::max(1).with_lease(Duration::from_secs(60)),
        )
        .await
        .expect("receive");
    assert_eq!(got.len(), 1);
    close_connection(crashing.connection_name());
    let mut dead = None;
    for _ in 0..100 {
        let none = other
            .receive(&q, ReceiveOptions::max(1))
            .await
            .expect("receive");
        assert!(none.is_empty(), "its only attempt was used up by the crash");
        if let Ok(dl) = other.get_dead_letter(&q, "crashy").await {
            dead = Some(dl);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let dead = dead.expect("dead-lettered after the crash");
    assert_eq!(dead.reason, ferry_core::reason::LEASE_EXPIRED);
    assert_eq!(dead.attempts, 1);
    other.delete_queue(&q).await.expect("delete_queue");
}
