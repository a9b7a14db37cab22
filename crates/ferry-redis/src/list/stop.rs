//! The bridge's shutdown signal: a caller's future that may be waited on many times.
//!
//! The bridge races its sleeps (idle polling, backoff after an error) against the
//! shutdown future but never a Redis call, so a step is never cut in half. A completed
//! future must not be polled again, so this wrapper remembers that it fired.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

/// A shutdown future that can be awaited repeatedly (fused).
pub(super) struct Stop<F> {
    fut: Pin<Box<F>>,
    fired: bool,
}

impl<F: Future<Output = ()>> Stop<F> {
    pub(super) fn new(fut: F) -> Self {
        Stop {
            fut: Box::pin(fut),
            fired: false,
        }
    }

    /// Resolves once shutdown was asked (at once if it was already).
    async fn wait(&mut self) {
        if !self.fired {
            self.fut.as_mut().await;
            self.fired = true;
        }
    }

    /// Whether shutdown was asked, without waiting.
    pub(super) async fn asked(&mut self) -> bool {
        tokio::select! {
            biased;
            () = self.wait() => true,
            () = std::future::ready(()) => false,
        }
    }

    /// Sleeps for `d`; true if shutdown was asked first (or before).
    pub(super) async fn sleep(&mut self, d: Duration) -> bool {
        tokio::select! {
            biased;
            () = self.wait() => true,
            () = tokio::time::sleep(d) => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn fires_once_and_stays_fired() {
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let mut stop = Stop::new(async move {
            let _ = rx.await;
        });
        assert!(!stop.asked().await);
        assert!(!stop.sleep(Duration::from_millis(1)).await);
        let _ = tx.send(());
        assert!(stop.sleep(Duration::from_secs(60)).await);
        // Polling the completed future again would panic; the flag prevents it.
        assert!(stop.asked().await);
        assert!(stop.sleep(Duration::from_secs(60)).await);
    }
}
