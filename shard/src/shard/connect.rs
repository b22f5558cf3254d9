//! CONNECT handling on the client's home shard: validation, takeover, session resume or
//! creation, CONNACK, and the resend of what a resumed session still owes the client.

use super::{ClientEvent, ClientInfo, Shard, TimerEvent, Verdict};
use crate::ids::{home_shard, ConnId, SessionKey};
use crate::session::{InflightState, Session};
use codec::{ByteStr, ConnAck, ConnAckProperties, Connect, Packet, PubAck, QoS, ReasonCode};

impl Shard {
    /// Handles the CONNECT of `conn` (already routed to this, the client's home shard).
    pub fn handle_connect(&mut self, now_ms: u64, conn: ConnId, mut connect: Box<Connect>) {
        let pending_auth = self.auth_pending(conn);
        let Some(c) = self.conn_mut(conn) else { return };
        if c.session.is_some() || pending_auth {
            // A second CONNECT is a protocol violation [MQTT-3.1.0-2].
            self.stats.protocol_errors += 1;
            self.close_conn(now_ms, conn, true, Some(ReasonCode::ProtocolError));
            return;
        }
        c.version = connect.protocol;
        c.last_rx_ms = now_ms;
        let v5 = connect.protocol.is_v5();

        let assigned = connect.client_id.is_empty();
        if assigned {
            if !v5 && !connect.clean_start {
                // [MQTT-3.1.3-8]: empty id requires clean session in 3.1.1.
                return self.refuse(now_ms, conn, ReasonCode::ClientIdentifierNotValid);
            }
            connect.client_id = self.generate_client_id();
        } else {
            // A compact copy: the decoded id is a slice of the read buffer and would keep the
            // whole buffer alive for the life of the session.
            connect.client_id = ByteStr::from(connect.client_id.as_str());
        }
        if connect.client_id.len() > self.cfg.max_client_id_len {
            return self.refuse(now_ms, conn, ReasonCode::ClientIdentifierNotValid);
        }
        let peer = self.peer(conn);
        if let Some(a) = self.admission.as_mut() {
            let info = ClientInfo {
                client_id: &connect.client_id,
                username: connect.username.as_deref(),
            };
            if a.banned(&info, peer) {
                self.stats.auth_failures += 1;
                return self.refuse(now_ms, conn, ReasonCode::Banned);
            }
        }
        let anonymous_ok = self.anonymous(conn).unwrap_or(self.cfg.allow_anonymous);
        if !anonymous_ok && connect.username.is_none() {
            self.stats.auth_failures += 1;
            return self.refuse(now_ms, conn, ReasonCode::NotAuthorized);
        }
        let cert_user = self
            .conns
            .get(conn.slot, conn.gen)
            .is_some_and(|c| c.cert_user);
        let user = connect.username.as_deref().filter(|_| !cert_user);
        if let (Some(a), Some(user)) = (self.authenticator.as_mut(), user) {
            let info = ClientInfo {
                client_id: &connect.client_id,
                username: Some(user),
            };
            let code = match a.check(&info, connect.password.as_deref()) {
                Verdict::Allow => None,
                Verdict::Deny(code) => Some(code),
                // A username no source knows is refused as a bad username.
                Verdict::Ignore => Some(ReasonCode::BadUserNameOrPassword),
            };
            if let Some(code) = code {
                self.stats.auth_failures += 1;
                return self.refuse(now_ms, conn, code);
            }
        }
        if connect
            .will
            .as_ref()
            .is_some_and(|w| is_sys_topic(&w.topic))
        {
            // Only the broker publishes under `$SYS` (a will there would spoof its statistics).
            self.stats.publishes_refused += 1;
            return self.refuse(now_ms, conn, ReasonCode::NotAuthorized);
        }
        if v5 && connect.properties.authentication_method.is_some() {
            // Enhanced authentication (§4.12): CONNACK waits for the exchange to succeed.
            if let Some((connect, data)) = self.start_auth(now_ms, conn, connect, assigned) {
                self.accept_connect(now_ms, conn, connect, assigned, data);
            }
            return;
        }
        self.accept_connect(now_ms, conn, connect, assigned, None);
    }

