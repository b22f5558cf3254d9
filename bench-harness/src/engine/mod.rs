//! One worker process: a single-threaded edge-triggered epoll loop that opens its slice of
//! the run's connections at its share of `-R`, subscribes, publishes on the `-I` schedule
//! when the parent says `go`, and reports counters and histograms to the parent.
//!
//! Why epoll and not glommio here: the harness must bind each socket to a chosen source
//! address before connect (glommio's `TcpStream::connect` cannot), must not be the thing it
//! measures (a runtime different from the broker's keeps their quirks apart), and a plain
//! loop over a `Vec<Conn>` costs nothing per idle connection beyond its struct.
//! The socket side (opening, reading, writing, closing) is in `net.rs`.
//! Writes are batched: packets accumulate in each connection's buffer during one turn and
//! each dirty connection gets one `send(2)` at the end of the turn.

pub mod client;
mod net;
mod rawpub;
pub mod sys;
pub mod tunnel;

use crate::pace::Pacer;
use crate::payload::now_ns;
use crate::spec::{Role, RunSpec};
use crate::stats::{self, Hists};
use crate::wire::{self, Command};
use anyhow::{Context, Result};
use bytes::{Bytes, BytesMut};
use client::{Conn, Ctx, Phase};
use codec::{Limits, ProtocolVersion, QoS};
use std::io::{ErrorKind, Write};

/// Connections awaiting CONNACK at once, per worker: more would overflow the broker's accept
/// backlog and turn connect latency into SYN-retransmit seconds.
const MAX_PENDING: usize = 1000;
const TOKEN_STDIN: u64 = u64::MAX;
const PROGRESS_NS: u64 = 250_000_000;
const SWEEP_NS: u64 = 1_000_000_000;
/// Scratch read size: one syscall takes up to this much of a busy subscriber's stream.
const READ_CHUNK: usize = 256 * 1024;
/// Full reads of one socket per turn (4 MiB) before the others get theirs.
const READS_PER_TURN: u32 = 16;

/// A connection still to be opened: group and position in it.
struct Planned {
    group: usize,
    pos: u64,
}

struct Worker {
    spec: RunSpec,
    ep: sys::Epoll,
    ctx: Ctx,
    conns: Vec<Conn>,
    plan: Vec<Planned>,
    next_plan: usize,
    pending: usize,
    connect_pacer: Pacer,
    pub_slots: Vec<u32>,
    pub_cursor: usize,
    pub_pacer: Option<Pacer>,
    payload: Bytes,
    scratch: BytesMut,
    /// Wire bytes of one read of a tunnelled connection, before TLS/WebSocket.
    raw: BytesMut,
    /// The rustls client settings of a TLS run.
    tls_config: Option<std::sync::Arc<rustls::ClientConfig>>,
    limits: Limits,
    ready_sent: bool,
    draining: bool,
    stopping: bool,
    stdin_buf: Vec<u8>,
    warned: u32,
    /// Sockets left with unread data by the per-turn read budget.
    backlog: Vec<u32>,
}

