//! ferry's RabbitMQ backend (`amqp://`, `amqps://`), on [lapin]. The user guide,
//! with what RabbitMQ can and cannot promise, is `docs/rabbitmq.md`.
//!
//! # Layout on the broker
//!
//! For a ferry queue `N`:
//!
//! - `ferry.q.N`: the queue itself, durable (classic with `x-max-priority` 9 by
//!   default; `?queue_type=quorum` in the URL declares quorum queues instead, which
//!   have no priorities before RabbitMQ 4.0). Every message is published persistent
//!   (`delivery_mode` 2) with the mandatory flag, and every send waits for the
//!   publisher confirm: a returned (unroutable) message is an error.
//! - `ferry.dlq.N`: the dead letters, a durable queue ferry publishes to itself (with
//!   confirms, then acks the original) instead of relying on RabbitMQ's unconfirmed
//!   dead-lettering. Listing, getting, requeueing and deleting browse it on a private
//!   channel (`basic.get` everything, act on the chosen ones, let the channel's close
//!   return the rest in their order), so it works while consumers run. It is a
//!   classic queue even in quorum mode: a classic queue puts the kept ones back, in
//!   order, before the channel close completes; a quorum queue does so asynchronously.
//!   A dead letter approved for re-drive carries `x-ferry-approved: 1`; approving,
//!   re-driving and inserting dead letters use AMQP transactions on a private channel
//!   (`redrive.rs` says what that makes atomic and what it does not).
//! - Delays: `DELAY_LEVELS` TTL queues `ferry.d.N.k` (TTL 2^k s), each behind a
//!   headers exchange of the same name, plus `ferry.d.N` (which routes into
//!   `ferry.q.N`). A delayed message carries the bits of its delay in seconds (rounded
//!   up: never early) as headers `x-ferry-d<k>` and hops through the levels that make
//!   up its delay, each level queue dead-lettering expired messages to the level below.
//!   Every level queue holds one TTL only, so nothing blocks behind a longer delay, and
//!   no queue per delay value exists (see `delay.rs`). The hop itself is RabbitMQ's
//!   dead-lettering of classic queues, which is not confirmed internally.
//! - `ferry.o.N`: the queue's options record, one persistent message (a classic queue
//!   with `x-max-length` 1 and `drop-head`, so publishing new options replaces the old
//!   ones); read with `basic.get` on a private channel whose close puts it back.
//! - `ferry.p.N`: the queue's pause marker, a classic queue like the options record
//!   holding one message while deliveries are paused (`Topology::set_paused`) and none
//!   while they run; receives read it through a cache trusted for one second, so
//!   another process's pause or resume takes effect within about a second (`pause.rs`).
//! - `ferry.h.N`: the queue's message history: persistent records, each a JSON array
//!   of the lifecycle events (sent, delivered, retried, released, lease_expired,
//!   dead_lettered, requeued, acked) of one driver call, kept for
//!   [`HISTORY_RETENTION`] by a queue TTL; `history` browses it like the dead letters.
//!   A send's record rides in the send's own confirmed batch; a delivery's `delivered`
//!   event is written with its settlement (see `history.rs`). Recording is best
//!   effort: a failure is logged, not returned.
//! - Topics: durable topic exchanges `ferry.t.T`; a binding is a queue binding of
//!   `ferry.q.N` with the pattern as binding key, so routing is RabbitMQ's own. Delayed
//!   publishes go to `ferry.td.T`, whose bindings (same patterns) lead to each bound
//!   queue's top delay level.
//!
//! Message fields: id = AMQP `message_id`, priority = AMQP `priority`, headers = AMQP
//! headers (ferry's own ones start with `x-ferry-`: attempts so far, enqueued-at, the
//! route key, last error, first failure, and on dead letters the reason and time).
//!
//! # Leases and receipts
//!
//! A delivery is a `basic.get` without auto-ack, so a lease is an unacked delivery on
//! the driver's channel; a receive of many pipelines its gets (see `receive.rs`). The receipt token is `<channel generation>.<delivery tag>`;
//! the driver keeps its leases in memory, and a receipt whose lease is gone (settled,
//! expired, or from a channel generation that died) is stale. An expired lease is
//! swept on the next receive/settle/extend/stats call: the message is republished with
//! its attempt counted (or dead-lettered with reason `lease_expired` on the last
//! attempt) and then the original is acked. If the process dies (or its connection
//! does), RabbitMQ returns its unacked deliveries with the `redelivered` flag; since
//! ferry never requeues with `basic.nack`, the receiver that gets such a message counts
//! the lost delivery as an attempt (republishes it with the count raised, or
//! dead-letters it with reason `lease_expired` when that was the last attempt).
//!
//! # Limits (what RabbitMQ does not give ferry; `docs/rabbitmq.md` has the details)
//!
//! - No duplicate-id detection: RabbitMQ has no index by message id, so sending an id
//!   that is queued enqueues it again, and requeueing a dead letter whose id is live is
//!   not refused. Consume with the idempotency store for effectively-once processing.
//!   (The two conformance functions that check it are not run for this backend.)
//! - A re-drive moves a dead letter and acks it in one transaction over two queues,
//!   which RabbitMQ does not make atomic against a *broker* failure mid-commit: then a
//!   dead letter may be re-driven twice for one approval (a duplicate, never a loss).
//!   Process crashes and lost connections cannot cause that (see `redrive.rs`).
//! - The lists of queues, topics and bindings (`list_queues`, `list_topics`,
//!   `list_bindings`, `stats(None)`, the queues a publish reports) are this driver
//!   instance's, since AMQP cannot enumerate them without the management plugin; a
//!   queue or topic made elsewhere is found by a passive declare when named. Routing
//!   is RabbitMQ's own, so every bound queue gets its copy of a publish, delayed or
//!   not; a publish does not apply the bound queues' default delays.
//! - Queue options are durable (`ferry.o.N`) but cached per driver after the first read.
//! - A broker failure in the middle of a batch can leave part of it enqueued (the error
//!   is then `Indeterminate`): confirms and AMQP transactions do not mix.
//! - `in_flight` in stats counts this driver's own leases only, and `oldest_ready_at`
//!   is always `None`: AMQP cannot look at a queue's head without taking the message
//!   (and a taken message returned is marked redelivered, which ferry counts as an
//!   attempt); the management plugin's `head_message_timestamp` is outside AMQP.
//! - A pause (`Topology::set_paused`) made by another process is seen within about a
//!   second, and a receive already taking messages when the pause lands may still
//!   hand those out.
//! - A crashed holder's delivery is counted when the message is next received, so it
//!   goes to the tail of the queue then. Leases are swept lazily (on the next
//!   receive, settle, extend or stats call of the driver), not by a background task.
//! - A lease held longer than the broker's `consumer_timeout` (30 minutes by default)
//!   makes the broker close the channel: every delivery of that channel comes back,
//!   counted as an attempt, the driver opens a new channel at its next call, and the
//!   slow handler's settlement is rejected as stale. Raise `consumer_timeout` on the
//!   broker above the longest handler, or keep handlers shorter.
//!
//! # Connection
//!
//! One connection (named `ferry-<pid>-<hex>`, see [`AmqpDriver::connection_name`]) with
//! heartbeats (10 s unless the URL sets `heartbeat=`) and one confirm-mode channel.
//! Every call is bounded by the operation timeout (`timeout=MS` in the URL, default
//! [`DEFAULT_OP_TIMEOUT`]): a call the broker does not answer in time fails
//! (`Indeterminate` for send and publish, `Unavailable` otherwise) and marks the
//! connection broken, so a silent (half-open) connection is replaced at the first
//! unanswered call instead of after the heartbeats give up. A call that finds the
//! channel or connection gone or broken opens a new one first; while that fails, the
//! tries are spaced from [`RECONNECT_PAUSE`] doubling to [`RECONNECT_PAUSE_MAX`] and
//! calls in between fail fast with `Unavailable` (the consumer runtime retries them).
//! A new channel is a new receipt generation: the leases of the old one are dropped
//! (the broker already returned those deliveries to their queues) and their receipts
//! are stale, so an ack for a delivery of a dead channel is never sent on the new one.

mod bounded;
mod dead_letters;
mod declare;
mod delay;
mod driver;
mod error;
mod history;
mod lease;
mod link;
mod names;
mod options;
mod pause;
mod publish;
mod receive;
mod redrive;
mod stored;
mod topology;
mod url;

pub use declare::{HISTORY_RETENTION, MAX_PRIORITY};
pub use delay::DELAY_LEVELS;
pub use driver::AmqpDriver;
pub use link::{RECONNECT_PAUSE, RECONNECT_PAUSE_MAX};
pub use url::DEFAULT_OP_TIMEOUT;
