//! The end-of-turn flush: one send per connection with output, closes, and one mesh send
//! per destination shard, then one submission of everything to the ring. Runs as its own
//! task, woken by `Ctx::kick`, so everything the other tasks produced during the turn goes
//! out together. A connection has at most one send in flight; output produced meanwhile
//! waits in the shard and goes with the next one (`on_send`), so a slow consumer costs no
//! task and its socket's pace sets how fast the shard hands it output.

use super::ctx::{now_ms, Ctx};
use super::mesh::MeshMsg;
use super::sockets::{data, Op, Owner, Payload, SendOp};
use super::tables::Sock;
use bytes::Buf;
use shard::{ConnId, IoEvent};
use std::rc::Rc;

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
                    // Held packets go first, and a stopped receive is armed again.
                    super::waker::mark_ready(conn.slot);
                }
            }
            IoEvent::Close(conn, last) => {
                if let Some(mut slot) = ctx.remove_io(conn) {
                    let last = slot.transport.close(last);
                    super::linger::close(ctx, now_ms(), slot, last);
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
    ctx.submit_all();
}

/// The socket failed: forget it here and tell the shard (the will is published).
fn fail(ctx: &Rc<Ctx>, conn: ConnId) {
    if let Some(s) = ctx.remove_io(conn) {
        ctx.close_file(s.sock);
    }
    ctx.shard.borrow_mut().conn_lost(now_ms(), conn);
}

/// Starts a send of `payload` on `file`: one `send` of a single buffer, else one `sendmsg`
/// gathering its pieces (shared fan-out frames are not copied). Its completion comes to
/// `on_send`.
pub fn start_send(ctx: &Ctx, sock: Sock, gen: u32, payload: Payload) {
    use io_uring::{opcode, types};
    let (id, op) = ctx.sends.borrow_mut().start(sock, gen, payload);
    let file = sock.file;
    let e = match op {
        SendOp::Buf(ptr, len) => opcode::Send::new(types::Fixed(file), ptr, len)
            .flags(libc::MSG_NOSIGNAL)
            .build(),
        SendOp::Msg(msg) => opcode::SendMsg::new(types::Fixed(file), msg)
            .flags(libc::MSG_NOSIGNAL as u32)
            .build(),
    }
    .user_data(data(Op::Send, 0, id));
    // SAFETY: the header, its gather list and the bytes live in `ctx.sends` until the
    // completion is reaped (`on_send` takes them out only then).
    unsafe { ctx.submit(sock.table, e) };
}

/// Sends the connection's pending output, unless a send is in flight already (then the new
/// bytes go when it completes). Plain TCP sends the shard's output as it is; another
/// transport first sends the wire bytes waiting in it, and seals new output only after.
pub fn write_conn(ctx: &Rc<Ctx>, conn: ConnId) {
    let (sock, gen, plain) = {
        let io = ctx.io.borrow();
        match io.get(conn.slot) {
            Some(s) if s.conn == conn && !s.sending => (s.sock, s.gen, s.transport.is_plain()),
            _ => return,
        }
    };
    let payload = if plain {
        match ctx.shard.borrow_mut().conn_output(now_ms(), conn) {
            Some(out) if !out.is_empty() => Payload::Output(out),
            _ => return,
        }
    } else {
        let mut wire = match ctx.io.borrow_mut().get_mut(conn.slot) {
            Some(s) => s.transport.take_pending(),
            None => return,
        };
        if wire.is_empty() {
            let out = ctx.shard.borrow_mut().conn_output(now_ms(), conn);
            if let (Some(out), Some(s)) = (out, ctx.io.borrow_mut().get_mut(conn.slot)) {
                s.transport.seal(&out, &mut wire);
            }
        }
        if wire.is_empty() {
            return;
        }
        Payload::Bytes(wire)
    };
    if let Some(s) = ctx.io.borrow_mut().get_mut(conn.slot) {
        s.sending = true;
    }
    start_send(ctx, sock, gen, payload);
}

/// A send completed: `res` bytes went out (or the error). What the socket did not take goes
/// out again first: plain output back to the shard, to go with whatever it produced
/// meanwhile; sealed bytes back to the transport.
pub fn on_send(ctx: &Rc<Ctx>, id: u32, res: i32) {
    let Some(f) = ctx.sends.borrow_mut().take(id) else {
        return;
    };
    let n = res.max(0) as usize;
    let rest = |payload: Payload| match payload {
        Payload::Bytes(mut b) if n < b.len() && res >= 0 => {
            b.advance(n);
            Some(b)
        }
        _ => None,
    };
    let owner = ctx.owner(f.sock, f.gen);
    let slot = match owner {
        Owner::Conn(slot) => slot,
        Owner::Linger(i) => return super::linger::on_sent(ctx, i, f, res),
        Owner::Handoff(h) => return super::handoff::on_sent_bytes(ctx, h, rest(f.payload)),
        // Closed at once: the bytes were for a socket that is gone.
        Owner::Free => return,
    };
    let Some(conn) = ctx.io.borrow_mut().get_mut(slot).map(|s| {
        s.sending = false;
        s.conn
    }) else {
        return;
    };
    if res < 0 {
        return fail(ctx, conn);
    }
    if n < f.payload.len() {
        match f.payload {
            Payload::Output(mut out) => {
                out.advance(n);
                ctx.shard.borrow_mut().conn_output_unsent(conn, out);
            }
            bytes => {
                if let (Some(b), Some(s)) = (rest(bytes), ctx.io.borrow_mut().get_mut(slot)) {
                    s.transport.unsent(b);
                }
            }
        }
    }
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
