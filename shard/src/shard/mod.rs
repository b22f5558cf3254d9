//! `Shard`: one core's MQTT world as a sans-IO state machine.
//!
//! The broker feeds it decoded packets, cross-shard messages and the clock
//! (`handle_connect`, `handle_packet`, `handle_shard_msg`, `handle_timeout`, all taking
//! `now_ms`), and drains what it produced: bytes per connection (`conn_output`), I/O events
//! (flush or close a connection) and per-destination batches for other shards (`outbox`).
//! It owns its sessions, subscription trie, route-table replica, retained partition and
//! timer wheel on one thread; it never blocks, never does I/O and never reads a clock.
//!
//! By role: `connect` (CONNECT, CONNACK and its v5 properties), `auth` (enhanced
//! authentication and the authorization seam), `inbound` (PUBLISH and acks from the client,
//! DISCONNECT), `subscribe` (SUBSCRIBE/UNSUBSCRIBE and route announcements), `deliver`
//! (routing, the QoS 1/2 window, retained look-ups), `shared` (shared subscriptions across
//! shards), `alias` (topic aliases both ways), `lifecycle` (closing, wills, session expiry,
//! timers, shutdown), `remote` (messages from other shards). MQTT 5 choices: docs/mqtt5.md.

mod acks;
mod alias;
mod auth;
mod connect;
mod credit;
mod deliver;
mod frames;
mod inbound;
mod lifecycle;
mod peer;
mod remote;
mod shared;
mod subscribe;
mod throttle;

pub use auth::{
    Action, Admission, AuthExchange, AuthMethod, AuthStep, Authenticator, Authorizer, ClientInfo,
    Verdict,
};
pub use peer::PeerAddr;

use crate::config::ShardConfig;
use crate::ids::{ConnId, SessionKey, ShardId};
use crate::message::SharedMessage;
use crate::retained::RetainedStore;
use crate::routes::RouteTable;
use crate::session::Session;
use crate::shard_msg::Outbox;
use crate::slab::GenSlab;
use crate::subs::SubscriptionTable;
use crate::timer::TimerWheel;
use ahash::AHashMap;
use bytes::BytesMut;
use codec::{ByteStr, Limits, PacketId, ProtocolVersion, ReasonCode};

/// What the I/O layer must do for a connection after a call into the shard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IoEvent {
    /// The connection has output in `conn_output`: write it this turn.
    Flush(ConnId),
    /// Write these last bytes, then close the socket. The shard already forgot the conn.
    Close(ConnId, BytesMut),
    /// Stop reading this connection (its messages pile up at a subscriber): back-pressure.
    Pause(ConnId),
    /// Read this connection again.
    Resume(ConnId),
}

/// A client connected or disconnected (recorded only with `ShardConfig::client_events`); the
/// broker publishes these under `$SYS/brokers/<node>/clients/<client id>/...`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientEvent {
    Connected {
        client_id: ByteStr,
        username: Option<ByteStr>,
        protocol: u8,
        keep_alive: u16,
        clean_start: bool,
        session_present: bool,
        /// Where the client connects from, when known.
        peer: Option<std::net::SocketAddr>,
    },
    Disconnected {
        client_id: ByteStr,
        /// "normal" for a DISCONNECT, "closed" for a socket closed without one, otherwise the
        /// reason code the server closed it with.
        reason: String,
    },
}

/// Something an operator should hear of once; the broker logs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notice {
    /// A subscriber held publishers back with no progress for `idle_ms` and was
    /// disconnected (v5: 0x97); its session went offline.
    StuckSubscriber {
        client_id: ByteStr,
        queued: usize,
        inflight: usize,
        idle_ms: u64,
    },
}

/// Timers of a shard; stale ones (generation or epoch moved on) are ignored when they fire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimerEvent {
    /// The connection must have completed CONNECT by now.
    ConnectTimeout(ConnId),
    /// A paused publisher is resumed by now at the latest (the deadline it was set for).
    ThrottleDeadline(ConnId, u64),
    /// A congested subscriber: renew its publishers' pauses, or find it stuck (the time it
    /// was set for).
    Congestion(SessionKey, u64),
    KeepAlive(ConnId),
    SessionExpiry(SessionKey, u32),
    WillDelay(SessionKey, u32),
}

