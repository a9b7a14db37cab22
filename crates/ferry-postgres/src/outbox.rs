//! [`Outbox`]: messages written in the application's own PostgreSQL transaction.
//!
//! Why: a service that updates its tables and then sends a message can crash between
//! the two (the order exists, its event is lost) or send before a commit that then
//! fails (the event announces an order that does not exist). With the outbox, the
//! message is one more row of the same transaction: it exists exactly when the business
//! change committed. A [`Relay`](crate::Relay) forwards committed rows to the real
//! backend (embedded, Redis, RabbitMQ, a PostgreSQL queue) and deletes them.
//!
//! A row is `encode_prepared(destination, message)` (the same versioned record the
//! two-phase [`TxStore`](ferry_core::tx::TxStore)s keep) plus its message id and a
//! destination key. Enqueueing also `NOTIFY`s the relay's channel; PostgreSQL delivers
//! a notification only when its transaction commits, so the relay wakes exactly when
//! there is something it may forward.

use ferry_core::tx::{Destination, encode_prepared};
use ferry_core::{Limits, Message, Result};
use sqlx::{PgExecutor, PgPool, Postgres, Transaction};

use crate::config::{DEFAULT_SCHEMA, PostgresConfig};
use crate::error::Context;

/// Enqueues messages into the outbox table of a ferry schema, inside the caller's
/// transaction. Cheap to clone.
///
/// The classic case: an order and its `order.created` event commit together or not at
/// all.
///
/// ```no_run
/// # async fn demo() -> ferry_core::Result<()> {
/// use ferry_core::{Message, TopicName, tx::Destination};
/// use ferry_postgres::Outbox;
///
/// let pool = sqlx::PgPool::connect("postgres://postgres@127.0.0.1:5432/shop").await
///     .map_err(|e| ferry_core::Error::invalid_input("connect").with_source(e))?;
/// let outbox = Outbox::default(); // schema `ferry`
/// outbox.migrate(&pool).await?;   // creates ferry's tables once (PostgresDriver::connect does too)
///
/// let mut tx = pool.begin().await
///     .map_err(|e| ferry_core::Error::invalid_input("begin").with_source(e))?;
/// sqlx::query("INSERT INTO orders (id, total_cents) VALUES ($1, $2)")
///     .bind("order-42").bind(1999_i64)
///     .execute(&mut *tx).await
///     .map_err(|e| ferry_core::Error::invalid_input("insert").with_source(e))?;
/// let event = Destination::topic(TopicName::new("orders")?, "order.created")?;
/// outbox.enqueue(&mut tx, &event, &Message::new(r#"{"order":"order-42"}"#).with_id("order-42")).await?;
/// tx.commit().await // the order and its event become visible together
///     .map_err(|e| ferry_core::Error::invalid_input("commit").with_source(e))?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct Outbox {
    schema: String,
    notify: bool,
    limits: Limits,
}

impl Default for Outbox {
    /// The outbox of schema [`DEFAULT_SCHEMA`] (`ferry`), notifying the relay.
    fn default() -> Self {
        Outbox {
            schema: DEFAULT_SCHEMA.to_string(),
            notify: true,
            limits: Limits::default(),
        }
    }
}

impl Outbox {
    /// The outbox of schema `schema` (1 to 48 letters, digits or `_`, not starting with
    /// a digit; folded to lower case), `InvalidInput` otherwise.
    ///
    /// ```
    /// use ferry_postgres::Outbox;
    /// assert_eq!(Outbox::new("Billing")?.schema(), "billing");
    /// assert!(Outbox::new("no-dashes").is_err());
    /// # Ok::<(), ferry_core::Error>(())
    /// ```
    pub fn new(schema: &str) -> Result<Self> {
        // The driver's rule for schema names, through its public API.
        let schema = PostgresConfig::new("postgres://localhost/db")?
            .with_schema(schema)?
            .schema()
            .to_string();
        Ok(Outbox {
            schema,
            ..Outbox::default()
        })
    }

    /// The outbox of the schema a ferry URL names (`?schema=NAME`, default `ferry`).
    ///
    /// ```
    /// let outbox = ferry_postgres::Outbox::from_url("postgres://app@db/shop?schema=shop_ferry")?;
    /// assert_eq!(outbox.schema(), "shop_ferry");
    /// # Ok::<(), ferry_core::Error>(())
    /// ```
    pub fn from_url(url: &str) -> Result<Self> {
        Outbox::new(PostgresConfig::new(url)?.schema())
    }

