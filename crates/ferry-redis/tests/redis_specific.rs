//! Redis-specific behaviour beyond the conformance suite, against 127.0.0.1:6379.

use std::time::Duration;

use ferry_core::{
    DeadLetters, Driver, ErrorKind, Message, QueueOptions, ReceiveOptions, Settlement, Topology,
    reason,
};
use ferry_redis::{RedisConfig, RedisDriver};

fn url() -> String {
    std::env::var("FERRY_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_string())
}

fn prefix() -> String {
    format!(
        "ferry-test:{}-{:08x}",
        std::process::id(),
        fastrand::u32(..)
    )
}

async fn raw() -> redis::aio::MultiplexedConnection {
    redis::Client::open(url())
        .expect("url")
        .get_multiplexed_async_connection()
        .await
        .expect("raw connection")
}

/// Bytes that are not an envelope are dead-lettered as `decode_error`, bytes intact,
/// and the good messages around them are still delivered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn undecodable_envelope_is_dead_lettered_with_its_bytes() {
    let p = prefix();
    let d = RedisDriver::connect_with(RedisConfig::new(url()).with_prefix(&p))
        .await
        .expect("connect");
    let q = ferry_testkit::unique_queue("redis");
    d.create_queue(&q, QueueOptions::default())
        .await
        .expect("create");
    d.send(
        &q,
        vec![
            Message::new("a").with_id("bad"),
            Message::new("b").with_id("good"),
        ],
    )
    .await
    .expect("send");
    let mut c = raw().await;
    let () = redis::cmd("HSET")
        .arg(format!("{{{p}:{q}}}:msg"))
        .arg("bad")
        .arg(&b"\xc1not msgpack"[..])
        .query_async(&mut c)
        .await
        .expect("corrupt");
    let got = d
        .receive(&q, ReceiveOptions::max(10))
        .await
        .expect("receive");
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].id, "good");
    let dl = d.get_dead_letter(&q, "bad").await.expect("dead letter");
    assert_eq!(dl.reason, reason::DECODE_ERROR);
    assert_eq!(dl.payload.as_ref(), b"\xc1not msgpack");
    assert!(dl.last_error.is_some());
}

/// A batch settle survives an empty script cache (redis restart, SCRIPT FLUSH).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn settle_reloads_scripts_after_flush() {
    let d = RedisDriver::connect_with(RedisConfig::new(url()).with_prefix(prefix()))
        .await
        .expect("connect");
    let q = ferry_testkit::unique_queue("redis");
    d.create_queue(&q, QueueOptions::default())
        .await
        .expect("create");
    d.send(&q, (0..3).map(|i| Message::new(format!("{i}"))).collect())
        .await
        .expect("send");
    let got = d
        .receive(&q, ReceiveOptions::max(10))
        .await
        .expect("receive");
    assert_eq!(got.len(), 3);
    let () = redis::cmd("SCRIPT")
        .arg("FLUSH")
        .query_async(&mut raw().await)
        .await
        .expect("flush");
    let results = d
        .settle(
            got.iter()
                .map(|g| Settlement::ack(g.receipt.clone()))
                .collect(),
        )
        .await
        .expect("settle");
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    let s = d.stats(Some(&q)).await.expect("stats");
    assert!(s[0].is_drained());
}

/// No server: a clear Unavailable error, not a hang or a panic.
#[tokio::test]
async fn refused_connection_is_unavailable() {
    let mut config = RedisConfig::new("redis://127.0.0.1:1");
    config.connection_timeout = Duration::from_millis(200);
    let err = RedisDriver::connect_with(config)
        .await
        .expect_err("nothing listens on port 1");
    assert_eq!(err.kind(), ErrorKind::Unavailable, "{err}");
    let err = RedisDriver::connect("not a url")
        .await
        .expect_err("bad url");
    assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
}

/// A huge `max` is capped, not sent to Redis as a number Lua cannot format.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn huge_receive_max_is_capped() {
    let d = RedisDriver::connect_with(RedisConfig::new(url()).with_prefix(prefix()))
        .await
        .expect("connect");
    let q = ferry_testkit::unique_queue("redis");
    d.create_queue(&q, QueueOptions::default())
        .await
        .expect("create");
    d.send(&q, vec![Message::new("x")]).await.expect("send");
    let got = d
        .receive(&q, ReceiveOptions::max(usize::MAX))
        .await
        .expect("receive");
    assert_eq!(got.len(), 1);
}

