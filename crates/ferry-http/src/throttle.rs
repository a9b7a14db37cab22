//! Lockout after repeated failed authentications, per client address.
//!
//! A failed-login limiter that counts *after* checking the token does not slow a
//! guesser down: the right guess still succeeds. This one is asked first, and a client
//! over its limit gets 429 without its token being looked at. governor (used for the
//! request rate) has no way to ask "is this key over its limit?" without spending a
//! cell, so this fixed-window counter is written out here; it is a map and a mutex.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long a window of failures lasts.
const WINDOW: Duration = Duration::from_secs(60);
/// Most addresses tracked; the oldest windows go first when full.
const MAX_TRACKED: usize = 100_000;

/// Failed authentications per address in the current minute.
#[derive(Debug)]
pub struct AuthThrottle {
    limit: u32,
    failures: Mutex<HashMap<IpAddr, (u32, Instant)>>,
}

impl AuthThrottle {
    /// Locks an address out once it failed `limit` times within a minute.
    pub fn new(limit: u32) -> Self {
        AuthThrottle {
            limit,
            failures: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<IpAddr, (u32, Instant)>> {
        self.failures
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Seconds until `ip` may try again, if it is locked out now.
    pub fn locked_for(&self, ip: IpAddr) -> Option<u64> {
        let map = self.lock();
        let (count, start) = map.get(&ip)?;
        let left = WINDOW.checked_sub(start.elapsed())?;
        (*count >= self.limit).then(|| left.as_secs().max(1))
    }

    /// Records a failure of `ip`.
    pub fn failed(&self, ip: IpAddr) {
        let mut map = self.lock();
        if map.len() >= MAX_TRACKED {
            map.retain(|_, (_, start)| start.elapsed() < WINDOW);
        }
        let entry = map.entry(ip).or_insert((0, Instant::now()));
        if entry.1.elapsed() >= WINDOW {
            *entry = (0, Instant::now());
        }
        entry.0 = entry.0.saturating_add(1);
    }

    /// Drops windows that ended.
    pub fn prune(&self) {
        self.lock().retain(|_, (_, start)| start.elapsed() < WINDOW);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    #[test]
    fn locks_out_after_the_limit_and_only_that_address() {
        let t = AuthThrottle::new(2);
        let a = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1));
        let b = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2));
        assert_eq!(t.locked_for(a), None);
        t.failed(a);
        assert_eq!(t.locked_for(a), None);
        t.failed(a);
        assert!(t.locked_for(a).is_some());
        assert_eq!(t.locked_for(b), None);
    }
}
