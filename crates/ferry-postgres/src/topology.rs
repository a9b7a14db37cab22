//! [`Topology`] for [`PostgresDriver`]: queues, topics and bindings as rows.
//!
//! Deleting a queue or topic cascades through foreign keys (messages, dead letters,
//! history and bindings go with their queue; bindings with their topic), so no other
//! process can see half a deletion. Lists sort with `COLLATE "C"` (byte order), the
//! order Rust's `sort` gives, whatever the database's collation.

use std::time::Duration;

use async_trait::async_trait;
use ferry_core::time::duration_millis;
use ferry_core::{
    Binding, Error, QueueInfo, QueueName, QueueOptions, Result, TopicName, Topology,
    validate_pattern,
};
use sqlx::postgres::PgRow;
use sqlx::{PgPool, Row};

use crate::driver::{Op, PostgresDriver};
use crate::error::Context;

fn ms(v: i64) -> Duration {
    Duration::from_millis(u64::try_from(v).unwrap_or(0))
}

/// A `queues` row (name, default_delay_ms, max_attempts, lease_ms, paused) as a
/// [`QueueInfo`].
fn queue_info(r: &PgRow) -> Result<QueueInfo> {
    let name: String = r.try_get(0).ctx("cannot read queue settings")?;
    let delay: i64 = r.try_get(1).ctx("cannot read queue settings")?;
    let attempts: i64 = r.try_get(2).ctx("cannot read queue settings")?;
    let lease: i64 = r.try_get(3).ctx("cannot read queue settings")?;
    let paused: bool = r.try_get(4).ctx("cannot read queue settings")?;
    let options = QueueOptions::default()
        .with_default_delay(ms(delay))
        .with_max_attempts(u32::try_from(attempts).unwrap_or(u32::MAX))
        .with_lease(ms(lease));
    Ok(QueueInfo::new(QueueName::new(name)?, options).with_paused(paused))
}

async fn topic_exists(pool: &PgPool, topic: &TopicName) -> Result<()> {
    let found: Option<i32> = sqlx::query_scalar("SELECT 1 FROM topics WHERE name = $1")
        .bind(topic.as_str())
        .fetch_optional(pool)
        .await
        .ctx("cannot read topic")?;
    found
        .map(|_| ())
        .ok_or_else(|| Error::topic_not_found(topic.as_str()))
}

async fn queue_exists(pool: &PgPool, queue: &QueueName) -> Result<()> {
    let found: Option<i32> = sqlx::query_scalar("SELECT 1 FROM queues WHERE name = $1")
        .bind(queue.as_str())
        .fetch_optional(pool)
        .await
        .ctx("cannot read queue")?;
    found
        .map(|_| ())
        .ok_or_else(|| Error::queue_not_found(queue.as_str()))
}

#[async_trait]
impl Topology for PostgresDriver {
    async fn create_queue(&self, queue: &QueueName, options: QueueOptions) -> Result<()> {
        options.validate()?;
        self.bounded(Op::Plain, async {
            sqlx::query(
                "INSERT INTO queues (name, default_delay_ms, max_attempts, lease_ms, created_at)
                 VALUES ($1, $2, $3, $4, now_ms())
                 ON CONFLICT (name) DO UPDATE SET default_delay_ms = $2, max_attempts = $3,
                                                  lease_ms = $4",
            )
            .bind(queue.as_str())
            .bind(duration_millis(options.default_delay))
            .bind(i64::from(options.max_attempts))
            .bind(duration_millis(options.lease))
            .execute(self.pool())
            .await
            .ctx("cannot create queue")?;
            Ok(())
        })
        .await
    }

    async fn get_queue(&self, queue: &QueueName) -> Result<QueueInfo> {
        self.bounded(Op::Plain, async {
            let row = sqlx::query(
                "SELECT name, default_delay_ms, max_attempts, lease_ms, paused
                 FROM queues WHERE name = $1",
            )
            .bind(queue.as_str())
            .fetch_optional(self.pool())
            .await
            .ctx("cannot read queue settings")?
            .ok_or_else(|| Error::queue_not_found(queue.as_str()))?;
            queue_info(&row)
        })
        .await
    }

    async fn list_queues(&self) -> Result<Vec<QueueInfo>> {
        self.bounded(Op::Plain, async {
            let rows = sqlx::query(
                "SELECT name, default_delay_ms, max_attempts, lease_ms, paused
                 FROM queues ORDER BY name COLLATE \"C\"",
            )
            .fetch_all(self.pool())
            .await
            .ctx("cannot list queues")?;
            rows.iter().map(queue_info).collect()
        })
        .await
    }