/// A network connection attached to this shard.
#[derive(Debug)]
pub struct Conn {
    pub id: ConnId,
    /// Set once CONNECT was accepted.
    pub session: Option<SessionKey>,
    pub version: ProtocolVersion,
    /// 1.5 × the negotiated keepalive, ms; 0 = none.
    keepalive_ms: u64,
    last_rx_ms: u64,
    /// Encoded frames not yet handed to the socket.
    out: crate::outq::OutQueue,
    flush_queued: bool,
    /// Retained QoS 0 messages wait for this connection's socket to take its output.
    retained_waiting: bool,
    /// v5 Request Problem Information = 0: no Reason String or User Properties on packets
    /// other than PUBLISH, CONNACK and DISCONNECT [MQTT-3.1.2-29].
    no_problem_info: bool,
    /// Largest packet the client accepts (v5 Maximum Packet Size), bytes.
    client_max_packet: u32,
    /// Outgoing QoS 1/2 window for this connection.
    send_window: u16,
    /// Topic aliases we may use towards the client: its Topic Alias Maximum capped by ours.
    out_alias_max: u16,
    /// Where the connection comes from (`peer`), once known.
    peer: Option<PeerAddr>,
    /// Its username is the name of a client certificate the TLS handshake verified: no
    /// password is checked (`set_cert_user`).
    cert_user: bool,
    /// Its listener's anonymous policy, over `ShardConfig::allow_anonymous` (`set_anonymous`).
    anonymous: Option<bool>,
    /// v5 state most connections never need (topic aliases, an authentication exchange),
    /// allocated on first use so an idle connection stays small.
    ext: Option<Box<ConnExt>>,
}

/// The rarely needed part of a connection's state; see `Conn::ext`.
#[derive(Debug, Default)]
struct ConnExt {
    in_aliases: alias::InAliases,
    out_aliases: alias::OutAliases,
    auth: Option<auth::ConnAuth>,
}

impl Conn {
    /// Records that the connection has output: one `IoEvent::Flush` per turn.
    fn mark_dirty(&mut self, events: &mut Vec<IoEvent>) {
        if !self.flush_queued {
            self.flush_queued = true;
            events.push(IoEvent::Flush(self.id));
        }
    }

    fn ext(&mut self) -> &mut ConnExt {
        self.ext.get_or_insert_with(Box::default)
    }
}

/// A SUBSCRIBE waiting for other shards to confirm its route updates before SUBACK.
#[derive(Debug)]
struct PendingSub {
    session: SessionKey,
    conn: ConnId,
    packet_id: PacketId,
    codes: Vec<ReasonCode>,
    awaiting: usize,
    /// Retained look-ups to start once SUBACK is out: (filter, granted QoS).
    retained: Vec<(ByteStr, codec::QoS)>,
    sub_id: Option<std::num::NonZeroU32>,
}

/// An answer to SUBSCRIBE or UNSUBSCRIBE, queued behind a SUBACK that waits.
#[derive(Debug)]
enum SubReply {
    /// The SUBSCRIBE of this token (in `pending_subs`).
    Sub(u64),
    Unsub(codec::UnsubAck),
}

