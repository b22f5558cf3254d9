//! Fuzz target: random client behaviour against 1 to 3 shards (the `shard` crate's test
//! World), with the promises as invariants (`shard/tests/common/chaos.rs`): no panic; every
//! QoS 1/2 message the broker acknowledged is delivered to each subscriber that held a
//! matching QoS 1/2 subscription, or counted under a drop reason MQTT allows; QoS 2 at most
//! once; never more unacknowledged PUBLISHes at a client than its window.
//!
//! Input: byte 0 picks the shard count, byte 1 the offline queue policy, then 4 bytes per
//! operation (`Op::from_bytes`), at most 200 of them.

#![no_main]

#[path = "../../shard/tests/common/mod.rs"]
mod common;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| common::chaos::run_input(data));
