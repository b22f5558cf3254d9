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
    /// Message state, allocated on first use and freed when empty again (`release_idle`).
    flows: Option<Box<Flows>>,
    next_packet_id: u16,
    pub stats: SessionStats,
}

/// What only a session with messages under way needs: 88 bytes that an idle session (most
/// of a million) does without. Reached through `Session`'s methods.
#[derive(Debug, Default)]
pub struct Flows {
    pub inflight: VecDeque<Inflight>,
    pub queue: VecDeque<Delivery>,
    /// Incoming QoS 2 packet ids: PUBREC sent, PUBREL not yet received.
    pub incoming_qos2: Vec<u16>,
}

impl Flows {
    fn is_empty(&self) -> bool {
        self.inflight.is_empty() && self.queue.is_empty() && self.incoming_qos2.is_empty()
    }
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
            flows: None,
            next_packet_id: 1,
            stats: SessionStats::default(),
        }
    }

    fn flows_mut(&mut self) -> &mut Flows {
        self.flows.get_or_insert_with(Box::default)
    }

    /// Frees the message state when nothing is under way (called at quiet moments: the
    /// keepalive check and detach, not per message, so a busy session does not churn it).
    pub fn release_idle(&mut self) {
        if self.flows.as_ref().is_some_and(|f| f.is_empty()) {
            self.flows = None;
        }
    }

    /// Takes all message state out (the session is ending).
    pub fn take_flows(&mut self) -> Flows {
        self.flows.take().map(|b| *b).unwrap_or_default()
    }

    pub fn inflight(&self) -> impl Iterator<Item = &Inflight> {
        self.flows.iter().flat_map(|f| f.inflight.iter())
    }

    pub fn inflight_len(&self) -> usize {
        self.flows.as_ref().map_or(0, |f| f.inflight.len())
    }

    pub fn inflight_get(&self, pos: usize) -> Option<&Inflight> {
        self.flows.as_ref()?.inflight.get(pos)
    }

    pub fn inflight_get_mut(&mut self, pos: usize) -> Option<&mut Inflight> {
        self.flows.as_mut()?.inflight.get_mut(pos)
    }

    pub fn inflight_remove(&mut self, pos: usize) -> Option<Inflight> {
        self.flows.as_mut()?.inflight.remove(pos)
    }

    pub fn inflight_push(&mut self, f: Inflight) {
        self.flows_mut().inflight.push_back(f);
    }

    pub fn queue_len(&self) -> usize {
        self.flows.as_ref().map_or(0, |f| f.queue.len())
    }

    pub fn queue_pop_front(&mut self) -> Option<Delivery> {
        self.flows.as_mut()?.queue.pop_front()
    }

    pub fn queue_push_front(&mut self, d: Delivery) {
        self.flows_mut().queue.push_front(d);
    }

    /// Removes and returns the queued deliveries `take` selects, keeping the others in order.
    pub fn queue_take(&mut self, mut take: impl FnMut(&Delivery) -> bool) -> Vec<Delivery> {
        let Some(f) = self.flows.as_mut() else {
            return Vec::new();
        };
        let (taken, kept): (Vec<_>, Vec<_>) = f.queue.drain(..).partition(|d| take(d));
        f.queue = kept.into();
        taken
    }

    pub fn qos2_contains(&self, id: u16) -> bool {
        self.flows
            .as_ref()
            .is_some_and(|f| f.incoming_qos2.contains(&id))
    }

    pub fn qos2_len(&self) -> usize {
        self.flows.as_ref().map_or(0, |f| f.incoming_qos2.len())
    }

    pub fn qos2_push(&mut self, id: u16) {
        self.flows_mut().incoming_qos2.push(id);
    }

    /// Forgets an incoming QoS 2 id (PUBREL arrived); false when it was not known.
    pub fn qos2_remove(&mut self, id: u16) -> bool {
        let Some(f) = self.flows.as_mut() else {
            return false;
        };
        match f.incoming_qos2.iter().position(|&i| i == id) {
            Some(pos) => {
                f.incoming_qos2.swap_remove(pos);
                true
            }
            None => false,
        }
    }

    /// A packet id not used by any inflight message. `None` only if all 65,535 are in use,
    /// which the window size prevents.
    pub fn alloc_packet_id(&mut self) -> Option<PacketId> {
        for _ in 0..u16::MAX {
            let id = self.next_packet_id;
            self.next_packet_id = if id == u16::MAX { 1 } else { id + 1 };
            if !self.inflight().any(|f| f.packet_id.get() == id) {
                return PacketId::new(id);
            }
        }
        None
    }

    /// Queues a QoS 1/2 delivery behind the window. QoS 0 entries are evicted first when the
    /// queue is full; with none to evict, the new message is refused.
    pub fn enqueue(&mut self, d: Delivery, max_queued: usize) -> Result<(), DropReason> {
        let dropped = &mut self.stats.dropped_queue_full;
        let queue = &mut self.flows.get_or_insert_with(Box::default).queue;
        if queue.len() >= max_queued {
            if let Some(pos) = queue.iter().position(|q| q.qos == QoS::AtMostOnce) {
                queue.remove(pos);
                *dropped += 1;
            } else if d.qos == QoS::AtMostOnce || max_queued > 0 {
                *dropped += 1;
                return Err(DropReason::QueueFull);
            }
        }
        queue.push_back(d);
        Ok(())
    }

    /// Finds the inflight entry for `id`.
    pub fn inflight_pos(&self, id: PacketId) -> Option<usize> {
        self.inflight().position(|f| f.packet_id == id)
    }

    /// Drops every queued message whose expiry passed, counting them; returns how many.
    /// Inflight messages are kept: their delivery has started [MQTT-3.3.2-5].
    pub fn drop_expired(&mut self, now_ms: u64) -> usize {
        let Some(f) = self.flows.as_mut() else {
            return 0;
        };
        let before = f.queue.len();
        f.queue.retain(|d| !d.msg.is_expired(now_ms));
        let n = before - f.queue.len();
        self.stats.dropped_expired += n as u64;
        n
    }

    /// Forgets everything a clean start discards.
    pub fn clear_state(&mut self) {
        self.flows = None;
        self.next_packet_id = 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::Message;

    fn delivery(qos: QoS) -> Delivery {
        Delivery {
            msg: Arc::new(Message {
                topic: ByteStr::from("t"),
                payload: bytes::Bytes::from_static(b"p"),
                qos,
                retain: false,
                properties: None,
                expires_at_ms: None,
                publisher: None,
                origin: None,
            }),
            qos,
            retain: false,
            subscription_ids: Vec::new(),
            shared: None,
        }
    }

    fn session() -> Session {
        let key = SessionKey { slot: 0, gen: 0 };
        Session::new(key, ByteStr::from("c"), ProtocolVersion::V3_1_1)
    }

    #[test]
    fn message_state_is_allocated_on_use_and_released_only_when_drained() {
        let mut s = session();
        assert!(s.flows.is_none(), "a new session holds no message state");
        s.enqueue(delivery(QoS::AtLeastOnce), 10).unwrap();
        let id = s.alloc_packet_id().unwrap();
        let d = s.queue_pop_front().unwrap();
        s.inflight_push(Inflight {
            packet_id: id,
            state: InflightState::Sent,
            delivery: d,
        });
        s.qos2_push(7);
        s.release_idle();
        assert_eq!(
            (s.inflight_len(), s.qos2_len()),
            (1, 1),
            "kept while in use"
        );
        assert!(s.qos2_remove(7));
        assert!(!s.qos2_remove(7), "already gone");
        assert_eq!(s.inflight_pos(id), Some(0));
        assert!(s.inflight_remove(0).is_some());
        s.release_idle();
        assert!(s.flows.is_none(), "drained: released");
        assert_eq!(s.inflight_pos(id), None);
        assert_eq!(s.queue_pop_front().map(|d| d.qos), None);
    }

    #[test]
    fn a_full_queue_evicts_qos0_first_then_refuses() {
        let mut s = session();
        s.enqueue(delivery(QoS::AtMostOnce), 2).unwrap();
        s.enqueue(delivery(QoS::AtLeastOnce), 2).unwrap();
        s.enqueue(delivery(QoS::AtLeastOnce), 2).unwrap();
        assert_eq!(s.queue_len(), 2);
        assert_eq!(s.stats.dropped_queue_full, 1);
        assert_eq!(
            s.enqueue(delivery(QoS::AtLeastOnce), 2),
            Err(DropReason::QueueFull)
        );
        assert_eq!(s.stats.dropped_queue_full, 2);
        let taken = s.queue_take(|d| d.qos == QoS::AtLeastOnce);
        assert_eq!((taken.len(), s.queue_len()), (2, 0));
    }

    #[test]
    fn an_idle_session_is_small() {
        assert!(std::mem::size_of::<Session>() <= 160);
    }
}
