//! `ferry inspect QUEUE ID`: the life of one message, from the message history.

use ferry::{Driver, ErrorKind, QueueName, Result};

use crate::output::{Align, outln, print_json, table, timestamp};

/// Prints the history of message `id` in `queue` (JSON with `json`), and where the
/// message is now when the history does not say.
pub async fn run(driver: &dyn Driver, queue: &QueueName, id: &str, json: bool) -> Result<()> {
    let events = driver.history(queue, id).await?;
    if json {
        return print_json(&serde_json::json!({
            "queue": queue.as_str(),
            "id": id,
            "events": events,
        }));
    }
    if events.is_empty() {
        let dead = match driver.get_dead_letter(queue, id).await {
            Ok(_) => " (it is in the dead letters: ferry dlq show)",
            Err(e) if e.kind() == ErrorKind::MessageNotFound => "",
            Err(e) => return Err(e),
        };
        outln!("no history for message '{id}' in queue '{queue}' within the retention{dead}")?;
        return Ok(());
    }
    let rows: Vec<Vec<String>> = events
        .iter()
        .map(|e| {
            vec![
                timestamp(e.at),
                e.event.clone(),
                e.attempt.to_string(),
                e.detail.clone().unwrap_or_default(),
            ]
        })
        .collect();
    outln!(
        "{}",
        table(
            &[
                ("AT", Align::Left),
                ("EVENT", Align::Left),
                ("ATTEMPT", Align::Right),
                ("DETAIL", Align::Left),
            ],
            &rows
        )
    )?;
    Ok(())
}
