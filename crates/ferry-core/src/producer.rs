//! The producer API: what application code calls to send and publish.
//!
//! A thin, safe layer over [`Driver::send`]/[`Driver::publish`]: typed JSON helpers that
//! return errors instead of panicking, an optional rate limit, and trace propagation
//! (a W3C `traceparent` header is added to every message that has none, so the
//! consumer's delivery span can be tied back to the send).

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

use crate::consumer::RateLimit;
use crate::driver::{Driver, PublishReport, SendReport};
use crate::error::{Error, ErrorKind, Result};
use crate::message::Message;
use crate::name::{QueueName, TopicName};

/// The header carrying W3C trace context from producer to consumer.
pub const TRACEPARENT: &str = "traceparent";

/// Sends and publishes messages through a driver.
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// use std::sync::Arc;
/// use ferry_core::*;
///
/// #[derive(serde::Serialize, serde::Deserialize)]
/// struct Order { id: u64 }
///
/// let driver = Arc::new(MemoryDriver::new());
/// let q = QueueName::new("orders")?;
/// driver.create_queue(&q, QueueOptions::default()).await?;
/// let producer = Producer::new(driver.clone());
/// let id = producer.send_json(&q, &Order { id: 42 }).await?;
///
/// let got = driver.receive(&q, ReceiveOptions::max(1)).await?;
/// assert_eq!(got[0].id, id);
/// assert_eq!(got[0].json::<Order>()?.id, 42);
/// # Ok::<(), Error>(()) }).unwrap();
/// ```
#[derive(Clone)]
pub struct Producer {
    driver: Arc<dyn Driver>,
    rate: Option<RateLimit>,
    tx_hold: Duration,
}

/// How long a two-phase send holds its prepared message unless renewed (see
/// [`Producer::with_tx_hold`]).
pub const DEFAULT_TX_HOLD: Duration = Duration::from_secs(10);

impl std::fmt::Debug for Producer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Producer")
            .field("driver", &self.driver)
            .field("rate", &self.rate)
            .field("tx_hold", &self.tx_hold)
            .finish()
    }
}

/// A fresh W3C trace context: version 00, random trace and span ids, sampled.
///
/// ```
/// let tp = ferry_core::new_traceparent();
/// assert_eq!(tp.len(), 55);
/// assert!(tp.starts_with("00-") && tp.ends_with("-01"));
/// ```
pub fn new_traceparent() -> String {
    let trace = fastrand::u128(1..);
    let span = fastrand::u64(1..);
    format!("00-{trace:032x}-{span:016x}-01")
}

fn traced(mut m: Message) -> Message {
    if !m.headers().contains_key(TRACEPARENT) {
        m = m.with_header(TRACEPARENT, new_traceparent());
    }
    m
}

impl Producer {
    /// A producer on `driver`, without a rate limit.
    pub fn new(driver: Arc<dyn Driver>) -> Self {
        Producer {
            driver,
            rate: None,
            tx_hold: DEFAULT_TX_HOLD,
        }
    }

    /// How long [`Producer::send_tx`] holds a prepared message before a checker may
    /// ask about it if the producer stops renewing the hold (it renews every third of
    /// this while the local transaction runs). Default [`DEFAULT_TX_HOLD`]; at least
    /// 30 ms.
    ///
    /// ```
    /// use std::{sync::Arc, time::Duration};
    /// use ferry_core::{MemoryDriver, Producer};
    /// let p = Producer::new(Arc::new(MemoryDriver::new())).with_tx_hold(Duration::from_secs(3));
    /// # let _ = p;
    /// ```
    pub fn with_tx_hold(mut self, hold: Duration) -> Self {
        self.tx_hold = hold.max(Duration::from_millis(30));
        self
    }

    pub(crate) fn tx_hold(&self) -> Duration {
        self.tx_hold
    }

    pub(crate) fn driver(&self) -> &Arc<dyn Driver> {
        &self.driver
    }

    pub(crate) fn trace(&self, message: Message) -> Message {
        traced(message)
    }

    /// Sends at most this many messages per second (batches count per message).
    pub fn with_rate_limit(mut self, rate: RateLimit) -> Self {
        self.rate = Some(rate);
        self
    }

    async fn pace(&self, n: usize) {
        if let Some(rate) = &self.rate {
            rate.acquire_n(u32::try_from(n).unwrap_or(u32::MAX)).await;
        }
    }

    /// Sends one message; returns its id once it is durable. Sending an id that is
    /// still queued is a no-op that returns the id too (safe to retry).
    pub async fn send(&self, queue: &QueueName, message: Message) -> Result<String> {
        let id = message.id().to_string();
        self.send_batch(queue, vec![message]).await?;
        Ok(id)
    }

