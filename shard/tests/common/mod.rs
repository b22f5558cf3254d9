//! A virtual broker for tests: several `Shard`s wired by in-memory queues, clients that
//! speak through the codec, and a virtual clock. No sockets, no threads.
#![allow(dead_code)]

use bytes::BytesMut;
use codec::*;
use shard::{home_shard, ConnId, IoEvent, Shard, ShardConfig, ShardId, ShardMsg};
use std::collections::VecDeque;

pub mod chaos;

pub struct World {
    pub shards: Vec<Shard>,
    pub now: u64,
    mesh: VecDeque<(ShardId, ShardId, ShardMsg)>,
    pub clients: Vec<Client>,
}

/// A client as the test sees it: which shard holds its connection and what it received.
pub struct Client {
    pub shard: usize,
    pub conn: Option<ConnId>,
    pub version: ProtocolVersion,
    pub rx: BytesMut,
    pub inbox: VecDeque<Packet>,
    pub closed: bool,
    /// Size of the largest frame the server sent this client, bytes.
    pub largest_frame: usize,
    /// The broker stopped reading this client (publisher back-pressure).
    pub paused: bool,
    /// How many times it was paused.
    pub pauses: u32,
    /// Packets sent while the broker did not read this client, as the kernel would hold
    /// them: handed to the shard in order once it resumes the connection.
    pub unread: VecDeque<Packet>,
}

enum Kind {
    Pause,
    Other,
}

pub type C = usize;

impl World {
    pub fn new(nr: usize) -> Self {
        Self::with_config(nr, ShardConfig::default())
    }

    pub fn with_config(nr: usize, cfg: ShardConfig) -> Self {
        World {
            shards: (0..nr)
                .map(|i| Shard::new(ShardId(i as u16), nr, cfg.clone()))
                .collect(),
            now: 1_000,
            mesh: VecDeque::new(),
            clients: Vec::new(),
        }
    }

    /// Opens a connection on the home shard of `client_id` (as the broker does after
    /// hand-off) and sends CONNECT.
    pub fn connect_with(&mut self, connect: Connect) -> C {
        let nr = self.shards.len();
        let shard = home_shard(&connect.client_id, nr).index();
        let conn = self.shards[shard].open_conn(self.now);
        self.clients.push(Client {
            shard,
            conn: Some(conn),
            version: connect.protocol,
            rx: BytesMut::new(),
            inbox: VecDeque::new(),
            closed: false,
            largest_frame: 0,
            paused: false,
            pauses: 0,
            unread: VecDeque::new(),
        });
        let c = self.clients.len() - 1;
        self.send(c, Packet::Connect(Box::new(connect)));
        c
    }

    pub fn connect(&mut self, id: &str, version: ProtocolVersion, clean: bool) -> C {
        self.connect_with(connect_packet(id, version, clean, 0, None))
    }

    /// Reconnects an existing client slot with a fresh connection.
    pub fn reconnect(&mut self, c: C, connect: Connect) {
        let nr = self.shards.len();
        let shard = home_shard(&connect.client_id, nr).index();
        let conn = self.shards[shard].open_conn(self.now);
        let cl = &mut self.clients[c];
        cl.shard = shard;
        cl.conn = Some(conn);
        cl.version = connect.protocol;
        cl.closed = false;
        cl.inbox.clear();
        cl.rx.clear();
        cl.unread.clear();
        self.send(c, Packet::Connect(Box::new(connect)));
    }

    pub fn send(&mut self, c: C, p: Packet) {
        self.send_unsettled(c, p);
        self.settle();
    }

