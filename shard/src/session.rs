//! A client's session state: what survives a disconnect for a persistent session.
//!
//! Owns the outgoing QoS 1/2 window (inflight), the queue behind it, the incoming QoS 2
//! packet ids awaiting PUBREL, and the list of the client's subscriptions. It knows nothing
//! of sockets or other shards; `outflow` turns its queue into frames for a connection.

use crate::config::QueuePolicy;
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

/// Why a message bound for a session was not kept: the only drops MQTT allows, each
/// counted per session and per shard (`$SYS/broker/messages/dropped/<name>`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum DropReason {
    /// An offline session's queue was over `max_queued_messages` (the queue policy chose
    /// which message went), or a QoS 0 message was evicted from a full queue.
    QueueFull = 0,
    /// A QoS 0 message for a connection holding more unsent output than
    /// `max_pending_write_bytes`.
    SlowConsumer = 1,
    /// Its Message Expiry Interval passed before delivery [MQTT-3.3.2-5].
    Expired = 2,
    /// Larger than the client's Maximum Packet Size [MQTT-3.1.2-25].
    TooLarge = 3,
    /// A shared-subscription message whose group had no member left anywhere.
    NoSharedMember = 4,
    /// The session ended (clean session closed, expiry, takeover with clean start) with
    /// messages still queued or unacknowledged.
    SessionEnded = 5,
}

impl DropReason {
    pub const ALL: [DropReason; 6] = [
        DropReason::QueueFull,
        DropReason::SlowConsumer,
        DropReason::Expired,
        DropReason::TooLarge,
        DropReason::NoSharedMember,
        DropReason::SessionEnded,
    ];

    /// The name used in `$SYS` topics and metrics.
    pub fn name(self) -> &'static str {
        match self {
            DropReason::QueueFull => "queue_full",
            DropReason::SlowConsumer => "slow_consumer",
            DropReason::Expired => "expired",
            DropReason::TooLarge => "too_large",
            DropReason::NoSharedMember => "no_shared_member",
            DropReason::SessionEnded => "session_ended",
        }
    }
}

/// Dropped messages by reason (`DropReason` indexes it).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DropCounts<T>(pub [T; DropReason::ALL.len()]);

impl<T: Copy + Into<u64>> DropCounts<T> {
    pub fn get(&self, r: DropReason) -> u64 {
        self.0[r as usize].into()
    }

    pub fn total(&self) -> u64 {
        self.0.iter().map(|&n| n.into()).sum()
    }
}

impl DropCounts<u64> {
    pub fn add(&mut self, r: DropReason, n: u64) {
        self.0[r as usize] += n;
    }
}

impl DropCounts<u32> {
    pub fn add(&mut self, r: DropReason, n: u64) {
        let c = &mut self.0[r as usize];
        *c = c.saturating_add(n.min(u32::MAX as u64) as u32);
    }
}

impl std::ops::AddAssign for DropCounts<u64> {
    fn add_assign(&mut self, o: Self) {
        for (a, b) in self.0.iter_mut().zip(o.0) {
            *a += b;
        }
    }
}

/// Per-session counters exposed in metrics (u32: an idle session stays small).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SessionStats {
    pub dropped: DropCounts<u32>,
}

/// What `Session::enqueue` did with a delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Enqueued {
    Queued,
    /// Queued, and an older entry was dropped to make room.
    QueuedEvicting,
    /// Not queued: the queue is full and the policy keeps what it has.
    Refused,
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
    /// Retained messages owed to new subscriptions, fed to the queue (QoS 1/2) or the
    /// socket (QoS 0) as the client takes them.
    pub retained: VecDeque<Delivery>,
}

impl Flows {
    fn is_empty(&self) -> bool {
        self.inflight.is_empty()
            && self.queue.is_empty()
            && self.incoming_qos2.is_empty()
            && self.retained.is_empty()
    }

