//! One MQTT client connection of the harness: its phase (connecting, waiting for CONNACK,
//! for SUBACK, ready), its buffers, and what it does with each packet the broker sends.
//!
//! All MQTT bytes come from the workspace codec: CONNECT/SUBSCRIBE/acks via `codec::encode`,
//! publishes via one `codec::EncodedPublish` per publisher (encoded once; per message only the
//! packet id and the 24-byte timing header are patched into the copy in the write buffer),
//! and everything received via `codec::decode`. Nothing here does I/O; the loop in `mod.rs`
//! reads, writes and owns the socket. Per message nothing is allocated.

use crate::payload::{Header, HEADER_LEN};
use crate::seqtrack::{Arrival, SeqStream};
use crate::spec::Role;
use crate::stats::{Counters, Hists};
use bytes::BytesMut;
use codec::{
    ByteStr, ConnAck, Connect, ConnectProperties, Disconnect, EncodedPublish, Packet, PacketId,
    ProtocolVersion, PubAck, QoS, ReasonCode, SubAck, Subscribe, SubscribeFilter,
    SubscribeProperties,
};
use std::collections::VecDeque;
use std::os::fd::RawFd;

/// Write-buffer size above which a QoS 0 publisher waits for the socket to drain: a flood
/// is paced by TCP back-pressure instead of growing the buffer without bound.
pub const HIGH_WATER: usize = 64 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Phase {
    Connecting,
    WaitConnack,
    WaitSuback,
    Ready,
    Closed,
}

impl Phase {
    /// Still on the way up (counts against the connect-phase window).
    pub fn pending(self) -> bool {
        self < Phase::Ready
    }
}

/// Per-run settings and the worker's measurements, shared by every connection.
pub struct Ctx {
    pub version: ProtocolVersion,
    pub qos: QoS,
    pub limit: u64,
    /// Bytes of every payload (`-s`), at least `HEADER_LEN`.
    pub payload_len: usize,
    pub counters: Counters,
    /// Whole-run histograms and the ones of the current progress interval.
    pub hists: Hists,
    pub interval: Hists,
}

pub struct PubState {
    frame: EncodedPublish,
    publisher: u32,
    seq: u64,
    /// Unacknowledged (packet id, send time); acks normally come in order, so the front matches.
    inflight: VecDeque<(u16, u64)>,
    next_pid: u16,
    window: u16,
    finished: bool,
}

pub struct SubState {
    filter: ByteStr,
    /// Streams by publisher; one entry in p2p and fanout, one per publisher in fanin.
    streams: ahash::AHashMap<u32, SeqStream>,
}

pub struct Conn {
    pub fd: RawFd,
    pub phase: Phase,
    pub role: Role,
    pub wbuf: BytesMut,
    /// Bytes of a partial packet left from the last read.
    pub rbuf: BytesMut,
    pub writable: bool,
    pub dirty: bool,
    pub started_ns: u64,
    pub last_tx_ns: u64,
    pub pubs: Option<Box<PubState>>,
    pub subs: Option<Box<SubState>>,
    /// TLS and/or WebSocket between the socket and `wbuf`/`rbuf` (none for plain TCP).
    pub tunnel: Option<Box<super::tunnel::Tunnel>>,
}

/// What the loop must do after a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    Continue,
    /// Close the connection (the broker refused or broke the protocol).
    Close,
}

