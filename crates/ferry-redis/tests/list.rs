//! The legacy list flavour against 127.0.0.1:6379: raw `LPUSH` producers, a
//! [`ListBridge`] into a ferry queue, and an ordinary consumer on that queue.
//!
//! Every test uses its own key prefix, list key and queue, and deletes them at the end.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use ferry_core::{
    Backoff, Consumer, DeadLetterQuery, DeadLetters, Delivery, Driver, ErrorKind, Limits, Message,
    QueueName, QueueOptions, ReceiveOptions, RetryPolicy, Settlement, Topology, reason,
};
use ferry_redis::{ListBridge, RedisConfig, RedisDriver, SOURCE_HEADER};
use ferry_testkit::ledger::{Event, FinalState, check};
use tokio::sync::oneshot;

fn url() -> String {
    std::env::var("FERRY_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_string())
}

/// A unique key prefix, list key and queue for one test.
struct Names {
    prefix: String,
    list: String,
    queue: QueueName,
}

impl Names {
    fn new(tag: &str) -> Names {
        Names {
            prefix: format!(
                "ferry-test:{}-{:08x}",
                std::process::id(),
                fastrand::u32(..)
            ),
            list: ferry_testkit::unique_name(&format!("ferry-test-list-{tag}")),
            queue: ferry_testkit::unique_queue(&format!("list-{tag}")),
        }
    }

    async fn driver(&self) -> RedisDriver {
        RedisDriver::connect_with(RedisConfig::new(url()).with_prefix(&self.prefix))
            .await
            .expect("connect")
    }

    /// Deletes the queue (if it exists) and every key the bridge uses.
    async fn clean(&self, bridge: &ListBridge) {
        let d = self.driver().await;
        let _ = d.delete_queue(&self.queue).await;
        let mut c = raw().await;
        for k in bridge.keys().all() {
            let _: i64 = redis::cmd("DEL")
                .arg(k)
                .query_async(&mut c)
                .await
                .expect("del");
        }
    }
}

async fn raw() -> redis::aio::MultiplexedConnection {
    redis::Client::open(url())
        .expect("url")
        .get_multiplexed_async_connection()
        .await
        .expect("raw connection")
}

/// `LPUSH key payloads…` as any producer would, in chunks.
async fn lpush(key: &str, payloads: &[Vec<u8>]) {
    let mut c = raw().await;
    for chunk in payloads.chunks(100) {
        let _: i64 = redis::cmd("LPUSH")
            .arg(key)
            .arg(chunk)
            .query_async(&mut c)
            .await
            .expect("lpush");
    }
}

fn fast_retries(max_attempts: u32) -> RetryPolicy {
    RetryPolicy::default()
        .with_max_attempts(max_attempts)
        .with_backoff(Backoff::Fixed(Duration::from_millis(20)))
}

/// A consumer that records each handled payload, failing the ones starting with `fail`.
fn recording_consumer(
    driver: Arc<dyn Driver>,
    queue: &QueueName,
    list: &str,
    effects: Arc<Mutex<Vec<String>>>,
) -> Consumer {
    let expected_source = format!("redis-list:{list}");
    let id_prefix = format!("list:{list}:");
    Consumer::builder(queue.clone())
        .concurrency(8)
        .retry_policy(fast_retries(3))
        .poll(Duration::from_millis(100))
        .build(driver, move |d: Delivery| {
            let effects = effects.clone();
            let ok_meta = d.headers.get(SOURCE_HEADER) == Some(&expected_source)
                && d.id.starts_with(&id_prefix);
            async move {
                let payload = String::from_utf8_lossy(&d.payload).into_owned();
                if !ok_meta {
                    return Err(format!("bad id or header on {}: {:?}", d.id, d.headers));
                }
                if payload.starts_with("fail") {
                    return Err("refused on purpose".to_string());
                }
                effects.lock().expect("lock").push(payload);
                Ok(())
            }
        })
}

/// 500 raw payloads go through the bridge and a consumer: each handled once, the
/// failing ones dead-lettered after their retries, nothing left in the list or parked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_pushed_payload_is_handled_once_or_dead_lettered() {
    let n = Names::new("ledger");
    let driver = n.driver().await;
    driver
        .create_queue(&n.queue, QueueOptions::default().with_max_attempts(3))
        .await
        .expect("queue");
    let payloads: Vec<String> = (0..500)
        .map(|i| {
            if i % 50 == 7 {
                format!("fail-{i:03}")
            } else {
                format!("ok-{i:03}")
            }
        })
        .collect();
    let bytes: Vec<Vec<u8>> = payloads.iter().map(|p| p.clone().into_bytes()).collect();
    lpush(&n.list, &bytes).await;

    let bridge = ListBridge::new(driver.clone(), n.list.clone(), n.queue.clone())
        .expect("bridge")
        .batch(64);
    let (stop_bridge, bridge_stopped) = oneshot::channel::<()>();
    let b = bridge.clone();
    let bridge_task = tokio::spawn(async move {
        b.run(async {
            let _ = bridge_stopped.await;
        })
        .await
    });
    let effects = Arc::new(Mutex::new(Vec::new()));
    let dyn_driver: Arc<dyn Driver> = Arc::new(driver.clone());
    let consumer = recording_consumer(dyn_driver, &n.queue, &n.list, effects.clone());
    let (stop_consumer, consumer_stopped) = oneshot::channel::<()>();
    let consumer_task = tokio::spawn(consumer.run(async {
        let _ = consumer_stopped.await;
    }));

    let d = driver.clone();
    let q = n.queue.clone();
    let b = bridge.clone();
    ferry_testkit::eventually(Duration::from_secs(60), "list moved and queue done", || {
        let (d, q, b) = (d.clone(), q.clone(), b.clone());
        async move {
            let backlog = b.backlog().await.ok()?;
            let stats = d.stats(Some(&q)).await.ok()?;
            (backlog.waiting == 0
                && backlog.moving == 0
                && stats[0].is_drained()
                && stats[0].dead == 10)
                .then_some(())
        }
    })
    .await;
    let _ = stop_consumer.send(());
    let _ = stop_bridge.send(());
    let report = consumer_task.await.expect("join").expect("consumer");
    let stats = bridge_task.await.expect("join").expect("bridge");
    assert_eq!(stats.moved, 500, "{stats:?}");
    assert_eq!(stats.enqueued, 500, "{stats:?}");
    assert_eq!(stats.reclaimed + stats.rejected + stats.duplicates, 0);
    assert_eq!(report.acked, 490, "{report:?}");
    assert_eq!(report.dead_lettered, 10, "{report:?}");

    let dead = driver
        .list_dead_letters(&n.queue, DeadLetterQuery::page(0, 100))
        .await
        .expect("dead letters");
    assert!(dead.iter().all(|dl| dl.reason == reason::MAX_ATTEMPTS));
    assert!(dead.iter().all(|dl| dl.attempts == 3));
    let mut events: Vec<Event> = payloads
        .iter()
        .map(|p| Event::Sent { id: p.clone() })
        .collect();
    events.extend(
        effects
            .lock()
            .expect("lock")
            .iter()
            .map(|p| Event::Effect { id: p.clone() }),
    );
    let end = FinalState {
        queued: Default::default(),
        dead: dead
            .iter()
            .map(|dl| String::from_utf8_lossy(&dl.payload).into_owned())
            .collect(),
    };
    let verdict = check(&events, &end);
    verdict.assert_ok();
    assert_eq!(verdict.processed, 490);
    assert!(end.dead.iter().all(|p| p.starts_with("fail")));
    let backlog = bridge.backlog().await.expect("backlog");
    assert_eq!((backlog.waiting, backlog.moving), (0, 0));
    n.clean(&bridge).await;
}

