//! Pausing a queue's deliveries: the pause marker `ferry.p.N`, and a short-lived cache
//! of it.
//!
//! The marker is a durable classic queue declared with the queue (`x-max-length` 1,
//! `drop-head`), holding one persistent message while the queue is paused and none
//! while it runs. Pausing publishes that message (confirmed), resuming purges it: each
//! a single idempotent broker operation, with no read-modify-write of the options record
//! that could race with a `create_queue` elsewhere, and `create_queue` never touches
//! it. A passive declare reads the state (its message count) without consuming, and
//! since the marker always exists the check never fails its channel with a 404 (queues
//! made by older ferry builds get their marker at the first check).
//!
//! Receives check the marker through a per-driver cache re-read after [`PAUSE_TTL`], so
//! a pause or resume made by another process is seen within about a second; this
//! driver's own changes are seen at once. A receive already past its check when the
//! pause lands may still hand out what it is taking.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use bytes::Bytes;
use ferry_core::{QueueName, Result};
use lapin::options::{QueueDeclareOptions, QueuePurgeOptions};
use lapin::types::{AMQPValue, FieldTable};

use crate::driver::{AmqpDriver, lock};
use crate::error::{amqp_err, is_not_found};
use crate::names::pause_name;
use crate::stored::{Stored, s};

/// How long a read of the pause marker is trusted before receives read it again.
pub(crate) const PAUSE_TTL: Duration = Duration::from_secs(1);

fn marker_args() -> FieldTable {
    let mut args = FieldTable::default();
    args.insert("x-max-length".into(), AMQPValue::LongLongInt(1));
    args.insert("x-overflow".into(), s("drop-head"));
    args
}

impl AmqpDriver {
    /// Declares `queue`'s pause marker (idempotent; keeps its state).
    pub(crate) async fn declare_pause_marker(&self, queue: &QueueName) -> Result<()> {
        self.declare_queue(&pause_name(queue), marker_args()).await
    }

    /// Whether `queue` is paused: from the cache while fresh, else from the marker.
    pub(crate) async fn is_paused(&self, queue: &QueueName) -> Result<bool> {
        if let Some((paused, at)) = lock(&self.registry).paused.get(queue)
            && at.elapsed() < PAUSE_TTL
        {
            return Ok(*paused);
        }
        // A private channel: a passive declare that fails closes its channel, and the
        // shared one carries every lease.
        let ch = self.private_channel().await?;
        let passive = QueueDeclareOptions {
            passive: true,
            ..QueueDeclareOptions::default()
        };
        let paused = match ch
            .queue_declare(&pause_name(queue), passive, FieldTable::default())
            .await
        {
            Ok(q) => {
                let _ = ch.close(200, "ok").await;
                q.message_count() > 0
            }
            // A queue made before ferry had pausing: it runs; give it its marker.
            Err(e) if is_not_found(&e) => {
                self.declare_pause_marker(queue).await?;
                false
            }
            Err(e) => return Err(amqp_err(e)),
        };
        self.remember_paused(queue, paused);
        Ok(paused)
    }

    /// Pauses or resumes `queue` on the broker (the caller checked that it exists).
    pub(crate) async fn write_paused(&self, queue: &QueueName, paused: bool) -> Result<()> {
        self.declare_pause_marker(queue).await?;
        let ch = self.ch().await?;
        if paused {
            let mut record = Stored::record(Bytes::new());
            record.id = queue.to_string();
            self.publish_one(&ch, "", &pause_name(queue), &record)
                .await?;
        } else {
            ch.queue_purge(&pause_name(queue), QueuePurgeOptions::default())
                .await
                .map_err(amqp_err)?;
        }
        self.remember_paused(queue, paused);
        Ok(())
    }

    fn remember_paused(&self, queue: &QueueName, paused: bool) {
        lock(&self.registry)
            .paused
            .insert(queue.clone(), (paused, Instant::now()));
    }
}

/// The cached pause states, by queue: (paused, when read).
pub(crate) type PauseCache = BTreeMap<QueueName, (bool, Instant)>;