    /// Whether enqueueing `NOTIFY`s the relay (default on). Off saves the commit-time
    /// notification lock on very busy databases; the relay then finds rows by polling.
    ///
    /// ```
    /// let quiet = ferry_postgres::Outbox::default().with_notify(false);
    /// # let _ = quiet;
    /// ```
    pub fn with_notify(mut self, notify: bool) -> Self {
        self.notify = notify;
        self
    }

    /// The schema holding the outbox table.
    pub fn schema(&self) -> &str {
        &self.schema
    }

    /// Writes `message` for `destination` in the caller's transaction `tx`: nothing is
    /// visible to the relay until the caller commits, and a rollback removes it.
    ///
    /// The message is checked against [`Limits::default`] first (`InvalidName`,
    /// `InvalidInput`, `TooLarge`; nothing is written). Its id is kept: the relay
    /// forwards it under the same id, so a row forwarded twice (a relay crashed after
    /// forwarding, before deleting it) is dropped by the target while the first copy
    /// is still queued. Whether the destination exists is checked when the relay
    /// forwards, not here.
    ///
    /// ```no_run
    /// # async fn demo(pool: sqlx::PgPool) -> ferry_core::Result<()> {
    /// use ferry_core::{Message, QueueName, tx::Destination};
    /// let outbox = ferry_postgres::Outbox::default();
    /// let mut tx = pool.begin().await.map_err(|e| ferry_core::Error::invalid_input("begin").with_source(e))?;
    /// let jobs = Destination::queue(QueueName::new("emails")?);
    /// outbox.enqueue(&mut tx, &jobs, &Message::new("welcome user 7")).await?;
    /// tx.commit().await.map_err(|e| ferry_core::Error::invalid_input("commit").with_source(e))?;
    /// # Ok(()) }
    /// ```
    pub async fn enqueue(
        &self,
        tx: &mut Transaction<'_, Postgres>,
        destination: &Destination,
        message: &Message,
    ) -> Result<()> {
        self.insert(tx, &[(destination, message)]).await
    }

    /// Like [`enqueue`](Self::enqueue) for several messages, kept in the given order
    /// (the relay forwards them in that order wherever the target keeps order). The
    /// whole batch is checked before anything is written.
    ///
    /// ```no_run
    /// # async fn demo(pool: sqlx::PgPool) -> ferry_core::Result<()> {
    /// use ferry_core::{Message, QueueName, tx::Destination};
    /// let outbox = ferry_postgres::Outbox::default();
    /// let q = Destination::queue(QueueName::new("ledger")?);
    /// let batch = vec![(q.clone(), Message::new("debit")), (q, Message::new("credit"))];
    /// let mut tx = pool.begin().await.map_err(|e| ferry_core::Error::invalid_input("begin").with_source(e))?;
    /// outbox.enqueue_batch(&mut tx, &batch).await?;
    /// tx.commit().await.map_err(|e| ferry_core::Error::invalid_input("commit").with_source(e))?;
    /// # Ok(()) }
    /// ```
    pub async fn enqueue_batch(
        &self,
        tx: &mut Transaction<'_, Postgres>,
        batch: &[(Destination, Message)],
    ) -> Result<()> {
        let items: Vec<(&Destination, &Message)> = batch.iter().map(|(d, m)| (d, m)).collect();
        self.insert(tx, &items).await
    }

    async fn insert(
        &self,
        tx: &mut Transaction<'_, Postgres>,
        items: &[(&Destination, &Message)],
    ) -> Result<()> {
        if items.is_empty() {
            return Ok(());
        }
        let messages: Vec<Message> = items.iter().map(|(_, m)| (*m).clone()).collect();
        self.limits.validate_batch(&messages)?;
        let mut ids = Vec::with_capacity(items.len());
        let mut dests = Vec::with_capacity(items.len());
        let mut bodies = Vec::with_capacity(items.len());
        for (destination, message) in items {
            ids.push(message.id().to_string());
            dests.push(dest_key(destination));
            bodies.push(encode_prepared(destination, message)?);
        }
        // WITH ORDINALITY + ORDER BY: `seq` follows the batch order.
        let sql = format!(
            "INSERT INTO {} (id, dest, body) \
             SELECT id, dest, body FROM UNNEST($1::text[], $2::text[], $3::bytea[]) \
             WITH ORDINALITY AS u(id, dest, body, ord) ORDER BY ord",
            table(&self.schema, "outbox")
        );
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(&ids)
            .bind(&dests)
            .bind(&bodies)
            .execute(&mut **tx)
            .await
            .ctx("cannot enqueue into the outbox (did ferry's migrations run in this schema?)")?;
        if self.notify {
            sqlx::query("SELECT pg_notify($1, '')")
                .bind(channel(&self.schema))
                .execute(&mut **tx)
                .await
                .ctx("cannot notify the outbox relay")?;
        }
        Ok(())
    }