/// Takes items as a bridge would and returns (taken-at ms, seq, payload) per item, then
/// "dies": no send, no confirm.
async fn take_and_die(bridge: &ListBridge, n: usize) -> Vec<(i64, i64, Vec<u8>)> {
    let script = redis::Script::new(include_str!("../src/lua/list_move.lua"));
    let k = bridge.keys();
    let (at, rest): (i64, Vec<(i64, Vec<u8>)>) = {
        let v: Vec<redis::Value> = script
            .key(&k.list)
            .key(&k.seq)
            .key(&k.moving)
            .key(&k.moving_at)
            .arg(n)
            .invoke_async(&mut raw().await)
            .await
            .expect("take");
        let mut it = v.into_iter();
        let at: i64 = redis::from_redis_value(it.next().expect("stamp")).expect("int");
        let rest: Vec<redis::Value> = it.collect();
        let pairs = rest
            .chunks(2)
            .map(|c| {
                (
                    redis::from_redis_value(c[0].clone()).expect("seq"),
                    redis::from_redis_value(c[1].clone()).expect("payload"),
                )
            })
            .collect();
        (at, pairs)
    };
    rest.into_iter().map(|(s, p)| (at, s, p)).collect()
}

/// Bridges killed between their steps lose nothing: items parked by a bridge that died
/// after taking them are sent by the next bridge once the grace has passed; items a
/// bridge had also sent are not added twice while still queued, and the one already
/// consumed is delivered again (the documented duplicate window).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn items_of_a_killed_bridge_are_reclaimed() {
    let n = Names::new("crash");
    let driver = n.driver().await;
    let payloads: Vec<Vec<u8>> = (0..20)
        .map(|i| format!("job-{i:02}").into_bytes())
        .collect();
    lpush(&n.list, &payloads).await;
    let bridge = ListBridge::new(driver.clone(), n.list.clone(), n.queue.clone())
        .expect("bridge")
        .reclaim_after(Duration::from_millis(300))
        .until_empty(true);

    // Bridge A dies after step 1 with 8 items.
    let parked = take_and_die(&bridge, 8).await;
    assert_eq!(parked.len(), 8);
    // Oldest first: the first payloads pushed are the first taken.
    assert_eq!(parked[0].2, b"job-00");
    // Bridge B takes 4 more, sends them (step 2) and dies before confirming (step 3).
    let sent = take_and_die(&bridge, 4).await;
    driver
        .create_queue(&n.queue, QueueOptions::default())
        .await
        .expect("queue");
    let messages: Vec<Message> = sent
        .iter()
        .map(|(at, seq, p)| Message::new(p.clone()).with_id(format!("list:{}:{at}-{seq}", n.list)))
        .collect();
    driver.send(&n.queue, messages).await.expect("send");
    // One of those is consumed and acked before anyone notices the crash.
    let mut handled: Vec<Event> = payloads
        .iter()
        .map(|p| Event::Sent {
            id: String::from_utf8_lossy(p).into_owned(),
        })
        .collect();
    let got = driver
        .receive(&n.queue, ReceiveOptions::max(1))
        .await
        .expect("receive");
    assert_eq!(got.len(), 1);
    handled.push(Event::Effect {
        id: String::from_utf8_lossy(&got[0].payload).into_owned(),
    });
    driver
        .settle(vec![Settlement::ack(got[0].receipt.clone())])
        .await
        .expect("ack");
    handled.push(Event::Fault {
        kind: "bridge killed between send and confirm".into(),
    });
    let backlog = bridge.backlog().await.expect("backlog");
    assert_eq!((backlog.waiting, backlog.moving), (8, 12));

    // Within the grace, a new bridge leaves the parked items alone.
    let early = bridge
        .clone()
        .reclaim_after(Duration::from_secs(60))
        .run(std::future::pending())
        .await
        .expect("early run");
    assert_eq!((early.moved, early.reclaimed), (8, 0), "{early:?}");
    assert_eq!(bridge.backlog().await.expect("backlog").moving, 12);
    // After it, the next bridge sends them all again, with the same ids.
    tokio::time::sleep(Duration::from_millis(350)).await;
    let stats = bridge.run(std::future::pending()).await.expect("run");
    assert_eq!(stats.reclaimed, 12, "{stats:?}");
    assert_eq!(
        stats.duplicates, 3,
        "the 3 still queued are not added twice"
    );
    assert_eq!(stats.enqueued, 9, "8 parked-only items and the acked one");
    let backlog = bridge.backlog().await.expect("backlog");
    assert_eq!((backlog.waiting, backlog.moving), (0, 0));

    let effects = Arc::new(Mutex::new(Vec::new()));
    let dyn_driver: Arc<dyn Driver> = Arc::new(driver.clone());
    let report = Consumer::builder(n.queue.clone())
        .until_empty(true)
        .build(dyn_driver, {
            let effects = effects.clone();
            move |d: Delivery| {
                let effects = effects.clone();
                async move {
                    effects
                        .lock()
                        .expect("lock")
                        .push(String::from_utf8_lossy(&d.payload).into_owned());
                    Ok::<(), std::io::Error>(())
                }
            }
        })
        .run(std::future::pending())
        .await
        .expect("consume");
    assert_eq!(report.acked, 20, "19 items and the one delivered again");
    handled.extend(
        effects
            .lock()
            .expect("lock")
            .iter()
            .map(|p| Event::Effect { id: p.clone() }),
    );
    let verdict = check(&handled, &FinalState::default());
    verdict.assert_ok();
    assert_eq!(verdict.processed, 20);
    assert_eq!(verdict.explained_duplicates, 1);
    n.clean(&bridge).await;
}

