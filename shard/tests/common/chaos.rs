//! Random client behaviour against a `World`, with the promises checked as invariants:
//! no panic; every QoS 1/2 message the broker acknowledged reaches every subscriber (with
//! a QoS 1/2 subscription) that held a matching subscription then, or is counted under a
//! drop reason MQTT allows; QoS 2 is delivered at most once; the broker never has more
//! QoS 1/2 messages unacknowledged at a client than its window.
//!
//! Shared by the proptest (`tests/chaos.rs`) and the cargo-fuzz target (`fuzz/`), which
//! turn their input into `Op`s.
#![allow(dead_code)]

use super::*;
use std::collections::{HashMap, HashSet};

pub const CLIENTS: usize = 4;
pub const TOPICS: [&str; 3] = ["c/a", "c/b", "c/c"];
/// Filters clients subscribe to: the topics, and a wildcard over all of them.
pub const FILTERS: [&str; 4] = ["c/a", "c/b", "c/c", "c/#"];
const WINDOW: u16 = 2;
/// The server's Receive Maximum for client PUBLISHes.
const RECEIVE_MAXIMUM: usize = 4;

#[derive(Debug, Clone, Copy)]
pub enum Op {
    Connect {
        c: u8,
        clean: bool,
        v5: bool,
    },
    Disconnect {
        c: u8,
    },
    Drop {
        c: u8,
    },
    Subscribe {
        c: u8,
        f: u8,
        qos: u8,
    },
    Unsubscribe {
        c: u8,
        f: u8,
    },
    Publish {
        c: u8,
        t: u8,
        qos: u8,
        retain: bool,
    },
    /// The client acknowledges what it received (PUBACK, PUBREC, PUBCOMP).
    Ack {
        c: u8,
    },
    Advance {
        ms: u16,
    },
}

impl Op {
    /// An op from 4 bytes of fuzz input.
    pub fn from_bytes(b: [u8; 4]) -> Op {
        let c = b[1] % CLIENTS as u8;
        match b[0] % 9 {
            0 => Op::Connect {
                c,
                clean: b[2] & 1 == 1,
                v5: b[2] & 2 == 2,
            },
            1 => Op::Disconnect { c },
            2 => Op::Drop { c },
            3 => Op::Subscribe {
                c,
                f: b[2] % FILTERS.len() as u8,
                qos: b[3] % 3,
            },
            4 => Op::Unsubscribe {
                c,
                f: b[2] % FILTERS.len() as u8,
            },
            5 | 6 => Op::Publish {
                c,
                t: b[2] % TOPICS.len() as u8,
                qos: b[3] % 3,
                retain: b[3] & 4 == 4,
            },
            7 => Op::Ack { c },
            _ => Op::Advance {
                ms: u16::from(b[2]) * 40,
            },
        }
    }
}

