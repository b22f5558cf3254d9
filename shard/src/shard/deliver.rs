//! Outgoing messages: routing a publish to local sessions and other shards, the per-session
//! QoS 1/2 window, and retained-message look-ups.

use super::Shard;
use crate::ids::{retained_shard, ConnId, SessionKey, ShardId};
use crate::message::SharedMessage;
use crate::routes::ShardSet;
use crate::session::{Delivery, Inflight, InflightState};
use crate::shard_msg::ShardMsg;
use codec::{ByteStr, Packet, PacketId, Publish, QoS};
use std::num::NonZeroU32;

impl Shard {
    /// Routes `msg` to every subscriber: local sessions directly, and ONE message to each
    /// other shard that has a matching route. Returns whether any route matched.
    pub(super) fn route(
        &mut self,
        now_ms: u64,
        msg: &SharedMessage,
        publisher: Option<SessionKey>,
    ) -> bool {
        let mut shards = ShardSet::default();
        self.routes.match_topic(&msg.topic, &mut shards);
        let mut matched = false;
        for s in shards.iter() {
            matched = true;
            let to = s;
            if to == self.id {
                self.deliver_local(now_ms, msg, publisher);
            } else {
                self.outbox.push(to, ShardMsg::Publish(msg.clone()));
            }
        }
        matched
    }

    /// Delivers `msg` to this shard's matching sessions, one copy per session at the highest
    /// granted QoS of its overlapping subscriptions [MQTT-3.3.5-1].
    pub(super) fn deliver_local(
        &mut self,
        now_ms: u64,
        msg: &SharedMessage,
        publisher: Option<SessionKey>,
    ) {
        let mut out = std::mem::take(&mut self.scratch);
        self.subs.match_topic(&msg.topic, publisher, &mut out);
        for d in out.drain(..) {
            let delivery = Delivery {
                msg: msg.clone(),
                qos: msg.qos.min(d.qos),
                // [MQTT-3.3.1-9]: established subscriptions get RETAIN 0 unless v5 asks otherwise.
                retain: msg.retain && d.retain_as_published,
                subscription_ids: d.subscription_ids.iter().copied().collect(),
            };
            self.deliver_to_session(now_ms, d.key, delivery);
        }
        self.scratch = out;
    }

    /// Hands one delivery to a session: QoS 0 straight to an online connection, QoS 1/2
    /// through the queue and the window. Every drop is counted on the session.
    pub(super) fn deliver_to_session(&mut self, now_ms: u64, key: SessionKey, d: Delivery) {
        let max_queued = self.cfg.max_queued_messages;
        let max_pending = self.cfg.max_pending_write_bytes;
        let Some(s) = self.sessions.get_mut(key.slot, key.gen) else {
            return;
        };
        if d.qos == QoS::AtMostOnce {
            let Some(conn) = s.conn else { return }; // not queued offline (as Mosquitto)
            let pending = self
                .conns
                .get(conn.slot, conn.gen)
                .map_or(0, |c| c.out.len());
            if pending > max_pending {
                s.stats.dropped_slow_consumer += 1;
                self.stats.messages_dropped += 1;
                return;
            }
            let p = self.publish_packet(now_ms, conn, &d, None, false);
            if self.send(conn, &Packet::Publish(p)) {
                self.stats.messages_sent += 1;
            } else {
                self.stats.messages_dropped += 1;
            }
            return;
        }
        if s.enqueue(d, max_queued).is_err() {
            self.stats.messages_dropped += 1;
            return;
        }
        self.pump(now_ms, key);
    }

    /// Moves queued messages into the window while the session is online and has room.
    pub(super) fn pump(&mut self, now_ms: u64, key: SessionKey) {
        loop {
            let Some(s) = self.sessions.get_mut(key.slot, key.gen) else {
                return;
            };
            let Some(conn) = s.conn else { return };
            let window = self
                .conns
                .get(conn.slot, conn.gen)
                .map_or(0, |c| c.send_window) as usize;
            if s.inflight.len() >= window {
                return;
            }
            let Some(d) = s.queue.pop_front() else { return };
            if d.msg.is_expired(now_ms) {
                s.stats.dropped_expired += 1;
                self.stats.messages_dropped += 1;
                continue;
            }
            if d.qos == QoS::AtMostOnce {
                let p = self.publish_packet(now_ms, conn, &d, None, false);
                self.send(conn, &Packet::Publish(p));
                continue;
            }
            let Some(id) = s.alloc_packet_id() else {
                return;
            };
            s.inflight.push_back(Inflight {
                packet_id: id,
                state: InflightState::Sent,
                delivery: d.clone(),
            });
            let p = self.publish_packet(now_ms, conn, &d, Some(id), false);
            if !self.send(conn, &Packet::Publish(p)) {
                // Larger than the client accepts: discarded as if delivered [MQTT-3.1.2-25].
                if let Some(s) = self.sessions.get_mut(key.slot, key.gen) {
                    s.inflight.retain(|f| f.packet_id != id);
                    s.stats.dropped_slow_consumer += 1;
                }
                self.stats.messages_dropped += 1;
            }
        }
    }