/// Runs worker `index` of `spec.workers` until the parent says stop (or the deadline passes).
pub fn run(spec: RunSpec, index: usize) -> Result<()> {
    sys::raise_nofile();
    let version = match spec.version {
        3 => ProtocolVersion::V3_1,
        5 => ProtocolVersion::V5,
        _ => ProtocolVersion::V3_1_1,
    };
    let qos = QoS::from_u8(spec.qos).context("qos")?;
    let mut plan = Vec::new();
    let mut mine = 0u64;
    for (gi, g) in spec.groups.iter().enumerate() {
        let s = g.slice(index, spec.workers);
        mine += s.end - s.start;
        plan.extend(s.map(|pos| Planned { group: gi, pos }));
    }
    let start = now_ns();
    // This worker's share of -R: rate * mine / total connections per second, exactly.
    let connect_pacer = if spec.rate == 0 {
        Pacer::per_second(start, 0, 1)
    } else {
        Pacer::new(
            start,
            1_000_000_000 * spec.total().max(1),
            spec.rate * mine,
            (spec.rate / 10).max(1),
        )
    };
    let ctx = Ctx {
        version,
        qos,
        limit: spec.limit,
        payload_len: spec.payload.max(crate::payload::HEADER_LEN),
        counters: stats::Counters {
            conn_target: mine,
            ..Default::default()
        },
        hists: Hists::default(),
        interval: Hists::default(),
    };
    let tls_config = spec.tunnel.client_config()?;
    let ep = sys::Epoll::new()?;
    sys::set_nonblocking(0)?;
    ep.add(0, TOKEN_STDIN, sys::EV_IN)?;
    let payload = Bytes::from(vec![0u8; ctx.payload_len]);
    let mut w = Worker {
        spec,
        ep,
        ctx,
        conns: Vec::with_capacity(plan.len()),
        plan,
        next_plan: 0,
        pending: 0,
        connect_pacer,
        pub_slots: Vec::new(),
        pub_cursor: 0,
        pub_pacer: None,
        payload,
        scratch: BytesMut::with_capacity(READ_CHUNK),
        raw: BytesMut::new(),
        tls_config,
        limits: Limits {
            max_packet_size: 64 * 1024 * 1024,
        },
        ready_sent: false,
        draining: false,
        stopping: false,
        stdin_buf: Vec::new(),
        warned: 0,
        backlog: Vec::new(),
    };
    w.run_loop(start)
}

fn emit(tag: u8, ctx: &Ctx, hists: &Hists) -> Result<()> {
    let frame = wire::encode(tag, &ctx.counters, hists)?;
    let mut out = std::io::stdout().lock();
    out.write_all(&frame)?;
    out.flush()?;
    Ok(())
}

impl Worker {
    fn run_loop(&mut self, start: u64) -> Result<()> {
        let deadline = start + self.spec.hard_deadline_s * 1_000_000_000;
        let mut evs = vec![libc::epoll_event { events: 0, u64: 0 }; 1024];
        let (mut next_progress, mut next_sweep) = (start + PROGRESS_NS, start + SWEEP_NS);
        loop {
            let now = now_ns();
            if self.stopping || now > deadline {
                break;
            }
            self.open_connections(now);
            for slot in std::mem::take(&mut self.backlog) {
                if self.conns[slot as usize].phase != Phase::Closed {
                    self.on_readable(slot as usize, now);
                    self.flush(slot as usize);
                }
            }
            let more = self.publish_round(now) || !self.backlog.is_empty();
            self.flush_dirty();
            if !self.ready_sent && self.next_plan == self.plan.len() && self.pending == 0 {
                self.ready_sent = true;
                emit(wire::READY, &self.ctx, &Hists::default())?;
            }
            if now >= next_progress {
                emit(wire::PROGRESS, &self.ctx, &self.ctx.interval)?;
                self.ctx.interval.reset();
                next_progress = now + PROGRESS_NS;
            }
            if now >= next_sweep {
                self.sweep(now);
                next_sweep = now + SWEEP_NS;
            }
            let mut wake = next_progress.min(next_sweep).min(deadline);
            if self.next_plan < self.plan.len() && self.pending < MAX_PENDING {
                wake = wake.min(self.connect_pacer.next_due().unwrap_or(now));
            }
            // An unlimited schedule has no due time: the loop then wakes on acks and on
            // writability (or right away when `more`), never by spinning.
            if let Some(due) = self.pub_pacer.as_ref().and_then(Pacer::next_due) {
                if !self.draining && !self.pub_slots.is_empty() {
                    wake = wake.min(due);
                }
            }
            let timeout = if more {
                0
            } else {
                (wake.saturating_sub(now)).div_ceil(1_000_000).min(1000) as i32
            };
            let n = self.ep.wait(&mut evs, timeout)?;
            let now = now_ns();
            for ev in &evs[..n] {
                let (token, flags) = (ev.u64, ev.events);
                if token == TOKEN_STDIN {
                    self.read_stdin(now)?;
                } else {
                    self.on_event(token as usize, flags, now);
                }
            }
        }
        self.finish()
    }

