//! Schema creation and upgrades at connect: a fresh schema migrates (its migration
//! table inside it), connecting again is a no-op, concurrent first connects take turns
//! on sqlx's advisory lock, and a schema that a newer ferry upgraded is refused.

mod support;

use ferry_core::{ErrorKind, QueueName, QueueOptions, Topology};
use ferry_postgres::PostgresDriver;
use sqlx::{Connection, PgConnection};

async fn admin() -> PgConnection {
    PgConnection::connect(&support::base_url())
        .await
        .unwrap_or_else(|e| panic!("cannot connect to postgres: {e}"))
}

/// Drops the schema when the test ends, passed or not.
struct Dropped(String);

impl Drop for Dropped {
    fn drop(&mut self) {
        let schema = self.0.clone();
        // A runtime of its own: the test's may be shutting down.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build();
            if let Ok(rt) = rt {
                rt.block_on(async {
                    let mut c = admin().await;
                    let sql = format!("DROP SCHEMA IF EXISTS {schema} CASCADE");
                    let _ = sqlx::query(sqlx::AssertSqlSafe(sql)).execute(&mut c).await;
                });
            }
        })
        .join();
    }
}

async fn tables_in(schema: &str) -> Vec<String> {
    sqlx::query_scalar(
        "SELECT table_name::text FROM information_schema.tables
         WHERE table_schema = $1 ORDER BY table_name COLLATE \"C\"",
    )
    .bind(schema)
    .fetch_all(&mut admin().await)
    .await
    .expect("list tables")
}

#[tokio::test]
async fn fresh_schema_migrates_and_reconnects() {
    let schema = support::fresh_schema();
    let _drop = Dropped(schema.clone());
    let url = support::url_with_schema(&schema);
    let d = PostgresDriver::connect(&url).await.expect("first connect");
    assert_eq!(d.schema(), schema);
    let tables = tables_in(&schema).await;
    for t in [
        "_sqlx_migrations",
        "bindings",
        "dead_letters",
        "history",
        "idempotency",
        "messages",
        "queues",
        "topics",
    ] {
        assert!(tables.contains(&t.to_string()), "{t} in {tables:?}");
    }
    let versions: Vec<i64> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT version FROM {schema}._sqlx_migrations ORDER BY version"
    )))
    .fetch_all(&mut admin().await)
    .await
    .expect("versions");
    assert_eq!(versions.first(), Some(&1));

    let q = QueueName::new("kept").expect("name");
    d.create_queue(&q, QueueOptions::default())
        .await
        .expect("create");
    drop(d);
    let again = PostgresDriver::connect(&url).await.expect("second connect");
    assert!(
        again.get_queue(&q).await.is_ok(),
        "reconnecting keeps the data"
    );
}

#[tokio::test]
async fn two_schemas_in_one_database_are_independent() {
    let (a, b) = (support::fresh_schema(), support::fresh_schema());
    let _drop = (Dropped(a.clone()), Dropped(b.clone()));
    let da = PostgresDriver::connect(&support::url_with_schema(&a))
        .await
        .expect("a");
    let db = PostgresDriver::connect(&support::url_with_schema(&b))
        .await
        .expect("b");
    let q = QueueName::new("only_in_a").expect("name");
    da.create_queue(&q, QueueOptions::default())
        .await
        .expect("create");
    assert_eq!(
        db.get_queue(&q).await.expect_err("not in b").kind(),
        ErrorKind::QueueNotFound
    );
    assert!(
        tables_in(&b)
            .await
            .contains(&"_sqlx_migrations".to_string())
    );
}

#[tokio::test]
async fn newer_schema_is_refused() {
    let schema = support::fresh_schema();
    let _drop = Dropped(schema.clone());
    let url = support::url_with_schema(&schema);
    drop(PostgresDriver::connect(&url).await.expect("connect"));
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "INSERT INTO {schema}._sqlx_migrations
           (version, description, success, checksum, execution_time)
         VALUES (9999, 'from the future', true, '\\x00'::bytea, 0)"
    )))
    .execute(&mut admin().await)
    .await
    .expect("insert fake migration");
    let err = PostgresDriver::connect(&url)
        .await
        .expect_err("a newer schema is refused");
    assert_eq!(err.kind(), ErrorKind::IncompatibleFormat, "{err}");
    let text = err.to_string();
    assert!(text.contains("9999"), "{text}");
    assert!(text.contains(&schema), "{text}");
    assert!(text.contains("upgrade ferry"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_first_connects_both_succeed() {
    let schema = support::fresh_schema();
    let _drop = Dropped(schema.clone());
    let url = support::url_with_schema(&schema);
    let connects: Vec<_> = (0..4)
        .map(|_| {
            let url = url.clone();
            tokio::spawn(async move { PostgresDriver::connect(&url).await })
        })
        .collect();
    for c in connects {
        c.await
            .expect("join")
            .expect("every concurrent connect succeeds");
    }
    let applied: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT count(*) FROM {schema}._sqlx_migrations WHERE version = 1"
    )))
    .fetch_one(&mut admin().await)
    .await
    .expect("count");
    assert_eq!(applied, 1, "migration 1 applied once");
}

#[tokio::test]
async fn bad_urls_are_invalid_input() {
    for url in [
        "postgres://127.0.0.1/test?schema=no-dashes",
        "postgres://127.0.0.1/test?schema=1abc",
        "mysql://127.0.0.1/test",
    ] {
        let err = PostgresDriver::connect(url).await.expect_err(url);
        assert_eq!(err.kind(), ErrorKind::InvalidInput, "{url}: {err}");
    }
}

#[tokio::test]
async fn unreachable_server_is_unavailable() {
    // Port 1 on loopback: nothing listens there.
    let err = PostgresDriver::connect("postgres://postgres@127.0.0.1:1/test")
        .await
        .expect_err("nothing listens on port 1");
    assert_eq!(err.kind(), ErrorKind::Unavailable, "{err}");
}