    /// Hands `p` to `c`'s shard without running the mesh or the I/O events afterwards; while
    /// the shard has the connection paused (checked per packet, as the broker does) it
    /// waits in `unread`, unless it is an acknowledgement that may overtake the waiting
    /// PUBLISHes (as the broker's engine handles them: `engine/held.rs`).
    pub fn send_unsettled(&mut self, c: C, p: Packet) {
        let cl = &mut self.clients[c];
        let Some(conn) = cl.conn else {
            panic!("client {c} has no connection")
        };
        let waiting = self.shards[cl.shard].is_paused(conn) || !cl.unread.is_empty();
        let ack = matches!(
            p,
            Packet::PubAck(_)
                | Packet::PubRec(_)
                | Packet::PubRel(_)
                | Packet::PubComp(_)
                | Packet::PingReq
        );
        let barrier = cl
            .unread
            .iter()
            .any(|q| matches!(q, Packet::Disconnect(_) | Packet::Auth(_)));
        if waiting && (barrier || !ack) {
            cl.unread.push_back(p);
            return;
        }
        self.hand_to_shard(c, p);
    }

    fn hand_to_shard(&mut self, c: C, p: Packet) {
        let cl = &self.clients[c];
        let Some(conn) = cl.conn else { return };
        let mut buf = BytesMut::new();
        encode(&p, cl.version, &mut buf).expect("test packet encodes");
        // The shard closed the connection (its Close event not yet taken, e.g. a held
        // DISCONNECT read on resume): the engine reads no more of it, what follows is
        // discarded while the last bytes are written (`engine/linger.rs`).
        let Some((limits, version)) = self.shards[cl.shard].decode_params(conn) else {
            return;
        };
        match decode(&mut buf, &limits, version) {
            Ok(Some(p)) => self.shards[cl.shard].handle_packet(self.now, conn, p),
            Err(e) => self.shards[cl.shard].decode_error(self.now, conn, e),
            Ok(None) => panic!("test packet is incomplete"),
        }
    }

    /// The socket of `c` drops without DISCONNECT.
    pub fn drop_conn(&mut self, c: C) {
        let cl = &mut self.clients[c];
        if let Some(conn) = cl.conn.take() {
            cl.closed = true;
            cl.unread.clear(); // never read: the socket is gone
            self.shards[cl.shard].conn_lost(self.now, conn);
        }
        self.settle();
    }

    pub fn advance(&mut self, ms: u64) {
        let end = self.now + ms;
        while self.now < end {
            self.now = (self.now + 100).min(end);
            for s in &mut self.shards {
                s.handle_timeout(self.now);
            }
            self.settle();
        }
    }

    /// Runs the mesh and the I/O events until nothing moves.
    pub fn settle(&mut self) {
        loop {
            let mut moved = false;
            for i in 0..self.shards.len() {
                let from = ShardId(i as u16);
                for (to, batch) in self.shards[i].outbox().drain().collect::<Vec<_>>() {
                    for m in batch {
                        self.mesh.push_back((from, to, m));
                    }
                }
            }
            while let Some((from, to, m)) = self.mesh.pop_front() {
                moved = true;
                self.shards[to.index()].handle_shard_msg(self.now, from, m);
            }
            let mut resumed = Vec::new();
            for i in 0..self.shards.len() {
                let mut evs = Vec::new();
                self.shards[i].take_events(&mut evs);
                for ev in evs {
                    moved = true;
                    let ev_kind = if matches!(ev, IoEvent::Pause(_)) {
                        Kind::Pause
                    } else {
                        Kind::Other
                    };
                    match ev {
                        IoEvent::Flush(conn) => {
                            if let Some(out) = self.shards[i].conn_output(self.now, conn) {
                                self.deliver_bytes(i, conn, &out.into_contiguous(), false);
                            }
                        }
                        IoEvent::Close(conn, last) => self.deliver_bytes(i, conn, &last, true),
                        IoEvent::Pause(conn) | IoEvent::Resume(conn) => {
                            let paused = matches!(ev_kind, Kind::Pause);
                            if let Some(cl) = self
                                .clients
                                .iter_mut()
                                .find(|c| c.shard == i && c.conn == Some(conn))
                            {
                                cl.paused = paused;
                                cl.pauses += paused as u32;
                            }
                            if !paused {
                                resumed.push((i, conn));
                            }
                        }
                    }
                }
            }
            for (shard, conn) in resumed {
                let Some(c) = self
                    .clients
                    .iter()
                    .position(|c| c.shard == shard && c.conn == Some(conn))
                else {
                    continue;
                };
                // Resumed: what the client sent meanwhile is read now, until paused again.
                while !self.shards[shard].is_paused(conn) {
                    let Some(p) = self.clients[c].unread.pop_front() else {
                        break;
                    };
                    moved = true;
                    self.hand_to_shard(c, p);
                }
            }
            if !moved {
                break;
            }
        }
    }

