//! The JSON shapes of the API: messages in, deliveries and dead letters out, receipts.
//!
//! Payloads are bytes, JSON is text: a payload travels as `payload` when it is UTF-8 and
//! as `payload_base64` otherwise, so a binary payload is never mangled and a text one is
//! readable. Receipts are opaque strings to clients (base64url of the queue, id and the
//! driver's token), so the driver's receipt format can change without breaking them.

use std::collections::BTreeMap;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use bytes::Bytes;
use ferry_core::{DeadLetter, Delivery, HistoryEvent, Message, QueueName, Receipt};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::ApiError;

/// A message as a client sends it.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MessageIn {
    /// Text, or any JSON value (stored as its compact JSON text).
    #[serde(default)]
    pub payload: Option<Value>,
    /// Bytes, base64 (standard alphabet).
    #[serde(default)]
    pub payload_base64: Option<String>,
    /// The message id (a generated UUIDv7 when absent).
    #[serde(default)]
    pub id: Option<String>,
    /// Headers.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Deliver no earlier than this many milliseconds from now.
    #[serde(default)]
    pub delay_ms: Option<u64>,
    /// Priority 0-255.
    #[serde(default)]
    pub priority: Option<u8>,
}

/// The payload bytes of `payload` / `payload_base64` (exactly one of them).
pub fn payload_bytes(payload: Option<&Value>, base64: Option<&str>) -> Result<Bytes, ApiError> {
    match (payload, base64) {
        (Some(_), Some(_)) => Err(ApiError::invalid(
            "give either payload or payload_base64, not both",
        )),
        (None, None) => Err(ApiError::invalid(
            "a message needs a payload (text or JSON) or payload_base64",
        )),
        (Some(Value::String(s)), None) => Ok(Bytes::from(s.clone())),
        (Some(v), None) => Ok(Bytes::from(v.to_string())),
        (None, Some(b)) => STANDARD
            .decode(b.trim())
            .map(Bytes::from)
            .map_err(|e| ApiError::invalid(format!("payload_base64 is not base64: {e}"))),
    }
}

impl MessageIn {
    /// The message to send; input errors name the field.
    pub fn into_message(self) -> Result<Message, ApiError> {
        let payload = payload_bytes(self.payload.as_ref(), self.payload_base64.as_deref())?;
        let mut m = Message::new(payload);
        if let Some(id) = self.id {
            ferry_core::validate_message_id(&id).map_err(ApiError::from)?;
            m = m.with_id(id);
        }
        for (k, v) in self.headers {
            m = m.with_header(k, v);
        }
        if let Some(ms) = self.delay_ms {
            let d = Duration::from_millis(ms);
            if d > ferry_core::MAX_DELAY {
                return Err(ApiError::invalid("delay_ms is longer than 10 years"));
            }
            m = m.with_delay(d);
        }
        if let Some(p) = self.priority {
            m = m.with_priority(p);
        }
        Ok(m)
    }
}

/// One message or a batch: `{"messages":[...]}` or a single message object. Parsed by
/// hand from a JSON value (not an untagged enum), so an unknown field is named in the
/// error and a `messages` list beside message fields is refused.
#[derive(Debug, Clone)]
pub enum Batch {
    /// `{"messages": [...]}`.
    Many(Vec<MessageIn>),
    /// One message.
    One(MessageIn),
}

fn field_error(e: serde_json::Error) -> ApiError {
    ApiError::invalid(format!("the JSON body does not fit this route: {e}"))
}

impl Batch {
    /// Reads a batch from the body `value`.
    pub fn from_value(mut value: Value) -> Result<Batch, ApiError> {
        let Value::Object(obj) = &mut value else {
            return Err(ApiError::invalid(
                "the body must be a message object or {\"messages\": [...]}",
            ));
        };
        match obj.remove("messages") {
            Some(list) => {
                if let Some(extra) = obj.keys().next() {
                    return Err(ApiError::invalid(format!(
                        "unknown field `{extra}` beside `messages`: put message fields inside each message"
                    )));
                }
                let list: Vec<MessageIn> = serde_json::from_value(list).map_err(field_error)?;
                Ok(Batch::Many(list))
            }
            None => Ok(Batch::One(
                serde_json::from_value(value).map_err(field_error)?,
            )),
        }
    }

    /// The messages; an empty batch is an input error.
    pub fn into_messages(self) -> Result<Vec<Message>, ApiError> {
        let list = match self {
            Batch::Many(messages) => messages,
            Batch::One(m) => vec![m],
        };
        if list.is_empty() {
            return Err(ApiError::invalid("the batch has no messages"));
        }
        list.into_iter().map(MessageIn::into_message).collect()
    }
}

