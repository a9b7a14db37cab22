//! Queues, topics and bindings: the `Topology` half of the driver.

use async_trait::async_trait;
use ferry_core::{
    Binding, Error, QueueInfo, QueueName, QueueOptions, Result, TopicName, Topology,
    validate_pattern,
};
use lapin::ExchangeKind;
use lapin::options::{
    ExchangeBindOptions, ExchangeDeclareOptions, ExchangeDeleteOptions, ExchangeUnbindOptions,
    QueueBindOptions, QueueDeleteOptions,
};
use lapin::types::FieldTable;

use crate::delay::DELAY_LEVELS;
use crate::driver::{AmqpDriver, lock};
use crate::error::{amqp_err, is_not_found};
use crate::names::{
    delay_name, deliver_exchange, dlq_name, history_name, options_name, pause_name, q_name,
    topic_delay_exchange, topic_exchange,
};
use ferry_core::ErrorKind;
use std::time::Duration;

impl AmqpDriver {
    /// `TopicNotFound` unless the topic is known here or its exchange exists on the
    /// broker (checked with a passive declare on a throwaway channel).
    pub(crate) async fn require_topic(&self, topic: &TopicName) -> Result<()> {
        if lock(&self.registry).topics.contains(topic) {
            return Ok(());
        }
        let ch = self.private_channel().await?;
        let r = ch
            .exchange_declare(
                &topic_exchange(topic),
                ExchangeKind::Topic,
                ExchangeDeclareOptions {
                    passive: true,
                    ..ExchangeDeclareOptions::default()
                },
                FieldTable::default(),
            )
            .await;
        match r {
            Ok(()) => {
                let _ = ch.close(200, "ok").await;
                lock(&self.registry).topics.insert(topic.clone());
                Ok(())
            }
            Err(e) if is_not_found(&e) => Err(Error::topic_not_found(topic.as_str())),
            Err(e) => Err(amqp_err(e)),
        }
    }
}

#[async_trait]
impl Topology for AmqpDriver {
    async fn create_queue(&self, queue: &QueueName, options: QueueOptions) -> Result<()> {
        self.bounded(
            "a topology change",
            ErrorKind::Unavailable,
            Duration::ZERO,
            async {
                options.validate()?;
                self.declare_all(queue).await?;
                self.write_options(queue, options).await?;
                lock(&self.registry).queues.insert(queue.clone(), options);
                Ok(())
            },
        )
        .await
    }

    async fn get_queue(&self, queue: &QueueName) -> Result<QueueInfo> {
        self.bounded(
            "a topology lookup",
            ErrorKind::Unavailable,
            Duration::ZERO,
            async {
                let options = self.options(queue).await?;
                Ok(
                    QueueInfo::new(queue.clone(), options)
                        .with_paused(self.is_paused(queue).await?),
                )
            },
        )
        .await
    }

    async fn set_paused(&self, queue: &QueueName, paused: bool) -> Result<()> {
        self.bounded(
            "a topology change",
            ErrorKind::Unavailable,
            Duration::ZERO,
            async {
                self.options(queue).await?;
                self.write_paused(queue, paused).await
            },
        )
        .await
    }

    async fn list_queues(&self) -> Result<Vec<QueueInfo>> {
        self.bounded(
            "a topology lookup",
            ErrorKind::Unavailable,
            Duration::ZERO,
            async {
                let known: Vec<(QueueName, QueueOptions)> = lock(&self.registry)
                    .queues
                    .iter()
                    .map(|(n, o)| (n.clone(), *o))
                    .collect();
                let mut out = Vec::with_capacity(known.len());
                for (name, options) in known {
                    let paused = self.is_paused(&name).await?;
                    out.push(QueueInfo::new(name, options).with_paused(paused));
                }
                Ok(out)
            },
        )
        .await
    }

    async fn delete_queue(&self, queue: &QueueName) -> Result<()> {
        self.bounded(
            "a topology change",
            ErrorKind::Unavailable,
            self.op_timeout,
            async {
                self.options(queue).await?;
                let del = QueueDeleteOptions::default();
                // The queue itself goes last: `options` finds a queue by it, so a delete
                // cut short can be run again to finish.
                self.ch()
                    .await?
                    .queue_delete(&dlq_name(queue), del)
                    .await
                    .map_err(amqp_err)?;
                self.ch()
                    .await?
                    .queue_delete(&options_name(queue), del)
                    .await
                    .map_err(amqp_err)?;
                self.ch()
                    .await?
                    .queue_delete(&history_name(queue), del)
                    .await
                    .map_err(amqp_err)?;
                self.ch()
                    .await?
                    .queue_delete(&pause_name(queue), del)
                    .await
                    .map_err(amqp_err)?;
                for k in 0..DELAY_LEVELS {
                    let name = delay_name(queue, k);
                    self.ch()
                        .await?
                        .queue_delete(&name, del)
                        .await
                        .map_err(amqp_err)?;
                    self.ch()
                        .await?
                        .exchange_delete(&name, ExchangeDeleteOptions::default())
                        .await
                        .map_err(amqp_err)?;
                }
                self.ch()
                    .await?
                    .exchange_delete(&deliver_exchange(queue), ExchangeDeleteOptions::default())
                    .await
                    .map_err(amqp_err)?;
                self.ch()
                    .await?
                    .queue_delete(&q_name(queue), del)
                    .await
                    .map_err(amqp_err)?;
                lock(&self.leases).retain(|_, l| l.queue != *queue);
                let mut reg = lock(&self.registry);
                reg.queues.remove(queue);
                reg.paused.remove(queue);
                for set in reg.bindings.values_mut() {
                    set.retain(|(q, _)| q != queue);
                }
                Ok(())
            },
        )
        .await
    }

