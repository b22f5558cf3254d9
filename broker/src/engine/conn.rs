//! Connections on an executor: one poller task reads every socket of the shard.
//!
//! There is no task per connection. A socket's pending read is a glommio poll whose waker is
//! the connection's slot number (`waker::slot_waker`); when it fires, the slot is queued and
//! the single poller task reads it into the executor's shared 64 KiB buffer, decodes, and
//! feeds the shard. Only an incomplete packet's bytes are copied into the connection's own
//! buffer, released as soon as it is empty. After CONNECT, a connection whose client is
//! homed on another shard is handed over (`dup`ed fd, CONNECT and unread bytes).

use super::ctx::{now_ms, Ctx, IoSlot};
use super::mesh::MeshMsg;
use super::waker::{mark_ready, slot_waker, take_ready};
use bytes::BytesMut;
use codec::{Connect, Packet};
use futures_lite::AsyncRead;
use glommio::net::TcpStream;
use shard::{home_shard, ConnId};
use std::os::unix::io::AsRawFd;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};

/// Reads per connection per poller pass before others get their turn.
const READ_BUDGET: usize = 4;

/// Registers a socket accepted here (`first` None) or handed over with its CONNECT.
pub fn add(ctx: &Rc<Ctx>, stream: TcpStream, first: Option<(Box<Connect>, BytesMut)>) {
    let _ = stream.set_nodelay(true);
    let fd = stream.as_raw_fd();
    let now = now_ms();
    let conn = ctx.shard.borrow_mut().open_conn(now);
    let mut slot = IoSlot {
        conn,
        stream,
        fd,
        buf: BytesMut::new(),
        connected: false,
        write_blocked: false,
    };
    if let Some((connect, leftover)) = first {
        slot.connected = true;
        slot.buf = leftover;
        ctx.insert_io(slot);
        ctx.shard.borrow_mut().handle_connect(now, conn, connect);
        ctx.kick();
    } else {
        ctx.insert_io(slot);
    }
    mark_ready(conn.slot);
}

/// The poller task: forever reads whichever connections are ready.
pub async fn poller(ctx: Rc<Ctx>) {
    let mut ready = Vec::new();
    futures_lite::future::poll_fn(|cx| {
        take_ready(cx.waker(), &mut ready);
        for slot in ready.drain(..) {
            if ctx.mesh.congested() {
                // Other shards are behind: stop reading until they catch up.
                ctx.mesh.park(slot);
            } else {
                poll_slot(&ctx, slot);
            }
        }
        ctx.kick();
        Poll::<()>::Pending
    })
    .await;
}

enum ReadOutcome {
    Data,
    Pending,
    Closed,
}

fn poll_slot(ctx: &Rc<Ctx>, slot: u32) {
    for _ in 0..READ_BUDGET {
        let (conn, outcome) = {
            let mut io = ctx.io.borrow_mut();
            let Some(Some(s)) = io.get_mut(slot as usize) else {
                return;
            };
            let waker = slot_waker(slot);
            let mut cx = Context::from_waker(&waker);
            let mut scratch = ctx.read_buf.borrow_mut();
            let outcome = match Pin::new(&mut s.stream).poll_read(&mut cx, &mut scratch[..]) {
                Poll::Ready(Ok(0)) | Poll::Ready(Err(_)) => ReadOutcome::Closed,
                Poll::Ready(Ok(n)) => {
                    s.buf.extend_from_slice(&scratch[..n]);
                    ReadOutcome::Data
                }
                Poll::Pending => ReadOutcome::Pending,
            };
            (s.conn, outcome)
        };
        match outcome {
            ReadOutcome::Pending => {
                if let Some(s) = ctx
                    .io
                    .borrow_mut()
                    .get_mut(slot as usize)
                    .and_then(|s| s.as_mut())
                {
                    if s.buf.is_empty() {
                        // Give the memory back while the connection is idle.
                        s.buf = BytesMut::new();
                    }
                }
                return;
            }
            ReadOutcome::Closed => {
                ctx.remove_io(conn);
                ctx.shard.borrow_mut().conn_lost(now_ms(), conn);
                return;
            }
            ReadOutcome::Data => {
                if !process(ctx, conn) {
                    return;
                }
            }
        }
    }
    // Budget spent with data still flowing: come back after the others.
    mark_ready(slot);
}

/// Decodes and handles every complete packet buffered for `conn`. False when the
/// connection is gone (closed, failed or handed over).
fn process(ctx: &Rc<Ctx>, conn: ConnId) -> bool {
    let now = now_ms();
    let Some((mut buf, mut connected)) = ({
        let mut io = ctx.io.borrow_mut();
        io.get_mut(conn.slot as usize)
            .and_then(|s| s.as_mut())
            .map(|s| (std::mem::take(&mut s.buf), s.connected))
    }) else {
        return false;
    };
    let mut shard = ctx.shard.borrow_mut();
    let alive = loop {
        let Some((limits, version)) = shard.decode_params(conn) else {
            break false;
        };
        match codec::decode(&mut buf, &limits, version) {
            Ok(None) => break true,
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
                break false;
            }
        }
    };
    drop(shard);
    let mut io = ctx.io.borrow_mut();
    match io
        .get_mut(conn.slot as usize)
        .and_then(|s| s.as_mut())
        .filter(|s| s.conn == conn)
    {
        Some(s) => {
            s.buf = buf;
            s.connected = connected;
            alive
        }
        None => false,
    }
}

/// Sends the socket to its client's home shard: `dup` the fd (glommio's stream cannot give
/// up its own), close this side's copy, and pass the CONNECT and unread bytes along.
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
    // SAFETY: dup(2) of an fd owned by the live stream in `slot`.
    let fd = unsafe { libc::dup(slot.fd) };
    drop(slot);
    if fd < 0 {
        tracing::warn!("hand-off dup failed: {}", std::io::Error::last_os_error());
        return;
    }
    ctx.send_mesh(
        home,
        MeshMsg::Handoff {
            fd,
            connect,
            leftover,
        },
    );
}