/// Counters of one shard; summed across shards for metrics and `$SYS`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ShardStats {
    pub connections: u64,
    /// CONNECTs refused for their credentials (bad password, unknown user, anonymous).
    pub auth_failures: u64,
    pub sessions: u64,
    /// Timers in the shard's wheel (keepalive, pause deadlines, expiry, will delay).
    pub timers: u64,
    pub messages_received: u64,
    pub messages_sent: u64,
    /// Every message dropped, whatever the reason (the sum of `drops`).
    pub messages_dropped: u64,
    /// Dropped messages by reason.
    pub drops: crate::session::DropCounts<u64>,
    pub bytes_sent: u64,
    pub protocol_errors: u64,
    /// Queued messages dropped because their Message Expiry Interval passed.
    pub messages_expired: u64,
    /// Messages not sent because they exceed the client's Maximum Packet Size.
    pub dropped_too_large: u64,
    /// Shared-subscription messages handed to another member after theirs left.
    pub shared_redistributed: u64,
    /// Times a publisher was paused because a subscriber's queue was high.
    pub publisher_pauses: u64,
    /// Subscribers disconnected for holding publishers back without progress.
    pub stuck_disconnects: u64,
    /// Retained messages not stored: the retained store was at its count or byte limit.
    pub retained_refused: u64,
    /// Client PUBLISHes and wills refused: not authorized, or to `$SYS`.
    pub publishes_refused: u64,
}

impl std::ops::AddAssign for ShardStats {
    fn add_assign(&mut self, o: Self) {
        self.connections += o.connections;
        self.sessions += o.sessions;
        self.messages_received += o.messages_received;
        self.messages_sent += o.messages_sent;
        self.messages_dropped += o.messages_dropped;
        self.drops += o.drops;
        self.bytes_sent += o.bytes_sent;
        self.protocol_errors += o.protocol_errors;
        self.messages_expired += o.messages_expired;
        self.dropped_too_large += o.dropped_too_large;
        self.shared_redistributed += o.shared_redistributed;
        self.publisher_pauses += o.publisher_pauses;
        self.stuck_disconnects += o.stuck_disconnects;
        self.retained_refused += o.retained_refused;
        self.publishes_refused += o.publishes_refused;
    }
}

/// One core's broker state.
pub struct Shard {
    pub id: ShardId,
    nr_shards: usize,
    cfg: ShardConfig,
    conns: GenSlab<Conn>,
    sessions: GenSlab<Session>,
    by_client: AHashMap<ByteStr, SessionKey>,
    subs: SubscriptionTable<SessionKey>,
    routes: RouteTable,
    retained: RetainedStore<SharedMessage>,
    timers: TimerWheel<TimerEvent>,
    outbox: Outbox,
    events: Vec<IoEvent>,
    client_events: Vec<ClientEvent>,
    notices: Vec<Notice>,
    /// Publishers paused by each congested session (see `throttle`).
    throttled: AHashMap<SessionKey, throttle::Waiters>,
    /// This shard's paused publishers and when their pause ends.
    paused: AHashMap<ConnId, u64>,
    /// The one pause-deadline timer each paused publisher has in the wheel (when it fires).
    throttle_timers: AHashMap<ConnId, u64>,
    /// The one renewal timer each congested subscriber has in the wheel (when it fires).
    congestion_timers: AHashMap<SessionKey, u64>,
    pending_subs: AHashMap<u64, PendingSub>,
    /// Per connection with a SUBSCRIBE waiting for other shards: its answers, in order.
    sub_replies: AHashMap<ConnId, std::collections::VecDeque<SubReply>>,
    /// Per connection, QoS 1/2 acknowledgements waiting for other shards (`acks`).
    pending_acks: AHashMap<ConnId, acks::AckQueue>,
    /// Messages this shard may send to each other shard acknowledged at once (`credit`).
    credit: credit::LinkCredit,
    /// The last QoS 1/2 frame encoded, for the next subscriber of the same message.
    last_frame: frames::LastFrame,
    /// The last message detached for a queue, with its original: every queue of one
    /// publish shares one copy (`owned_copy`).
    detached: Option<(SharedMessage, SharedMessage)>,
    next_token: u64,
    next_assigned_id: u64,
    stats: ShardStats,
    /// Reused buffer for subscription matches (no allocation per publish).
    scratch: Vec<crate::subs::Delivery<SessionKey>>,
    /// Reused buffer for due timers.
    due: Vec<TimerEvent>,
    /// Sessions that went offline, oldest first, with their epoch then (stale entries are
    /// skipped): the order in which `max_offline_sessions` drops them.
    offline: std::collections::VecDeque<(SessionKey, u32)>,
    /// Sessions with a connection attached.
    attached: usize,
    /// Per shared subscription: strategy state (cursors, sticky choices) and the tag its
    /// deliveries carry.
    shared: shared::SharedState,
    /// Enhanced authentication methods (AUTH, §4.12); none by default.
    auth_methods: Vec<Box<dyn AuthMethod>>,
    /// Publish/subscribe authorization; everything is allowed without one.
    authorizer: Option<Box<dyn Authorizer>>,
    /// Checks usernames and passwords (none: every username is taken as given).
    authenticator: Option<Box<dyn Authenticator>>,
    /// Refuses banned clients (none: nobody is banned).
    admission: Option<Box<dyn Admission>>,
}

