//! Clean closes: a socket the broker closes after a DISCONNECT or a failed CONNACK is not
//! closed at once. Closing a socket that still has unread input makes the kernel send a
//! reset, and a reset can destroy the reason code in the client's receive buffer before the
//! client reads it (a client still sending PUBRELs when it gets DISCONNECT 0x93 saw only a
//! broken pipe). So the last bytes are written, the write side is shut down (the client
//! reads our bytes, then end of stream), and the socket is read and discarded until the
//! client closes its side, for at most `LINGER_MS` and `LINGER_BYTES`, then closed.
//!
//! Lingering sockets are out of the epoll set; the timer tick visits them (`tick`), so a
//! close costs no task and no timer per socket. At most `MAX_LINGERING` linger at once per
//! shard; past that a socket is closed at once, as before.

use bytes::BytesMut;
use std::os::fd::{AsRawFd, OwnedFd};

/// Longest a closed connection is read and discarded while the client takes our last bytes.
const LINGER_MS: u64 = 2_000;

/// Most bytes discarded from one lingering socket before it is closed regardless.
const LINGER_BYTES: usize = 1 << 20;

/// Most sockets lingering at once on one shard.
const MAX_LINGERING: usize = 10_000;

struct Lingering {
    fd: OwnedFd,
    /// Last bytes not yet taken by the socket.
    unsent: BytesMut,
    shut: bool,
    discarded: usize,
    deadline_ms: u64,
}

/// The sockets of one shard that are being closed cleanly.
#[derive(Default)]
pub struct Linger {
    list: Vec<Lingering>,
}

impl Linger {
    /// Writes `last`, shuts the write side and keeps the socket until the client closes
    /// (or the bounds pass). `write_blocked`: the socket took nothing at its last write.
    pub fn close(&mut self, now_ms: u64, fd: OwnedFd, last: BytesMut, write_blocked: bool) {
        if self.list.len() >= MAX_LINGERING {
            if !write_blocked {
                write_some(&fd, &last);
            }
            return; // dropped: closed now
        }
        let mut l = Lingering {
            fd,
            unsent: last,
            shut: false,
            discarded: 0,
            deadline_ms: now_ms + LINGER_MS,
        };
        if !write_blocked && !step(&mut l) {
            return;
        }
        self.list.push(l);
    }

    /// Moves every lingering socket on; closes those that are done.
    pub fn tick(&mut self, now_ms: u64) {
        self.list
            .retain_mut(|l| now_ms < l.deadline_ms && l.discarded < LINGER_BYTES && step(l));
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.list.len()
    }
}

/// Writes what is left, shuts the write side once all is out, discards what the client
/// sent. False when the socket is done (peer closed, error): dropping it closes it.
fn step(l: &mut Lingering) -> bool {
    if !l.unsent.is_empty() {
        match write_some(&l.fd, &l.unsent) {
            Some(n) => {
                let _ = l.unsent.split_to(n);
            }
            None => return false,
        }
    }
    if l.unsent.is_empty() && !l.shut {
        // SAFETY: shutdown on a socket we own.
        unsafe { libc::shutdown(l.fd.as_raw_fd(), libc::SHUT_WR) };
        l.shut = true;
    }
    let mut buf = [0u8; 4096];
    loop {
        // SAFETY: recv into a live stack buffer of the stated length.
        let n = unsafe {
            libc::recv(
                l.fd.as_raw_fd(),
                buf.as_mut_ptr().cast(),
                buf.len(),
                libc::MSG_DONTWAIT,
            )
        };
        match n {
            0 => return false, // the client closed: our bytes were read or never will be
            n if n > 0 => {
                l.discarded += n as usize;
                if l.discarded >= LINGER_BYTES {
                    return false;
                }
            }
            _ => {
                let e = std::io::Error::last_os_error();
                return e.kind() == std::io::ErrorKind::WouldBlock;
            }
        }
    }
}

/// Non-blocking write; `None` on an error other than a full socket.
fn write_some(fd: &OwnedFd, buf: &[u8]) -> Option<usize> {
    // SAFETY: `buf` is a valid slice for the call; `fd` is an open socket.
    let n = unsafe {
        libc::send(
            fd.as_raw_fd(),
            buf.as_ptr().cast(),
            buf.len(),
            libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL,
        )
    };
    if n >= 0 {
        return Some(n as usize);
    }
    (std::io::Error::last_os_error().kind() == std::io::ErrorKind::WouldBlock).then_some(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::os::unix::net::UnixStream;

    fn pair() -> (OwnedFd, UnixStream) {
        let (a, b) = UnixStream::pair().expect("socketpair");
        a.set_nonblocking(true).expect("nonblocking");
        (OwnedFd::from(a), b)
    }

    #[test]
    fn the_last_bytes_arrive_then_end_of_stream_and_the_socket_closes_when_the_peer_does() {
        let (ours, mut peer) = pair();
        let mut linger = Linger::default();
        peer.write_all(b"still sending").expect("write");
        linger.close(0, ours, BytesMut::from(&b"DISCONNECT"[..]), false);
        assert_eq!(linger.len(), 1, "kept open while the peer has not closed");
        let mut got = Vec::new();
        peer.read_to_end(&mut got).expect("read to end of stream");
        assert_eq!(got, b"DISCONNECT");
        peer.write_all(b"more").expect("the peer may still write");
        linger.tick(10);
        assert_eq!(linger.len(), 1);
        drop(peer);
        linger.tick(20);
        assert_eq!(linger.len(), 0, "closed once the peer closed");
    }

    #[test]
    fn a_peer_that_never_closes_is_closed_after_the_linger() {
        let (ours, _peer) = pair();
        let mut linger = Linger::default();
        linger.close(0, ours, BytesMut::new(), false);
        linger.tick(LINGER_MS - 1);
        assert_eq!(linger.len(), 1);
        linger.tick(LINGER_MS);
        assert_eq!(linger.len(), 0);
    }
}
