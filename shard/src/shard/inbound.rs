//! Packets from a connected client: PUBLISH and its acknowledgements in both directions,
//! SUBSCRIBE, UNSUBSCRIBE, PINGREQ and DISCONNECT.

use super::{PendingSub, Shard};
use crate::ids::{retained_shard, ConnId, SessionKey, ShardId};
use crate::message::Message;
use crate::session::InflightState;
use crate::shard_msg::ShardMsg;
use crate::subs::SubOptions;
use codec::{
    AckProperties, Packet, PubAck, Publish, QoS, ReasonCode, RetainHandling, SubAck, Subscribe,
    UnsubAck, Unsubscribe,
};
use std::sync::Arc;

impl Shard {
    /// Handles one decoded packet from `conn`.
    pub fn handle_packet(&mut self, now_ms: u64, conn: ConnId, packet: Packet) {
        let Some(c) = self.conn_mut(conn) else { return };
        c.last_rx_ms = now_ms;
        let Some(key) = c.session else {
            match packet {
                Packet::Connect(connect) => self.handle_connect(now_ms, conn, connect),
                // The first packet must be CONNECT [MQTT-3.1.0-1].
                _ => self.protocol_error(now_ms, conn, ReasonCode::ProtocolError),
            }
            return;
        };
        match packet {
            Packet::Publish(p) => self.on_publish(now_ms, conn, key, p),
            Packet::PubAck(a) => self.on_ack(now_ms, key, a, QoS::AtLeastOnce),
            Packet::PubRec(a) => self.on_pubrec(conn, key, a),
            Packet::PubComp(a) => self.on_ack(now_ms, key, a, QoS::ExactlyOnce),
            Packet::PubRel(a) => self.on_pubrel(conn, key, a),
            Packet::Subscribe(s) => self.on_subscribe(now_ms, conn, key, s),
            Packet::Unsubscribe(u) => self.on_unsubscribe(conn, key, u),
            Packet::PingReq => {
                self.send(conn, &Packet::PingResp);
            }
            Packet::Disconnect(d) => {
                let v5 = self
                    .conns
                    .get(conn.slot, conn.gen)
                    .is_some_and(|c| c.version.is_v5());
                let mut publish_will = false;
                if v5 {
                    if let Some(exp) = d.properties.session_expiry_interval {
                        let was_zero = self
                            .sessions
                            .get(key.slot, key.gen)
                            .is_some_and(|s| s.expiry_secs == 0);
                        if was_zero && exp != 0 {
                            // [MQTT-3.14.2-2]
                            return self.protocol_error(now_ms, conn, ReasonCode::ProtocolError);
                        }
                        let cap = self.cfg.max_session_expiry;
                        if let Some(s) = self.session_mut(key) {
                            s.expiry_secs = exp.min(cap);
                        }
                    }
                    publish_will = d.code == ReasonCode::DisconnectWithWillMessage;
                }
                if !publish_will {
                    // A normal DISCONNECT discards the will [MQTT-3.1.2-10].
                    if let Some(s) = self.session_mut(key) {
                        s.will = None;
                    }
                }
                self.close_conn(now_ms, conn, publish_will, None);
            }
            // A client never sends these, and AUTH needs an authentication method.
            Packet::Connect(_)
            | Packet::Auth(_)
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

    fn on_publish(&mut self, now_ms: u64, conn: ConnId, key: SessionKey, p: Publish) {
        if p.topic.is_empty() || p.properties.topic_alias.is_some() {
            // Topic Alias Maximum is advertised as 0 [MQTT-3.3.2-8].
            return self.protocol_error(now_ms, conn, ReasonCode::TopicAliasInvalid);
        }
        if p.topic.split('/').count() > self.cfg.max_topic_levels {
            return self.protocol_error(now_ms, conn, ReasonCode::TopicNameInvalid);
        }
        self.stats.messages_received += 1;
        let v5 = self
            .conns
            .get(conn.slot, conn.gen)
            .is_some_and(|c| c.version.is_v5());
        let id = p.packet_id;
        if p.qos == QoS::ExactlyOnce {
            let Some(id) = id else { return };
            let receive_max = self.cfg.receive_maximum as usize;
            let Some(s) = self.session_mut(key) else {
                return;
            };
            if s.incoming_qos2.contains(&id.get()) {
                // A resent QoS 2 PUBLISH before PUBREL: acknowledge again, deliver once [MQTT-4.3.3-9].
                self.send(conn, &Packet::PubRec(PubAck::new(id)));
                return;
            }
            if v5 && s.incoming_qos2.len() >= receive_max {
                return self.protocol_error(now_ms, conn, ReasonCode::ReceiveMaximumExceeded);
            }
            s.incoming_qos2.push(id.get());
        }
        let mut props = p.properties;
        let expires_at_ms = props
            .message_expiry_interval
            .map(|s| now_ms + s as u64 * 1000);
        props.topic_alias = None;
        props.subscription_identifiers.clear();
        let msg = Arc::new(Message {
            topic: p.topic,
            payload: p.payload,
            qos: p.qos,
            retain: p.retain,
            properties: (!props.is_empty()).then(|| Box::new(props)),
            expires_at_ms,
        });
        if msg.retain {
            self.store_retained(msg.clone());
        }
        let matched = self.route(now_ms, &msg, Some(key));
        if let Some(id) = id {
            let mut ack = PubAck::new(id);
            if v5 && !matched {
                ack.code = ReasonCode::NoMatchingSubscribers;
            }
            let pkt = if p.qos == QoS::AtLeastOnce {
                Packet::PubAck(ack)
            } else {
                Packet::PubRec(ack)
            };
            self.send(conn, &pkt);
        }
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
        if let Some(pos) = s.inflight_pos(a.packet_id) {
            let f = &s.inflight[pos];
            let expected = if qos == QoS::AtLeastOnce {
                f.delivery.qos == QoS::AtLeastOnce && f.state == InflightState::Sent
            } else {
                f.state == InflightState::Released
            };
            if expected {
                s.inflight.remove(pos);
                self.stats.messages_sent += 1;
                self.pump(now_ms, key);
            }
        }
    }

    fn on_pubrec(&mut self, conn: ConnId, key: SessionKey, a: PubAck) {
        let Some(s) = self.session_mut(key) else {
            return;
        };
        let mut rel = PubAck::new(a.packet_id);
        match s.inflight_pos(a.packet_id) {
            Some(pos) if s.inflight[pos].delivery.qos == QoS::ExactlyOnce => {
                if a.code.is_error() {
                    // v5: the receiver refused it; the flow ends here [MQTT-4.3.3-4 note].
                    s.inflight.remove(pos);
                    return;
                }
                s.inflight[pos].state = InflightState::Released;
            }
            _ => rel.code = ReasonCode::PacketIdentifierNotFound,
        }
        self.send(conn, &Packet::PubRel(rel));
    }

    fn on_pubrel(&mut self, conn: ConnId, key: SessionKey, a: PubAck) {
        let Some(s) = self.session_mut(key) else {
            return;
        };
        let mut comp = PubAck::new(a.packet_id);
        match s.incoming_qos2.iter().position(|&i| i == a.packet_id.get()) {
            Some(pos) => {
                s.incoming_qos2.swap_remove(pos);
            }
            None => comp.code = ReasonCode::PacketIdentifierNotFound,
        }
        self.send(conn, &Packet::PubComp(comp));
    }

    fn on_subscribe(&mut self, now_ms: u64, conn: ConnId, key: SessionKey, sub: Subscribe) {
        let v5 = self
            .conns
            .get(conn.slot, conn.gen)
            .is_some_and(|c| c.version.is_v5());
        let sub_id = sub.properties.subscription_identifier;
        let mut codes = Vec::with_capacity(sub.filters.len());
        let mut retained = Vec::new();
        let mut awaiting = 0;
        let token = self.next_token;
        for f in sub.filters {
            let count = self
                .sessions
                .get(key.slot, key.gen)
                .map_or(0, |s| s.subscriptions.len());
            let code = if f.filter.starts_with("$share/") {
                ReasonCode::SharedSubscriptionsNotSupported
            } else if f.filter.split('/').count() > self.cfg.max_topic_levels {
                ReasonCode::TopicFilterInvalid
            } else if count >= self.cfg.max_subscriptions_per_client
                && !self
                    .sessions
                    .get(key.slot, key.gen)
                    .is_some_and(|s| s.subscriptions.contains(&f.filter))
            {
                ReasonCode::QuotaExceeded
            } else {
                let granted = super::connect::grant(f.qos);
                let opts = SubOptions {
                    qos: granted,
                    no_local: f.no_local,
                    retain_as_published: f.retain_as_published,
                    retain_handling: f.retain_handling,
                    subscription_id: sub_id,
                };
                let out = self.subs.subscribe(key, &f.filter, opts);
                if !out.existed_before {
                    if let Some(s) = self.session_mut(key) {
                        s.subscriptions.push(f.filter.clone());
                    }
                }
                if out.first_on_filter {
                    self.routes.add(&f.filter, self.id);
                    for i in 0..self.nr_shards {
                        let to = ShardId(i as u16);
                        if to != self.id {
                            self.outbox.push(
                                to,
                                ShardMsg::RouteAdd {
                                    filter: f.filter.clone(),
                                    token,
                                },
                            );
                            awaiting += 1;
                        }
                    }
                }
                let send_retained = !v5
                    || match f.retain_handling {
                        RetainHandling::SendAtSubscribe => true,
                        RetainHandling::SendIfNew => !out.existed_before,
                        RetainHandling::DoNotSend => false,
                    };
                if send_retained {
                    retained.push((f.filter.clone(), granted));
                }
                match granted {
                    QoS::AtMostOnce => ReasonCode::Success,
                    QoS::AtLeastOnce => ReasonCode::GrantedQoS1,
                    QoS::ExactlyOnce => ReasonCode::GrantedQoS2,
                }
            };
            codes.push(code);
        }
        let pending = PendingSub {
            session: key,
            conn,
            packet_id: sub.packet_id,
            codes,
            awaiting,
            retained,
            sub_id,
        };
        if awaiting == 0 {
            self.finish_subscribe(now_ms, pending);
        } else {
            self.next_token += 1;
            self.pending_subs.insert(token, pending);
        }
    }

    /// Sends SUBACK once every shard knows the new routes, then starts retained delivery.
    pub(super) fn finish_subscribe(&mut self, now_ms: u64, p: PendingSub) {
        let ack = SubAck {
            packet_id: p.packet_id,
            codes: p.codes,
            properties: AckProperties::default(),
        };
        self.send(p.conn, &Packet::SubAck(ack));
        for (filter, granted) in p.retained {
            self.query_retained(now_ms, p.session, filter, granted, p.sub_id);
        }
    }

    fn on_unsubscribe(&mut self, conn: ConnId, key: SessionKey, u: Unsubscribe) {
        let mut codes = Vec::with_capacity(u.filters.len());
        for f in u.filters {
            let out = self.subs.unsubscribe(key, &f);
            if out.existed {
                if let Some(s) = self.session_mut(key) {
                    s.subscriptions.retain(|x| *x != f);
                }
            }
            if out.last_on_filter {
                self.drop_route(&f);
            }
            codes.push(if out.existed {
                ReasonCode::Success
            } else {
                ReasonCode::NoSubscriptionExisted
            });
        }
        let ack = UnsubAck {
            packet_id: u.packet_id,
            codes,
            properties: AckProperties::default(),
        };
        self.send(conn, &Packet::UnsubAck(ack));
    }

    /// This shard lost its last local subscriber of `filter`: tell every shard.
    pub(super) fn drop_route(&mut self, filter: &codec::ByteStr) {
        self.routes.remove(filter, self.id);
        for i in 0..self.nr_shards {
            let to = ShardId(i as u16);
            if to != self.id {
                self.outbox.push(
                    to,
                    ShardMsg::RouteRemove {
                        filter: filter.clone(),
                    },
                );
            }
        }
    }
}