impl Conn {
    /// A connection whose CONNECT is already in its write buffer.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        fd: RawFd,
        role: Role,
        client_id: &str,
        topic: &str,
        index: u64,
        spec: &crate::spec::RunSpec,
        ctx: &Ctx,
        payload: &bytes::Bytes,
        now: u64,
    ) -> anyhow::Result<Conn> {
        let mut wbuf = BytesMut::new();
        let v5 = ctx.version.is_v5();
        let connect = Connect {
            protocol: ctx.version,
            clean_start: spec.clean,
            keep_alive: spec.keepalive,
            client_id: ByteStr::from(client_id),
            will: None,
            username: spec.username.as_deref().map(ByteStr::from),
            password: spec
                .password
                .as_ref()
                .map(|p| bytes::Bytes::copy_from_slice(p.as_bytes())),
            properties: ConnectProperties {
                session_expiry_interval: (v5 && spec.session_expiry > 0)
                    .then_some(spec.session_expiry),
                ..Default::default()
            },
        };
        codec::encode(&Packet::Connect(Box::new(connect)), ctx.version, &mut wbuf)?;
        let (mut pubs, mut subs) = (None, None);
        match role {
            Role::Pub => {
                let p = codec::Publish {
                    dup: false,
                    qos: ctx.qos,
                    retain: spec.retain,
                    topic: ByteStr::from(topic),
                    packet_id: None,
                    properties: Default::default(),
                    payload: payload.clone(),
                };
                pubs = Some(Box::new(PubState {
                    frame: EncodedPublish::new(&p, ctx.version)?,
                    publisher: index as u32,
                    seq: 0,
                    inflight: VecDeque::new(),
                    next_pid: 1,
                    window: spec.inflight,
                    finished: false,
                }));
            }
            Role::Sub => {
                subs = Some(Box::new(SubState {
                    filter: ByteStr::from(topic),
                    streams: Default::default(),
                }))
            }
            Role::Idle => {}
        }
        Ok(Conn {
            fd,
            phase: Phase::Connecting,
            role,
            wbuf,
            rbuf: BytesMut::new(),
            writable: false,
            dirty: true,
            started_ns: now,
            last_tx_ns: now,
            pubs,
            subs,
            tunnel: None,
        })
    }

    fn send(&mut self, p: &Packet, ctx: &Ctx) {
        // Acks and pings of valid ids cannot fail to encode; a failure would be a codec bug.
        if let Err(e) = codec::encode(p, ctx.version, &mut self.wbuf) {
            eprintln!("ringmq-bench: encode {:?}: {e}", p.packet_type());
        }
        self.dirty = true;
    }

    pub fn ping(&mut self, ctx: &Ctx) {
        self.send(&Packet::PingReq, ctx);
    }

    pub fn disconnect(&mut self, ctx: &Ctx) {
        self.send(
            &Packet::Disconnect(Disconnect::new(ReasonCode::Success)),
            ctx,
        );
    }

    /// True when this publisher may send one more message now.
    pub fn can_publish(&self, ctx: &Ctx) -> bool {
        let Some(p) = &self.pubs else { return false };
        if self.phase != Phase::Ready || (ctx.limit > 0 && p.seq >= ctx.limit) {
            return false;
        }
        if ctx.qos == QoS::AtMostOnce {
            self.writable && self.wbuf.len() < HIGH_WATER
        } else {
            p.inflight.len() < p.window as usize
        }
    }

    /// Appends one PUBLISH with the next sequence number and `now` as its send time.
    pub fn publish(&mut self, ctx: &mut Ctx, now: u64) {
        let Some(p) = self.pubs.as_mut() else { return };
        let pid = if ctx.qos == QoS::AtMostOnce {
            None
        } else {
            let id = p.next_pid;
            p.next_pid = if id == u16::MAX { 1 } else { id + 1 };
            p.inflight.push_back((id, now));
            PacketId::new(id)
        };
        p.frame.write_to(pid, false, &mut self.wbuf);
        // The payload is the frame's tail: patch the timing header into it.
        let len = self.wbuf.len();
        let start = len - ctx.payload_len;
        Header {
            publisher: p.publisher,
            seq: p.seq,
            sent_ns: now,
        }
        .write(&mut self.wbuf[start..start + HEADER_LEN]);
        p.seq += 1;
        ctx.counters.published += 1;
        if ctx.counters.first_pub_ns == 0 {
            ctx.counters.first_pub_ns = now;
        }
        ctx.counters.last_pub_ns = now;
        self.dirty = true;
        self.last_tx_ns = now;
        self.check_finished(ctx);
    }

    fn check_finished(&mut self, ctx: &mut Ctx) {
        if let Some(p) = self.pubs.as_mut() {
            if !p.finished && ctx.limit > 0 && p.seq >= ctx.limit && p.inflight.is_empty() {
                p.finished = true;
                ctx.counters.pub_finished += 1;
            }
        }
    }

    /// Marks a publisher done when its connection ends, so the run does not wait for it.
    pub fn on_closed(&mut self, ctx: &mut Ctx) {
        if let Some(p) = self.pubs.as_mut() {
            if !p.finished {
                p.finished = true;
                ctx.counters.pub_finished += 1;
            }
        }
    }

    fn acked(&mut self, id: PacketId, ctx: &mut Ctx, now: u64) {
        let Some(p) = self.pubs.as_mut() else { return };
        let id = id.get();
        let pos = if p.inflight.front().map(|x| x.0) == Some(id) {
            Some(0)
        } else {
            p.inflight.iter().position(|x| x.0 == id)
        };
        if let Some(i) = pos {
            if let Some((_, sent)) = p.inflight.remove(i) {
                ctx.counters.pub_acked += 1;
                let d = now.saturating_sub(sent);
                Hists::record_ns(&mut ctx.hists.ack, d);
                Hists::record_ns(&mut ctx.interval.ack, d);
            }
        }
        self.check_finished(ctx);
    }

    /// Handles one packet from the broker.
    pub fn on_packet(&mut self, pkt: Packet, ctx: &mut Ctx, now: u64) -> Next {
        match pkt {
            Packet::ConnAck(ack) => self.on_connack(&ack, ctx, now),
            Packet::SubAck(ack) => self.on_suback(&ack, ctx),
            Packet::Publish(p) => {
                self.on_publish(p.qos, p.packet_id, &p.payload, ctx, now);
                Next::Continue
            }
            Packet::PubAck(a) | Packet::PubComp(a) => {
                self.acked(a.packet_id, ctx, now);
                Next::Continue
            }
            Packet::PubRec(a) => {
                self.send(&Packet::PubRel(PubAck::new(a.packet_id)), ctx);
                Next::Continue
            }
            Packet::PubRel(a) => {
                self.send(&Packet::PubComp(PubAck::new(a.packet_id)), ctx);
                Next::Continue
            }
            Packet::Disconnect(_) => Next::Close,
            _ => Next::Continue,
        }
    }

    fn on_connack(&mut self, ack: &ConnAck, ctx: &mut Ctx, now: u64) -> Next {
        if self.phase != Phase::WaitConnack {
            return Next::Close;
        }
        if ack.code != ReasonCode::Success {
            ctx.counters.connack_refused += 1;
            return Next::Close;
        }
        ctx.counters.connected += 1;
        let d = now.saturating_sub(self.started_ns);
        Hists::record_ns(&mut ctx.hists.connect, d);
        Hists::record_ns(&mut ctx.interval.connect, d);
        if let Some(p) = self.pubs.as_mut() {
            ctx.counters.publishers += 1;
            if let Some(rm) = ack.properties.receive_maximum {
                p.window = p.window.min(rm.max(1));
            }
        }
        self.phase = Phase::Ready;
        if let Some(s) = &self.subs {
            let sub = Subscribe {
                // Constant non-zero id: one SUBSCRIBE per connection.
                packet_id: PacketId::MIN,
                filters: vec![SubscribeFilter::new(s.filter.clone(), ctx.qos)],
                properties: SubscribeProperties::default(),
            };
            self.send(&Packet::Subscribe(sub), ctx);
            self.phase = Phase::WaitSuback;
        }
        Next::Continue
    }

    fn on_suback(&mut self, ack: &SubAck, ctx: &mut Ctx) -> Next {
        if self.phase != Phase::WaitSuback {
            return Next::Continue;
        }
        if !ack.codes.is_empty() && ack.codes.iter().all(|c| (*c as u8) < 0x80) {
            ctx.counters.subscribed += 1;
        } else {
            ctx.counters.sub_failed += 1;
        }
        self.phase = Phase::Ready;
        Next::Continue
    }

    /// A PUBLISH from the broker (decoded by the codec or read in place by `rawpub`).
    pub fn on_publish(
        &mut self,
        qos: QoS,
        packet_id: Option<PacketId>,
        payload: &[u8],
        ctx: &mut Ctx,
        now: u64,
    ) {
        ctx.counters.received += 1;
        if ctx.counters.first_rx_ns == 0 {
            ctx.counters.first_rx_ns = now;
        }
        ctx.counters.last_rx_ns = now;
        match (Header::read(payload), self.subs.as_mut()) {
            (Some(h), Some(s)) => {
                match s.streams.entry(h.publisher).or_default().record(h.seq) {
                    Arrival::InOrder => ctx.counters.received_unique += 1,
                    Arrival::Reordered => {
                        ctx.counters.received_unique += 1;
                        ctx.counters.reordered += 1
                    }
                    Arrival::Duplicate => ctx.counters.duplicates += 1,
                    Arrival::Untracked => {}
                }
                let d = now.saturating_sub(h.sent_ns);
                Hists::record_ns(&mut ctx.hists.latency, d);
                Hists::record_ns(&mut ctx.interval.latency, d);
            }
            _ => ctx.counters.foreign += 1,
        }
        match (qos, packet_id) {
            (QoS::AtLeastOnce, Some(id)) => self.send(&Packet::PubAck(PubAck::new(id)), ctx),
            (QoS::ExactlyOnce, Some(id)) => self.send(&Packet::PubRec(PubAck::new(id)), ctx),
            _ => {}
        }
    }

    /// Sequence numbers below each stream's highest that never arrived.
    pub fn gaps(&self) -> u64 {
        self.subs
            .as_ref()
            .map_or(0, |s| s.streams.values().map(SeqStream::gaps).sum())
    }
}