    /// Publishes what the schedule allows; true when more could go out right away.
    fn publish_round(&mut self, now: u64) -> bool {
        let Some(pacer) = self.pub_pacer.as_mut() else {
            return false;
        };
        let np = self.pub_slots.len();
        if self.draining || np == 0 {
            return false;
        }
        let unlimited = pacer.unlimited();
        // Unlimited: up to 256 messages per publisher per turn (QoS 0 stops earlier at the
        // write buffer's high-water mark, QoS 1/2 at the inflight window).
        let cap = if unlimited {
            256 * np as u64
        } else {
            pacer.ready(now)
        };
        let (mut sent, mut idle) = (0u64, 0usize);
        while sent < cap && idle < np {
            let slot = self.pub_slots[self.pub_cursor] as usize;
            self.pub_cursor = (self.pub_cursor + 1) % np;
            let c = &mut self.conns[slot];
            if c.can_publish(&self.ctx) {
                c.publish(&mut self.ctx, now);
                sent += 1;
                idle = 0;
            } else {
                idle += 1;
            }
        }
        if let Some(p) = self.pub_pacer.as_mut() {
            p.take(sent);
        }
        unlimited && sent == cap
    }

    fn sweep(&mut self, now: u64) {
        let timeout = self.spec.connect_timeout_s * 1_000_000_000;
        let ka = u64::from(self.spec.keepalive) * 1_000_000_000 / 2;
        for slot in 0..self.conns.len() {
            let c = &mut self.conns[slot];
            if c.phase.pending() && now.saturating_sub(c.started_ns) > timeout {
                self.close(slot, now);
                self.warn("connect timed out (no CONNACK/SUBACK within --connect-timeout)");
            } else if c.phase == Phase::Ready && ka > 0 && now.saturating_sub(c.last_tx_ns) >= ka {
                c.ping(&self.ctx);
                c.last_tx_ns = now;
                self.flush(slot);
            }
        }
    }

    fn read_stdin(&mut self, now: u64) -> Result<()> {
        let mut buf = [0u8; 256];
        loop {
            // SAFETY: reading into a stack buffer we own.
            let r = unsafe { libc::read(0, buf.as_mut_ptr() as *mut libc::c_void, buf.len()) };
            if r == 0 {
                // The parent is gone: stop.
                self.stopping = true;
                return Ok(());
            }
            if r < 0 {
                let e = std::io::Error::last_os_error();
                if e.kind() == ErrorKind::WouldBlock {
                    break;
                }
                if e.kind() == ErrorKind::Interrupted {
                    continue;
                }
                return Err(e.into());
            }
            self.stdin_buf.extend_from_slice(&buf[..r as usize]);
        }
        while let Some(i) = self.stdin_buf.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.stdin_buf.drain(..=i).collect();
            match Command::parse(&String::from_utf8_lossy(&line)) {
                Some(Command::Go) => self.go(now),
                Some(Command::Drain) => self.draining = true,
                Some(Command::Stop) => self.stopping = true,
                None => {}
            }
        }
        Ok(())
    }

    fn go(&mut self, now: u64) {
        self.pub_slots = (0..self.conns.len())
            .filter(|&i| self.conns[i].role == Role::Pub && self.conns[i].phase == Phase::Ready)
            .map(|i| i as u32)
            .collect();
        let np = self.pub_slots.len() as u64;
        self.pub_pacer = Some(if self.spec.interval_ms == 0 {
            Pacer::per_second(now, 0, 1)
        } else {
            // Every publisher once per interval, spread evenly over it.
            Pacer::new(now, self.spec.interval_ms * 1_000_000, np.max(1), np.max(1))
        });
    }

    fn finish(&mut self) -> Result<()> {
        self.stopping = true;
        let now = now_ns();
        for slot in 0..self.conns.len() {
            if self.conns[slot].phase == Phase::Ready {
                self.conns[slot].disconnect(&self.ctx);
                self.flush(slot);
            }
        }
        let mut gaps = 0;
        for slot in 0..self.conns.len() {
            gaps += self.conns[slot].gaps();
            self.close(slot, now);
        }
        self.ctx.counters.gaps = gaps;
        let (u, s) = stats::cpu_us(false);
        (self.ctx.counters.cpu_user_us, self.ctx.counters.cpu_sys_us) = (u, s);
        emit(wire::FINAL, &self.ctx, &self.ctx.hists)
    }
}