    /// Accepts an authenticated CONNECT: takeover, session resume or creation, CONNACK
    /// with the v5 properties, then what the session still owes the client.
    pub(super) fn accept_connect(
        &mut self,
        now_ms: u64,
        conn: ConnId,
        connect: Box<Connect>,
        assigned: bool,
        auth_data: Option<bytes::Bytes>,
    ) {
        let v5 = connect.protocol.is_v5();
        let client_id = connect.client_id.clone();
        // Takeover: the id is connected elsewhere on this shard [MQTT-3.1.4-2].
        let mut resumed = None;
        if let Some(&key) = self.by_client.get(&client_id) {
            let old_conn = self.sessions.get(key.slot, key.gen).and_then(|s| s.conn);
            if let Some(old) = old_conn {
                self.close_conn(now_ms, old, true, Some(ReasonCode::SessionTakenOver));
            }
            if connect.clean_start {
                self.end_session(now_ms, key);
            } else if self.sessions.get(key.slot, key.gen).is_some() {
                resumed = Some(key);
            }
        }

        let requested_expiry = connect.properties.session_expiry_interval.unwrap_or(0);
        let session_expiry = if v5 {
            requested_expiry.min(self.cfg.max_session_expiry)
        } else if connect.clean_start {
            0
        } else {
            u32::MAX
        };
        let session_present = resumed.is_some();
        let key = match resumed {
            Some(k) => k,
            None => {
                let (slot, gen) = self.sessions.insert_with(|slot, gen| {
                    Session::new(
                        SessionKey { slot, gen },
                        client_id.clone(),
                        connect.protocol,
                    )
                });
                let k = SessionKey { slot, gen };
                self.by_client.insert(client_id.clone(), k);
                k
            }
        };

        let max_ka = self.cfg.max_keepalive;
        let server_keep_alive = if !v5 {
            None
        } else if connect.keep_alive > max_ka || (connect.keep_alive == 0 && max_ka < u16::MAX) {
            // A v5 client is told the keepalive it must use (§3.2.2.3.14); asking for none
            // is capped too when a maximum is configured (as Mosquitto does).
            Some(max_ka)
        } else {
            None
        };
        let keep_alive = server_keep_alive.unwrap_or(connect.keep_alive);
        let cp = &connect.properties;
        let window = cp
            .receive_maximum
            .unwrap_or(u16::MAX)
            .min(self.cfg.max_inflight)
            .max(1);
        let client_max_packet = cp.maximum_packet_size.unwrap_or(u32::MAX);
        let out_alias_max = cp
            .topic_alias_maximum
            .unwrap_or(0)
            .min(self.cfg.topic_alias_maximum);
        let no_problem_info = v5 && cp.request_problem_information == Some(false);
        let response_info = (v5 && cp.request_response_information == Some(true))
            .then(|| response_information(&client_id));
        let auth_method = cp.authentication_method.clone();

        let needs_username = self.authorizer.is_some() || !self.auth_methods.is_empty();
        let connect = *connect;
        if self.cfg.client_events {
            self.client_events.push(ClientEvent::Connected {
                client_id: client_id.clone(),
                username: connect.username.as_deref().map(ByteStr::from),
                protocol: connect.protocol.level(),
                keep_alive: connect.keep_alive,
                clean_start: connect.clean_start,
                session_present: resumed.is_some(),
                peer: self.peer(conn),
            });
        }
        let mut expired = 0;
        if let Some(s) = self.session_mut(key) {
            s.version = connect.protocol;
            // Kept only for an authorizer or an authentication method to read.
            s.username = needs_username
                .then(|| connect.username.as_deref().map(Box::from))
                .flatten();
            s.conn = Some(conn);
            s.epoch = s.epoch.wrapping_add(1);
            s.expiry_secs = session_expiry;
            s.will = connect.will.map(|mut w| {
                // Same reason as the client id: do not pin the read buffer.
                w.topic = ByteStr::from(w.topic.as_str());
                w.payload = bytes::Bytes::copy_from_slice(&w.payload);
                Box::new(w)
            });
            // Queued messages whose expiry passed while offline are not sent [MQTT-3.3.2-5].
            expired = s.drop_expired(now_ms);
        }
        self.attached += 1;
        self.count_drop(
            Some(key),
            crate::session::DropReason::Expired,
            expired as u64,
        );
        if let Some(c) = self.conn_mut(conn) {
            c.session = Some(key);
            c.keepalive_ms = keep_alive as u64 * 1500;
            c.send_window = window;
            c.client_max_packet = client_max_packet;
            c.out_alias_max = out_alias_max;
            c.no_problem_info = no_problem_info;
        }
        if keep_alive > 0 {
            self.timers.insert(
                now_ms + keep_alive as u64 * 1500,
                TimerEvent::KeepAlive(conn),
            );
        }

        let mut props = ConnAckProperties::default();
        if v5 {
            let cfg = &self.cfg;
            props.assigned_client_identifier = assigned.then(|| client_id.clone());
            props.server_keep_alive = server_keep_alive;
            props.receive_maximum = Some(cfg.receive_maximum);
            props.maximum_packet_size = Some(cfg.max_packet_size);
            // Absent Maximum QoS means QoS 2 is supported (§3.2.2.3.4).
            props.topic_alias_maximum =
                (cfg.topic_alias_maximum > 0).then_some(cfg.topic_alias_maximum);
            props.retain_available = Some(true);
            props.wildcard_subscription_available = Some(true);
            props.subscription_identifiers_available = Some(true);
            props.shared_subscription_available = Some(true);
            if session_expiry != requested_expiry {
                props.session_expiry_interval = Some(session_expiry);
            }
            props.response_information = response_info;
            props.authentication_method = auth_method;
            props.authentication_data = auth_data;
        }
        let mut ack = ConnAck {
            session_present,
            code: ReasonCode::Success,
            properties: props,
        };
        if !self.send(conn, &Packet::ConnAck(ack.clone())) {
            // The client's Maximum Packet Size is below our full CONNACK: keep only what
            // changes the session's meaning; absent capabilities read as their defaults.
            let p = ack.properties;
            ack.properties = ConnAckProperties {
                assigned_client_identifier: p.assigned_client_identifier,
                server_keep_alive: p.server_keep_alive,
                session_expiry_interval: p.session_expiry_interval,
                authentication_method: p.authentication_method,
                authentication_data: p.authentication_data,
                ..ConnAckProperties::default()
            };
            self.send(conn, &Packet::ConnAck(ack));
        }
        if session_present {
            self.resend_inflight(now_ms, key, conn);
        }
        self.pump(now_ms, key);
    }

