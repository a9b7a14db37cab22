//! The delay levels: how a delay becomes a route key through the level exchanges.

use std::time::SystemTime;

use ferry_core::QueueName;

use crate::names::{delay_name, q_name};
use crate::publish::Target;

/// How many delay levels a queue has: level k holds messages for 2^k seconds, so the
/// longest delay (ten years, [`ferry_core::MAX_DELAY`]) fits in 29 bits.
pub const DELAY_LEVELS: u32 = 29;

/// The route key of a delay of `secs` seconds: one word per level, highest first.
pub(crate) fn delay_key(secs: u64) -> String {
    (0..DELAY_LEVELS)
        .rev()
        .map(|k| if secs >> k & 1 == 1 { "1" } else { "0" })
        .collect::<Vec<_>>()
        .join(".")
}

/// The binding key selecting messages whose bit `level` is `bit`.
pub(crate) fn level_pattern(level: u32, bit: &str) -> String {
    (0..DELAY_LEVELS)
        .rev()
        .map(|k| if k == level { bit } else { "*" })
        .collect::<Vec<_>>()
        .join(".")
}

impl Target {
    /// Into `queue`, ready at `at`: directly, or into the top delay level with the
    /// delay's bits as route key.
    pub(crate) fn queue_at(queue: &QueueName, at: SystemTime) -> Target {
        let wait = at.duration_since(SystemTime::now()).unwrap_or_default();
        if wait.is_zero() {
            Target {
                exchange: String::new(),
                key: q_name(queue),
            }
        } else {
            let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
            Target {
                exchange: delay_name(queue, DELAY_LEVELS - 1),
                key: delay_key(secs),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferry_core::route_matches;

    #[test]
    fn delay_keys_route_by_bits() {
        assert_eq!(delay_key(5).split('.').count(), DELAY_LEVELS as usize);
        assert!(delay_key(5).ends_with("1.0.1"));
        assert!(route_matches(&level_pattern(0, "1"), &delay_key(5)));
        assert!(route_matches(&level_pattern(1, "0"), &delay_key(5)));
        assert!(!route_matches(&level_pattern(1, "1"), &delay_key(5)));
    }
}
