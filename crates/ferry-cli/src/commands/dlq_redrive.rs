//! `ferry dlq redrive QUEUE... [--every DUR] [--max N] [--json]`: moves approved dead
//! letters back into their queues with `ferry_core::Redriver`.
//!
//! The safety is the backend's (`DeadLetters::redrive_approved` is an atomic claim), so
//! an operator may run this from cron, as a daemon, or in several places at once:
//! every approved dead letter is moved once per approval. This command adds what an
//! operator needs around it: a line per moved message on stdout (so runs can be
//! compared or fed to other tools), an audit entry per moved batch, and a clean stop on
//! SIGINT/SIGTERM that still reports the call in flight.

use std::sync::Arc;

use ferry::{Driver, Error, ErrorKind, QueueName, RedriveReport, Redriver, Result};
use serde_json::json;
use tokio::sync::mpsc;

use super::dlq::plural;
use crate::args::DlqRedriveArgs;
use crate::output::outln;

/// Runs one round, or rounds every `--every` until a signal.
pub async fn run(driver: Arc<dyn Driver>, args: DlqRedriveArgs) -> Result<()> {
    let (tx, rx) = mpsc::unbounded_channel::<(QueueName, Vec<String>)>();
    let mut builder = Redriver::builder(driver)
        .queues(args.queues.iter().cloned())
        .max_per_round(args.max)
        .on_redriven(move |q, ids| {
            // The receiver lives until every sender is gone; a send cannot fail first.
            let _ = tx.send((q.clone(), ids.to_vec()));
        });
    if let Some(every) = args.every {
        builder = builder.every(every);
    }
    let redriver = builder.build()?;
    let printer = tokio::spawn(report(rx, args.json));
    let result = match args.every {
        None => redriver.round().await,
        Some(_) => redriver.run(shutdown_signal()?).await,
    };
    // Dropping the redriver drops the callback's sender, which ends the printer.
    drop(redriver);
    let printed = printer
        .await
        .map_err(|e| Error::internal("the re-drive printer failed").with_source(e))?;
    let report = result?;
    printed?;
    summary(&report, args.every.is_some());
    Ok(())
}

/// Prints and audits each moved batch as it arrives.
async fn report(
    mut rx: mpsc::UnboundedReceiver<(QueueName, Vec<String>)>,
    json: bool,
) -> Result<()> {
    let mut failed = None;
    while let Some((queue, ids)) = rx.recv().await {
        for id in &ids {
            let line = if json {
                outln!("{}", json!({ "queue": queue.as_str(), "id": id }))
            } else {
                outln!("{queue} {id}")
            };
            // Keep auditing even if stdout went away; report the first failure at the end.
            if let Err(e) = line {
                failed.get_or_insert(e);
            }
        }
        let detail = format!("ids: {}", ids.join(", "));
        crate::audited::record(
            "dead_letters.redrive",
            queue.as_str(),
            ids.len() as u64,
            Some(detail),
        )
        .await;
    }
    failed.map_or(Ok(()), Err)
}

fn summary(report: &RedriveReport, looped: bool) {
    let n = report.redriven;
    if looped {
        eprintln!(
            "ferry dlq redrive: stopped after {} round{}; re-drove {n} dead letter{}, survived {} backend error{}",
            report.rounds,
            plural(report.rounds),
            plural(n),
            report.errors,
            plural(report.errors)
        );
    } else {
        eprintln!("re-drove {n} approved dead letter{}", plural(n));
    }
}

/// Resolves on the first SIGINT or SIGTERM (installed before the first round, so a
/// signal never kills the process between a move and its report).
fn shutdown_signal() -> Result<impl Future<Output = ()> + Send> {
    let io = |e: std::io::Error| {
        Error::new(ErrorKind::Io, "cannot install the signal handlers").with_source(e)
    };
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate()).map_err(io)?;
        let mut int = signal(SignalKind::interrupt()).map_err(io)?;
        Ok(async move {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        })
    }
    #[cfg(not(unix))]
    {
        let _ = io;
        Ok(async move {
            let _ = tokio::signal::ctrl_c().await;
        })
    }
}
