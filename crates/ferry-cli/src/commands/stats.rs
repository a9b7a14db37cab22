//! `ferry stats`: counts by state, as a table or as JSON for scripts and monitoring.

use ferry::{Driver, Result};
use serde::Serialize;

use crate::args::StatsArgs;
use crate::output::{Align, outln, print_json, table};

/// The JSON document: `{"queues":[{"name","ready","delayed","in_flight","dead"}]}`.
/// Its own type so the shape stays fixed even if the library's stats grow fields.
#[derive(Debug, Serialize)]
struct StatsDoc {
    queues: Vec<QueueRow>,
}

#[derive(Debug, Serialize)]
struct QueueRow {
    name: String,
    ready: u64,
    delayed: u64,
    in_flight: u64,
    dead: u64,
}

impl From<&ferry::QueueStats> for QueueRow {
    fn from(s: &ferry::QueueStats) -> Self {
        QueueRow {
            name: s.name.clone(),
            ready: s.ready,
            delayed: s.delayed,
            in_flight: s.in_flight,
            dead: s.dead,
        }
    }
}

/// Prints the stats of one queue or all queues.
pub async fn run(driver: &dyn Driver, args: StatsArgs) -> Result<()> {
    let stats = driver.stats(args.queue.as_ref()).await?;
    let rows: Vec<QueueRow> = stats.iter().map(QueueRow::from).collect();
    if args.json {
        return print_json(&StatsDoc { queues: rows });
    }
    if rows.is_empty() {
        eprintln!("no queues yet; create one with: ferry queue create NAME");
        return Ok(());
    }
    outln!("{}", render(&rows))
}

fn render(rows: &[QueueRow]) -> String {
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            vec![
                r.name.clone(),
                r.ready.to_string(),
                r.delayed.to_string(),
                r.in_flight.to_string(),
                r.dead.to_string(),
            ]
        })
        .collect();
    table(
        &[
            ("QUEUE", Align::Left),
            ("READY", Align::Right),
            ("DELAYED", Align::Right),
            ("IN_FLIGHT", Align::Right),
            ("DEAD", Align::Right),
        ],
        &cells,
    )
}

/// The stats table for `stats`, for other commands (the demo) to print.
pub fn render_stats(stats: &[ferry::QueueStats]) -> String {
    let rows: Vec<QueueRow> = stats.iter().map(QueueRow::from).collect();
    render(&rows)
}
