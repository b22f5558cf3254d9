//! Connection and session lifetimes: closing a connection (with or without its will),
//! session expiry, will delay and keepalive, all driven by the shard's timer wheel.

use super::{ClientEvent, IoEvent, Shard, TimerEvent};
use crate::ids::{ConnId, SessionKey};
use crate::message::Message;
use codec::{Disconnect, LastWill, Packet, QoS, ReasonCode};
use std::sync::Arc;

impl Shard {
    /// The socket of `conn` closed or failed without DISCONNECT: publish the will.
    pub fn conn_lost(&mut self, now_ms: u64, conn: ConnId) {
        self.close_conn(now_ms, conn, true, None);
    }

    /// Before CONNECT: takes the protocol version from a CONNECT at the front of `buf`, so a
    /// CONNECT that then fails to decode is refused in the client's own version (an MQTT 5
    /// client reads CONNACK 0x81, 0x82, 0x90 or 0x99 instead of seeing the socket close).
    pub fn peek_connect(&mut self, conn: ConnId, buf: &[u8]) {
        let Some(c) = self.conns.get_mut(conn.slot, conn.gen) else {
            return;
        };
        if c.session.is_none() {
            if let Some(v) = codec::peek_connect_version(buf) {
                c.version = v;
            }
        }
    }

    /// The decoder rejected bytes from `conn`: answer as the spec asks and close.
    /// Before CONNECT was accepted, a v3 client gets the matching CONNACK return code where one
    /// exists (unacceptable protocol version, identifier rejected); a v5 client a CONNACK or
    /// DISCONNECT with the error's reason code.
    pub fn decode_error(&mut self, now_ms: u64, conn: ConnId, err: codec::DecodeError) {
        let code = match err {
            // Topic Alias 0 is the Topic Alias invalid case of §3.3.2.3.4.
            codec::DecodeError::TopicAliasZero => ReasonCode::TopicAliasInvalid,
            e => e.reason_code(),
        };
        let Some(c) = self.conns.get(conn.slot, conn.gen) else {
            return;
        };
        self.stats.protocol_errors += 1;
        if c.session.is_none() {
            if c.version.is_v5()
                || matches!(
                    code,
                    ReasonCode::UnsupportedProtocolVersion | ReasonCode::ClientIdentifierNotValid
                )
            {
                let ack = codec::ConnAck {
                    session_present: false,
                    code,
                    properties: Default::default(),
                };
                self.send(conn, &Packet::ConnAck(ack));
            }
            self.close_conn(now_ms, conn, false, None);
        } else {
            self.close_conn(now_ms, conn, true, Some(code));
        }
    }

    /// Closes `conn`: optionally sends a v5 DISCONNECT with `reason`, detaches the session,
    /// publishes (or schedules) the will when `publish_will`, and ends a session whose expiry
    /// is zero.
    pub(super) fn close_conn(
        &mut self,
        now_ms: u64,
        conn: ConnId,
        publish_will: bool,
        reason: Option<ReasonCode>,
    ) {
        self.close_conn_with(now_ms, conn, publish_will, reason.map(Disconnect::new));
    }

    /// `close_conn` for a protocol violation, with a Reason String naming the rule.
    pub(super) fn close_conn_why(
        &mut self,
        now_ms: u64,
        conn: ConnId,
        code: ReasonCode,
        why: &'static str,
    ) {
        self.stats.protocol_errors += 1;
        let mut d = Disconnect::new(code);
        d.properties.reason_string = Some(codec::ByteStr::from_static(why));
        self.close_conn_with(now_ms, conn, true, Some(d));
    }

