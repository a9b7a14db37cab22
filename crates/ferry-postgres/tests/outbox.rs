//! The transactional outbox and its relay against the real PostgreSQL (and Redis):
//! committed rows reach the target, rolled-back ones never do, a transaction that
//! commits after a later one was relayed is not skipped, per-queue order holds across
//! many rounds, a refused destination does not block the others and is delivered once
//! it exists, a standby relay forwards nothing while the leader lives, and `run` wakes
//! on the commit's notification.
//!
//! Each test has its own schema (`ferry_test_<pid>_<random>`, dropped at the end);
//! `FERRY_TEST_POSTGRES_URL` / `FERRY_TEST_REDIS_URL` override the servers.

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use ferry_core::tx::Destination;
use ferry_core::{Driver, ErrorKind, Message, QueueName, QueueOptions, ReceiveOptions, TopicName};
use ferry_postgres::{Outbox, Relay};
use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;

fn redis_url() -> String {
    std::env::var("FERRY_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_string())
}

/// A fresh schema with ferry's tables, a pool on the database, and its outbox.
struct Setup {
    schema: String,
    pool: PgPool,
    outbox: Outbox,
}

impl Setup {
    async fn new() -> Setup {
        let schema = support::fresh_schema();
        let pool = PgPoolOptions::new()
            .max_connections(4)
            .connect(&support::base_url())
            .await
            .expect("connect to PostgreSQL");
        let outbox = Outbox::new(&schema).expect("schema name");
        outbox.migrate(&pool).await.expect("migrate");
        Setup {
            schema,
            pool,
            outbox,
        }
    }

    fn relay(&self, target: Arc<dyn Driver>) -> ferry_postgres::RelayBuilder {
        Relay::builder(&support::url_with_schema(&self.schema), target)
            .expect("relay")
            .every(Duration::from_millis(50))
    }

    /// Commits one transaction enqueueing `items`.
    async fn commit(&self, items: &[(Destination, Message)]) {
        let mut tx = self.pool.begin().await.expect("begin");
        self.outbox
            .enqueue_batch(&mut tx, items)
            .await
            .expect("enqueue");
        tx.commit().await.expect("commit");
    }

    async fn pending(&self) -> u64 {
        self.outbox.pending(&self.pool).await.expect("pending")
    }

    async fn drop_schema(self) {
        let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
            "DROP SCHEMA IF EXISTS {} CASCADE",
            self.schema
        )))
        .execute(&self.pool)
        .await;
    }
}

fn embedded() -> (tempfile::TempDir, Arc<dyn Driver>) {
    let dir = tempfile::tempdir().expect("tempdir");
    let driver =
        ferry_embedded::EmbeddedDriver::open(dir.path().join("data")).expect("open embedded");
    (dir, Arc::new(driver))
}

async fn redis() -> Arc<dyn Driver> {
    let prefix = format!("ferry-test:outbox-{:08x}", fastrand::u32(..));
    let config = ferry_redis::RedisConfig::new(redis_url()).with_prefix(prefix);
    Arc::new(
        ferry_redis::RedisDriver::connect_with(config)
            .await
            .expect("connect redis"),
    )
}

fn q(name: &str) -> QueueName {
    QueueName::new(name).expect("queue name")
}

fn to(name: &str) -> Destination {
    Destination::queue(q(name))
}

/// Runs rounds until one forwards nothing.
async fn drain(relay: &Relay) -> u64 {
    let mut total = 0;
    loop {
        let n = relay.run_once().await.expect("relay round");
        if n == 0 {
            return total;
        }
        total += n;
    }
}

/// Every message in `queue` of `target`, in delivery order, as (id, payload) strings.
async fn received(target: &dyn Driver, queue: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    loop {
        let got = target
            .receive(&q(queue), ReceiveOptions::max(500))
            .await
            .expect("receive");
        if got.is_empty() {
            return out;
        }
        for d in got {
            out.push((
                d.id.clone(),
                String::from_utf8_lossy(&d.payload).into_owned(),
            ));
            target.ack(&d.receipt).await.expect("ack");
        }
    }
}

