//! Socket readiness for a shard: one edge-triggered epoll set holds every connection, so an
//! idle connection costs a kernel epoll item and no user-space object at all.
//!
//! Why not glommio's per-stream io_uring poll: each pending poll is a glommio `Source`
//! (~500 bytes of heap, measured with the `alloc-stats` feature) that must be re-armed after
//! every read. A persistent epoll registration costs nothing in user space and needs no
//! re-arming (EPOLLET). See docs/architecture.md.
//!
//! The executor harvests the set without blocking (`epoll_wait` with timeout 0) every time
//! the poller runs. While the shard is idle, a small watcher thread blocks in `poll(2)` on the
//! epoll fd and wakes the executor through a socket pair that glommio awaits; the thread then
//! waits for the executor's acknowledgement before polling again, so it never spins.

use glommio::net::UnixStream;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

/// Readiness of one socket, as harvested.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ready {
    pub slot: u32,
    pub readable: bool,
    pub writable: bool,
    /// Set for a listening socket (then `slot` is the listener's index).
    pub listener: bool,
}

/// Tag bit that marks a listener's epoll token (connection slots are below 2^32).
const LISTENER: u64 = 1 << 63;

/// A shard's epoll set.
pub struct Readiness {
    epfd: OwnedFd,
    events: std::cell::RefCell<Vec<libc::epoll_event>>,
}

fn cvt(r: libc::c_int) -> io::Result<libc::c_int> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

impl Readiness {
    pub fn new() -> io::Result<Self> {
        // SAFETY: plain syscall; the returned fd is owned here.
        let fd = cvt(unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) })?;
        Ok(Readiness {
            // SAFETY: `fd` was just created and is owned by nobody else.
            epfd: unsafe { OwnedFd::from_raw_fd(fd) },
            events: std::cell::RefCell::new(vec![libc::epoll_event { events: 0, u64: 0 }; 1024]),
        })
    }

    /// Watches `fd` for input, hang-up and writability (edge-triggered), tagged with `slot`.
    pub fn add(&self, fd: RawFd, slot: u32) -> io::Result<()> {
        let mut ev = libc::epoll_event {
            events: (libc::EPOLLIN | libc::EPOLLOUT | libc::EPOLLRDHUP | libc::EPOLLET) as u32,
            u64: slot as u64,
        };
        // SAFETY: valid epoll fd, valid event pointer for the call.
        cvt(unsafe { libc::epoll_ctl(self.epfd.as_raw_fd(), libc::EPOLL_CTL_ADD, fd, &mut ev) })?;
        Ok(())
    }

    /// Watches listening socket number `index` for pending connections (edge-triggered).
    pub fn add_listener(&self, fd: RawFd, index: u32) -> io::Result<()> {
        let mut ev = libc::epoll_event {
            events: (libc::EPOLLIN | libc::EPOLLET) as u32,
            u64: LISTENER | index as u64,
        };
        // SAFETY: valid epoll fd, valid event pointer for the call.
        cvt(unsafe { libc::epoll_ctl(self.epfd.as_raw_fd(), libc::EPOLL_CTL_ADD, fd, &mut ev) })?;
        Ok(())
    }

    /// Stops watching `fd` (before it moves to another shard; closing also removes it).
    pub fn remove(&self, fd: RawFd) {
        // SAFETY: valid epoll fd; a null event is allowed for EPOLL_CTL_DEL.
        unsafe {
            libc::epoll_ctl(
                self.epfd.as_raw_fd(),
                libc::EPOLL_CTL_DEL,
                fd,
                std::ptr::null_mut(),
            );
        }
    }

    /// Appends every socket that became ready since the last harvest, without blocking.
    pub fn harvest(&self, into: &mut Vec<Ready>) {
        let mut events = self.events.borrow_mut();
        loop {
            // SAFETY: the buffer holds `len` events and outlives the call.
            let n = unsafe {
                libc::epoll_wait(
                    self.epfd.as_raw_fd(),
                    events.as_mut_ptr(),
                    events.len() as i32,
                    0,
                )
            };
            if n <= 0 {
                return;
            }
            for ev in &events[..n as usize] {
                let e = ev.events;
                let hup = e & (libc::EPOLLHUP | libc::EPOLLERR | libc::EPOLLRDHUP) as u32 != 0;
                into.push(Ready {
                    slot: ev.u64 as u32,
                    readable: hup || e & libc::EPOLLIN as u32 != 0,
                    writable: e & libc::EPOLLOUT as u32 != 0,
                    listener: ev.u64 & LISTENER != 0,
                });
            }
            if (n as usize) < events.len() {
                return;
            }
        }
    }

    /// Starts the idle watcher thread; returns the executor's end of the wake-up pair (as a
    /// glommio stream to await, and its raw fd for the acknowledgement writes).
    pub fn start_watcher(&self, shard: u16) -> io::Result<(UnixStream, RawFd)> {
        let mut fds = [0; 2];
        // SAFETY: socketpair fills two fds that become owned below.
        cvt(unsafe {
            libc::socketpair(
                libc::AF_UNIX,
                libc::SOCK_STREAM | libc::SOCK_CLOEXEC,
                0,
                fds.as_mut_ptr(),
            )
        })?;
        // SAFETY: both fds were just created and are owned by nobody else.
        let (ours, theirs) =
            unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        // SAFETY: dup of our own epoll fd for the thread to own.
        let ep = cvt(unsafe { libc::dup(self.epfd.as_raw_fd()) })?;
        // SAFETY: fresh fd from dup.
        let ep = unsafe { OwnedFd::from_raw_fd(ep) };
        std::thread::Builder::new()
            .name(format!("ringmq-idle-{shard}"))
            .spawn(move || watcher(ep, theirs))?;
        set_nonblocking(ours.as_raw_fd())?;
        let raw = std::os::fd::IntoRawFd::into_raw_fd(ours);
        // SAFETY: ownership of the fd moves into the glommio stream, which lives as long as
        // the executor; the raw number is only used for one-byte writes meanwhile.
        Ok((unsafe { UnixStream::from_raw_fd(raw) }, raw))
    }
}

fn set_nonblocking(fd: RawFd) -> io::Result<()> {
    // SAFETY: fcntl on an fd we own.
    unsafe {
        let fl = cvt(libc::fcntl(fd, libc::F_GETFL))?;
        cvt(libc::fcntl(fd, libc::F_SETFL, fl | libc::O_NONBLOCK))?;
    }
    Ok(())
}

/// Blocks until the epoll set has events, wakes the executor, waits for its go-ahead.
fn watcher(ep: OwnedFd, wake: OwnedFd) {
    let mut byte = [0u8; 1];
    loop {
        let mut pfd = libc::pollfd {
            fd: ep.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        let r = unsafe { libc::poll(&mut pfd, 1, -1) };
        if r < 0 {
            if io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return;
        }
        // SAFETY: one-byte write/read on the socket we own; the executor answers each wake.
        unsafe {
            if libc::write(wake.as_raw_fd(), b"w".as_ptr().cast(), 1) != 1 {
                return;
            }
            if libc::read(wake.as_raw_fd(), byte.as_mut_ptr().cast(), 1) != 1 {
                return; // the executor is gone
            }
        }
    }
}
