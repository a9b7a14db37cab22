//! Leases (unacked deliveries held by this driver) and their receipts: sweeping expired
//! ones and settling.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use ferry_core::time::to_millis;
use ferry_core::{Error, ErrorKind, QueueName, Result, SettleAction, Settlement, reason};
use lapin::options::BasicAckOptions;

use crate::driver::{AmqpDriver, lock};
use crate::error::amqp_err;
use crate::history::{Event, history_event};
use crate::link::Link;
use crate::names::{H_ATTEMPTS, H_FIRST_FAILED, H_LAST_ERROR, q_name};
use crate::stored::Stored;

/// One unacked delivery held by this driver.
#[derive(Debug, Clone)]
pub(crate) struct Lease {
    pub(crate) queue: QueueName,
    pub(crate) generation: u64,
    pub(crate) tag: u64,
    pub(crate) until: SystemTime,
    /// This delivery's attempt number (1-based).
    pub(crate) attempt: u32,
    pub(crate) max_attempts: u32,
    pub(crate) stored: Stored,
    /// The `delivered` event, written to the history with the settlement.
    pub(crate) delivered: Event,
}

pub(crate) fn token(generation: u64, tag: u64) -> String {
    format!("{generation}.{tag}")
}

impl AmqpDriver {
    /// The link that holds deliveries of channel `generation`, or `StaleReceipt` if that
    /// channel is gone (the broker has returned its deliveries to their queues, so
    /// nothing may be republished or acked for them).
    pub(crate) async fn holder(&self, generation: u64) -> Result<Arc<Link>> {
        let link = self.link().await?;
        if link.generation != generation {
            return Err(Error::new(
                ErrorKind::StaleReceipt,
                "the channel of this delivery is gone; the broker has requeued it",
            ));
        }
        Ok(link)
    }

    /// Acks a delivery tag on the channel that holds it.
    pub(crate) async fn ack_tag(&self, generation: u64, tag: u64) -> Result<()> {
        self.holder(generation)
            .await?
            .channel
            .basic_ack(tag, BasicAckOptions::default())
            .await
            .map_err(amqp_err)
    }

    /// Handles every expired lease: counts the attempt and republishes, or dead-letters
    /// on the last attempt; then acks the original. Never fails: a lease whose channel
    /// is gone is dropped (the broker has returned the delivery, and the next receiver
    /// counts it), and one that could not be handled for another reason is kept and
    /// tried again a second later.
    pub(crate) async fn sweep(&self) {
        let now = SystemTime::now();
        let expired: Vec<Lease> = {
            let mut leases = lock(&self.leases);
            let keys: Vec<String> = leases
                .iter()
                .filter(|(_, l)| l.until <= now)
                .map(|(k, _)| k.clone())
                .collect();
            keys.iter().filter_map(|k| leases.remove(k)).collect()
        };
        let mut events: BTreeMap<QueueName, Vec<Event>> = BTreeMap::new();
        for lease in expired {
            let (queue, generation, tag, attempt) = (
                lease.queue.clone(),
                lease.generation,
                lease.tag,
                lease.attempt,
            );
            let id = lease.stored.id.clone();
            let last = attempt >= lease.max_attempts;
            match self.expire(&lease).await {
                Ok(()) => {
                    let event = if last {
                        history_event(
                            &id,
                            "dead_lettered",
                            attempt,
                            Some(reason::LEASE_EXPIRED.into()),
                        )
                    } else {
                        history_event(&id, "lease_expired", attempt, None)
                    };
                    events
                        .entry(queue)
                        .or_default()
                        .extend([lease.delivered, event]);
                }
                Err(e) if e.kind() == ErrorKind::StaleReceipt => {}
                Err(e) => {
                    tracing::warn!(queue = %queue, id = %id, error = %e, "rabbitmq: expired lease not handled yet; trying again soon");
                    if lock(&self.link).generation == generation {
                        let mut lease = lease;
                        lease.until = SystemTime::now() + Duration::from_secs(1);
                        lock(&self.leases).insert(token(generation, tag), lease);
                    }
                }
            }
        }
        for (queue, events) in events {
            self.record(&queue, events).await;
        }
    }

