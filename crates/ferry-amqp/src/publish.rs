//! Publishing with publisher confirms: where a message goes and waiting for the broker
//! to take it.

use std::time::SystemTime;

use ferry_core::{Error, ErrorKind, QueueName, Result};
use lapin::{BasicProperties, Channel};

use crate::delay::delay_headers;
use lapin::options::BasicPublishOptions;
use lapin::publisher_confirm::Confirmation;

use crate::driver::AmqpDriver;
use crate::error::amqp_err;
use crate::stored::Stored;

/// Where a message is published: an exchange (`""` is the default one) and a key.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    pub(crate) exchange: String,
    pub(crate) key: String,
    /// A delay, routed by the delay levels' bit headers (see `delay.rs`).
    pub(crate) delay_secs: Option<u64>,
}

impl Target {
    /// An undelayed target.
    pub(crate) fn new(exchange: impl Into<String>, key: impl Into<String>) -> Target {
        Target {
            exchange: exchange.into(),
            key: key.into(),
            delay_secs: None,
        }
    }

    /// The properties of `stored` published to this target.
    fn properties(&self, stored: &Stored) -> BasicProperties {
        match self.delay_secs {
            None => stored.properties(),
            Some(secs) => stored.properties_with(delay_headers(secs)),
        }
    }
}

impl AmqpDriver {
    /// Publishes one message with mandatory + persistent and waits for its confirm.
    pub(crate) async fn publish_one(
        &self,
        channel: &Channel,
        exchange: &str,
        key: &str,
        stored: &Stored,
    ) -> Result<()> {
        let item = Target::new(exchange, key);
        publish_many(channel, &[(item, stored)]).await
    }

    /// Puts `stored` into `queue`, ready at `at`: directly, or through the delay levels.
    pub(crate) async fn enqueue_at(
        &self,
        channel: &Channel,
        queue: &QueueName,
        stored: &Stored,
        at: SystemTime,
    ) -> Result<()> {
        publish_many(channel, &[(Target::queue_at(queue, at), stored)]).await
    }
}

/// Publishes every item (mandatory, persistent) back to back, then waits for all their
/// confirms; the first failure is returned once every confirm is in.
pub(crate) async fn publish_many(channel: &Channel, items: &[(Target, &Stored)]) -> Result<()> {
    publish_recorded(channel, items, None).await
}

/// [`publish_many`] with a history record riding in the same batch (one round trip
/// for both): the record's own failure is logged, never returned, so a stored message
/// is never reported as failed because its history was not written.
pub(crate) async fn publish_recorded(
    channel: &Channel,
    items: &[(Target, &Stored)],
    record: Option<(&Target, &Stored)>,
) -> Result<()> {
    let mut confirms = Vec::with_capacity(items.len());
    for (target, stored) in items {
        let confirm = channel
            .basic_publish(
                &target.exchange,
                &target.key,
                BasicPublishOptions {
                    mandatory: true,
                    ..BasicPublishOptions::default()
                },
                &stored.payload,
                target.properties(stored),
            )
            .await
            .map_err(amqp_err)
            .map_err(|e| {
                if confirms.is_empty() {
                    e
                } else {
                    // Some of the batch may be stored already.
                    Error::new(
                        ErrorKind::Indeterminate,
                        format!("{e} (after part of the batch was published)"),
                    )
                }
            })?;
        confirms.push((target, confirm));
    }
    let record_confirm = match record {
        Some((target, stored)) => channel
            .basic_publish(
                &target.exchange,
                &target.key,
                BasicPublishOptions::default(),
                &stored.payload,
                target.properties(stored),
            )
            .await
            .map_err(|e| tracing::warn!(error = %e, "rabbitmq: history not recorded"))
            .ok(),
        None => None,
    };
    let mut first_error = None;
    let mut stored_some = false;
    for (target, confirm) in confirms {
        match outcome(target, confirm.await) {
            Ok(()) => stored_some = true,
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    // Part of the batch is stored: the caller must not take the error for "nothing
    // was sent" (resending the whole batch would duplicate the stored part).
    if stored_some && let Some(e) = first_error.take() {
        first_error = Some(Error::new(
            ErrorKind::Indeterminate,
            format!("part of the batch was stored, part was not: {e}"),
        ));
    }
    if let Some(confirm) = record_confirm
        && let Err(e) = confirm.await
    {
        tracing::warn!(error = %e, "rabbitmq: history record not confirmed");
    }
    first_error.map_or(Ok(()), Err)
}

/// What one publisher confirm says about the message it confirms.
fn outcome(target: &Target, confirm: lapin::Result<Confirmation>) -> Result<()> {
    match confirm {
        Err(e) => Err(Error::new(
            ErrorKind::Indeterminate,
            format!("rabbitmq: no publisher confirm: {e}"),
        )),
        Ok(c) if c.is_nack() => Err(Error::new(
            ErrorKind::Indeterminate,
            "rabbitmq refused (nacked) the message",
        )),
        Ok(c) => match c.take_message() {
            Some(_) => Err(Error::new(
                ErrorKind::Unroutable,
                format!(
                    "rabbitmq returned the message: no queue behind {:?}/{:?}",
                    target.exchange, target.key
                ),
            )),
            None => Ok(()),
        },
    }
}
