//! Connections on an executor: their sockets are direct descriptors in the shard's ring,
//! each with one multishot receive into the ring's provided buffers.
//!
//! There is no task, future or glommio stream per connection. A receive completion appends
//! its bytes to the connection's buffer and queues the connection once (`waker`); the poller
//! then decodes what is complete and feeds the shard. Only an incomplete packet's bytes
//! stay in the connection's own buffer, released as soon as it is empty, and a provided
//! buffer goes back to the kernel as soon as its bytes are copied, so idle connections hold
//! no receive buffer at all. After CONNECT, a connection whose client is homed on another
//! shard is handed over (`handoff`).

use super::ctx::{now_ms, Ctx, IoSlot, Recv};
use super::held::{Held, Next, HELD_MAX};
use super::ring::Completion;
use super::sockets::Owner;
use super::tables::Sock;
use super::transport::{Input, Transport};
use super::waker::{any_ready, mark_ready, take_ready};
use bytes::BytesMut;
use codec::{Connect, Packet};
use shard::{home_shard, ConnId};
use std::rc::Rc;
use std::task::Poll;

/// Registers socket `sock`, accepted here, carried in `transport`.
pub fn accepted(ctx: &Rc<Ctx>, sock: Sock, transport: Transport) -> ConnId {
    let slot = open(ctx, sock, transport);
    let conn = slot.conn;
    ctx.insert_io(slot);
    // The poller arms the receive.
    mark_ready(conn.slot);
    conn
}

/// Registers socket `sock`, handed over with its CONNECT, the MQTT bytes read after it and
/// its peer address.
pub fn handed(ctx: &Rc<Ctx>, sock: Sock, a: super::handoff::Arrival) {
    // The accepting shard put the certificate's name in the CONNECT already.
    let cert_user = a.transport.cert_username().is_some_and(|r| r.is_ok());
    let mut slot = open(ctx, sock, a.transport);
    let conn = slot.conn;
    slot.connected = true;
    slot.buf = a.leftover;
    ctx.insert_io(slot);
    let now = now_ms();
    let mut shard = ctx.shard.borrow_mut();
    if let Some(peer) = a.peer {
        shard.set_peer(conn, peer);
    }
    if cert_user {
        shard.set_cert_user(conn);
    }
    if let Some(allow) = a.anonymous {
        shard.set_anonymous(conn, allow);
    }
    shard.handle_connect(now, conn, a.connect);
    drop(shard);
    ctx.kick();
    // The poller arms the receive and handles the bytes that came with the hand-off.
    mark_ready(conn.slot);
}

/// A new connection of the shard for `sock`, and its I/O side.
fn open(ctx: &Rc<Ctx>, sock: Sock, transport: Transport) -> IoSlot {
    let conn = ctx.shard.borrow_mut().open_conn(now_ms());
    let gen = ctx.install(sock, Owner::Conn(conn.slot));
    if ctx.tables.get(sock.table).files.borrow().nearly_full()
        && ctx.tables.get(sock.table).accepting.get() != 0
    {
        super::accept::filling(ctx, sock.table);
    }
    IoSlot {
        conn,
        sock,
        gen,
        buf: BytesMut::new(),
        connected: false,
        sending: false,
        recv: Recv::Off,
        paused: false,
        held: None,
        transport,
    }
}

/// Bytes of one connection's input handled per poller pass before others get their turn
/// and the output produced so far is flushed.
const PASS_BUDGET: usize = 256 * 1024;

/// Input buffered for one connection beyond which its receive stops (TCP pushes back)
/// until the poller has caught up.
const BUF_HIGH: usize = 512 * 1024;

/// Empty poller passes before an idle shard parks (arms the ring's eventfd and sleeps).
pub const SPIN_PASSES: u32 = 64;

/// TLS handshake steps (a ClientHello costs a key exchange and a signature, about 0.3 ms)
/// done per poller pass; more wait for the next pass, so a burst of new TLS clients delays
/// the shard's other connections by a few milliseconds at most, not by the whole burst.
const HANDSHAKES_PER_PASS: u32 = 8;

