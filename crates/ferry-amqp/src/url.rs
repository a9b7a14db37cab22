//! ferry's own parts of the connection URL (`queue_type`, the default heartbeat).

use ferry_core::{Error, Result};

/// Adds `heartbeat=10` (seconds) unless the URL sets its own.
pub(crate) fn with_default_heartbeat(url: &str) -> String {
    if url.contains("heartbeat=") {
        url.to_string()
    } else if url.contains('?') {
        format!("{url}&heartbeat=10")
    } else {
        format!("{url}?heartbeat=10")
    }
}

pub(crate) fn strip_queue_type(url: &str) -> Result<(String, bool)> {
    let Some((base, query)) = url.split_once('?') else {
        return Ok((url.to_string(), false));
    };
    let mut quorum = false;
    let mut rest = Vec::new();
    for part in query.split('&') {
        match part.split_once('=') {
            Some(("queue_type", "quorum")) => quorum = true,
            Some(("queue_type", "classic")) => {}
            Some(("queue_type", other)) => {
                return Err(Error::invalid_input(format!(
                    "queue_type must be classic or quorum, not '{other}'"
                )));
            }
            _ => rest.push(part),
        }
    }
    let url = if rest.is_empty() {
        base.to_string()
    } else {
        format!("{base}?{}", rest.join("&"))
    };
    Ok((url, quorum))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queue_type_parameter() {
        assert_eq!(
            strip_queue_type("amqp://h/?queue_type=quorum&heartbeat=10").ok(),
            Some(("amqp://h/?heartbeat=10".to_string(), true))
        );
        assert!(strip_queue_type("amqp://h/?queue_type=stream").is_err());
    }
}
