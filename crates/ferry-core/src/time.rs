//! Wall-clock helpers: ferry stores instants as milliseconds since the Unix epoch.
//!
//! Milliseconds are what every backend can store natively (SQLite and PostgreSQL
//! integers, Redis sorted-set scores, AMQP timestamps), so the whole project uses one
//! representation on the wire and on disk and converts to [`SystemTime`] at the API.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch for `t` (0 for instants before the epoch).
///
/// ```
/// use std::time::{Duration, UNIX_EPOCH};
/// assert_eq!(ferry_core::time::to_millis(UNIX_EPOCH + Duration::from_millis(1500)), 1500);
/// ```
pub fn to_millis(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// `d` from now, saturating far in the future instead of overflowing.
///
/// ```
/// use std::time::{Duration, SystemTime};
/// assert!(ferry_core::time::after(Duration::MAX) > SystemTime::now());
/// ```
pub fn after(d: Duration) -> SystemTime {
    let now = SystemTime::now();
    now.checked_add(d)
        .or_else(|| now.checked_add(Duration::from_secs(100 * 365 * 86_400)))
        .unwrap_or(now)
}

/// Milliseconds since the Unix epoch for `t`, rounded up: for "not before" instants,
/// so storing them in whole milliseconds never makes something due early.
///
/// ```
/// use std::time::{Duration, UNIX_EPOCH};
/// let t = UNIX_EPOCH + Duration::from_micros(1_500_001);
/// assert_eq!(ferry_core::time::to_millis_ceil(t), 1501);
/// assert_eq!(ferry_core::time::to_millis_ceil(UNIX_EPOCH + Duration::from_millis(7)), 7);
/// ```
pub fn to_millis_ceil(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_nanos().div_ceil(1_000_000)).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// The instant `ms` milliseconds after the Unix epoch (negative values clamp to it).
///
/// ```
/// use std::time::{Duration, UNIX_EPOCH};
/// assert_eq!(ferry_core::time::from_millis(1500), UNIX_EPOCH + Duration::from_millis(1500));
/// ```
pub fn from_millis(ms: i64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(u64::try_from(ms).unwrap_or(0))
}

/// Now, in milliseconds since the Unix epoch.
///
/// ```
/// assert!(ferry_core::time::now_millis() > 1_600_000_000_000);
/// ```
pub fn now_millis() -> i64 {
    to_millis(SystemTime::now())
}

/// A duration in whole milliseconds, saturating at `i64::MAX`.
///
/// ```
/// use std::time::Duration;
/// assert_eq!(ferry_core::time::duration_millis(Duration::from_secs(2)), 2000);
/// ```
pub fn duration_millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}
