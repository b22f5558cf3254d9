//! A client's session state: what survives a disconnect for a persistent session.
//!
//! Owns the outgoing QoS 1/2 window (inflight), the queue behind it, the incoming QoS 2
//! packet ids awaiting PUBREL, and the list of the client's subscriptions. It knows nothing
//! of sockets or other shards; `outflow` turns its queue into frames for a connection.

use crate::ids::{ConnId, SessionKey};
use crate::message::SharedMessage;
use codec::{ByteStr, LastWill, PacketId, ProtocolVersion, QoS};
use std::collections::VecDeque;
use std::num::NonZeroU32;
use std::sync::Arc;

/// The state of one outgoing QoS 1/2 message in the window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InflightState {
    /// PUBLISH sent; awaiting PUBACK (QoS 1) or PUBREC (QoS 2).
    Sent,
    /// PUBREC received and PUBREL sent; awaiting PUBCOMP.
    Released,
}

/// A message owed to the client, with the delivery options of its subscription.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub msg: SharedMessage,
    pub qos: QoS,
    pub retain: bool,
    pub subscription_ids: Vec<NonZeroU32>,
    /// Set when the message came through a shared subscription: if this member leaves before
    /// the message is sent, it goes to another member of the group.
    pub shared: Option<Arc<SharedTag>>,
}

/// A shared subscription `$share/{group}/{filter}`, shared by reference by every delivery
/// that came through it.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct SharedTag {
    pub group: ByteStr,
    pub filter: ByteStr,
}

#[derive(Debug, Clone)]
pub struct Inflight {
    pub packet_id: PacketId,
    pub state: InflightState,
    pub delivery: Delivery,
}

/// Why a message bound for a session was not kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropReason {
    QueueFull,
    SlowConsumer,
    Expired,
    /// Larger than the client's Maximum Packet Size [MQTT-3.1.2-25].
    TooLarge,
}

/// Per-session counters exposed in metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SessionStats {
    pub dropped_queue_full: u64,
    pub dropped_slow_consumer: u64,
    pub dropped_expired: u64,
    pub dropped_too_large: u64,
}

/// One client's session, on its home shard.
#[derive(Debug)]
pub struct Session {
    pub key: SessionKey,
    pub client_id: ByteStr,
    /// User name of the last CONNECT, for authorization checks.
    pub username: Option<Box<str>>,
    pub version: ProtocolVersion,
    /// The connection currently attached, if online.
    pub conn: Option<ConnId>,
    /// Session expiry, seconds after disconnect; 0 ends the session at disconnect.
    pub expiry_secs: u32,
    /// Bumped at each attach/detach so stale expiry timers are ignored.
    pub epoch: u32,
    pub will: Option<Box<LastWill>>,
    /// Full filters as subscribed (with `$share/` prefix), for cleanup and persistence.
    pub subscriptions: Vec<ByteStr>,
    pub inflight: VecDeque<Inflight>,
    pub queue: VecDeque<Delivery>,
    /// Incoming QoS 2 packet ids: PUBREC sent, PUBREL not yet received.
    pub incoming_qos2: Vec<u16>,
    next_packet_id: u16,
    pub stats: SessionStats,
}

impl Session {
    pub fn new(key: SessionKey, client_id: ByteStr, version: ProtocolVersion) -> Self {
        Session {
            key,
            client_id,
            username: None,
            version,
            conn: None,
            expiry_secs: 0,
            epoch: 0,
            will: None,
            subscriptions: Vec::new(),
            inflight: VecDeque::new(),
            queue: VecDeque::new(),
            incoming_qos2: Vec::new(),
            next_packet_id: 1,
            stats: SessionStats::default(),
        }
    }

    /// A packet id not used by any inflight message. `None` only if all 65,535 are in use,
    /// which the window size prevents.
    pub fn alloc_packet_id(&mut self) -> Option<PacketId> {
        for _ in 0..u16::MAX {
            let id = self.next_packet_id;
            self.next_packet_id = if id == u16::MAX { 1 } else { id + 1 };
            if !self.inflight.iter().any(|f| f.packet_id.get() == id) {
                return PacketId::new(id);
            }
        }
        None
    }

    /// Queues a QoS 1/2 delivery behind the window. QoS 0 entries are evicted first when the
    /// queue is full; with none to evict, the new message is refused.
    pub fn enqueue(&mut self, d: Delivery, max_queued: usize) -> Result<(), DropReason> {
        if self.queue.len() >= max_queued {
            if let Some(pos) = self.queue.iter().position(|q| q.qos == QoS::AtMostOnce) {
                self.queue.remove(pos);
                self.stats.dropped_queue_full += 1;
            } else if d.qos == QoS::AtMostOnce || max_queued > 0 {
                self.stats.dropped_queue_full += 1;
                return Err(DropReason::QueueFull);
            }
        }
        self.queue.push_back(d);
        Ok(())
    }

    /// Finds the inflight entry for `id`.
    pub fn inflight_pos(&self, id: PacketId) -> Option<usize> {
        self.inflight.iter().position(|f| f.packet_id == id)
    }

    /// Drops every queued message whose expiry passed, counting them; returns how many.
    /// Inflight messages are kept: their delivery has started [MQTT-3.3.2-5].
    pub fn drop_expired(&mut self, now_ms: u64) -> usize {
        let before = self.queue.len();
        self.queue.retain(|d| !d.msg.is_expired(now_ms));
        let n = before - self.queue.len();
        self.stats.dropped_expired += n as u64;
        n
    }

    /// Forgets everything a clean start discards.
    pub fn clear_state(&mut self) {
        self.inflight.clear();
        self.queue.clear();
        self.incoming_qos2.clear();
        self.next_packet_id = 1;
    }
}
