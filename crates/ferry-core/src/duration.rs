//! Human durations (`500ms`, `30s`, `5m`, `2h`, `1d`) for the CLI, config and HTTP API.
//!
//! Hand-written because the grammar is tiny and the error messages must name the fix;
//! a general-purpose crate would accept forms (`1h 30m`, `P1D`) we would then have to
//! document and support on every surface.

use std::time::Duration;

use crate::error::{Error, Result};

/// Parses `<integer><unit>` with unit `ms`, `s`, `m`, `h` or `d`; `0` alone is zero.
///
/// ```
/// use std::time::Duration;
/// use ferry_core::parse_duration;
/// assert_eq!(parse_duration("500ms")?, Duration::from_millis(500));
/// assert_eq!(parse_duration("30s")?, Duration::from_secs(30));
/// assert_eq!(parse_duration("5m")?, Duration::from_secs(300));
/// assert_eq!(parse_duration("2h")?, Duration::from_secs(7200));
/// assert!(parse_duration("5 minutes").is_err());
/// # Ok::<(), ferry_core::Error>(())
/// ```
pub fn parse_duration(s: &str) -> Result<Duration> {
    let s = s.trim();
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (digits, unit) = s.split_at(split);
    let bad = || {
        Error::invalid_input(format!(
            "'{s}' is not a duration; write a whole number and a unit, like 500ms, 30s, 5m, 2h or 1d"
        ))
    };
    if digits.is_empty() {
        return Err(bad());
    }
    let n: u64 = digits.parse().map_err(|_| bad())?;
    let ms_per_unit: u64 = match unit {
        "ms" => 1,
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => return Err(bad()),
    };
    n.checked_mul(ms_per_unit)
        .map(Duration::from_millis)
        .ok_or_else(|| Error::invalid_input(format!("duration '{s}' is too large")))
}

/// Formats a duration in the largest unit that divides it exactly (`90s`, `2h`, `1500ms`).
///
/// ```
/// use std::time::Duration;
/// assert_eq!(ferry_core::format_duration(Duration::from_secs(7200)), "2h");
/// assert_eq!(ferry_core::format_duration(Duration::from_millis(1500)), "1500ms");
/// ```
pub fn format_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms == 0 {
        return "0s".to_string();
    }
    for (unit, size) in [
        ("d", 86_400_000),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1_000),
    ] {
        if ms.is_multiple_of(size) {
            return format!("{}{unit}", ms / size);
        }
    }
    format!("{ms}ms")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_with_a_hint() {
        for bad in [
            "",
            "s",
            "5",
            "5x",
            "-5s",
            "1.5s",
            "5 s",
            "99999999999999999999s",
        ] {
            let err = parse_duration(bad).expect_err(bad);
            assert!(!err.to_string().is_empty());
        }
        assert!(
            parse_duration("5")
                .expect_err("no unit")
                .to_string()
                .contains("500ms")
        );
    }

    #[test]
    fn round_trips() {
        for s in ["500ms", "30s", "5m", "2h", "1d", "1500ms"] {
            assert_eq!(format_duration(parse_duration(s).expect(s)), s);
        }
    }
}