/// Every path of a message's life (ack; retry with an error then ack; dead letter with an
/// error, requeue, ack) leaves no per-message state behind: only the history remains.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_finished_life_leaves_no_state_behind() {
    let p = prefix();
    let d = RedisDriver::connect_with(RedisConfig::new(url()).with_prefix(&p))
        .await
        .expect("connect");
    let q = ferry_testkit::unique_queue("redis");
    d.create_queue(&q, QueueOptions::default())
        .await
        .expect("create");
    let ids = ["m1", "m2", "m3"];
    d.send(
        &q,
        ids.iter().map(|i| Message::new(*i).with_id(*i)).collect(),
    )
    .await
    .expect("send");
    // Before any delivery the `sent` event lives in front of the stored envelope.
    let h = d.history(&q, "m1").await.expect("history");
    assert_eq!(h.len(), 1);
    assert_eq!(h[0].event, "sent");
    let got = d
        .receive(&q, ReceiveOptions::max(3))
        .await
        .expect("receive");
    assert_eq!(got.len(), 3);
    assert_eq!(
        got[0].payload.as_ref(),
        b"m1",
        "envelope intact behind the event"
    );
    d.ack(&got[0].receipt).await.expect("ack m1");
    d.retry(
        &got[1].receipt,
        std::time::SystemTime::now(),
        Some("boom".into()),
    )
    .await
    .expect("retry m2");
    d.dead_letter(&got[2].receipt, "poison", Some("bad".into()))
        .await
        .expect("dead m3");
    assert_eq!(
        d.requeue_dead_letters(&q, ferry_core::Selection::Ids(vec!["m3".into()]))
            .await
            .expect("requeue"),
        1
    );
    let again = d
        .receive(&q, ReceiveOptions::max(3))
        .await
        .expect("receive");
    assert_eq!(again.len(), 2);
    for g in &again {
        d.ack(&g.receipt).await.expect("ack");
    }
    let mut c = raw().await;
    let base = format!("{{{p}:{q}}}");
    for h in ["msg", "st", "err"] {
        let n: i64 = redis::cmd("HLEN")
            .arg(format!("{base}:{h}"))
            .query_async(&mut c)
            .await
            .expect("hlen");
        assert_eq!(n, 0, "hash {h} not empty");
    }
    for k in ["leased", "dead", "dr:poison", "did:m3", "dreasons"] {
        let n: i64 = redis::cmd("EXISTS")
            .arg(format!("{base}:{k}"))
            .query_async(&mut c)
            .await
            .expect("exists");
        assert_eq!(n, 0, "key {k} left behind");
    }
    let h = d.history(&q, "m3").await.expect("history");
    let events: Vec<&str> = h.iter().map(|e| e.event.as_str()).collect();
    assert_eq!(
        events,
        [
            "sent",
            "delivered",
            "dead_lettered",
            "requeued",
            "delivered",
            "acked"
        ]
    );
    d.delete_queue(&q).await.expect("delete");
    let left: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{base}*"))
        .query_async(&mut c)
        .await
        .expect("keys");
    assert!(left.is_empty(), "delete_queue left {left:?}");
}

