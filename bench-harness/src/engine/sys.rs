//! The few system calls the worker loop needs, wrapped: epoll, non-blocking TCP connect from a
//! chosen source address, read, write, close, and the open-file limit.
//!
//! Owns raw file descriptors only as plain integers; the caller closes what it opened.
//! Nothing here allocates per call.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::RawFd;

fn cvt(r: libc::c_int) -> io::Result<libc::c_int> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

/// An epoll instance.
pub struct Epoll {
    fd: RawFd,
}

/// Readiness flags used by the loop (edge-triggered: read and write until EAGAIN).
pub const EV_CONN: u32 = (libc::EPOLLIN | libc::EPOLLOUT | libc::EPOLLRDHUP | libc::EPOLLET) as u32;
pub const EV_IN: u32 = libc::EPOLLIN as u32;

impl Epoll {
    pub fn new() -> io::Result<Epoll> {
        // SAFETY: plain syscall.
        Ok(Epoll {
            fd: cvt(unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) })?,
        })
    }

    pub fn add(&self, fd: RawFd, token: u64, events: u32) -> io::Result<()> {
        let mut ev = libc::epoll_event { events, u64: token };
        // SAFETY: ev lives across the call.
        cvt(unsafe { libc::epoll_ctl(self.fd, libc::EPOLL_CTL_ADD, fd, &mut ev) }).map(drop)
    }

    /// Waits up to `timeout_ms` (-1: forever); fills `evs` and returns how many are set.
    pub fn wait(&self, evs: &mut [libc::epoll_event], timeout_ms: i32) -> io::Result<usize> {
        // SAFETY: the kernel writes at most evs.len() entries.
        let r =
            unsafe { libc::epoll_wait(self.fd, evs.as_mut_ptr(), evs.len() as i32, timeout_ms) };
        match cvt(r) {
            Ok(n) => Ok(n as usize),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(0),
            Err(e) => Err(e),
        }
    }
}

impl Drop for Epoll {
    fn drop(&mut self) {
        close(self.fd);
    }
}

fn sockaddr(addr: SocketAddr) -> (libc::sockaddr_storage, libc::socklen_t) {
    // SAFETY: sockaddr_storage is plain data; zero is a valid bit pattern.
    let mut ss: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let len = match addr {
        SocketAddr::V4(a) => {
            // SAFETY: sockaddr_storage is large enough and suitably aligned for sockaddr_in.
            let sin = unsafe { &mut *(&mut ss as *mut _ as *mut libc::sockaddr_in) };
            sin.sin_family = libc::AF_INET as libc::sa_family_t;
            sin.sin_port = a.port().to_be();
            sin.sin_addr = libc::in_addr {
                s_addr: u32::from_ne_bytes(a.ip().octets()),
            };
            std::mem::size_of::<libc::sockaddr_in>()
        }
        SocketAddr::V6(a) => {
            // SAFETY: as above, for sockaddr_in6.
            let sin6 = unsafe { &mut *(&mut ss as *mut _ as *mut libc::sockaddr_in6) };
            sin6.sin6_family = libc::AF_INET6 as libc::sa_family_t;
            sin6.sin6_port = a.port().to_be();
            sin6.sin6_addr = libc::in6_addr {
                s6_addr: a.ip().octets(),
            };
            sin6.sin6_scope_id = a.scope_id();
            std::mem::size_of::<libc::sockaddr_in6>()
        }
    };
    (ss, len as libc::socklen_t)
}

fn setopt(fd: RawFd, level: libc::c_int, opt: libc::c_int, val: libc::c_int) -> io::Result<()> {
    // SAFETY: val lives across the call; the size matches.
    cvt(unsafe {
        libc::setsockopt(
            fd,
            level,
            opt,
            &val as *const _ as *const libc::c_void,
            std::mem::size_of::<libc::c_int>() as u32,
        )
    })
    .map(drop)
}

