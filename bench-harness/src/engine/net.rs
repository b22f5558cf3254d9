//! The socket side of a worker: opening connections (route, source address, CONNECT),
//! readiness events, reads through the shared scratch buffer with a per-turn budget, batched
//! writes, and closing with the right counter.
//!
//! Split from `mod.rs` (the loop, phases and publishing) so each file keeps one role; both are
//! `impl Worker`. Nothing here decides when to publish or stop.

use super::client::{Conn, Next, Phase};
use super::{rawpub, sys, Planned, Worker, MAX_PENDING, READS_PER_TURN, READ_CHUNK};
use crate::payload::now_ns;
use crate::plan;
use bytes::{Buf, BytesMut};
use std::io::ErrorKind;

impl Worker {
    pub(super) fn open_connections(&mut self, now: u64) {
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

    pub(super) fn open_one(&mut self, group: usize, pos: u64, now: u64) {
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
        let mut conn = conn;
        if !self.spec.tunnel.is_plain() {
            let host = self.spec.hosts[h];
            match super::tunnel::Tunnel::new(&self.spec.tunnel, self.tls_config.as_ref(), host) {
                Ok(t) => conn.tunnel = Some(Box::new(t)),
                Err(e) => {
                    sys::close(fd);
                    self.ctx.counters.conn_failed += 1;
                    self.warn(&format!("TLS/WebSocket set-up: {e:#}"));
                    return;
                }
            }
        }
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

    pub(super) fn warn(&mut self, msg: &str) {
        // A failure storm (e.g. connection refused x 15,000) prints a few lines, not thousands.
        self.warned += 1;
        if self.warned <= 5 {
            eprintln!("ringmq-bench: {msg}");
        } else if self.warned == 6 {
            eprintln!("ringmq-bench: (further errors of this worker are only counted)");
        }
    }

    pub(super) fn on_event(&mut self, slot: usize, flags: u32, now: u64) {
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

    pub(super) fn on_readable(&mut self, slot: usize, mut now: u64) {
        let mut reads = 0;
        loop {
            let c = &mut self.conns[slot];
            self.scratch.clear();
            if !c.rbuf.is_empty() {
                self.scratch.extend_from_slice(&c.rbuf);
                c.rbuf.clear();
            }
            let tunnelled = c.tunnel.is_some();
            let target = if tunnelled {
                self.raw.clear();
                &mut self.raw
            } else {
                &mut self.scratch
            };
            target.reserve(READ_CHUNK);
            let want = target.capacity() - target.len();
            let n = match sys::read_into(c.fd, target) {
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
            if let Some(t) = c.tunnel.as_mut() {
                if let Err(e) = t.input(&self.raw, &mut self.scratch) {
                    self.close(slot, now);
                    self.warn(&format!("TLS/WebSocket from broker: {e:#}"));
                    return;
                }
                if !t.out().is_empty() {
                    // A handshake step or a pong to send.
                    c.dirty = true;
                }
            }
            self.ctx.counters.bytes_in += n as u64;
            // The receive time of what this read returned: bytes may have arrived after the
            // loop's wake-up, and a stale clock would clip their latency to zero.
            now = now_ns();
            let v5 = self.ctx.version.is_v5();
            loop {
                if let Some(p) = rawpub::peek(&self.scratch, v5) {
                    let len = p.frame_len;
                    c.on_publish(p.qos, p.packet_id, p.payload, &mut self.ctx, now);
                    self.scratch.advance(len);
                    continue;
                }
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

    pub(super) fn close(&mut self, slot: usize, _now: u64) {
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
        c.tunnel = None;
    }

    pub(super) fn flush(&mut self, slot: usize) {
        let c = &mut self.conns[slot];
        c.dirty = false;
        if !c.writable || c.phase == Phase::Connecting {
            return;
        }
        let out = match c.tunnel.as_mut() {
            Some(t) => {
                if !c.wbuf.is_empty() {
                    let sealed = t.seal(&c.wbuf);
                    c.wbuf.clear();
                    if let Err(e) = sealed {
                        self.close(slot, now_ns());
                        self.warn(&format!("TLS/WebSocket to broker: {e:#}"));
                        return;
                    }
                }
                t.out()
            }
            None => &mut c.wbuf,
        };
        while !out.is_empty() {
            match sys::write(c.fd, out) {
                Ok(n) => {
                    self.ctx.counters.bytes_out += n as u64;
                    // advance, not split_to: no new handle, the buffer is reused in place.
                    bytes::Buf::advance(out, n);
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

    pub(super) fn flush_dirty(&mut self) {
        // Publishes of one turn went into buffers; one send per dirty connection now.
        for slot in 0..self.pub_slots.len() {
            let s = self.pub_slots[slot] as usize;
            if self.conns[s].dirty {
                self.flush(s);
            }
        }
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
