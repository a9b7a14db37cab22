//! The conformance functions in quorum mode (`?queue_type=quorum`), against the
//! machine's RabbitMQ in the test vhost (override with `FERRY_TEST_AMQP_QUORUM_URL`).
//!
//! Besides the ones `conformance.rs` leaves out (duplicate ids, requeue or re-drive of
//! a live id, `stats_report_oldest_ready_at`), `priority_order` is not run here:
//! quorum queues have no priorities before RabbitMQ 4.0 (the test machine runs 3.10).

mod support;

use std::sync::Arc;

use ferry_amqp::AmqpDriver;
use ferry_core::Driver;

async fn driver() -> Arc<dyn Driver> {
    let url = std::env::var("FERRY_TEST_AMQP_QUORUM_URL")
        .unwrap_or_else(|_| format!("{}?queue_type=quorum", support::url()));
    Arc::new(
        AmqpDriver::connect(&url)
            .await
            .unwrap_or_else(|e| panic!("cannot connect to rabbitmq: {e}")),
    )
}

ferry_testkit::conformance_suite!(@each driver();
    send_receive_ack, fifo_within_priority, lease_expiry_redelivers,
    extend_keeps_lease, stale_receipt_rejected, release_does_not_count_an_attempt, retry_at,
    delays_do_not_block, queue_default_delay, dead_letter_paging_and_purge,
    lease_expiry_on_last_attempt_dead_letters, topic_fanout_and_patterns,
    route_matching_agrees_with_reference, batch_all_or_nothing, invalid_input,
    long_poll_wakes_on_send, stats_by_state, delete_queue_removes_everything,
    concurrent_receivers_never_share, history_records_lifecycle,
    pause_stops_deliveries_and_resume_restores, pause_missing_queue_is_not_found,
    insert_dead_letters_round_trip, approve_counts_and_filters, redrive_moves_only_approved,
    redrive_concurrent_claims_are_disjoint,
);
