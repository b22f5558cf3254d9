//! Handing a connection to its client's home shard after CONNECT.
//!
//! The accepting shard stops its receive and waits for the receive's last completion, so
//! every byte read after the CONNECT is in hand, and for a send in flight (a TLS handshake's
//! last flight), so the home shard alone writes from then on. It then sends the socket to the home
//! shard's ring with IORING_OP_MSG_RING (the kernel installs it in a free slot of that ring's
//! descriptor table and posts a completion there), and once that succeeded, the CONNECT and
//! those bytes and the connection's transport over the mesh, and closes its own slot. The home shard pairs the two arrivals
//! by the sender's shard and hand-off number, in whichever order they come.

use super::ctx::{Ctx, Recv};
use super::mesh::MeshMsg;
use super::ring::Completion;
use super::sockets::{data, Op, Owner, Slab};
use super::tables::Sock;
use super::transport::Transport;
use ahash::AHashMap;
use bytes::BytesMut;
use codec::Connect;
use shard::{ConnId, ShardId};
use std::net::SocketAddr;
use std::rc::Rc;

/// A socket leaving this shard.
struct Out {
    /// Names the hand-off on the home shard (never reused while one may be arriving).
    token: u32,
    sock: Sock,
    home: ShardId,
    connect: Box<Connect>,
    leftover: BytesMut,
    transport: Transport,
    peer: Option<SocketAddr>,
    anonymous: Option<bool>,
    /// The receive has not ended yet.
    receiving: bool,
    /// A send has not completed yet.
    sending: bool,
    /// The home shard's table tried now, and how many were tried (a full one refuses).
    table: u16,
    tries: u16,
}

/// Half of an arriving hand-off.
enum In {
    File(Sock),
    Msg(Arrival),
}

/// What comes over the mesh with a hand-off.
pub struct Arrival {
    pub connect: Box<Connect>,
    /// The MQTT bytes read after the CONNECT.
    pub leftover: BytesMut,
    pub transport: Transport,
    /// Where the client connects from, when known.
    pub peer: Option<SocketAddr>,
    /// Its listener's anonymous policy, where it has one.
    pub anonymous: Option<bool>,
}

#[derive(Default)]
pub struct Handoffs {
    out: Slab<Out>,
    next_token: u32,
    arriving: AHashMap<(u32, u32), In>,
    /// Hand-offs that failed (the home shard's table was full): counted, logged once.
    pub failed: u64,
}

/// Sends `conn` (its CONNECT decoded, `leftover` read after it, its peer address) to shard
/// `home`.
pub fn send(
    ctx: &Rc<Ctx>,
    conn: ConnId,
    home: ShardId,
    connect: Box<Connect>,
    leftover: BytesMut,
    peer: Option<SocketAddr>,
    anonymous: Option<bool>,
) {
    let Some(slot) = ctx.remove_io(conn) else {
        return;
    };
    let receiving = slot.recv != Recv::Off;
    let sending = slot.sending;
    let token = {
        let mut hs = ctx.handoffs.borrow_mut();
        hs.next_token = hs.next_token.wrapping_add(1);
        hs.next_token
    };
    let out = Out {
        token,
        sock: slot.sock,
        home,
        connect,
        leftover,
        transport: slot.transport,
        peer,
        anonymous,
        receiving,
        sending,
        table: ctx.peers[home.index()].hint(),
        tries: 0,
    };
    let h = ctx.handoffs.borrow_mut().out.insert(out);
    ctx.set_owner(slot.sock, Owner::Handoff(h));
    match slot.recv {
        Recv::On => ctx.cancel_recv(slot.sock, slot.gen),
        Recv::Cancelling => {}
        Recv::Off if !sending => send_file(ctx, h),
        Recv::Off => {}
    }
}

/// Bytes (or the end) of the receive of a socket being handed over.
pub fn on_recv(ctx: &Rc<Ctx>, h: u32, bytes: &[u8], c: &Completion) {
    let ended = {
        let mut hs = ctx.handoffs.borrow_mut();
        let Some(o) = hs.out.get_mut(h) else {
            return;
        };
        if !bytes.is_empty() {
            let mut plain = BytesMut::new();
            // A failed session keeps its error: the home shard meets it on its next input.
            let _ = o.transport.input(bytes, &mut plain);
            o.leftover.extend_from_slice(&plain);
        }
        if !c.more() {
            o.receiving = false;
        }
        !o.receiving && !o.sending
    };
    if ended {
        send_file(ctx, h);
    }
}