    fn deliver_bytes(&mut self, shard: usize, conn: ConnId, bytes: &[u8], close: bool) {
        let Some(cl) = self
            .clients
            .iter_mut()
            .find(|c| c.shard == shard && c.conn == Some(conn))
        else {
            return;
        };
        cl.rx.extend_from_slice(bytes);
        let limits = Limits {
            max_packet_size: Limits::PROTOCOL_MAX,
        };
        loop {
            let before = cl.rx.len();
            let Some(p) = decode(&mut cl.rx, &limits, cl.version).expect("server output decodes")
            else {
                break;
            };
            cl.largest_frame = cl.largest_frame.max(before - cl.rx.len());
            cl.inbox.push_back(p);
        }
        if close {
            cl.closed = true;
            cl.conn = None;
        }
    }

    /// Takes every packet `c` received so far.
    pub fn recv(&mut self, c: C) -> Vec<Packet> {
        self.clients[c].inbox.drain(..).collect()
    }

    /// Takes the PUBLISH packets `c` received so far.
    pub fn publishes(&mut self, c: C) -> Vec<Publish> {
        self.recv(c)
            .into_iter()
            .filter_map(|p| {
                if let Packet::Publish(p) = p {
                    Some(p)
                } else {
                    None
                }
            })
            .collect()
    }

    /// Sends raw bytes from `c` as if read from its socket (decoded with the shard's limits).
    pub fn send_bytes(&mut self, c: C, bytes: &[u8]) {
        let cl = &self.clients[c];
        let conn = cl.conn.expect("client has a connection");
        let mut buf = BytesMut::from(bytes);
        while let Some((limits, version)) = self.shards[cl.shard].decode_params(conn) {
            self.shards[cl.shard].peek_connect(conn, &buf);
            match decode(&mut buf, &limits, version) {
                Ok(Some(p)) => self.shards[cl.shard].handle_packet(self.now, conn, p),
                Err(e) => {
                    self.shards[cl.shard].decode_error(self.now, conn, e);
                    break;
                }
                Ok(None) => break,
            }
        }
        self.settle();
    }

    /// Shuts every shard down (the broker's SIGTERM path).
    pub fn shutdown(&mut self) {
        for s in &mut self.shards {
            s.shutdown(self.now);
        }
        self.settle();
    }

    /// Sum of every shard's counters.
    pub fn stats(&self) -> shard::ShardStats {
        let mut t = shard::ShardStats::default();
        for s in &self.shards {
            t += s.stats();
        }
        t
    }

    /// Total sessions over all shards.
    pub fn sessions(&self) -> usize {
        self.shards.iter().map(|s| s.session_count()).sum()
    }

    pub fn is_closed(&self, c: C) -> bool {
        self.clients[c].closed
    }

    pub fn subscribe(&mut self, c: C, pid: u16, filter: &str, qos: QoS) {
        self.send(c, subscribe_packet(pid, filter, qos));
    }

    pub fn publish(&mut self, c: C, topic: &str, payload: &str, qos: QoS, retain: bool, pid: u16) {
        self.send(c, publish_packet(topic, payload, qos, retain, pid));
    }
}

pub fn pid(n: u16) -> PacketId {
    PacketId::new(n).expect("non-zero")
}

