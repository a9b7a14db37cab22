//! Where the list bridge keeps its state, and why those names hash like the list.
//!
//! The bridge's move step is one Lua script over the plain list and its own keys. On a
//! Redis Cluster a script may only touch keys of one hash slot, so every key the bridge
//! adds must land in the list's slot, whatever the list is called. Redis Cluster hashes
//! a key by its *hash tag* when it has one: the bytes between the first `{` and the
//! first `}` after it, if that span is not empty; otherwise by the whole key. So:
//!
//! - a list key with a hash tag (`{orders}:jobs`): ferry's keys start with the list key
//!   itself (`{orders}:jobs:ferry:list:moving`) and inherit its tag;
//! - a list key without a tag and without `}` (`jobs`, `a{b`): ferry's keys start with
//!   the list key wrapped in braces (`{jobs}:ferry:list:moving`), whose tag is exactly
//!   the list key, so they hash like it;
//! - a list key without a tag but with a `}` (`a}b`, `x{}y`): braces around it would cut
//!   the tag short, so ferry's keys take the tag `{ferry-slot-N}` with the smallest `N`
//!   whose slot is the list's (found by computing slots here, as the server does), then
//!   the list key: `{ferry-slot-N}:a}b:ferry:list:moving`.
//!
//! On a single server or behind Sentinel the slot does not matter; the names are the
//! same everywhere, so a list can move between deployments.

/// Number of hash slots of a Redis Cluster.
const SLOTS: u16 = 16_384;

/// CRC-16/XMODEM (polynomial 0x1021, initial value 0), the checksum Redis Cluster
/// hashes keys with.
fn crc16(bytes: &[u8]) -> u16 {
    let mut crc: u16 = 0;
    for &b in bytes {
        crc ^= u16::from(b) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
    }
    crc
}

/// The hash tag of `key`: the bytes between the first `{` and the first `}` after it,
/// if there are any; `None` when the whole key is hashed.
fn hash_tag(key: &[u8]) -> Option<&[u8]> {
    let open = key.iter().position(|&b| b == b'{')?;
    let rest = &key[open + 1..];
    let close = rest.iter().position(|&b| b == b'}')?;
    (close > 0).then(|| &rest[..close])
}

/// The Redis Cluster hash slot of `key` (0 to 16383), computed as the server does
/// (`CLUSTER KEYSLOT`): CRC-16 of the key's hash tag if it has one, else of the whole
/// key, modulo 16384.
///
/// ```
/// use ferry_redis::key_slot;
/// assert_eq!(key_slot(b"123456789"), 0x31C3 % 16_384);
/// assert_eq!(key_slot(b"{user1000}.following"), key_slot(b"{user1000}.followers"));
/// assert_eq!(key_slot(b"foo{bar}{zap}"), key_slot(b"bar"));
/// assert_eq!(key_slot(b"foo{{bar}}zap"), key_slot(b"{bar"));
/// ```
pub fn key_slot(key: &[u8]) -> u16 {
    crc16(hash_tag(key).unwrap_or(key)) % SLOTS
}

/// A hash tag, other than the list key itself, whose slot is `slot`.
fn tag_for_slot(slot: u16) -> String {
    // Every one of the 16384 slots is hit within the first few hundred thousand
    // candidates (a unit test checks all of them), so this always returns early.
    (0u32..)
        .map(|n| format!("ferry-slot-{n}"))
        .find(|t| key_slot(t.as_bytes()) == slot)
        .unwrap_or_default()
}

/// The start of every key the bridge keeps for the list `key`, hashing like `key`.
fn side_base(key: &str) -> String {
    if hash_tag(key.as_bytes()).is_some() {
        key.to_string()
    } else if !key.contains('}') {
        format!("{{{key}}}")
    } else {
        format!("{{{}}}:{key}", tag_for_slot(key_slot(key.as_bytes())))
    }
}

