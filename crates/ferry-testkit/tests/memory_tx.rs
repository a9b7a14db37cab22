//! The `TxStore` suite against the in-process store (its own contract check; durable
//! stores run the same suite in their crates).

ferry_testkit::tx_store_suite!(async { std::sync::Arc::new(ferry_core::tx::MemoryTxStore::new()) });
