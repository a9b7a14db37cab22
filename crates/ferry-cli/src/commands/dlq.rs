//! `ferry dlq list|show|requeue|delete|purge|approve|redrive`: the operator's view of
//! messages that ran out of attempts or were rejected, and the ways to repair them
//! (`redrive` is `dlq_redrive.rs`).

use std::sync::Arc;

use ferry::{DeadLetter, DeadLetterQuery, Driver, Error, ErrorKind, QueueName, Result, Selection};
use serde_json::{Value, json};

use crate::args::{DlqCommand, DlqListArgs};
use crate::output::{Align, clip, outln, payload_text, print_json, table, timestamp};

/// Runs a `ferry dlq` subcommand.
pub async fn run(handle: Arc<dyn Driver>, command: DlqCommand) -> Result<()> {
    let driver = &*handle;
    match command {
        DlqCommand::Redrive(args) => super::dlq_redrive::run(handle.clone(), args).await,
        DlqCommand::Approve { queue, ids, all } => {
            let selection = if all {
                Selection::All
            } else {
                check_ids(driver, &queue, &ids).await?;
                Selection::Ids(ids.clone())
            };
            let n = driver.approve_dead_letters(&queue, selection).await?;
            let detail = if all {
                "all".to_string()
            } else {
                format!("ids: {}", ids.join(", "))
            };
            crate::audited::record("dead_letters.approve", queue.as_str(), n, Some(detail)).await;
            eprintln!(
                "approved {n} dead letter{} of '{queue}' for re-drive (run: ferry dlq redrive {queue})",
                plural(n)
            );
            Ok(())
        }
        DlqCommand::List(args) => list(driver, args).await,
        DlqCommand::Show { queue, id, json } => {
            let dead = driver.get_dead_letter(&queue, &id).await?;
            if json {
                print_json(&to_json(&dead))
            } else {
                show(&dead)
            }
        }
        DlqCommand::Requeue { queue, ids, all } => {
            let selection = if all {
                Selection::All
            } else {
                check_ids(driver, &queue, &ids).await?;
                Selection::Ids(ids.clone())
            };
            let n = driver.requeue_dead_letters(&queue, selection).await?;
            let detail = if all {
                "all".to_string()
            } else {
                format!("ids: {}", ids.join(", "))
            };
            crate::audited::record("dead_letters.requeue", queue.as_str(), n, Some(detail)).await;
            eprintln!("requeued {n} dead letter{} into '{queue}'", plural(n));
            if !all && (n as usize) < ids.len() {
                eprintln!(
                    "note: {} of them were not requeued because a message with the same id is queued again",
                    ids.len() - n as usize
                );
            }
            Ok(())
        }
        DlqCommand::Delete { queue, ids } => {
            check_ids(driver, &queue, &ids).await?;
            let detail = format!("ids: {}", ids.join(", "));
            let n = driver
                .delete_dead_letters(&queue, Selection::Ids(ids))
                .await?;
            crate::audited::record("dead_letters.delete", queue.as_str(), n, Some(detail)).await;
            eprintln!("deleted {n} dead letter{} of '{queue}'", plural(n));
            Ok(())
        }
        DlqCommand::Purge { queue } => {
            let n = driver.delete_dead_letters(&queue, Selection::All).await?;
            crate::audited::record("dead_letters.purge", queue.as_str(), n, None).await;
            eprintln!("purged {n} dead letter{} of '{queue}'", plural(n));
            Ok(())
        }
    }
}

pub(crate) fn plural(n: u64) -> &'static str {
    if n == 1 { "" } else { "s" }
}

/// Fails with `MessageNotFound`, naming every unknown id, before anything changes, so a
/// typo in one id does not leave the operator guessing which others were applied.
async fn check_ids(driver: &dyn Driver, queue: &QueueName, ids: &[String]) -> Result<()> {
    let mut missing = Vec::new();
    for id in ids {
        match driver.get_dead_letter(queue, id).await {
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::MessageNotFound => missing.push(id.as_str()),
            Err(e) => return Err(e),
        }
    }
    if missing.is_empty() {
        return Ok(());
    }
    Err(Error::new(
        ErrorKind::MessageNotFound,
        format!(
            "no dead letter with id {} in queue '{queue}'; nothing was changed (list them with: ferry dlq list {queue})",
            missing
                .iter()
                .map(|id| format!("'{id}'"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    ))
}

async fn list(driver: &dyn Driver, args: DlqListArgs) -> Result<()> {
    let mut query = DeadLetterQuery::page(args.offset, args.limit);
    query.reason = args.reason;
    if args.approved {
        query = query.with_approved(true);
    }
    let dead = driver.list_dead_letters(&args.queue, query).await?;
    if args.json {
        let items: Vec<Value> = dead.iter().map(to_json).collect();
        return print_json(&json!({ "queue": args.queue.as_str(), "dead_letters": items }));
    }
    if dead.is_empty() {
        let which = if args.approved { "approved " } else { "" };
        eprintln!("no {which}dead letters in '{}'", args.queue);
        return Ok(());
    }
    let rows: Vec<Vec<String>> = dead
        .iter()
        .map(|d| {
            vec![
                d.id.clone(),
                d.reason.clone(),
                d.attempts.to_string(),
                timestamp(d.dead_at),
                clip(d.last_error.as_deref().unwrap_or("-"), 80),
            ]
        })
        .collect();
    outln!(
        "{}",
        table(
            &[
                ("ID", Align::Left),
                ("REASON", Align::Left),
                ("ATTEMPTS", Align::Right),
                ("DEAD_AT", Align::Left),
                ("LAST_ERROR", Align::Left),
            ],
            &rows
        )
    )
}

fn show(d: &DeadLetter) -> Result<()> {
    let (payload, encoding) = payload_text(&d.payload);
    let headers = if d.headers.is_empty() {
        "-".to_string()
    } else {
        d.headers
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    outln!("id:           {}", d.id)?;
    outln!("queue:        {}", d.queue)?;
    outln!("reason:       {}", d.reason)?;
    outln!("attempts:     {}", d.attempts)?;
    outln!("last error:   {}", d.last_error.as_deref().unwrap_or("-"))?;
    outln!("enqueued at:  {}", timestamp(d.enqueued_at))?;
    outln!(
        "first failed: {}",
        d.first_failed_at.map_or_else(|| "-".to_string(), timestamp)
    )?;
    outln!("dead at:      {}", timestamp(d.dead_at))?;
    outln!("route key:    {}", d.route_key.as_deref().unwrap_or("-"))?;
    outln!("priority:     {}", d.priority)?;
    outln!("headers:      {headers}")?;
    let shown = if encoding == "hex" { "hex" } else { "text" };
    outln!("payload ({} bytes, {shown}):", d.payload.len())?;
    outln!("{payload}")
}

/// A dead letter as JSON; the payload is text when it is UTF-8, else hex, as said by
/// `payload_encoding`.
fn to_json(d: &DeadLetter) -> Value {
    let (payload, encoding) = payload_text(&d.payload);
    json!({
        "id": d.id,
        "queue": d.queue.as_str(),
        "reason": d.reason,
        "attempts": d.attempts,
        "last_error": d.last_error,
        "enqueued_at": timestamp(d.enqueued_at),
        "first_failed_at": d.first_failed_at.map(timestamp),
        "dead_at": timestamp(d.dead_at),
        "route_key": d.route_key,
        "priority": d.priority,
        "headers": d.headers,
        "payload": payload,
        "payload_encoding": encoding,
    })
}