    async fn set_paused(&self, queue: &QueueName, paused: bool) -> Result<()> {
        let q = queue.clone();
        let channel = self.channel().to_string();
        self.in_tx(Op::Plain, "pause or resume the queue", move |c| {
            Box::pin(async move {
                let n = sqlx::query("UPDATE queues SET paused = $2 WHERE name = $1")
                    .bind(q.as_str())
                    .bind(paused)
                    .execute(&mut *c)
                    .await
                    .ctx("cannot pause or resume the queue")?
                    .rows_affected();
                if n == 0 {
                    return Err(Error::queue_not_found(q.as_str()));
                }
                if !paused {
                    // Long polls waiting on the paused queue look again at once.
                    crate::send::wake(c, &channel, &q).await?;
                }
                Ok(())
            })
        })
        .await
    }

    async fn delete_queue(&self, queue: &QueueName) -> Result<()> {
        self.bounded(Op::Plain, async {
            let n = sqlx::query("DELETE FROM queues WHERE name = $1")
                .bind(queue.as_str())
                .execute(self.pool())
                .await
                .ctx("cannot delete queue")?
                .rows_affected();
            if n == 0 {
                return Err(Error::queue_not_found(queue.as_str()));
            }
            Ok(())
        })
        .await
    }

    async fn create_topic(&self, topic: &TopicName) -> Result<()> {
        self.bounded(Op::Plain, async {
            sqlx::query(
                "INSERT INTO topics (name, created_at) VALUES ($1, now_ms()) ON CONFLICT DO NOTHING",
            )
            .bind(topic.as_str())
            .execute(self.pool())
            .await
            .ctx("cannot create topic")?;
            Ok(())
        })
        .await
    }

    async fn list_topics(&self) -> Result<Vec<TopicName>> {
        self.bounded(Op::Plain, async {
            let names: Vec<String> =
                sqlx::query_scalar("SELECT name FROM topics ORDER BY name COLLATE \"C\"")
                    .fetch_all(self.pool())
                    .await
                    .ctx("cannot list topics")?;
            names.into_iter().map(TopicName::new).collect()
        })
        .await
    }

    async fn delete_topic(&self, topic: &TopicName) -> Result<()> {
        self.bounded(Op::Plain, async {
            let n = sqlx::query("DELETE FROM topics WHERE name = $1")
                .bind(topic.as_str())
                .execute(self.pool())
                .await
                .ctx("cannot delete topic")?
                .rows_affected();
            if n == 0 {
                return Err(Error::topic_not_found(topic.as_str()));
            }
            Ok(())
        })
        .await
    }

    async fn bind(&self, topic: &TopicName, queue: &QueueName, pattern: &str) -> Result<()> {
        validate_pattern(pattern)?;
        self.bounded(Op::Plain, async {
            topic_exists(self.pool(), topic).await?;
            queue_exists(self.pool(), queue).await?;
            let result = sqlx::query(
                "INSERT INTO bindings (topic, queue, pattern) VALUES ($1, $2, $3)
                 ON CONFLICT DO NOTHING",
            )
            .bind(topic.as_str())
            .bind(queue.as_str())
            .bind(pattern)
            .execute(self.pool())
            .await;
            match result {
                Ok(_) => Ok(()),
                // Deleted between the checks and the insert.
                Err(sqlx::Error::Database(e)) if e.is_foreign_key_violation() => {
                    topic_exists(self.pool(), topic).await?;
                    Err(Error::queue_not_found(queue.as_str()))
                }
                Err(e) => Err(crate::error::from_sqlx("cannot bind", e)),
            }
        })
        .await
    }

    async fn unbind(&self, topic: &TopicName, queue: &QueueName, pattern: &str) -> Result<()> {
        self.bounded(Op::Plain, async {
            topic_exists(self.pool(), topic).await?;
            let n = sqlx::query(
                "DELETE FROM bindings WHERE topic = $1 AND queue = $2 AND pattern = $3",
            )
            .bind(topic.as_str())
            .bind(queue.as_str())
            .bind(pattern)
            .execute(self.pool())
            .await
            .ctx("cannot unbind")?
            .rows_affected();
            if n == 0 {
                return Err(Error::invalid_input(format!(
                    "topic '{topic}' has no binding to queue '{queue}' with pattern '{pattern}'"
                )));
            }
            Ok(())
        })
        .await
    }

    async fn list_bindings(&self, topic: &TopicName) -> Result<Vec<Binding>> {
        self.bounded(Op::Plain, async {
            topic_exists(self.pool(), topic).await?;
            let rows: Vec<(String, String)> = sqlx::query_as(
                "SELECT queue, pattern FROM bindings WHERE topic = $1
                 ORDER BY queue COLLATE \"C\", pattern COLLATE \"C\"",
            )
            .bind(topic.as_str())
            .fetch_all(self.pool())
            .await
            .ctx("cannot list bindings")?;
            rows.into_iter()
                .map(|(q, p)| Ok(Binding::new(topic.clone(), QueueName::new(q)?, p)))
                .collect()
        })
        .await
    }
}
