//! `ferry relay --from postgres://… --to URL`: runs the outbox relay
//! ([`ferry_postgres::Relay`]) as a process, until SIGINT or SIGTERM.
//!
//! It is its own command (not an option of `serve` or `consume`) because it is a
//! separate deployable: run one or more next to the database, and only the one holding
//! the schema's lock forwards (the others stand by and take over if it dies). Every
//! round that found rows prints one line on stderr with its counts, so an operator sees
//! progress and refusals without turning on debug logs.

use std::sync::Arc;

use ferry::{Driver, Error, ErrorKind, Result};
use ferry_postgres::{Relay, RelayEvent};

use crate::args::RelayArgs;

/// Connects to both ends and relays until a signal; prints a summary at the end.
pub async fn run(args: RelayArgs) -> Result<()> {
    let target = connect_target(&args.to).await?;
    let relay = Relay::builder(&args.from, target)?
        .batch(args.batch as usize)
        .every(args.every)
        .listen(!args.no_listen)
        .on_event(print_event)
        .build();
    let shutdown = shutdown_signal()?;
    eprintln!(
        "ferry relay: outbox of schema {} → {}",
        relay.schema(),
        shown(&args.to)
    );
    let report = relay.run(shutdown).await?;
    eprintln!(
        "ferry relay: stopped; forwarded {} in {} rounds ({} duplicates dropped by id, {} refusals, {} database errors, {} target errors)",
        report.forwarded,
        report.rounds,
        report.duplicates,
        report.refused,
        report.source_errors,
        report.target_errors
    );
    Ok(())
}

/// Resolves on the first SIGINT or SIGTERM; installed before the relay starts, so a
/// signal ends the current round cleanly instead of killing the process (which would be
/// safe too: the round's rows stay and are forwarded again).
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
            let name = tokio::select! {
                _ = term.recv() => "SIGTERM",
                _ = int.recv() => "SIGINT",
            };
            eprintln!("ferry relay: {name} received; finishing the current round");
        })
    }
    #[cfg(not(unix))]
    {
        let _ = io;
        Ok(async move {
            let _ = tokio::signal::ctrl_c().await;
            eprintln!("ferry relay: Ctrl-C received; finishing the current round");
        })
    }
}

/// The target: any backend URL; `postgres://` through ferry-postgres directly, so it
/// works whether or not the facade was built with PostgreSQL.
async fn connect_target(url: &str) -> Result<Arc<dyn Driver>> {
    let lower = url.trim().to_ascii_lowercase();
    if lower.starts_with("postgres://") || lower.starts_with("postgresql://") {
        return Ok(Arc::new(
            ferry_postgres::PostgresDriver::connect(url.trim()).await?,
        ));
    }
    ferry::connect_async(url).await
}

/// One stderr line per event: rounds with rows, leadership changes, refusals, errors.
fn print_event(event: &RelayEvent<'_>) {
    match event {
        RelayEvent::Leading => eprintln!("ferry relay: leading (holds the schema's relay lock)"),
        RelayEvent::StandingBy => {
            eprintln!("ferry relay: standing by (another relay holds the lock)");
        }
        RelayEvent::Round(r) => {
            eprintln!(
                "ferry relay: round fetched={} forwarded={} duplicates={} held={} ms={}",
                r.fetched,
                r.forwarded,
                r.duplicates,
                r.held,
                r.elapsed.as_millis()
            );
            for refusal in &r.refusals {
                eprintln!(
                    "ferry relay: REFUSED seq {} id {} for {} ({} failures, retry in {:?}): {}; the row stays, later rows of that destination wait",
                    refusal.seq,
                    refusal.id,
                    refusal.destination,
                    refusal.failures,
                    refusal.retry_in,
                    refusal.error
                );
            }
        }
        RelayEvent::Error {
            error,
            source,
            retry_in,
        } => {
            let side = if *source { "PostgreSQL" } else { "the target" };
            eprintln!("ferry relay: {side} failed, retrying in {retry_in:?}: {error}");
        }
        _ => {}
    }
}

/// `url` without a password, for the start line.
fn shown(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => match rest.split_once('@') {
            Some((user, host)) if user.contains(':') => {
                let name = user.split(':').next().unwrap_or("");
                format!("{scheme}://{name}:***@{host}")
            }
            _ => url.to_string(),
        },
        None => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::shown;

    #[test]
    fn passwords_are_not_printed() {
        assert_eq!(shown("redis://:secret@h:6379"), "redis://:***@h:6379");
        assert_eq!(shown("amqp://u:p@h/vh"), "amqp://u:***@h/vh");
        assert_eq!(shown("file:./data"), "file:./data");
    }
}