    /// How many rows wait in the outbox (committed and not yet forwarded).
    ///
    /// ```no_run
    /// # async fn demo(pool: sqlx::PgPool) -> ferry_core::Result<()> {
    /// let waiting = ferry_postgres::Outbox::default().pending(&pool).await?;
    /// println!("{waiting} messages not yet relayed");
    /// # Ok(()) }
    /// ```
    pub async fn pending<'e>(&self, executor: impl PgExecutor<'e>) -> Result<u64> {
        let sql = format!("SELECT count(*) FROM {}", table(&self.schema, "outbox"));
        let n: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
            .fetch_one(executor)
            .await
            .ctx("cannot count the outbox rows")?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    /// Creates the schema and ferry's tables (outbox included) or brings them up to
    /// this build's version, with the same migrations [`PostgresDriver::connect`]
    /// runs; a schema a newer ferry upgraded is `IncompatibleFormat`.
    ///
    /// [`PostgresDriver::connect`]: crate::PostgresDriver::connect
    ///
    /// ```no_run
    /// # async fn demo(pool: sqlx::PgPool) -> ferry_core::Result<()> {
    /// ferry_postgres::Outbox::new("shop_ferry")?.migrate(&pool).await?;
    /// # Ok(()) }
    /// ```
    pub async fn migrate(&self, pool: &PgPool) -> Result<()> {
        let mut conn = pool
            .acquire()
            .await
            .ctx("cannot connect to PostgreSQL to migrate the outbox")?
            .detach();
        sqlx::query("SELECT set_config('search_path', $1, false)")
            .bind(quote(&self.schema))
            .execute(&mut conn)
            .await
            .ctx("cannot select ferry's schema")?;
        crate::migrate::run(conn, &self.schema).await
    }
}

/// The destination as the key that orders and holds rows: `q:QUEUE` or
/// `t:TOPIC:ROUTE.KEY` (names hold no `:`).
pub(crate) fn dest_key(destination: &Destination) -> String {
    match destination {
        Destination::Queue(q) => format!("q:{q}"),
        Destination::Topic { topic, route_key } => format!("t:{topic}:{route_key}"),
    }
}

/// The relay's `NOTIFY` channel for `schema` (the driver's own channel is `ferry_SCHEMA`).
pub(crate) fn channel(schema: &str) -> String {
    format!("ferry_{schema}_outbox")
}

/// `schema` as a quoted identifier. Schema names are validated (letters, digits, `_`),
/// so quoting only protects names that are SQL keywords.
pub(crate) fn quote(schema: &str) -> String {
    format!("\"{}\"", schema.replace('"', "\"\""))
}

/// `"schema".name`: the outbox is used on the application's connections, whose
/// `search_path` is theirs, so every name is qualified.
pub(crate) fn table(schema: &str, name: &str) -> String {
    format!("{}.{name}", quote(schema))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferry_core::{QueueName, TopicName};

    #[test]
    fn keys_and_names() -> Result<()> {
        let q = Destination::queue(QueueName::new("orders")?);
        let t = Destination::topic(TopicName::new("shop")?, "order.created")?;
        assert_eq!(dest_key(&q), "q:orders");
        assert_eq!(dest_key(&t), "t:shop:order.created");
        assert_eq!(table("ferry", "outbox"), "\"ferry\".outbox");
        assert_eq!(channel("ferry"), "ferry_ferry_outbox");
        assert_eq!(Outbox::default().schema(), "ferry");
        assert_eq!(Outbox::new("A_b")?.schema(), "a_b");
        assert!(Outbox::new("").is_err());
        Ok(())
    }
}