/// Requeue-all and purge work in chunks (1,000 per script) and cover every dead letter;
/// the reason index pages like the full list.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letter_bulk_operations_cover_more_than_one_chunk() {
    let d = RedisDriver::connect_with(RedisConfig::new(url()).with_prefix(prefix()))
        .await
        .expect("connect");
    let q = ferry_testkit::unique_queue("redis");
    d.create_queue(&q, QueueOptions::default())
        .await
        .expect("create");
    let n = 2_500;
    let kill_all = |got: Vec<ferry_core::Delivery>| {
        got.into_iter()
            .enumerate()
            .map(|(i, g)| Settlement {
                receipt: g.receipt,
                action: ferry_core::SettleAction::DeadLetter {
                    reason: if i % 2 == 0 { "even" } else { "odd" }.into(),
                    error: None,
                },
            })
            .collect::<Vec<_>>()
    };
    d.send(
        &q,
        (0..n)
            .map(|i| Message::new("x").with_id(format!("d{i:05}")))
            .collect(),
    )
    .await
    .expect("send");
    let got = d
        .receive(&q, ReceiveOptions::max(n))
        .await
        .expect("receive");
    assert_eq!(got.len(), n);
    assert!(
        d.settle(kill_all(got))
            .await
            .expect("settle")
            .iter()
            .all(Result::is_ok)
    );
    let page = d
        .list_dead_letters(&q, {
            let mut query = ferry_core::DeadLetterQuery::page(10, 3);
            query.reason = Some("odd".into());
            query
        })
        .await
        .expect("list");
    let ids: Vec<&str> = page.iter().map(|l| l.id.as_str()).collect();
    assert_eq!(ids, ["d00021", "d00023", "d00025"]);
    assert_eq!(
        d.requeue_dead_letters(&q, ferry_core::Selection::All)
            .await
            .expect("requeue all"),
        n as u64
    );
    let got = d
        .receive(&q, ReceiveOptions::max(n))
        .await
        .expect("receive");
    assert_eq!(got.len(), n);
    assert!(
        d.settle(kill_all(got))
            .await
            .expect("settle")
            .iter()
            .all(Result::is_ok)
    );
    assert_eq!(
        d.delete_dead_letters(&q, ferry_core::Selection::All)
            .await
            .expect("purge"),
        n as u64
    );
    let stats = d.stats(Some(&q)).await.expect("stats");
    assert_eq!((stats[0].dead, stats[0].ready), (0, 0));
    d.delete_queue(&q).await.expect("delete");
}

async fn fresh(
    history: Option<std::time::Duration>,
) -> (RedisDriver, ferry_core::QueueName, String) {
    let p = prefix();
    let mut config = RedisConfig::new(url()).with_prefix(&p);
    config.history = history;
    let d = RedisDriver::connect_with(config).await.expect("connect");
    let q = ferry_testkit::unique_queue("redis");
    d.create_queue(&q, QueueOptions::default())
        .await
        .expect("create");
    (d, q, p)
}

async fn kill(d: &RedisDriver, q: &ferry_core::QueueName, n: usize) {
    let got = d.receive(q, ReceiveOptions::max(n)).await.expect("receive");
    assert_eq!(got.len(), n);
    for g in got {
        d.dead_letter(&g.receipt, "poison", None)
            .await
            .expect("dead");
    }
}

/// Requeue-all keeps the dead letters' order and requeues only the newest death of an
/// id (an older copy stays dead instead of running again).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requeue_all_keeps_order_and_takes_the_newest_death() {
    let (d, q, _) = fresh(None).await;
    d.send(&q, vec![Message::new("x-old").with_id("x")])
        .await
        .expect("send");
    kill(&d, &q, 1).await;
    d.send(
        &q,
        ["m1", "m2", "m3"]
            .iter()
            .map(|i| Message::new(*i).with_id(*i))
            .collect(),
    )
    .await
    .expect("send");
    kill(&d, &q, 3).await;
    d.send(&q, vec![Message::new("x-new").with_id("x")])
        .await
        .expect("send");
    kill(&d, &q, 1).await;
    let n = d
        .requeue_dead_letters(&q, ferry_core::Selection::All)
        .await
        .expect("requeue all");
    assert_eq!(n, 4);
    let got = d
        .receive(&q, ReceiveOptions::max(10))
        .await
        .expect("receive");
    let payloads: Vec<&[u8]> = got.iter().map(|g| g.payload.as_ref()).collect();
    assert_eq!(payloads, [&b"m1"[..], b"m2", b"m3", b"x-new"]);
    let left = d
        .list_dead_letters(&q, ferry_core::DeadLetterQuery::page(0, u64::MAX))
        .await
        .expect("a huge limit is fine");
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].payload.as_ref(), b"x-old");
    d.delete_queue(&q).await.expect("delete");
}

