//! The delay levels: how a delay becomes headers that route a message through them.
//!
//! Each queue has [`DELAY_LEVELS`] TTL queues, level k holding messages for 2^k
//! seconds, and one *headers* exchange per level. A delayed message carries one header
//! per level, `x-ferry-d<k>` = `1` or `0`, the bits of its delay in seconds; level k's
//! exchange routes it into the level-k queue when its bit is `1` and on to the exchange
//! of level k-1 when it is `0`, and each level queue dead-letters expired messages to
//! the exchange of the level below (level 0's to the queue's deliver exchange). A
//! message thus hops through exactly the levels that make up its delay; each level
//! queue has one TTL, so no delay waits behind a longer one, and no queue per delay
//! value exists.
//!
//! Routing by headers rather than by route key keeps the message's own route key free
//! for topics: a delayed publish goes to the topic's delay exchange `ferry.td.T`, a
//! topic exchange bound (exchange to exchange, with each binding's pattern) to the top
//! level of every bound queue, so RabbitMQ routes delayed publishes as it routes
//! immediate ones, whichever process made the bindings.

use std::time::SystemTime;

use ferry_core::QueueName;
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};

use crate::names::{delay_name, q_name};
use crate::publish::Target;

/// How many delay levels a queue has: level k holds messages for 2^k seconds, so the
/// longest delay (ten years, [`ferry_core::MAX_DELAY`]) fits in 29 bits.
pub const DELAY_LEVELS: u32 = 29;

/// The header that carries bit `level` of a message's delay.
pub(crate) fn bit_header(level: u32) -> String {
    format!("x-ferry-d{level}")
}

/// Whether `name` is one of the delay bit headers (stripped from delivered messages).
pub(crate) fn is_bit_header(name: &str) -> bool {
    name.strip_prefix("x-ferry-d")
        .is_some_and(|k| !k.is_empty() && k.bytes().all(|b| b.is_ascii_digit()))
}

fn bit_value(bit: bool) -> AMQPValue {
    AMQPValue::LongString(LongString::from(if bit { "1" } else { "0" }))
}

/// The headers of a delay of `secs` seconds: every level's bit.
pub(crate) fn delay_headers(secs: u64) -> FieldTable {
    let mut table = FieldTable::default();
    for k in 0..DELAY_LEVELS {
        table.insert(
            ShortString::from(bit_header(k)),
            bit_value(secs >> k & 1 == 1),
        );
    }
    table
}

/// The binding arguments of level `level`'s exchange selecting messages whose bit is
/// `bit`. `all-with-x` (RabbitMQ 3.10 and later) because plain `all` ignores headers
/// starting with `x-`, and the bit headers are ferry's own `x-ferry-` ones (a user's
/// headers keep every other name).
pub(crate) fn level_binding(level: u32, bit: bool) -> FieldTable {
    let mut table = FieldTable::default();
    table.insert(
        "x-match".into(),
        AMQPValue::LongString(LongString::from("all-with-x")),
    );
    table.insert(ShortString::from(bit_header(level)), bit_value(bit));
    table
}

/// A wait in whole seconds, rounded up (never early); zero for no wait.
pub(crate) fn delay_secs(at: SystemTime) -> u64 {
    let wait = at.duration_since(SystemTime::now()).unwrap_or_default();
    wait.as_secs() + u64::from(wait.subsec_nanos() > 0)
}

impl Target {
    /// Into `queue`, ready at `at`: directly, or into the top delay level with the
    /// delay's bits as headers.
    pub(crate) fn queue_at(queue: &QueueName, at: SystemTime) -> Target {
        match delay_secs(at) {
            0 => Target::new("", q_name(queue)),
            secs => Target {
                exchange: delay_name(queue, DELAY_LEVELS - 1),
                key: String::new(),
                delay_secs: Some(secs),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bit(table: &FieldTable, k: u32) -> Option<&AMQPValue> {
        table.inner().get(&ShortString::from(bit_header(k)))
    }

    #[test]
    fn every_level_has_its_bit() {
        let h = delay_headers(5);
        assert_eq!(h.inner().len(), DELAY_LEVELS as usize);
        assert_eq!(bit(&h, 0), Some(&bit_value(true)));
        assert_eq!(bit(&h, 1), Some(&bit_value(false)));
        assert_eq!(bit(&h, 2), Some(&bit_value(true)));
        assert_eq!(bit(&h, 28), Some(&bit_value(false)));
        let longest = delay_headers(ferry_core::MAX_DELAY.as_secs());
        assert_eq!(
            bit(&longest, 28),
            Some(&bit_value(true)),
            "ten years needs 29 bits"
        );
        assert!(is_bit_header("x-ferry-d0") && is_bit_header("x-ferry-d28"));
        assert!(!is_bit_header("x-ferry-dead-at") && !is_bit_header("x-ferry-d"));
    }

    #[test]
    fn waits_round_up() {
        let now = SystemTime::now();
        assert_eq!(delay_secs(now), 0);
        assert_eq!(delay_secs(now + std::time::Duration::from_millis(1)), 1);
        assert_eq!(delay_secs(now + std::time::Duration::from_secs(600)), 600);
    }
}
