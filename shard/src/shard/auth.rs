//! Authentication and authorization seams: enhanced authentication (the AUTH packet, §4.12)
//! and the publish/subscribe permission check behind reason code 0x87.
//!
//! The shard owns the protocol side: which packets may arrive when, the AUTH/CONNACK/
//! DISCONNECT answers and their reason codes. What a method computes (SCRAM, Kerberos, a
//! token check) and what a client may do are the broker's, plugged in through
//! [`AuthMethod`] and [`Authorizer`]. With no method installed, a CONNECT naming one gets
//! CONNACK 0x8C and any AUTH packet is a protocol error (0x82). Nothing here does I/O or
//! blocks: a method that needs a slow look-up must answer from state it already has.

use super::{Conn, Shard};
use crate::ids::ConnId;
use bytes::Bytes;
use codec::{Auth, AuthProperties, ByteStr, Connect, Packet, ReasonCode};

/// One step's outcome of an enhanced authentication exchange.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthStep {
    /// Authenticated. The data goes to the client in CONNACK (or AUTH 0x00 when
    /// re-authenticating).
    Success(Option<Bytes>),
    /// Send AUTH 0x18 Continue authentication with this data; the client answers with AUTH.
    Continue(Bytes),
    /// Refused: CONNACK with this code (first authentication) or DISCONNECT with it
    /// (re-authentication), §4.12.0 and §4.12.1: e.g. 0x87 Not authorized, valid in both.
    /// A code DISCONNECT cannot carry (0x86) closes a re-authenticating connection silently.
    Fail(ReasonCode),
}

/// Who is asking, for authentication methods and authorization.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientInfo<'a> {
    pub client_id: &'a str,
    pub username: Option<&'a str>,
}

/// An enhanced authentication method, e.g. `SCRAM-SHA-256`. One per shard.
pub trait AuthMethod {
    /// The Authentication Method name clients put in CONNECT.
    fn name(&self) -> &str;
    /// A new exchange for a CONNECT or a re-authentication (AUTH 0x19) of `client`.
    fn begin(&self, client: &ClientInfo<'_>) -> Box<dyn AuthExchange>;
}

/// The state of one authentication exchange; fed each Authentication Data the client sends
/// (that of CONNECT or AUTH 0x19 first, then each AUTH 0x18).
pub trait AuthExchange {
    fn step(&mut self, data: Option<&Bytes>) -> AuthStep;
}

/// What an authentication source says of a CONNECT's username and password.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Allow,
    /// Refuse with this CONNACK code (v5; v3 clients get its 3.1.1 equivalent).
    Deny(ReasonCode),
    /// The source does not know the user.
    Ignore,
}

/// Checks the username and password of a CONNECT that has a username (a password file,
/// later a hook or a token). One per shard, so its cache is the shard's own; a check that
/// is slow (a password hash) is cached by the implementation, so a client that retries
/// costs a look-up.
pub trait Authenticator {
    fn check(&mut self, client: &ClientInfo<'_>, password: Option<&[u8]>) -> Verdict;
}

impl Shard {
    /// Connection `conn` came through a listener with its own anonymous policy.
    pub fn set_anonymous(&mut self, conn: ConnId, allow: bool) {
        if let Some(c) = self.conn_mut(conn) {
            c.anonymous = Some(allow);
        }
    }

    /// The anonymous policy of `conn`'s listener, where it has one.
    pub fn anonymous(&self, conn: ConnId) -> Option<bool> {
        self.conns
            .get(conn.slot, conn.gen)
            .and_then(|c| c.anonymous)
    }

    /// CONNECTs are checked by an authenticator (a password hash may cost real time).
    pub fn checks_passwords(&self) -> bool {
        self.authenticator.is_some()
    }