impl Shard {
    pub fn new(id: ShardId, nr_shards: usize, cfg: ShardConfig) -> Self {
        let retained_limits = crate::retained::RetainedLimits {
            max_messages: cfg.max_retained_messages,
            max_bytes: cfg.max_retained_bytes,
        };
        let credit = credit::LinkCredit::new(nr_shards.max(1), cfg.link_credit);
        Shard {
            id,
            nr_shards: nr_shards.max(1),
            credit,
            cfg,
            conns: GenSlab::default(),
            sessions: GenSlab::default(),
            by_client: AHashMap::new(),
            subs: SubscriptionTable::new(),
            routes: RouteTable::new(),
            retained: RetainedStore::new(retained_limits),
            timers: TimerWheel::new(0),
            outbox: Outbox::new(nr_shards.max(1)),
            events: Vec::new(),
            client_events: Vec::new(),
            notices: Vec::new(),
            throttled: AHashMap::new(),
            paused: AHashMap::new(),
            throttle_timers: AHashMap::new(),
            congestion_timers: AHashMap::new(),
            pending_subs: AHashMap::new(),
            sub_replies: AHashMap::new(),
            pending_acks: AHashMap::new(),
            last_frame: Default::default(),
            detached: None,
            next_token: (id.0 as u64) << 48,
            next_assigned_id: 0,
            stats: ShardStats::default(),
            scratch: Vec::new(),
            due: Vec::new(),
            offline: std::collections::VecDeque::new(),
            attached: 0,
            shared: shared::SharedState::new(id),
            auth_methods: Vec::new(),
            authorizer: None,
            authenticator: None,
            admission: None,
        }
    }

    /// Adds an enhanced authentication method: CONNECTs naming it go through its AUTH
    /// exchange instead of being refused with 0x8C.
    pub fn add_auth_method(&mut self, method: Box<dyn AuthMethod>) {
        self.auth_methods.push(method);
    }

    /// Installs the authorization check for PUBLISH, SUBSCRIBE and wills.
    pub fn set_admission(&mut self, admission: Box<dyn Admission>) {
        self.admission = Some(admission);
    }

    pub fn set_authenticator(&mut self, authenticator: Box<dyn Authenticator>) {
        self.authenticator = Some(authenticator);
    }

    pub fn set_authorizer(&mut self, authorizer: Box<dyn Authorizer>) {
        self.authorizer = Some(authorizer);
    }

    pub fn nr_shards(&self) -> usize {
        self.nr_shards
    }

    pub fn config(&self) -> &ShardConfig {
        &self.cfg
    }

    /// Registers a new socket that will send CONNECT next. Every conn must be ended with
    /// `conn_lost` (or be closed by the shard through `IoEvent::Close`).
    pub fn open_conn(&mut self, now_ms: u64) -> ConnId {
        let max_packet = self.cfg.max_packet_size;
        let (slot, gen) = self.conns.insert_with(|slot, gen| Conn {
            id: ConnId { slot, gen },
            session: None,
            version: ProtocolVersion::V3_1_1,
            keepalive_ms: 0,
            last_rx_ms: now_ms,
            out: Default::default(),
            flush_queued: false,
            retained_waiting: false,
            no_problem_info: false,
            client_max_packet: max_packet,
            send_window: 0,
            out_alias_max: 0,
            peer: None,
            cert_user: false,
            anonymous: None,
            ext: None,
        });
        self.stats.connections += 1;
        let conn = ConnId { slot, gen };
        self.timers.insert(
            now_ms + self.cfg.connect_timeout_ms,
            TimerEvent::ConnectTimeout(conn),
        );
        conn
    }

