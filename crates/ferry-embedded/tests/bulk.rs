//! Bulk dead-letter operations run in bounded chunks (so the writer is never held for
//! long) and still act on every row.

use std::time::Duration;

use ferry_core::{
    DeadLetters, Driver, Message, QueueOptions, ReceiveOptions, Selection, SettleAction,
    Settlement, Topology,
};
use ferry_embedded::EmbeddedDriver;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requeue_and_purge_more_than_one_chunk() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = EmbeddedDriver::open(dir.path()).expect("open");
    let q = ferry_testkit::unique_queue("bulk");
    d.create_queue(&q, QueueOptions::default())
        .await
        .expect("create");
    let n = 2_500;
    for chunk in 0..(n / 500) {
        let batch = (0..500).map(|i| Message::new("x").with_id(format!("m{chunk}-{i}")));
        d.send(&q, batch.collect()).await.expect("send");
    }
    let kill_all = |d: EmbeddedDriver| {
        let q = q.clone();
        async move {
            loop {
                let got = d
                    .receive(
                        &q,
                        ReceiveOptions::max(500).with_lease(Duration::from_secs(60)),
                    )
                    .await
                    .expect("receive");
                if got.is_empty() {
                    break;
                }
                let dead = got
                    .into_iter()
                    .map(|g| Settlement {
                        receipt: g.receipt,
                        action: SettleAction::DeadLetter {
                            reason: "rejected".into(),
                            error: None,
                        },
                    })
                    .collect();
                assert!(
                    d.settle(dead)
                        .await
                        .expect("settle")
                        .iter()
                        .all(Result::is_ok)
                );
            }
        }
    };
    kill_all(d.clone()).await;
    assert_eq!(d.stats(Some(&q)).await.expect("stats")[0].dead, n);
    let requeued = d
        .requeue_dead_letters(&q, Selection::All)
        .await
        .expect("requeue");
    assert_eq!(requeued, n, "every dead letter requeued across chunks");
    assert_eq!(d.stats(Some(&q)).await.expect("stats")[0].ready, n);
    kill_all(d.clone()).await;
    let purged = d
        .delete_dead_letters(&q, Selection::All)
        .await
        .expect("purge");
    assert_eq!(purged, n, "every dead letter purged across chunks");
    assert!(d.stats(Some(&q)).await.expect("stats")[0].is_drained());
}