/// History pruning spares dead letters (kept with their history until requeued or
/// purged), and a retry far in the future waits instead of wrapping around to "now".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pruning_spares_dead_letters_and_far_retries_wait() {
    let (d, q, _) = fresh(Some(std::time::Duration::from_millis(1))).await;
    d.send(&q, vec![Message::new("a").with_id("dead-one")])
        .await
        .expect("send");
    kill(&d, &q, 1).await;
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    // Another life ends: its flush prunes what is older than the 1 ms retention.
    d.send(&q, vec![Message::new("b").with_id("acked-one")])
        .await
        .expect("send");
    let got = d
        .receive(&q, ReceiveOptions::max(1))
        .await
        .expect("receive");
    d.ack(&got[0].receipt).await.expect("ack");
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    d.send(&q, vec![Message::new("c").with_id("far")])
        .await
        .expect("send");
    let got = d
        .receive(&q, ReceiveOptions::max(1))
        .await
        .expect("receive");
    let later = std::time::SystemTime::now() + std::time::Duration::from_secs(200 * 365 * 86_400);
    d.retry(&got[0].receipt, later, None).await.expect("retry");
    // ends another life, pruning again
    d.send(&q, vec![Message::new("d").with_id("acked-two")])
        .await
        .expect("send");
    let got = d
        .receive(&q, ReceiveOptions::max(5))
        .await
        .expect("receive");
    let ids: Vec<&str> = got.iter().map(|g| g.id.as_str()).collect();
    assert_eq!(ids, ["acked-two"], "the far retry must not come back now");
    d.ack(&got[0].receipt).await.expect("ack");
    let h = d.history(&q, "dead-one").await.expect("history");
    let events: Vec<&str> = h.iter().map(|e| e.event.as_str()).collect();
    assert_eq!(events, ["sent", "delivered", "dead_lettered"]);
    assert!(
        d.history(&q, "acked-one")
            .await
            .expect("history")
            .is_empty(),
        "pruned"
    );
    d.delete_queue(&q).await.expect("delete");
}

/// Deleting a queue with more dead letters than one step handles leaves no key behind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_queue_with_many_dead_letters_takes_steps_and_leaves_nothing() {
    let (d, q, p) = fresh(None).await;
    let n = 1_500;
    d.send(
        &q,
        (0..n)
            .map(|i| Message::new("x").with_id(format!("k{i}")))
            .collect(),
    )
    .await
    .expect("send");
    let got = d
        .receive(&q, ReceiveOptions::max(n))
        .await
        .expect("receive");
    let dead = got
        .into_iter()
        .map(|g| Settlement {
            receipt: g.receipt,
            action: ferry_core::SettleAction::DeadLetter {
                reason: "poison".into(),
                error: None,
            },
        })
        .collect();
    d.settle(dead).await.expect("settle");
    d.delete_queue(&q).await.expect("delete");
    let left: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{{{p}:{q}}}*"))
        .query_async(&mut raw().await)
        .await
        .expect("keys");
    assert!(
        left.is_empty(),
        "{} keys left, like {:?}",
        left.len(),
        left.first()
    );
}

/// A pause is stored in Redis (the `paused` field of the queue's options hash), so a
/// second driver (another process) sees it at once, and its receives hand out nothing
/// until the resume.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_is_shared_by_every_driver() {
    let p = prefix();
    let connect = || async {
        RedisDriver::connect_with(RedisConfig::new(url()).with_prefix(&p))
            .await
            .expect("connect")
    };
    let (a, b) = (connect().await, connect().await);
    let q = ferry_testkit::unique_queue("redis-pause");
    a.create_queue(&q, QueueOptions::default())
        .await
        .expect("create");
    a.send(&q, vec![Message::new("x")]).await.expect("send");
    a.set_paused(&q, true).await.expect("pause");
    let mut c = raw().await;
    let flag: Option<String> = redis::cmd("HGET")
        .arg(format!("{{{p}:{q}}}:opts"))
        .arg("paused")
        .query_async(&mut c)
        .await
        .expect("hget");
    assert_eq!(
        flag.as_deref(),
        Some("1"),
        "the pause is in the options hash"
    );
    assert!(
        b.get_queue(&q).await.expect("get").paused,
        "b sees a's pause"
    );
    assert!(
        b.receive(&q, ReceiveOptions::max(5))
            .await
            .expect("receive")
            .is_empty(),
        "b gets nothing while a's pause holds"
    );
    a.set_paused(&q, false).await.expect("resume");
    let got = b
        .receive(&q, ReceiveOptions::max(5))
        .await
        .expect("receive");
    assert_eq!(got.len(), 1, "b delivers after a's resume");
    b.ack(&got[0].receipt).await.expect("ack");
    a.delete_queue(&q).await.expect("delete");
}
