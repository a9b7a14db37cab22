//! The conformance and runtime suites on a local 3-master Redis Cluster (started once
//! for this test binary from the installed `redis-server`), plus what is Cluster-specific:
//! queues spread over several nodes, and a topic publish across slots.

mod support;

use std::sync::{Arc, OnceLock};

use ferry_core::{Driver, Message, QueueOptions, ReceiveOptions, Topology};
use ferry_redis::{RedisConfig, RedisDriver};

fn cluster() -> &'static support::Cluster {
    static CLUSTER: OnceLock<support::Cluster> = OnceLock::new();
    CLUSTER.get_or_init(support::Cluster::start)
}

async fn redis_driver() -> RedisDriver {
    let url = cluster().url();
    RedisDriver::connect_with(RedisConfig::new(url).with_prefix("ferry-test"))
        .await
        .unwrap_or_else(|e| panic!("cannot connect to the cluster: {e}"))
}

async fn driver() -> Arc<dyn Driver> {
    Arc::new(redis_driver().await)
}

ferry_testkit::conformance_suite!(driver());

mod runtime {
    use super::driver;
    ferry_testkit::runtime_suite!(driver());
}

/// Queues land on different nodes (so the suite above really crossed slots), and a
/// publish to queues on different nodes reaches every one of them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_across_nodes_reaches_every_queue() {
    let d = redis_driver().await;
    let topic = ferry_testkit::unique_topic("xslot");
    d.create_topic(&topic).await.expect("topic");
    let queues: Vec<_> = (0..12)
        .map(|_| ferry_testkit::unique_queue("xslot"))
        .collect();
    for q in &queues {
        d.create_queue(q, QueueOptions::default())
            .await
            .expect("queue");
        d.bind(&topic, q, "order.#").await.expect("bind");
    }
    // Which node holds each queue's slot.
    let mut owners = std::collections::BTreeSet::new();
    for q in &queues {
        let key = format!("{{ferry-test:{q}}}:opts");
        for n in &cluster().nodes {
            if n.cli(&["EXISTS", &key]).trim() == "1" {
                owners.insert(n.port);
            }
        }
    }
    assert!(owners.len() >= 2, "12 queues all on one node: {owners:?}");
    let report = d
        .publish(
            &topic,
            "order.created",
            vec![
                Message::new("a").with_id("p1"),
                Message::new("b").with_id("p2"),
            ],
        )
        .await
        .expect("publish");
    assert_eq!(report.queues.len(), queues.len());
    assert_eq!(report.enqueued, 2 * queues.len() as u64);
    // Publishing the same ids again (what a caller does after a partial failure) adds
    // nothing anywhere.
    let again = d
        .publish(
            &topic,
            "order.created",
            vec![
                Message::new("a").with_id("p1"),
                Message::new("b").with_id("p2"),
            ],
        )
        .await
        .expect("publish again");
    assert_eq!(again.enqueued, 0);
    assert_eq!(again.duplicates, 2 * queues.len() as u64);
    for q in &queues {
        let got = d
            .receive(q, ReceiveOptions::max(10))
            .await
            .expect("receive");
        let ids: Vec<&str> = got.iter().map(|g| g.id.as_str()).collect();
        assert_eq!(ids, ["p1", "p2"], "queue {q}");
        d.delete_queue(q).await.expect("delete");
    }
    d.delete_topic(&topic).await.expect("delete topic");
}

/// The doctor checks every master and names each one in its findings; these nodes run
/// without persistence, so each gets its own warning.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doctor_checks_every_master() {
    let d = redis_driver().await;
    let findings = d.doctor().await.expect("doctor");
    let deployment = findings
        .iter()
        .find(|f| f.check == "deployment")
        .expect("deployment finding");
    assert!(deployment.message.contains("3 master(s)"), "{deployment:?}");
    for n in &cluster().nodes {
        let node = format!("127.0.0.1:{}", n.port);
        let persistence = findings
            .iter()
            .filter(|f| f.check == "persistence" && f.message.starts_with(&node))
            .collect::<Vec<_>>();
        assert_eq!(persistence.len(), 1, "{node}: {findings:#?}");
        assert_eq!(persistence[0].severity, ferry_redis::Severity::Warn);
    }
}
