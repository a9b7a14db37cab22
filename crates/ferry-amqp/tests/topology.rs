//! Topology shared between driver instances: queue options are stored on the broker
//! (another driver reads them, an update replaces them), and topics and bindings made by
//! one driver route the publishes of another, delayed ones included.

use std::time::Duration;

use ferry_amqp::AmqpDriver;
use ferry_core::{QueueOptions, Topology};
use ferry_testkit::unique_queue;

mod support;

use support::url;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_options_are_durable_and_shared() {
    let a = AmqpDriver::connect(&url()).await.expect("connect");
    let q = unique_queue("options");
    let first = QueueOptions::default()
        .with_max_attempts(3)
        .with_lease(Duration::from_secs(7))
        .with_default_delay(Duration::from_millis(1500));
    a.create_queue(&q, first).await.expect("create_queue");

    let b = AmqpDriver::connect(&url()).await.expect("connect");
    assert_eq!(b.get_queue(&q).await.expect("get_queue").options, first);

    let second = first.with_max_attempts(8);
    a.create_queue(&q, second).await.expect("update");
    let c = AmqpDriver::connect(&url()).await.expect("connect");
    assert_eq!(c.get_queue(&q).await.expect("get_queue").options, second);
    // Reading it twice (the record goes back after each read).
    let d = AmqpDriver::connect(&url()).await.expect("connect");
    assert_eq!(d.get_queue(&q).await.expect("get_queue").options, second);

    a.delete_queue(&q).await.expect("delete_queue");
    let e = AmqpDriver::connect(&url()).await.expect("connect");
    assert!(e.get_queue(&q).await.is_err(), "deleted with its record");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_topic_made_by_another_driver_can_be_bound_and_published_to() {
    use ferry_core::{Driver, ErrorKind, Message, ReceiveOptions};
    let a = AmqpDriver::connect(&url()).await.expect("connect");
    let b = AmqpDriver::connect(&url()).await.expect("connect");
    let t = ferry_testkit::unique_topic("shared");
    let q = unique_queue("shared");
    a.create_topic(&t).await.expect("create_topic");
    a.create_queue(&q, QueueOptions::default())
        .await
        .expect("create_queue");
    b.bind(&t, &q, "order.#")
        .await
        .expect("bind from another driver");
    let report = b
        .publish(&t, "order.paid", vec![Message::new("x").with_id("x")])
        .await
        .expect("publish");
    assert_eq!(report.queues, std::slice::from_ref(&q));
    let got = a
        .receive(&q, ReceiveOptions::max(1))
        .await
        .expect("receive");
    assert_eq!(got.len(), 1);
    a.ack(&got[0].receipt).await.expect("ack");
    let missing = ferry_testkit::unique_topic("missing");
    let err = b.bind(&missing, &q, "#").await.expect_err("missing topic");
    assert_eq!(err.kind(), ErrorKind::TopicNotFound);
    a.delete_topic(&t).await.expect("delete_topic");
    a.delete_queue(&q).await.expect("delete_queue");
}

/// A delayed publish is routed by RabbitMQ through the topic's delay exchange, so it
/// reaches a queue bound by another process (this driver never saw the binding), after
/// its delay, with its route key; an unbound route key is unroutable, delayed or not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delayed_publish_reaches_a_queue_bound_elsewhere() {
    use ferry_core::{Driver, ErrorKind, Message, ReceiveOptions};
    let binder = AmqpDriver::connect(&url()).await.expect("connect");
    let publisher = AmqpDriver::connect(&url()).await.expect("connect");
    let t = ferry_testkit::unique_topic("delayed");
    let q = unique_queue("delayed");
    binder.create_topic(&t).await.expect("create_topic");
    binder
        .create_queue(&q, QueueOptions::default())
        .await
        .expect("create_queue");
    binder.bind(&t, &q, "order.*").await.expect("bind");
    let sent = std::time::Instant::now();
    publisher
        .publish(
            &t,
            "order.cancel",
            vec![
                Message::new("cancel unpaid order")
                    .with_id("o-1")
                    .with_delay(Duration::from_secs(1)),
            ],
        )
        .await
        .expect("a delayed publish to a topic bound by another driver");
    let stats = binder.stats(Some(&q)).await.expect("stats");
    assert_eq!(
        stats[0].delayed, 1,
        "waiting in the delay levels: {stats:?}"
    );
    let got = binder
        .receive(
            &q,
            ReceiveOptions::max(1)
                .with_lease(Duration::from_secs(30))
                .with_wait(Duration::from_secs(20)),
        )
        .await
        .expect("receive");
    assert_eq!(got.len(), 1, "delivered after its delay");
    assert!(sent.elapsed() >= Duration::from_secs(1), "never early");
    assert_eq!(got[0].id, "o-1");
    assert_eq!(got[0].route_key.as_deref(), Some("order.cancel"));
    assert!(
        got[0].headers.keys().all(|k| !k.starts_with("x-ferry")),
        "no routing state leaks into the headers: {:?}",
        got[0].headers
    );
    binder.ack(&got[0].receipt).await.expect("ack");
    let err = publisher
        .publish(
            &t,
            "invoice.sent",
            vec![Message::new("x").with_delay(Duration::from_secs(1))],
        )
        .await
        .expect_err("no binding matches");
    assert_eq!(err.kind(), ErrorKind::Unroutable);
    binder.unbind(&t, &q, "order.*").await.expect("unbind");
    let err = publisher
        .publish(
            &t,
            "order.cancel",
            vec![Message::new("x").with_delay(Duration::from_secs(1))],
        )
        .await
        .expect_err("unbound: the delayed path is gone too");
    assert_eq!(err.kind(), ErrorKind::Unroutable);
    binder.delete_topic(&t).await.expect("delete_topic");
    binder.delete_queue(&q).await.expect("delete_queue");
}

