//! Packets from a connected client: PUBLISH (topic aliases, incoming Receive Maximum,
//! authorization) and the acknowledgements in both directions, PINGREQ and DISCONNECT.
//! SUBSCRIBE and UNSUBSCRIBE are in `subscribe.rs`, AUTH in `auth.rs`.

use super::deliver::RouteOutcome;
use super::{Action, Shard};
use crate::ids::{retained_shard, ConnId, SessionKey};
use crate::message::Message;
use crate::session::InflightState;
use crate::shard_msg::ShardMsg;
use codec::{Disconnect, Packet, PubAck, Publish, QoS, ReasonCode};
use std::sync::Arc;

impl Shard {
    /// Handles one decoded packet from `conn`.
    pub fn handle_packet(&mut self, now_ms: u64, conn: ConnId, packet: Packet) {
        let Some(c) = self.conn_mut(conn) else { return };
        c.last_rx_ms = now_ms;
        let Some(key) = c.session else {
            match packet {
                Packet::Connect(connect) => self.handle_connect(now_ms, conn, connect),
                Packet::Auth(a) if self.auth_pending(conn) => self.on_auth(now_ms, conn, a),
                // The first packet must be CONNECT [MQTT-3.1.0-1]; during an authentication
                // exchange only AUTH may follow it (§4.12).
                _ if self.auth_pending(conn) => {
                    self.stats.protocol_errors += 1;
                    self.refuse(now_ms, conn, ReasonCode::ProtocolError);
                }
                _ => self.protocol_error(now_ms, conn, ReasonCode::ProtocolError),
            }
            return;
        };
        match packet {
            Packet::Publish(p) => self.on_publish(now_ms, conn, key, p),
            Packet::PubAck(a) => self.on_ack(now_ms, key, a, QoS::AtLeastOnce),
            Packet::PubRec(a) => self.on_pubrec(now_ms, conn, key, a),
            Packet::PubComp(a) => self.on_ack(now_ms, key, a, QoS::ExactlyOnce),
            Packet::PubRel(a) => self.on_pubrel(conn, key, a),
            Packet::Subscribe(s) => self.on_subscribe(now_ms, conn, key, s),
            Packet::Unsubscribe(u) => self.on_unsubscribe(now_ms, conn, key, u),
            Packet::PingReq => {
                self.send(conn, &Packet::PingResp);
            }
            Packet::Disconnect(d) => self.on_disconnect(now_ms, conn, key, d),
            Packet::Auth(a) => self.on_auth(now_ms, conn, a),
            // A client never sends these.
            Packet::Connect(_)
            | Packet::ConnAck(_)
            | Packet::SubAck(_)
            | Packet::UnsubAck(_)
            | Packet::PingResp => self.protocol_error(now_ms, conn, ReasonCode::ProtocolError),
        }
    }

    /// Closes `conn` for a protocol violation: v5 clients get a DISCONNECT with `code`
    /// first; the will is published [MQTT-4.8.0-1].
    pub fn protocol_error(&mut self, now_ms: u64, conn: ConnId, code: ReasonCode) {
        self.stats.protocol_errors += 1;
        self.close_conn(now_ms, conn, true, Some(code));
    }

    pub(super) fn is_v5(&self, conn: ConnId) -> bool {
        self.conns
            .get(conn.slot, conn.gen)
            .is_some_and(|c| c.version.is_v5())
    }

    fn on_disconnect(&mut self, now_ms: u64, conn: ConnId, key: SessionKey, d: Disconnect) {
        let v5 = self.is_v5(conn);
        if v5 {
            if let Some(exp) = d.properties.session_expiry_interval {
                let was_zero = self
                    .sessions
                    .get(key.slot, key.gen)
                    .is_some_and(|s| s.expiry_secs == 0);
                if was_zero && exp != 0 {
                    return self.close_conn_why(
                        now_ms,
                        conn,
                        ReasonCode::ProtocolError,
                        "session expiry set at DISCONNECT after 0 at CONNECT [MQTT-3.14.2-2]",
                    );
                }
                let cap = self.cfg.max_session_expiry;
                if let Some(s) = self.session_mut(key) {
                    s.expiry_secs = exp.min(cap);
                }
            }
        }
        // Only a normal DISCONNECT (0x00) discards the will [MQTT-3.14.4-3]; 0x04 and the
        // error codes publish it (§3.1.2.5).
        let publish_will = v5 && d.code != ReasonCode::Success;
        if !publish_will {
            if let Some(s) = self.session_mut(key) {
                s.will = None;
            }
        }
        self.close_conn(now_ms, conn, publish_will, None);
    }

