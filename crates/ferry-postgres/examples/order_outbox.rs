//! The classic outbox case: an order row and its `order.created` event are written in
//! one PostgreSQL transaction, so the event exists exactly when the order does; a relay
//! forwards committed events to the message backend, and a worker consumes them.
//!
//! ```text
//! cargo run -p ferry-postgres --example order_outbox                 # embedded target in a temp dir
//! cargo run -p ferry-postgres --example order_outbox -- --to redis://127.0.0.1:6379
//! FERRY_POSTGRES_URL=postgres://app@db/shop cargo run -p ferry-postgres --example order_outbox
//! ```
//!
//! Creates its own schema (`order_example_<pid>`: the `orders` table and ferry's
//! tables, outbox included), places five orders and one that rolls back, and exits 0
//! once the worker has seen the event of every committed order (and not the rolled
//! back one), 1 after 60 s without. The schema is dropped at the end.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ferry_core::tx::Destination;
use ferry_core::{
    Consumer, Delivery, Driver, Error, ErrorKind, Message, QueueName, QueueOptions, Result,
    TopicName,
};
use ferry_postgres::{Outbox, Relay};
use sqlx::{AssertSqlSafe, PgPool};

const ORDERS: usize = 5;
const TIMEOUT: Duration = Duration::from_secs(60);