    /// Builds the PUBLISH a subscriber receives for `d`.
    pub(super) fn publish_packet(
        &self,
        now_ms: u64,
        conn: ConnId,
        d: &Delivery,
        packet_id: Option<PacketId>,
        dup: bool,
    ) -> Publish {
        let v5 = self
            .conns
            .get(conn.slot, conn.gen)
            .is_some_and(|c| c.version.is_v5());
        let mut properties = match (&d.msg.properties, v5) {
            (Some(p), true) => (**p).clone(),
            _ => Default::default(),
        };
        if v5 {
            properties.subscription_identifiers = d.subscription_ids.clone();
            if let Some(t) = d.msg.expires_at_ms {
                // Forward the remaining lifetime [MQTT-3.3.2-6].
                properties.message_expiry_interval = Some((t.saturating_sub(now_ms) / 1000) as u32);
            }
        }
        Publish {
            dup,
            qos: d.qos,
            retain: d.retain,
            topic: d.msg.topic.clone(),
            packet_id,
            properties,
            payload: d.msg.payload.clone(),
        }
    }

    /// Stores or deletes a retained message in this shard's partition.
    pub(super) fn apply_retained(&mut self, msg: SharedMessage) {
        let topic = msg.topic.clone();
        if msg.payload.is_empty() {
            // A zero-byte retained message deletes the topic's retained message [MQTT-3.3.1-10].
            self.retained.set(&topic, None).ok();
        } else if self.retained.set(&topic, Some(msg)).is_err() {
            self.stats.messages_dropped += 1;
        }
    }

    /// Starts delivery of retained messages matching `filter` to a session: from this
    /// shard's partition, and by query from the others when the filter can match topics
    /// that live elsewhere.
    pub(super) fn query_retained(
        &mut self,
        now_ms: u64,
        session: SessionKey,
        filter: ByteStr,
        granted: QoS,
        sub_id: Option<NonZeroU32>,
    ) {
        let wildcard = filter.contains(['+', '#']);
        let owner = retained_shard(&filter, self.nr_shards);
        for i in 0..self.nr_shards {
            let to = ShardId(i as u16);
            if !wildcard && to != owner {
                continue;
            }
            if to == self.id {
                let msgs = self.local_retained(&filter);
                self.deliver_retained(now_ms, session, &filter, granted, sub_id, msgs);
            } else {
                self.outbox.push(
                    to,
                    ShardMsg::RetainedQuery {
                        filter: filter.clone(),
                        session,
                        granted,
                        sub_id,
                    },
                );
            }
        }
    }

    pub(super) fn local_retained(&self, filter: &str) -> Vec<SharedMessage> {
        let mut msgs = Vec::new();
        self.retained
            .for_each_matching(filter, |_, m: &SharedMessage| msgs.push(m.clone()));
        msgs
    }

    /// Queues retained messages for a subscription that still exists, RETAIN flag set
    /// [MQTT-3.3.1-8].
    pub(super) fn deliver_retained(
        &mut self,
        now_ms: u64,
        session: SessionKey,
        filter: &ByteStr,
        granted: QoS,
        sub_id: Option<NonZeroU32>,
        msgs: Vec<SharedMessage>,
    ) {
        let subscribed = self
            .sessions
            .get(session.slot, session.gen)
            .is_some_and(|s| s.subscriptions.contains(filter));
        if !subscribed {
            return;
        }
        for msg in msgs {
            if msg.is_expired(now_ms) {
                continue;
            }
            let d = Delivery {
                qos: msg.qos.min(granted),
                retain: true,
                subscription_ids: sub_id.into_iter().collect(),
                msg,
            };
            self.deliver_to_session(now_ms, session, d);
        }
    }
}
