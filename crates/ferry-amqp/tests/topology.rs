//! Queue options are stored on the broker: another driver instance reads them, and an
//! update replaces them.

use std::time::Duration;

use ferry_amqp::AmqpDriver;
use ferry_core::{QueueOptions, Topology};
use ferry_testkit::unique_queue;

fn url() -> String {
    std::env::var("FERRY_TEST_AMQP_URL")
        .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".to_string())
}

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
