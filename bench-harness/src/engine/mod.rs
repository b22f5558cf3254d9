//! One worker process: a single-threaded edge-triggered epoll loop that opens its slice of
//! the run's connections at its share of `-R`, subscribes, publishes on the `-I` schedule
//! when the parent says `go`, and reports counters and histograms to the parent.
//!
//! Why epoll and not glommio here: the harness must bind each socket to a chosen source
//! address before connect (glommio's `TcpStream::connect` cannot), must not be the thing it
//! measures (a runtime different from the broker's keeps their quirks apart), and a plain
//! loop over a `Vec<Conn>` costs nothing per idle connection beyond its struct.
//! Writes are batched: packets accumulate in each connection's buffer during one turn and
//! each dirty connection gets one `send(2)` at the end of the turn.

pub mod client;
pub mod sys;

use crate::pace::Pacer;
use crate::payload::now_ns;
use crate::plan;
use crate::spec::{Role, RunSpec};
use crate::stats::{self, Hists};
use crate::wire::{self, Command};
use anyhow::{Context, Result};
use bytes::{Bytes, BytesMut};
use client::{Conn, Ctx, Next, Phase};
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

    fn open_connections(&mut self, now: u64) {
        if self.next_plan >= self.plan.len() || self.pending >= MAX_PENDING {
            return;
        }
        let left = (self.plan.len() - self.next_plan) as u64;
        let n = self
            .connect_pacer
            .ready(now)
            .min(left)
            .min((MAX_PENDING - self.pending) as u64);
        for _ in 0..n {
            let Planned { group, pos } = self.plan[self.next_plan];
            self.next_plan += 1;
            self.open_one(group, pos, now);
        }
        self.connect_pacer.take(n);
    }

    fn open_one(&mut self, group: usize, pos: u64, now: u64) {
        let g = &self.spec.groups[group];
        let (role, index, ordinal) = (g.role, g.start + pos, g.ordinal_base + pos);
        self.ctx.counters.conn_attempted += 1;
        let (h, s) = plan::route(ordinal, self.spec.hosts.len(), self.spec.sources.len());
        let fd = match sys::connect_start(self.spec.hosts[h], s.map(|i| self.spec.sources[i])) {
            Ok(fd) => fd,
            Err(e) => {
                self.ctx.counters.conn_failed += 1;
                self.warn(&format!(
                    "connect to {}: {e}{}",
                    self.spec.hosts[h],
                    hint(&e)
                ));
                return;
            }
        };
        let cid = self.spec.client_id(role, index);
        let topic = if g.topic.is_empty() {
            String::new()
        } else {
            // Parsed once by the parent already; a failure here cannot happen.
            crate::pattern::TopicPattern::parse(&g.topic)
                .map(|p| p.expand(index, &cid))
                .unwrap_or_default()
        };
        let conn = match Conn::new(
            fd,
            role,
            &cid,
            &topic,
            index,
            &self.spec,
            &self.ctx,
            &self.payload,
            now,
        ) {
            Ok(c) => c,
            Err(e) => {
                sys::close(fd);
                self.ctx.counters.conn_failed += 1;
                self.warn(&format!("encode CONNECT: {e}"));
                return;
            }
        };
        let slot = self.conns.len();
        if let Err(e) = self.ep.add(fd, slot as u64, sys::EV_CONN) {
            sys::close(fd);
            self.ctx.counters.conn_failed += 1;
            self.warn(&format!("epoll add: {e}"));
            return;
        }
        self.conns.push(conn);
        self.pending += 1;
    }

    fn warn(&mut self, msg: &str) {
        // A failure storm (e.g. connection refused x 15,000) prints a few lines, not thousands.
        self.warned += 1;
        if self.warned <= 5 {
            eprintln!("ringmq-bench: {msg}");
        } else if self.warned == 6 {
            eprintln!("ringmq-bench: (further errors of this worker are only counted)");
        }
    }

    fn on_event(&mut self, slot: usize, flags: u32, now: u64) {
        let Some(c) = self.conns.get_mut(slot) else {
            return;
        };
        if c.phase == Phase::Closed {
            return;
        }
        if c.phase == Phase::Connecting
            && flags & (libc::EPOLLOUT | libc::EPOLLERR | libc::EPOLLHUP) as u32 != 0
        {
            let err = sys::so_error(c.fd);
            if err != 0 {
                let e = std::io::Error::from_raw_os_error(err);
                self.close(slot, now);
                self.warn(&format!("connect: {e}{}", hint(&e)));
                return;
            }
            c.phase = Phase::WaitConnack;
        }
        if flags & libc::EPOLLOUT as u32 != 0 {
            c.writable = true;
            c.dirty = true;
        }
        if flags & (libc::EPOLLIN | libc::EPOLLRDHUP | libc::EPOLLHUP | libc::EPOLLERR) as u32 != 0
        {
            self.on_readable(slot, now);
        }
        if let Some(c) = self.conns.get_mut(slot) {
            if c.dirty && c.phase != Phase::Closed {
                self.flush(slot);
            }
        }
    }

    fn on_readable(&mut self, slot: usize, mut now: u64) {
        let mut reads = 0;
        loop {
            let c = &mut self.conns[slot];
            self.scratch.clear();
            if !c.rbuf.is_empty() {
                self.scratch.extend_from_slice(&c.rbuf);
                c.rbuf.clear();
            }
            self.scratch.reserve(READ_CHUNK);
            let want = self.scratch.capacity() - self.scratch.len();
            let n = match sys::read_into(c.fd, &mut self.scratch) {
                Ok(0) => {
                    self.close(slot, now);
                    return;
                }
                Ok(n) => n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => {
                    c.rbuf.extend_from_slice(&self.scratch);
                    return;
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(_) => {
                    self.close(slot, now);
                    return;
                }
            };
            self.ctx.counters.bytes_in += n as u64;
            // The receive time of what this read returned: bytes may have arrived after the
            // loop's wake-up, and a stale clock would clip their latency to zero.
            now = now_ns();
            loop {
                match codec::decode(&mut self.scratch, &self.limits, self.ctx.version) {
                    Ok(Some(pkt)) => {
                        let was = c.phase;
                        let next = c.on_packet(pkt, &mut self.ctx, now);
                        if was.pending() && !c.phase.pending() {
                            self.pending -= 1;
                        }
                        if next == Next::Close {
                            self.close(slot, now);
                            return;
                        }
                    }
                    Ok(None) => break,
                    Err(e) => {
                        self.close(slot, now);
                        self.warn(&format!("decode from broker: {e}"));
                        return;
                    }
                }
            }
            let c = &mut self.conns[slot];
            if !self.scratch.is_empty() {
                c.rbuf.extend_from_slice(&self.scratch);
            }
            if n < want {
                // A short read drained the socket; the next arrival raises a new edge.
                return;
            }
            reads += 1;
            if reads == READS_PER_TURN {
                // Still more to read: come back next turn, after the other sockets, the
                // parent's commands and the timers (a flooding broker must not starve them).
                self.backlog.push(slot as u32);
                return;
            }
        }
    }

    fn close(&mut self, slot: usize, _now: u64) {
        let c = &mut self.conns[slot];
        if c.phase == Phase::Closed {
            return;
        }
        if c.phase.pending() {
            self.pending -= 1;
            match c.phase {
                Phase::WaitSuback => self.ctx.counters.sub_failed += 1,
                _ => self.ctx.counters.conn_failed += 1,
            }
        } else {
            if !self.stopping {
                self.ctx.counters.closed_by_peer += 1;
            }
            // A connected publisher that is gone will send no more: the run must not wait for it.
            c.on_closed(&mut self.ctx);
        }
        sys::close(c.fd);
        c.phase = Phase::Closed;
        c.wbuf = BytesMut::new();
        c.rbuf = BytesMut::new();
    }

    fn flush(&mut self, slot: usize) {
        let c = &mut self.conns[slot];
        c.dirty = false;
        if !c.writable || c.phase == Phase::Connecting {
            return;
        }
        while !c.wbuf.is_empty() {
            match sys::write(c.fd, &c.wbuf) {
                Ok(n) => {
                    self.ctx.counters.bytes_out += n as u64;
                    // advance, not split_to: no new handle, the buffer is reused in place.
                    bytes::Buf::advance(&mut c.wbuf, n);
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => {
                    c.writable = false;
                    return;
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => {
                    let now = now_ns();
                    self.close(slot, now);
                    return;
                }
            }
        }
    }

    fn flush_dirty(&mut self) {
        // Publishes of one turn went into buffers; one send per dirty connection now.
        for slot in 0..self.pub_slots.len() {
            let s = self.pub_slots[slot] as usize;
            if self.conns[s].dirty {
                self.flush(s);
            }
        }
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

fn hint(e: &std::io::Error) -> &'static str {
    match e.raw_os_error() {
        Some(libc::EADDRNOTAVAIL) => {
            " (out of ephemeral ports for this source address: give more --ifaddr addresses)"
        }
        Some(libc::EMFILE) | Some(libc::ENFILE) => {
            " (open-file limit: use more --workers or raise ulimit -n)"
        }
        Some(libc::ECONNREFUSED) => " (is the broker listening on that host and port?)",
        _ => "",
    }
}
