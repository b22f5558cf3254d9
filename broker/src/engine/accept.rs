//! Listening sockets and accepting: every shard binds the same address with SO_REUSEPORT so
//! the kernel spreads accepts across shards, with a backlog sized for reconnect storms. Each
//! listener has one multishot accept on the ring that installs every new socket straight
//! into a free slot of the shard's direct-descriptor table (no process fd, so RLIMIT_NOFILE
//! does not cap connections).
//!
//! A full table ends its multishot accept with ENFILE. Accepting moves to a table with
//! room, or to a new one while the shard may open more (`tables`). With every table full
//! the listener sheds: a poll on it says when clients wait, each is accepted as a plain fd
//! and closed at once (the client sees a clean close, not a connection left hanging in the
//! backlog), counted, and logged at most once a minute (`shed`). When a socket of a full
//! table closes, that table accepts again. Nothing spins.

use super::ctx::{now_ms, Ctx};
use super::ring::Completion;
use super::sockets::{data, Op, Owner};
use super::tables::Sock;
use super::transport::Transport;
use socket2::{Domain, Protocol, Socket, Type};
use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd, OwnedFd};
use std::rc::Rc;

/// Listen backlog asked of the kernel; it is capped by net.core.somaxconn (see kernel-tuning/).
const BACKLOG: i32 = 65_535;

/// One listening socket of a shard (at most 64 per shard: `Table::accepting` is a mask).
pub struct Listener {
    pub fd: OwnedFd,
    /// What its connections are carried in.
    transport: super::TransportKind,
    /// It listens on an IPv6 address (its peers' addresses are `sockaddr_in6`).
    v6: bool,
    /// Its anonymous policy, over the broker's.
    allow_anonymous: Option<bool>,
}

/// Binds `l.addr` with SO_REUSEPORT and TCP_NODELAY, which accepted sockets inherit.
pub fn bind(l: &super::Listen) -> std::io::Result<Listener> {
    let addr = l.addr;
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
    Ok(Listener {
        fd,
        transport: l.transport.clone(),
        v6: addr.is_ipv6(),
        allow_anonymous: l.allow_anonymous,
    })
}

/// Arms the multishot accept of listener `i` on table `table`.
fn arm(ctx: &Ctx, table: u16, i: usize) {
    use io_uring::{opcode, types};
    let Some(l) = ctx.listeners.get(i) else {
        return;
    };
    let t = ctx.tables.get(table);
    t.accepting.set(t.accepting.get() | 1 << i);
    let e = opcode::AcceptMulti::new(types::Fd(l.fd.as_raw_fd()))
        .allocate_file_index(true)
        .build()
        .user_data(data(Op::Accept, i as u32, 0));
    // SAFETY: no buffers.
    unsafe { ctx.submit(table, e) };
}

/// Arms every listener not accepting on `table` yet.
fn arm_table(ctx: &Ctx, table: u16) {
    let on = ctx.tables.get(table).accepting.get();
    for i in 0..ctx.listeners.len() {
        if on & (1 << i) == 0 {
            arm(ctx, table, i);
        }
    }
    ctx.peers[ctx.id.index()]
        .room
        .store(table, std::sync::atomic::Ordering::Release);
}

/// Arms the accepts of a table with room (at start, and to retry after an error).
pub fn arm_all(ctx: &Ctx) {
    // Nearly full tables keep their last slots for hand-offs unless none other has room.
    let pick = ctx.tables.roomy().or_else(|| ctx.tables.with_room());
    if let Some(t) = pick {
        arm_table(ctx, t);
    }
}

/// A socket of `table` closed: if the table stopped accepting when it filled, it accepts
/// again.
pub fn room_in(ctx: &Ctx, table: u16) {
    let files = ctx.tables.get(table).files.borrow();
    let open = !files.nearly_full() || ctx.tables.len() == 1;
    drop(files);
    if !ctx.listeners.is_empty() && open && !ctx.tables.get(table).files.borrow().full() {
        arm_table(ctx, table);
    }
}

/// Waits (one poll) for clients on listener `i` while every table is full.
fn poll_listener(ctx: &Ctx, i: usize) {
    use io_uring::{opcode, types};
    let Some(l) = ctx.listeners.get(i) else {
        return;
    };
    let e = opcode::PollAdd::new(types::Fd(l.fd.as_raw_fd()), libc::POLLIN as u32)
        .build()
        .user_data(data(Op::ListenPoll, i as u32, 0));
    // SAFETY: no buffers.
    unsafe { ctx.submit(0, e) };
}

