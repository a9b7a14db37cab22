//! `ferry send` and `ferry publish`: one message from the command line or stdin.

use std::io::{IsTerminal, Read};

use bytes::Bytes;
use ferry::{Driver, Error, ErrorKind, Message, Result};

use crate::args::{MessageArgs, PublishArgs, SendArgs};
use crate::output::outln;

/// Sends one message to a queue and prints its id.
pub async fn send(driver: &dyn Driver, args: SendArgs) -> Result<()> {
    let message = build(args.message)?;
    let id = message.id().to_string();
    let report = driver.send(&args.queue, vec![message]).await?;
    if report.duplicates.contains(&id) {
        eprintln!(
            "note: a message with id '{id}' is already queued in '{}'; it was not sent again",
            args.queue
        );
    }
    outln!("{id}")
}

/// Publishes one message to a topic and prints its id and the queues it reached.
pub async fn publish(driver: &dyn Driver, args: PublishArgs) -> Result<()> {
    let message = build(args.message)?;
    let id = message.id().to_string();
    let report = driver
        .publish(&args.topic, &args.route_key, vec![message])
        .await?;
    let queues: Vec<&str> = report.queues.iter().map(|q| q.as_str()).collect();
    if report.duplicates > 0 {
        eprintln!(
            "note: a message with id '{id}' was already queued in {} of those queues; it was not sent there again",
            report.duplicates
        );
    }
    outln!("{id} -> {}", queues.join(", "))
}

fn build(args: MessageArgs) -> Result<Message> {
    let payload = match args.payload {
        Some(text) => Bytes::from(text),
        None => read_stdin()?,
    };
    let mut message = Message::new(payload);
    if let Some(id) = args.id {
        message = message.with_id(id);
    }
    if let Some(delay) = args.delay {
        message = message.with_delay(delay);
    }
    if let Some(priority) = args.priority {
        message = message.with_priority(priority);
    }
    for (k, v) in args.headers {
        message = message.with_header(k, v);
    }
    Ok(message)
}

fn read_stdin() -> Result<Bytes> {
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        eprintln!("reading the payload from stdin; end it with Ctrl-D (or pass it as an argument)");
    }
    let mut buf = Vec::new();
    stdin.lock().read_to_end(&mut buf).map_err(|e| {
        Error::new(ErrorKind::Io, "cannot read the payload from stdin").with_source(e)
    })?;
    Ok(Bytes::from(buf))
}
