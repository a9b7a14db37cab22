//! Declaring everything a ferry queue is made of on the broker (see the crate docs).

use std::time::Duration;

use ferry_core::{QueueName, Result};
use lapin::ExchangeKind;
use lapin::options::{
    ExchangeBindOptions, ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable};

use crate::delay::{DELAY_LEVELS, level_binding};
use crate::driver::AmqpDriver;
use crate::error::amqp_err;
use crate::names::{delay_name, deliver_exchange, dlq_name, history_name, q_name};
use crate::stored::s;

/// The most a queue's history holds (`x-max-length-bytes` of `ferry.h.N`); past it
/// the oldest records go first.
const HISTORY_MAX_BYTES: i64 = 256 << 20;

/// How long a queue's history keeps an event (the TTL of `ferry.h.N`; the oldest records
/// also go first once the history holds 256 MiB).
pub const HISTORY_RETENTION: Duration = Duration::from_secs(7 * 86_400);

/// The highest AMQP priority a classic ferry queue distinguishes.
pub const MAX_PRIORITY: u8 = 9;

impl AmqpDriver {
    pub(crate) async fn declare_queue(&self, name: &str, args: FieldTable) -> Result<()> {
        self.ch()
            .await?
            .queue_declare(
                name,
                QueueDeclareOptions {
                    durable: true,
                    ..QueueDeclareOptions::default()
                },
                args,
            )
            .await
            .map_err(amqp_err)?;
        Ok(())
    }

    /// Declares durable exchange `name` of `kind`.
    pub(crate) async fn declare_exchange(&self, name: &str, kind: ExchangeKind) -> Result<()> {
        self.ch()
            .await?
            .exchange_declare(
                name,
                kind,
                ExchangeDeclareOptions {
                    durable: true,
                    ..ExchangeDeclareOptions::default()
                },
                FieldTable::default(),
            )
            .await
            .map_err(amqp_err)
    }

    pub(crate) fn queue_args(&self) -> FieldTable {
        let mut args = FieldTable::default();
        if self.quorum {
            args.insert("x-queue-type".into(), s("quorum"));
        } else {
            args.insert(
                "x-max-priority".into(),
                AMQPValue::ShortShortUInt(MAX_PRIORITY),
            );
        }
        args
    }

    /// Declares the queue, its dead-letter queue, its pause marker and its delay levels.
    pub(crate) async fn declare_all(&self, queue: &QueueName) -> Result<()> {
        self.declare_queue(&q_name(queue), self.queue_args())
            .await?;
        self.declare_pause_marker(queue).await?;
        // Always classic: browsing returns the kept dead letters by closing the private
        // channel, which a classic queue applies before the close completes and in the
        // original order (a quorum queue returns them asynchronously).
        self.declare_queue(&dlq_name(queue), FieldTable::default())
            .await?;
        let mut history_args = FieldTable::default();
        history_args.insert(
            "x-message-ttl".into(),
            AMQPValue::LongLongInt(
                i64::try_from(HISTORY_RETENTION.as_millis()).unwrap_or(i64::MAX),
            ),
        );
        // Bounded: the oldest records go first past 256 MiB (the TTL bounds them in time).
        history_args.insert(
            "x-max-length-bytes".into(),
            AMQPValue::LongLongInt(HISTORY_MAX_BYTES),
        );
        self.declare_queue(&history_name(queue), history_args)
            .await?;
        let deliver = deliver_exchange(queue);
        self.declare_exchange(&deliver, ExchangeKind::Topic).await?;
        self.ch()
            .await?
            .queue_bind(
                &q_name(queue),
                &deliver,
                "#",
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await
            .map_err(amqp_err)?;
        for k in 0..DELAY_LEVELS {
            let name = delay_name(queue, k);
            let below = if k == 0 {
                deliver.clone()
            } else {
                delay_name(queue, k - 1)
            };
            let mut args = FieldTable::default();
            args.insert(
                "x-message-ttl".into(),
                AMQPValue::LongLongInt(1000_i64 << k),
            );
            args.insert("x-dead-letter-exchange".into(), s(&below));
            self.declare_queue(&name, args).await?;
            self.declare_exchange(&name, ExchangeKind::Headers).await?;
            self.ch()
                .await?
                .queue_bind(
                    &name,
                    &name,
                    "",
                    QueueBindOptions::default(),
                    level_binding(k, true),
                )
                .await
                .map_err(amqp_err)?;
            self.ch()
                .await?
                .exchange_bind(
                    &below,
                    &name,
                    "",
                    ExchangeBindOptions::default(),
                    level_binding(k, false),
                )
                .await
                .map_err(amqp_err)?;
        }
        Ok(())
    }
}