pub fn connect_packet(
    id: &str,
    protocol: ProtocolVersion,
    clean: bool,
    keep_alive: u16,
    will: Option<LastWill>,
) -> Connect {
    Connect {
        protocol,
        clean_start: clean,
        keep_alive,
        client_id: ByteStr::from(id),
        will,
        username: None,
        password: None,
        properties: ConnectProperties::default(),
    }
}

/// A v5 CONNECT with the given properties.
pub fn connect5(id: &str, clean: bool, properties: ConnectProperties) -> Connect {
    Connect {
        properties,
        ..connect_packet(id, ProtocolVersion::V5, clean, 0, None)
    }
}

/// The last DISCONNECT `packets` holds.
pub fn disconnect_of(packets: &[Packet]) -> Option<&Disconnect> {
    packets.iter().rev().find_map(|p| match p {
        Packet::Disconnect(d) => Some(d),
        _ => None,
    })
}

/// The acknowledgement of `kind` (PUBACK, PUBREC...) for packet id `id` in `packets`.
pub fn ack_of(packets: &[Packet], id: u16) -> Option<&PubAck> {
    packets.iter().find_map(|p| match p {
        Packet::PubAck(a) | Packet::PubRec(a) | Packet::PubComp(a) | Packet::PubRel(a)
            if a.packet_id.get() == id =>
        {
            Some(a)
        }
        _ => None,
    })
}

/// A v5 PUBLISH with properties.
pub fn publish5(
    topic: &str,
    payload: &str,
    qos: QoS,
    p: u16,
    properties: PublishProperties,
) -> Packet {
    let Packet::Publish(mut x) = publish_packet(topic, payload, qos, false, p) else {
        unreachable!()
    };
    x.properties = properties;
    Packet::Publish(x)
}

/// A SUBSCRIBE of one filter with full options and an optional subscription id.
pub fn subscribe_with(p: u16, f: SubscribeFilter, sub_id: Option<u32>) -> Packet {
    Packet::Subscribe(Subscribe {
        packet_id: pid(p),
        filters: vec![f],
        properties: SubscribeProperties {
            subscription_identifier: sub_id.and_then(std::num::NonZeroU32::new),
            user_properties: Vec::new(),
        },
    })
}

pub fn unsubscribe_packet(p: u16, filter: &str) -> Packet {
    Packet::Unsubscribe(Unsubscribe {
        packet_id: pid(p),
        filters: vec![ByteStr::from(filter)],
        user_properties: Vec::new(),
    })
}

/// The SUBACK codes in `packets`.
pub fn suback_codes(packets: &[Packet]) -> Vec<ReasonCode> {
    packets
        .iter()
        .find_map(|p| match p {
            Packet::SubAck(s) => Some(s.codes.clone()),
            _ => None,
        })
        .expect("SUBACK")
}

pub fn subscribe_packet(p: u16, filter: &str, qos: QoS) -> Packet {
    Packet::Subscribe(Subscribe {
        packet_id: pid(p),
        filters: vec![SubscribeFilter::new(filter, qos)],
        properties: SubscribeProperties::default(),
    })
}

pub fn publish_packet(topic: &str, payload: &str, qos: QoS, retain: bool, p: u16) -> Packet {
    Packet::Publish(Publish {
        dup: false,
        qos,
        retain,
        topic: ByteStr::from(topic),
        packet_id: if qos == QoS::AtMostOnce {
            None
        } else {
            Some(pid(p))
        },
        properties: PublishProperties::default(),
        payload: bytes::Bytes::copy_from_slice(payload.as_bytes()),
    })
}

/// A client id whose home is `shard` of `nr`.
pub fn id_on(prefix: &str, shard: usize, nr: usize) -> String {
    (0..)
        .map(|i| format!("{prefix}-{i}"))
        .find(|id| home_shard(id, nr).index() == shard)
        .expect("some id lands there")
}

pub fn connack(p: &Packet) -> &ConnAck {
    match p {
        Packet::ConnAck(a) => a,
        other => panic!("expected CONNACK, got {other:?}"),
    }
}
