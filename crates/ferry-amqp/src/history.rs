//! A queue's message history `ferry.h.N`: lifecycle events, many to a record.
//!
//! Writing one history message per event made every send, delivery and settlement
//! cost the broker two or three extra persistent messages and a confirm round trip,
//! which halved throughput. Instead, a record is one persistent message whose body is
//! a JSON array of the events of one driver call (a batch send, a settle, a sweep), and
//! it travels in the same confirmed publish as the call's own messages where there are
//! any. A delivery's `delivered` event is kept with its lease and written with its
//! settlement, so receiving writes nothing; a delivery whose holder crashes loses that
//! one event (its redelivery records the next attempt). Reading browses the queue's
//! records and picks the message's events, in time order.

use std::time::SystemTime;

use bytes::Bytes;
use ferry_core::time::{from_millis, to_millis};
use ferry_core::{HistoryEvent, QueueName};
use serde::{Deserialize, Serialize};

use crate::driver::AmqpDriver;
use crate::names::history_name;
use crate::publish::{Target, publish_many};
use crate::stored::Stored;

/// One lifecycle event of one message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Event {
    id: String,
    event: String,
    attempt: u32,
    /// Epoch milliseconds.
    at: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    detail: Option<String>,
}

impl Event {
    /// The message's id.
    pub(crate) fn id(&self) -> &str {
        &self.id
    }

    fn into_history(self) -> HistoryEvent {
        HistoryEvent::new(from_millis(self.at), self.event, self.attempt, self.detail)
    }
}

/// An event of message `id`, happening now.
pub(crate) fn history_event(id: &str, event: &str, attempt: u32, detail: Option<String>) -> Event {
    Event {
        id: id.to_string(),
        event: event.to_string(),
        attempt,
        at: to_millis(SystemTime::now()),
        detail,
    }
}

/// The record of `events` for `queue`: where to publish it and the message itself.
pub(crate) fn history_record(queue: &QueueName, events: &[Event]) -> (Target, Stored) {
    let body = serde_json::to_vec(events).unwrap_or_default();
    let target = Target::new("", history_name(queue));
    (target, Stored::record(Bytes::from(body)))
}

/// The events in a record's body (a foreign or damaged body has none).
pub(crate) fn read_record(body: &[u8]) -> Vec<Event> {
    serde_json::from_slice(body).unwrap_or_default()
}

/// The events of message `id` among `events`, in time order.
pub(crate) fn of_message(events: Vec<Event>, id: &str) -> Vec<HistoryEvent> {
    let mut mine: Vec<Event> = events.into_iter().filter(|e| e.id == id).collect();
    mine.sort_by_key(|e| e.at); // stable: events of one record keep their order
    mine.into_iter().map(Event::into_history).collect()
}

impl AmqpDriver {
    /// Appends `events` to the queue's history as one record (confirmed). History is
    /// for people; a failure to record is logged, not returned.
    pub(crate) async fn record(&self, queue: &QueueName, events: Vec<Event>) {
        if events.is_empty() {
            return;
        }
        let (target, record) = history_record(queue, &events);
        let result = match self.ch().await {
            Ok(ch) => publish_many(&ch, &[(target, &record)]).await,
            Err(e) => Err(e),
        };
        if let Err(e) = result {
            tracing::warn!(queue = %queue, error = %e, events = events.len(), "rabbitmq: history not recorded");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_pick_one_message_in_time_order() {
        let mut a = history_event("a", "sent", 0, None);
        a.at = 10;
        let mut b = history_event("b", "sent", 0, None);
        b.at = 5;
        let mut a2 = history_event("a", "acked", 1, Some("fine".into()));
        a2.at = 7;
        let q = QueueName::new("q").expect("name");
        let (target, record) = history_record(&q, &[a, b, a2]);
        assert_eq!(target.key, "ferry.h.q");
        let events = read_record(&record.payload);
        let mine = of_message(events, "a");
        let names: Vec<&str> = mine.iter().map(|e| e.event.as_str()).collect();
        assert_eq!(names, ["acked", "sent"]);
        assert_eq!(mine[0].detail.as_deref(), Some("fine"));
        assert!(read_record(b"not json").is_empty());
    }
}
