//! The end-of-turn flush: one write per connection with output, closes, and one mesh send
//! per destination shard. Runs as its own task, woken by `Ctx::kick`, so everything the
//! other tasks produced during the turn goes out together.

use super::ctx::{now_ms, Ctx};
use super::mesh::MeshMsg;
use bytes::{Buf, BytesMut};
use futures_lite::AsyncWrite;
use shard::{ConnId, IoEvent};
use std::pin::Pin;
use std::rc::Rc;
use std::task::Poll;

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

/// One flush pass over everything the shard produced.
pub fn flush(ctx: &Rc<Ctx>, events: &mut Vec<IoEvent>) {
    ctx.flush_started();
    ctx.shard.borrow_mut().take_events(events);
    for ev in events.drain(..) {
        match ev {
            IoEvent::Flush(conn) => write_conn(ctx, conn),
            IoEvent::Close(conn, last) => {
                if let Some(slot) = ctx.remove_io(conn) {
                    if !last.is_empty() && !slot.write_blocked {
                        let _ = send_now(slot.fd, &last);
                    }
                    // Dropping the slot closes the socket.
                }
            }
        }
    }
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

fn write_conn(ctx: &Rc<Ctx>, conn: ConnId) {
    let fd = {
        let io = ctx.io.borrow();
        match io.get(conn.slot as usize).and_then(|s| s.as_ref()) {
            Some(s) if s.conn == conn && !s.write_blocked => s.fd,
            // Gone, or a writer task owns the output and will take the new bytes too.
            _ => return,
        }
    };
    let Some(mut out) = ctx.shard.borrow_mut().conn_output(conn) else {
        return;
    };
    match send_now(fd, &out) {
        Ok(n) if n == out.len() => {}
        Ok(n) => {
            out.advance(n);
            ctx.shard.borrow_mut().conn_output_unsent(conn, out);
            if let Some(Some(s)) = ctx.io.borrow_mut().get_mut(conn.slot as usize) {
                s.write_blocked = true;
            }
            glommio::spawn_local(writer(ctx.clone(), conn)).detach();
        }
        Err(_) => fail(ctx, conn),
    }
}

/// Drains a connection whose socket buffer filled up, waiting for it to become writable.
/// Exists only while the client is slow, so idle connections cost no writer task.
async fn writer(ctx: Rc<Ctx>, conn: ConnId) {
    loop {
        let out: Option<BytesMut> = ctx.shard.borrow_mut().conn_output(conn);
        let Some(mut out) = out else { break };
        while !out.is_empty() {
            let r = futures_lite::future::poll_fn(|cx| {
                let mut io = ctx.io.borrow_mut();
                match io
                    .get_mut(conn.slot as usize)
                    .and_then(|s| s.as_mut())
                    .filter(|s| s.conn == conn)
                {
                    Some(s) => Pin::new(&mut s.stream).poll_write(cx, &out).map(Some),
                    None => Poll::Ready(None),
                }
            })
            .await;
            match r {
                None => return, // closed meanwhile
                Some(Ok(0)) | Some(Err(_)) => {
                    fail(&ctx, conn);
                    ctx.kick();
                    return;
                }
                Some(Ok(n)) => out.advance(n),
            }
        }
    }
    if let Some(Some(s)) = ctx.io.borrow_mut().get_mut(conn.slot as usize) {
        if s.conn == conn {
            s.write_blocked = false;
        }
    }
}