/// CONNECTs handled per poller pass when passwords are checked (a PBKDF2 hash each, unless
/// the shard's cache knows the user and password): more wait for the next pass, so a storm of
/// CONNECTs with wrong passwords delays the shard's other connections by a bounded time.
const CONNECTS_PER_PASS: u32 = 32;

/// Completions handled per poller pass before queued connections get their turn.
const REAP_BATCH: usize = 4096;

/// The poller task: forever reaps the ring's completions and handles queued connections.
pub async fn poller(ctx: Rc<Ctx>) {
    let mut ready = Vec::new();
    let mut done: Vec<Completion> = Vec::with_capacity(REAP_BATCH);
    let mut idle_passes = 0u32;
    futures_lite::future::poll_fn(|cx| loop {
        ctx.handshake_budget.set(HANDSHAKES_PER_PASS);
        ctx.connect_budget.set(CONNECTS_PER_PASS);
        let mut reaped = false;
        for t in 0..ctx.tables.len() as u16 {
            ctx.tables.get(t).ring.reap(&mut done);
            reaped |= !done.is_empty();
            for c in done.drain(..) {
                super::completions::dispatch(&ctx, t, c);
            }
        }
        if ctx.accept_pending.get() && now_ms() >= ctx.shed.retry_at_ms.get() {
            ctx.accept_pending.set(false);
            super::accept::arm_all(&ctx);
        }
        take_ready(cx.waker(), &mut ready);
        let busy = reaped || !ready.is_empty();
        for slot in ready.drain(..) {
            poll_slot(&ctx, slot);
        }
        // The flush at the end of this turn submits everything queued (one system call).
        ctx.kick();
        idle_passes = if busy {
            0
        } else {
            idle_passes.saturating_add(1)
        };
        if any_ready() || busy || idle_passes <= ctx.spin_passes {
            // Look again on the next executor pass; completions need no wake-up meanwhile.
            for (_, t) in ctx.tables.iter() {
                t.ring.set_wakeups(false);
            }
            cx.waker().wake_by_ref();
            return Poll::<()>::Pending;
        }
        // Park: completions from now on signal the eventfd; one may have come just before.
        for (_, t) in ctx.tables.iter() {
            t.ring.set_wakeups(true);
        }
        if !ctx.tables.iter().any(|(_, t)| t.ring.has_completions()) {
            return Poll::Pending;
        }
    })
    .await;
}

/// A receive completion for `sock` (generation `gen`).
pub fn on_recv(ctx: &Rc<Ctx>, sock: Sock, gen: u32, c: Completion) {
    let owner = ctx.owner(sock, gen);
    let len = c.res.max(0) as usize;
    let bid = c.buffer();
    let ring = &ctx.tables.get(sock.table).ring;
    {
        let data = bid.map_or(&[][..], |b| ring.buffer(b, len));
        match owner {
            Owner::Conn(slot) => conn_recv(ctx, slot, data, &c),
            Owner::Linger(i) => super::linger::on_recv(ctx, i, data.len(), &c),
            Owner::Handoff(h) => super::handoff::on_recv(ctx, h, data, &c),
            Owner::Free => {}
        }
    }
    if let Some(b) = bid {
        ring.give_back(b);
    }
}

fn conn_recv(ctx: &Rc<Ctx>, slot: u32, data: &[u8], c: &Completion) {
    let mut ended = false;
    if !c.more() {
        if let Some(s) = ctx.io.borrow_mut().get_mut(slot) {
            s.recv = Recv::Off;
        }
        // End of stream, or an error other than "no buffer free" / "cancelled by us".
        ended = c.res == 0 || (c.res < 0 && c.res != -libc::ENOBUFS && c.res != -libc::ECANCELED);
    }
    ctx.bytes_received
        .set(ctx.bytes_received.get() + data.len() as u64);
    take_input(ctx, slot, data, ended);
}

