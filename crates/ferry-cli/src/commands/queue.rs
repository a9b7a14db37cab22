//! `ferry queue create|list|delete`.

use ferry::{Driver, ErrorKind, QueueOptions, Result, format_duration};
use serde_json::json;

use crate::args::{QueueCommand, QueueCreateArgs};
use crate::output::{Align, outln, print_json, table};

/// Runs a `ferry queue` subcommand.
pub async fn run(driver: &dyn Driver, command: QueueCommand) -> Result<()> {
    match command {
        QueueCommand::Create(args) => create(driver, args).await,
        QueueCommand::List(flag) => list(driver, flag.json).await,
        QueueCommand::Delete { name } => {
            driver.delete_queue(&name).await?;
            crate::audited::record("queue.delete", name.as_str(), 1, None).await;
            eprintln!("deleted queue '{name}'");
            Ok(())
        }
    }
}

/// Creates the queue, or changes only the settings given on the command line of an
/// existing one (so `--lease 1m` does not silently reset its max attempts).
async fn create(driver: &dyn Driver, args: QueueCreateArgs) -> Result<()> {
    let (mut options, existed) = match driver.get_queue(&args.name).await {
        Ok(info) => (info.options, true),
        Err(e) if e.kind() == ErrorKind::QueueNotFound => (QueueOptions::default(), false),
        Err(e) => return Err(e),
    };
    if let Some(delay) = args.delay {
        options = options.with_default_delay(delay);
    }
    if let Some(n) = args.max_attempts {
        options = options.with_max_attempts(n);
    }
    if let Some(lease) = args.lease {
        options = options.with_lease(lease);
    }
    options.validate()?;
    driver.create_queue(&args.name, options).await?;
    crate::audited::record(
        "queue.create",
        args.name.as_str(),
        1,
        Some(format!(
            "delay {}, max attempts {}, lease {}",
            format_duration(options.default_delay),
            options.max_attempts,
            format_duration(options.lease)
        )),
    )
    .await;
    eprintln!(
        "{} queue '{}' (delay {}, max attempts {}, lease {})",
        if existed { "updated" } else { "created" },
        args.name,
        format_duration(options.default_delay),
        options.max_attempts,
        format_duration(options.lease)
    );
    Ok(())
}

async fn list(driver: &dyn Driver, as_json: bool) -> Result<()> {
    let queues = driver.list_queues().await?;
    if as_json {
        let items: Vec<_> = queues
            .iter()
            .map(|q| {
                json!({
                    "name": q.name.as_str(),
                    "default_delay_ms": q.options.default_delay.as_millis() as u64,
                    "max_attempts": q.options.max_attempts,
                    "lease_ms": q.options.lease.as_millis() as u64,
                })
            })
            .collect();
        return print_json(&json!({ "queues": items }));
    }
    if queues.is_empty() {
        eprintln!("no queues yet; create one with: ferry queue create NAME");
        return Ok(());
    }
    let rows: Vec<Vec<String>> = queues
        .iter()
        .map(|q| {
            vec![
                q.name.to_string(),
                format_duration(q.options.default_delay),
                q.options.max_attempts.to_string(),
                format_duration(q.options.lease),
            ]
        })
        .collect();
    outln!(
        "{}",
        table(
            &[
                ("QUEUE", Align::Left),
                ("DELAY", Align::Right),
                ("MAX_ATTEMPTS", Align::Right),
                ("LEASE", Align::Right),
            ],
            &rows
        )
    )
}
