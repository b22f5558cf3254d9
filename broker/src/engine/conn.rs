//! Connections on an executor: one poller task reads every socket of the shard.
//!
//! There is no task, future or glommio stream per connection: sockets sit in the shard's
//! edge-triggered epoll set (`readiness`), and the poller harvests it, reads each ready
//! socket with plain non-blocking `recv(2)` into the executor's shared 64 KiB buffer,
//! decodes, and feeds the shard. Only an incomplete packet's bytes are copied into the
//! connection's own buffer, released as soon as it is empty. After CONNECT, a connection
//! whose client is homed on another shard is handed over (fd, CONNECT and unread bytes).

use super::ctx::{now_ms, Ctx, IoSlot};
use super::flush;
use super::held::{Held, Next, HELD_MAX};
use super::mesh::MeshMsg;
use super::readiness::Ready;
use super::waker::{any_ready, mark_ready, take_ready};
use bytes::BytesMut;
use codec::{Connect, Packet};
use shard::{home_shard, ConnId};
use std::os::fd::{AsRawFd, IntoRawFd, OwnedFd};
use std::rc::Rc;
use std::task::Poll;

/// Reads per connection per poller pass before others get their turn. With edge-triggered
/// readiness a connection that used its budget is re-queued by the poller itself.
const READ_BUDGET: usize = 4;

/// Registers a socket accepted here (`first` None) or handed over with its CONNECT.
pub fn add(ctx: &Rc<Ctx>, fd: OwnedFd, first: Option<(Box<Connect>, BytesMut)>) {
    let raw = fd.as_raw_fd();
    let one: libc::c_int = 1;
    // SAFETY: setsockopt on a socket we own, with a valid int option.
    unsafe {
        libc::setsockopt(
            raw,
            libc::IPPROTO_TCP,
            libc::TCP_NODELAY,
            (&one as *const libc::c_int).cast(),
            4,
        );
    }
    let now = now_ms();
    let conn = ctx.shard.borrow_mut().open_conn(now);
    if let Err(e) = ctx.readiness.add(raw, conn.slot) {
        tracing::warn!("epoll add failed: {e}");
        ctx.shard.borrow_mut().forget_conn(conn);
        return;
    }
    let mut slot = IoSlot {
        paused: false,
        conn,
        fd,
        buf: BytesMut::new(),
        connected: false,
        write_blocked: false,
        held: None,
    };
    if let Some((connect, leftover)) = first {
        slot.connected = true;
        let carried = !leftover.is_empty();
        slot.buf = leftover;
        ctx.insert_io(slot);
        ctx.shard.borrow_mut().handle_connect(now, conn, connect);
        // Packets that came with the CONNECT: the socket may have nothing more to read, so
        // no readiness edge would bring them to `process`.
        if carried && !process(ctx, conn) {
            ctx.kick();
            return;
        }
        ctx.kick();
    } else {
        ctx.insert_io(slot);
    }
    mark_ready(conn.slot);
}

/// Empty poller passes (each one `epoll_wait` with no timeout) before an idle shard hands
/// the wait to its watcher thread.
pub const SPIN_PASSES: u32 = 64;

/// Connections accepted per listener per poller pass before others get their turn.
const ACCEPT_BUDGET: usize = 256;

fn accept_all(ctx: &Rc<Ctx>) {
    for i in 0..ctx.listeners.len() {
        accept_batch(ctx, i);
    }
}

/// Accepts what listener `i` has waiting (edge-triggered: until EAGAIN, or until the budget
/// is spent, in which case the next poller pass carries on).
fn accept_batch(ctx: &Rc<Ctx>, i: usize) {
    let Some(l) = ctx.listeners.get(i) else {
        return;
    };
    for _ in 0..ACCEPT_BUDGET {
        match super::listener::accept(l) {
            Ok(None) => return,
            Ok(Some(fd)) if ctx.live_conns() >= ctx.max_conns => {
                // Over limits.max_connections: close before reading anything.
                drop(fd);
                ctx.refused.set(ctx.refused.get() + 1);
            }
            Ok(Some(fd)) => add(ctx, fd, None),
            Err(e) => {
                let now = now_ms();
                if super::shed::Shed::is_shortage(&e) && ctx.shed.release_spare(now) {
                    // Out of descriptors: accept with the spare one and close at once.
                    drop(super::listener::accept(l));
                    ctx.shed.shed(now, ctx.id.0, &e);
                    continue;
                }
                // Nothing to shed with, or another error: counted, and retried from the
                // timer tick after `shed::RETRY_MS`, never in a loop.
                ctx.shed.shed(now, ctx.id.0, &e);
                ctx.shed.retry_at_ms.set(now + super::shed::RETRY_MS);
                ctx.accept_pending.set(true);
                return;
            }
        }
    }
    ctx.accept_pending.set(true);
    super::waker::wake_poller();
}

