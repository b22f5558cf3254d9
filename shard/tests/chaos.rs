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
