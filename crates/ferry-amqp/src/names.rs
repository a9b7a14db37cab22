//! The names ferry gives its broker objects (queues, exchanges) and its own AMQP
//! headers, in one place so the layout described in the crate docs is visible at a glance.

use ferry_core::{QueueName, TopicName};

pub(crate) const H_ATTEMPTS: &str = "x-ferry-attempts";
pub(crate) const H_ENQUEUED: &str = "x-ferry-enqueued-at";
pub(crate) const H_ROUTE_KEY: &str = "x-ferry-route-key";
pub(crate) const H_LAST_ERROR: &str = "x-ferry-last-error";
pub(crate) const H_FIRST_FAILED: &str = "x-ferry-first-failed-at";
pub(crate) const H_REASON: &str = "x-ferry-reason";
pub(crate) const H_DEAD_AT: &str = "x-ferry-dead-at";
/// On a dead letter approved for re-drive: `1` (see `redrive.rs`).
pub(crate) const H_APPROVED: &str = "x-ferry-approved";
pub(crate) const H_OPT_DELAY: &str = "x-ferry-default-delay-ms";
pub(crate) const H_OPT_ATTEMPTS: &str = "x-ferry-max-attempts";
pub(crate) const H_OPT_LEASE: &str = "x-ferry-lease-ms";

pub(crate) fn q_name(q: &QueueName) -> String {
    format!("ferry.q.{q}")
}
pub(crate) fn options_name(q: &QueueName) -> String {
    format!("ferry.o.{q}")
}
/// The queue's pause marker (see `pause.rs`).
pub(crate) fn pause_name(q: &QueueName) -> String {
    format!("ferry.p.{q}")
}
pub(crate) fn history_name(q: &QueueName) -> String {
    format!("ferry.h.{q}")
}
pub(crate) fn dlq_name(q: &QueueName) -> String {
    format!("ferry.dlq.{q}")
}
pub(crate) fn delay_name(q: &QueueName, level: u32) -> String {
    format!("ferry.d.{q}.{level}")
}
pub(crate) fn deliver_exchange(q: &QueueName) -> String {
    format!("ferry.d.{q}")
}
pub(crate) fn topic_exchange(t: &TopicName) -> String {
    format!("ferry.t.{t}")
}
/// The topic's delay exchange: a topic exchange bound to the top delay level of every
/// bound queue (see `delay.rs`).
pub(crate) fn topic_delay_exchange(t: &TopicName) -> String {
    format!("ferry.td.{t}")
}