async fn committed_and_rolled_back(target: Arc<dyn Driver>) {
    let s = Setup::new().await;
    target
        .create_queue(&q("events"), QueueOptions::default())
        .await
        .expect("queue");
    let relay = s.relay(target.clone()).batch(16).build();

    let kept: Vec<(Destination, Message)> = (0..40)
        .map(|i| {
            (
                to("events"),
                Message::new(format!("kept-{i}")).with_id(format!("kept-{i}")),
            )
        })
        .collect();
    s.commit(&kept).await;
    let mut tx = s.pool.begin().await.expect("begin");
    for i in 0..10 {
        let m = Message::new(format!("gone-{i}")).with_id(format!("gone-{i}"));
        s.outbox
            .enqueue(&mut tx, &to("events"), &m)
            .await
            .expect("enqueue");
    }
    tx.rollback().await.expect("rollback");

    assert_eq!(drain(&relay).await, 40);
    assert_eq!(s.pending().await, 0);
    let got = received(&*target, "events").await;
    let want: Vec<(String, String)> = (0..40)
        .map(|i| (format!("kept-{i}"), format!("kept-{i}")))
        .collect();
    assert_eq!(
        got, want,
        "every committed row, in order, and no rolled-back one"
    );
    s.drop_schema().await;
}

#[tokio::test]
async fn committed_rows_reach_an_embedded_target() {
    let (_dir, target) = embedded();
    committed_and_rolled_back(target).await;
}

#[tokio::test]
async fn committed_rows_reach_a_redis_target() {
    committed_and_rolled_back(redis().await).await;
}

#[tokio::test]
async fn a_late_commit_is_not_skipped() {
    let s = Setup::new().await;
    let (_dir, target) = embedded();
    target
        .create_queue(&q("events"), QueueOptions::default())
        .await
        .expect("queue");
    let relay = s.relay(target.clone()).build();

    // A takes the lower seq but commits after B's row was relayed and deleted.
    let mut a = s.pool.begin().await.expect("begin a");
    s.outbox
        .enqueue(&mut a, &to("events"), &Message::new("a").with_id("a"))
        .await
        .expect("a");
    let mut b = s.pool.begin().await.expect("begin b");
    s.outbox
        .enqueue(&mut b, &to("events"), &Message::new("b").with_id("b"))
        .await
        .expect("b");
    b.commit().await.expect("commit b");
    assert_eq!(drain(&relay).await, 1, "B's row, the only committed one");
    a.commit().await.expect("commit a");
    assert_eq!(
        drain(&relay).await,
        1,
        "A's row, below the seq already relayed"
    );

    let ids: Vec<String> = received(&*target, "events")
        .await
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    assert_eq!(ids, ["b", "a"]);
    assert_eq!(s.pending().await, 0);
    s.drop_schema().await;
}

#[tokio::test]
async fn per_queue_order_is_kept_over_many_rounds_and_topics() {
    let s = Setup::new().await;
    let (_dir, target) = embedded();
    for name in ["q0", "q1", "q2", "audit"] {
        target
            .create_queue(&q(name), QueueOptions::default())
            .await
            .expect("queue");
    }
    let topic = TopicName::new("shop").expect("topic");
    target.create_topic(&topic).await.expect("topic");
    target
        .bind(&topic, &q("audit"), "order.*")
        .await
        .expect("bind");
    let relay = s.relay(target.clone()).batch(7).build();

    let mut want: Vec<Vec<String>> = vec![Vec::new(); 4];
    for t in 0..12 {
        let mut items = Vec::new();
        for i in 0..25 {
            let n = t * 25 + i;
            let (k, dest) = match fastrand::u8(..4) {
                3 => (
                    3,
                    Destination::topic(topic.clone(), "order.created").expect("dest"),
                ),
                k => (usize::from(k), to(&format!("q{k}"))),
            };
            want[k].push(format!("m-{n}"));
            items.push((dest, Message::new(format!("m-{n}"))));
        }
        s.commit(&items).await;
    }
    assert_eq!(drain(&relay).await, 300);
    for (k, name) in ["q0", "q1", "q2", "audit"].iter().enumerate() {
        let got: Vec<String> = received(&*target, name)
            .await
            .into_iter()
            .map(|(_, p)| p)
            .collect();
        assert_eq!(got, want[k], "order of {name}");
    }
    s.drop_schema().await;
}