    /// Republishes an expired lease's message with its attempt counted (or moves it to
    /// the dead letters on its last attempt), then acks the original, all on the channel
    /// that holds it.
    async fn expire(&self, lease: &Lease) -> Result<()> {
        let link = self.holder(lease.generation).await?;
        let mut stored = lease.stored.clone();
        stored
            .internal
            .insert(H_ATTEMPTS.into(), lease.attempt.to_string());
        if lease.attempt >= lease.max_attempts {
            self.to_dead_letters(
                &link,
                &lease.queue,
                stored,
                lease.tag,
                reason::LEASE_EXPIRED,
                None,
            )
            .await
        } else {
            self.publish_one(&link.channel, "", &q_name(&lease.queue), &stored)
                .await?;
            self.ack_tag(lease.generation, lease.tag).await
        }
    }

    /// Applies one settlement; on success returns the queue and the history events it
    /// makes (the delivery's `delivered` and the outcome), for the caller to record.
    pub(crate) async fn settle_one_inner(
        &self,
        settlement: Settlement,
    ) -> Result<(QueueName, [Event; 2])> {
        let receipt = &settlement.receipt;
        let token = receipt.token();
        let valid = token
            .split_once('.')
            .is_some_and(|(g, t)| g.parse::<u64>().is_ok() && t.parse::<u64>().is_ok());
        if !valid {
            return Err(Error::new(
                ErrorKind::InvalidReceipt,
                format!("'{token}' is not a receipt of the rabbitmq driver"),
            ));
        }
        let lease = {
            let mut leases = lock(&self.leases);
            match leases.get(token) {
                Some(l) if l.queue == *receipt.queue() && l.stored.id == receipt.message_id() => {
                    leases.remove(token)
                }
                _ => None,
            }
        };
        let Some(lease) = lease else {
            return Err(Error::stale_receipt(
                receipt.queue().as_str(),
                receipt.message_id(),
            ));
        };
        let (event, detail) = settlement.action.history_event();
        let (queue, id, attempt) = (lease.queue.clone(), lease.stored.id.clone(), lease.attempt);
        let delivered = lease.delivered.clone();
        self.apply(lease, settlement.action).await?;
        Ok((
            queue,
            [delivered, history_event(&id, event, attempt, detail)],
        ))
    }

    pub(crate) async fn apply(&self, lease: Lease, action: SettleAction) -> Result<()> {
        // Nothing is republished for a delivery whose channel is gone: the broker has
        // returned it already, and a copy would be a duplicate.
        let link = self.holder(lease.generation).await?;
        match action {
            SettleAction::Ack => self.ack_tag(lease.generation, lease.tag).await,
            SettleAction::Release => {
                // Republished (confirmed) with its attempts unchanged, then acked: it is
                // ready again at once, behind the messages that were ready before it.
                // (A `basic.nack` with requeue would keep its place, but the broker
                // applies it asynchronously, so a stats call just after could miss it.)
                self.publish_one(&link.channel, "", &q_name(&lease.queue), &lease.stored)
                    .await?;
                self.ack_tag(lease.generation, lease.tag).await
            }
            SettleAction::Retry { not_before, error } => {
                let mut stored = lease.stored;
                stored
                    .internal
                    .insert(H_ATTEMPTS.into(), lease.attempt.to_string());
                if let Some(e) = error {
                    stored.internal.insert(H_LAST_ERROR.into(), e);
                }
                stored
                    .internal
                    .entry(H_FIRST_FAILED.into())
                    .or_insert_with(|| to_millis(SystemTime::now()).to_string());
                // A retry is never further out than the longest delay the levels hold.
                let not_before = not_before.min(SystemTime::now() + ferry_core::MAX_DELAY);
                self.enqueue_at(&link.channel, &lease.queue, &stored, not_before)
                    .await?;
                self.ack_tag(lease.generation, lease.tag).await
            }
            SettleAction::DeadLetter { reason, error } => {
                let mut stored = lease.stored;
                stored
                    .internal
                    .insert(H_ATTEMPTS.into(), lease.attempt.to_string());
                self.to_dead_letters(&link, &lease.queue, stored, lease.tag, &reason, error)
                    .await
            }
        }
    }
}