/// The Redis keys the [`ListBridge`](crate::ListBridge) of one list uses, all in the
/// list's hash slot (see [`ListBridge`](crate::ListBridge) for how they are used).
///
/// ```
/// let keys = ferry_redis::ListKeys::new("jobs", "ferry");
/// assert_eq!(keys.list, "jobs");
/// assert_eq!(keys.moving, "{jobs}:ferry:list:moving");
/// let tagged = ferry_redis::ListKeys::new("{app}:jobs", "ferry");
/// assert_eq!(tagged.moving, "{app}:jobs:ferry:list:moving");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ListKeys {
    /// The plain list producers `LPUSH` to.
    pub list: String,
    /// Counter of the items taken from the list (string).
    pub seq: String,
    /// Items taken but not yet confirmed in the ferry queue: sequence → payload (hash).
    pub moving: String,
    /// When each of them was taken: sequence, score = server time in ms (sorted set).
    pub moving_at: String,
    /// Items ferry refused (payload over the size limit), raw, newest first (list).
    pub rejected: String,
}

impl ListKeys {
    /// The keys for list `list` under ferry key prefix `prefix`
    /// ([`RedisConfig::prefix`](crate::RedisConfig::prefix)).
    pub fn new(list: &str, prefix: &str) -> Self {
        let base = format!("{}:{prefix}:list", side_base(list));
        ListKeys {
            list: list.to_string(),
            seq: format!("{base}:seq"),
            moving: format!("{base}:moving"),
            moving_at: format!("{base}:moving_at"),
            rejected: format!("{base}:rejected"),
        }
    }

    /// Every key, the list first.
    pub fn all(&self) -> [&str; 5] {
        [
            &self.list,
            &self.seq,
            &self.moving,
            &self.moving_at,
            &self.rejected,
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Values from the Redis Cluster specification and `CLUSTER KEYSLOT`.
    #[test]
    fn slots_match_the_server() {
        assert_eq!(crc16(b"123456789"), 0x31C3);
        assert_eq!(key_slot(b"foo"), 12182);
        assert_eq!(key_slot(b"bar"), 5061);
        assert_eq!(key_slot(b"{foo}bar"), 12182);
        assert_eq!(key_slot(b""), 0);
    }

    #[test]
    fn hash_tag_rule() {
        assert_eq!(hash_tag(b"{user1000}.following"), Some(&b"user1000"[..]));
        assert_eq!(hash_tag(b"foo{}{bar}"), None);
        assert_eq!(hash_tag(b"foo{{bar}}zap"), Some(&b"{bar"[..]));
        assert_eq!(hash_tag(b"foo{bar}{zap}"), Some(&b"bar"[..]));
        assert_eq!(hash_tag(b"plain"), None);
        assert_eq!(hash_tag(b"open{only"), None);
        assert_eq!(hash_tag(b"close}only"), None);
    }

    /// Every side key hashes like the list, for every shape of list name.
    #[test]
    fn side_keys_share_the_list_slot() {
        let names = [
            "jobs",
            "a:b:c",
            "{app}:jobs",
            "x{app}y",
            "a{b",
            "a}b",
            "}",
            "{",
            "{}",
            "x{}y",
            "x{}{y}",
            "{{a}}",
            "a}b{c}",
            "}{",
            "ünïcode",
            "with space",
        ];
        for name in names {
            let keys = ListKeys::new(name, "ferry");
            let slot = key_slot(name.as_bytes());
            for k in keys.all() {
                assert_eq!(key_slot(k.as_bytes()), slot, "{name:?}: {k:?}");
            }
            // Names stay distinct per list and per prefix.
            assert_ne!(
                keys.moving,
                ListKeys::new(&format!("{name}x"), "ferry").moving
            );
            assert_ne!(keys.moving, ListKeys::new(name, "other").moving);
        }
    }

    #[test]
    fn readable_names() {
        let k = ListKeys::new("jobs", "ferry");
        assert_eq!(k.seq, "{jobs}:ferry:list:seq");
        assert_eq!(k.moving_at, "{jobs}:ferry:list:moving_at");
        let k = ListKeys::new("a}b", "ferry");
        assert!(k.moving.starts_with("{ferry-slot-"), "{}", k.moving);
        assert!(
            k.moving.ends_with("}:a}b:ferry:list:moving"),
            "{}",
            k.moving
        );
    }

    /// The fallback tag exists for every slot and is found quickly.
    #[test]
    fn every_slot_has_a_fallback_tag() {
        let mut seen = vec![false; usize::from(SLOTS)];
        let mut left = seen.len();
        let mut n = 0u32;
        while left > 0 {
            let slot = usize::from(key_slot(format!("ferry-slot-{n}").as_bytes()));
            if !seen[slot] {
                seen[slot] = true;
                left -= 1;
            }
            n += 1;
            assert!(n < 1_000_000, "{left} slots without a tag");
        }
    }
}
