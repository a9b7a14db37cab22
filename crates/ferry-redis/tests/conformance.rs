//! The ferry conformance and runtime suites against the Redis at 127.0.0.1:6379
//! (override with `FERRY_TEST_REDIS_URL`), under a key prefix unique to this run.

use std::sync::{Arc, OnceLock};

use ferry_core::Driver;
use ferry_redis::{RedisConfig, RedisDriver};

fn prefix() -> &'static str {
    static PREFIX: OnceLock<String> = OnceLock::new();
    PREFIX.get_or_init(|| {
        format!(
            "ferry-test:{}-{:08x}",
            std::process::id(),
            fastrand::u32(..)
        )
    })
}

async fn driver() -> Arc<dyn Driver> {
    let url = std::env::var("FERRY_TEST_REDIS_URL")
        .unwrap_or_else(|_| "redis://127.0.0.1:6379".to_string());
    let config = RedisConfig::new(url).with_prefix(prefix());
    Arc::new(
        RedisDriver::connect_with(config)
            .await
            .unwrap_or_else(|e| panic!("cannot connect to redis: {e}")),
    )
}

ferry_testkit::conformance_suite!(driver());

mod runtime {
    use super::driver;
    ferry_testkit::runtime_suite!(driver());
}
