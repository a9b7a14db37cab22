//! The ferry conformance and runtime suites against the PostgreSQL at 127.0.0.1:5432
//! (override with `FERRY_TEST_POSTGRES_URL`), in a schema unique to this run
//! (`ferry_test_<pid>_<random>`).

mod support;

use std::sync::Arc;

use ferry_core::Driver;
use ferry_postgres::PostgresDriver;

async fn driver() -> Arc<dyn Driver> {
    let url = support::url_with_schema(support::schema());
    Arc::new(
        PostgresDriver::connect(&url)
            .await
            .unwrap_or_else(|e| panic!("cannot connect to postgres: {e}")),
    )
}

ferry_testkit::conformance_suite!(driver());

mod runtime {
    use super::driver;
    ferry_testkit::runtime_suite!(driver());
}
