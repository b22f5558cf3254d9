//! ringmq's per-core world: sessions, subscription trie, route table, retained store,
//! timers and the cross-shard message vocabulary. Logic only; the broker drives I/O.
//!
//! # Layout
//! (modules are listed here as they land)

pub mod topic_trie;
pub use topic_trie::TopicTrie;
pub mod subs;
pub use subs::{
    Delivery, SharedGroup, SubOptions, SubscribeOutcome, SubscriptionTable, UnsubscribeOutcome,
};
pub mod retained;
pub use retained::{RetainedError, RetainedLimits, RetainedSize, RetainedStore};
pub mod timer;
pub use timer::TimerWheel;