/// The poller task: forever reads whichever connections are ready.
pub async fn poller(ctx: Rc<Ctx>) {
    let mut ready = Vec::new();
    let mut harvested: Vec<Ready> = Vec::new();
    let mut idle_passes = 0u32;
    futures_lite::future::poll_fn(|cx| {
        ctx.readiness.harvest(&mut harvested);
        if ctx.accept_pending.get() && now_ms() >= ctx.shed.retry_at_ms.get() {
            ctx.accept_pending.set(false);
            accept_all(&ctx);
        }
        for r in harvested.drain(..) {
            if r.listener {
                accept_batch(&ctx, r.slot as usize);
                continue;
            }
            if r.writable {
                flush::resume_write(&ctx, r.slot);
            }
            if r.readable {
                mark_ready(r.slot);
            }
        }
        take_ready(cx.waker(), &mut ready);
        if ready.is_empty() {
            idle_passes = idle_passes.saturating_add(1);
        } else {
            idle_passes = 0;
        }
        for slot in ready.drain(..) {
            if ctx.mesh.congested() {
                // Other shards are behind: stop reading until they catch up.
                ctx.mesh.park(slot);
            } else {
                poll_slot(&ctx, slot);
            }
        }
        ctx.kick();
        if !any_ready() {
            if idle_passes <= ctx.spin_passes {
                // Busy a moment ago: look again on the next executor pass instead of handing
                // the wait to the watcher thread (two context switches and a socket-pair
                // round trip per wake-up, most of the cost of a closed loop's short gaps).
                cx.waker().wake_by_ref();
            } else if ctx.watcher_waiting.replace(false) {
                super::executor::ack_watcher(&ctx);
            }
        }
        Poll::<()>::Pending
    })
    .await;
}

enum ReadOutcome {
    /// Bytes read; `short` when fewer than the buffer holds, so the socket is drained and
    /// the next arrival raises a new edge (no second `recv` just to see EAGAIN).
    Data {
        short: bool,
    },
    Drained,
    Closed,
}

/// Non-blocking read of one socket into the shared buffer, appended to the slot's buffer.
fn read_once(ctx: &Ctx, slot: u32) -> Option<(ConnId, ReadOutcome)> {
    let mut io = ctx.io.borrow_mut();
    // A paused connection is still read for its acknowledgements, up to `HELD_MAX`.
    let s = io
        .get_mut(slot)
        .filter(|s| !s.paused || Held::len(&s.held) < HELD_MAX)?;
    let mut scratch = ctx.read_buf.borrow_mut();
    // SAFETY: recv into a live buffer of the stated length, on a socket the slot owns.
    let n = unsafe {
        libc::recv(
            s.fd.as_raw_fd(),
            scratch.as_mut_ptr().cast(),
            scratch.len(),
            libc::MSG_DONTWAIT,
        )
    };
    let outcome = if n > 0 {
        s.buf.extend_from_slice(&scratch[..n as usize]);
        ctx.bytes_received.set(ctx.bytes_received.get() + n as u64);
        ReadOutcome::Data {
            short: (n as usize) < scratch.len(),
        }
    } else if n == 0 {
        ReadOutcome::Closed
    } else {
        match std::io::Error::last_os_error().kind() {
            std::io::ErrorKind::WouldBlock => ReadOutcome::Drained,
            std::io::ErrorKind::Interrupted => ReadOutcome::Data { short: false },
            _ => ReadOutcome::Closed,
        }
    };
    Some((s.conn, outcome))
}

fn poll_slot(ctx: &Rc<Ctx>, slot: u32) {
    let held = {
        let mut io = ctx.io.borrow_mut();
        match io.get_mut(slot) {
            Some(s) if s.held.is_some() && !s.paused => Some(s.conn),
            _ => None,
        }
    };
    if let Some(conn) = held {
        // Resumed: the packets read before the pause go first.
        if !process(ctx, conn) {
            return;
        }
    }
    for _ in 0..READ_BUDGET {
        let Some((conn, outcome)) = read_once(ctx, slot) else {
            return;
        };
        match outcome {
            ReadOutcome::Drained => {
                release_idle_buf(ctx, slot);
                return;
            }
            ReadOutcome::Closed => {
                ctx.remove_io(conn);
                ctx.shard.borrow_mut().conn_lost(now_ms(), conn);
                return;
            }
            ReadOutcome::Data { short } => {
                if !process(ctx, conn) {
                    return;
                }
                if short {
                    release_idle_buf(ctx, slot);
                    return;
                }
            }
        }
    }
    // Budget spent with data still flowing: no new edge will come, so re-queue it.
    mark_ready(slot);
}

