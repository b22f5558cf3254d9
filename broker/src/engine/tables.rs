//! A shard's io_uring instances. Each has its own table of direct descriptors, and the kernel
//! caps one table at RLIMIT_NOFILE slots, so a shard that must hold more connections than
//! that opens another table (and ring) when the open ones are full (`grow`), up to what its
//! share of `limits.max_connections` needs. Each table with room has its own multishot
//! accepts, so new sockets go where there is room. All rings signal the one eventfd the
//! shard sleeps on.

use super::ring::Ring;
use super::sockets::Files;
use std::cell::{Cell, OnceCell, RefCell};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicI32, AtomicU16, Ordering};

/// Receive buffers of the first table of a shard, and of each one opened later (fewer: the
/// load of a full table is spread over several).
const FIRST_BUFFERS: u16 = 1024;
const MORE_BUFFERS: u16 = 256;
const BUFFER_SIZE: usize = 4096;

/// A socket of this shard: its table and its slot there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sock {
    pub table: u16,
    pub file: u32,
}

/// One ring and the bookkeeping of its descriptor table.
pub struct Table {
    pub ring: Ring,
    pub files: RefCell<Files>,
    /// Listeners whose multishot accept is armed on this table (bit per listener).
    pub accepting: Cell<u64>,
}

/// What other shards need to hand a socket to this one: its ring fds and which has room.
pub struct Peer {
    pub fds: Box<[AtomicI32]>,
    pub room: AtomicU16,
}

impl Peer {
    pub fn new(max_tables: usize) -> Self {
        Peer {
            fds: (0..max_tables).map(|_| AtomicI32::new(-1)).collect(),
            room: AtomicU16::new(0),
        }
    }

    /// The table a hand-off to this shard tries first (one that had room lately).
    pub fn hint(&self) -> u16 {
        self.room.load(Ordering::Acquire)
    }

    /// The ring fd of table `t`, if it is open.
    pub fn fd(&self, t: u16) -> Option<RawFd> {
        let fd = self.fds.get(t as usize)?.load(Ordering::Acquire);
        (fd >= 0).then_some(fd)
    }
}

pub struct Tables {
    list: Box<[OnceCell<Table>]>,
    open: Cell<usize>,
    eventfd: OwnedFd,
    /// Slots per table.
    pub slots: u32,
}

impl Tables {
    /// The first table of a shard; at most `max_tables` of `slots` slots each.
    pub fn new(max_tables: usize, slots: u32) -> io::Result<Self> {
        // SAFETY: plain syscall; the fd is owned below. Blocking, so that glommio's read of
        // it waits in the kernel for the next signal.
        let efd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC) };
        if efd < 0 {
            return Err(io::Error::last_os_error());
        }
        let t = Tables {
            list: (0..max_tables.max(1)).map(|_| OnceCell::new()).collect(),
            open: Cell::new(0),
            // SAFETY: fresh fd, owned by nobody else.
            eventfd: unsafe { OwnedFd::from_raw_fd(efd) },
            slots,
        };
        t.grow()?;
        Ok(t)
    }

    /// Opens one more table; `None` when the shard has all it may have.
    pub fn grow(&self) -> io::Result<Option<u16>> {
        let n = self.open.get();
        let Some(cell) = self.list.get(n) else {
            return Ok(None);
        };
        let bufs = if n == 0 { FIRST_BUFFERS } else { MORE_BUFFERS };
        let ring = Ring::new(self.slots, bufs, BUFFER_SIZE, self.eventfd.as_raw_fd())?;
        let _ = cell.set(Table {
            ring,
            files: RefCell::new(Files::new(self.slots)),
            accepting: Cell::new(0),
        });
        self.open.set(n + 1);
        Ok(Some(n as u16))
    }

    pub fn get(&self, t: u16) -> &Table {
        self.list[t as usize].get().expect("an open table")
    }

    pub fn len(&self) -> usize {
        self.open.get()
    }

    pub fn iter(&self) -> impl Iterator<Item = (u16, &Table)> {
        self.list
            .iter()
            .take(self.open.get())
            .enumerate()
            .filter_map(|(i, c)| c.get().map(|t| (i as u16, t)))
    }

    /// A table with more than an eighth of its slots free, if any.
    pub fn roomy(&self) -> Option<u16> {
        self.iter()
            .find(|(_, t)| !t.files.borrow().nearly_full())
            .map(|(i, _)| i)
    }

    /// A table with a free slot, if any.
    pub fn with_room(&self) -> Option<u16> {
        self.iter()
            .find(|(_, t)| !t.files.borrow().full())
            .map(|(i, _)| i)
    }

    /// The eventfd every ring signals (a copy for glommio to read).
    pub fn eventfd(&self) -> RawFd {
        self.eventfd.as_raw_fd()
    }

    /// Slots in use over every table.
    pub fn used(&self) -> usize {
        self.iter().map(|(_, t)| t.files.borrow().used()).sum()
    }
}
