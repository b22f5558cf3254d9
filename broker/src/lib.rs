//! The ringmq broker: configuration, listeners, one glommio executor per shard, and the
//! glue between sockets and the sans-IO shard world.
//!
//! # Layout
//! (modules are listed here as they land)