/// Feeds wire bytes `data` of `slot` through its transport, or keeps them for a later pass
/// when they are a TLS handshake step and this pass has done its share (`HANDSHAKES_PER_PASS`)
/// or earlier bytes wait; then closes the connection if it `ended` or failed, sends what the
/// transport has to answer, and queues the connection for the poller.
fn take_input(ctx: &Rc<Ctx>, slot: u32, data: &[u8], ended: bool) {
    let (lost, failed, flush) = {
        let mut io = ctx.io.borrow_mut();
        let Some(s) = io.get_mut(slot) else { return };
        let mut ended = ended;
        let mut failed = None;
        let wait =
            s.transport.has_deferred() || (s.transport.is_handshaking() && !ctx.handshake_turn());
        if wait && !data.is_empty() {
            s.transport.defer(data);
        } else if !data.is_empty() {
            match s.transport.input(data, &mut s.buf) {
                Ok(Input::Open) => {}
                Ok(Input::Closed) => ended = true,
                Err(f) => failed = Some(f),
            }
            if let Some(client) = s.transport.take_client() {
                ctx.shard.borrow_mut().set_peer(s.conn, client);
            }
            if !s.connected && s.transport.is_plain() && super::transport::is_tls_hello(&s.buf) {
                failed = Some(super::transport::Failed {
                    kind: super::transport::FailKind::HelloOnPlainPort,
                    reason: "a TLS ClientHello came to a plain MQTT listener (the client \
                             should use the TLS port, or plain MQTT here)"
                        .into(),
                    alert: BytesMut::new(),
                });
            }
        }
        let flush = s.transport.has_pending() && !s.sending;
        ((ended || failed.is_some()).then_some(s.conn), failed, flush)
    };
    if let Some(conn) = lost {
        // What arrived before the end is handled first; the will follows the close.
        process(ctx, conn);
        if let Some(s) = ctx.remove_io(conn) {
            match failed {
                Some(f) => {
                    // The alert says why; it is already sealed.
                    let peer = ctx.shard.borrow().peer(conn);
                    ctx.transport_failed(f.kind, &f.reason, peer);
                    super::linger::close(ctx, now_ms(), s, f.alert);
                }
                None => ctx.close_file(s.sock),
            }
            ctx.shard.borrow_mut().conn_lost(now_ms(), conn);
        }
        return;
    }
    if flush {
        // A handshake answer: out with this turn's flush.
        let conn = ctx.io.borrow().get(slot).map(|s| s.conn);
        if let Some(conn) = conn {
            super::flush::write_conn(ctx, conn);
        }
    }
    mark_ready(slot);
}

/// Handles what `slot` received (or held while paused), then arms or stops its receive.
fn poll_slot(ctx: &Rc<Ctx>, slot: u32) {
    let Some(conn) = ctx.io.borrow().get(slot).map(|s| s.conn) else {
        return;
    };
    if ctx.mesh.congested() {
        // Other shards are behind: stop reading until they catch up.
        ctx.mesh.park(slot);
        set_reading(ctx, slot, false);
        return;
    }
    let deferred = ctx
        .io
        .borrow_mut()
        .get_mut(slot)
        .filter(|s| s.transport.has_deferred())
        .map(|s| s.transport.take_deferred());
    if let Some(bytes) = deferred {
        // A handshake step put off by an earlier pass: now, or on a later pass again.
        return take_input(ctx, slot, &bytes, false);
    }
    let backlog = match process(ctx, conn) {
        Processed::Gone => return,
        Processed::Done => false,
        Processed::Backlog => true,
    };
    let want = {
        let mut io = ctx.io.borrow_mut();
        let Some(s) = io.get_mut(slot) else { return };
        if s.buf.is_empty() {
            // Give the buffer's memory back while there is no partial packet.
            s.buf = BytesMut::new();
        }
        // A paused connection is still read for its acknowledgements, up to `HELD_MAX`. An
        // incomplete packet never stops the receive, however large (up to the packet limit).
        !(backlog && s.buf.len() >= BUF_HIGH)
            && !(s.paused && (Held::len(&s.held) >= HELD_MAX || s.buf.len() >= HELD_MAX))
    };
    set_reading(ctx, slot, want);
}