/// Writes `payload` into `obj` as `payload` (UTF-8) or `payload_base64`, with
/// `payload_size`.
fn put_payload(obj: &mut Map<String, Value>, payload: &[u8]) {
    match std::str::from_utf8(payload) {
        Ok(text) => obj.insert("payload".into(), Value::String(text.to_string())),
        Err(_) => obj.insert(
            "payload_base64".into(),
            Value::String(STANDARD.encode(payload)),
        ),
    };
    obj.insert("payload_size".into(), Value::from(payload.len()));
}

fn ms(t: std::time::SystemTime) -> Value {
    Value::from(ferry_core::time::to_millis(t))
}

/// What a delivery and a dead letter both show of the stored message.
struct Stored<'a> {
    id: &'a str,
    queue: &'a ferry_core::QueueName,
    payload: &'a [u8],
    headers: &'a std::collections::BTreeMap<String, String>,
    route_key: &'a Option<String>,
    priority: u8,
    enqueued_at: std::time::SystemTime,
}

impl Stored<'_> {
    fn json(&self) -> Map<String, Value> {
        let mut o = Map::new();
        o.insert("id".into(), Value::from(self.id));
        o.insert("queue".into(), Value::from(self.queue.as_str()));
        put_payload(&mut o, self.payload);
        o.insert("headers".into(), serde_json::json!(self.headers));
        o.insert("route_key".into(), serde_json::json!(self.route_key));
        o.insert("priority".into(), Value::from(self.priority));
        o.insert("enqueued_at".into(), ms(self.enqueued_at));
        o
    }
}

/// A delivery as JSON.
pub fn delivery(d: &Delivery) -> Value {
    let mut o = Stored {
        id: &d.id,
        queue: &d.queue,
        payload: &d.payload,
        headers: &d.headers,
        route_key: &d.route_key,
        priority: d.priority,
        enqueued_at: d.enqueued_at,
    }
    .json();
    o.insert("attempt".into(), Value::from(d.attempt));
    o.insert("lease_until".into(), ms(d.lease_until));
    o.insert("receipt".into(), Value::from(encode_receipt(&d.receipt)));
    Value::Object(o)
}

/// A dead letter as JSON.
pub fn dead_letter(d: &DeadLetter) -> Value {
    let mut o = Stored {
        id: &d.id,
        queue: &d.queue,
        payload: &d.payload,
        headers: &d.headers,
        route_key: &d.route_key,
        priority: d.priority,
        enqueued_at: d.enqueued_at,
    }
    .json();
    o.insert("attempts".into(), Value::from(d.attempts));
    o.insert("reason".into(), Value::from(d.reason.clone()));
    o.insert("last_error".into(), serde_json::json!(d.last_error));
    o.insert(
        "first_failed_at".into(),
        d.first_failed_at.map_or(Value::Null, ms),
    );
    o.insert("dead_at".into(), ms(d.dead_at));
    Value::Object(o)
}

/// History events as JSON.
pub fn history(events: &[HistoryEvent]) -> Value {
    serde_json::to_value(events).unwrap_or(Value::Array(Vec::new()))
}

#[derive(Serialize, Deserialize)]
struct ReceiptWire {
    q: String,
    i: String,
    t: String,
}

/// The opaque string form of a receipt.
///
/// ```
/// use ferry_core::{QueueName, Receipt};
/// let r = Receipt::new(QueueName::new("q")?, "id-1", "tok");
/// let text = ferry_http::encode_receipt(&r);
/// assert_eq!(ferry_http::decode_receipt(&text).ok(), Some(r));
/// # Ok::<(), ferry_core::Error>(())
/// ```
pub fn encode_receipt(r: &Receipt) -> String {
    let wire = ReceiptWire {
        q: r.queue().as_str().to_string(),
        i: r.message_id().to_string(),
        t: r.token().to_string(),
    };
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(&wire).unwrap_or_default())
}

/// Parses a receipt string made by [`encode_receipt`]; a 400 `invalid_receipt` otherwise.
pub fn decode_receipt(text: &str) -> Result<Receipt, ApiError> {
    let bad = || {
        ApiError::from(ferry_core::Error::new(
            ferry_core::ErrorKind::InvalidReceipt,
            "the receipt is not one this server handed out (copy it unchanged from the delivery)",
        ))
    };
    let bytes = URL_SAFE_NO_PAD.decode(text.trim()).map_err(|_| bad())?;
    let wire: ReceiptWire = serde_json::from_slice(&bytes).map_err(|_| bad())?;
    let queue = QueueName::new(&wire.q).map_err(|_| bad())?;
    Ok(Receipt::new(queue, wire.i, wire.t))
}
