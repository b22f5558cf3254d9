//! `Ctx`: what one executor's tasks share: the shard state machine, the sockets of its
//! connections, a shared read buffer, the mesh sender, and the end-of-turn flush signal.
//!
//! Everything here lives on one thread. `RefCell` borrows are never held across an
//! `.await`, so they cannot conflict; that is what makes the cells safe to use.

use super::mesh::{MeshMsg, MeshOut};
use bytes::BytesMut;
use glommio::channels::local_channel::LocalSender;
use shard::{ConnId, Shard, ShardId};
use std::cell::{Cell, RefCell};
use std::os::fd::OwnedFd;
use std::sync::OnceLock;
use std::time::Instant;

/// Size of the per-executor read buffer. Every socket reads into this one buffer and only
/// the unparsed tail of a packet is copied into a per-connection buffer, so idle
/// connections hold no read buffer at all.
pub const READ_BUF: usize = 64 * 1024;

static START: OnceLock<Instant> = OnceLock::new();

/// Milliseconds on the broker's monotonic clock, shared by every shard (message expiry
/// deadlines computed on one shard are read on others).
pub fn now_ms() -> u64 {
    START.get_or_init(Instant::now).elapsed().as_millis() as u64
}

/// The I/O side of one connection, stored at the index of its shard `ConnId` slot.
pub struct IoSlot {
    pub conn: ConnId,
    /// The socket; dropping the slot closes it (and removes it from the epoll set).
    pub fd: OwnedFd,
    /// Bytes of an incomplete packet; empty (no allocation) while idle.
    pub buf: BytesMut,
    /// CONNECT has been seen (the connection stays on this shard).
    pub connected: bool,
    /// The socket's send buffer was full: output waits for the next writable edge.
    pub write_blocked: bool,
    /// Publisher back-pressure: not read until the shard resumes it.
    pub paused: bool,
    /// Packets deferred while the shard paused the connection (PUBLISHes wait, acks do
    /// not; `held`); handled first on resume. `None` (8 bytes) when there are none.
    pub held: Option<Box<super::held::Held>>,
}

pub struct Ctx {
    pub id: ShardId,
    pub nr: usize,
    pub shard: RefCell<Shard>,
    pub io: RefCell<super::iotable::IoTable>,
    pub read_buf: RefCell<Box<[u8]>>,
    pub mesh: MeshOut,
    pub readiness: super::readiness::Readiness,
    /// This shard's listening sockets (in the epoll set).
    pub listeners: Vec<OwnedFd>,
    /// Connections this shard holds at most.
    pub max_conns: usize,
    /// A listener still had connections waiting when its accept batch ended.
    pub accept_pending: Cell<bool>,
    /// Node name in `$SYS` client event topics.
    pub node: String,
    /// Bytes read from sockets (for `$SYS`).
    pub bytes_received: Cell<u64>,
    /// The idle watcher is waiting for the go-ahead to poll again.
    pub watcher_waiting: Cell<bool>,
    /// Empty poller passes before an idle shard parks (`conn::SPIN_PASSES` when the shard
    /// has a CPU of its own, 0 when shards share CPUs: spinning would take their time).
    pub spin_passes: u32,
    /// The executor's end of the idle watcher's wake-up socket (-1 until first wake).
    pub wake_fd: Cell<i32>,
    flush_kick: LocalSender<()>,
    flush_pending: Cell<bool>,
    /// Connections closed at accept because the shard was full.
    pub refused: Cell<u64>,
    /// Accept failures for lack of descriptors: shedding, counting, rate-limited logging.
    pub shed: super::shed::Shed,
    /// Sockets being closed cleanly (last bytes out, input discarded until the peer closes).
    pub linger: RefCell<super::linger::Linger>,
}

impl Ctx {
    pub fn new(
        id: ShardId,
        nr: usize,
        shard: Shard,
        mesh: MeshOut,
        readiness: super::readiness::Readiness,
        flush_kick: LocalSender<()>,
    ) -> Self {
        Ctx {
            id,
            nr,
            shard: RefCell::new(shard),
            io: RefCell::new(Default::default()),
            read_buf: RefCell::new(vec![0u8; READ_BUF].into_boxed_slice()),
            mesh,
            readiness,
            listeners: Vec::new(),
            max_conns: usize::MAX,
            accept_pending: Cell::new(false),
            node: String::new(),
            bytes_received: Cell::new(0),
            watcher_waiting: Cell::new(false),
            spin_passes: 0,
            wake_fd: Cell::new(-1),
            flush_kick,
            flush_pending: Cell::new(false),
            refused: Cell::new(0),
            shed: super::shed::Shed::new(),
            linger: RefCell::new(Default::default()),
        }
    }

    /// Asks for one flush at the end of this executor turn (idempotent until it runs).
    pub fn kick(&self) {
        if !self.flush_pending.replace(true) {
            let _ = self.flush_kick.try_send(());
        }
    }

    pub fn flush_started(&self) {
        self.flush_pending.set(false);
    }

    /// Stores the I/O side of a connection in its slot.
    pub fn insert_io(&self, slot: IoSlot) {
        self.io.borrow_mut().insert(slot);
    }

    /// Connections with a socket on this shard.
    pub fn live_conns(&self) -> usize {
        self.io.borrow().live()
    }

    /// Removes and returns the I/O side of `conn` (dropping it closes the socket).
    pub fn remove_io(&self, conn: ConnId) -> Option<IoSlot> {
        self.io.borrow_mut().remove(conn)
    }

    pub fn send_mesh(&self, to: ShardId, msg: MeshMsg) {
        self.mesh.send(to, msg);
    }
}
