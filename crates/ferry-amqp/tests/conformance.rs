//! The ferry conformance suite against the machine's RabbitMQ, in the test vhost
//! (`support::url`; override with `FERRY_TEST_AMQP_URL`). Every test creates uniquely named queues and topics.

mod support;

use std::sync::Arc;

use ferry_core::Driver;

async fn driver() -> Arc<dyn Driver> {
    Arc::new(support::connect().await)
}

// The conformance functions this first cut passes. Not listed yet (they fail, and the
// suite is not weakened for them):
// - duplicate_id_is_noop_while_queued, dead_letter_and_requeue: need an index of live
//   message ids per queue (RabbitMQ has none); dead_letter_and_requeue fails only on
//   "a live id blocks requeue"; redrive_leaves_live_ids_approved, for the same reason.
// - stats_report_oldest_ready_at: RabbitMQ cannot tell when a queue's head message
//   became ready without taking it (the driver reports `oldest_ready_at: None`; see
//   the crate docs).
ferry_testkit::conformance_suite!(@each driver();
    send_receive_ack, fifo_within_priority, priority_order, lease_expiry_redelivers,
    extend_keeps_lease, stale_receipt_rejected, release_does_not_count_an_attempt, retry_at,
    delays_do_not_block,
    queue_default_delay, dead_letter_paging_and_purge,
    lease_expiry_on_last_attempt_dead_letters, topic_fanout_and_patterns,
    route_matching_agrees_with_reference, batch_all_or_nothing, invalid_input,
    long_poll_wakes_on_send, stats_by_state, delete_queue_removes_everything,
    concurrent_receivers_never_share, history_records_lifecycle,
    pause_stops_deliveries_and_resume_restores, pause_missing_queue_is_not_found,
    insert_dead_letters_round_trip, approve_counts_and_filters, redrive_moves_only_approved,
    redrive_concurrent_claims_are_disjoint,
);