    /// The username of `conn`'s CONNECT is a verified client certificate's name: the
    /// password check does not apply to it.
    pub fn set_cert_user(&mut self, conn: ConnId) {
        if let Some(c) = self.conn_mut(conn) {
            c.cert_user = true;
        }
    }
}

/// Refuses banned clients before anything else of their CONNECT is looked at. One per shard.
pub trait Admission {
    /// True when `client`, connecting from `peer`, is banned (CONNACK 0x8A, v3 0x05).
    fn banned(&mut self, client: &ClientInfo<'_>, peer: Option<std::net::SocketAddr>) -> bool;
}

/// What a client wants to do with a topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Publish,
    Subscribe,
}

/// The permission check. Refusals answer 0x87 Not authorized (PUBACK/PUBREC/SUBACK) to v5
/// clients; v3 clients get a positive PUBACK and the message is dropped [MQTT-3.3.5-2], or
/// SUBACK 0x80.
pub trait Authorizer {
    fn allow(&self, client: &ClientInfo<'_>, action: Action, topic: &str) -> bool;
}

/// A connection's enhanced-authentication state.
pub(super) struct ConnAuth {
    /// The method named in CONNECT; re-authentication must use the same [MQTT-4.12.1-1].
    pub(super) method: ByteStr,
    /// The exchange in progress, if any.
    pub(super) exchange: Option<Box<dyn AuthExchange>>,
    /// The CONNECT waiting for the exchange to succeed (first authentication only), and
    /// whether its client id was assigned by us.
    pub(super) pending: Option<(Box<Connect>, bool)>,
}

impl std::fmt::Debug for ConnAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnAuth")
            .field("method", &self.method)
            .field("in_exchange", &self.exchange.is_some())
            .field("pending_connect", &self.pending.is_some())
            .finish()
    }
}

impl Shard {
    /// Starts enhanced authentication for a CONNECT naming `method`. Returns the CONNECT
    /// back with the data for CONNACK when it succeeded at once; otherwise the shard has
    /// answered (AUTH 0x18, or CONNACK with an error) and keeps or drops the connection.
    pub(super) fn start_auth(
        &mut self,
        now_ms: u64,
        conn: ConnId,
        connect: Box<Connect>,
        assigned: bool,
    ) -> Option<(Box<Connect>, Option<Bytes>)> {
        let method = connect.properties.authentication_method.clone()?;
        let Some(m) = self
            .auth_methods
            .iter()
            .find(|m| m.name() == method.as_str())
        else {
            // Not a method we know [MQTT-4.12.0-1].
            self.refuse(now_ms, conn, ReasonCode::BadAuthenticationMethod);
            return None;
        };
        let who = ClientInfo {
            client_id: &connect.client_id,
            username: connect.username.as_deref(),
        };
        let mut exchange = m.begin(&who);
        match exchange.step(connect.properties.authentication_data.as_ref()) {
            AuthStep::Success(data) => {
                self.set_conn_auth(conn, method, None, None);
                Some((connect, data))
            }
            AuthStep::Continue(data) => {
                self.send_auth(
                    conn,
                    ReasonCode::ContinueAuthentication,
                    &method,
                    Some(data),
                );
                self.set_conn_auth(conn, method, Some(exchange), Some((connect, assigned)));
                None
            }
            AuthStep::Fail(code) => {
                self.refuse(now_ms, conn, code);
                None
            }
        }
    }

    fn set_conn_auth(
        &mut self,
        conn: ConnId,
        method: ByteStr,
        exchange: Option<Box<dyn AuthExchange>>,
        pending: Option<(Box<Connect>, bool)>,
    ) {
        if let Some(c) = self.conn_mut(conn) {
            c.ext().auth = Some(ConnAuth {
                method,
                exchange,
                pending,
            });
        }
    }

    /// True while `conn` is between CONNECT and CONNACK in an authentication exchange.
    pub(super) fn auth_pending(&self, conn: ConnId) -> bool {
        self.conns
            .get(conn.slot, conn.gen)
            .and_then(|c: &Conn| c.ext.as_ref())
            .and_then(|e| e.auth.as_ref())
            .is_some_and(|a| a.pending.is_some())
    }

