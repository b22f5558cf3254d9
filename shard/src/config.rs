//! The limits a shard enforces, resolved from the broker's configuration at start-up.
//!
//! Plain values only: the broker validates and converts its TOML config into this, so the
//! shard never sees an unchecked setting.

/// How a shared subscription group picks the member that gets a message (§4.8.2 leaves the
/// choice to the server). The same strategy picks the shard on the publishing side and the
/// member on the chosen shard, so it holds across shards.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SharedStrategy {
    /// Uniformly random member (each shard picked in proportion to its members).
    Random,
    /// Members in turn: with one publishing shard every member gets one message per round.
    #[default]
    RoundRobin,
    /// The same member until it leaves the group or goes offline.
    Sticky,
    /// A member chosen by the hash of the publisher's client id: one publisher's messages
    /// always reach the same member while the group does not change.
    Hash,
}

impl SharedStrategy {
    /// The strategy named by the config value (`random`, `round_robin`, `sticky`, `hash`).
    pub fn from_name(name: &str) -> Option<Self> {
        Some(match name {
            "random" => SharedStrategy::Random,
            "round_robin" => SharedStrategy::RoundRobin,
            "sticky" => SharedStrategy::Sticky,
            "hash" => SharedStrategy::Hash,
            _ => return None,
        })
    }
}

/// Which message goes when an offline session's queue is over its bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum QueuePolicy {
    /// The oldest queued message makes room for the new one (fresh data wins).
    #[default]
    DropOldest,
    /// The new message is refused; what was queued first is kept.
    DropNewest,
}

impl QueuePolicy {
    /// The policy named by the config value (`drop_oldest`, `drop_newest`).
    pub fn from_name(name: &str) -> Option<Self> {
        Some(match name {
            "drop_oldest" => QueuePolicy::DropOldest,
            "drop_newest" => QueuePolicy::DropNewest,
            _ => return None,
        })
    }
}

/// Per-shard view of the broker limits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardConfig {
    /// Record client connect/disconnect events for the broker to publish under `$SYS`.
    pub client_events: bool,
    /// Largest whole packet accepted from a client, bytes (v5: advertised as Maximum Packet Size).
    pub max_packet_size: u32,
    /// Outgoing QoS 1/2 window per client (v5: min with the client's Receive Maximum).
    pub max_inflight: u16,
    /// Incoming QoS 2 messages awaiting PUBREL we accept from a v5 client, advertised as
    /// Receive Maximum; one more is answered with DISCONNECT 0x93.
    pub receive_maximum: u16,
    /// Topic Alias Maximum advertised to v5 clients, and the most aliases used towards a
    /// client (with the client's own maximum). 0 disables topic aliases both ways.
    pub topic_alias_maximum: u16,
    /// Messages queued per session beyond the inflight window. Online, publishers feeding
    /// the queue are paused at 3/4 of it (back-pressure); offline it is a hard bound.
    pub max_queued_messages: usize,
    /// What an offline session whose queue is full drops.
    pub offline_queue_policy: QueuePolicy,
    /// A subscriber that holds publishers back and makes no progress (no acknowledgement,
    /// no byte taken by its socket) for this long is disconnected (v5: 0x97), ms.
    pub stuck_timeout_ms: u64,
    /// Client QoS 1/2 messages this shard may have under way to each other shard with their
    /// acknowledgement already sent (credit the receiver returns once it queued them).
    /// Beyond it an acknowledgement waits for the other shard's confirmation.
    pub link_credit: u32,
    pub max_subscriptions_per_client: usize,
    pub max_topic_levels: usize,
    /// Ceiling on a client's keepalive, seconds (v5: advertised as Server Keep Alive).
    pub max_keepalive: u16,
    /// Milliseconds a new connection has to complete CONNECT (and any AUTH exchange).
    pub connect_timeout_ms: u64,
    pub max_client_id_len: usize,
    pub allow_anonymous: bool,
    /// Ceiling on a v5 Session Expiry Interval, seconds.
    pub max_session_expiry: u32,
    /// Offline persistent sessions kept on this shard at most; beyond it the oldest is dropped.
    pub max_offline_sessions: usize,
    /// Longest a message is kept for delivery, seconds; also caps a Message Expiry Interval.
    /// 0 = no limit. A message that had no expiry property is not given one on the wire.
    pub max_message_expiry: u32,
    pub max_retained_messages: usize,
    pub max_retained_bytes: usize,
    /// Bytes of unsent output a connection may hold before QoS 0 deliveries to it are dropped.
    pub max_pending_write_bytes: usize,
    /// How shared subscription groups pick a member.
    pub shared_strategy: SharedStrategy,
}

impl Default for ShardConfig {
    fn default() -> Self {
        ShardConfig {
            client_events: false,
            max_packet_size: 1024 * 1024,
            max_inflight: 256,
            receive_maximum: 1024,
            topic_alias_maximum: 64,
            max_queued_messages: 1000,
            offline_queue_policy: QueuePolicy::DropOldest,
            stuck_timeout_ms: 30_000,
            link_credit: 256,
            max_subscriptions_per_client: 100,
            max_topic_levels: 32,
            max_keepalive: u16::MAX,
            connect_timeout_ms: 10_000,
            max_client_id_len: 256,
            allow_anonymous: true,
            max_session_expiry: u32::MAX,
            max_offline_sessions: 1_000_000,
            max_message_expiry: 0,
            max_retained_messages: 1_000_000,
            max_retained_bytes: 1 << 30,
            max_pending_write_bytes: 512 * 1024,
            shared_strategy: SharedStrategy::RoundRobin,
        }
    }
}
