//! Listening sockets and accepting: every shard binds the same address with SO_REUSEPORT so
//! the kernel spreads accepts across shards, with a backlog sized for reconnect storms. Each
//! listener has one multishot accept on the ring that installs every new socket straight
//! into a free slot of the shard's direct-descriptor table (no process fd, so RLIMIT_NOFILE
//! does not cap connections).
//!
//! A full table ends the multishot accept with ENFILE. The listener then sheds: a poll on
//! it says when clients wait, each is accepted as a plain fd and closed at once (the client
//! sees a clean close, not a connection left hanging in the backlog), counted, and logged at
//! most once a minute (`shed`). Once the table has room again, the multishot accept is
//! armed again. Nothing spins.

use super::ctx::{now_ms, Ctx};
use super::ring::Completion;
use super::sockets::{data, Op};
use socket2::{Domain, Protocol, Socket, Type};
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd, OwnedFd};
use std::rc::Rc;

/// Listen backlog asked of the kernel; it is capped by net.core.somaxconn (see kernel-tuning/).
const BACKLOG: i32 = 65_535;

/// One listening socket of a shard.
pub struct Listener {
    pub fd: OwnedFd,
}

/// Binds `addr` with SO_REUSEPORT and TCP_NODELAY, which accepted sockets inherit.
pub fn bind(addr: SocketAddr) -> std::io::Result<Listener> {
    let domain = if addr.is_ipv6() {
        Domain::IPV6
    } else {
        Domain::IPV4
    };
    let sk = Socket::new(domain, Type::STREAM, Some(Protocol::TCP))?;
    sk.set_reuse_address(true)?;
    sk.set_reuse_port(true)?;
    sk.set_nodelay(true)?;
    sk.set_nonblocking(true)?;
    sk.bind(&addr.into())?;
    sk.listen(BACKLOG)?;
    // SAFETY: the fd was just created, is a listening TCP socket, and ownership moves here.
    let fd = unsafe { OwnedFd::from_raw_fd(sk.into_raw_fd()) };
    Ok(Listener { fd })
}

/// Arms the multishot accept of listener `i`.
pub fn arm(ctx: &Ctx, i: usize) {
    use io_uring::{opcode, types};
    let Some(l) = ctx.listeners.get(i) else {
        return;
    };
    let e = opcode::AcceptMulti::new(types::Fd(l.fd.as_raw_fd()))
        .allocate_file_index(true)
        .build()
        .user_data(data(Op::Accept, i as u32, 0));
    // SAFETY: no buffers.
    unsafe { ctx.submit(e) };
}

pub fn arm_all(ctx: &Ctx) {
    for i in 0..ctx.listeners.len() {
        arm(ctx, i);
    }
}

/// Waits (one poll) for clients on listener `i` while the table is full.
fn poll_listener(ctx: &Ctx, i: usize) {
    use io_uring::{opcode, types};
    let Some(l) = ctx.listeners.get(i) else {
        return;
    };
    let e = opcode::PollAdd::new(types::Fd(l.fd.as_raw_fd()), libc::POLLIN as u32)
        .build()
        .user_data(data(Op::ListenPoll, i as u32, 0));
    // SAFETY: no buffers.
    unsafe { ctx.submit(e) };
}

/// A completion of listener `i`'s multishot accept.
pub fn on_accept(ctx: &Rc<Ctx>, i: usize, c: &Completion) {
    if c.res >= 0 {
        let file = c.res as u32;
        if ctx.live_conns() >= ctx.max_conns {
            // Over limits.max_connections: closed before reading anything.
            ctx.files
                .borrow_mut()
                .install(file, super::sockets::Owner::Free);
            ctx.close_file(file);
            ctx.refused.set(ctx.refused.get() + 1);
        } else {
            super::conn::add(ctx, file, None);
        }
    }
    if c.more() {
        return;
    }
    match -c.res {
        libc::ENFILE => {
            // The table is full: shed until it has room.
            ctx.shed.refuse(now_ms(), ctx.id.0, ctx.ring.files, 0);
            poll_listener(ctx, i);
        }
        e if c.res < 0 => {
            ctx.shed.error(now_ms(), ctx.id.0, e);
            ctx.shed.retry_at_ms.set(now_ms() + super::shed::RETRY_MS);
            ctx.accept_pending.set(true);
        }
        _ => arm(ctx, i),
    }
}

/// Clients wait on listener `i` while the table was full: shed them, or accept again.
pub fn on_listen_poll(ctx: &Rc<Ctx>, i: usize) {
    if !ctx.files.borrow().full() {
        return arm(ctx, i);
    }
    let Some(l) = ctx.listeners.get(i) else {
        return;
    };
    let mut shed = 0;
    loop {
        // SAFETY: accept4 on a listening socket we own; null address pointers are allowed.
        let fd = unsafe {
            libc::accept4(
                l.fd.as_raw_fd(),
                std::ptr::null_mut(),
                std::ptr::null_mut(),
                libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            )
        };
        if fd < 0 {
            break;
        }
        // SAFETY: a fresh fd from accept4, closed here.
        unsafe { libc::close(fd) };
        shed += 1;
    }
    ctx.shed.refuse(now_ms(), ctx.id.0, ctx.ring.files, shed);
    poll_listener(ctx, i);
}
