//! One io_uring instance for socket I/O: a sparse table of direct descriptors (the sockets
//! are not process fds), a ring of provided receive buffers (an idle connection holds none),
//! and the eventfd through which glommio wakes the shard when completions arrive while it
//! sleeps.
//!
//! Submissions are queued during an executor turn and go to the kernel in one
//! `io_uring_enter` per poller pass (`submit`). Completions are read from the shared CQ
//! memory without a system call (`reap`). The eventfd is disabled while the poller keeps
//! running and enabled just before it parks (`arm_wakeup`), so a busy shard pays no
//! eventfd signal per completion.

use io_uring::{cqueue, squeue, IoUring};
use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, RawFd};

/// Provided-buffer group for socket receives.
pub const BGID: u16 = 0;

/// One completion, copied out of the CQ.
#[derive(Debug, Clone, Copy)]
pub struct Completion {
    pub data: u64,
    pub res: i32,
    pub flags: u32,
}

impl Completion {
    /// More completions follow for this (multishot) request.
    pub fn more(&self) -> bool {
        cqueue::more(self.flags)
    }

    /// The provided buffer the kernel filled, if any.
    pub fn buffer(&self) -> Option<u16> {
        cqueue::buffer_select(self.flags)
    }
}

/// The receive buffers the kernel picks from, as a ring shared with it.
struct BufRing {
    /// `entries` ring slots (16 bytes each), page-aligned as the kernel requires.
    ring: *mut io_uring::types::BufRingEntry,
    ring_len: usize,
    entries: u16,
    tail: Cell<u16>,
    /// Buffer memory: `entries` buffers of `size` bytes.
    mem: Box<[u8]>,
    size: usize,
}

impl BufRing {
    fn new(entries: u16, size: usize) -> io::Result<Self> {
        let ring_len = entries as usize * std::mem::size_of::<io_uring::types::BufRingEntry>();
        // SAFETY: anonymous private mapping, checked below; unmapped in Drop.
        let ring = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                ring_len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_ANONYMOUS | libc::MAP_PRIVATE | libc::MAP_POPULATE,
                -1,
                0,
            )
        };
        if ring == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        Ok(BufRing {
            ring: ring.cast(),
            ring_len,
            entries,
            tail: Cell::new(0),
            mem: vec![0u8; entries as usize * size].into_boxed_slice(),
            size,
        })
    }

    /// Puts buffer `bid` back for the kernel (visible at the next `publish`).
    fn give(&self, bid: u16) {
        let tail = self.tail.get();
        let mask = self.entries - 1;
        // SAFETY: the index is masked into the ring; the entry is ours until the tail moves.
        unsafe {
            let e = &mut *self.ring.add((tail & mask) as usize);
            e.set_addr(self.mem.as_ptr().add(bid as usize * self.size) as u64);
            e.set_len(self.size as u32);
            e.set_bid(bid);
        }
        self.tail.set(tail.wrapping_add(1));
    }

    /// Makes every buffer given back so far visible to the kernel.
    fn publish(&self) {
        // SAFETY: the tail field sits in the first entry of the mapped ring; the kernel reads
        // it with acquire semantics, so the entries written before are visible with it.
        unsafe {
            let tail = io_uring::types::BufRingEntry::tail(self.ring)
                as *const std::sync::atomic::AtomicU16;
            (*tail).store(self.tail.get(), std::sync::atomic::Ordering::Release);
        }
    }

    fn bytes(&self, bid: u16, len: usize) -> &[u8] {
        let start = bid as usize * self.size;
        &self.mem[start..start + len.min(self.size)]
    }
}

impl Drop for BufRing {
    fn drop(&mut self) {
        // SAFETY: the mapping made in `new`, unmapped once.
        unsafe { libc::munmap(self.ring.cast(), self.ring_len) };
    }
}

/// Sets up (and drops) a small ring with every feature the engine uses, so that a kernel
/// or container without them stops start-up with a message naming the step and the fix,
/// before glommio (which panics on such a kernel) starts.
pub fn probe() -> io::Result<()> {
    // SAFETY: plain syscall; the fd is owned below.
    let efd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC) };
    if efd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fresh fd, owned by nobody else.
    let efd = unsafe { std::os::fd::OwnedFd::from_raw_fd(efd) };
    Ring::new(1, 1, 64, efd.as_raw_fd()).map(drop)
}