    /// Forgets a connection without any protocol action (its socket moved to another shard).
    pub fn forget_conn(&mut self, conn: ConnId) {
        self.conns.remove(conn.slot, conn.gen);
    }

    /// The decoder limits and protocol version for the next packet of `conn`.
    pub fn decode_params(&self, conn: ConnId) -> Option<(Limits, ProtocolVersion)> {
        let c = self.conns.get(conn.slot, conn.gen)?;
        Some((
            Limits {
                max_packet_size: self.cfg.max_packet_size,
            },
            c.version,
        ))
    }

    /// Takes the bytes waiting to be written to `conn`; the broker calls it when the socket
    /// can take them, which is also how the shard learns that the client is reading
    /// (progress of a congested subscriber, pacing of retained messages).
    pub fn conn_output(&mut self, now_ms: u64, conn: ConnId) -> Option<crate::outq::Output> {
        let c = self.conns.get_mut(conn.slot, conn.gen)?;
        c.flush_queued = false;
        if c.out.is_empty() {
            return None;
        }
        // Taken whole (not `split`): a split would leave the connection sharing the
        // allocation, which would then stay alive for as long as the connection is idle.
        let out = c.out.take();
        let key = c.session;
        let retained = std::mem::take(&mut c.retained_waiting);
        if let Some(key) = key {
            if !self.throttled.is_empty() {
                self.note_progress(key);
            }
            if retained {
                self.pump_retained(now_ms, key);
            }
        }
        Some(out)
    }

    /// Returns unwritten output to the front of the connection's queue (socket was full).
    pub fn conn_output_unsent(&mut self, conn: ConnId, rest: crate::outq::Output) {
        if let Some(c) = self.conns.get_mut(conn.slot, conn.gen) {
            c.out.put_back(rest);
        }
    }

    /// Drains the client connect/disconnect events recorded since the last call.
    pub fn take_client_events(&mut self, into: &mut Vec<ClientEvent>) {
        into.append(&mut self.client_events);
    }

    /// Drains the notices recorded since the last call.
    pub fn take_notices(&mut self, into: &mut Vec<Notice>) {
        into.append(&mut self.notices);
    }

    /// Drains the I/O work produced since the last call.
    pub fn take_events(&mut self, into: &mut Vec<IoEvent>) {
        into.append(&mut self.events);
    }

    /// The per-destination batches for other shards, to drain at the end of a turn; the
    /// credit this turn's messages from other shards used is given back first (`credit`).
    pub fn outbox(&mut self) -> &mut Outbox {
        self.credit.give_back(&mut self.outbox);
        &mut self.outbox
    }

    pub fn stats(&self) -> ShardStats {
        let mut s = self.stats;
        s.sessions = self.sessions.len() as u64;
        s.connections = self.conns.len() as u64;
        s.timers = self.timers.len() as u64;
        s
    }

    pub fn session_count(&self) -> usize {
        self.sessions.len()
    }

    pub fn retained_count(&self) -> usize {
        self.retained.len()
    }

    /// Subscriptions held by this shard's sessions, shared-group memberships included.
    pub fn subscription_count(&self) -> usize {
        self.subs.subscription_count() + self.subs.shared_member_count()
    }

