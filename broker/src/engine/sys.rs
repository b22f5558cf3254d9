//! `$SYS` statistics: every shard publishes its counters into its own row of a shared table
//! (relaxed atomics, written by that shard only); shard 0 sums the rows every
//! `sys.interval` seconds and publishes the totals as retained `$SYS/broker/...` messages.
//! A broadcast-and-reduce with no lock and no cross-shard message.
//!
//! Topic names follow Mosquitto's, so existing dashboards work unchanged.

use super::transport::{FailKind, FAIL_KINDS};
use shard::{ClientEvent, DropReason, Shard, ShardStats};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

/// One shard's counters, as last written by that shard.
#[derive(Default)]
pub struct Row {
    connections: AtomicU64,
    sessions: AtomicU64,
    retained: AtomicU64,
    subscriptions: AtomicU64,
    messages_received: AtomicU64,
    messages_sent: AtomicU64,
    messages_dropped: AtomicU64,
    drops: [AtomicU64; DropReason::ALL.len()],
    publisher_pauses: AtomicU64,
    stuck_disconnects: AtomicU64,
    auth_failures: AtomicU64,
    retained_refused: AtomicU64,
    mesh_dropped: AtomicU64,
    bytes_received: AtomicU64,
    bytes_sent: AtomicU64,
    refused: AtomicU64,
    transport_failed: [AtomicU64; FAIL_KINDS],
}

/// What a row holds, summed with `+=` across shards.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Totals {
    pub connections: u64,
    pub sessions: u64,
    pub retained: u64,
    pub subscriptions: u64,
    pub messages_received: u64,
    pub messages_sent: u64,
    pub messages_dropped: u64,
    /// Dropped messages by `DropReason`.
    pub drops: [u64; DropReason::ALL.len()],
    pub publisher_pauses: u64,
    pub stuck_disconnects: u64,
    /// CONNECTs refused for their credentials.
    pub auth_failures: u64,
    pub retained_refused: u64,
    /// Cross-shard messages discarded because their send failed for good.
    pub mesh_dropped: u64,
    pub bytes_received: u64,
    pub bytes_sent: u64,
    pub refused: u64,
    /// Connections closed because their transport failed, by `FailKind`.
    pub transport_failed: [u64; FAIL_KINDS],
}

impl std::ops::AddAssign for Totals {
    fn add_assign(&mut self, o: Totals) {
        self.connections += o.connections;
        self.sessions += o.sessions;
        self.retained += o.retained;
        self.subscriptions += o.subscriptions;
        self.messages_received += o.messages_received;
        self.messages_sent += o.messages_sent;
        self.messages_dropped += o.messages_dropped;
        for (a, b) in self.drops.iter_mut().zip(o.drops) {
            *a += b;
        }
        self.publisher_pauses += o.publisher_pauses;
        self.stuck_disconnects += o.stuck_disconnects;
        self.auth_failures += o.auth_failures;
        self.retained_refused += o.retained_refused;
        self.mesh_dropped += o.mesh_dropped;
        self.bytes_received += o.bytes_received;
        self.bytes_sent += o.bytes_sent;
        self.refused += o.refused;
        for (a, b) in self.transport_failed.iter_mut().zip(o.transport_failed) {
            *a += b;
        }
    }
}

/// What the engine (not the shard) counts, for one shard's row.
#[derive(Debug, Default, Clone, Copy)]
pub struct EngineCounts {
    pub bytes_received: u64,
    /// Connections closed at accept (`limits.max_connections`, or out of descriptors).
    pub refused: u64,
    pub mesh_dropped: u64,
    /// By `FailKind`.
    pub transport_failed: [u64; FAIL_KINDS],
}

/// The table of every shard's row.
#[derive(Clone)]
pub struct SysTable(Arc<Vec<Row>>);

impl SysTable {
    pub fn new(nr: usize) -> Self {
        SysTable(Arc::new((0..nr).map(|_| Row::default()).collect()))
    }

