//! The limits a shard enforces, resolved from the broker's configuration at start-up.
//!
//! Plain values only: the broker validates and converts its TOML config into this, so the
//! shard never sees an unchecked setting.

/// Per-shard view of the broker limits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardConfig {
    /// Largest whole packet accepted from a client, bytes.
    pub max_packet_size: u32,
    /// Outgoing QoS 1/2 window per client (v5: min with the client's Receive Maximum).
    pub max_inflight: u16,
    /// Incoming QoS 1/2 window we advertise to v5 clients (Receive Maximum).
    pub receive_maximum: u16,
    /// Messages queued per session beyond the inflight window (offline or window full).
    pub max_queued_messages: usize,
    pub max_subscriptions_per_client: usize,
    pub max_topic_levels: usize,
    /// Ceiling on a client's keepalive, seconds (v5: advertised as Server Keep Alive).
    pub max_keepalive: u16,
    pub max_client_id_len: usize,
    pub allow_anonymous: bool,
    /// Ceiling on a v5 Session Expiry Interval, seconds.
    pub max_session_expiry: u32,
    /// Offline persistent sessions kept on this shard at most; beyond it the oldest is dropped.
    pub max_offline_sessions: usize,
    pub max_retained_messages: usize,
    pub max_retained_bytes: usize,
    /// Bytes of unsent output a connection may hold before QoS 0 deliveries to it are dropped.
    pub max_pending_write_bytes: usize,
}

impl Default for ShardConfig {
    fn default() -> Self {
        ShardConfig {
            max_packet_size: 1024 * 1024,
            max_inflight: 32,
            receive_maximum: 1024,
            max_queued_messages: 1000,
            max_subscriptions_per_client: 100,
            max_topic_levels: 32,
            max_keepalive: u16::MAX,
            max_client_id_len: 256,
            allow_anonymous: true,
            max_session_expiry: u32::MAX,
            max_offline_sessions: 1_000_000,
            max_retained_messages: 1_000_000,
            max_retained_bytes: 1 << 30,
            max_pending_write_bytes: 4 * 1024 * 1024,
        }
    }
}
