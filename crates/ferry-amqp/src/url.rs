//! ferry's own parts of the connection URL: `queue_type` (classic or quorum queues) and
//! `timeout` (the longest a broker operation may take), plus the default heartbeat.
//! They are taken out before the URL reaches lapin, which owns the rest (`heartbeat`,
//! `frame_max`, `channel_max`, TLS and so on).

use std::time::Duration;

use ferry_core::{Error, Result};

/// How long one broker operation may take unless the URL's `timeout=` (milliseconds)
/// says otherwise; past it the call fails and the connection is replaced, because a
/// broker that does not answer for this long is as good as gone (a half-open
/// connection is only noticed by heartbeats, which take two intervals).
pub const DEFAULT_OP_TIMEOUT: Duration = Duration::from_secs(5);

/// The heartbeat (seconds) asked for unless the URL sets `heartbeat=`.
const DEFAULT_HEARTBEAT_SECS: u32 = 10;

/// A connection URL with ferry's parameters taken out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct UrlOptions {
    /// What lapin connects to (with a heartbeat).
    pub(crate) url: String,
    /// `queue_type=quorum`.
    pub(crate) quorum: bool,
    /// `timeout=MS`, else [`DEFAULT_OP_TIMEOUT`].
    pub(crate) op_timeout: Duration,
}

impl UrlOptions {
    /// Splits ferry's parameters from `url`; an invalid value is an `InvalidInput`
    /// error naming the parameter.
    pub(crate) fn parse(url: &str) -> Result<UrlOptions> {
        let (base, query) = url.split_once('?').unwrap_or((url, ""));
        let mut options = UrlOptions {
            url: String::new(),
            quorum: false,
            op_timeout: DEFAULT_OP_TIMEOUT,
        };
        let mut rest = Vec::new();
        for part in query.split('&').filter(|p| !p.is_empty()) {
            match part.split_once('=') {
                Some(("queue_type", "quorum")) => options.quorum = true,
                Some(("queue_type", "classic")) => options.quorum = false,
                Some(("queue_type", other)) => {
                    return Err(Error::invalid_input(format!(
                        "queue_type must be classic or quorum, not '{other}'"
                    )));
                }
                Some(("timeout", ms)) => {
                    options.op_timeout = ms
                        .parse::<u64>()
                        .ok()
                        .filter(|ms| (1..=600_000).contains(ms))
                        .map(Duration::from_millis)
                        .ok_or_else(|| {
                            Error::invalid_input(format!(
                                "timeout is the longest a broker operation may take, in milliseconds from 1 to 600000, not '{ms}'"
                            ))
                        })?;
                }
                _ => rest.push(part.to_string()),
            }
        }
        if !rest.iter().any(|p| p.starts_with("heartbeat=")) {
            rest.push(format!("heartbeat={DEFAULT_HEARTBEAT_SECS}"));
        }
        options.url = format!("{base}?{}", rest.join("&"));
        Ok(options)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ferry_parameters_are_taken_out() {
        let o = UrlOptions::parse("amqp://h/?queue_type=quorum&heartbeat=3&timeout=250")
            .expect("valid");
        assert_eq!(o.url, "amqp://h/?heartbeat=3");
        assert!(o.quorum);
        assert_eq!(o.op_timeout, Duration::from_millis(250));
        let o = UrlOptions::parse("amqp://h/%2f").expect("valid");
        assert_eq!(o.url, "amqp://h/%2f?heartbeat=10");
        assert!(!o.quorum);
        assert_eq!(o.op_timeout, DEFAULT_OP_TIMEOUT);
    }

    #[test]
    fn bad_values_name_the_parameter() {
        for (url, needle) in [
            ("amqp://h/?queue_type=stream", "queue_type"),
            ("amqp://h/?timeout=0", "timeout"),
            ("amqp://h/?timeout=soon", "timeout"),
        ] {
            let e = UrlOptions::parse(url).expect_err(url);
            assert_eq!(e.kind(), ferry_core::ErrorKind::InvalidInput);
            assert!(e.to_string().contains(needle), "{e}");
        }
    }
}
