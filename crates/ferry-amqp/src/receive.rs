//! Receiving: taking messages off a queue as unacked deliveries under a lease.
//!
//! A delivery is a `basic.get` without auto-ack, so a message is only taken from the
//! broker when it is handed to a caller (a consumer's prefetch would hold messages that
//! no handler asked for, and a crash would return them all "redelivered", counting an
//! attempt for work that never started). One `basic.get` per message would cost a
//! round trip each; instead the first reply's `message_count` says how many more are
//! waiting, and up to that many further gets go out at once on the same channel
//! (lapin pipelines them; the broker answers in order). The deliveries are put back in
//! the broker's order by delivery tag, which is monotonic on a channel.

use std::time::SystemTime;

use ferry_core::{Delivery, Error, ErrorKind, QueueName, Receipt, ReceiveOptions, Result, reason};
use lapin::message::BasicGetMessage;
use lapin::options::BasicGetOptions;
use tokio::task::JoinSet;

use crate::driver::{AmqpDriver, POLL, lock};
use crate::error::{amqp_err, is_not_found};
use crate::history::history_event;
use crate::lease::{Lease, token};
use crate::link::Link;
use crate::names::{H_ATTEMPTS, H_ROUTE_KEY, q_name};
use crate::stored::Stored;

/// The most `basic.get`s in flight at once on one channel.
const PIPELINE: usize = 128;

impl AmqpDriver {
    /// The body of [`Driver::receive`](ferry_core::Driver::receive), without its time
    /// bound.
    pub(crate) async fn receive_now(
        &self,
        queue: &QueueName,
        options: ReceiveOptions,
    ) -> Result<Vec<Delivery>> {
        options.validate()?;
        let qopts = self.options(queue).await?;
        let lease_len = options.lease.unwrap_or(qopts.lease);
        let deadline = tokio::time::Instant::now() + options.wait;
        let name = q_name(queue);
        loop {
            self.sweep().await;
            if self.is_paused(queue).await? {
                // Nothing is handed out; look again (cheaply: the check is cached) until
                // the wait is over, so a resume during a long poll delivers.
                let now = tokio::time::Instant::now();
                if now >= deadline {
                    return Ok(Vec::new());
                }
                tokio::time::sleep(POLL.min(deadline - now)).await;
                continue;
            }
            let link = self.link().await?;
            let mut out = Vec::new();
            while out.len() < options.max {
                let taken = take(&link, &name, options.max - out.len()).await?;
                if taken.is_empty() {
                    break;
                }
                for m in taken {
                    let tag = m.delivery.delivery_tag;
                    let mut stored =
                        Stored::from_amqp(&m.delivery.properties, m.delivery.data.clone());
                    if m.delivery.redelivered {
                        // Its holder's channel died unsettled (ferry itself never
                        // requeues with nack): that delivery counts as an attempt.
                        let attempts = stored.attempts() + 1;
                        stored
                            .internal
                            .insert(H_ATTEMPTS.into(), attempts.to_string());
                        let id = stored.id.clone();
                        let handled = if attempts >= qopts.max_attempts {
                            self.to_dead_letters(
                                &link,
                                queue,
                                stored.clone(),
                                tag,
                                reason::LEASE_EXPIRED,
                                None,
                            )
                            .await
                            .map(|()| {
                                history_event(
                                    &id,
                                    "dead_lettered",
                                    attempts,
                                    Some(reason::LEASE_EXPIRED.into()),
                                )
                            })
                        } else {
                            match self.publish_one(&link.channel, "", &name, &stored).await {
                                Ok(()) => self
                                    .ack_tag(link.generation, tag)
                                    .await
                                    .map(|()| history_event(&id, "lease_expired", attempts, None)),
                                Err(e) => Err(e),
                            }
                        };
                        match handled {
                            Ok(event) => self.record(queue, vec![event]).await,
                            Err(e) => {
                                // Not moved on: hold it as an expired lease, so the
                                // sweep tries again (and the deliveries already taken
                                // in this call still reach the caller).
                                tracing::warn!(queue = %queue, id = %id, error = %e, "rabbitmq: a crashed holder's delivery is not counted yet; trying again soon");
                                lock(&self.leases).insert(
                                    token(link.generation, tag),
                                    Lease {
                                        queue: queue.clone(),
                                        generation: link.generation,
                                        tag,
                                        until: SystemTime::now(),
                                        attempt: attempts,
                                        max_attempts: qopts.max_attempts,
                                        delivered: history_event(&id, "delivered", attempts, None),
                                        stored,
                                    },
                                );
                            }
                        }
                        continue;
                    }
                    let attempt = stored.attempts() + 1;
                    let until = SystemTime::now() + lease_len;
                    let token = token(link.generation, tag);
                    out.push(Delivery {
                        id: stored.id.clone(),
                        queue: queue.clone(),
                        payload: stored.payload.clone(),
                        headers: stored.headers.clone(),
                        route_key: stored.internal.get(H_ROUTE_KEY).cloned(),
                        priority: stored.priority,
                        enqueued_at: stored.enqueued_at(),
                        attempt,
                        lease_until: until,
                        receipt: Receipt::new(queue.clone(), stored.id.clone(), token.clone()),
                    });
                    lock(&self.leases).insert(
                        token,
                        Lease {
                            queue: queue.clone(),
                            generation: link.generation,
                            tag,
                            until,
                            attempt,
                            max_attempts: qopts.max_attempts,
                            delivered: history_event(&stored.id, "delivered", attempt, None),
                            stored,
                        },
                    );
                }
            }
            if !out.is_empty() || tokio::time::Instant::now() >= deadline {
                return Ok(out);
            }
            tokio::time::sleep(POLL).await;
        }
    }
}

/// Takes up to `max` (at least 1) messages off queue `name` on `link`'s channel, in
/// the broker's order; empty when the queue has none ready.
async fn take(link: &Link, name: &str, max: usize) -> Result<Vec<BasicGetMessage>> {
    let get = BasicGetOptions { no_ack: false };
    let first = link.channel.basic_get(name, get).await.map_err(|e| {
        if is_not_found(&e) {
            // Deleted under us (by another process): not an outage to retry.
            Error::new(
                ErrorKind::QueueNotFound,
                format!("rabbitmq: the queue behind {name} is gone: {e}"),
            )
        } else {
            amqp_err(e)
        }
    })?;
    let Some(first) = first else {
        return Ok(Vec::new());
    };
    let more = usize::try_from(first.message_count)
        .unwrap_or(usize::MAX)
        .min(max.saturating_sub(1))
        .min(PIPELINE);
    let mut taken = vec![first];
    if more > 0 {
        let mut gets = JoinSet::new();
        for _ in 0..more {
            let channel = link.channel.clone();
            let name = name.to_string();
            gets.spawn(async move { channel.basic_get(&name, get).await });
        }
        let mut failed = None;
        while let Some(joined) = gets.join_next().await {
            match joined {
                Ok(Ok(Some(m))) => taken.push(m),
                Ok(Ok(None)) => {}
                Ok(Err(e)) => {
                    failed.get_or_insert(amqp_err(e));
                }
                Err(e) => {
                    failed.get_or_insert(ferry_core::Error::new(
                        ferry_core::ErrorKind::Unavailable,
                        format!("rabbitmq: a basic.get task failed: {e}"),
                    ));
                }
            }
        }
        // A failed get means the channel is gone: the broker returns what the others
        // took when it closes, so none of them may be handed out.
        if let Some(e) = failed {
            return Err(e);
        }
        taken.sort_by_key(|m| m.delivery.delivery_tag);
    }
    Ok(taken)
}
