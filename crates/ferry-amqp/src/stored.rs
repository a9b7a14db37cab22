//! `Stored`, a message as ferry keeps it on the broker, and its conversion from and to
//! AMQP properties and headers.

use std::collections::BTreeMap;
use std::time::SystemTime;

use bytes::Bytes;
use ferry_core::time::{from_millis, to_millis};
use ferry_core::{DeadLetter, Message, QueueName};
use lapin::BasicProperties;
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};

use crate::delay::is_bit_header;
use crate::names::{
    H_ATTEMPTS, H_DEAD_AT, H_ENQUEUED, H_FIRST_FAILED, H_LAST_ERROR, H_REASON, H_ROUTE_KEY,
};

pub(crate) fn s(v: &str) -> AMQPValue {
    AMQPValue::LongString(LongString::from(v.as_bytes().to_vec()))
}

pub(crate) fn value_str(v: &AMQPValue) -> Option<String> {
    match v {
        AMQPValue::LongString(l) => Some(String::from_utf8_lossy(l.as_bytes()).into_owned()),
        AMQPValue::ShortString(x) => Some(x.as_str().to_string()),
        AMQPValue::LongLongInt(i) => Some(i.to_string()),
        AMQPValue::LongInt(i) => Some(i.to_string()),
        _ => None,
    }
}

/// A message as read from a queue, with ferry's fields decoded.
#[derive(Debug, Clone)]
pub(crate) struct Stored {
    pub(crate) id: String,
    pub(crate) payload: Bytes,
    pub(crate) headers: BTreeMap<String, String>,
    pub(crate) internal: BTreeMap<String, String>,
    pub(crate) priority: u8,
}

impl Stored {
    /// A bodied record with no message fields (history records: see `history.rs`).
    pub(crate) fn record(body: Bytes) -> Stored {
        Stored {
            id: String::new(),
            payload: body,
            headers: BTreeMap::new(),
            internal: BTreeMap::new(),
            priority: 0,
        }
    }

    pub(crate) fn from_amqp(props: &BasicProperties, data: Vec<u8>) -> Stored {
        let mut headers = BTreeMap::new();
        let mut internal = BTreeMap::new();
        if let Some(table) = props.headers() {
            for (k, v) in table.inner() {
                let k = k.as_str();
                let Some(v) = value_str(v) else { continue };
                if is_bit_header(k) {
                    continue; // routing state of the delay levels, not the message's
                }
                if k.starts_with("x-ferry-") {
                    internal.insert(k.to_string(), v);
                } else if k != "x-delivery-count" // set by quorum queues on redelivery
                    && !k.starts_with("x-death")
                    && !k.starts_with("x-first-death")
                    && !k.starts_with("x-last-death")
                {
                    headers.insert(k.to_string(), v);
                }
            }
        }
        Stored {
            id: props
                .message_id()
                .as_ref()
                .map(|m| m.as_str().to_string())
                .unwrap_or_default(),
            payload: Bytes::from(data),
            headers,
            internal,
            priority: props.priority().unwrap_or(0),
        }
    }

    pub(crate) fn from_message(m: &Message, route_key: Option<&str>) -> Stored {
        let mut internal = BTreeMap::new();
        internal.insert(H_ATTEMPTS.to_string(), "0".to_string());
        internal.insert(
            H_ENQUEUED.to_string(),
            to_millis(SystemTime::now()).to_string(),
        );
        if let Some(k) = route_key {
            internal.insert(H_ROUTE_KEY.to_string(), k.to_string());
        }
        Stored {
            id: m.id().to_string(),
            payload: m.payload().clone(),
            headers: m.headers().clone(),
            internal,
            priority: m.priority(),
        }
    }

    pub(crate) fn int(&self, key: &str) -> Option<i64> {
        self.internal.get(key).and_then(|v| v.parse().ok())
    }

    pub(crate) fn attempts(&self) -> u32 {
        self.int(H_ATTEMPTS)
            .and_then(|v| u32::try_from(v).ok())
            .unwrap_or(0)
    }

    pub(crate) fn enqueued_at(&self) -> SystemTime {
        self.int(H_ENQUEUED)
            .map(from_millis)
            .unwrap_or(SystemTime::UNIX_EPOCH)
    }

    pub(crate) fn properties(&self) -> BasicProperties {
        self.properties_with(FieldTable::default())
    }

    /// [`properties`](Self::properties) with `extra` headers (the delay bits).
    pub(crate) fn properties_with(&self, extra: FieldTable) -> BasicProperties {
        let mut table = extra;
        for (k, v) in self.headers.iter().chain(self.internal.iter()) {
            table.insert(ShortString::from(k.as_str()), s(v));
        }
        BasicProperties::default()
            .with_message_id(ShortString::from(self.id.as_str()))
            .with_delivery_mode(2)
            .with_priority(self.priority)
            .with_headers(table)
    }

    pub(crate) fn dead_letter(&self, queue: &QueueName) -> DeadLetter {
        DeadLetter {
            id: self.id.clone(),
            queue: queue.clone(),
            payload: self.payload.clone(),
            headers: self.headers.clone(),
            route_key: self.internal.get(H_ROUTE_KEY).cloned(),
            priority: self.priority,
            enqueued_at: self.enqueued_at(),
            attempts: self.attempts(),
            reason: self.internal.get(H_REASON).cloned().unwrap_or_default(),
            last_error: self.internal.get(H_LAST_ERROR).cloned(),
            first_failed_at: self.int(H_FIRST_FAILED).map(from_millis),
            dead_at: self
                .int(H_DEAD_AT)
                .map(from_millis)
                .unwrap_or(SystemTime::UNIX_EPOCH),
        }
    }
}

/// The longest header name AMQP can carry (a short string).
const MAX_HEADER_NAME: usize = 255;

/// Refuses what AMQP cannot encode (core's limits allow it): a header name longer than
/// a short string. Written unchecked it would be a corrupt frame, and the broker would
/// close the whole connection.
pub(crate) fn check_encodable(batch: &[ferry_core::Message]) -> ferry_core::Result<()> {
    for m in batch {
        if let Some(name) = m.headers().keys().find(|k| k.len() > MAX_HEADER_NAME) {
            return Err(ferry_core::Error::invalid_input(format!(
                "header name of {} bytes in message '{}': RabbitMQ takes header names of at most {MAX_HEADER_NAME} bytes",
                name.len(),
                m.id()
            )));
        }
    }
    Ok(())
}

/// [`check_encodable`] for dead letters about to be stored.
pub(crate) fn check_encodable_dead(letters: &[DeadLetter]) -> ferry_core::Result<()> {
    for d in letters {
        if let Some(name) = d.headers.keys().find(|k| k.len() > MAX_HEADER_NAME) {
            return Err(ferry_core::Error::invalid_input(format!(
                "header name of {} bytes in dead letter '{}': RabbitMQ takes header names of at most {MAX_HEADER_NAME} bytes",
                name.len(),
                d.id
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlong_header_names_are_refused() {
        let ok = ferry_core::Message::new("x").with_header("k".repeat(255), "v");
        assert!(check_encodable(&[ok]).is_ok());
        let bad = ferry_core::Message::new("x").with_header("k".repeat(256), "v");
        let e = check_encodable(&[bad]).expect_err("too long");
        assert_eq!(e.kind(), ferry_core::ErrorKind::InvalidInput);
    }
}
