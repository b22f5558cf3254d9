//! Random client behaviour against 1 to 3 shards, checked against the promises
//! (`common::chaos`): every acknowledged QoS 1/2 message delivered or its drop counted, QoS 2
//! at most once, never more unacknowledged PUBLISHes at a client than its window.
mod common;
use common::chaos::{Chaos, Op};
use proptest::prelude::*;

fn op() -> impl Strategy<Value = Op> {
    any::<[u8; 4]>().prop_map(Op::from_bytes)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn acknowledged_messages_are_delivered_or_counted(
        nr in 1usize..=3,
        newest in any::<bool>(),
        ops in prop::collection::vec(op(), 1..120),
    ) {
        Chaos::new(nr, newest).run(&ops);
    }

    /// With every client online throughout, nothing may be dropped at all: a full queue
    /// pauses its publishers instead. (Unless a subscriber that never acknowledges was
    /// disconnected as stuck: its session is then offline, and offline bounds apply.)
    #[test]
    fn online_subscribers_lose_nothing(
        nr in 1usize..=3,
        ops in prop::collection::vec(op(), 1..120),
    ) {
        let ops: Vec<Op> = ops
            .into_iter()
            .filter(|o| !matches!(o, Op::Disconnect { .. } | Op::Drop { .. }))
            .collect();
        let mut chaos = Chaos::new(nr, false);
        chaos.run(&ops);
        if chaos.w.stats().stuck_disconnects == 0 {
            prop_assert_eq!(chaos.counted_drops(), 0);
        }
    }
}

// Inputs the fuzz target failed on (fuzz/seeds/shard/regression-N), replayed as it reads them.

/// Found by the fuzz target: a client paused while waiting for acknowledgements sends
/// DISCONNECT and more; on resume the shard closes the connection at the DISCONNECT and what
/// follows it is discarded (as the engine does), not handed to a closed connection.
#[test]
fn packets_after_a_held_disconnect_are_discarded() {
    common::chaos::run_input(include_bytes!("../../fuzz/seeds/shard/regression-1"));
}

/// Found by the fuzz target: a paused v5 publisher's QoS 2 PUBLISHes, read at once on
/// resume, must stay within the server's Receive Maximum (the model client keeps to it, as
/// a client must); what its persistent session was owed when it was closed is delivered
/// after it reconnects.
#[test]
fn a_paused_publisher_keeps_to_receive_maximum() {
    common::chaos::run_input(include_bytes!("../../fuzz/seeds/shard/regression-2"));
}

/// Found by the fuzz target: a subscriber downgrades its subscription to QoS 0 while the
/// publisher is paused, then goes offline; what the publisher sent meanwhile is matched when
/// it is read, at QoS 0, and an offline session need not keep QoS 0 messages.
#[test]
fn a_downgraded_subscription_is_owed_nothing_at_its_old_qos() {
    common::chaos::run_input(include_bytes!("../../fuzz/seeds/shard/regression-3"));
}

/// Found by the fuzz target: a paused client's SUBSCRIBE and UNSUBSCRIBE of one filter are
/// read together; the UNSUBACK may come before the SUBACK (which waits for the other shards'
/// route updates), and the filter is not subscribed afterwards. Also a stuck subscriber
/// disconnected, its offline queue over its bound (drops counted).
#[test]
fn an_unsubscribe_read_behind_a_subscribe_wins() {
    common::chaos::run_input(include_bytes!("../../fuzz/seeds/shard/regression-4"));
}

/// Found by the fuzz target: two clients that each feed the other's full queue and never
/// acknowledge are both paused; their DISCONNECTs wait unread behind held PUBLISHes, and the
/// close of their sockets (which clients do after DISCONNECT) is what the broker sees.
#[test]
fn a_disconnect_held_behind_publishes_ends_with_the_socket_close() {
    common::chaos::run_input(include_bytes!("../../fuzz/seeds/shard/regression-5"));
}

/// Found by the fuzz target: a stuck subscriber with a clean session is disconnected (0x97)
/// and its session ends, what it held counted as `session_ended`; what the resumed
/// publisher sends after that matches no subscription of it.
#[test]
fn a_stuck_clean_subscriber_is_owed_nothing_after_its_session_ended() {
    common::chaos::run_input(include_bytes!("../../fuzz/seeds/shard/regression-6"));
}

/// Found by the fuzz target: a paused client sent SUBSCRIBE, UNSUBSCRIBE and SUBSCRIBE
/// again with the first one's packet id still in use; the model client now waits for the
/// SUBACK before it reuses a packet id [MQTT-2.2.1-3].
#[test]
fn a_packet_id_is_not_reused_before_its_suback() {
    common::chaos::run_input(include_bytes!("../../fuzz/seeds/shard/regression-7"));
}

/// Found by the fuzz target: SUBSCRIBE at QoS 1 (waiting for the other shard's route
/// acknowledgement) then at QoS 0 for the same filter; the SUBACKs used to leave in the
/// opposite order, so the client believed QoS 1 was in force. They now keep request order.
#[test]
fn subacks_keep_the_order_of_the_subscribes() {
    common::chaos::run_input(include_bytes!("../../fuzz/seeds/shard/regression-8"));
}