    /// Writes shard `id`'s row: the shard's own counters and the engine's.
    pub fn write(&self, id: usize, shard: &Shard, engine: EngineCounts) {
        let EngineCounts {
            bytes_received,
            refused,
            mesh_dropped,
            transport_failed,
        } = engine;
        let Some(r) = self.0.get(id) else { return };
        let s: ShardStats = shard.stats();
        r.connections.store(s.connections, Relaxed);
        r.sessions.store(s.sessions, Relaxed);
        r.retained.store(shard.retained_count() as u64, Relaxed);
        r.subscriptions
            .store(shard.subscription_count() as u64, Relaxed);
        r.messages_received.store(s.messages_received, Relaxed);
        r.messages_sent.store(s.messages_sent, Relaxed);
        r.messages_dropped.store(s.messages_dropped, Relaxed);
        for (a, b) in r.drops.iter().zip(s.drops.0) {
            a.store(b, Relaxed);
        }
        r.publisher_pauses.store(s.publisher_pauses, Relaxed);
        r.stuck_disconnects.store(s.stuck_disconnects, Relaxed);
        r.auth_failures.store(s.auth_failures, Relaxed);
        r.retained_refused.store(s.retained_refused, Relaxed);
        r.mesh_dropped.store(mesh_dropped, Relaxed);
        r.bytes_received.store(bytes_received, Relaxed);
        r.bytes_sent.store(s.bytes_sent, Relaxed);
        r.refused.store(refused, Relaxed);
        for (a, b) in r.transport_failed.iter().zip(transport_failed) {
            a.store(b, Relaxed);
        }
    }

    /// Sums every row.
    pub fn totals(&self) -> Totals {
        let mut t = Totals::default();
        for r in self.0.iter() {
            t += Totals {
                connections: r.connections.load(Relaxed),
                sessions: r.sessions.load(Relaxed),
                retained: r.retained.load(Relaxed),
                subscriptions: r.subscriptions.load(Relaxed),
                messages_received: r.messages_received.load(Relaxed),
                messages_sent: r.messages_sent.load(Relaxed),
                messages_dropped: r.messages_dropped.load(Relaxed),
                drops: std::array::from_fn(|i| r.drops[i].load(Relaxed)),
                publisher_pauses: r.publisher_pauses.load(Relaxed),
                stuck_disconnects: r.stuck_disconnects.load(Relaxed),
                auth_failures: r.auth_failures.load(Relaxed),
                retained_refused: r.retained_refused.load(Relaxed),
                mesh_dropped: r.mesh_dropped.load(Relaxed),
                bytes_received: r.bytes_received.load(Relaxed),
                bytes_sent: r.bytes_sent.load(Relaxed),
                refused: r.refused.load(Relaxed),
                transport_failed: std::array::from_fn(|i| r.transport_failed[i].load(Relaxed)),
            };
        }
        t
    }

    /// Connections per shard, for the per-shard load topics.
    pub fn per_shard_connections(&self) -> Vec<u64> {
        self.0.iter().map(|r| r.connections.load(Relaxed)).collect()
    }
}

/// The `$SYS` topics and payloads for one publication.
pub fn topics(
    t: &Totals,
    per_shard: &[u64],
    uptime_s: u64,
    max_connected: u64,
) -> Vec<(String, String)> {
    let failed = |k: FailKind| t.transport_failed[k as usize];
    let mut v = vec![
        (
            "$SYS/broker/version".into(),
            format!("ringmq {}", env!("CARGO_PKG_VERSION")),
        ),
        ("$SYS/broker/uptime".into(), format!("{uptime_s} seconds")),
        (
            "$SYS/broker/clients/connected".into(),
            t.connections.to_string(),
        ),
        (
            "$SYS/broker/clients/disconnected".into(),
            t.sessions.saturating_sub(t.connections).to_string(),
        ),
        (
            "$SYS/broker/clients/maximum".into(),
            max_connected.to_string(),
        ),
        ("$SYS/broker/clients/total".into(), t.sessions.to_string()),
        ("$SYS/broker/clients/refused".into(), t.refused.to_string()),
        (
            "$SYS/broker/clients/tls_failed".into(),
            (failed(FailKind::Tls) + failed(FailKind::HelloOnPlainPort)).to_string(),
        ),
        (
            "$SYS/broker/clients/auth_failed".into(),
            t.auth_failures.to_string(),
        ),
        (
            "$SYS/broker/clients/websocket_failed".into(),
            failed(FailKind::WebSocket).to_string(),
        ),
        (
            "$SYS/broker/clients/proxy_failed".into(),
            failed(FailKind::Proxy).to_string(),
        ),
        (
            "$SYS/broker/retained messages/count".into(),
            t.retained.to_string(),
        ),
        (
            "$SYS/broker/subscriptions/count".into(),
            t.subscriptions.to_string(),
        ),
        ("$SYS/broker/sessions/count".into(), t.sessions.to_string()),
        (
            "$SYS/broker/messages/received".into(),
            t.messages_received.to_string(),
        ),
        (
            "$SYS/broker/messages/sent".into(),
            t.messages_sent.to_string(),
        ),
        (
            "$SYS/broker/messages/dropped".into(),
            t.messages_dropped.to_string(),
        ),
        (
            "$SYS/broker/bytes/received".into(),
            t.bytes_received.to_string(),
        ),
        ("$SYS/broker/bytes/sent".into(), t.bytes_sent.to_string()),
        (
            "$SYS/broker/shards/count".into(),
            per_shard.len().to_string(),
        ),
    ];
    for r in DropReason::ALL {
        v.push((
            format!("$SYS/broker/messages/dropped/{}", r.name()),
            t.drops[r as usize].to_string(),
        ));
    }
    v.push((
        "$SYS/broker/messages/dropped/mesh".into(),
        t.mesh_dropped.to_string(),
    ));
    v.push((
        "$SYS/broker/publishers/paused".into(),
        t.publisher_pauses.to_string(),
    ));
    v.push((
        "$SYS/broker/clients/stuck_disconnected".into(),
        t.stuck_disconnects.to_string(),
    ));
    v.push((
        "$SYS/broker/retained messages/refused".into(),
        t.retained_refused.to_string(),
    ));
    for (i, c) in per_shard.iter().enumerate() {
        v.push((
            format!("$SYS/broker/shards/{i}/clients/connected"),
            c.to_string(),
        ));
    }
    v
}