/// An io_uring setup error with the step that failed and what usually causes it.
fn step(what: &str, e: io::Error) -> io::Error {
    let disabled = std::fs::read_to_string("/proc/sys/kernel/io_uring_disabled")
        .ok()
        .map(|s| s.trim().to_string());
    let why = match (e.raw_os_error(), disabled.as_deref()) {
        (Some(libc::ENOSYS), _) => {
            "this kernel has no io_uring (ringmq needs Linux 6.0 or newer built with \
             CONFIG_IO_URING)"
                .to_string()
        }
        (Some(libc::EPERM), Some(d)) if d != "0" => format!(
            "io_uring is switched off: kernel.io_uring_disabled = {d}; fix: sysctl -w \
             kernel.io_uring_disabled=0 (or, with 1, run ringmq in the group named by \
             kernel.io_uring_group)"
        ),
        (Some(libc::EPERM), _) => "io_uring is blocked for this process, most likely by a \
             container's seccomp profile (Docker's default blocks it); fix: run with a profile \
             that allows io_uring_setup, io_uring_enter and io_uring_register"
            .to_string(),
        (Some(libc::EINVAL), _) => {
            "the kernel does not support this io_uring feature (ringmq needs Linux 6.0 or newer)"
                .to_string()
        }
        (Some(libc::ENOMEM), _) => "not enough locked memory for the ring (raise \
             RLIMIT_MEMLOCK: LimitMEMLOCK=infinity in the unit, kernel-tuning/)"
            .to_string(),
        _ => "see docs/architecture.md, Connection path".to_string(),
    };
    io::Error::new(e.kind(), format!("{what}: {e}; {why}"))
}

/// A shard's ring.
pub struct Ring {
    uring: RefCell<IoUring>,
    /// Entries that found the SQ full even after a submit; they go first next time.
    backlog: RefCell<VecDeque<squeue::Entry>>,
    queued: Cell<bool>,
    bufs: BufRing,
    bufs_returned: Cell<bool>,
}

impl Ring {
    /// A ring with `files` direct-descriptor slots and `nbufs` receive buffers of `buf_size`
    /// bytes (`nbufs` a power of two), signalling `eventfd` on completions while wake-ups
    /// are on.
    pub fn new(files: u32, nbufs: u16, buf_size: usize, eventfd: RawFd) -> io::Result<Self> {
        let uring = IoUring::builder()
            .setup_cqsize(16_384)
            .setup_single_issuer()
            .setup_submit_all()
            .build(4096)
            .map_err(|e| step("creating an io_uring instance", e))?;
        uring
            .submitter()
            .register_files_sparse(files)
            .map_err(|e| step("registering a table of direct descriptors (Linux 5.19+)", e))?;
        let bufs = BufRing::new(nbufs, buf_size)?;
        // SAFETY: the mapping lives as long as the ring (both dropped with `Ring`), and
        // the group is unregistered by the ring's teardown.
        unsafe {
            uring
                .submitter()
                .register_buf_ring_with_flags(bufs.ring as u64, nbufs, BGID, 0)
                .map_err(|e| step("registering a provided-buffer ring (Linux 5.19+)", e))?;
        }
        for bid in 0..nbufs {
            bufs.give(bid);
        }
        bufs.publish();
        uring
            .submitter()
            .register_eventfd(eventfd)
            .map_err(|e| step("registering the wake-up eventfd", e))?;
        Ok(Ring {
            uring: RefCell::new(uring),
            backlog: RefCell::new(VecDeque::new()),
            queued: Cell::new(false),
            bufs,
            bufs_returned: Cell::new(false),
        })
    }

    /// The ring's own fd (the target of IORING_OP_MSG_RING from other shards).
    pub fn fd(&self) -> RawFd {
        self.uring.borrow().as_raw_fd()
    }

    /// Queues `e` for the next `submit`.
    ///
    /// # Safety
    /// Every buffer `e` points to must stay valid until its completion is reaped.
    pub unsafe fn push(&self, e: squeue::Entry) {
        self.queued.set(true);
        let mut uring = self.uring.borrow_mut();
        if !self.backlog.borrow().is_empty() {
            self.backlog.borrow_mut().push_back(e);
            return;
        }
        // SAFETY: the caller keeps the entry's buffers alive.
        if unsafe { uring.submission().push(&e) }.is_ok() {
            return;
        }
        let _ = uring.submit();
        // SAFETY: as above.
        if unsafe { uring.submission().push(&e) }.is_err() {
            self.backlog.borrow_mut().push_back(e);
        }
    }

    /// Hands every queued entry (and returned buffer) to the kernel.
    pub fn submit(&self) {
        if self.bufs_returned.replace(false) {
            self.bufs.publish();
        }
        if !self.queued.replace(false) {
            return;
        }
        let mut uring = self.uring.borrow_mut();
        loop {
            {
                let mut backlog = self.backlog.borrow_mut();
                let mut sq = uring.submission();
                while let Some(e) = backlog.front() {
                    // SAFETY: entries were pushed under `push`'s contract.
                    if unsafe { sq.push(e) }.is_err() {
                        break;
                    }
                    backlog.pop_front();
                }
            }
            match uring.submit() {
                Ok(_) => {}
                Err(e) if e.raw_os_error() == Some(libc::EINTR) => continue,
                // EBUSY: the kernel holds overflowed completions; what stays queued goes
                // with the next submit, after those are reaped.
                Err(_) => {}
            }
            if self.backlog.borrow().is_empty() {
                return;
            }
            if uring.submission().is_full() {
                self.queued.set(true);
                return;
            }
        }
    }