/// Arms (`on`) or cancels the multishot receive of `slot`.
pub fn set_reading(ctx: &Ctx, slot: u32, on: bool) {
    let mut io = ctx.io.borrow_mut();
    let Some(s) = io.get_mut(slot) else { return };
    match (s.recv, on) {
        (Recv::Off, true) => {
            s.recv = Recv::On;
            ctx.arm_recv(s.sock, s.gen);
        }
        (Recv::On, false) => {
            s.recv = Recv::Cancelling;
            ctx.cancel_recv(s.sock, s.gen);
        }
        // Cancelling: its last completion queues the slot, which decides again then.
        _ => {}
    }
}

/// What `process` left.
#[derive(PartialEq, Eq)]
enum Processed {
    /// The connection is gone (closed, failed or handed over).
    Gone,
    /// Every complete packet was handled.
    Done,
    /// The pass budget ran out with complete packets left; the connection is queued again.
    Backlog,
}

/// On a listener that takes the username from the client certificate, puts it in
/// `connect` (the client's own username and password are not used) and says true; `Err`
/// when the certificate has no such name.
fn cert_username(ctx: &Ctx, conn: ConnId, connect: &mut Connect) -> Result<bool, String> {
    let name = ctx
        .io
        .borrow()
        .get(conn.slot)
        .and_then(|s| s.transport.cert_username());
    match name {
        None => Ok(false),
        Some(Ok(user)) => {
            connect.username = Some(user.as_str().into());
            connect.password = None;
            Ok(true)
        }
        Some(Err(why)) => Err(why),
    }
}

/// Decodes and handles every complete packet buffered for `conn`. While the shard has the
/// connection paused, PUBLISHes (and what follows a non-ack packet) are deferred whole into
/// `IoSlot::held` and only acknowledgements are handled (`held`); deferred packets go first
/// once it resumes, and stop again at the next pause (packet granularity). At most
/// `PASS_BUDGET` bytes are handled per call; then the connection is queued again and the
/// result says `Backlog`.
fn process(ctx: &Rc<Ctx>, conn: ConnId) -> Processed {
    let now = now_ms();
    let Some((mut buf, mut held, mut connected)) = ({
        let mut io = ctx.io.borrow_mut();
        io.get_mut(conn.slot)
            .map(|s| (std::mem::take(&mut s.buf), s.held.take(), s.connected))
    }) else {
        return Processed::Gone;
    };
    let start_len = buf.len();
    let mut more = false;
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
        if start_len - buf.len() >= PASS_BUDGET {
            // The rest on a later pass: what this produced is flushed first.
            mark_ready(conn.slot);
            more = true;
            break;
        }
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
            if shard.checks_passwords() && !ctx.connect_turn() {
                // A password check (a PBKDF2 hash) waits for the next pass, as handshakes do.
                mark_ready(conn.slot);
                more = true;
                break;
            }
            shard.peek_connect(conn, &buf);
        }
        match codec::decode(&mut buf, &limits, version) {
            Ok(None) => break,
            Ok(Some(Packet::Connect(mut connect))) if !connected => {
                connected = true;
                match cert_username(ctx, conn, &mut connect) {
                    Ok(true) => shard.set_cert_user(conn),
                    Ok(false) => {}
                    Err(why) => {
                        let peer = shard.peer(conn);
                        let code = codec::ReasonCode::NotAuthorized;
                        shard.refuse_connect(now, conn, connect.protocol, code);
                        ctx.transport_failed(super::transport::FailKind::Tls, &why, peer);
                        continue;
                    }
                }
                let home = home_shard(&connect.client_id, ctx.nr);
                if home == ctx.id {
                    shard.handle_connect(now, conn, connect);
                } else {
                    let peer = shard.peer(conn);
                    let anonymous = shard.anonymous(conn);
                    shard.forget_conn(conn);
                    drop(shard);
                    super::handoff::send(ctx, conn, home, connect, buf, peer, anonymous);
                    return Processed::Gone;
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
            match (alive, more) {
                (false, _) => Processed::Gone,
                (true, true) => Processed::Backlog,
                (true, false) => Processed::Done,
            }
        }
        None => Processed::Gone,
    }
}
