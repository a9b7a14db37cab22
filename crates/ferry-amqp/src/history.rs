//! A queue's message history `ferry.h.N`: making and recording lifecycle events.

use std::collections::BTreeMap;
use std::time::SystemTime;

use bytes::Bytes;
use ferry_core::QueueName;
use ferry_core::time::to_millis;

use crate::driver::AmqpDriver;
use crate::names::{H_EVENT, H_EVENT_AT, H_EVENT_ATTEMPT, H_EVENT_DETAIL, history_name};
use crate::publish::{Target, publish_many};
use crate::stored::Stored;

impl AmqpDriver {
    /// Appends lifecycle events to the queue's history (confirmed). History is for
    /// people; a failure to record is logged, not returned.
    pub(crate) async fn record(&self, queue: &QueueName, events: Vec<Stored>) {
        if events.is_empty() {
            return;
        }
        let name = history_name(queue);
        let target = Target {
            exchange: String::new(),
            key: name,
        };
        let items: Vec<(Target, &Stored)> = events.iter().map(|e| (target.clone(), e)).collect();
        let result = match self.ch().await {
            Ok(ch) => publish_many(&ch, &items).await,
            Err(e) => Err(e),
        };
        if let Err(e) = result {
            tracing::warn!(queue = %queue, error = %e, "rabbitmq: history not recorded");
        }
    }
}

/// A history record: an empty persistent message with the message's id and the event.
pub(crate) fn history_event(id: &str, event: &str, attempt: u32, detail: Option<String>) -> Stored {
    let mut internal = BTreeMap::new();
    internal.insert(H_EVENT.to_string(), event.to_string());
    internal.insert(H_EVENT_ATTEMPT.to_string(), attempt.to_string());
    internal.insert(
        H_EVENT_AT.to_string(),
        to_millis(SystemTime::now()).to_string(),
    );
    if let Some(d) = detail {
        internal.insert(H_EVENT_DETAIL.to_string(), d);
    }
    Stored {
        id: id.to_string(),
        payload: Bytes::new(),
        headers: BTreeMap::new(),
        internal,
        priority: 0,
    }
}