/// The node name for client event topics: the configured one, else the host name.
pub fn node_name(configured: &str) -> String {
    if !configured.is_empty() {
        return configured.to_string();
    }
    let mut buf = [0u8; 256];
    // SAFETY: gethostname writes at most `len` bytes into the buffer.
    let ok = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) } == 0;
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    match (ok, std::str::from_utf8(&buf[..end])) {
        (true, Ok(h)) if !h.is_empty() => format!("ringmq@{h}"),
        _ => "ringmq".to_string(),
    }
}

/// Topic and JSON payload of a client event (EMQX-style). `None` when the client id cannot
/// appear in a topic name (it holds `+`, `#` or `/`... `/` would change the topic's shape).
pub fn client_event(node: &str, ev: &ClientEvent, now_ms: u64) -> Option<(String, String)> {
    let (id, kind, body) = match ev {
        ClientEvent::Connected {
            client_id,
            username,
            protocol,
            keep_alive,
            clean_start,
            session_present,
            peer,
        } => (
            client_id,
            "connected",
            serde_json::json!({
                "clientid": client_id.as_str(),
                "username": username.as_ref().map(|u| u.as_str()),
                "proto_ver": protocol,
                "keepalive": keep_alive,
                "clean_start": clean_start,
                "session_present": session_present,
                "ipaddress": peer.map(|p| p.ip().to_string()),
                "peername": peer.map(|p| p.to_string()),
                "ts": now_ms,
            }),
        ),
        ClientEvent::Disconnected { client_id, reason } => (
            client_id,
            "disconnected",
            serde_json::json!({ "clientid": client_id.as_str(), "reason": reason, "ts": now_ms }),
        ),
    };
    if id.contains(['+', '#', '/']) {
        return None;
    }
    Some((
        format!("$SYS/brokers/{node}/clients/{id}/{kind}"),
        body.to_string(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn totals_sum_rows_and_topics_carry_them() {
        let t = SysTable::new(2);
        let s = Shard::new(shard::ShardId(0), 2, Default::default());
        let engine = |bytes_received, refused, mesh_dropped| EngineCounts {
            bytes_received,
            refused,
            mesh_dropped,
            transport_failed: [refused * 10, refused, 0, 0],
        };
        t.write(0, &s, engine(100, 1, 0));
        t.write(1, &s, engine(50, 2, 4));
        let tot = t.totals();
        assert_eq!(tot.bytes_received, 150);
        assert_eq!(tot.refused, 3);
        assert_eq!(tot.mesh_dropped, 4);
        let topics = topics(&tot, &t.per_shard_connections(), 7, 9);
        let get = |k: &str| topics.iter().find(|(t, _)| t == k).map(|(_, v)| v.clone());
        assert_eq!(get("$SYS/broker/uptime").as_deref(), Some("7 seconds"));
        assert_eq!(get("$SYS/broker/bytes/received").as_deref(), Some("150"));
        assert_eq!(get("$SYS/broker/clients/maximum").as_deref(), Some("9"));
        assert_eq!(get("$SYS/broker/clients/tls_failed").as_deref(), Some("33"));
        assert_eq!(
            get("$SYS/broker/clients/websocket_failed").as_deref(),
            Some("0")
        );
        assert_eq!(
            get("$SYS/broker/clients/proxy_failed").as_deref(),
            Some("0")
        );
        assert_eq!(
            get("$SYS/broker/messages/dropped/mesh").as_deref(),
            Some("4")
        );
        for r in DropReason::ALL {
            let topic = format!("$SYS/broker/messages/dropped/{}", r.name());
            assert_eq!(get(&topic).as_deref(), Some("0"), "{topic}");
        }
        assert_eq!(
            get("$SYS/broker/shards/1/clients/connected").as_deref(),
            Some("0")
        );
    }
}