    fn on_publish(&mut self, now_ms: u64, conn: ConnId, key: SessionKey, mut p: Publish) {
        if let Some(alias) = p.properties.topic_alias.take() {
            match self.resolve_alias(conn, alias, p.topic) {
                Ok(topic) => p.topic = topic,
                Err(()) => {
                    return self.close_conn_why(
                        now_ms,
                        conn,
                        ReasonCode::TopicAliasInvalid,
                        "topic alias 0, above the Topic Alias Maximum, or unknown (§3.3.2.3.4)",
                    )
                }
            }
        }
        if p.topic.is_empty() {
            return self.protocol_error(now_ms, conn, ReasonCode::TopicNameInvalid);
        }
        if p.topic.split('/').count() > self.cfg.max_topic_levels {
            return self.protocol_error(now_ms, conn, ReasonCode::TopicNameInvalid);
        }
        if !p.properties.subscription_identifiers.is_empty() {
            return self.close_conn_why(
                now_ms,
                conn,
                ReasonCode::ProtocolError,
                "a PUBLISH from a client carries no Subscription Identifier [MQTT-3.3.4-6]",
            );
        }
        self.stats.messages_received += 1;
        let v5 = self.is_v5(conn);
        let id = p.packet_id;
        // Only the broker publishes under `$SYS`: v5 learns 0x87, v3 is acknowledged and
        // the message dropped (counted in `publishes_refused`), as for a denied publish.
        let allowed = !super::connect::is_sys_topic(&p.topic)
            && self.authorized(key, Action::Publish, &p.topic);
        if !allowed {
            self.stats.publishes_refused += 1;
        }
        if p.qos == QoS::ExactlyOnce && allowed {
            let Some(id) = id else { return };
            let receive_max = self.cfg.receive_maximum as usize;
            let Some(s) = self.session_mut(key) else {
                return;
            };
            if s.qos2_contains(id.get()) {
                // A resent QoS 2 PUBLISH before PUBREL: acknowledge again, deliver once [MQTT-4.3.3-9].
                self.send(conn, &Packet::PubRec(PubAck::new(id)));
                return;
            }
            if v5 && s.qos2_len() >= receive_max {
                // QoS 1 is acknowledged at once, so only QoS 2 awaiting PUBREL counts.
                return self.close_conn_why(
                    now_ms,
                    conn,
                    ReasonCode::ReceiveMaximumExceeded,
                    "more unacknowledged QoS 2 PUBLISHes than Receive Maximum (§3.3.4)",
                );
            }
            s.qos2_push(id.get());
        }
        let token = self.take_token();
        let mut outcome = RouteOutcome {
            matched: true,
            ..Default::default()
        };
        let fixed = if allowed {
            let publisher = self.publisher_id(key);
            let props = p.properties;
            let expires_at_ms = self.expiry_deadline(now_ms, props.message_expiry_interval);
            // Slices of the read buffer: a copy that stays is detached (`Message::owned`).
            let msg = Arc::new(Message {
                topic: p.topic,
                payload: p.payload,
                qos: p.qos,
                retain: p.retain,
                properties: (!props.is_empty()).then(|| Box::new(props)),
                expires_at_ms,
                publisher,
                origin: (p.qos != QoS::AtMostOnce).then_some((self.id, conn)),
                owned: false,
            });
            if msg.retain {
                self.store_retained(msg.clone());
            }
            let confirm = id.map(|_| (conn, token));
            outcome = self.route(now_ms, &msg, Some(key), confirm);
            None
        } else {
            // v5 learns why; v3 gets a positive acknowledgement [MQTT-3.3.5-2].
            Some(ReasonCode::NotAuthorized)
        };
        let Some(id) = id else { return };
        self.acknowledge(now_ms, conn, token, (id, p.qos), fixed, outcome);
    }

    /// Sends a retained message to the shard owning its topic (or stores it here).
    pub(super) fn store_retained(&mut self, msg: crate::message::SharedMessage) {
        let owner = retained_shard(&msg.topic, self.nr_shards);
        if owner == self.id {
            self.apply_retained(msg);
        } else {
            self.outbox.push(owner, ShardMsg::Retain(msg));
        }
    }

    /// PUBACK (QoS 1) or PUBCOMP (QoS 2) for an outgoing message: frees its window slot.
    fn on_ack(&mut self, now_ms: u64, key: SessionKey, a: PubAck, qos: QoS) {
        let Some(s) = self.session_mut(key) else {
            return;
        };
        let found = s.inflight_pos(a.packet_id).and_then(|pos| {
            let f = s.inflight_get(pos)?;
            let expected = if qos == QoS::AtLeastOnce {
                f.delivery.qos == QoS::AtLeastOnce && f.state == InflightState::Sent
            } else {
                f.state == InflightState::Released
            };
            expected.then_some(pos)
        });
        if let Some(pos) = found {
            s.inflight_remove(pos);
            self.stats.messages_sent += 1;
            self.pump(now_ms, key);
        }
    }

    fn on_pubrec(&mut self, now_ms: u64, conn: ConnId, key: SessionKey, a: PubAck) {
        let v5 = self.is_v5(conn);
        let Some(s) = self.session_mut(key) else {
            return;
        };
        let mut rel = PubAck::new(a.packet_id);
        let pos = s.inflight_pos(a.packet_id);
        match pos.and_then(|p| s.inflight_get_mut(p)) {
            Some(f) if f.delivery.qos == QoS::ExactlyOnce => {
                if a.code.is_error() {
                    // The receiver refused it: the flow ends here, and a shared message is
                    // not offered to another member [MQTT-4.3.3-4], [MQTT-4.8.2-6].
                    if let Some(p) = pos {
                        s.inflight_remove(p);
                    }
                    self.pump(now_ms, key);
                    return;
                }
                f.state = InflightState::Released;
            }
            // v3 has no reason codes: a plain PUBREL lets the client finish the flow.
            _ if v5 => rel.code = ReasonCode::PacketIdentifierNotFound,
            _ => {}
        }
        self.send(conn, &Packet::PubRel(rel));
    }

    fn on_pubrel(&mut self, conn: ConnId, key: SessionKey, a: PubAck) {
        let v5 = self.is_v5(conn);
        let Some(s) = self.session_mut(key) else {
            return;
        };
        let mut comp = PubAck::new(a.packet_id);
        if !s.qos2_remove(a.packet_id.get()) && v5 {
            // v3 has no reason codes: a plain PUBCOMP, so a client that resends PUBREL after
            // losing our PUBCOMP can free its packet id.
            comp.code = ReasonCode::PacketIdentifierNotFound;
        }
        self.send(conn, &Packet::PubComp(comp));
    }
}
