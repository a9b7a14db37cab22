//! The dead letters `ferry.dlq.N`: moving messages there and browsing them. Approving,
//! re-driving and inserting are in `redrive.rs` (transactional).

use std::time::SystemTime;

use async_trait::async_trait;
use ferry_core::time::to_millis;
use ferry_core::{
    DeadLetter, DeadLetterQuery, DeadLetters, Error, ErrorKind, QueueName, Result, Selection,
};
use lapin::options::{BasicAckOptions, BasicGetOptions, ConfirmSelectOptions};

use crate::driver::AmqpDriver;
use crate::error::amqp_err;
use crate::history::history_event;
use crate::link::Link;
use crate::names::{
    H_APPROVED, H_DEAD_AT, H_FIRST_FAILED, H_LAST_ERROR, H_REASON, dlq_name, q_name,
};
use crate::redrive::{by_death, is_approved, revived};
use crate::stored::Stored;

impl AmqpDriver {
    /// Moves `stored` into the dead letters of `queue` (confirmed), then acks `tag` on
    /// `link`, the channel that holds the delivery.
    pub(crate) async fn to_dead_letters(
        &self,
        link: &Link,
        queue: &QueueName,
        mut stored: Stored,
        tag: u64,
        why: &str,
        error: Option<String>,
    ) -> Result<()> {
        let now = to_millis(SystemTime::now());
        // An approval belonged to an earlier death (see `redrive.rs`).
        stored.internal.remove(H_APPROVED);
        stored.internal.insert(H_REASON.into(), why.to_string());
        stored.internal.insert(H_DEAD_AT.into(), now.to_string());
        if let Some(e) = error {
            stored.internal.insert(H_LAST_ERROR.into(), e);
        }
        stored
            .internal
            .entry(H_FIRST_FAILED.into())
            .or_insert_with(|| now.to_string());
        self.publish_one(&link.channel, "", &dlq_name(queue), &stored)
            .await?;
        self.ack_tag(link.generation, tag).await
    }

    /// Browses the dead letters of `queue` on a private channel, calling `act` with
    /// each (in order); `act` returns whether to remove it (after its own work). The
    /// ones kept go back when the channel closes, in their order.
    pub(crate) async fn browse_dead_letters(
        &self,
        queue: &QueueName,
        mut act: impl FnMut(&Stored) -> bool,
        requeue: bool,
    ) -> Result<(Vec<Stored>, Vec<String>)> {
        self.options(queue).await?;
        let _guard = self.dlq_lock.lock().await;
        let ch = self.private_channel().await?;
        ch.confirm_select(ConfirmSelectOptions::default())
            .await
            .map_err(amqp_err)?;
        let mut all = Vec::new();
        let mut removed = Vec::new();
        let result: Result<()> = async {
            while let Some(m) = ch
                .basic_get(&dlq_name(queue), BasicGetOptions { no_ack: false })
                .await
                .map_err(amqp_err)?
            {
                let tag = m.delivery.delivery_tag;
                let stored = Stored::from_amqp(&m.delivery.properties, m.delivery.data.clone());
                if act(&stored) {
                    if requeue {
                        self.publish_one(&ch, "", &q_name(queue), &revived(&stored))
                            .await?;
                    }
                    ch.basic_ack(tag, BasicAckOptions::default())
                        .await
                        .map_err(amqp_err)?;
                    removed.push(stored.id.clone());
                }
                all.push(stored);
            }
            Ok(())
        }
        .await;
        let _ = ch.close(200, "ok").await;
        result?;
        Ok((all, removed))
    }
}

pub(crate) fn selected(selection: &Selection, id: &str) -> bool {
    match selection {
        Selection::All => true,
        Selection::Ids(ids) => ids.iter().any(|i| i == id),
    }
}

#[async_trait]
impl DeadLetters for AmqpDriver {
    async fn list_dead_letters(
        &self,
        queue: &QueueName,
        query: DeadLetterQuery,
    ) -> Result<Vec<DeadLetter>> {
        self.bounded_browse("a dead-letter operation", self.op_timeout * 11, async {
            let (mut all, _) = self.browse_dead_letters(queue, |_| false, false).await?;
            by_death(&mut all);
            Ok(all
                .iter()
                .filter(|s| query.approved.is_none_or(|a| is_approved(s) == a))
                .map(|s| s.dead_letter(queue))
                .filter(|d| query.reason.as_ref().is_none_or(|r| *r == d.reason))
                .skip(usize::try_from(query.offset).unwrap_or(usize::MAX))
                .take(usize::try_from(query.limit).unwrap_or(usize::MAX))
                .collect())
        })
        .await
    }

    async fn get_dead_letter(&self, queue: &QueueName, id: &str) -> Result<DeadLetter> {
        self.bounded_browse("a dead-letter operation", self.op_timeout * 11, async {
            let (mut all, _) = self.browse_dead_letters(queue, |_| false, false).await?;
            by_death(&mut all);
            all.iter()
                .rev()
                .find(|s| s.id == id)
                .map(|s| s.dead_letter(queue))
                .ok_or_else(|| {
                    Error::new(
                        ErrorKind::MessageNotFound,
                        format!("queue '{queue}' has no dead letter '{id}'"),
                    )
                })
        })
        .await
    }

    async fn requeue_dead_letters(&self, queue: &QueueName, selection: Selection) -> Result<u64> {
        self.bounded_browse("a dead-letter operation", self.op_timeout * 11, async {
            let (_, ids) = self
                .browse_dead_letters(queue, |s| selected(&selection, &s.id), true)
                .await?;
            let events = ids
                .iter()
                .map(|id| history_event(id, "requeued", 0, None))
                .collect();
            self.record(queue, events).await;
            Ok(ids.len() as u64)
        })
        .await
    }

    async fn delete_dead_letters(&self, queue: &QueueName, selection: Selection) -> Result<u64> {
        self.bounded_browse("a dead-letter operation", self.op_timeout * 11, async {
            let (_, ids) = self
                .browse_dead_letters(queue, |s| selected(&selection, &s.id), false)
                .await?;
            Ok(ids.len() as u64)
        })
        .await
    }

    async fn insert_dead_letters(
        &self,
        queue: &QueueName,
        letters: Vec<DeadLetter>,
    ) -> Result<u64> {
        self.limits.validate_dead_letters(&letters)?;
        crate::stored::check_encodable_dead(&letters)?;
        self.insert_dead(queue, &letters).await
    }

    async fn approve_dead_letters(&self, queue: &QueueName, selection: Selection) -> Result<u64> {
        self.approve_dead(queue, selection).await
    }

    async fn redrive_approved(&self, queue: &QueueName, max: u64) -> Result<Vec<String>> {
        self.redrive_dead(queue, max).await
    }
}
