//! `ferry tx`: what two-phase sends left waiting. Prepared messages live in the
//! backend's `TxStore` until their producer commits or a checker resolves them; an
//! operator looks here when `tx_check_exhausted` dead letters appear or a checker
//! seems stuck. Read-only: resolving is the checker's job (it knows the check-back).

use std::collections::BTreeMap;

use ferry::tx::{Destination, Prepared, TxStore};
use ferry::{Driver, Error, ErrorKind, Result};
use serde::Serialize;

use crate::args::TxCommand;
use crate::output::{Align, outln, payload_text, print_json, table, timestamp};

/// One prepared message as `--json` prints it.
#[derive(Debug, Serialize)]
struct Row {
    id: String,
    destination: String,
    state: &'static str,
    checks: u32,
    prepared_at: String,
    due_at: String,
    last_error: Option<String>,
    headers: BTreeMap<String, String>,
    payload: String,
    payload_encoding: &'static str,
}

impl From<&Prepared> for Row {
    fn from(p: &Prepared) -> Self {
        let (payload, payload_encoding) = payload_text(p.message.payload());
        Row {
            id: p.id().to_string(),
            destination: match &p.destination {
                Destination::Queue(q) => format!("queue:{q}"),
                Destination::Topic { topic, route_key } => format!("topic:{topic}:{route_key}"),
            },
            state: p.state.as_str(),
            checks: p.checks,
            prepared_at: timestamp(p.prepared_at),
            due_at: timestamp(p.due_at),
            last_error: p.last_error.clone(),
            headers: p.message.headers().clone(),
            payload,
            payload_encoding,
        }
    }
}

fn store(driver: &dyn Driver) -> Result<std::sync::Arc<dyn TxStore>> {
    driver.tx_store().ok_or_else(|| {
        Error::new(
            ErrorKind::Unsupported,
            "this backend keeps no prepared two-phase messages (the embedded, Redis and PostgreSQL backends do)",
        )
    })
}

/// Runs a `ferry tx` subcommand.
pub async fn run(driver: &dyn Driver, command: TxCommand) -> Result<()> {
    let store = store(driver)?;
    match command {
        TxCommand::List {
            offset,
            limit,
            json,
        } => {
            let rows: Vec<Row> = store
                .list(offset, limit)
                .await?
                .iter()
                .map(Row::from)
                .collect();
            if json {
                return print_json(&rows);
            }
            if rows.is_empty() {
                eprintln!("no prepared messages");
                return Ok(());
            }
            let cells: Vec<Vec<String>> = rows
                .iter()
                .map(|r| {
                    vec![
                        r.id.clone(),
                        r.destination.clone(),
                        r.state.to_string(),
                        r.checks.to_string(),
                        r.prepared_at.clone(),
                        r.due_at.clone(),
                        r.last_error.clone().unwrap_or_default(),
                    ]
                })
                .collect();
            let header = [
                ("ID", Align::Left),
                ("DESTINATION", Align::Left),
                ("STATE", Align::Left),
                ("CHECKS", Align::Right),
                ("PREPARED", Align::Left),
                ("DUE", Align::Left),
                ("LAST ERROR", Align::Left),
            ];
            outln!("{}", table(&header, &cells))?;
            let total = store.count().await?;
            eprintln!("{} of {total} prepared messages", rows.len());
            Ok(())
        }
        TxCommand::Show { id, json } => {
            let row = Row::from(&store.get(&id).await?);
            if json {
                return print_json(&row);
            }
            outln!("id:          {}", row.id)?;
            outln!("destination: {}", row.destination)?;
            outln!("state:       {}", row.state)?;
            outln!("checks:      {}", row.checks)?;
            outln!("prepared at: {}", row.prepared_at)?;
            outln!("due at:      {}", row.due_at)?;
            if let Some(e) = &row.last_error {
                outln!("last error:  {e}")?;
            }
            for (k, v) in &row.headers {
                outln!("header:      {k}: {v}")?;
            }
            outln!("payload ({}):", row.payload_encoding)?;
            outln!("{}", row.payload)
        }
    }
}