#[tokio::test]
async fn a_refused_destination_waits_without_blocking_the_others() {
    let s = Setup::new().await;
    let (_dir, target) = embedded();
    target
        .create_queue(&q("now"), QueueOptions::default())
        .await
        .expect("queue");
    let topic = TopicName::new("shop").expect("topic");
    target.create_topic(&topic).await.expect("topic");
    let unbound = Destination::topic(topic.clone(), "order.created").expect("dest");
    let relay = s
        .relay(target.clone())
        .hold_backoff(Duration::from_millis(200), Duration::from_millis(400))
        .build();

    let mut items = Vec::new();
    for i in 0..3 {
        items.push((to("later"), Message::new(format!("later-{i}"))));
        items.push((to("now"), Message::new(format!("now-{i}"))));
        items.push((
            unbound.clone(),
            Message::new(format!("pub-{i}")).with_id(format!("pub-{i}")),
        ));
    }
    s.commit(&items).await;

    assert_eq!(
        relay.run_once().await.expect("round"),
        3,
        "the queue that exists"
    );
    assert_eq!(s.pending().await, 6, "refused rows stay");
    // On hold: the next rounds skip them instead of failing on them again.
    assert_eq!(relay.run_once().await.expect("round"), 0);
    let now: Vec<String> = received(&*target, "now")
        .await
        .into_iter()
        .map(|(_, p)| p)
        .collect();
    assert_eq!(now, ["now-0", "now-1", "now-2"]);

    target
        .create_queue(&q("later"), QueueOptions::default())
        .await
        .expect("queue");
    target
        .create_queue(&q("audit"), QueueOptions::default())
        .await
        .expect("queue");
    target
        .bind(&topic, &q("audit"), "order.#")
        .await
        .expect("bind");
    let deadline = Instant::now() + Duration::from_secs(10);
    while s.pending().await > 0 {
        assert!(Instant::now() < deadline, "held rows were not retried");
        relay.run_once().await.expect("round");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let later: Vec<String> = received(&*target, "later")
        .await
        .into_iter()
        .map(|(_, p)| p)
        .collect();
    assert_eq!(
        later,
        ["later-0", "later-1", "later-2"],
        "delivered, in order"
    );
    let audit: Vec<String> = received(&*target, "audit")
        .await
        .into_iter()
        .map(|(_, p)| p)
        .collect();
    assert_eq!(audit, ["pub-0", "pub-1", "pub-2"]);
    let holds: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT count(*) FROM {}.outbox_holds",
        s.schema
    )))
    .fetch_one(&s.pool)
    .await
    .expect("holds");
    assert_eq!(
        holds, 0,
        "holds are cleared once the destination takes its rows"
    );
    s.drop_schema().await;
}

#[tokio::test]
async fn a_standby_relay_forwards_nothing_until_the_leader_is_gone() {
    let s = Setup::new().await;
    let (_dir, target) = embedded();
    target
        .create_queue(&q("events"), QueueOptions::default())
        .await
        .expect("queue");
    let leader = s.relay(target.clone()).build();
    let standby = s.relay(target.clone()).build();
    assert_eq!(
        leader.run_once().await.expect("leader round"),
        0,
        "takes the lock"
    );

    s.commit(&[(to("events"), Message::new("x").with_id("x"))])
        .await;
    assert_eq!(
        standby.run_once().await.expect("standby"),
        0,
        "another relay leads"
    );
    assert_eq!(s.pending().await, 1);

    drop(leader); // its connection closes: PostgreSQL releases the lock
    let deadline = Instant::now() + Duration::from_secs(10);
    while standby.run_once().await.expect("standby") == 0 {
        assert!(Instant::now() < deadline, "standby never took over");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(s.pending().await, 0);
    s.drop_schema().await;
}

#[tokio::test]
async fn run_wakes_on_the_commit_and_stops_on_shutdown() {
    let s = Setup::new().await;
    let (_dir, target) = embedded();
    target
        .create_queue(&q("events"), QueueOptions::default())
        .await
        .expect("queue");
    // A 30 s poll: only the notification can make this quick.
    let relay = s
        .relay(target.clone())
        .every(Duration::from_secs(30))
        .build();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(async move {
        relay
            .run(async {
                let _ = stopped.await;
            })
            .await
    });
    // Let it take the lock, LISTEN and find the outbox empty.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let started = Instant::now();
    s.commit(&[(to("events"), Message::new("hello").with_id("hello"))])
        .await;
    let deadline = started + Duration::from_secs(10);
    loop {
        let stats = target.stats(Some(&q("events"))).await.expect("stats");
        if stats[0].ready == 1 {
            break;
        }
        assert!(Instant::now() < deadline, "not relayed within 10 s");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "woken by NOTIFY, not the 30 s poll"
    );
    let _ = stop.send(());
    let report = running.await.expect("join").expect("run");
    assert_eq!(report.forwarded, 1);
    assert_eq!(report.leaderships, 1);
    s.drop_schema().await;
}

#[tokio::test]
async fn bad_messages_are_refused_at_enqueue_and_write_nothing() {
    let s = Setup::new().await;
    let mut tx = s.pool.begin().await.expect("begin");
    let huge = Message::new(vec![0u8; 2 * 1024 * 1024]);
    let err = s
        .outbox
        .enqueue_batch(
            &mut tx,
            &[(to("events"), Message::new("ok")), (to("events"), huge)],
        )
        .await
        .expect_err("too large");
    assert_eq!(err.kind(), ErrorKind::TooLarge);
    tx.commit().await.expect("commit");
    assert_eq!(s.pending().await, 0, "nothing of the batch was written");
    s.drop_schema().await;
}
