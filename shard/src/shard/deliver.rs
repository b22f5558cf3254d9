//! Outgoing messages: routing a publish to local sessions and other shards, the per-session
//! QoS 1/2 window, and retained-message look-ups.

use super::Shard;
use crate::ids::{retained_shard, ConnId, SessionKey, ShardId};
use crate::message::SharedMessage;
use crate::routes::ShardSet;
use crate::session::{Delivery, DropReason, Enqueued, Inflight, InflightState};
use crate::shard_msg::ShardMsg;
use codec::{ByteStr, PacketId, Publish, QoS};
use std::num::NonZeroU32;

/// Where a publish went, for the publisher's acknowledgement.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct RouteOutcome {
    /// Some subscription (plain or shared) matched: otherwise 0x10 No matching subscribers.
    pub matched: bool,
    /// Some copy went to another shard, whose queues this shard cannot see.
    pub remote: bool,
    /// Local sessions that took a copy, and that refused one (queue full).
    pub accepted: u32,
    pub refused: u32,
    /// Other shards asked to confirm (`ShardMsg::PublishConfirm`, or a shared dispatch's
    /// `confirm`).
    pub awaiting: u16,
}

impl RouteOutcome {
    /// Every subscriber this shard could see refused the message and none is elsewhere:
    /// the publisher gets 0x97 Quota exceeded.
    pub(super) fn all_refused(&self) -> bool {
        self.matched && !self.remote && self.accepted == 0 && self.refused > 0
    }
}

impl Shard {
    /// Routes `msg` to every subscriber: local sessions directly, ONE message to each other
    /// shard that has a matching route, and one member of each matching shared subscription.
    /// With `confirm` (a client's QoS 1/2 PUBLISH: its connection and a token) a message to
    /// another shard goes on the link's credit, or, with none left, asks that shard to
    /// answer `Delivered`, counted in `awaiting` (see `credit` and `acks`).
    pub(super) fn route(
        &mut self,
        now_ms: u64,
        msg: &SharedMessage,
        publisher: Option<SessionKey>,
        confirm: Option<(ConnId, u64)>,
    ) -> RouteOutcome {
        let mut shards = ShardSet::default();
        self.routes.match_topic(&msg.topic, &mut shards);
        let mut out = RouteOutcome::default();
        for to in shards.iter() {
            out.matched = true;
            if to == self.id {
                let (a, r) = self.deliver_local(now_ms, msg, publisher);
                out.accepted += a;
                out.refused += r;
            } else if let Some((conn, token)) = confirm {
                let msg = msg.clone();
                if self.credit.take(to) {
                    out.remote = true;
                    self.outbox.push(to, ShardMsg::PublishCredited(msg));
                } else {
                    out.awaiting += 1;
                    self.outbox
                        .push(to, ShardMsg::PublishConfirm { msg, conn, token });
                }
            } else {
                out.remote = true;
                self.outbox.push(to, ShardMsg::Publish(msg.clone()));
            }
        }
        self.route_shared(now_ms, msg, confirm, &mut out);
        // The cached copy's original holds its read buffer: let both go.
        self.detached = None;
        out
    }

    /// Publishes a message the broker makes itself, e.g. `$SYS/...` statistics: routed like
    /// a client's PUBLISH (all shards, shared groups, retained partition) with no publisher.
    /// This is the hook for the `$SYS` publisher; topics starting with `$` are only matched
    /// by filters that name the `$` level [MQTT-4.7.2-1].
    pub fn publish_system(
        &mut self,
        now_ms: u64,
        topic: &str,
        payload: bytes::Bytes,
        qos: QoS,
        retain: bool,
    ) {
        let msg = std::sync::Arc::new(crate::message::Message {
            topic: ByteStr::from(topic),
            payload,
            qos,
            retain,
            properties: None,
            expires_at_ms: None,
            publisher: None,
            origin: None,
            owned: true,
        });
        if retain {
            self.store_retained(msg.clone());
        }
        self.route(now_ms, &msg, None, None);
    }

