//! `ferry topic create|list|delete|bind|unbind|bindings`.

use ferry::{Driver, Result};
use serde_json::json;

use crate::args::TopicCommand;
use crate::output::{Align, outln, print_json, table};

/// How the audit log names a binding (as `ferry serve` does).
fn binding(b: &crate::args::BindArgs) -> String {
    format!("{} -> {} ({})", b.topic, b.queue, b.pattern)
}

/// Runs a `ferry topic` subcommand.
pub async fn run(driver: &dyn Driver, command: TopicCommand) -> Result<()> {
    match command {
        TopicCommand::Create { name } => {
            driver.create_topic(&name).await?;
            crate::audited::record("topic.create", name.as_str(), 1, None).await;
            eprintln!("created topic '{name}'");
            Ok(())
        }
        TopicCommand::List(flag) => {
            let topics = driver.list_topics().await?;
            if flag.json {
                let names: Vec<&str> = topics.iter().map(|t| t.as_str()).collect();
                return print_json(&json!({ "topics": names }));
            }
            if topics.is_empty() {
                eprintln!("no topics yet; create one with: ferry topic create NAME");
            }
            for t in topics {
                outln!("{t}")?;
            }
            Ok(())
        }
        TopicCommand::Delete { name } => {
            driver.delete_topic(&name).await?;
            crate::audited::record("topic.delete", name.as_str(), 1, None).await;
            eprintln!("deleted topic '{name}' and its bindings");
            Ok(())
        }
        TopicCommand::Bind(b) => {
            driver.bind(&b.topic, &b.queue, &b.pattern).await?;
            crate::audited::record("topic.bind", binding(&b), 1, None).await;
            eprintln!(
                "bound topic '{}' to queue '{}' with pattern '{}'",
                b.topic, b.queue, b.pattern
            );
            Ok(())
        }
        TopicCommand::Unbind(b) => {
            driver.unbind(&b.topic, &b.queue, &b.pattern).await?;
            crate::audited::record("topic.unbind", binding(&b), 1, None).await;
            eprintln!(
                "removed the binding of topic '{}' to queue '{}' with pattern '{}'",
                b.topic, b.queue, b.pattern
            );
            Ok(())
        }
        TopicCommand::Bindings { topic, json } => {
            let bindings = driver.list_bindings(&topic).await?;
            if json {
                let items: Vec<_> = bindings
                    .iter()
                    .map(|b| json!({ "queue": b.queue.as_str(), "pattern": b.pattern }))
                    .collect();
                return print_json(&json!({ "topic": topic.as_str(), "bindings": items }));
            }
            if bindings.is_empty() {
                eprintln!(
                    "topic '{topic}' has no bindings; add one with: ferry topic bind {topic} QUEUE PATTERN"
                );
                return Ok(());
            }
            let rows: Vec<Vec<String>> = bindings
                .iter()
                .map(|b| vec![b.queue.to_string(), b.pattern.clone()])
                .collect();
            outln!(
                "{}",
                table(&[("QUEUE", Align::Left), ("PATTERN", Align::Left)], &rows)
            )
        }
    }
}