    pub(super) fn close_conn_with(
        &mut self,
        now_ms: u64,
        conn: ConnId,
        publish_will: bool,
        disconnect: Option<Disconnect>,
    ) {
        let Some(c) = self.conns.get(conn.slot, conn.gen) else {
            return;
        };
        let closing_code = disconnect.as_ref().map(|d| d.code);
        if let (Some(d), true) = (disconnect, c.version.is_v5() && c.session.is_some()) {
            self.send(conn, &Packet::Disconnect(d));
        }
        let Some(mut c) = self.conns.remove(conn.slot, conn.gen) else {
            return;
        };
        // Acknowledgements still waiting for other shards die with the connection.
        self.pending_acks.remove(&conn);
        self.drop_sub_replies(now_ms, conn);
        self.paused.remove(&conn);
        self.events
            .push(IoEvent::Close(conn, c.out.take_contiguous()));
        let Some(key) = c.session else { return };
        let Some(s) = self.sessions.get_mut(key.slot, key.gen) else {
            return;
        };
        if s.conn != Some(conn) {
            return;
        }
        s.conn = None;
        s.release_idle();
        // Offline sessions pause no one.
        self.release_waiters(now_ms, key);
        let Some(s) = self.sessions.get_mut(key.slot, key.gen) else {
            return;
        };
        if self.cfg.client_events {
            let reason = match (closing_code, publish_will) {
                (Some(code), _) => format!("{code:?}"),
                (None, true) => "closed".to_string(),
                (None, false) => "normal".to_string(),
            };
            let client_id = s.client_id.clone();
            self.client_events
                .push(ClientEvent::Disconnected { client_id, reason });
        }
        let Some(s) = self.sessions.get_mut(key.slot, key.gen) else {
            return;
        };
        self.attached = self.attached.saturating_sub(1);
        s.epoch = s.epoch.wrapping_add(1);
        let epoch = s.epoch;
        let expiry = s.expiry_secs;
        let will = if publish_will { s.will.take() } else { None };
        s.will = None;
        let mut will_now = None;
        if let Some(w) = will {
            let delay = w.properties.will_delay_interval.unwrap_or(0);
            if delay == 0 || expiry == 0 {
                will_now = Some(w);
            } else {
                // Will Delay: sent at the earlier of the delay and the session's end (§3.1.3.2.2).
                let fire = now_ms + delay.min(expiry) as u64 * 1000;
                if let Some(s) = self.sessions.get_mut(key.slot, key.gen) {
                    s.will = Some(w);
                }
                self.timers.insert(fire, TimerEvent::WillDelay(key, epoch));
            }
        }
        if let Some(w) = will_now {
            self.publish_will(now_ms, key, *w);
        }
        match expiry {
            0 => return self.end_session(now_ms, key),
            u32::MAX => {}
            secs => self.timers.insert(
                now_ms + secs as u64 * 1000,
                TimerEvent::SessionExpiry(key, epoch),
            ),
        }
        self.offline.push_back((key, epoch));
        self.cap_offline_sessions(now_ms);
    }

    /// Ends the longest-offline sessions while more than `max_offline_sessions` are
    /// offline, so sessions that never expire (3.1.1, or v5 with 0xFFFFFFFF) cannot pile up.
    /// Their wills are published, as at session expiry.
    fn cap_offline_sessions(&mut self, now_ms: u64) {
        let max = self.cfg.max_offline_sessions;
        while self.sessions.len().saturating_sub(self.attached) > max {
            let Some((key, epoch)) = self.offline.pop_front() else {
                break;
            };
            let will = match self.sessions.get_mut(key.slot, key.gen) {
                Some(s) if s.epoch == epoch && s.conn.is_none() => s.will.take(),
                _ => continue, // reconnected or already gone
            };
            if let Some(w) = will {
                self.publish_will(now_ms, key, *w);
            }
            self.end_session(now_ms, key);
        }
        if self.offline.len() > 2 * (self.sessions.len() + 16) {
            // Drop stale entries so reconnect churn does not grow the list.
            let sessions = &self.sessions;
            self.offline.retain(|&(k, e)| {
                sessions
                    .get(k.slot, k.gen)
                    .is_some_and(|s| s.epoch == e && s.conn.is_none())
            });
        }
    }

    /// Publishes a will message as if its client (session `key`) had published it.
    pub(super) fn publish_will(&mut self, now_ms: u64, key: SessionKey, w: LastWill) {
        if !self.authorized(key, super::Action::Publish, &w.topic) {
            return;
        }
        let publisher = self.publisher_id(key);
        let mut props = w.properties;
        let expires_at_ms = self.expiry_deadline(now_ms, props.message_expiry_interval);
        let publish_props = codec::PublishProperties {
            payload_format_indicator: props.payload_format_indicator,
            message_expiry_interval: props.message_expiry_interval,
            topic_alias: None,
            response_topic: props.response_topic.take(),
            correlation_data: props.correlation_data.take(),
            user_properties: std::mem::take(&mut props.user_properties),
            subscription_identifiers: Vec::new(),
            content_type: props.content_type.take(),
        };
        let msg = Arc::new(Message {
            topic: w.topic,
            payload: w.payload,
            qos: w.qos,
            retain: w.retain,
            properties: (!publish_props.is_empty()).then(|| Box::new(publish_props)),
            expires_at_ms,
            publisher,
            origin: None,
            // The will's properties are still slices of its CONNECT's read buffer.
            owned: false,
        });
        if msg.retain {
            self.store_retained(msg.clone());
        }
        self.route(now_ms, &msg, None, None);
    }

    /// The publisher's client id to record in a message: only the `hash` shared strategy
    /// reads it, so other strategies save the reference count traffic on every publish.
    pub(super) fn publisher_id(&self, key: SessionKey) -> Option<codec::ByteStr> {
        if self.cfg.shared_strategy != crate::config::SharedStrategy::Hash {
            return None;
        }
        self.sessions
            .get(key.slot, key.gen)
            .map(|s| s.client_id.clone())
    }

    /// Absolute expiry of a message published now with `interval` seconds of Message
    /// Expiry Interval, capped by `max_message_expiry` (0 = no cap).
    pub(super) fn expiry_deadline(&self, now_ms: u64, interval: Option<u32>) -> Option<u64> {
        let cap = (self.cfg.max_message_expiry > 0).then_some(self.cfg.max_message_expiry);
        let secs = match (interval, cap) {
            (Some(i), Some(c)) => i.min(c),
            (i, c) => i.or(c)?,
        };
        Some(now_ms + u64::from(secs) * 1000)
    }

