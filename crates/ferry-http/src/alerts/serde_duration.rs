//! Durations in the alerts config are human strings (`"30s"`, `"5m"`), not numbers.
//!
//! ferry.toml is written by people, so `for = "5m"` reads better than `for_ms = 300000`.
//! Parsing goes through [`ferry_core::parse_duration`] so every duration in ferry accepts
//! the same units, and each field has its own function so an error names the field it
//! came from (serde's own messages name only the type).

use std::time::Duration;

use serde::{Deserialize, Deserializer, Serializer, de::Error as _};

fn parse<'de, D: Deserializer<'de>>(d: D, field: &str) -> Result<Duration, D::Error> {
    let text = String::deserialize(d).map_err(|e| {
        D::Error::custom(format!(
            "`{field}` must be a duration string like \"30s\": {e}"
        ))
    })?;
    ferry_core::parse_duration(&text)
        .map_err(|e| D::Error::custom(format!("`{field}`: {}", e.message())))
}

/// `for`: how long a condition must hold before the alert fires.
pub(super) fn de_for<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    parse(d, "for")
}

/// `timeout`: how long one webhook request may take.
pub(super) fn de_timeout<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    parse(d, "timeout")
}

/// `window`: how far back a rate-style rule looks.
pub(super) fn de_window<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    parse(d, "window").map(Some)
}

/// Writes a duration back in the same string form it was read in.
pub(super) fn ser<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&ferry_core::format_duration(*d))
}

/// [`ser`] for optional fields (skipped when `None` by the field's attributes).
pub(super) fn ser_opt<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
    match d {
        Some(d) => ser(d, s),
        None => s.serialize_none(),
    }
}
