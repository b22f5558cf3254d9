//! Listening sockets: every shard binds the same address with SO_REUSEPORT so the kernel
//! spreads accepts across shards, with a backlog sized for reconnect storms.

use glommio::net::TcpListener;
use socket2::{Domain, Protocol, Socket, Type};
use std::net::SocketAddr;
use std::os::unix::io::{FromRawFd, IntoRawFd};

/// Listen backlog asked of the kernel; it is capped by net.core.somaxconn (see kernel-tuning/).
const BACKLOG: i32 = 65_535;

/// Binds `addr` with SO_REUSEPORT on the current executor.
pub fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
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
    Ok(unsafe { TcpListener::from_raw_fd(sk.into_raw_fd()) })
}