/// Starts a non-blocking TCP connect to `dst`, bound to `src` when given. Returns the socket;
/// completion (or failure) shows up as writability and `SO_ERROR`.
///
/// `IP_BIND_ADDRESS_NO_PORT` defers the port choice to connect(), so each (source,
/// destination) pair gets the whole ephemeral range instead of each source address.
pub fn connect_start(dst: SocketAddr, src: Option<IpAddr>) -> io::Result<RawFd> {
    let family = if dst.is_ipv4() {
        libc::AF_INET
    } else {
        libc::AF_INET6
    };
    // SAFETY: plain syscall.
    let fd = cvt(unsafe {
        libc::socket(
            family,
            libc::SOCK_STREAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            0,
        )
    })?;
    let setup = (|| {
        // Latency matters more than packet count; the loop batches writes itself.
        setopt(fd, libc::IPPROTO_TCP, libc::TCP_NODELAY, 1)?;
        if let Some(ip) = src {
            setopt(fd, libc::IPPROTO_IP, libc::IP_BIND_ADDRESS_NO_PORT, 1)?;
            let (ss, len) = sockaddr(SocketAddr::new(ip, 0));
            // SAFETY: ss is a valid sockaddr of length len.
            cvt(unsafe { libc::bind(fd, &ss as *const _ as *const libc::sockaddr, len) })?;
        }
        let (ss, len) = sockaddr(dst);
        // SAFETY: as above.
        match cvt(unsafe { libc::connect(fd, &ss as *const _ as *const libc::sockaddr, len) }) {
            Ok(_) => Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => Ok(()),
            Err(e) => Err(e),
        }
    })();
    match setup {
        Ok(()) => Ok(fd),
        Err(e) => {
            close(fd);
            Err(e)
        }
    }
}

/// The pending error of a socket (0 when the connect succeeded).
pub fn so_error(fd: RawFd) -> i32 {
    let mut v: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: v and len live across the call.
    let r = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_ERROR,
            &mut v as *mut _ as *mut libc::c_void,
            &mut len,
        )
    };
    if r < 0 {
        io::Error::last_os_error()
            .raw_os_error()
            .unwrap_or(libc::EIO)
    } else {
        v
    }
}

/// `read(2)` into the spare capacity of `buf`; returns bytes read (0 = end of stream).
pub fn read_into(fd: RawFd, buf: &mut bytes::BytesMut) -> io::Result<usize> {
    let spare = buf.spare_capacity_mut();
    // SAFETY: the kernel writes at most spare.len() bytes into memory we own.
    let n = cvt(
        unsafe { libc::read(fd, spare.as_mut_ptr() as *mut libc::c_void, spare.len()) }
            as libc::c_int,
    )? as usize;
    // SAFETY: n bytes were just initialised by read(2).
    unsafe { buf.set_len(buf.len() + n) };
    Ok(n)
}

pub fn write(fd: RawFd, data: &[u8]) -> io::Result<usize> {
    // MSG_NOSIGNAL: a closed peer is an EPIPE error, not a SIGPIPE that kills the worker.
    // SAFETY: data is valid for data.len() bytes.
    let r = unsafe {
        libc::send(
            fd,
            data.as_ptr() as *const libc::c_void,
            data.len(),
            libc::MSG_NOSIGNAL,
        )
    };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r as usize)
    }
}

pub fn close(fd: RawFd) {
    // SAFETY: the caller owns fd and never uses it again.
    unsafe { libc::close(fd) };
}

pub fn set_nonblocking(fd: RawFd) -> io::Result<()> {
    // SAFETY: plain fcntl calls on a descriptor we hold.
    let fl = cvt(unsafe { libc::fcntl(fd, libc::F_GETFL) })?;
    cvt(unsafe { libc::fcntl(fd, libc::F_SETFL, fl | libc::O_NONBLOCK) }).map(drop)
}

/// Raises the soft open-file limit to the hard limit; returns the resulting soft limit.
/// Children (the workers) inherit it.
pub fn raise_nofile() -> u64 {
    // SAFETY: get/setrlimit on a struct we own.
    unsafe {
        let mut rl: libc::rlimit = std::mem::zeroed();
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut rl) != 0 {
            return 1024;
        }
        if rl.rlim_cur < rl.rlim_max {
            let want = libc::rlimit {
                rlim_cur: rl.rlim_max,
                rlim_max: rl.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &want) == 0 {
                rl.rlim_cur = rl.rlim_max;
            }
        }
        rl.rlim_cur
    }
}

pub fn isatty(fd: RawFd) -> bool {
    // SAFETY: plain syscall.
    unsafe { libc::isatty(fd) == 1 }
}
