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
pub mod config;
pub mod ids;
pub mod message;
pub mod outq;
pub use outq::{OutQueue, Output};
pub mod session;
pub mod shard;
pub mod shard_msg;
pub mod slab;
pub use config::{QueuePolicy, ShardConfig, SharedStrategy};
pub use ids::{home_shard, retained_shard, ConnId, SessionKey, ShardId};
pub use message::{Message, SharedMessage};
pub use session::DropReason;
pub use shard::{
    Action, Admission, AuthExchange, AuthMethod, AuthStep, Authenticator, Authorizer, ClientEvent,
    ClientInfo, IoEvent, Notice, PeerAddr, Shard, ShardStats, Verdict,
};
pub use shard_msg::ShardMsg;
pub mod timer;
pub use timer::TimerWheel;
pub mod routes;
pub use routes::{RouteTable, ShardCounts, ShardSet, SharedRoute};
mod level_map;