    async fn create_topic(&self, topic: &TopicName) -> Result<()> {
        self.bounded(
            "a topology change",
            ErrorKind::Unavailable,
            Duration::ZERO,
            async {
                self.declare_exchange(&topic_exchange(topic), ExchangeKind::Topic)
                    .await?;
                self.declare_exchange(&topic_delay_exchange(topic), ExchangeKind::Topic)
                    .await?;
                lock(&self.registry).topics.insert(topic.clone());
                Ok(())
            },
        )
        .await
    }

    async fn list_topics(&self) -> Result<Vec<TopicName>> {
        self.bounded(
            "a topology lookup",
            ErrorKind::Unavailable,
            Duration::ZERO,
            async { Ok(lock(&self.registry).topics.iter().cloned().collect()) },
        )
        .await
    }

    async fn delete_topic(&self, topic: &TopicName) -> Result<()> {
        self.bounded(
            "a topology change",
            ErrorKind::Unavailable,
            Duration::ZERO,
            async {
                let ch = self.ch().await?;
                for name in [topic_exchange(topic), topic_delay_exchange(topic)] {
                    ch.exchange_delete(&name, ExchangeDeleteOptions::default())
                        .await
                        .map_err(amqp_err)?;
                }
                let mut reg = lock(&self.registry);
                reg.topics.remove(topic);
                reg.bindings.remove(topic);
                Ok(())
            },
        )
        .await
    }

    async fn bind(&self, topic: &TopicName, queue: &QueueName, pattern: &str) -> Result<()> {
        self.bounded(
            "a topology change",
            ErrorKind::Unavailable,
            Duration::ZERO,
            async {
                self.require_topic(topic).await?;
                validate_pattern(pattern)?;
                self.options(queue).await?;
                let ch = self.ch().await?;
                ch.queue_bind(
                    &q_name(queue),
                    &topic_exchange(topic),
                    pattern,
                    QueueBindOptions::default(),
                    FieldTable::default(),
                )
                .await
                .map_err(amqp_err)?;
                // Delayed publishes take the same binding into the queue's delay levels.
                let delayed = topic_delay_exchange(topic);
                self.declare_exchange(&delayed, ExchangeKind::Topic).await?;
                ch.exchange_bind(
                    &delay_name(queue, DELAY_LEVELS - 1),
                    &delayed,
                    pattern,
                    ExchangeBindOptions::default(),
                    FieldTable::default(),
                )
                .await
                .map_err(amqp_err)?;
                lock(&self.registry)
                    .bindings
                    .entry(topic.clone())
                    .or_default()
                    .insert((queue.clone(), pattern.to_string()));
                Ok(())
            },
        )
        .await
    }

    async fn unbind(&self, topic: &TopicName, queue: &QueueName, pattern: &str) -> Result<()> {
        self.bounded(
            "a topology change",
            ErrorKind::Unavailable,
            Duration::ZERO,
            async {
                let known = lock(&self.registry)
                    .bindings
                    .get(topic)
                    .is_some_and(|b| b.contains(&(queue.clone(), pattern.to_string())));
                if !known {
                    return Err(Error::invalid_input(format!(
                        "topic '{topic}' has no binding of queue '{queue}' with pattern '{pattern}'"
                    )));
                }
                let ch = self.ch().await?;
                ch.queue_unbind(
                    &q_name(queue),
                    &topic_exchange(topic),
                    pattern,
                    FieldTable::default(),
                )
                .await
                .map_err(amqp_err)?;
                ch.exchange_unbind(
                    &delay_name(queue, DELAY_LEVELS - 1),
                    &topic_delay_exchange(topic),
                    pattern,
                    ExchangeUnbindOptions::default(),
                    FieldTable::default(),
                )
                .await
                .map_err(amqp_err)?;
                if let Some(b) = lock(&self.registry).bindings.get_mut(topic) {
                    b.remove(&(queue.clone(), pattern.to_string()));
                }
                Ok(())
            },
        )
        .await
    }

    async fn list_bindings(&self, topic: &TopicName) -> Result<Vec<Binding>> {
        self.bounded(
            "a topology lookup",
            ErrorKind::Unavailable,
            Duration::ZERO,
            async {
                self.require_topic(topic).await?;
                let reg = lock(&self.registry);
                if !reg.topics.contains(topic) {
                    return Err(Error::topic_not_found(topic.as_str()));
                }
                Ok(reg
                    .bindings
                    .get(topic)
                    .map(|b| {
                        b.iter()
                            .map(|(q, p)| Binding::new(topic.clone(), q.clone(), p.clone()))
                            .collect()
                    })
                    .unwrap_or_default())
            },
        )
        .await
    }
}