    /// Delivers `msg` to this shard's matching sessions, one copy per session at the highest
    /// granted QoS of its overlapping subscriptions [MQTT-3.3.5-1]. Returns how many
    /// sessions took it and how many refused it (queue full).
    pub(super) fn deliver_local(
        &mut self,
        now_ms: u64,
        msg: &SharedMessage,
        publisher: Option<SessionKey>,
    ) -> (u32, u32) {
        let mut out = std::mem::take(&mut self.scratch);
        self.subs.match_topic(&msg.topic, publisher, &mut out);
        let (mut accepted, mut refused) = (0, 0);
        let mut frames: [Option<bytes::Bytes>; 4] = Default::default();
        for d in out.drain(..) {
            let retain = msg.retain && d.retain_as_published;
            if msg.qos.min(d.qos) == QoS::AtMostOnce
                && d.subscription_ids.is_empty()
                && self.deliver_qos0_shared(now_ms, d.key, msg, retain, &mut frames)
            {
                accepted += 1;
                continue;
            }
            let delivery = Delivery {
                msg: msg.clone(),
                qos: msg.qos.min(d.qos),
                // [MQTT-3.3.1-9]: established subscriptions get RETAIN 0 unless v5 asks otherwise.
                retain: msg.retain && d.retain_as_published,
                subscription_ids: d.subscription_ids.iter().copied().collect(),
                shared: None,
            };
            match self.deliver_to_session(now_ms, d.key, delivery) {
                Ok(()) => accepted += 1,
                Err(_) => refused += 1,
            }
        }
        self.scratch = out;
        (accepted, refused)
    }

    /// Hands one delivery to a session: QoS 0 straight to an online connection, QoS 1/2
    /// through the queue and the window. Every drop is counted on the session; `Err` only
    /// when the session's queue refused it (the 0x97 Quota exceeded case).
    pub(super) fn deliver_to_session(
        &mut self,
        now_ms: u64,
        key: SessionKey,
        d: Delivery,
    ) -> Result<(), DropReason> {
        let max_queued = self.cfg.max_queued_messages;
        let max_pending = self.cfg.max_pending_write_bytes;
        let policy = self.cfg.offline_queue_policy;
        let Some(s) = self.sessions.get_mut(key.slot, key.gen) else {
            return Ok(());
        };
        if d.qos == QoS::AtMostOnce {
            let Some(conn) = s.conn else { return Ok(()) }; // not queued offline (as Mosquitto)
            let pending = self
                .conns
                .get(conn.slot, conn.gen)
                .map_or(0, |c| c.out.len());
            if pending > max_pending {
                self.count_drop(Some(key), DropReason::SlowConsumer, 1);
                return Ok(());
            }
            let p = self.publish_packet(now_ms, conn, &d, None, false);
            if self.send_publish(conn, p) {
                self.stats.messages_sent += 1;
            } else {
                self.count_drop(Some(key), DropReason::TooLarge, 1);
            }
            return Ok(());
        }
        let window = s
            .conn
            .and_then(|c| self.conns.get(c.slot, c.gen))
            .map_or(0, |c| c.send_window);
        let stays = s.queue_len() > 0 || s.inflight_len() >= usize::from(window);
        let mut d = d;
        if stays && !d.msg.owned {
            // It waits in the queue: its own bytes, not a slice of the read buffer.
            d.msg = self.owned_copy(&d.msg);
        }
        let Some(s) = self.sessions.get_mut(key.slot, key.gen) else {
            return Ok(());
        };
        let origin = d.msg.origin;
        match s.enqueue(d, max_queued, policy) {
            Enqueued::Queued => {}
            Enqueued::QueuedEvicting => self.count_drop(Some(key), DropReason::QueueFull, 1),
            Enqueued::Refused => {
                self.count_drop(Some(key), DropReason::QueueFull, 1);
                return Err(DropReason::QueueFull);
            }
        }
        self.pump_window(now_ms, key);
        self.note_backlog(now_ms, key, origin);
        Ok(())
    }

    /// `msg` with bytes of its own, made once per message however many queues take it.
    fn owned_copy(&mut self, msg: &SharedMessage) -> SharedMessage {
        match &self.detached {
            Some((orig, copy)) if std::sync::Arc::ptr_eq(orig, msg) => copy.clone(),
            _ => {
                let copy = std::sync::Arc::new(msg.detached());
                self.detached = Some((msg.clone(), copy.clone()));
                copy
            }
        }
    }

    /// The client acknowledged something: move its queue on, feed it pending retained
    /// messages, and resume the publishers it held back once its queue is low.
    pub(super) fn pump(&mut self, now_ms: u64, key: SessionKey) {
        self.pump_window(now_ms, key);
        if !self.throttled.is_empty() {
            self.note_progress(key);
            self.release_waiters(now_ms, key);
        }
        self.pump_retained(now_ms, key);
    }

