//! A queue's options record `ferry.o.N`: writing it, reading it back, caching it.

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use ferry_core::{Error, ErrorKind, QueueName, QueueOptions, Result};
use lapin::options::{BasicGetOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable};

use crate::driver::{AmqpDriver, lock};
use crate::error::{amqp_err, is_not_found};
use crate::names::{H_OPT_ATTEMPTS, H_OPT_DELAY, H_OPT_LEASE, options_name, q_name};
use crate::stored::{Stored, s};

impl AmqpDriver {
    /// Whether the broker has queue `name` (a passive declare on a throwaway channel,
    /// since a failed passive declare closes its channel).
    pub(crate) async fn broker_has_queue(&self, name: &str) -> Result<Option<u32>> {
        let ch = self.private_channel().await?;
        let r = ch
            .queue_declare(
                name,
                QueueDeclareOptions {
                    passive: true,
                    ..QueueDeclareOptions::default()
                },
                FieldTable::default(),
            )
            .await;
        match r {
            Ok(q) => {
                let _ = ch.close(200, "ok").await;
                Ok(Some(q.message_count()))
            }
            Err(e) if is_not_found(&e) => Ok(None),
            Err(e) => Err(amqp_err(e)),
        }
    }

    /// The options of `queue`, or `QueueNotFound`: from this driver's cache, else from
    /// the queue's options record `ferry.o.N` (read on a private channel whose close
    /// puts it back).
    pub(crate) async fn options(&self, queue: &QueueName) -> Result<QueueOptions> {
        if let Some(o) = lock(&self.registry).queues.get(queue) {
            return Ok(*o);
        }
        if self.broker_has_queue(&q_name(queue)).await?.is_none() {
            return Err(Error::queue_not_found(queue.as_str()));
        }
        let mut options = None;
        let mut pause = Duration::from_millis(20);
        for _ in 0..8 {
            let ch = self.private_channel().await?;
            let got = ch
                .basic_get(&options_name(queue), BasicGetOptions { no_ack: false })
                .await;
            let _ = ch.close(200, "ok").await;
            match got {
                Ok(Some(m)) => {
                    options = Some(decode_options(&Stored::from_amqp(
                        &m.delivery.properties,
                        Vec::new(),
                    )));
                    break;
                }
                // Another reader holds it for a moment.
                Ok(None) => {
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_millis(500));
                }
                // A queue without a record (made outside ferry): defaults.
                Err(e) if is_not_found(&e) => {
                    options = Some(QueueOptions::default());
                    break;
                }
                Err(e) => return Err(amqp_err(e)),
            }
        }
        // Held by other readers all along: say so rather than cache defaults that may
        // be wrong (a wrong max_attempts or lease would stay for the process's life).
        let options = options.ok_or_else(|| {
            Error::new(
                ErrorKind::Unavailable,
                format!("rabbitmq: the options of queue '{queue}' stayed busy (other readers); try again"),
            )
        })?;
        lock(&self.registry)
            .queues
            .entry(queue.clone())
            .or_insert(options);
        Ok(options)
    }

    /// Writes the options record of `queue` (the record queue keeps only the newest).
    pub(crate) async fn write_options(
        &self,
        queue: &QueueName,
        options: QueueOptions,
    ) -> Result<()> {
        let mut args = FieldTable::default();
        args.insert("x-max-length".into(), AMQPValue::LongLongInt(1));
        args.insert("x-overflow".into(), s("drop-head"));
        self.declare_queue(&options_name(queue), args).await?;
        let mut internal = BTreeMap::new();
        internal.insert(
            H_OPT_DELAY.to_string(),
            options.default_delay.as_millis().to_string(),
        );
        internal.insert(H_OPT_ATTEMPTS.to_string(), options.max_attempts.to_string());
        internal.insert(
            H_OPT_LEASE.to_string(),
            options.lease.as_millis().to_string(),
        );
        let record = Stored {
            id: queue.to_string(),
            payload: Bytes::new(),
            headers: BTreeMap::new(),
            internal,
            priority: 0,
        };
        self.publish_one(&self.ch().await?, "", &options_name(queue), &record)
            .await
    }
}

pub(crate) fn decode_options(record: &Stored) -> QueueOptions {
    let defaults = QueueOptions::default();
    let ms = |k: &str, d: Duration| {
        record
            .int(k)
            .and_then(|v| u64::try_from(v).ok())
            .map_or(d, Duration::from_millis)
    };
    QueueOptions {
        default_delay: ms(H_OPT_DELAY, defaults.default_delay),
        max_attempts: record
            .int(H_OPT_ATTEMPTS)
            .and_then(|v| u32::try_from(v).ok())
            .unwrap_or(defaults.max_attempts),
        lease: ms(H_OPT_LEASE, defaults.lease),
    }
}