/// A completion of listener `i`'s multishot accept on `table`.
pub fn on_accept(ctx: &Rc<Ctx>, table: u16, i: usize, c: &Completion) {
    if c.res >= 0 {
        let sock = Sock {
            table,
            file: c.res as u32,
        };
        if ctx.live_conns() >= ctx.max_conns {
            // Over limits.max_connections: closed before reading anything.
            ctx.install(sock, Owner::Free);
            ctx.close_file(sock);
            ctx.refused.set(ctx.refused.get() + 1);
        } else {
            let (transport, v6, anonymous) = match ctx.listeners.get(i) {
                Some(l) => (Transport::new(&l.transport), l.v6, l.allow_anonymous),
                None => (Ok(Transport::Plain), false, None),
            };
            match transport {
                Ok(t) => {
                    let conn = super::conn::accepted(ctx, sock, t);
                    super::peer::ask(ctx, sock, conn, v6);
                    if let Some(allow) = anonymous {
                        ctx.shard.borrow_mut().set_anonymous(conn, allow);
                    }
                }
                Err(e) => {
                    ctx.install(sock, Owner::Free);
                    ctx.close_file(sock);
                    ctx.transport_failed(
                        super::transport::FailKind::Tls,
                        &format!("TLS: {e}"),
                        None,
                    );
                }
            }
        }
    }
    if c.more() {
        return;
    }
    let t = ctx.tables.get(table);
    t.accepting.set(t.accepting.get() & !(1 << i));
    match -c.res {
        libc::ENFILE => table_full(ctx, Some(i)),
        // Stopped by `filling`: the table's last slots stay for hand-offs.
        libc::ECANCELED => {}
        e if c.res < 0 => {
            ctx.shed.error(now_ms(), ctx.id.0, e);
            ctx.shed.retry_at_ms.set(now_ms() + super::shed::RETRY_MS);
            ctx.accept_pending.set(true);
        }
        _ => arm(ctx, table, i),
    }
}

/// A table is nearly full: point hand-offs at one with room, opening one before the last
/// slots go (other shards hand sockets to the table they were told has room).
///
/// Accepting stops on the nearly full table `full` too: an accept that finds a table full
/// fails with ENFILE after the kernel took the connection off the backlog, which resets
/// that client. The last slots are left for hand-offs (which are retried elsewhere when
/// refused). With no other table to be had it accepts until full (then sheds).
pub fn filling(ctx: &Rc<Ctx>, full: u16) {
    let other = match ctx.tables.roomy() {
        Some(t) => Some(t),
        None => match ctx.tables.grow() {
            Ok(Some(t)) => {
                opened(ctx, t);
                Some(t)
            }
            _ => None,
        },
    };
    let Some(other) = other else { return };
    arm_table(ctx, other);
    stop_table(ctx, full);
}

/// Cancels every multishot accept of `table` (their last completions say -ECANCELED).
fn stop_table(ctx: &Ctx, table: u16) {
    use io_uring::{opcode, types};
    let t = ctx.tables.get(table);
    let on = t.accepting.replace(0);
    for i in 0..ctx.listeners.len() {
        if on & (1 << i) != 0 {
            let target = data(Op::Accept, i as u32, 0);
            let e = opcode::AsyncCancel2::new(types::CancelBuilder::user_data(target))
                .build()
                .user_data(data(Op::Quiet, 0, 0));
            // SAFETY: no buffers.
            unsafe { ctx.submit(table, e) };
        }
    }
}

fn opened(ctx: &Ctx, t: u16) {
    ctx.peers[ctx.id.index()].fds[t as usize].store(
        ctx.tables.get(t).ring.fd(),
        std::sync::atomic::Ordering::Release,
    );
    tracing::info!(
        shard = ctx.id.0,
        tables = ctx.tables.len(),
        slots = ctx.tables.slots,
        "opened another descriptor table"
    );
    arm_table(ctx, t);
}

/// A table filled up (under listener `i`'s accept, or by a hand-off): accept into another
/// with room, open one more, or shed while the shard holds all the tables it may.
pub fn table_full(ctx: &Rc<Ctx>, i: Option<usize>) {
    if let Some(t) = ctx.tables.with_room() {
        return arm_table(ctx, t);
    }
    match ctx.tables.grow() {
        Ok(Some(t)) => opened(ctx, t),
        Ok(None) => {
            ctx.shed
                .refuse(now_ms(), ctx.id.0, ctx.tables.used() as u64, 0);
            if let Some(i) = i.filter(|_| !ctx.shedding.replace(true)) {
                poll_listener(ctx, i);
            }
        }
        Err(e) => {
            ctx.shed
                .error(now_ms(), ctx.id.0, e.raw_os_error().unwrap_or(libc::EIO));
            if let Some(i) = i.filter(|_| !ctx.shedding.replace(true)) {
                poll_listener(ctx, i);
            }
        }
    }
}

/// Clients wait on listener `i` while every table was full: shed them, unless a table has
/// room again (its accepts were armed when the room appeared).
pub fn on_listen_poll(ctx: &Rc<Ctx>, i: usize) {
    if ctx.tables.with_room().is_some() {
        ctx.shedding.set(false);
        return arm_all(ctx);
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
    ctx.shed
        .refuse(now_ms(), ctx.id.0, ctx.tables.used() as u64, shed);
    poll_listener(ctx, i);
}
