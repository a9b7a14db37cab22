//! The re-drive loop on the memory driver, with a wrapper that fails re-drives on
//! demand to check the loop rides out transient errors.

use std::collections::BTreeSet;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;

use super::*;
use crate::driver::{
    DeadLetterQuery, DeadLetters, PublishReport, ReceiveOptions, Selection, SendReport, Settlement,
    Topology,
};
use crate::error::ErrorKind;
use crate::message::{
    Binding, DeadLetter, Delivery, Limits, Message, QueueInfo, QueueOptions, QueueStats, Receipt,
};
use crate::name::TopicName;
use crate::{MemoryDriver, reason};

/// The memory driver, whose next `fail` re-drives fail with `kind`.
#[derive(Debug)]
struct Flaky {
    inner: MemoryDriver,
    fail: AtomicU32,
    kind: ErrorKind,
    calls: AtomicU32,
}

#[async_trait]
impl Topology for Flaky {
    async fn create_queue(&self, q: &QueueName, o: QueueOptions) -> Result<()> {
        self.inner.create_queue(q, o).await
    }
    async fn get_queue(&self, q: &QueueName) -> Result<QueueInfo> {
        self.inner.get_queue(q).await
    }
    async fn list_queues(&self) -> Result<Vec<QueueInfo>> {
        self.inner.list_queues().await
    }
    async fn set_paused(&self, q: &QueueName, p: bool) -> Result<()> {
        self.inner.set_paused(q, p).await
    }
    async fn delete_queue(&self, q: &QueueName) -> Result<()> {
        self.inner.delete_queue(q).await
    }
    async fn create_topic(&self, t: &TopicName) -> Result<()> {
        self.inner.create_topic(t).await
    }
    async fn list_topics(&self) -> Result<Vec<TopicName>> {
        self.inner.list_topics().await
    }
    async fn delete_topic(&self, t: &TopicName) -> Result<()> {
        self.inner.delete_topic(t).await
    }
    async fn bind(&self, t: &TopicName, q: &QueueName, p: &str) -> Result<()> {
        self.inner.bind(t, q, p).await
    }
    async fn unbind(&self, t: &TopicName, q: &QueueName, p: &str) -> Result<()> {
        self.inner.unbind(t, q, p).await
    }
    async fn list_bindings(&self, t: &TopicName) -> Result<Vec<Binding>> {
        self.inner.list_bindings(t).await
    }
}

#[async_trait]
impl DeadLetters for Flaky {
    async fn list_dead_letters(
        &self,
        q: &QueueName,
        x: DeadLetterQuery,
    ) -> Result<Vec<DeadLetter>> {
        self.inner.list_dead_letters(q, x).await
    }
    async fn get_dead_letter(&self, q: &QueueName, id: &str) -> Result<DeadLetter> {
        self.inner.get_dead_letter(q, id).await
    }
    async fn requeue_dead_letters(&self, q: &QueueName, s: Selection) -> Result<u64> {
        self.inner.requeue_dead_letters(q, s).await
    }
    async fn delete_dead_letters(&self, q: &QueueName, s: Selection) -> Result<u64> {
        self.inner.delete_dead_letters(q, s).await
    }
    async fn approve_dead_letters(&self, q: &QueueName, s: Selection) -> Result<u64> {
        self.inner.approve_dead_letters(q, s).await
    }
    async fn redrive_approved(&self, q: &QueueName, max: u64) -> Result<Vec<String>> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let failing = self
            .fail
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        if failing {
            return Err(Error::new(self.kind, "injected failure"));
        }
        self.inner.redrive_approved(q, max).await
    }
}

#[async_trait]
impl Driver for Flaky {
    fn limits(&self) -> Limits {
        self.inner.limits()
    }
    async fn send(&self, q: &QueueName, b: Vec<Message>) -> Result<SendReport> {
        self.inner.send(q, b).await
    }
    async fn publish(&self, t: &TopicName, k: &str, b: Vec<Message>) -> Result<PublishReport> {
        self.inner.publish(t, k, b).await
    }
    async fn receive(&self, q: &QueueName, o: ReceiveOptions) -> Result<Vec<Delivery>> {
        self.inner.receive(q, o).await
    }
    async fn settle(&self, b: Vec<Settlement>) -> Result<Vec<Result<()>>> {
        self.inner.settle(b).await
    }
    async fn extend(&self, r: &Receipt, l: Duration) -> Result<SystemTime> {
        self.inner.extend(r, l).await
    }
    async fn stats(&self, q: Option<&QueueName>) -> Result<Vec<QueueStats>> {
        self.inner.stats(q).await
    }
}

fn flaky(fail: u32, kind: ErrorKind) -> Arc<Flaky> {
    Arc::new(Flaky {
        inner: MemoryDriver::new(),
        fail: AtomicU32::new(fail),
        kind,
        calls: AtomicU32::new(0),
    })
}

/// A queue with `n` dead letters `m0..`, all approved.
async fn approved_dead(d: &dyn Driver, name: &str, n: usize) -> QueueName {
    let q = QueueName::new(name).expect("name");
    d.create_queue(&q, QueueOptions::default())
        .await
        .expect("create");
    let batch = (0..n)
        .map(|i| Message::new("x").with_id(format!("m{i}")))
        .collect();
    d.send(&q, batch).await.expect("send");
    for got in d
        .receive(&q, ReceiveOptions::max(n))
        .await
        .expect("receive")
    {
        d.dead_letter(&got.receipt, reason::REJECTED, None)
            .await
            .expect("dead_letter");
    }
    d.approve_dead_letters(&q, Selection::All)
        .await
        .expect("approve");
    q
}

type Seen = Arc<Mutex<Vec<String>>>;

