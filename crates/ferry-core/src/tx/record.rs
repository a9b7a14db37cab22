//! The bytes a [`TxStore`](super::TxStore) keeps for a prepared message.
//!
//! One versioned MessagePack map (like the wire envelope, `docs/wire-format.md`), so
//! every store writes the same thing and a newer ferry's records are refused with a
//! clear error rather than misread. The delay is kept as the caller gave it (relative
//! delays count from the publish, not from the prepare).

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::store::Destination;
use crate::error::{Error, ErrorKind, Result};
use crate::message::{Delay, Message};
use crate::name::{QueueName, TopicName};
use crate::time::{from_millis, to_millis};

const VERSION: u32 = 1;

#[derive(Serialize, Deserialize)]
struct RecordV1 {
    v: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    queue: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    topic: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    route_key: Option<String>,
    id: String,
    payload: Bytes,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    #[serde(default)]
    priority: u8,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    delay_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    deliver_at_ms: Option<i64>,
}

/// Encodes a prepared message for a store.
///
/// ```
/// use ferry_core::{Message, QueueName, tx::{Destination, encode_prepared, decode_prepared}};
/// let dest = Destination::queue(QueueName::new("orders")?);
/// let msg = Message::new("hi").with_id("order-1").with_header("k", "v");
/// let bytes = encode_prepared(&dest, &msg)?;
/// assert_eq!(decode_prepared(&bytes)?, (dest, msg));
/// # Ok::<(), ferry_core::Error>(())
/// ```
pub fn encode_prepared(destination: &Destination, message: &Message) -> Result<Vec<u8>> {
    let (queue, topic, route_key) = match destination {
        Destination::Queue(q) => (Some(q.to_string()), None, None),
        Destination::Topic { topic, route_key } => {
            (None, Some(topic.to_string()), Some(route_key.clone()))
        }
    };
    let (delay_ms, deliver_at_ms) = match message.delay() {
        Some(Delay::After(d)) => (Some(u64::try_from(d.as_millis()).unwrap_or(u64::MAX)), None),
        Some(Delay::At(t)) => (None, Some(to_millis(t))),
        None => (None, None),
    };
    let record = RecordV1 {
        v: VERSION,
        queue,
        topic,
        route_key,
        id: message.id().to_string(),
        payload: message.payload().clone(),
        headers: message.headers().clone(),
        priority: message.priority(),
        delay_ms,
        deliver_at_ms,
    };
    rmp_serde::to_vec_named(&record).map_err(|e| {
        Error::new(ErrorKind::Internal, "cannot encode a prepared message").with_source(e)
    })
}

/// Decodes [`encode_prepared`]'s bytes; a newer version or malformed bytes are a
/// [`ErrorKind::Decode`] error.
///
/// ```
/// use ferry_core::{ErrorKind, tx::decode_prepared};
/// assert_eq!(decode_prepared(b"junk").unwrap_err().kind(), ErrorKind::Decode);
/// ```
pub fn decode_prepared(bytes: &[u8]) -> Result<(Destination, Message)> {
    let bad = |what: String| Error::new(ErrorKind::Decode, what);
    let record: RecordV1 = rmp_serde::from_slice(bytes).map_err(|e| {
        bad(format!(
            "bytes are not a ferry prepared message ({} bytes)",
            bytes.len()
        ))
        .with_source(e)
    })?;
    if record.v == 0 || record.v > VERSION {
        return Err(bad(format!(
            "prepared-message version {} is not supported by this ferry (it reads version {VERSION}); upgrade ferry",
            record.v
        )));
    }
    let destination = match (record.queue, record.topic, record.route_key) {
        (Some(q), None, None) => Destination::Queue(QueueName::new(q)?),
        (None, Some(t), Some(key)) => Destination::topic(TopicName::new(t)?, key)?,
        _ => {
            return Err(bad(
                "prepared message names neither one queue nor one topic with a route key".into(),
            ));
        }
    };
    let mut message = Message::new(record.payload)
        .with_id(record.id)
        .with_priority(record.priority);
    for (k, v) in record.headers {
        message = message.with_header(k, v);
    }
    if let Some(ms) = record.delay_ms {
        message = message.with_delay(Duration::from_millis(ms));
    } else if let Some(at) = record.deliver_at_ms {
        message = message.with_deliver_at(from_millis(at));
    }
    Ok((destination, message))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_and_delays_round_trip() {
        let dest = Destination::topic(TopicName::new("t").expect("name"), "a.b").expect("key");
        for msg in [
            Message::new(&b"\x00\xff"[..]).with_delay(Duration::from_secs(30)),
            Message::new("x").with_deliver_at(from_millis(1_700_000_000_123)),
            Message::new("y").with_priority(7),
        ] {
            let bytes = encode_prepared(&dest, &msg).expect("encode");
            assert_eq!(
                decode_prepared(&bytes).expect("decode"),
                (dest.clone(), msg)
            );
        }
    }

    #[test]
    fn newer_version_is_refused() {
        let record = RecordV1 {
            v: 2,
            queue: Some("q".into()),
            topic: None,
            route_key: None,
            id: "m".into(),
            payload: Bytes::from_static(b"p"),
            headers: BTreeMap::new(),
            priority: 0,
            delay_ms: None,
            deliver_at_ms: None,
        };
        let bytes = rmp_serde::to_vec_named(&record).expect("encode");
        let err = decode_prepared(&bytes).expect_err("v2");
        assert!(err.to_string().contains("version 2"), "{err}");
    }
}
