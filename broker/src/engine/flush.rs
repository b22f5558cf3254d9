//! The end-of-turn flush: one write per connection with output, closes, and one mesh send
//! per destination shard. Runs as its own task, woken by `Ctx::kick`, so everything the
//! other tasks produced during the turn goes out together.

use super::ctx::{ConnIo, Ctx};
use super::mesh::MeshMsg;
use bytes::{Buf, BytesMut};
use shard::{ConnId, IoEvent};
use std::rc::Rc;

/// Writes as much of `buf` as the socket takes now, without blocking.
fn send_now(fd: i32, buf: &[u8]) -> std::io::Result<usize> {
    // SAFETY: `buf` is a valid slice for the duration of the call; `fd` is an open socket
    // owned by a live `ConnIo`.
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

fn shutdown(io: &ConnIo) {
    io.closed.set(true);
    // SAFETY: plain shutdown(2) on an fd owned by `io`; wakes the reader with EOF.
    unsafe {
        libc::shutdown(io.fd, libc::SHUT_RDWR);
    }
}

/// One flush pass over everything the shard produced.
pub fn flush(ctx: &Rc<Ctx>, events: &mut Vec<IoEvent>) {
    ctx.flush_started();
    ctx.shard.borrow_mut().take_events(events);
    for ev in events.drain(..) {
        match ev {
            IoEvent::Flush(conn) => write_conn(ctx, conn),
            IoEvent::Close(conn, last) => {
                let io = ctx.io.borrow_mut().remove(&conn);
                if let Some(io) = io {
                    if !last.is_empty() && !io.write_blocked.get() {
                        let _ = send_now(io.fd, &last);
                    }
                    shutdown(&io);
                }
            }
        }
    }
    let batches: Vec<_> = ctx.shard.borrow_mut().outbox().drain().collect();
    for (to, batch) in batches {
        ctx.send_mesh(to, MeshMsg::Batch(batch));
    }
}

fn write_conn(ctx: &Rc<Ctx>, conn: ConnId) {
    let Some(io) = ctx.io.borrow().get(&conn).cloned() else {
        return;
    };
    if io.write_blocked.get() {
        return; // the writer task will take the new output too
    }
    let Some(mut out) = ctx.shard.borrow_mut().conn_output(conn) else {
        return;
    };
    match send_now(io.fd, &out) {
        Ok(n) if n == out.len() => {}
        Ok(n) => {
            out.advance(n);
            ctx.shard.borrow_mut().conn_output_unsent(conn, out);
            io.write_blocked.set(true);
            glommio::spawn_local(writer(ctx.clone(), io, conn)).detach();
        }
        Err(_) => shutdown(&io),
    }
}

/// Drains a connection whose socket buffer filled up, waiting for it to become writable.
/// Exists only while the client is slow, so idle connections cost no writer task.
async fn writer(ctx: Rc<Ctx>, io: Rc<ConnIo>, conn: ConnId) {
    loop {
        let out: Option<BytesMut> = ctx.shard.borrow_mut().conn_output(conn);
        let Some(mut out) = out else { break };
        while !out.is_empty() {
            let r = futures_lite::future::poll_fn(|cx| {
                let mut s = io.stream.borrow_mut();
                futures_lite::AsyncWrite::poll_write(std::pin::Pin::new(&mut *s), cx, &out)
            })
            .await;
            match r {
                Ok(0) | Err(_) => {
                    io.write_blocked.set(false);
                    shutdown(&io);
                    return;
                }
                Ok(n) => out.advance(n),
            }
            if io.closed.get() {
                return;
            }
        }
    }
    io.write_blocked.set(false);
}
