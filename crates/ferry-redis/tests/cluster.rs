//! The conformance and runtime suites on a local 3-master Redis Cluster (started once
//! for this test binary from the installed `redis-server`), plus what is Cluster-specific:
//! queues spread over several nodes, and a topic publish across slots.

mod support;

use std::sync::{Arc, OnceLock};

use ferry_core::{Driver, Message, QueueOptions, ReceiveOptions, Topology};
use ferry_redis::{ListBridge, ListKeys, RedisConfig, RedisDriver, key_slot};

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

/// The port of the node holding `key` (which must exist).
fn node_of(key: &str) -> u16 {
    cluster()
        .nodes
        .iter()
        .find(|n| n.cli(&["EXISTS", key]).trim() == "1")
        .map(|n| n.port)
        .unwrap_or_else(|| panic!("no node holds {key}"))
}

/// The list bridge's keys share the list's slot by the server's own `CLUSTER KEYSLOT`
/// for every shape of name (plain, tagged, with stray braces), and the bridge moves a
/// list's items into a queue that lives on another node.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_bridge_moves_to_a_queue_on_another_node() {
    let node = &cluster().nodes[0];
    let slot = |key: &str| -> u16 {
        node.cli(&["CLUSTER", "KEYSLOT", key])
            .trim()
            .parse()
            .expect("keyslot")
    };
    for name in [
        "jobs",
        "{app}:jobs",
        "x{app}y",
        "a{b",
        "a}b",
        "x{}y",
        "{}",
        "}{",
        "{{a}}",
    ] {
        let keys = ListKeys::new(name, "ferry-test");
        assert_eq!(key_slot(name.as_bytes()), slot(name), "{name}");
        for k in keys.all() {
            assert_eq!(slot(k), slot(name), "{name}: {k}");
        }
    }

    let d = redis_driver().await;
    for shape in ["plain", "stray}brace", "{tagged}"] {
        let list = ferry_testkit::unique_name(&format!("ferry-test-list-{shape}"));
        let payloads: Vec<String> = (0..30).map(|i| format!("{shape}-{i:02}")).collect();
        let mut args = vec!["-c", "LPUSH", list.as_str()];
        args.extend(payloads.iter().map(String::as_str));
        node.cli(&args);
        let list_node = node_of(&list);
        // A queue on another node than the list.
        let queue = loop {
            let q = ferry_testkit::unique_queue("list-xnode");
            d.create_queue(&q, QueueOptions::default())
                .await
                .expect("queue");
            if node_of(&format!("{{ferry-test:{q}}}:opts")) != list_node {
                break q;
            }
            d.delete_queue(&q).await.expect("delete");
        };
        let bridge = ListBridge::new(d.clone(), list.clone(), queue.clone())
            .expect("bridge")
            .batch(7)
            .until_empty(true);
        let stats = bridge.run(std::future::pending()).await.expect("run");
        assert_eq!(
            (stats.moved, stats.enqueued),
            (30, 30),
            "{shape}: {stats:?}"
        );
        let backlog = bridge.backlog().await.expect("backlog");
        assert_eq!((backlog.waiting, backlog.moving), (0, 0), "{shape}");
        let got = d
            .receive(&queue, ReceiveOptions::max(100))
            .await
            .expect("receive");
        let got: Vec<String> = got
            .iter()
            .map(|g| String::from_utf8_lossy(&g.payload).into_owned())
            .collect();
        assert_eq!(got, payloads, "{shape}: oldest first");
        d.delete_queue(&queue).await.expect("delete");
        for k in bridge.keys().all() {
            node.cli(&["-c", "DEL", k]);
        }
    }
}

/// A publish whose later queues sit on a node that stops answering fails with an error
/// naming the queues that have the batch and those that may not; publishing the same
/// messages again completes it, and every queue holds each message exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partial_cluster_publish_is_reported_and_completed_by_a_retry() {
    let mut config = RedisConfig::new(cluster().url()).with_prefix("ferry-test");
    config.response_timeout = std::time::Duration::from_millis(300);
    let d = RedisDriver::connect_with(config).await.expect("connect");
    let topic = ferry_testkit::unique_topic("partial");
    d.create_topic(&topic).await.expect("topic");
    // Queues in name order whose last one lives on another node than the first.
    let mut queues: Vec<ferry_core::QueueName> = Vec::new();
    let node_of = |q: &ferry_core::QueueName| {
        let key = format!("{{ferry-test:{q}}}:opts");
        cluster()
            .nodes
            .iter()
            .position(|n| n.cli(&["EXISTS", &key]).trim() == "1")
            .expect("owner")
    };
    for i in 0..20 {
        let q = ferry_core::QueueName::new(format!("{}-{i:02}", ferry_testkit::unique_name("p")))
            .expect("name");
        d.create_queue(&q, QueueOptions::default())
            .await
            .expect("queue");
        d.bind(&topic, &q, "#").await.expect("bind");
        queues.push(q);
    }
    queues.sort();
    let first = node_of(&queues[0]);
    let last = queues
        .iter()
        .rposition(|q| node_of(q) != first)
        .expect("two nodes");
    let paused = node_of(&queues[last]);
    let batch = || {
        vec![
            Message::new("a").with_id("x1"),
            Message::new("b").with_id("x2"),
        ]
    };
    cluster().nodes[paused].cli(&["CLIENT", "PAUSE", "2000", "WRITE"]);
    let err = d
        .publish(&topic, "k", batch())
        .await
        .expect_err("a paused node fails the publish");
    let msg = err.to_string();
    assert!(
        msg.contains("publish applied to queues [") && msg.contains(queues[0].as_str()),
        "{msg}"
    );
    assert!(msg.contains("publish the same messages again"), "{msg}");
    // After the pause the same publish completes what is missing, nothing twice.
    ferry_testkit::eventually(
        std::time::Duration::from_secs(10),
        "publish again",
        || async { d.publish(&topic, "k", batch()).await.ok() },
    )
    .await;
    for q in &queues {
        let got = d
            .receive(q, ReceiveOptions::max(10))
            .await
            .expect("receive");
        let ids: Vec<&str> = got.iter().map(|g| g.id.as_str()).collect();
        assert_eq!(ids, ["x1", "x2"], "queue {q}");
        d.delete_queue(q).await.expect("delete");
    }
    d.delete_topic(&topic).await.expect("delete topic");
}