    /// Moves queued messages into the window while the session is online and has room.
    /// Expired messages are dropped on the way [MQTT-3.3.2-5].
    pub(super) fn pump_window(&mut self, now_ms: u64, key: SessionKey) {
        loop {
            let Some(s) = self.sessions.get_mut(key.slot, key.gen) else {
                return;
            };
            let Some(conn) = s.conn else { return };
            let window = self
                .conns
                .get(conn.slot, conn.gen)
                .map_or(0, |c| c.send_window) as usize;
            if s.inflight_len() >= window {
                return;
            }
            let Some(d) = s.queue_pop_front() else { return };
            if d.msg.is_expired(now_ms) {
                self.count_drop(Some(key), DropReason::Expired, 1);
                continue;
            }
            if d.qos == QoS::AtMostOnce {
                let p = self.publish_packet(now_ms, conn, &d, None, false);
                if !self.send_publish(conn, p) {
                    self.count_drop(Some(key), DropReason::TooLarge, 1);
                }
                continue;
            }
            let Some(id) = s.alloc_packet_id() else {
                s.queue_push_front(d);
                return;
            };
            if self.send_queued_publish(now_ms, conn, &d, id) {
                if let Some(s) = self.sessions.get_mut(key.slot, key.gen) {
                    s.inflight_push(Inflight {
                        packet_id: id,
                        state: InflightState::Sent,
                        delivery: d,
                    });
                }
            } else {
                // Larger than the client accepts: discarded as if delivered [MQTT-3.1.2-25].
                self.count_drop(Some(key), DropReason::TooLarge, 1);
            }
        }
    }

