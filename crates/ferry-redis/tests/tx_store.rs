//! The `TxStore` suite against the machine's Redis, each test in its own named store
//! under this run's key prefix.

use std::sync::{Arc, OnceLock};

use ferry_redis::{RedisConfig, RedisDriver};

fn prefix() -> &'static str {
    static PREFIX: OnceLock<String> = OnceLock::new();
    PREFIX.get_or_init(|| {
        format!(
            "ferry-test:tx-{}-{:08x}",
            std::process::id(),
            fastrand::u32(..)
        )
    })
}

async fn store() -> Arc<dyn ferry_core::tx::TxStore> {
    let url = std::env::var("FERRY_TEST_REDIS_URL")
        .unwrap_or_else(|_| "redis://127.0.0.1:6379".to_string());
    let driver = RedisDriver::connect_with(RedisConfig::new(url).with_prefix(prefix()))
        .await
        .unwrap_or_else(|e| panic!("cannot connect to redis: {e}"));
    let name = format!("s{:08x}", fastrand::u32(..));
    Arc::new(
        driver
            .tx_store_named(&name)
            .unwrap_or_else(|e| panic!("store: {e}")),
    )
}

ferry_testkit::tx_store_suite!(store());
