//! The broker restarts mid-stream (`rabbitmqctl stop_app`, then `start_app`) while a
//! producer sends and a consumer consumes: nothing confirmed is lost, both resume on
//! their own, and every duplicate is explained by the restart (ledger-checked).
//!
//! This stops the machine's broker for a few seconds, so it is the only test in its
//! binary (`cargo test` runs test binaries one after another) and needs the broker to
//! itself; the [`Stopped`] guard starts the broker again even if the test fails. A
//! restart recovers every durable queue of the node, and each ferry queue is 33 of them
//! (29 delay levels), so the test first deletes what earlier test binaries left in the
//! test vhost, and runs in a vhost of its own that it deletes at the end.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use ferry_amqp::AmqpDriver;
use ferry_core::{Consumer, Driver, ErrorKind, Message, QueueOptions, Topology};
use ferry_testkit::fault_script::{recording_handler, stop_when_drained};
use ferry_testkit::ledger::{Event, FinalState, check};
use ferry_testkit::{eventually, unique_queue};

use support::{Stopped, TEST_VHOST, dead_ids, delete_vhost, ensure_vhost, fault, temp_ledger};

const VHOST: &str = "ferry-restart";

fn url() -> String {
    format!("amqp://guest:guest@127.0.0.1:5672/{VHOST}")
}

const LEASE: Duration = Duration::from_secs(5);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_restart_mid_stream_loses_nothing_confirmed() {
    delete_vhost(TEST_VHOST);
    delete_vhost(VHOST);
    ensure_vhost(VHOST);
    let admin = AmqpDriver::connect(&url()).await.expect("admin connects");
    let q = unique_queue("restart");
    admin
        .create_queue(
            &q,
            QueueOptions::default()
                .with_max_attempts(1_000)
                .with_lease(LEASE),
        )
        .await
        .expect("create queue");
    let (_dir, ledger) = temp_ledger("restart");
    let producer = Arc::new(
        AmqpDriver::connect(&format!("{}?timeout=2000", url()))
            .await
            .expect("producer connects"),
    );
    let consumer_driver = Arc::new(
        AmqpDriver::connect(&format!("{}?timeout=2000", url()))
            .await
            .expect("consumer connects"),
    );

    // The producer: batches of 10 until told to stop; a send that failed in a way that
    // may have stored it is recorded as unknown (the ledger then accepts either fate).
    let stop_sending = Arc::new(AtomicBool::new(false));
    let sent_ok = Arc::new(AtomicUsize::new(0));
    let send_errors = Arc::new(AtomicUsize::new(0));
    let producing = {
        let (p, q, ledger) = (Arc::clone(&producer), q.clone(), ledger.clone());
        let (stop, ok, errors) = (
            Arc::clone(&stop_sending),
            Arc::clone(&sent_ok),
            Arc::clone(&send_errors),
        );
        tokio::spawn(async move {
            let mut n = 0u64;
            while !stop.load(Ordering::SeqCst) {
                let batch: Vec<Message> = (0..10)
                    .map(|i| Message::new(format!("p{n}")).with_id(format!("r-{n}-{i}")))
                    .collect();
                let ids: Vec<String> = batch.iter().map(|m| m.id().to_string()).collect();
                n += 1;
                match p.send(&q, batch).await {
                    Ok(_) => {
                        let events: Vec<Event> =
                            ids.into_iter().map(|id| Event::Sent { id }).collect();
                        ledger.append_all(&events).expect("ledger");
                        ok.fetch_add(10, Ordering::SeqCst);
                    }
                    Err(e) => {
                        assert_ne!(e.kind(), ErrorKind::InvalidInput, "{e}");
                        let events: Vec<Event> = ids
                            .into_iter()
                            .map(|id| Event::SendUnknown { id })
                            .collect();
                        ledger.append_all(&events).expect("ledger");
                        errors.fetch_add(1, Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
    };

    let effects = Arc::new(AtomicUsize::new(0));
    let handler = recording_handler(ledger.clone(), Arc::clone(&effects), Duration::ZERO);
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let consumer = Consumer::builder(q.clone())
        .concurrency(4)
        .lease(LEASE)
        .poll(Duration::from_millis(200))
        .build(consumer_driver, handler);
    let run = tokio::spawn(consumer.run(async move {
        let _ = stop_rx.await;
    }));

    let progress = |n: usize, what: &'static str| {
        let effects = Arc::clone(&effects);
        async move {
            eventually(Duration::from_secs(120), what, || async {
                (effects.load(Ordering::SeqCst) >= n).then_some(())
            })
            .await
        }
    };
    progress(300, "the consumer makes progress before the restart").await;
    // The restart is a fault that lasts: `stop_app` closes connections and stops
    // queues over seconds while clients still get answers, so a delivery whose ack the
    // stop ate can be redelivered before `stop_app` even returns. The ledger knows
    // faults as points, so the whole restart is marked by a fault line every 20 ms:
    // a duplicate with both copies inside it is explained, one outside it is not.
    fault(&ledger, "rabbitmqctl stop_app");
    let restarting = Arc::new(AtomicBool::new(true));
    let marker = {
        let (ledger, restarting) = (ledger.clone(), Arc::clone(&restarting));
        tokio::spawn(async move {
            while restarting.load(Ordering::SeqCst) {
                fault(&ledger, "broker restarting");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };
    // rabbitmqctl blocks: off the runtime's threads, so clients and the marker run.
    tokio::task::spawn_blocking(|| {
        let stopped = Stopped::now();
        std::thread::sleep(Duration::from_secs(2));
        drop(stopped); // start_app, and wait until the broker accepts connections
    })
    .await
    .expect("restart the broker");
    restarting.store(false, Ordering::SeqCst);
    marker.await.expect("marker task");
    fault(&ledger, "rabbitmqctl start_app done");
    let after = effects.load(Ordering::SeqCst);
    progress(after + 300, "the consumer resumes after the restart").await;
    let sent_before = sent_ok.load(Ordering::SeqCst);
    eventually(
        Duration::from_secs(60),
        "the producer resumes after the restart",
        || async { (sent_ok.load(Ordering::SeqCst) >= sent_before + 100).then_some(()) },
    )
    .await;
    fault(&ledger, "restart window over: both make progress again");
    stop_sending.store(true, Ordering::SeqCst);
    producing.await.expect("producer task");

    let report = stop_when_drained(&admin, &q, stop_tx, run).await;
    eprintln!(
        "consumer report: {report:?}; send errors during the restart: {}",
        send_errors.load(Ordering::SeqCst)
    );

    // `admin`'s first connection died with the broker's app; it reconnected on its own.
    let dead = dead_ids(&admin, &q).await;
    let (events, _) = ledger.read().expect("read ledger");
    let verdict = check(
        &events,
        &FinalState {
            queued: Default::default(),
            dead: dead.clone(),
        },
    );
    eprintln!("{verdict:?}");
    if !verdict.is_ok() {
        // The story of each unexplained duplicate, with the fault lines, for the report.
        for (i, e) in events.iter().enumerate() {
            let about = match e {
                Event::Fault { .. } => true,
                Event::Sent { id }
                | Event::SendUnknown { id }
                | Event::Delivered { id, .. }
                | Event::Effect { id } => verdict.unexplained_duplicates.contains(id),
            };
            if about {
                eprintln!("ledger line {i}: {e:?}");
            }
        }
    }
    verdict.assert_ok();
    assert!(dead.is_empty(), "nothing dead-lettered: {dead:?}");
    assert!(verdict.sent >= 600, "the producer sent through the test");
    admin.delete_queue(&q).await.expect("delete queue");
    delete_vhost(VHOST);
}