    /// Refuses, with `code`, a CONNECT of `protocol` that the broker turned down before the
    /// shard saw it (a client certificate without the name its listener takes as username).
    pub fn refuse_connect(
        &mut self,
        now_ms: u64,
        conn: ConnId,
        protocol: codec::ProtocolVersion,
        code: ReasonCode,
    ) {
        let Some(c) = self.conn_mut(conn) else { return };
        c.version = protocol;
        self.refuse(now_ms, conn, code);
    }

    /// Refuses a CONNECT with `code` and closes the connection [MQTT-3.2.2-6].
    pub(super) fn refuse(&mut self, now_ms: u64, conn: ConnId, code: ReasonCode) {
        let ack = ConnAck {
            session_present: false,
            code,
            properties: ConnAckProperties::default(),
        };
        self.send(conn, &Packet::ConnAck(ack));
        self.close_conn(now_ms, conn, false, None);
    }

    /// Resends the window of a resumed session: PUBLISH with DUP for unacknowledged
    /// messages, PUBREL for those already released [MQTT-4.4.0-1].
    fn resend_inflight(&mut self, now_ms: u64, key: SessionKey, conn: ConnId) {
        let Some(s) = self.sessions.get(key.slot, key.gen) else {
            return;
        };
        let items: Vec<_> = s
            .inflight()
            .map(|f| (f.packet_id, f.state, f.delivery.clone()))
            .collect();
        for (id, state, d) in items {
            match state {
                InflightState::Sent => {
                    let p = self.publish_packet(now_ms, conn, &d, Some(id), true);
                    self.send_publish(conn, p);
                }
                InflightState::Released => {
                    self.send(conn, &Packet::PubRel(PubAck::new(id)));
                }
            }
        }
    }

    /// An id for a client that sent none, chosen so that it hashes to this shard: a later
    /// reconnect with the assigned id then finds its session here.
    fn generate_client_id(&mut self) -> ByteStr {
        loop {
            self.next_assigned_id += 1;
            let id = format!("ringmq-{}-{}", self.id.0, self.next_assigned_id);
            if home_shard(&id, self.nr_shards) == self.id {
                return ByteStr::from(id);
            }
        }
    }
}

/// The Response Information given to a client that asks for it (§3.2.2.3.15): a topic
/// prefix of its own, `ringmq/response/<client id>`, with `+` and `#` (which would make it
/// unusable in a topic name) replaced by `_`.
fn response_information(client_id: &str) -> ByteStr {
    let safe: String = client_id
        .chars()
        .map(|ch| if matches!(ch, '+' | '#') { '_' } else { ch })
        .collect();
    ByteStr::from(format!("ringmq/response/{safe}"))
}

/// QoS granted to a subscription: what was asked, capped by what the broker supports.
pub(super) fn grant(requested: QoS) -> QoS {
    requested.min(QoS::ExactlyOnce)
}

/// Topics only the broker publishes to: `$SYS` and everything under it.
pub(super) fn is_sys_topic(topic: &str) -> bool {
    topic
        .strip_prefix("$SYS")
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}
