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