    /// Counts `n` messages dropped for `reason`, on the session when there is one.
    fn count_drop(&mut self, key: Option<SessionKey>, reason: crate::session::DropReason, n: u64) {
        if n == 0 {
            return;
        }
        if let Some(s) = key.and_then(|k| self.sessions.get_mut(k.slot, k.gen)) {
            s.stats.dropped.add(reason, n);
        }
        self.stats.messages_dropped += n;
        self.stats.drops.add(reason, n);
        if reason == crate::session::DropReason::Expired {
            self.stats.messages_expired += n;
        }
    }

    fn session_mut(&mut self, key: SessionKey) -> Option<&mut Session> {
        self.sessions.get_mut(key.slot, key.gen)
    }

    fn conn_mut(&mut self, id: ConnId) -> Option<&mut Conn> {
        self.conns.get_mut(id.slot, id.gen)
    }

    /// Encodes `packet` for `conn` and schedules a flush. For a v5 client, Reason Strings and
    /// User Properties are left out where the client asked for none [MQTT-3.1.2-29] or where
    /// they would make the packet larger than its Maximum Packet Size [MQTT-3.4.2-2]; a packet
    /// still too large is not sent [MQTT-3.1.2-24] and false is returned. PUBLISH goes
    /// through `send_publish` (topic aliases).
    fn send(&mut self, conn: ConnId, packet: &codec::Packet) -> bool {
        let Some(c) = self.conns.get(conn.slot, conn.gen) else {
            return false;
        };
        if c.version.is_v5() {
            let only_diag = !matches!(
                packet,
                codec::Packet::Publish(_)
                    | codec::Packet::ConnAck(_)
                    | codec::Packet::Disconnect(_)
            );
            let fits = |p: &codec::Packet| {
                codec::encoded_len(p, c.version).is_ok_and(|n| n <= c.client_max_packet as usize)
            };
            if (c.no_problem_info && only_diag) || !fits(packet) {
                if let Some(lean) = without_diagnostics(packet) {
                    return self.write_packet(conn, &lean);
                }
            }
        }
        self.write_packet(conn, packet)
    }

    /// Encodes `packet` into the connection's output if it fits the client's maximum.
    fn write_packet(&mut self, conn: ConnId, packet: &codec::Packet) -> bool {
        let Some(c) = self.conns.get_mut(conn.slot, conn.gen) else {
            return false;
        };
        if c.version.is_v5() {
            match codec::encoded_len(packet, c.version) {
                Ok(n) if n <= c.client_max_packet as usize => {}
                _ => {
                    self.stats.dropped_too_large += 1;
                    return false;
                }
            }
        }
        let tail = c.out.tail_mut();
        let before = tail.len();
        if codec::encode(packet, c.version, tail).is_err() {
            tail.truncate(before);
            return false;
        }
        self.stats.bytes_sent += (tail.len() - before) as u64;
        c.mark_dirty(&mut self.events);
        true
    }
}

/// A copy of `p` without its Reason String and User Properties, or `None` when it has none.
fn without_diagnostics(p: &codec::Packet) -> Option<codec::Packet> {
    use codec::Packet::*;
    fn strip(reason: &mut Option<ByteStr>, user: &mut Vec<codec::UserProperty>) -> bool {
        let had = reason.is_some() || !user.is_empty();
        *reason = None;
        user.clear();
        had
    }
    let mut p = p.clone();
    let had = match &mut p {
        PubAck(a) | PubRec(a) | PubRel(a) | PubComp(a) => strip(
            &mut a.properties.reason_string,
            &mut a.properties.user_properties,
        ),
        SubAck(a) => strip(
            &mut a.properties.reason_string,
            &mut a.properties.user_properties,
        ),
        UnsubAck(a) => strip(
            &mut a.properties.reason_string,
            &mut a.properties.user_properties,
        ),
        Disconnect(d) => strip(
            &mut d.properties.reason_string,
            &mut d.properties.user_properties,
        ),
        ConnAck(a) => strip(
            &mut a.properties.reason_string,
            &mut a.properties.user_properties,
        ),
        Auth(a) => strip(
            &mut a.properties.reason_string,
            &mut a.properties.user_properties,
        ),
        _ => false,
    };
    had.then_some(p)
}