#[tokio::main]
async fn main() -> std::process::ExitCode {
    match run().await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("order_outbox: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<()> {
    let url = std::env::var("FERRY_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_string());
    let schema = format!("order_example_{}", std::process::id());
    let pool = PgPool::connect(&url).await.map_err(db("connect"))?;

    // The application's own table, in the schema that also holds ferry's outbox.
    sql(&pool, format!("CREATE SCHEMA IF NOT EXISTS {schema}")).await?;
    sql(
        &pool,
        format!(
            "CREATE TABLE {schema}.orders (id TEXT PRIMARY KEY, customer TEXT NOT NULL, total_cents BIGINT NOT NULL)"
        ),
    )
    .await?;
    let outbox = Outbox::new(&schema)?;
    outbox.migrate(&pool).await?;

    let result = demo(&url, &schema, &pool, &outbox).await;
    sql(&pool, format!("DROP SCHEMA IF EXISTS {schema} CASCADE")).await?;
    result
}

async fn demo(url: &str, schema: &str, pool: &PgPool, outbox: &Outbox) -> Result<()> {
    // The message backend: embedded in a temp dir unless --to names another.
    let tmp =
        tempfile::tempdir().map_err(|e| Error::new(ErrorKind::Io, "temp dir").with_source(e))?;
    let target: Arc<dyn Driver> = match std::env::args().skip_while(|a| a != "--to").nth(1) {
        Some(to) => connect_target(&to).await?,
        None => Arc::new(ferry_embedded::EmbeddedDriver::open(
            tmp.path().join("data"),
        )?),
    };
    let topic = TopicName::new("orders")?;
    let queue = QueueName::new("order-events")?;
    target.create_topic(&topic).await?;
    target.create_queue(&queue, QueueOptions::default()).await?;
    target.bind(&topic, &queue, "order.*").await?;

    // The relay: forwards committed outbox rows, woken by each commit's NOTIFY.
    let sep = if url.contains('?') { '&' } else { '?' };
    let relay = Relay::builder(&format!("{url}{sep}schema={schema}"), target.clone())?
        .every(Duration::from_millis(500))
        .build();
    let (stop_relay, relay_stopped) = tokio::sync::oneshot::channel::<()>();
    let relay_task = tokio::spawn(async move {
        relay
            .run(async {
                let _ = relay_stopped.await;
            })
            .await
    });

    // The worker: prints every event and remembers which orders it saw.
    let seen = Arc::new(Mutex::new(BTreeSet::new()));
    let (stop_worker, worker_stopped) = tokio::sync::oneshot::channel::<()>();
    let worker = {
        let seen = seen.clone();
        Consumer::builder(queue.clone()).build(target.clone(), move |d: Delivery| {
            let seen = seen.clone();
            async move {
                println!(
                    "worker: {} {} {}",
                    d.route_key.as_deref().unwrap_or("-"),
                    d.id,
                    String::from_utf8_lossy(&d.payload)
                );
                seen.lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(d.id.clone());
                Ok::<(), std::io::Error>(())
            }
        })
    };
    let worker_task = tokio::spawn(async move {
        worker
            .run(async {
                let _ = worker_stopped.await;
            })
            .await
    });

    // The application: each order and its event in one transaction.
    let created = Destination::topic(topic, "order.created")?;
    let mut placed = BTreeSet::new();
    for n in 1..=ORDERS {
        let id = format!("order-{n}");
        place(pool, schema, outbox, &created, &id, true).await?;
        println!("app: committed {id} and its order.created event");
        placed.insert(id);
    }
    place(pool, schema, outbox, &created, "order-cancelled", false).await?;
    println!("app: rolled back order-cancelled (its event goes nowhere)");

    let deadline = Instant::now() + TIMEOUT;
    let outcome = loop {
        let now_seen = seen.lock().unwrap_or_else(|p| p.into_inner()).clone();
        if now_seen.contains("order-cancelled") {
            break Err(Error::internal(
                "the rolled-back order's event was delivered",
            ));
        }
        if placed.is_subset(&now_seen) {
            println!("done: the worker saw the event of all {ORDERS} committed orders");
            break Ok(());
        }
        if Instant::now() > deadline {
            break Err(Error::new(
                ErrorKind::Timeout,
                format!(
                    "saw {} of {ORDERS} order events within {TIMEOUT:?}",
                    now_seen.len()
                ),
            ));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let _ = stop_worker.send(());
    let _ = stop_relay.send(());
    let _ = worker_task.await;
    if let Ok(Ok(report)) = relay_task.await {
        println!(
            "relay: forwarded {} in {} rounds",
            report.forwarded, report.rounds
        );
    }
    outcome
}

/// One business transaction: the order row and its event; committed or rolled back.
async fn place(
    pool: &PgPool,
    schema: &str,
    outbox: &Outbox,
    created: &Destination,
    id: &str,
    commit: bool,
) -> Result<()> {
    let mut tx = pool.begin().await.map_err(db("begin"))?;
    sqlx::query(AssertSqlSafe(format!(
        "INSERT INTO {schema}.orders (id, customer, total_cents) VALUES ($1, $2, $3)"
    )))
    .bind(id)
    .bind("ada@example.com")
    .bind(1999_i64)
    .execute(&mut *tx)
    .await
    .map_err(db("insert the order"))?;
    let event = Message::new(format!(r#"{{"order":"{id}","total_cents":1999}}"#)).with_id(id);
    outbox.enqueue(&mut tx, created, &event).await?;
    if commit {
        tx.commit().await.map_err(db("commit"))
    } else {
        tx.rollback().await.map_err(db("roll back"))
    }
}

async fn connect_target(url: &str) -> Result<Arc<dyn Driver>> {
    if url.starts_with("postgres") {
        Ok(Arc::new(
            ferry_postgres::PostgresDriver::connect(url).await?,
        ))
    } else if url.starts_with("redis") {
        Ok(Arc::new(ferry_redis::RedisDriver::connect(url).await?))
    } else if let Some(dir) = url.strip_prefix("file:") {
        Ok(Arc::new(ferry_embedded::EmbeddedDriver::open(dir)?))
    } else {
        Err(Error::invalid_input(format!(
            "--to {url}: this example knows file:DIR, redis://… and postgres://… (use `ferry relay` for RabbitMQ)"
        )))
    }
}

async fn sql(pool: &PgPool, statement: String) -> Result<()> {
    sqlx::query(AssertSqlSafe(statement))
        .execute(pool)
        .await
        .map(drop)
        .map_err(db("run SQL"))
}

fn db(what: &'static str) -> impl Fn(sqlx::Error) -> Error {
    move |e| Error::new(ErrorKind::Unavailable, format!("PostgreSQL: cannot {what}")).with_source(e)
}
