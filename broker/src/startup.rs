//! Start-up glue: turns the validated `Config` into what the engine and shards run with.

use crate::config::{Config, QueuePolicy, SharedStrategy};
use shard::ShardConfig;

/// The shard limits implied by the broker configuration.
pub fn shard_config(c: &Config) -> ShardConfig {
    let l = &c.limits;
    ShardConfig {
        client_events: c.sys.client_events,
        max_packet_size: l.max_packet_size,
        max_inflight: l.max_inflight,
        max_queued_messages: l.max_queued_messages as usize,
        offline_queue_policy: match l.offline_queue_policy {
            QueuePolicy::DropOldest => shard::QueuePolicy::DropOldest,
            QueuePolicy::DropNewest => shard::QueuePolicy::DropNewest,
        },
        stuck_timeout_ms: u64::from(l.stuck_timeout) * 1000,
        link_credit: l.link_credit,
        max_pending_write_bytes: l.max_pending_output as usize,
        max_subscriptions_per_client: l.max_subscriptions_per_client as usize,
        max_topic_levels: l.max_topic_levels as usize,
        max_keepalive: l.max_keepalive,
        connect_timeout_ms: u64::from(l.connect_timeout) * 1000,
        max_client_id_len: l.max_client_id_len as usize,
        allow_anonymous: c.auth.anonymous_allowed(),
        max_session_expiry: c.session.max_session_expiry,
        max_offline_sessions: c.session.max_offline_sessions as usize,
        max_retained_messages: c.retained.max_messages as usize,
        max_retained_bytes: c.retained.max_bytes as usize,
        receive_maximum: l.receive_maximum,
        topic_alias_maximum: l.topic_alias_maximum,
        max_message_expiry: l.max_message_expiry,
        shared_strategy: match c.shared.strategy {
            SharedStrategy::RoundRobin => shard::SharedStrategy::RoundRobin,
            SharedStrategy::Random => shard::SharedStrategy::Random,
            SharedStrategy::Sticky => shard::SharedStrategy::Sticky,
            SharedStrategy::Hash => shard::SharedStrategy::Hash,
        },
    }
}