/// The send that was in flight when hand-off `h` began completed: what it did not take
/// goes first on the home shard.
pub fn on_sent_bytes(ctx: &Rc<Ctx>, h: u32, rest: Option<BytesMut>) {
    let ready = {
        let mut hs = ctx.handoffs.borrow_mut();
        let Some(o) = hs.out.get_mut(h) else {
            return;
        };
        o.sending = false;
        if let Some(rest) = rest {
            o.transport.unsent(rest);
        }
        !o.receiving
    };
    if ready {
        send_file(ctx, h);
    }
}

fn send_file(ctx: &Ctx, h: u32) {
    use io_uring::{opcode, types};
    let Some((sock, home, token, table)) = ctx
        .handoffs
        .borrow()
        .out
        .get(h)
        .map(|o| (o.sock, o.home, o.token, o.table))
    else {
        return;
    };
    let peer = &ctx.peers[home.index()];
    let target = peer.fd(table).or_else(|| peer.fd(0)).unwrap_or(-1);
    let e = opcode::MsgRingSendFd::new(
        types::Fd(target),
        types::Fixed(sock.file),
        types::DestinationSlot::auto_target(),
        data(Op::HandoffIn, ctx.id.0 as u32, token),
    )
    .build()
    .user_data(data(Op::HandoffOut, 0, h));
    // SAFETY: no buffers.
    unsafe { ctx.submit(sock.table, e) };
}

/// The kernel moved (or failed to move) hand-off `h`'s socket to the home shard's ring. A
/// full table there refuses it: the next open table of that shard is tried, then it fails.
pub fn on_sent(ctx: &Rc<Ctx>, h: u32, res: i32) {
    if res == -libc::ENFILE && retry_elsewhere(ctx, h) {
        return send_file(ctx, h);
    }
    let o = ctx.handoffs.borrow_mut().out.remove(h);
    let Some(o) = o else { return };
    if res < 0 {
        ctx.close_file(o.sock);
        let mut hs = ctx.handoffs.borrow_mut();
        if hs.failed == 0 {
            tracing::warn!(
                shard = ctx.id.0,
                home = o.home.0,
                "hand-off failed: {}; the connection was closed (counted, logged once)",
                std::io::Error::from_raw_os_error(-res)
            );
        }
        hs.failed += 1;
        return;
    }
    // The home shard's ring holds the socket now: only this ring's slot goes.
    ctx.release_file(o.sock);
    ctx.send_mesh(
        o.home,
        MeshMsg::Handoff {
            token: o.token,
            arrival: Arrival {
                connect: o.connect,
                leftover: o.leftover,
                transport: o.transport,
                peer: o.peer,
                anonymous: o.anonymous,
            },
        },
    );
}

/// Moves hand-off `h` to the home shard's next open table; false when all were tried.
fn retry_elsewhere(ctx: &Ctx, h: u32) -> bool {
    let mut hs = ctx.handoffs.borrow_mut();
    let Some(o) = hs.out.get_mut(h) else {
        return false;
    };
    let peer = &ctx.peers[o.home.index()];
    let open = (0..peer.fds.len() as u16)
        .take_while(|&t| peer.fd(t).is_some())
        .count() as u16;
    o.tries += 1;
    if o.tries >= open {
        return false;
    }
    o.table = (o.table + 1) % open;
    true
}

/// A socket arrived in `table` at slot `res` from shard `from`'s hand-off `token`.
pub fn on_arrived(ctx: &Rc<Ctx>, table: u16, from: u32, token: u32, res: i32) {
    if res < 0 {
        return;
    }
    let file = Sock {
        table,
        file: res as u32,
    };
    ctx.install(file, Owner::Handoff(u32::MAX));
    if ctx.tables.get(table).files.borrow().full() {
        // Point hand-offs (and accepts) at a table with room, opening one if need be.
        super::accept::table_full(ctx, None);
    }
    let msg = ctx.handoffs.borrow_mut().arriving.remove(&(from, token));
    match msg {
        Some(In::Msg(arrival)) => super::conn::handed(ctx, file, arrival),
        _ => {
            ctx.handoffs
                .borrow_mut()
                .arriving
                .insert((from, token), In::File(file));
        }
    }
}

/// The CONNECT, bytes and transport of hand-off `token` from shard `from` arrived over the
/// mesh.
pub fn on_message(ctx: &Rc<Ctx>, from: ShardId, token: u32, arrival: Arrival) {
    let key = (from.0 as u32, token);
    let file = ctx.handoffs.borrow_mut().arriving.remove(&key);
    match file {
        Some(In::File(file)) => super::conn::handed(ctx, file, arrival),
        _ => {
            ctx.handoffs
                .borrow_mut()
                .arriving
                .insert(key, In::Msg(arrival));
        }
    }
}
