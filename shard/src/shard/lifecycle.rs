//! Connection and session lifetimes: closing a connection (with or without its will),
//! session expiry, will delay and keepalive, all driven by the shard's timer wheel.

use super::{IoEvent, Shard, TimerEvent};
use crate::ids::{ConnId, SessionKey};
use crate::message::Message;
use codec::{Disconnect, LastWill, Packet, ReasonCode};
use std::sync::Arc;

impl Shard {
    /// The socket of `conn` closed or failed without DISCONNECT: publish the will.
    pub fn conn_lost(&mut self, now_ms: u64, conn: ConnId) {
        self.close_conn(now_ms, conn, true, None);
    }

    /// The decoder rejected bytes from `conn`: answer as the spec asks and close.
    /// Before CONNECT was accepted, a v3 client gets the matching CONNACK return code where one
    /// exists (unacceptable protocol version, identifier rejected); a v5 client a CONNACK or
    /// DISCONNECT with the error's reason code.
    pub fn decode_error(&mut self, now_ms: u64, conn: ConnId, err: codec::DecodeError) {
        let code = err.reason_code();
        let Some(c) = self.conns.get(conn.slot, conn.gen) else {
            return;
        };
        self.stats.protocol_errors += 1;
        if c.session.is_none() {
            if matches!(
                code,
                ReasonCode::UnsupportedProtocolVersion | ReasonCode::ClientIdentifierNotValid
            ) {
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
        let Some(c) = self.conns.get(conn.slot, conn.gen) else {
            return;
        };
        if let (Some(code), true) = (reason, c.version.is_v5() && c.session.is_some()) {
            self.send(conn, &Packet::Disconnect(Disconnect::new(code)));
        }
        let Some(mut c) = self.conns.remove(conn.slot, conn.gen) else {
            return;
        };
        self.events.push(IoEvent::Close(conn, c.out.split()));
        let Some(key) = c.session else { return };
        let Some(s) = self.sessions.get_mut(key.slot, key.gen) else {
            return;
        };
        if s.conn != Some(conn) {
            return;
        }
        s.conn = None;
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
                // Will Delay: sent at the earlier of the delay and the session's end [MQTT-3.1.3-9].
                let fire = now_ms + delay.min(expiry) as u64 * 1000;
                if let Some(s) = self.sessions.get_mut(key.slot, key.gen) {
                    s.will = Some(w);
                }
                self.timers.insert(fire, TimerEvent::WillDelay(key, epoch));
            }
        }
        if let Some(w) = will_now {
            self.publish_will(now_ms, *w);
        }
        match expiry {
            0 => self.end_session(key),
            u32::MAX => {}
            secs => self.timers.insert(
                now_ms + secs as u64 * 1000,
                TimerEvent::SessionExpiry(key, epoch),
            ),
        }
    }

    /// Publishes a will message as if its client had published it.
    pub(super) fn publish_will(&mut self, now_ms: u64, w: LastWill) {
        let mut props = w.properties;
        let expires_at_ms = props
            .message_expiry_interval
            .map(|s| now_ms + s as u64 * 1000);
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
        });
        if msg.retain {
            self.store_retained(msg.clone());
        }
        self.route(now_ms, &msg, None);
    }

    /// Ends a session: removes its subscriptions (and routes this shard no longer needs).
    pub(super) fn end_session(&mut self, key: SessionKey) {
        let Some(s) = self.sessions.remove(key.slot, key.gen) else {
            return;
        };
        if self.by_client.get(&s.client_id) == Some(&key) {
            self.by_client.remove(&s.client_id);
        }
        for f in &s.subscriptions {
            if self.subs.unsubscribe(key, f).last_on_filter {
                self.drop_route(f);
            }
        }
    }

    /// Runs every timer due at `now_ms`.
    pub fn handle_timeout(&mut self, now_ms: u64) {
        let mut due = std::mem::take(&mut self.due);
        self.timers.advance(now_ms, &mut due);
        for ev in due.drain(..) {
            match ev {
                TimerEvent::KeepAlive(conn) => {
                    let Some(c) = self.conns.get(conn.slot, conn.gen) else {
                        continue;
                    };
                    let deadline = c.last_rx_ms + c.keepalive_ms;
                    if c.keepalive_ms == 0 {
                        continue;
                    }
                    if deadline <= now_ms {
                        // No packet within 1.5 × keepalive [MQTT-3.1.2-24].
                        self.close_conn(now_ms, conn, true, Some(ReasonCode::KeepAliveTimeout));
                    } else {
                        self.timers.insert(deadline, TimerEvent::KeepAlive(conn));
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
                            self.publish_will(now_ms, *w);
                        }
                        self.end_session(key);
                    }
                }
                TimerEvent::WillDelay(key, epoch) => {
                    let will = self
                        .sessions
                        .get_mut(key.slot, key.gen)
                        .filter(|s| s.epoch == epoch && s.conn.is_none())
                        .and_then(|s| s.will.take());
                    if let Some(w) = will {
                        self.publish_will(now_ms, *w);
                    }
                }
            }
        }
        self.due = due;
    }
}
