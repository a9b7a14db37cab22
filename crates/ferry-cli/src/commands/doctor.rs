//! `ferry doctor`: is this backend set up so that messages are safe? One line per
//! finding, or JSON, and an exit status scripts and deploy checks can branch on.
//!
//! Redis is where settings matter (eviction, persistence): the findings are
//! `RedisDriver::doctor`'s. The embedded store has no settings to get wrong, so it only
//! shows that the data file opens as ferry's format (the open checks the header and the
//! format version) and what it holds. It does not create a missing data directory, as
//! every other command would: a doctor that changes what it examines misleads.

use std::process::ExitCode;

use ferry::redis::{Finding, RedisConfig, RedisDriver, Severity, redact};
use ferry::{Error, ErrorKind, Result};
use serde::Serialize;

use crate::args::DoctorArgs;
use crate::exit;
use crate::output::{outln, print_json};

/// The JSON document: `{"backend","healthy","findings":[{"severity","check","message"}]}`.
#[derive(Debug, Serialize)]
struct Report {
    backend: String,
    healthy: bool,
    findings: Vec<Row>,
}

#[derive(Debug, Serialize)]
struct Row {
    severity: &'static str,
    check: &'static str,
    message: String,
}

/// Checks the backend at `url` and prints the findings; exit status 1 when one is an
/// error, else 0.
pub async fn run(url: &str, args: DoctorArgs) -> Result<ExitCode> {
    let findings = examine(url.trim()).await?;
    let healthy = findings.iter().all(|f| f.severity != Severity::Error);
    if args.json {
        print_json(&Report {
            backend: redact(url),
            healthy,
            findings: findings
                .iter()
                .map(|f| Row {
                    severity: f.severity.as_str(),
                    check: f.check,
                    message: f.message.clone(),
                })
                .collect(),
        })?;
    } else {
        let width = findings.iter().map(|f| f.check.len()).max().unwrap_or(0);
        for f in &findings {
            outln!(
                "{:<5}  {:<width$}  {}",
                f.severity.as_str(),
                f.check,
                f.message
            )?;
        }
    }
    Ok(if healthy {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(exit::FAILURE)
    })
}

fn is_redis(url: &str) -> bool {
    url.split_once("://")
        .is_some_and(|(scheme, _)| scheme.to_ascii_lowercase().starts_with("redis"))
}

/// Input errors (a bad URL) are returned and exit 2; a backend that cannot be reached
/// or opened is an error finding.
fn finding_or_input_error(e: Error, check: &'static str) -> Result<Vec<Finding>> {
    match e.kind() {
        ErrorKind::InvalidInput | ErrorKind::InvalidName | ErrorKind::Unsupported => Err(e),
        _ => Ok(vec![Finding::new(Severity::Error, check, e.to_string())]),
    }
}

async fn examine(url: &str) -> Result<Vec<Finding>> {
    if is_redis(url) {
        // The doctor reports the findings itself; no background warnings on top.
        let config = RedisConfig::new(url).with_check_settings(false);
        let driver = match RedisDriver::connect_with(config).await {
            Ok(d) => d,
            Err(e) => return finding_or_input_error(e, "connect"),
        };
        return match driver.doctor().await {
            Ok(findings) => Ok(findings),
            Err(e) => finding_or_input_error(e, "connect"),
        };
    }
    if let Some(rest) = url.strip_prefix("file:") {
        let path = rest.strip_prefix("//").unwrap_or(rest);
        if !path.trim().is_empty() && !std::path::Path::new(path).exists() {
            return Ok(vec![Finding::new(
                Severity::Warn,
                "open",
                format!(
                    "no data directory at {path} yet (the first command that uses it creates \
                     it); check the path if you expected data there"
                ),
            )]);
        }
    }
    // memory:, file:, or something to refuse with connect's own message.
    let driver = match ferry::connect(url) {
        Ok(d) => d,
        Err(e) => return finding_or_input_error(e, "open"),
    };
    if url.starts_with("memory:") {
        return Ok(vec![Finding::new(
            Severity::Ok,
            "backend",
            "memory: nothing to check (in-process; nothing survives the process)",
        )]);
    }
    let mut out = vec![Finding::new(
        Severity::Ok,
        "open",
        format!("opened {url}: the data file's header and format version are ferry's"),
    )];
    match driver.stats(None).await {
        Ok(stats) => {
            let sum = |f: fn(&ferry::QueueStats) -> u64| stats.iter().map(f).sum::<u64>();
            out.push(Finding::new(
                Severity::Ok,
                "queues",
                format!(
                    "{} queue(s): {} ready, {} delayed, {} in flight, {} dead",
                    stats.len(),
                    sum(|s| s.ready),
                    sum(|s| s.delayed),
                    sum(|s| s.in_flight),
                    sum(|s| s.dead)
                ),
            ));
        }
        Err(e) => out.push(Finding::new(
            Severity::Error,
            "queues",
            format!("cannot read the queues: {e}"),
        )),
    }
    Ok(out)
}
