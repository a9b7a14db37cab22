//! Message history on the embedded backend: kept across lifecycles of one id, bounded
//! for ids that are re-sent again and again.

use std::time::Duration;

use ferry_core::{Driver, Message, QueueOptions, ReceiveOptions, Topology};
use ferry_embedded::EmbeddedDriver;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reused_id_history_is_bounded() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = EmbeddedDriver::open(dir.path()).expect("open");
    let q = ferry_testkit::unique_queue("hist");
    d.create_queue(&q, QueueOptions::default())
        .await
        .expect("create");
    let rounds = 300;
    for _ in 0..rounds {
        let report = d
            .send(&q, vec![Message::new("tick").with_id("every-minute")])
            .await
            .expect("send");
        assert_eq!(report.enqueued, 1, "a done id can be sent again");
        let got = d
            .receive(
                &q,
                ReceiveOptions::max(1).with_lease(Duration::from_secs(30)),
            )
            .await
            .expect("receive");
        d.ack(&got[0].receipt).await.expect("ack");
    }
    let events = d.history(&q, "every-minute").await.expect("history");
    assert!(!events.is_empty());
    assert!(
        events.len() < rounds * 3,
        "{} events kept for {rounds} lifecycles: not bounded",
        events.len()
    );
    let last: Vec<&str> = events
        .iter()
        .rev()
        .take(3)
        .map(|e| e.event.as_str())
        .collect();
    assert_eq!(
        last,
        ["acked", "delivered", "sent"],
        "the newest events are kept"
    );
    assert!(d.stats(Some(&q)).await.expect("stats")[0].is_drained());
}