    /// Appends every completion waiting in the CQ to `into`.
    pub fn reap(&self, into: &mut Vec<Completion>) {
        let mut uring = self.uring.borrow_mut();
        for c in uring.completion() {
            into.push(Completion {
                data: c.user_data(),
                res: c.result(),
                flags: c.flags(),
            });
        }
    }

    /// True when completions wait in the CQ.
    pub fn has_completions(&self) -> bool {
        !self.uring.borrow_mut().completion().is_empty()
    }

    /// Disables (busy) or enables (about to park) the completion eventfd. After enabling,
    /// the caller reaps once more: completions that came while it was off signalled nothing.
    pub fn set_wakeups(&self, on: bool) {
        let mut uring = self.uring.borrow_mut();
        let cq = uring.completion();
        if on == cq.eventfd_disabled() {
            if on {
                cq.enable_eventfd();
            } else {
                cq.disable_eventfd();
            }
        }
    }

    /// The bytes the kernel put in buffer `bid`.
    pub fn buffer(&self, bid: u16, len: usize) -> &[u8] {
        self.bufs.bytes(bid, len)
    }

    /// Gives buffer `bid` back to the kernel (published at the next `submit`).
    pub fn give_back(&self, bid: u16) {
        self.bufs.give(bid);
        self.bufs_returned.set(true);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_setup_error_names_the_step_and_the_fix() {
        let e = step(
            "creating an io_uring instance",
            io::Error::from_raw_os_error(libc::ENOSYS),
        );
        let text = e.to_string();
        assert!(
            text.starts_with("creating an io_uring instance: "),
            "{text}"
        );
        assert!(text.contains("Linux 6.0 or newer"), "{text}");
        let e = step("registering", io::Error::from_raw_os_error(libc::EPERM)).to_string();
        assert!(
            e.contains("kernel.io_uring_disabled") || e.contains("seccomp"),
            "{e}"
        );
    }

    /// Reaps until `n` completions came (or 2 s passed).
    fn wait_for(ring: &Ring, n: usize) -> Vec<Completion> {
        let mut got = Vec::new();
        let until = std::time::Instant::now() + std::time::Duration::from_secs(2);
        while got.len() < n && std::time::Instant::now() < until {
            ring.submit();
            ring.reap(&mut got);
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        got
    }

    /// What the engine relies on when every provided buffer is taken (completions not yet
    /// reaped): the multishot receive ends with ENOBUFS, no byte is lost, and once buffers
    /// are given back a new receive reads the rest, in order.
    #[test]
    fn an_exhausted_buffer_ring_ends_the_receive_and_loses_nothing() {
        use io_uring::{opcode, types};
        use std::io::Write;
        use std::os::fd::AsRawFd;
        // SAFETY: a plain eventfd, closed at the end of the test.
        let efd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
        assert!(efd >= 0);
        let ring = Ring::new(4, 2, 64, efd).unwrap();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let accept = opcode::Accept::new(
            types::Fd(listener.as_raw_fd()),
            std::ptr::null_mut(),
            std::ptr::null_mut(),
        )
        .file_index(Some(types::DestinationSlot::auto_target()))
        .build()
        .user_data(1);
        // SAFETY: no buffers.
        unsafe { ring.push(accept) };
        ring.submit();
        let mut client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let accepted = wait_for(&ring, 1);
        assert!(accepted[0].res >= 0, "accept: {}", accepted[0].res);
        let slot = accepted[0].res as u32;
        let sent: Vec<u8> = (0..200u32).map(|i| i as u8).collect();
        client.write_all(&sent).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(50));
        let recv = || {
            opcode::RecvMulti::new(types::Fixed(slot), BGID)
                .build()
                .user_data(2)
        };
        // SAFETY: the receive writes only into the ring's provided buffers.
        unsafe { ring.push(recv()) };
        let first = wait_for(&ring, 3);
        assert_eq!(
            first.len(),
            3,
            "{:?}",
            first.iter().map(|c| c.res).collect::<Vec<_>>()
        );
        let mut got = Vec::new();
        for c in &first[..2] {
            assert!(c.more() && c.res == 64);
            let bid = c.buffer().unwrap();
            got.extend_from_slice(ring.buffer(bid, 64));
            ring.give_back(bid);
        }
        assert_eq!(first[2].res, -libc::ENOBUFS);
        assert!(!first[2].more(), "ENOBUFS ends the multishot receive");
        // Buffers back, receive again (one receive at a time): the rest arrives.
        let mut armed = false;
        for _ in 0..50 {
            if got.len() == sent.len() {
                break;
            }
            if !armed {
                // SAFETY: as above.
                unsafe { ring.push(recv()) };
                armed = true;
            }
            for c in wait_for(&ring, 1) {
                if let Some(bid) = c.buffer() {
                    got.extend_from_slice(ring.buffer(bid, c.res.max(0) as usize));
                    ring.give_back(bid);
                }
                armed &= c.more();
            }
        }
        assert_eq!(got, sent);
        // SAFETY: our eventfd.
        unsafe { libc::close(efd) };
    }

    #[test]
    fn the_probe_passes_on_this_kernel() {
        probe().expect("io_uring with direct descriptors and buffer rings");
    }
}
