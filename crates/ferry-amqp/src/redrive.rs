//! Approved re-drive on RabbitMQ: storing dead letters as given, approving them and
//! moving the approved ones back, with AMQP transactions (`tx.select` / `tx.commit`).
//!
//! # What is atomic, and across what
//!
//! A dead letter in `ferry.dlq.N` is a message, and a message cannot be changed in
//! place, so the approval is a header, `x-ferry-approved: 1`, on a copy: approving
//! publishes the copy to the same queue and acks the original in one transaction
//! (approved copies go to the tail; listing sorts by death time, so the order shown
//! stays oldest death first). Re-driving takes every dead letter with `basic.get` on a
//! private transactional channel, then, for up to `max` approved ones (oldest death
//! first), publishes a fresh copy to `ferry.q.N` (attempts 0, no death headers, no
//! approval) and acks the dead letter, and commits the lot. The claim is the
//! `basic.get`: a message taken and unacked by one channel is handed to no other
//! channel of any process until that channel acks it (gone) or closes (back in the
//! queue, in order). A concurrent re-drive elsewhere therefore sees only what this one
//! does not hold (at most nothing), never the same dead letter.
//!
//! The transaction closes the gap the confirm-mode requeue has (publish confirmed, then
//! ack: a process dying in between leaves both copies, and the next requeue moves the
//! dead letter again). Nothing of a transaction is applied before `tx.commit`: a
//! process or connection that dies before it leaves every dead letter where it was,
//! still approved; after the broker has the commit, the copies and the acks are applied
//! together. A commit whose answer is lost (timeout, cut connection) is reported as an
//! error: either everything or nothing of it happened, and the next round finds out
//! which without moving anything twice. A message that dies again is published to the
//! dead letters without the approval header, so it waits to be approved again.
//!
//! **What it does not cover**: RabbitMQ makes a transaction atomic only when it touches
//! one queue. A re-drive touches two (`ferry.dlq.N` and `ferry.q.N`), so if the
//! *broker* fails in the middle of applying a commit (a node crash, a disk error), it
//! may keep the copy and lose the ack, and the dead letter, still approved, is
//! re-driven again later: at most once per approval unless the broker itself fails
//! mid-commit, then possibly twice (a duplicate, never a loss). Approving and inserting
//! touch one queue (`ferry.dlq.N`) and are all or nothing. As with requeue, RabbitMQ
//! has no index of live ids, so an approved dead letter whose id is live in the queue
//! again is re-driven anyway (a second copy of that id; see the crate docs' limits).

use ferry_core::time::to_millis;
use ferry_core::{DeadLetter, QueueName, Result, Selection};
use lapin::Channel;
use lapin::options::{BasicAckOptions, BasicGetOptions, BasicPublishOptions};

use crate::dead_letters::selected;
use crate::driver::AmqpDriver;
use crate::error::amqp_err;
use crate::history::history_event;
use crate::names::{
    H_APPROVED, H_ATTEMPTS, H_DEAD_AT, H_ENQUEUED, H_FIRST_FAILED, H_LAST_ERROR, H_REASON,
    H_ROUTE_KEY, dlq_name, q_name,
};
use crate::stored::Stored;

/// One dead letter held (taken, unacked) by a browse.
struct Held {
    tag: u64,
    stored: Stored,
}

impl Held {
    fn approved(&self) -> bool {
        is_approved(&self.stored)
    }
}

pub(crate) fn is_approved(s: &Stored) -> bool {
    s.internal.get(H_APPROVED).is_some_and(|v| v == "1")
}

/// The message a requeue or re-drive puts back: attempts 0, no death or approval
/// headers.
pub(crate) fn revived(s: &Stored) -> Stored {
    let mut fresh = s.clone();
    for k in [
        H_REASON,
        H_DEAD_AT,
        H_LAST_ERROR,
        H_FIRST_FAILED,
        H_APPROVED,
    ] {
        fresh.internal.remove(k);
    }
    fresh.internal.insert(H_ATTEMPTS.into(), "0".into());
    fresh
}

/// `letter` as ferry keeps a dead letter on the broker.
fn stored_of(letter: &DeadLetter) -> Stored {
    let mut internal = std::collections::BTreeMap::new();
    internal.insert(H_ATTEMPTS.to_string(), letter.attempts.to_string());
    internal.insert(
        H_ENQUEUED.to_string(),
        to_millis(letter.enqueued_at).to_string(),
    );
    if let Some(k) = &letter.route_key {
        internal.insert(H_ROUTE_KEY.to_string(), k.clone());
    }
    internal.insert(H_REASON.to_string(), letter.reason.clone());
    internal.insert(H_DEAD_AT.to_string(), to_millis(letter.dead_at).to_string());
    if let Some(e) = &letter.last_error {
        internal.insert(H_LAST_ERROR.to_string(), e.clone());
    }
    if let Some(t) = letter.first_failed_at {
        internal.insert(H_FIRST_FAILED.to_string(), to_millis(t).to_string());
    }
    Stored {
        id: letter.id.clone(),
        payload: letter.payload.clone(),
        headers: letter.headers.clone(),
        internal,
        priority: letter.priority,
    }
}

async fn publish_tx(ch: &Channel, key: &str, s: &Stored) -> Result<()> {
    // No confirms in transactional mode: the commit is the confirmation.
    ch.basic_publish(
        "",
        key,
        BasicPublishOptions::default(),
        &s.payload,
        s.properties(),
    )
    .await
    .map_err(amqp_err)?;
    Ok(())
}

