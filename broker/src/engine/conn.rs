//! The life of one connection on its executor: read into the shared buffer, decode, feed
//! the shard; hand the socket to the client's home shard after CONNECT when that is another
//! shard.
//!
//! A connection holds no read buffer while idle: bytes are read into the executor's shared
//! buffer and only an incomplete packet's bytes are kept in the connection's own buffer,
//! which is released as soon as it is empty.

use super::ctx::{now_ms, ConnIo, Ctx};
use super::mesh::MeshMsg;
use bytes::BytesMut;
use codec::{Connect, Packet};
use glommio::net::TcpStream;
use shard::{home_shard, ConnId};
use std::cell::{Cell, RefCell};
use std::os::unix::io::AsRawFd;
use std::rc::Rc;

/// How a connection's task ended.
enum End {
    /// Socket closed, failed, or the shard closed it.
    Closed,
    /// Handed to another shard; nothing to clean up in the shard state.
    HandedOff,
}

/// Runs a connection accepted here (`first` is None) or handed to us with its CONNECT.
pub async fn run(ctx: Rc<Ctx>, stream: TcpStream, first: Option<(Box<Connect>, BytesMut)>) {
    let _ = stream.set_nodelay(true);
    let fd = stream.as_raw_fd();
    let conn = ctx.shard.borrow_mut().open_conn(now_ms());
    let io = Rc::new(ConnIo {
        stream: RefCell::new(stream),
        fd,
        write_blocked: Cell::new(false),
        closed: Cell::new(false),
    });
    ctx.io.borrow_mut().insert(conn, io.clone());
    let mut buf = BytesMut::new();
    let mut connected = false;
    if let Some((connect, leftover)) = first {
        ctx.shard
            .borrow_mut()
            .handle_connect(now_ms(), conn, connect);
        connected = true;
        buf = leftover;
    }
    let end = drive(&ctx, &io, conn, &mut buf, &mut connected).await;
    if let End::Closed = end {
        ctx.shard.borrow_mut().conn_lost(now_ms(), conn);
    }
    ctx.io.borrow_mut().remove(&conn);
    ctx.kick();
}

async fn drive(
    ctx: &Rc<Ctx>,
    io: &Rc<ConnIo>,
    conn: ConnId,
    buf: &mut BytesMut,
    connected: &mut bool,
) -> End {
    loop {
        if !buf.is_empty() {
            if let Some(end) = process(ctx, io, conn, buf, connected) {
                return end;
            }
            ctx.kick();
        }
        if io.closed.get() {
            return End::Closed;
        }
        let n = futures_lite::future::poll_fn(|cx| {
            let mut scratch = ctx.read_buf.borrow_mut();
            let mut s = io.stream.borrow_mut();
            match futures_lite::AsyncRead::poll_read(
                std::pin::Pin::new(&mut *s),
                cx,
                &mut scratch[..],
            ) {
                std::task::Poll::Ready(Ok(n)) => {
                    buf.extend_from_slice(&scratch[..n]);
                    std::task::Poll::Ready(Ok(n))
                }
                other => other,
            }
        })
        .await;
        match n {
            Ok(0) | Err(_) => return End::Closed,
            Ok(_) => {}
        }
    }
}

/// Decodes and handles every complete packet in `buf`. Returns how the connection ended,
/// or None to keep reading.
fn process(
    ctx: &Rc<Ctx>,
    io: &Rc<ConnIo>,
    conn: ConnId,
    buf: &mut BytesMut,
    connected: &mut bool,
) -> Option<End> {
    let now = now_ms();
    loop {
        if io.closed.get() {
            return Some(End::Closed);
        }
        let mut shard = ctx.shard.borrow_mut();
        let (limits, version) = shard.decode_params(conn)?;
        match codec::decode(buf, &limits, version) {
            Ok(None) => break,
            Ok(Some(Packet::Connect(connect))) if !*connected => {
                *connected = true;
                let home = home_shard(&connect.client_id, ctx.nr);
                if home == ctx.id {
                    shard.handle_connect(now, conn, connect);
                } else {
                    shard.forget_conn(conn);
                    drop(shard);
                    return Some(handoff(ctx, io, conn, home, connect, buf));
                }
            }
            Ok(Some(p)) => shard.handle_packet(now, conn, p),
            Err(e) => {
                shard.decode_error(now, conn, e);
                return Some(End::Closed);
            }
        }
    }
    if buf.is_empty() {
        // Give the memory back while the connection is idle.
        *buf = BytesMut::new();
    }
    None
}

/// Sends the socket to its client's home shard: `dup` the fd (glommio's stream cannot give
/// up its own), let this side close its copy, and pass the CONNECT and unread bytes along.
fn handoff(
    ctx: &Rc<Ctx>,
    io: &Rc<ConnIo>,
    conn: ConnId,
    home: shard::ShardId,
    connect: Box<Connect>,
    buf: &mut BytesMut,
) -> End {
    ctx.io.borrow_mut().remove(&conn);
    // SAFETY: dup(2) of an fd owned by the live stream in `io`.
    let fd = unsafe { libc::dup(io.fd) };
    if fd < 0 {
        tracing::warn!("handoff dup failed: {}", std::io::Error::last_os_error());
        return End::HandedOff;
    }
    let leftover = std::mem::take(buf);
    ctx.send_mesh(
        home,
        MeshMsg::Handoff {
            fd,
            connect,
            leftover,
        },
    );
    End::HandedOff
}
