//! The network fault script the backends' fault tests share: at given progress points
//! (effects recorded by the consumer's handlers), cut, stall, blackhole or refuse the
//! consumer's connections through a [`Proxy`], and write the fault windows into the
//! ledger, so the checker can tell a duplicate a fault explains from one it does not.
//!
//! A fault's window runs from its injection until the consumer is seen making progress
//! again (100 more effects): the ledger gets a `fault` line at its start, at the end of
//! an outage and at its end. A handler that finished inside the window may have lost its
//! ack (or its lease) to the fault, and its redelivery runs after the window.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

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
