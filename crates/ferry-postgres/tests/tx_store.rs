//! The `TxStore` suite against the machine's PostgreSQL: one schema for this run, each
//! test in its own named store within it.

mod support;

use std::sync::Arc;

use ferry_postgres::PostgresDriver;

async fn store() -> Arc<dyn ferry_core::tx::TxStore> {
    let url = support::url_with_schema(support::schema());
    let driver = PostgresDriver::connect(&url)
        .await
        .unwrap_or_else(|e| panic!("cannot connect to postgres: {e}"));
    let name = format!("s{:08x}", fastrand::u32(..));
    Arc::new(
        driver
            .tx_store_named(&name)
            .unwrap_or_else(|e| panic!("store: {e}")),
    )
}

ferry_testkit::tx_store_suite!(store());