    /// Sends a batch, all or nothing.
    pub async fn send_batch(&self, queue: &QueueName, batch: Vec<Message>) -> Result<SendReport> {
        self.pace(batch.len()).await;
        let batch = batch.into_iter().map(traced).collect();
        self.driver.send(queue, batch).await
    }

    /// Publishes one message to `topic` with `route_key`.
    pub async fn publish(
        &self,
        topic: &TopicName,
        route_key: &str,
        message: Message,
    ) -> Result<PublishReport> {
        self.publish_batch(topic, route_key, vec![message]).await
    }

    /// Publishes a batch, all or nothing across the matching queues.
    pub async fn publish_batch(
        &self,
        topic: &TopicName,
        route_key: &str,
        batch: Vec<Message>,
    ) -> Result<PublishReport> {
        self.pace(batch.len()).await;
        let batch = batch.into_iter().map(traced).collect();
        self.driver.publish(topic, route_key, batch).await
    }

    /// Sends `value` as JSON (header `content-type: application/json`); returns the id.
    pub async fn send_json<T: Serialize + ?Sized>(
        &self,
        queue: &QueueName,
        value: &T,
    ) -> Result<String> {
        self.send(queue, Message::json(value)?).await
    }

    /// Publishes `value` as JSON.
    pub async fn publish_json<T: Serialize + ?Sized>(
        &self,
        topic: &TopicName,
        route_key: &str,
        value: &T,
    ) -> Result<PublishReport> {
        self.publish(topic, route_key, Message::json(value)?).await
    }
}

impl Message {
    /// A message whose payload is `value` as JSON, with `content-type: application/json`.
    ///
    /// ```
    /// let m = ferry_core::Message::json(&serde_json::json!({"n": 1}))?;
    /// assert_eq!(m.payload().as_ref(), br#"{"n":1}"#);
    /// # Ok::<(), ferry_core::Error>(())
    /// ```
    pub fn json<T: Serialize + ?Sized>(value: &T) -> Result<Message> {
        let bytes = serde_json::to_vec(value).map_err(|e| {
            Error::new(ErrorKind::InvalidInput, "value cannot be encoded as JSON").with_source(e)
        })?;
        Ok(Message::new(bytes).with_header("content-type", "application/json"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{MemoryDriver, QueueOptions, ReceiveOptions, Topology};
    use std::time::Duration;

    async fn setup() -> (Arc<MemoryDriver>, QueueName) {
        let d = Arc::new(MemoryDriver::new());
        let q = QueueName::new("q").expect("name");
        d.create_queue(&q, QueueOptions::default())
            .await
            .expect("create");
        (d, q)
    }

    #[tokio::test]
    async fn traceparent_is_added_and_kept() {
        let (d, q) = setup().await;
        let p = Producer::new(d.clone());
        p.send(&q, Message::new("a")).await.expect("send");
        p.send(&q, Message::new("b").with_header(TRACEPARENT, "00-keep-me"))
            .await
            .expect("send");
        let got = d
            .receive(&q, ReceiveOptions::max(2))
            .await
            .expect("receive");
        let tp0 = got[0].headers.get(TRACEPARENT).expect("added");
        assert_eq!(tp0.len(), 55);
        assert_eq!(
            got[1].headers.get(TRACEPARENT).map(String::as_str),
            Some("00-keep-me")
        );
    }

    #[tokio::test]
    async fn bad_json_is_an_error_not_a_panic() {
        let (d, q) = setup().await;
        let p = Producer::new(d.clone());
        let mut bad = std::collections::HashMap::new();
        bad.insert(vec![1u8], 1); // non-string map keys cannot be JSON
        let err = p.send_json(&q, &bad).await.expect_err("not JSON");
        assert_eq!(err.kind(), ErrorKind::InvalidInput);
        p.send(&q, Message::new("not json")).await.expect("send");
        let got = d
            .receive(&q, ReceiveOptions::max(1))
            .await
            .expect("receive");
        let err = got[0].json::<serde_json::Value>().expect_err("not JSON");
        assert_eq!(err.kind(), ErrorKind::Decode);
    }

    #[tokio::test(start_paused = true)]
    async fn rate_limit_paces_sends() {
        let (d, q) = setup().await;
        let rate = RateLimit::per_second(10).expect("rate");
        let p = Producer::new(d.clone()).with_rate_limit(rate);
        let start = tokio::time::Instant::now();
        for i in 0..21 {
            p.send(&q, Message::new(format!("{i}")))
                .await
                .expect("send");
        }
        let took = start.elapsed();
        assert!(
            took >= Duration::from_secs(2),
            "21 sends at 10/s took {took:?}"
        );
    }
}
