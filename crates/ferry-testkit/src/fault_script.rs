//! The network fault script the backends' fault tests share (and the sending,
//! handling and stopping around it): at given progress points
//! (effects recorded by the consumer's handlers), cut, stall, blackhole or refuse the
//! consumer's connections through a [`Proxy`], and write the fault windows into the
//! ledger, so the checker can tell a duplicate a fault explains from one it does not.
//!
//! A fault's window runs from its injection until the consumer is seen making progress
//! again (100 more effects): the ledger gets a `fault` line at its start, at the end of
//! an outage and at its end. A handler that finished inside the window may have lost its
//! ack (or its lease) to the fault, and its redelivery runs after the window.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use ferry_core::{ConsumerReport, Delivery, Driver, Message, QueueName};

use crate::ledger::{Event, Ledger};
use crate::proxy::Proxy;
use crate::util::eventually;

/// A fault the script injects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Close the connections.
    Cut,
    /// Silence for the outage, then deliver what was held.
    Stall,
    /// Silence the connections for good; new ones work again after the outage.
    Blackhole,
    /// Close the connections and refuse new ones for the outage (the server is down).
    Down,
}

/// Waits (up to a minute) until the handlers recorded `n` effects.
pub async fn effects_reach(effects: &AtomicUsize, n: usize, what: &str) {
    eventually(Duration::from_secs(60), what, || async {
        (effects.load(Ordering::SeqCst) >= n).then_some(())
    })
    .await;
}

/// Runs `schedule` (each fault at a number of effects) against `proxy`, each outage
/// lasting `outage`, and closes each fault's window once 100 more effects (or `total`)
/// are recorded. Prints how long each recovery took.
pub async fn inject_faults(
    proxy: &Proxy,
    ledger: &Ledger,
    effects: &AtomicUsize,
    schedule: &[(usize, Fault)],
    total: usize,
    outage: Duration,
) {
    let fault = |kind: String| {
        ledger
            .append(&Event::Fault { kind })
            .expect("ledger fault line");
    };
    for &(at, what) in schedule {
        effects_reach(effects, at, "progress before the next fault").await;
        fault(format!("{what:?} at {at} effects"));
        let started = Instant::now();
        match what {
            Fault::Cut => proxy.cut(),
            Fault::Stall => {
                proxy.stall(true);
                tokio::time::sleep(outage).await;
                fault("stall over".into());
                proxy.stall(false);
            }
            Fault::Blackhole => {
                proxy.blackhole(true);
                tokio::time::sleep(outage).await;
                fault("blackhole over".into());
                proxy.blackhole(false);
            }
            Fault::Down => {
                proxy.refuse(true);
                proxy.cut();
                tokio::time::sleep(outage).await;
                fault("server back".into());
                proxy.refuse(false);
            }
        }
        let now = effects.load(Ordering::SeqCst);
        effects_reach(effects, (now + 100).min(total), "progress after a fault").await;
        fault("fault window over: progress again".into());
        eprintln!(
            "{what:?} at {at}: progress again {:?} after the fault; {} connections so far",
            started.elapsed(),
            proxy.connections()
        );
    }
}

/// A handler future, boxed so [`recording_handler`] can name its type.
pub type Handled = Pin<Box<dyn Future<Output = std::io::Result<()>> + Send>>;

/// A consumer handler for fault runs: writes `delivered`, does `work` (a sleep), writes
/// the `effect`, counts it in `effects`, and acks.
pub fn recording_handler(
    ledger: Ledger,
    effects: Arc<AtomicUsize>,
    work: Duration,
) -> impl Fn(Delivery) -> Handled + Send + Sync + Clone + 'static {
    move |d: Delivery| {
        let (ledger, effects) = (ledger.clone(), Arc::clone(&effects));
        Box::pin(async move {
            ledger.append(&Event::Delivered {
                id: d.id.clone(),
                attempt: d.attempt,
            })?;
            if !work.is_zero() {
                tokio::time::sleep(work).await;
            }
            ledger.append(&Event::Effect { id: d.id })?;
            effects.fetch_add(1, Ordering::SeqCst);
            Ok(())
        })
    }
}

/// Sends `n` messages (ids `m-<chunk>-<i>`, in batches of 100) to `queue` and writes a
/// `sent` line for each once its batch is stored.
pub async fn send_recorded(driver: &dyn Driver, queue: &QueueName, n: usize, ledger: &Ledger) {
    for chunk in 0..n.div_ceil(100) {
        let batch: Vec<Message> = (0..(n - chunk * 100).min(100))
            .map(|i| Message::new(format!("m-{chunk}-{i}")))
            .collect();
        let sent: Vec<Event> = batch
            .iter()
            .map(|m| Event::Sent {
                id: m.id().to_string(),
            })
            .collect();
        driver.send(queue, batch).await.expect("send");
        ledger.append_all(&sent).expect("ledger");
    }
}

/// Waits (up to a minute) until `queue` is drained, tells the consumer to stop, and
/// returns its report; panics if it does not stop within 30 s.
pub async fn stop_when_drained(
    driver: &dyn Driver,
    queue: &QueueName,
    stop: tokio::sync::oneshot::Sender<()>,
    run: tokio::task::JoinHandle<ferry_core::Result<ConsumerReport>>,
) -> ConsumerReport {
    eventually(Duration::from_secs(60), "the queue drains", || async {
        let s = driver.stats(Some(queue)).await.ok()?;
        s.first().filter(|s| s.is_drained()).map(|_| ())
    })
    .await;
    let _ = stop.send(());
    tokio::time::timeout(Duration::from_secs(30), run)
        .await
        .expect("the consumer stops when told")
        .expect("consumer task")
        .expect("consumer run")
}