/// Runs one fuzz input: byte 0 picks 1 to 3 shards, byte 1 the offline queue policy, then
/// 4 bytes per operation (`Op::from_bytes`), at most 200 of them.
pub fn run_input(data: &[u8]) {
    let [a, b, rest @ ..] = data else { return };
    let ops: Vec<Op> = rest
        .chunks_exact(4)
        .take(200)
        .map(|c| Op::from_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    Chaos::new(1 + usize::from(*a) % 3, b & 1 == 1).run(&ops);
}

/// What the test knows of one client.
#[derive(Default)]
struct Model {
    slot: Option<C>,
    online: bool,
    /// Its session survives a disconnect (clean = false at the last CONNECT).
    persistent: bool,
    /// Filters with a granted QoS, as the session holds them.
    subs: HashMap<u8, u8>,
    /// Bumped whenever subscriptions may have gone (UNSUBSCRIBE, session cleared): a
    /// message is owed only if nothing went between its PUBLISH and its acknowledgement
    /// (a paused publisher's PUBLISH is matched when the broker reads it, not when sent).
    sub_epoch: u32,
    next_pid: u16,
    /// Connected with MQTT 5 (then it obeys the server's Receive Maximum).
    v5: bool,
    /// Our PUBLISHes awaiting their acknowledgement: packet id -> message id.
    awaiting: HashMap<u16, u32>,
    /// Our QoS 2 PUBLISHes whose PUBREC came: PUBREL sent (or owed), PUBCOMP not yet seen.
    releasing: HashSet<u16>,
    /// Per filter, how many UNSUBSCRIBEs were sent; per SUBSCRIBE packet id, that count when
    /// it was sent. A SUBACK answering a SUBSCRIBE that an UNSUBSCRIBE of the same filter
    /// followed grants nothing lasting (both may be read together by a paused connection).
    unsubs: HashMap<u8, u32>,
    sub_sent: HashMap<u16, u32>,
    /// An UNSUBSCRIBE (packet id 2) awaits its UNSUBACK.
    unsub_pending: bool,
    /// Incoming QoS 2 ids: PUBREC sent, PUBREL not yet seen (the receiver's dedupe).
    qos2_pending: HashSet<u16>,
    /// QoS 1/2 PUBLISHes received and not yet acknowledged by us.
    unacked: Vec<(u16, u8)>,
}

pub struct Chaos {
    pub w: World,
    nr: usize,
    clients: Vec<Model>,
    next_msg: u32,
    /// Per QoS 1/2 message, the clients that held a matching QoS 1/2 subscription when it
    /// was published: owed it once the broker acknowledged it.
    pending_owed: Vec<(u32, Vec<(u8, u32)>)>,
    /// Messages the broker acknowledged with success, with every client's `sub_epoch` then.
    acked: HashMap<u32, Vec<u32>>,
    /// Deliveries counted per (message, subscriber).
    delivered: HashMap<(u32, u8), u32>,
    /// QoS 2 deliveries per (message, subscriber), after the receiver's packet-id dedupe:
    /// never more than one.
    exactly_once: HashMap<(u32, u8), u32>,
    qos2: HashSet<u32>,
    retained: HashSet<u32>,
}

fn qos_of(q: u8) -> QoS {
    match q {
        1 => QoS::AtLeastOnce,
        2 => QoS::ExactlyOnce,
        _ => QoS::AtMostOnce,
    }
}

fn id(c: u8, nr: usize) -> String {
    id_on(&format!("chaos{c}"), usize::from(c) % nr, nr)
}

impl Chaos {
    pub fn new(nr: usize, policy_newest: bool) -> Self {
        let cfg = shard::ShardConfig {
            max_queued_messages: 6,
            max_inflight: WINDOW,
            receive_maximum: RECEIVE_MAXIMUM as u16,
            // Small, so that acknowledgements go both ways: on credit and confirmed.
            link_credit: 2,
            offline_queue_policy: if policy_newest {
                shard::QueuePolicy::DropNewest
            } else {
                shard::QueuePolicy::DropOldest
            },
            ..Default::default()
        };
        Chaos {
            w: World::with_config(nr, cfg),
            nr,
            clients: (0..CLIENTS).map(|_| Model::default()).collect(),
            next_msg: 0,
            pending_owed: Vec::new(),
            acked: HashMap::new(),
            delivered: HashMap::new(),
            exactly_once: HashMap::new(),
            qos2: HashSet::new(),
            retained: HashSet::new(),
        }
    }

    /// Drops counted other than QoS 0 to a slow consumer (which nothing here acknowledged).
    pub fn counted_drops(&self) -> u64 {
        let st = self.w.stats();
        st.messages_dropped - st.drops.get(shard::DropReason::SlowConsumer)
    }

    pub fn run(&mut self, ops: &[Op]) {
        for op in ops {
            self.apply(*op);
            self.collect_all();
        }
        self.finish();
    }

    fn apply(&mut self, op: Op) {
        match op {
            Op::Connect { c, clean, v5 } => {
                let m = &self.clients[c as usize];
                if m.online {
                    return;
                }
                let version = if v5 {
                    ProtocolVersion::V5
                } else {
                    ProtocolVersion::V3_1_1
                };
                let mut p = connect_packet(&id(c, self.nr), version, clean, 0, None);
                if v5 && !clean {
                    p.properties.session_expiry_interval = Some(3600);
                }
                let slot = match m.slot {
                    Some(s) => {
                        self.w.reconnect(s, p);
                        s
                    }
                    None => self.w.connect_with(p),
                };
                let m = &mut self.clients[c as usize];
                m.slot = Some(slot);
                m.online = !self.w.is_closed(slot);
                let resumed = !clean && m.persistent;
                if !resumed {
                    m.subs.clear();
                    m.sub_epoch += 1;
                    m.qos2_pending.clear();
                    m.releasing.clear();
                }
                m.persistent = !clean;
                m.v5 = v5;
                m.awaiting.clear();
                m.unacked.clear(); // what is still owed is resent (DUP)
                m.sub_sent.clear(); // a new connection: no SUBACK or UNSUBACK is coming
                m.unsub_pending = false;
                // A resumed session still holds our released QoS 2 ids: PUBREL again
                // [MQTT-4.4.0-1], as a client must, or they count against Receive Maximum.
                let rels: Vec<u16> = m.releasing.iter().copied().collect();
                for r in rels {
                    if !self.w.is_closed(slot) {
                        self.w.send(slot, Packet::PubRel(PubAck::new(self::pid(r))));
                    }
                }
            }
            Op::Disconnect { c } => self.offline(c, true),
            Op::Drop { c } => self.offline(c, false),
            Op::Subscribe { c, f, qos } => {
                let Some(slot) = self.online(c) else { return };
                let q = qos_of(qos);
                // The packet id names filter and QoS: the subscription counts from its SUBACK
                // (a paused client's SUBSCRIBE waits behind its PUBLISHes).
                let pid = 100 + u16::from(f) * 3 + u16::from(qos);
                let m = &mut self.clients[c as usize];
                if m.sub_sent.contains_key(&pid) {
                    return; // that packet id is in use until its SUBACK [MQTT-2.2.1-3]
                }
                let unsubs = m.unsubs.get(&f).copied().unwrap_or(0);
                m.sub_sent.insert(pid, unsubs);
                self.w
                    .send(slot, subscribe_packet(pid, FILTERS[f as usize], q));
            }
            Op::Unsubscribe { c, f } => {
                let Some(slot) = self.online(c) else { return };
                let m = &mut self.clients[c as usize];
                if m.unsub_pending {
                    return; // its one packet id is in use until the UNSUBACK
                }
                m.unsub_pending = true;
                self.w
                    .send(slot, unsubscribe_packet(2, FILTERS[f as usize]));
                let m = &mut self.clients[c as usize];
                m.subs.remove(&f);
                m.sub_epoch += 1;
                *m.unsubs.entry(f).or_default() += 1;
            }
            Op::Publish { c, t, qos, retain } => {
                let Some(slot) = self.online(c) else { return };
                let m = &self.clients[c as usize];
                if qos > 0 && m.v5 && m.awaiting.len() + m.releasing.len() >= RECEIVE_MAXIMUM {
                    // A v5 client keeps to the server's Receive Maximum (§4.9); over it the
                    // server disconnects with 0x93. A v3 client has none: the broker holds it.
                    return;
                }
                self.next_msg += 1;
                let msg = self.next_msg;
                let m = &mut self.clients[c as usize];
                m.next_pid = m.next_pid % 60_000 + 1;
                let pid = m.next_pid;
                if qos > 0 {
                    m.awaiting.insert(pid, msg);
                }
                if qos == 2 {
                    self.qos2.insert(msg);
                }
                if retain {
                    self.retained.insert(msg);
                }
                let q = qos_of(qos);
                // Who holds a matching QoS 1/2 subscription now (the ack comes after).
                let owed: Vec<(u8, u32)> = (0..CLIENTS as u8)
                    .filter(|&s| self.matches(s, t) >= 1)
                    .map(|s| (s, self.clients[s as usize].sub_epoch))
                    .collect();
                let payload = format!("{msg}");
                self.w.send_unsettled(
                    slot,
                    publish_packet(TOPICS[t as usize], &payload, q, retain, pid),
                );
                self.w.settle();
                if qos > 0 {
                    self.pending_owed.push((msg, owed));
                }
            }
            Op::Ack { c } => {
                let Some(slot) = self.online(c) else { return };
                let unacked = std::mem::take(&mut self.clients[c as usize].unacked);
                for (pid, qos) in unacked {
                    let p = PubAck::new(self::pid(pid));
                    if qos == 1 {
                        self.w.send(slot, Packet::PubAck(p));
                    } else {
                        self.w.send(slot, Packet::PubRec(p));
                    }
                }
            }
            Op::Advance { ms } => self.w.advance(u64::from(ms)),
        }
    }

    /// Highest granted QoS among `s`'s subscriptions matching topic `t`, or -1 for none.
    fn matches(&self, s: u8, t: u8) -> i8 {
        let m = &self.clients[s as usize];
        if !m.online && !m.persistent {
            return -1;
        }
        m.subs
            .iter()
            .filter(|(&f, _)| f == t || f == 3)
            .map(|(_, &q)| q as i8)
            .max()
            .unwrap_or(-1)
    }

    fn online(&self, c: u8) -> Option<C> {
        let m = &self.clients[c as usize];
        m.slot.filter(|&s| m.online && !self.w.is_closed(s))
    }

    fn offline(&mut self, c: u8, graceful: bool) {
        let Some(slot) = self.online(c) else { return };
        if graceful {
            self.w.send(
                slot,
                Packet::Disconnect(Disconnect::new(ReasonCode::Success)),
            );
            if !self.w.is_closed(slot) {
                // The DISCONNECT waits unread behind held PUBLISHes (paused): the client
                // closes its socket after it, as clients do, and the broker sees the close.
                self.w.drop_conn(slot);
            }
        } else {
            self.w.drop_conn(slot);
        }
        self.collect(c);
        let m = &mut self.clients[c as usize];
        m.online = false;
        if !m.persistent {
            m.subs.clear();
            m.sub_epoch += 1;
            m.qos2_pending.clear();
        }
    }

    fn collect_all(&mut self) {
        for c in 0..CLIENTS as u8 {
            self.collect(c);
        }
    }

    /// Takes note of every connection the broker closed (stuck, protocol error, takeover)
    /// before any acknowledgement is read: a session that ended with its connection holds
    /// no subscription for what is acknowledged after.
    fn note_closes(&mut self) {
        for m in &mut self.clients {
            let closed = m.slot.is_some_and(|s| self.w.is_closed(s));
            if closed && m.online {
                m.online = false;
                if !m.persistent {
                    m.subs.clear();
                    m.sub_epoch += 1;
                    m.qos2_pending.clear();
                }
            }
        }
    }

    /// Reads what client `c` received and updates the model.
    fn collect(&mut self, c: u8) {
        let Some(slot) = self.clients[c as usize].slot else {
            return;
        };
        self.note_closes();
        let epochs: Vec<u32> = self.clients.iter().map(|m| m.sub_epoch).collect();
        for p in self.w.recv(slot) {
            let m = &mut self.clients[c as usize];
            let is_rec = matches!(p, Packet::PubRec(_));
            match p {
                Packet::Publish(p) => {
                    let msg: u32 = std::str::from_utf8(&p.payload)
                        .ok()
                        .and_then(|s| s.parse().ok())
                        .expect("chaos payloads are message ids");
                    let pid = p.packet_id.map(|x| x.get());
                    let fresh = match (p.qos, pid) {
                        (QoS::ExactlyOnce, Some(id)) => m.qos2_pending.insert(id),
                        _ => true,
                    };
                    if let Some(id) = pid {
                        m.unacked.retain(|&(x, _)| x != id);
                        m.unacked.push((id, p.qos as u8));
                    }
                    assert!(
                        m.unacked.len() <= usize::from(WINDOW),
                        "client {c} holds {} unacknowledged PUBLISHes, window {WINDOW}",
                        m.unacked.len()
                    );
                    *self.delivered.entry((msg, c)).or_default() += 1;
                    if fresh && p.qos == QoS::ExactlyOnce {
                        *self.exactly_once.entry((msg, c)).or_default() += 1;
                    }
                }
                Packet::SubAck(a) if a.packet_id.get() >= 100 => {
                    let n = a.packet_id.get() - 100;
                    let (f, q) = ((n / 3) as u8, (n % 3) as u8);
                    let unsubs = m.unsubs.get(&f).copied().unwrap_or(0);
                    let undone = m.sub_sent.remove(&a.packet_id.get()) != Some(unsubs);
                    let granted = !undone && a.codes.iter().all(|c| !c.is_error());
                    // A downgrade (QoS 2 -> 0, say) takes back what was owed at the old QoS,
                    // as an UNSUBSCRIBE would (a QoS 0 message may be dropped).
                    if granted && m.subs.insert(f, q).is_some_and(|old| q < old) {
                        m.sub_epoch += 1;
                    }
                }
                Packet::PubComp(a) => {
                    m.releasing.remove(&a.packet_id.get());
                }
                Packet::UnsubAck(_) => m.unsub_pending = false,
                Packet::PubRel(r) => {
                    m.qos2_pending.remove(&r.packet_id.get());
                    if !self.w.is_closed(slot) {
                        self.w.send(slot, Packet::PubComp(PubAck::new(r.packet_id)));
                    }
                }
                Packet::PubAck(a) | Packet::PubRec(a) => {
                    let rec = a.packet_id;
                    let Some(msg) = m.awaiting.remove(&a.packet_id.get()) else {
                        continue;
                    };
                    if !a.code.is_error() {
                        self.acked.insert(msg, epochs.clone());
                    }
                    if is_rec && !a.code.is_error() {
                        m.releasing.insert(rec.get());
                        if !self.w.is_closed(slot) {
                            self.w.send(slot, Packet::PubRel(PubAck::new(rec)));
                        }
                    }
                }
                _ => {}
            }
        }
    }

    /// Brings every persistent session back, lets every client acknowledge until nothing
    /// moves, then checks the promises.
    fn finish(&mut self) {
        for _ in 0..200 {
            for c in 0..CLIENTS as u8 {
                let m = &self.clients[c as usize];
                if m.slot.is_some() && !m.online && m.persistent {
                    self.apply(Op::Connect {
                        c,
                        clean: false,
                        v5: false,
                    });
                }
            }
            // Twice: answering a PUBREL frees a window slot, and what that sends arrives
            // only after the first pass.
            self.collect_all();
            self.collect_all();
            let busy = self
                .clients
                .iter()
                .any(|m| !m.unacked.is_empty() || (m.slot.is_some() && !m.online && m.persistent));
            if !busy {
                break;
            }
            for c in 0..CLIENTS as u8 {
                self.apply(Op::Ack { c });
            }
        }
        self.w.advance(1_000);
        self.collect_all();
        let stats = self.w.stats();
        let allowed = self.counted_drops();
        let mut missing = Vec::new();
        for (msg, subs) in &self.pending_owed {
            let Some(at_ack) = self.acked.get(msg) else {
                continue;
            };
            let subs = subs
                .iter()
                .filter(|(s, epoch)| at_ack[*s as usize] == *epoch)
                .map(|(s, _)| s);
            for s in subs {
                let n = self.delivered.get(&(*msg, *s)).copied().unwrap_or(0);
                if n == 0 {
                    missing.push((*msg, *s));
                }
                let once = self.exactly_once.get(&(*msg, *s)).copied().unwrap_or(0);
                if self.qos2.contains(msg) && !self.retained.contains(msg) {
                    assert!(
                        once <= 1,
                        "QoS 2 message {msg} delivered {once} times to client {s}"
                    );
                }
            }
        }
        assert!(
            missing.len() as u64 <= allowed,
            "{} acknowledged (message, subscriber) pairs never delivered, {allowed} drops \
             counted: {missing:?}; {stats:?}",
            missing.len()
        );
    }
}
