//! The end-of-turn flush: one write per connection with output, closes, and one mesh send
//! per destination shard. Runs as its own task, woken by `Ctx::kick`, so everything the
//! other tasks produced during the turn goes out together. A socket whose send buffer is
//! full keeps its remainder in the shard until its next writable edge (`resume_write`), so a
//! slow consumer costs no task.

use super::ctx::{now_ms, Ctx};
use super::mesh::MeshMsg;
use shard::{ConnId, IoEvent, Output};
use std::os::fd::AsRawFd;
use std::rc::Rc;

/// Writes as much of `buf` as the socket takes now, without blocking.
fn send_now(fd: i32, buf: &[u8]) -> std::io::Result<usize> {
    // SAFETY: `buf` is a valid slice for the duration of the call; `fd` is an open socket
    // owned by a live `IoSlot`.
    let n = unsafe {
        libc::send(
            fd,
            buf.as_ptr().cast(),
            buf.len(),
            libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL,
        )
    };
    if n >= 0 {
        Ok(n as usize)
    } else {
        let e = std::io::Error::last_os_error();
        if e.kind() == std::io::ErrorKind::WouldBlock {
            Ok(0)
        } else {
            Err(e)
        }
    }
}

/// One flush pass over everything the shard produced.
pub fn flush(ctx: &Rc<Ctx>, events: &mut Vec<IoEvent>) {
    ctx.flush_started();
    ctx.shard.borrow_mut().take_events(events);
    for ev in events.drain(..) {
        match ev {
            IoEvent::Flush(conn) => write_conn(ctx, conn),
            IoEvent::Pause(conn) | IoEvent::Resume(conn) => {
                let pause = matches!(ev, IoEvent::Pause(_));
                if let Some(s) = ctx
                    .io
                    .borrow_mut()
                    .get_mut(conn.slot)
                    .filter(|s| s.conn == conn)
                {
                    s.paused = pause;
                }
                if !pause {
                    // Edge-triggered: data that arrived while paused gave no new edge.
                    super::waker::mark_ready(conn.slot);
                }
            }
            IoEvent::Close(conn, last) => {
                if let Some(slot) = ctx.remove_io(conn) {
                    // Out of the epoll set: the linger list reads it from the timer tick.
                    ctx.readiness.remove(slot.fd.as_raw_fd());
                    ctx.linger
                        .borrow_mut()
                        .close(now_ms(), slot.fd, last, slot.write_blocked);
                }
            }
        }
    }
    publish_client_events(ctx);
    log_notices(ctx);
    let batches: Vec<_> = ctx.shard.borrow_mut().outbox().drain().collect();
    for (to, batch) in batches {
        ctx.send_mesh(to, MeshMsg::Batch(batch));
    }
}

/// The socket failed: forget it here and tell the shard (the will is published).
fn fail(ctx: &Rc<Ctx>, conn: ConnId) {
    ctx.remove_io(conn);
    ctx.shard.borrow_mut().conn_lost(now_ms(), conn);
}

/// Most iovecs one `sendmsg` takes (Linux's `UIO_MAXIOV`).
const MAX_IOV: usize = 1024;

/// Writes as much of `out` as the socket takes now: one `send` for a single buffer, else one
/// `sendmsg` per `MAX_IOV` pieces (shared fan-out frames are gathered, not copied).
fn send_output(fd: i32, out: &Output) -> std::io::Result<usize> {
    if out.chunks.is_empty() {
        return send_now(fd, &out.tail);
    }
    let mut iov: Vec<libc::iovec> = Vec::with_capacity(out.chunks.len().min(MAX_IOV) + 1);
    let mut pieces = out.slices().peekable();
    let mut total = 0;
    while pieces.peek().is_some() {
        iov.clear();
        let mut want = 0;
        for s in pieces.by_ref().take(MAX_IOV) {
            want += s.len();
            iov.push(libc::iovec {
                iov_base: s.as_ptr() as *mut libc::c_void,
                iov_len: s.len(),
            });
        }
        // SAFETY: every iovec points into a buffer `out` keeps alive for the call; msghdr
        // is zeroed apart from the iovec array.
        let n = unsafe {
            let mut msg: libc::msghdr = std::mem::zeroed();
            msg.msg_iov = iov.as_mut_ptr();
            msg.msg_iovlen = iov.len() as _;
            libc::sendmsg(fd, &msg, libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL)
        };
        if n < 0 {
            let e = std::io::Error::last_os_error();
            return match e.kind() {
                std::io::ErrorKind::WouldBlock => Ok(total),
                _ if total > 0 => Ok(total),
                _ => Err(e),
            };
        }
        total += n as usize;
        if (n as usize) < want {
            break;
        }
    }
    Ok(total)
}

/// Writes the connection's pending output now, as far as the socket takes it. A remainder
/// stays in the shard and the slot is marked blocked until the next writable edge.
fn write_conn(ctx: &Rc<Ctx>, conn: ConnId) {
    let fd = {
        let io = ctx.io.borrow();
        match io.get(conn.slot) {
            Some(s) if s.conn == conn && !s.write_blocked => s.fd.as_raw_fd(),
            // Gone, or waiting for writability (the new bytes go out with the rest).
            _ => return,
        }
    };
    let Some(mut out) = ctx.shard.borrow_mut().conn_output(now_ms(), conn) else {
        return;
    };
    let len = out.len();
    match send_output(fd, &out) {
        Ok(n) if n == len => {}
        Ok(n) => {
            out.advance(n);
            ctx.shard.borrow_mut().conn_output_unsent(conn, out);
            if let Some(s) = ctx.io.borrow_mut().get_mut(conn.slot) {
                s.write_blocked = true;
            }
        }
        Err(_) => fail(ctx, conn),
    }
}

/// The socket of `slot` became writable: retry output that was waiting for it.
pub fn resume_write(ctx: &Rc<Ctx>, slot: u32) {
    let conn = {
        let mut io = ctx.io.borrow_mut();
        match io.get_mut(slot) {
            Some(s) if s.write_blocked => {
                s.write_blocked = false;
                s.conn
            }
            _ => return,
        }
    };
    write_conn(ctx, conn);
    ctx.kick();
}

/// Logs what the shard wants an operator to hear of (each notice is once per episode).
fn log_notices(ctx: &Rc<Ctx>) {
    let mut notices = Vec::new();
    ctx.shard.borrow_mut().take_notices(&mut notices);
    for n in notices {
        match n {
            shard::Notice::StuckSubscriber {
                client_id,
                queued,
                inflight,
                idle_ms,
            } => tracing::warn!(
                shard = ctx.id.0,
                "subscriber {client_id:?} disconnected (0x97): no progress for {} s while \
                 publishers waited on its full queue ({queued} queued, {inflight} \
                 unacknowledged); limits.stuck_timeout sets the time",
                idle_ms / 1000
            ),
        }
    }
}

/// Publishes recorded client connect/disconnect events under `$SYS` (when configured). The
/// events' own deliveries are flushed on the next turn.
fn publish_client_events(ctx: &Rc<Ctx>) {
    let mut evs = Vec::new();
    ctx.shard.borrow_mut().take_client_events(&mut evs);
    if evs.is_empty() {
        return;
    }
    let now = now_ms();
    let mut shard = ctx.shard.borrow_mut();
    for ev in &evs {
        if let Some((topic, body)) = super::sys::client_event(&ctx.node, ev, now) {
            shard.publish_system(
                now,
                &topic,
                bytes::Bytes::from(body),
                codec::QoS::AtMostOnce,
                false,
            );
        }
    }
    drop(shard);
    ctx.kick();
}