/// Records every id the callback reports.
fn collector() -> (Seen, impl Fn(&QueueName, &[String]) + Send + Sync) {
    let seen: Seen = Arc::default();
    let s = seen.clone();
    (seen, move |_: &QueueName, ids: &[String]| {
        s.lock().expect("lock").extend(ids.iter().cloned());
    })
}

#[tokio::test]
async fn rounds_move_approved_ones_up_to_max_and_report_each_id() {
    let d = Arc::new(MemoryDriver::new());
    let q = approved_dead(&*d, "jobs", 5).await;
    let (seen, cb) = collector();
    let r = Redriver::builder(d.clone())
        .queue(q.clone())
        .max_per_round(2)
        .every(Duration::from_millis(1))
        .on_redriven(cb)
        .build()
        .expect("build");
    assert_eq!(r.round().await.expect("round").redriven, 2, "max per round");
    let report = r
        .run(tokio::time::sleep(Duration::from_millis(200)))
        .await
        .expect("run");
    assert_eq!(report.redriven, 3);
    assert!(report.rounds >= 2);
    let seen = seen.lock().expect("lock").clone();
    let unique: BTreeSet<_> = seen.iter().cloned().collect();
    assert_eq!(unique.len(), 5, "{seen:?}");
    assert_eq!(seen.len(), 5, "each id reported once");
    assert_eq!(d.stats(Some(&q)).await.expect("stats")[0].ready, 5);
}

#[tokio::test]
async fn transient_errors_are_survived_with_backoff() {
    let d = flaky(3, ErrorKind::Unavailable);
    let q = approved_dead(&*d, "jobs", 3).await;
    let r = Redriver::builder(d.clone())
        .queue(q.clone())
        .every(Duration::from_millis(5))
        .max_backoff(Duration::from_millis(20))
        .build()
        .expect("build");
    let report = r
        .run(tokio::time::sleep(Duration::from_millis(400)))
        .await
        .expect("run survives");
    assert_eq!(report.errors, 3);
    assert_eq!(report.redriven, 3);
    assert_eq!(d.stats(Some(&q)).await.expect("stats")[0].dead, 0);
}

#[tokio::test]
async fn lasting_errors_end_the_run() {
    let d = flaky(1, ErrorKind::Unsupported);
    let q = approved_dead(&*d, "jobs", 1).await;
    let r = Redriver::builder(d.clone())
        .queue(q)
        .build()
        .expect("build");
    let e = r
        .run(std::future::pending())
        .await
        .expect_err("unsupported is not transient");
    assert_eq!(e.kind(), ErrorKind::Unsupported);
    assert!(e.to_string().contains("jobs"), "{e}");
    let missing = QueueName::new("gone").expect("name");
    let r = Redriver::builder(d).queue(missing).build().expect("build");
    let e = r.run(std::future::pending()).await.expect_err("missing");
    assert_eq!(e.kind(), ErrorKind::QueueNotFound);
}

#[tokio::test]
async fn shutdown_stops_a_long_pause_promptly() {
    let d = Arc::new(MemoryDriver::new());
    let q = approved_dead(&*d, "jobs", 1).await;
    let r = Redriver::builder(d)
        .queue(q)
        .every(Duration::from_secs(3600))
        .build()
        .expect("build");
    let started = tokio::time::Instant::now();
    let report = r
        .run(tokio::time::sleep(Duration::from_millis(50)))
        .await
        .expect("run");
    assert!(started.elapsed() < Duration::from_secs(2), "prompt stop");
    assert_eq!((report.rounds, report.redriven), (1, 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_redrivers_never_share_an_id() {
    let d = Arc::new(MemoryDriver::new());
    let q = approved_dead(&*d, "jobs", 200).await;
    let mut runs = Vec::new();
    let mut seen = Vec::new();
    for _ in 0..4 {
        let (ids, cb) = collector();
        seen.push(ids);
        let r = Redriver::builder(d.clone())
            .queue(q.clone())
            .max_per_round(7)
            .every(Duration::from_millis(1))
            .on_redriven(cb)
            .build()
            .expect("build");
        runs.push(tokio::spawn(async move {
            r.run(tokio::time::sleep(Duration::from_millis(300))).await
        }));
    }
    for run in runs {
        run.await.expect("task").expect("run");
    }
    let all: Vec<String> = seen
        .iter()
        .flat_map(|s| s.lock().expect("lock").clone())
        .collect();
    let unique: BTreeSet<_> = all.iter().collect();
    assert_eq!(all.len(), 200);
    assert_eq!(unique.len(), 200, "no id re-driven twice");
}

#[test]
fn backoff_doubles_up_to_the_cap() {
    let ms = Duration::from_millis;
    assert_eq!(backoff(ms(10), ms(100), 1), ms(20));
    assert_eq!(backoff(ms(10), ms(100), 3), ms(80));
    assert_eq!(backoff(ms(10), ms(100), 9), ms(100));
    assert_eq!(backoff(ms(500), ms(100), 2), ms(500), "never below every");
    assert_eq!(backoff(ms(10), ms(100), u32::MAX), ms(100));
}

#[test]
fn build_checks_its_settings() {
    let d: Arc<dyn Driver> = Arc::new(MemoryDriver::new());
    let q = QueueName::new("q").expect("name");
    let b = Redriver::builder(d).queue(q.clone()).queue(q);
    assert_eq!(b.clone().build().expect("ok").queue_names().len(), 1);
    let zero = b.clone().max_per_round(0).build().expect_err("max 0");
    assert_eq!(zero.kind(), ErrorKind::InvalidInput);
    let fast = b.every(Duration::ZERO).build().expect_err("every 0");
    assert_eq!(fast.kind(), ErrorKind::InvalidInput);
}