/// A payload over the size limit is set aside, raw, instead of blocking the bridge.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_payload_is_set_aside() {
    let n = Names::new("big");
    let limits = Limits {
        max_payload_bytes: 16,
        ..Limits::default()
    };
    let driver = RedisDriver::connect_with(
        RedisConfig::new(url())
            .with_prefix(&n.prefix)
            .with_limits(limits),
    )
    .await
    .expect("connect");
    let big = vec![b'x'; 100];
    lpush(
        &n.list,
        &[b"small".to_vec(), big.clone(), b"also small".to_vec()],
    )
    .await;
    let bridge = ListBridge::new(driver.clone(), n.list.clone(), n.queue.clone())
        .expect("bridge")
        .until_empty(true);
    let stats = bridge.run(std::future::pending()).await.expect("run");
    assert_eq!((stats.moved, stats.enqueued, stats.rejected), (3, 2, 1));
    let backlog = bridge.backlog().await.expect("backlog");
    assert_eq!(
        (backlog.waiting, backlog.moving, backlog.rejected),
        (0, 0, 1)
    );
    let kept: Vec<Vec<u8>> = redis::cmd("LRANGE")
        .arg(&bridge.keys().rejected)
        .arg(0)
        .arg(-1)
        .query_async(&mut raw().await)
        .await
        .expect("lrange");
    assert_eq!(kept, [big]);
    let got = driver
        .receive(&n.queue, ReceiveOptions::max(10))
        .await
        .expect("receive");
    let got: Vec<&[u8]> = got.iter().map(|d| d.payload.as_ref()).collect();
    assert_eq!(got, [&b"small"[..], &b"also small"[..]]);
    n.clean(&bridge).await;
}

/// A key holding something other than a list is an input error, and is left alone;
/// a key unusable in message ids is refused up front.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_key_type_is_an_input_error() {
    let n = Names::new("type");
    let driver = n.driver().await;
    let () = redis::cmd("SET")
        .arg(&n.list)
        .arg("not a list")
        .query_async(&mut raw().await)
        .await
        .expect("set");
    let bridge = ListBridge::new(driver.clone(), n.list.clone(), n.queue.clone()).expect("bridge");
    let err = bridge
        .run(std::future::pending())
        .await
        .expect_err("a string is not a list");
    assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
    assert!(err.to_string().contains("string"), "{err}");
    let still: String = redis::cmd("GET")
        .arg(&n.list)
        .query_async(&mut raw().await)
        .await
        .expect("get");
    assert_eq!(still, "not a list");
    for bad in ["", "a\nb", &"k".repeat(201)] {
        let err = ListBridge::new(driver.clone(), bad, n.queue.clone()).expect_err(bad);
        assert_eq!(err.kind(), ErrorKind::InvalidInput);
    }
    n.clean(&bridge).await;
}