/// A pause is kept on the broker (the queue's pause marker), so another driver (another
/// process) sees it within about a second, a fresh driver sees it at once, and
/// `create_queue` by another driver leaves it in place.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_is_seen_by_other_drivers() {
    use ferry_core::{Driver, Message, ReceiveOptions};
    let a = AmqpDriver::connect(&url()).await.expect("connect");
    let b = AmqpDriver::connect(&url()).await.expect("connect");
    let q = unique_queue("pause");
    a.create_queue(&q, QueueOptions::default())
        .await
        .expect("create_queue");
    a.send(&q, vec![Message::new("x").with_id("x")])
        .await
        .expect("send");
    assert!(!b.get_queue(&q).await.expect("get_queue").paused);
    a.set_paused(&q, true).await.expect("pause");
    ferry_testkit::eventually(Duration::from_secs(5), "b sees a's pause", || async {
        b.get_queue(&q)
            .await
            .expect("get_queue")
            .paused
            .then_some(())
    })
    .await;
    assert!(
        b.receive(
            &q,
            ReceiveOptions::max(5).with_wait(Duration::from_millis(300))
        )
        .await
        .expect("receive")
        .is_empty(),
        "b delivers nothing while a's pause holds"
    );
    b.create_queue(&q, QueueOptions::default().with_max_attempts(4))
        .await
        .expect("create_queue from b");
    let c = AmqpDriver::connect(&url()).await.expect("connect");
    assert!(
        c.get_queue(&q).await.expect("get_queue").paused,
        "a fresh driver reads the pause from the broker, and b's create_queue kept it"
    );
    a.set_paused(&q, false).await.expect("resume");
    let got = b
        .receive(
            &q,
            ReceiveOptions::max(5).with_wait(Duration::from_secs(10)),
        )
        .await
        .expect("receive");
    assert_eq!(got.len(), 1, "b delivers after a's resume");
    b.ack(&got[0].receipt).await.expect("ack");
    a.delete_queue(&q).await.expect("delete_queue");
}