/// Takes every dead letter of `queue` on `ch` (unacked: held by this channel only).
async fn take_all(ch: &Channel, queue: &QueueName) -> Result<Vec<Held>> {
    let mut held = Vec::new();
    while let Some(m) = ch
        .basic_get(&dlq_name(queue), BasicGetOptions { no_ack: false })
        .await
        .map_err(amqp_err)?
    {
        let stored = Stored::from_amqp(&m.delivery.properties, m.delivery.data.clone());
        held.push(Held {
            tag: m.delivery.delivery_tag,
            stored,
        });
    }
    Ok(held)
}

/// Acks `held[i]` for each of `acks` and commits (with what was published before).
async fn commit(ch: &Channel, held: &[Held], acks: &[usize]) -> Result<()> {
    if acks.is_empty() {
        return Ok(());
    }
    for &i in acks {
        ch.basic_ack(held[i].tag, BasicAckOptions::default())
            .await
            .map_err(amqp_err)?;
    }
    ch.tx_commit().await.map_err(amqp_err)
}

impl AmqpDriver {
    /// A private channel in transactional mode.
    async fn tx_channel(&self) -> Result<Channel> {
        let ch = self.private_channel().await?;
        ch.tx_select().await.map_err(amqp_err)?;
        Ok(ch)
    }

    /// Stores `letters` (already validated) in `ferry.dlq.N` in one transaction.
    pub(crate) async fn insert_dead(
        &self,
        queue: &QueueName,
        letters: &[DeadLetter],
    ) -> Result<u64> {
        self.bounded_browse("a dead-letter insert", self.op_timeout * 11, async {
            self.options(queue).await?;
            let ch = self.tx_channel().await?;
            let result: Result<()> = async {
                for l in letters {
                    publish_tx(&ch, &dlq_name(queue), &stored_of(l)).await?;
                }
                ch.tx_commit().await.map_err(amqp_err)
            }
            .await;
            let _ = ch.close(200, "ok").await;
            result?;
            let events = letters
                .iter()
                .map(|l| history_event(&l.id, "dead_lettered", l.attempts, Some(l.reason.clone())))
                .collect();
            self.record(queue, events).await;
            Ok(letters.len() as u64)
        })
        .await
    }

    /// Approves the selected, not yet approved dead letters: an approved copy published
    /// and the original acked, in one transaction.
    pub(crate) async fn approve_dead(
        &self,
        queue: &QueueName,
        selection: Selection,
    ) -> Result<u64> {
        self.bounded_browse("a dead-letter approval", self.op_timeout * 11, async {
            self.options(queue).await?;
            let _guard = self.dlq_lock.lock().await;
            let ch = self.tx_channel().await?;
            let result: Result<u64> = async {
                let held = take_all(&ch, queue).await?;
                let mut acks = Vec::new();
                for (i, h) in held.iter().enumerate() {
                    if h.approved() || !selected(&selection, &h.stored.id) {
                        continue;
                    }
                    let mut copy = h.stored.clone();
                    copy.internal.insert(H_APPROVED.into(), "1".into());
                    publish_tx(&ch, &dlq_name(queue), &copy).await?;
                    acks.push(i);
                }
                commit(&ch, &held, &acks).await?;
                Ok(acks.len() as u64)
            }
            .await;
            // Closing without a commit rolls the transaction back; unacked ones go back.
            let _ = ch.close(200, "ok").await;
            result
        })
        .await
    }

    /// Moves up to `max` approved dead letters, oldest death first, back into the
    /// queue in one transaction (see the module docs for what that guarantees).
    pub(crate) async fn redrive_dead(&self, queue: &QueueName, max: u64) -> Result<Vec<String>> {
        let ids = self
            .bounded_browse("a dead-letter re-drive", self.op_timeout * 11, async {
                self.options(queue).await?;
                let _guard = self.dlq_lock.lock().await;
                let ch = self.tx_channel().await?;
                let result: Result<Vec<String>> = async {
                    let held = take_all(&ch, queue).await?;
                    let mut approved: Vec<usize> =
                        (0..held.len()).filter(|&i| held[i].approved()).collect();
                    approved.sort_by_key(|&i| dead_at(&held[i].stored));
                    approved.truncate(usize::try_from(max).unwrap_or(usize::MAX));
                    let mut ids = Vec::with_capacity(approved.len());
                    for &i in &approved {
                        publish_tx(&ch, &q_name(queue), &revived(&held[i].stored)).await?;
                        ids.push(held[i].stored.id.clone());
                    }
                    commit(&ch, &held, &approved).await?;
                    Ok(ids)
                }
                .await;
                let _ = ch.close(200, "ok").await;
                result
            })
            .await?;
        if !ids.is_empty() {
            let events = ids
                .iter()
                .map(|id| history_event(id, "requeued", 0, None))
                .collect();
            self.record(queue, events).await;
        }
        Ok(ids)
    }
}

fn dead_at(s: &Stored) -> i64 {
    s.int(H_DEAD_AT).unwrap_or(0)
}

/// Sorts listed dead letters oldest death first (stable: equal times keep the queue's
/// order), as approved copies sit at the tail of `ferry.dlq.N`.
pub(crate) fn by_death(all: &mut [Stored]) {
    all.sort_by_key(dead_at);
}