    /// Ends a session: removes its subscriptions (and routes this shard no longer needs),
    /// and hands what it still held for shared subscriptions to other members.
    pub(super) fn end_session(&mut self, now_ms: u64, key: SessionKey) {
        let Some(mut s) = self.sessions.remove(key.slot, key.gen) else {
            return;
        };
        if self.by_client.get(&s.client_id) == Some(&key) {
            self.by_client.remove(&s.client_id);
        }
        for f in &s.subscriptions {
            self.remove_subscription(key, f);
        }
        // Queued shared messages go to other members; an inflight QoS 1 one too (SHOULD),
        // an inflight QoS 2 one never [MQTT-4.8.2-5].
        let flows = s.take_flows();
        let handed_on = flows
            .inflight
            .iter()
            .filter(|f| f.delivery.qos == QoS::AtLeastOnce && f.delivery.shared.is_some())
            .count()
            + flows.queue.iter().filter(|d| d.shared.is_some()).count();
        let lost = flows.pending() - handed_on;
        self.count_drop(None, crate::session::DropReason::SessionEnded, lost as u64);
        let inflight = flows
            .inflight
            .into_iter()
            .filter(|f| f.delivery.qos == QoS::AtLeastOnce)
            .map(|f| f.delivery);
        let orphans: Vec<_> = inflight
            .chain(flows.queue)
            .filter(|d| d.shared.is_some())
            .collect();
        self.redistribute(now_ms, orphans);
    }

    /// Closes every connection for a server shutdown: v5 clients get DISCONNECT 0x8B
    /// (§3.14.2.1) first; wills are published, as for any close the client did not ask
    /// for (§3.1.2.5). Sessions stay (they end with the process unless persisted).
    pub fn shutdown(&mut self, now_ms: u64) {
        let conns: Vec<ConnId> = self.conns.iter().map(|c| c.id).collect();
        for conn in conns {
            self.close_conn(now_ms, conn, true, Some(ReasonCode::ServerShuttingDown));
        }
    }

    /// Runs every timer due at `now_ms`.
    pub fn handle_timeout(&mut self, now_ms: u64) {
        let mut due = std::mem::take(&mut self.due);
        self.timers.advance(now_ms, &mut due);
        for ev in due.drain(..) {
            match ev {
                TimerEvent::ThrottleDeadline(conn, at) => self.throttle_deadline(now_ms, conn, at),
                TimerEvent::Congestion(key, at) => self.congestion_check(now_ms, key, at),
                TimerEvent::ConnectTimeout(conn) => {
                    let pending = self
                        .conns
                        .get(conn.slot, conn.gen)
                        .is_some_and(|c| c.session.is_none());
                    if pending {
                        // Never finished CONNECT (or its AUTH exchange): free the slot.
                        self.close_conn(now_ms, conn, false, None);
                    }
                }
                TimerEvent::KeepAlive(conn) => {
                    let Some(c) = self.conns.get(conn.slot, conn.gen) else {
                        continue;
                    };
                    let deadline = c.last_rx_ms + c.keepalive_ms;
                    if c.keepalive_ms == 0 {
                        continue;
                    }
                    if self.paused.contains_key(&conn) {
                        // We stopped reading it (back-pressure): its silence is ours.
                        self.timers
                            .insert(now_ms + c.keepalive_ms, TimerEvent::KeepAlive(conn));
                    } else if deadline <= now_ms {
                        // No packet within 1.5 × keepalive (§3.1.2.10).
                        self.close_conn(now_ms, conn, true, Some(ReasonCode::KeepAliveTimeout));
                    } else {
                        self.timers.insert(deadline, TimerEvent::KeepAlive(conn));
                        // A quiet moment: drop a drained session's message state.
                        if let Some(key) = c.session {
                            if let Some(s) = self.sessions.get_mut(key.slot, key.gen) {
                                s.release_idle();
                            }
                        }
                    }
                }
                TimerEvent::SessionExpiry(key, epoch) => {
                    let live = self
                        .sessions
                        .get(key.slot, key.gen)
                        .is_some_and(|s| s.epoch == epoch && s.conn.is_none());
                    if live {
                        if let Some(w) = self
                            .sessions
                            .get_mut(key.slot, key.gen)
                            .and_then(|s| s.will.take())
                        {
                            self.publish_will(now_ms, key, *w);
                        }
                        self.end_session(now_ms, key);
                    }
                }
                TimerEvent::WillDelay(key, epoch) => {
                    let will = self
                        .sessions
                        .get_mut(key.slot, key.gen)
                        .filter(|s| s.epoch == epoch && s.conn.is_none())
                        .and_then(|s| s.will.take());
                    if let Some(w) = will {
                        self.publish_will(now_ms, key, *w);
                    }
                }
            }
        }
        self.due = due;
    }
}
