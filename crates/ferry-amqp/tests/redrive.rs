//! Re-drive from two drivers (two connections, each with its own in-process lock, as
//! two processes have) over one queue: the `basic.get` claim keeps them disjoint.

mod support;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use ferry_core::{
    DeadLetterQuery, DeadLetters, Driver, Message, QueueOptions, ReceiveOptions, Selection,
    Topology,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_connections_never_redrive_one_dead_letter_twice() {
    let a = Arc::new(support::connect().await);
    let b = Arc::new(support::connect().await);
    let q = ferry_testkit::unique_queue("redrive");
    a.create_queue(&q, QueueOptions::default())
        .await
        .expect("create");
    let batch: Vec<Message> = (0..60)
        .map(|i| Message::new("x").with_id(format!("m{i:02}")))
        .collect();
    a.send(&q, batch).await.expect("send");
    let mut got = Vec::new();
    while got.len() < 60 {
        let more = a
            .receive(&q, ReceiveOptions::max(60 - got.len()))
            .await
            .expect("receive");
        assert!(!more.is_empty());
        got.extend(more);
    }
    for g in &got {
        a.dead_letter(&g.receipt, "rejected", None)
            .await
            .expect("dead_letter");
    }
    assert_eq!(
        b.approve_dead_letters(&q, Selection::All)
            .await
            .expect("approve"),
        60
    );
    let mut tasks = Vec::new();
    for d in [a.clone(), b.clone(), a.clone(), b.clone()] {
        let q = q.clone();
        tasks.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            // A connection that finds everything held by the other sees nothing for a
            // moment: keep going until several empty rounds in a row.
            let mut empty = 0;
            while empty < 5 {
                let moved = d.redrive_approved(&q, 7).await.expect("redrive");
                if moved.is_empty() {
                    empty += 1;
                    tokio::time::sleep(Duration::from_millis(20)).await;
                } else {
                    empty = 0;
                    mine.extend(moved);
                }
            }
            mine
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.expect("join"));
    }
    all.extend(a.redrive_approved(&q, 100).await.expect("rest"));
    let unique: BTreeSet<&String> = all.iter().collect();
    assert_eq!(unique.len(), all.len(), "moved twice: {all:?}");
    assert_eq!(unique.len(), 60);
    let s = a.stats(Some(&q)).await.expect("stats");
    assert_eq!((s[0].ready, s[0].dead), (60, 0));
    assert!(
        a.list_dead_letters(&q, DeadLetterQuery::default())
            .await
            .expect("list")
            .is_empty()
    );
}