    /// Feeds a session's pending retained messages to it as it takes them: QoS 1/2 into
    /// the queue while it is under the pause mark (more follow as the client
    /// acknowledges), QoS 0 while the connection holds under half of
    /// `max_pending_write_bytes` unsent (more follow as its socket takes output). Never
    /// truncated: a subscriber gets every retained message, at its own pace.
    pub(super) fn pump_retained(&mut self, now_ms: u64, key: SessionKey) {
        let high = self.high_watermark();
        let (max_queued, policy) = (self.cfg.max_queued_messages, self.cfg.offline_queue_policy);
        let max_pending = self.cfg.max_pending_write_bytes / 2;
        loop {
            let Some(s) = self.sessions.get_mut(key.slot, key.gen) else {
                return;
            };
            let Some(conn) = s.conn else { return };
            let Some(qos) = s.retained_front_qos() else {
                return;
            };
            if qos == QoS::AtMostOnce {
                let Some(c) = self.conns.get_mut(conn.slot, conn.gen) else {
                    return;
                };
                if c.out.len() > max_pending {
                    c.retained_waiting = true;
                    return;
                }
            } else if s.queue_len() >= high {
                return;
            }
            let Some(d) = s.retained_pop_front() else {
                return;
            };
            if d.msg.is_expired(now_ms) {
                self.count_drop(Some(key), DropReason::Expired, 1);
                continue;
            }
            if qos != QoS::AtMostOnce {
                // Online, so always taken; and under the mark, so it pauses no one.
                s.enqueue(d, max_queued, policy);
                self.pump_window(now_ms, key);
                continue;
            }
            let p = self.publish_packet(now_ms, conn, &d, None, false);
            if self.send_publish(conn, p) {
                self.stats.messages_sent += 1;
            } else {
                self.count_drop(Some(key), DropReason::TooLarge, 1);
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
        let to = Recipient {
            v5,
            qos: d.qos,
            retain: d.retain,
        };
        build_publish(now_ms, &d.msg, to, &d.subscription_ids, packet_id, dup)
    }

    /// The QoS 0 fast path of `deliver_local` for a subscription without identifiers: the
    /// frame is encoded once per (v5, RETAIN) and shared by every such subscriber of this
    /// call (`frames`), queued by reference. `false` when this subscriber needs the general
    /// path (outgoing topic aliases are per connection).
    fn deliver_qos0_shared(
        &mut self,
        now_ms: u64,
        key: SessionKey,
        msg: &SharedMessage,
        retain: bool,
        frames: &mut [Option<bytes::Bytes>; 4],
    ) -> bool {
        let Some(s) = self.sessions.get_mut(key.slot, key.gen) else {
            return true;
        };
        let Some(conn) = s.conn else { return true }; // not queued offline (as Mosquitto)
        let Some(c) = self.conns.get_mut(conn.slot, conn.gen) else {
            return false;
        };
        let v5 = c.version.is_v5();
        if v5 && c.out_alias_max != 0 {
            return false;
        }
        if c.out.len() > self.cfg.max_pending_write_bytes {
            self.count_drop(Some(key), DropReason::SlowConsumer, 1);
            return true;
        }
        let slot = &mut frames[usize::from(v5) * 2 + usize::from(retain)];
        if slot.is_none() {
            let to = Recipient {
                v5,
                qos: QoS::AtMostOnce,
                retain,
            };
            let p = build_publish(now_ms, msg, to, &[], None, false);
            *slot = codec::EncodedPublish::new(&p, c.version)
                .ok()
                .and_then(|e| e.frame());
        }
        let Some(frame) = slot.as_ref() else {
            return false;
        };
        if v5 && frame.len() > c.client_max_packet as usize {
            // Larger than the client accepts: discarded as if delivered [MQTT-3.1.2-25].
            self.stats.dropped_too_large += 1;
            self.count_drop(Some(key), DropReason::TooLarge, 1);
            return true;
        }
        c.out.push_shared(frame);
        self.stats.bytes_sent += frame.len() as u64;
        self.stats.messages_sent += 1;
        c.mark_dirty(&mut self.events);
        true
    }

    /// Stores (an owned copy of) or deletes a retained message in this shard's partition.
    pub(super) fn apply_retained(&mut self, msg: SharedMessage) {
        let msg = if msg.owned {
            msg
        } else {
            std::sync::Arc::new(msg.detached())
        };
        let topic = msg.topic.clone();
        if msg.payload.is_empty() {
            // A zero-byte retained message deletes the topic's retained message [MQTT-3.3.1-10].
            self.retained.set(&topic, None).ok();
        } else if self.retained.set(&topic, Some(msg)).is_err() {
            self.stats.retained_refused += 1;
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
                let msgs = self.local_retained(now_ms, &filter);
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

    /// The retained messages of this partition matching `filter`; expired ones are
    /// deleted instead (retained messages expire like any other [MQTT-3.3.2-5]).
    pub(super) fn local_retained(&mut self, now_ms: u64, filter: &str) -> Vec<SharedMessage> {
        let mut msgs = Vec::new();
        let mut expired = Vec::new();
        self.retained
            .for_each_matching(filter, |topic, m: &SharedMessage| {
                if m.is_expired(now_ms) {
                    expired.push(topic.to_string());
                } else {
                    msgs.push(m.clone());
                }
            });
        for topic in expired {
            self.retained.set(&topic, None).ok();
            self.stats.messages_expired += 1;
        }
        msgs
    }

    /// Queues retained messages for a subscription that still exists, RETAIN flag set
    /// [MQTT-3.3.1-8], behind the session's other pending retained messages
    /// (`pump_retained` paces them).
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
        let Some(s) = self.sessions.get_mut(session.slot, session.gen) else {
            return;
        };
        for msg in msgs {
            if msg.is_expired(now_ms) {
                continue;
            }
            s.retained_push_back(Delivery {
                qos: msg.qos.min(granted),
                retain: true,
                subscription_ids: sub_id.into_iter().collect(),
                shared: None,
                msg,
            });
        }
        self.pump_retained(now_ms, session);
    }
}

/// Who a PUBLISH is built for: protocol family, QoS and RETAIN flag.
#[derive(Debug, Clone, Copy)]
pub(super) struct Recipient {
    pub v5: bool,
    pub qos: QoS,
    pub retain: bool,
}

/// The PUBLISH for one recipient of `msg`.
pub(super) fn build_publish(
    now_ms: u64,
    msg: &crate::message::Message,
    to: Recipient,
    sub_ids: &[NonZeroU32],
    packet_id: Option<PacketId>,
    dup: bool,
) -> Publish {
    let mut properties = match (&msg.properties, to.v5) {
        (Some(p), true) => (**p).clone(),
        _ => Default::default(),
    };
    if to.v5 {
        properties.subscription_identifiers = sub_ids.to_vec();
        if let (Some(t), true) = (msg.expires_at_ms, msg.has_expiry_property()) {
            // Forward the remaining lifetime [MQTT-3.3.2-6], rounded up: a message still
            // deliverable never reads as 0 seconds left.
            let left_ms = t.saturating_sub(now_ms);
            properties.message_expiry_interval = Some(left_ms.div_ceil(1000) as u32);
        }
    }
    Publish {
        dup,
        qos: to.qos,
        retain: to.retain,
        topic: msg.topic.clone(),
        packet_id,
        properties,
        payload: msg.payload.clone(),
    }
}
