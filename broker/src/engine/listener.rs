//! Listening sockets: every shard binds the same address with SO_REUSEPORT so the kernel
//! spreads accepts across shards, with a backlog sized for reconnect storms. Listeners sit in
//! the shard's epoll set like connections; the poller accepts in batches with `accept4`.

use socket2::{Domain, Protocol, Socket, Type};
use std::net::SocketAddr;
use std::os::fd::{FromRawFd, IntoRawFd, OwnedFd};

/// Listen backlog asked of the kernel; it is capped by net.core.somaxconn (see kernel-tuning/).
const BACKLOG: i32 = 65_535;

/// Binds `addr` with SO_REUSEPORT, non-blocking; the shard accepts from its epoll set.
pub fn bind(addr: SocketAddr) -> std::io::Result<OwnedFd> {
    let domain = if addr.is_ipv6() {
        Domain::IPV6
    } else {
        Domain::IPV4
    };
    let sk = Socket::new(domain, Type::STREAM, Some(Protocol::TCP))?;
    sk.set_reuse_address(true)?;
    sk.set_reuse_port(true)?;
    sk.set_nonblocking(true)?;
    sk.bind(&addr.into())?;
    sk.listen(BACKLOG)?;
    // SAFETY: the fd was just created, is a listening TCP socket, and ownership moves here.
    Ok(unsafe { OwnedFd::from_raw_fd(sk.into_raw_fd()) })
}

/// Accepts one pending connection, non-blocking. `Ok(None)` when none is waiting.
pub fn accept(listener: &OwnedFd) -> std::io::Result<Option<OwnedFd>> {
    use std::os::fd::AsRawFd;
    // SAFETY: accept4 on a listening socket we own; null address pointers are allowed.
    let fd = unsafe {
        libc::accept4(
            listener.as_raw_fd(),
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
        )
    };
    if fd >= 0 {
        // SAFETY: a fresh fd from accept4, owned by nobody else.
        return Ok(Some(unsafe { OwnedFd::from_raw_fd(fd) }));
    }
    let e = std::io::Error::last_os_error();
    match e.kind() {
        std::io::ErrorKind::WouldBlock => Ok(None),
        // The peer gave up between SYN and accept: nothing to do, try the next one.
        _ if e.raw_os_error() == Some(libc::ECONNABORTED) => accept(listener),
        _ => Err(e),
    }
}
