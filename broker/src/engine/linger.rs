//! Clean closes: a socket the broker closes after a DISCONNECT or a failed CONNACK is not
//! closed at once. Closing a socket that still has unread input makes the kernel send a
//! reset, and a reset can destroy the reason code in the client's receive buffer before the
//! client reads it (a client still sending PUBRELs when it gets DISCONNECT 0x93 saw only a
//! broken pipe). So the last bytes are sent, the write side is shut down (the client reads
//! our bytes, then end of stream), and the socket's input is received and discarded until
//! the client closes its side, for at most `LINGER_MS` and `LINGER_BYTES`, then closed.
//!
//! Everything happens on the ring: the send in flight when the close came finishes first,
//! then the last bytes, then a shutdown; the timer tick closes what overstays. At most
//! `MAX_LINGERING` sockets linger at once per shard; past that a socket is closed at once.

use super::ctx::{Ctx, IoSlot, Recv};
use super::ring::Completion;
use super::sockets::{data, Op, Owner, Payload, Sent, Slab};
use super::tables::Sock;
use bytes::BytesMut;

/// Longest a closed connection is read and discarded while the client takes our last bytes.
const LINGER_MS: u64 = 2_000;

/// Most bytes discarded from one lingering socket before it is closed regardless.
const LINGER_BYTES: usize = 1 << 20;

/// Most sockets lingering at once on one shard.
const MAX_LINGERING: usize = 10_000;

struct Lingering {
    sock: Sock,
    gen: u32,
    /// Last bytes not yet handed to a send.
    unsent: BytesMut,
    sending: bool,
    shut: bool,
    discarded: usize,
    deadline_ms: u64,
}

/// The sockets of one shard that are being closed cleanly.
#[derive(Default)]
pub struct Linger {
    slab: Slab<Lingering>,
}

impl Linger {
    fn insert(&mut self, l: Lingering) -> u32 {
        self.slab.insert(l)
    }

    fn remove(&mut self, i: u32) -> Option<Lingering> {
        self.slab.remove(i)
    }

    pub fn len(&self) -> usize {
        self.slab.len()
    }
}

/// Closes the socket of `slot` cleanly: `last` goes out after any send in flight, then the
/// write side is shut and input discarded until the client closes (or the bounds pass).
pub fn close(ctx: &Ctx, now_ms: u64, slot: IoSlot, last: BytesMut) {
    if ctx.linger.borrow().len() >= MAX_LINGERING {
        return ctx.close_file(slot.sock);
    }
    let i = ctx.linger.borrow_mut().insert(Lingering {
        sock: slot.sock,
        gen: slot.gen,
        unsent: last,
        sending: slot.sending,
        shut: false,
        discarded: 0,
        deadline_ms: now_ms + LINGER_MS,
    });
    ctx.set_owner(slot.sock, Owner::Linger(i));
    if slot.recv == Recv::Off {
        // Stopped while paused: the client's end of stream must still be seen.
        ctx.arm_recv(slot.sock, slot.gen);
    }
    step(ctx, i);
}

/// Sends what is left, then shuts the write side once all is out.
fn step(ctx: &Ctx, i: u32) {
    let mut linger = ctx.linger.borrow_mut();
    let Some(l) = linger.slab.get_mut(i) else {
        return;
    };
    if l.sending {
        return;
    }
    if !l.unsent.is_empty() {
        l.sending = true;
        let (sock, gen, bytes) = (l.sock, l.gen, std::mem::take(&mut l.unsent));
        drop(linger);
        return super::flush::start_send(ctx, sock, gen, Payload::Bytes(bytes));
    }
    if !l.shut {
        l.shut = true;
        use io_uring::{opcode, types};
        let e = opcode::Shutdown::new(types::Fixed(l.sock.file), libc::SHUT_WR)
            .build()
            .user_data(data(Op::Quiet, 0, 0));
        // SAFETY: no buffers.
        unsafe { ctx.submit(l.sock.table, e) };
    }
}

/// Closes lingering socket `i` now.
fn finish(ctx: &Ctx, i: u32) {
    let l = ctx.linger.borrow_mut().remove(i);
    if let Some(l) = l {
        ctx.close_file(l.sock);
    }
}

/// A send of lingering socket `i` completed.
pub fn on_sent(ctx: &Ctx, i: u32, f: Sent, res: i32) {
    if res < 0 {
        return finish(ctx, i);
    }
    let n = res as usize;
    {
        let mut linger = ctx.linger.borrow_mut();
        let Some(l) = linger.slab.get_mut(i) else {
            return;
        };
        l.sending = false;
        if n < f.payload.len() {
            // The rest goes before the last bytes.
            let mut rest = match f.payload {
                Payload::Output(o) => o.into_contiguous(),
                Payload::Bytes(b) => b,
            };
            let _ = rest.split_to(n);
            rest.extend_from_slice(&l.unsent);
            l.unsent = rest;
        }
    }
    step(ctx, i);
}

/// Input of lingering socket `i`: discarded; end of stream or an error closes it.
pub fn on_recv(ctx: &Ctx, i: u32, len: usize, c: &Completion) {
    let (over, sock, gen) = {
        let mut linger = ctx.linger.borrow_mut();
        let Some(l) = linger.slab.get_mut(i) else {
            return;
        };
        l.discarded += len;
        (l.discarded >= LINGER_BYTES, l.sock, l.gen)
    };
    let ended = c.res == 0 || (c.res < 0 && c.res != -libc::ENOBUFS && c.res != -libc::ECANCELED);
    if over || ended {
        return finish(ctx, i);
    }
    if !c.more() {
        ctx.arm_recv(sock, gen);
    }
}

/// Closes every lingering socket whose time is up.
pub fn tick(ctx: &Ctx, now_ms: u64) {
    let due: Vec<u32> = ctx
        .linger
        .borrow()
        .slab
        .iter()
        .filter(|(_, l)| now_ms >= l.deadline_ms)
        .map(|(i, _)| i)
        .collect();
    for i in due {
        finish(ctx, i);
    }
}