/// Gives the read buffer's memory back while the connection has no partial packet.
fn release_idle_buf(ctx: &Ctx, slot: u32) {
    if let Some(s) = ctx.io.borrow_mut().get_mut(slot) {
        if s.buf.is_empty() {
            s.buf = BytesMut::new();
        }
    }
}

/// Decodes and handles every complete packet buffered for `conn`. While the shard has the
/// connection paused, PUBLISHes (and what follows a non-ack packet) are deferred whole into
/// `IoSlot::held` and only acknowledgements are handled (`held`); deferred packets go first
/// once it resumes, and stop again at the next pause (packet granularity). False when the
/// connection is gone (closed, failed or handed over).
fn process(ctx: &Rc<Ctx>, conn: ConnId) -> bool {
    let now = now_ms();
    let Some((mut buf, mut held, mut connected)) = ({
        let mut io = ctx.io.borrow_mut();
        io.get_mut(conn.slot)
            .map(|s| (std::mem::take(&mut s.buf), s.held.take(), s.connected))
    }) else {
        return false;
    };
    let mut shard = ctx.shard.borrow_mut();
    // Deferred packets first, while the connection is not paused.
    let mut alive = true;
    if let Some(h) = held.as_mut() {
        while alive && !shard.is_paused(conn) && !h.bytes.is_empty() {
            let Some((limits, version)) = shard.decode_params(conn) else {
                alive = false;
                break;
            };
            match codec::decode(&mut h.bytes, &limits, version) {
                Ok(Some(p)) => shard.handle_packet(now, conn, p),
                Ok(None) => break, // whole frames only: cannot happen
                Err(e) => {
                    shard.decode_error(now, conn, e);
                    alive = false;
                }
            }
        }
        if h.bytes.is_empty() {
            held = None;
        }
    }
    while alive {
        let Some((limits, version)) = shard.decode_params(conn) else {
            alive = false;
            break;
        };
        if shard.is_paused(conn) || held.is_some() {
            // Back-pressure: PUBLISHes wait, acknowledgements go on.
            match Held::sort(&mut held, &mut buf, version) {
                Ok(Next::Incomplete) => break,
                Ok(Next::Deferred) => {
                    if Held::len(&held) >= HELD_MAX || !shard.is_paused(conn) {
                        break;
                    }
                    continue;
                }
                Ok(Next::Handle) => {}
                Err(e) => {
                    shard.decode_error(now, conn, e);
                    alive = false;
                    break;
                }
            }
        }
        if !connected {
            shard.peek_connect(conn, &buf);
        }
        match codec::decode(&mut buf, &limits, version) {
            Ok(None) => break,
            Ok(Some(Packet::Connect(connect))) if !connected => {
                connected = true;
                let home = home_shard(&connect.client_id, ctx.nr);
                if home == ctx.id {
                    shard.handle_connect(now, conn, connect);
                } else {
                    shard.forget_conn(conn);
                    drop(shard);
                    handoff(ctx, conn, home, connect, buf);
                    return false;
                }
            }
            Ok(Some(p)) => shard.handle_packet(now, conn, p),
            Err(e) => {
                shard.decode_error(now, conn, e);
                alive = false;
            }
        }
    }
    let paused = alive && shard.is_paused(conn);
    drop(shard);
    let mut io = ctx.io.borrow_mut();
    match io.get_mut(conn.slot).filter(|s| s.conn == conn) {
        Some(s) => {
            s.paused |= paused;
            s.held = held;
            s.buf = buf;
            s.connected = connected;
            alive
        }
        None => false,
    }
}

/// Sends the socket to its client's home shard with the CONNECT and the unread bytes.
fn handoff(
    ctx: &Rc<Ctx>,
    conn: ConnId,
    home: shard::ShardId,
    connect: Box<Connect>,
    leftover: BytesMut,
) {
    let Some(slot) = ctx.remove_io(conn) else {
        return;
    };
    ctx.readiness.remove(slot.fd.as_raw_fd());
    let fd = slot.fd.into_raw_fd();
    ctx.send_mesh(
        home,
        MeshMsg::Handoff {
            fd,
            connect,
            leftover,
        },
    );
}