    /// Messages this state still owes the client (queued, unacknowledged or retained).
    pub fn pending(&self) -> usize {
        self.inflight.len() + self.queue.len() + self.retained.len()
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

    pub fn retained_push_back(&mut self, d: Delivery) {
        self.flows_mut().retained.push_back(d);
    }

    pub fn retained_pop_front(&mut self) -> Option<Delivery> {
        self.flows.as_mut()?.retained.pop_front()
    }

    /// QoS of the next pending retained message, if any.
    pub fn retained_front_qos(&self) -> Option<QoS> {
        self.flows.as_ref()?.retained.front().map(|d| d.qos)
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

    /// Queues a delivery behind the window. While the session is online a QoS 1/2
    /// delivery is always taken: the bound is kept by pausing the publishers that feed the
    /// queue (`shard::throttle`), so nothing acknowledged is dropped. Offline, or for QoS 0,
    /// `max_queued` holds: a QoS 0 entry is evicted first, then `policy` decides between the
    /// oldest entry and the new one.
    pub fn enqueue(&mut self, d: Delivery, max_queued: usize, policy: QueuePolicy) -> Enqueued {
        let online = self.conn.is_some();
        let queue = &mut self.flows.get_or_insert_with(Box::default).queue;
        let mut out = Enqueued::Queued;
        if queue.len() >= max_queued && !(online && d.qos != QoS::AtMostOnce) {
            if let Some(pos) = queue.iter().position(|q| q.qos == QoS::AtMostOnce) {
                queue.remove(pos);
                out = Enqueued::QueuedEvicting;
            } else if d.qos == QoS::AtMostOnce || policy == QueuePolicy::DropNewest {
                return Enqueued::Refused;
            } else if queue.pop_front().is_some() {
                out = Enqueued::QueuedEvicting;
            } else {
                return Enqueued::Refused; // a bound of 0 keeps nothing offline
            }
        }
        queue.push_back(d);
        out
    }

    /// Finds the inflight entry for `id`.
    pub fn inflight_pos(&self, id: PacketId) -> Option<usize> {
        self.inflight().position(|f| f.packet_id == id)
    }

    /// Drops every queued message whose expiry passed; returns how many (the shard counts
    /// them).
    /// Inflight messages are kept: their delivery has started [MQTT-3.3.2-5].
    pub fn drop_expired(&mut self, now_ms: u64) -> usize {
        let Some(f) = self.flows.as_mut() else {
            return 0;
        };
        let before = f.queue.len();
        f.queue.retain(|d| !d.msg.is_expired(now_ms));
        before - f.queue.len()
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
                owned: false,
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
        s.enqueue(delivery(QoS::AtLeastOnce), 10, QueuePolicy::DropOldest);
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
    fn offline_a_full_queue_evicts_qos0_first_then_follows_the_policy() {
        let mut s = session();
        let newest = QueuePolicy::DropNewest;
        assert_eq!(
            s.enqueue(delivery(QoS::AtMostOnce), 2, newest),
            Enqueued::Queued
        );
        assert_eq!(
            s.enqueue(delivery(QoS::AtLeastOnce), 2, newest),
            Enqueued::Queued
        );
        assert_eq!(
            s.enqueue(delivery(QoS::AtLeastOnce), 2, newest),
            Enqueued::QueuedEvicting,
            "the QoS 0 entry made room"
        );
        assert_eq!(s.queue_len(), 2);
        assert_eq!(
            s.enqueue(delivery(QoS::AtLeastOnce), 2, newest),
            Enqueued::Refused
        );
        assert_eq!(
            s.enqueue(delivery(QoS::AtLeastOnce), 2, QueuePolicy::DropOldest),
            Enqueued::QueuedEvicting
        );
        assert_eq!(s.queue_len(), 2);
        let taken = s.queue_take(|d| d.qos == QoS::AtLeastOnce);
        assert_eq!((taken.len(), s.queue_len()), (2, 0));
    }

    #[test]
    fn online_qos1_is_always_taken_and_qos0_is_bounded() {
        let mut s = session();
        s.conn = Some(ConnId { slot: 0, gen: 0 });
        for _ in 0..5 {
            let r = s.enqueue(delivery(QoS::AtLeastOnce), 2, QueuePolicy::DropNewest);
            assert_eq!(r, Enqueued::Queued);
        }
        assert_eq!(s.queue_len(), 5, "back-pressure, not the queue, bounds it");
        let r = s.enqueue(delivery(QoS::AtMostOnce), 2, QueuePolicy::DropOldest);
        assert_eq!(r, Enqueued::Refused);
    }

    #[test]
    fn an_idle_session_is_small() {
        assert!(std::mem::size_of::<Session>() <= 160);
    }
}