    /// An AUTH packet from the client, before or after CONNACK.
    pub(super) fn on_auth(&mut self, now_ms: u64, conn: ConnId, a: Auth) {
        let Some(c) = self.conns.get_mut(conn.slot, conn.gen) else {
            return;
        };
        let session = c.session;
        let connected = session.is_some();
        let Some(state) = c.ext.as_mut().and_then(|e| e.auth.as_mut()) else {
            // No Authentication Method in CONNECT: AUTH is a protocol error (§4.12).
            return self.auth_protocol_error(now_ms, conn, connected);
        };
        let method = state.method.clone();
        if a.properties.authentication_method.as_deref() != Some(&*method) {
            // Same method for the whole connection [MQTT-4.12.0-5], [MQTT-4.12.1-1].
            return self.auth_protocol_error(now_ms, conn, connected);
        }
        let exchange = match (a.code, state.exchange.take()) {
            (ReasonCode::ContinueAuthentication, Some(ex)) => Some(ex),
            (ReasonCode::ReAuthenticate, None) if connected => {
                let s = session.and_then(|k| self.sessions.get(k.slot, k.gen));
                let who = ClientInfo {
                    client_id: s.map_or("", |s| &s.client_id),
                    username: s.and_then(|s| s.username.as_deref()),
                };
                self.auth_methods
                    .iter()
                    .find(|m| m.name() == &*method)
                    .map(|m| m.begin(&who))
            }
            _ => None,
        };
        let Some(mut exchange) = exchange else {
            return self.auth_protocol_error(now_ms, conn, connected);
        };
        match exchange.step(a.properties.authentication_data.as_ref()) {
            AuthStep::Continue(data) => {
                self.send_auth(
                    conn,
                    ReasonCode::ContinueAuthentication,
                    &method,
                    Some(data),
                );
                if let Some(st) = self.conn_auth(conn) {
                    st.exchange = Some(exchange);
                }
            }
            AuthStep::Success(data) => {
                match self.conn_auth(conn).and_then(|st| st.pending.take()) {
                    Some((connect, assigned)) => {
                        self.accept_connect(now_ms, conn, connect, assigned, data)
                    }
                    None => self.send_auth(conn, ReasonCode::Success, &method, data),
                }
            }
            AuthStep::Fail(code) if connected => {
                self.close_conn(now_ms, conn, true, Some(code));
            }
            AuthStep::Fail(code) => self.refuse(now_ms, conn, code),
        }
    }

    fn conn_auth(&mut self, conn: ConnId) -> Option<&mut ConnAuth> {
        self.conns
            .get_mut(conn.slot, conn.gen)
            .and_then(|c| c.ext.as_mut())
            .and_then(|e| e.auth.as_mut())
    }

    fn auth_protocol_error(&mut self, now_ms: u64, conn: ConnId, connected: bool) {
        if connected {
            self.protocol_error(now_ms, conn, ReasonCode::ProtocolError);
        } else {
            self.stats.protocol_errors += 1;
            self.refuse(now_ms, conn, ReasonCode::ProtocolError);
        }
    }

    fn send_auth(&mut self, conn: ConnId, code: ReasonCode, method: &ByteStr, data: Option<Bytes>) {
        let auth = Auth {
            code,
            properties: AuthProperties {
                authentication_method: Some(method.clone()),
                authentication_data: data,
                ..AuthProperties::default()
            },
        };
        self.send(conn, &Packet::Auth(auth));
    }

    /// Whether the session of `conn`'s client may do `action` on `topic`.
    pub(super) fn authorized(
        &self,
        key: crate::ids::SessionKey,
        action: Action,
        topic: &str,
    ) -> bool {
        let Some(a) = &self.authorizer else {
            return true;
        };
        let Some(s) = self.sessions.get(key.slot, key.gen) else {
            return false;
        };
        let who = ClientInfo {
            client_id: &s.client_id,
            username: s.username.as_deref(),
        };
        a.allow(&who, action, topic)
    }
}
