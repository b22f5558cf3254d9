//! `Ctx`: what one executor's tasks share: the shard state machine, the ring and the sockets
//! of its connections, the mesh sender, and the end-of-turn flush signal.
//!
//! Everything here lives on one thread. `RefCell` borrows are never held across an
//! `.await`, so they cannot conflict; that is what makes the cells safe to use.

use super::mesh::{MeshMsg, MeshOut};
use super::sockets::{data, Op, Owner};
use super::tables::{Peer, Sock, Tables};
use bytes::BytesMut;
use glommio::channels::local_channel::LocalSender;
use shard::{ConnId, Shard, ShardId};
use std::cell::{Cell, RefCell};
use std::sync::OnceLock;
use std::time::Instant;

static START: OnceLock<Instant> = OnceLock::new();

/// Milliseconds on the broker's monotonic clock, shared by every shard (message expiry
/// deadlines computed on one shard are read on others).
pub fn now_ms() -> u64 {
    START.get_or_init(Instant::now).elapsed().as_millis() as u64
}

/// Where a connection's multishot receive stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recv {
    /// Not armed: the connection is not read (paused past `HELD_MAX`, or parked).
    Off,
    On,
    /// Cancelled; its last completion has not come yet.
    Cancelling,
}

/// The I/O side of one connection, stored at the index of its shard `ConnId` slot.
pub struct IoSlot {
    pub conn: ConnId,
    /// The socket: a direct descriptor in one of the shard's tables, and its generation.
    pub sock: Sock,
    pub gen: u32,
    /// Bytes received and not yet handled (an incomplete packet, or input of a paused
    /// connection); empty (no allocation) while idle.
    pub buf: BytesMut,
    /// CONNECT has been seen (the connection stays on this shard).
    pub connected: bool,
    /// A send is in flight: more output waits for its completion.
    pub sending: bool,
    pub recv: Recv,
    /// Publisher back-pressure: its PUBLISHes wait until the shard resumes it.
    pub paused: bool,
    /// Packets deferred while the shard paused the connection (PUBLISHes wait, acks do
    /// not; `held`); handled first on resume. `None` (8 bytes) when there are none.
    pub held: Option<Box<super::held::Held>>,
    /// Plain TCP or TLS: between the socket's bytes and the codec's (`transport`).
    pub transport: super::transport::Transport,
}

pub struct Ctx {
    pub id: ShardId,
    pub nr: usize,
    pub shard: RefCell<Shard>,
    pub io: RefCell<super::iotable::IoTable>,
    pub mesh: MeshOut,
    /// The shard's io_uring instances and descriptor tables: every socket operation goes
    /// through them.
    pub tables: Tables,
    /// Sends in flight (their buffers live here until the kernel is done with them).
    pub sends: RefCell<super::sockets::Sends>,
    /// Every shard's ring fds, by shard id (targets of hand-offs).
    pub peers: std::sync::Arc<[Peer]>,
    /// Clients are shed at accept because every table is full and no more may be opened.
    pub shedding: Cell<bool>,
    /// Sockets on their way to or from another shard.
    pub handoffs: RefCell<super::handoff::Handoffs>,
    /// This shard's listening sockets and whether each is accepting or shedding.
    pub listeners: Vec<super::accept::Listener>,
    /// Connections this shard holds at most.
    pub max_conns: usize,
    /// A listener's accept stopped on an error: re-armed from the timer tick.
    pub accept_pending: Cell<bool>,
    /// Node name in `$SYS` client event topics.
    pub node: String,
    /// Bytes read from sockets (for `$SYS`).
    pub bytes_received: Cell<u64>,
    /// Empty poller passes before an idle shard parks (`conn::SPIN_PASSES` when the shard
    /// has a CPU of its own, 0 when shards share CPUs: spinning would take their time).
    pub spin_passes: u32,
    flush_kick: LocalSender<()>,
    flush_pending: Cell<bool>,
    /// Connections closed at accept because the shard was full.
    pub refused: Cell<u64>,
    /// Accepts refused because the descriptor table was full: counted, logged rarely.
    pub shed: super::shed::Shed,
    /// Sockets being closed cleanly (last bytes out, input discarded until the peer closes).
    pub linger: RefCell<super::linger::Linger>,
    /// TLS sessions that failed and were closed: counted, logged rarely.
    pub transport_failures: super::transport::Failures,
    /// Peer addresses asked of the ring and not answered yet.
    pub peer_asks: RefCell<super::peer::Asks>,
    /// TLS handshake steps this poller pass may still do (`conn::HANDSHAKES_PER_PASS`).
    pub handshake_budget: Cell<u32>,
    /// CONNECTs this poller pass may still handle while passwords are checked
    /// (`conn::CONNECTS_PER_PASS`).
    pub connect_budget: Cell<u32>,
}

impl Ctx {
    pub fn new(
        id: ShardId,
        nr: usize,
        shard: Shard,
        mesh: MeshOut,
        tables: Tables,
        peers: std::sync::Arc<[Peer]>,
        flush_kick: LocalSender<()>,
    ) -> Self {
        Ctx {
            id,
            nr,
            shard: RefCell::new(shard),
            io: RefCell::new(Default::default()),
            mesh,
            tables,
            sends: RefCell::new(Default::default()),
            peers,
            shedding: Cell::new(false),
            handoffs: RefCell::new(Default::default()),
            listeners: Vec::new(),
            max_conns: usize::MAX,
            accept_pending: Cell::new(false),
            node: String::new(),
            bytes_received: Cell::new(0),
            spin_passes: 0,
            flush_kick,
            flush_pending: Cell::new(false),
            refused: Cell::new(0),
            shed: super::shed::Shed::default(),
            linger: RefCell::new(Default::default()),
            transport_failures: Default::default(),
            peer_asks: Default::default(),
            handshake_budget: Cell::new(0),
            connect_budget: Cell::new(0),
        }
    }

    /// Asks for one flush at the end of this executor turn (idempotent until it runs).
    pub fn kick(&self) {
        if !self.flush_pending.replace(true) {
            let _ = self.flush_kick.try_send(());
        }
    }

    /// A connection's transport failed with `reason` (counted; the log is rate-limited).
    /// Takes one of this pass's TLS handshake steps; false when none is left.
    pub fn handshake_turn(&self) -> bool {
        let left = self.handshake_budget.get();
        self.handshake_budget.set(left.saturating_sub(1));
        left > 0
    }

    /// Takes one of this pass's CONNECT turns; false when none is left.
    pub fn connect_turn(&self) -> bool {
        let left = self.connect_budget.get();
        self.connect_budget.set(left.saturating_sub(1));
        left > 0
    }

    /// A connection's transport failed: counted, and logged rarely with the client's
    /// address when known.
    pub fn transport_failed(
        &self,
        kind: super::transport::FailKind,
        reason: &str,
        peer: Option<std::net::SocketAddr>,
    ) {
        let reason = match peer {
            Some(p) => format!("client {p}: {reason}"),
            None => reason.to_string(),
        };
        self.transport_failures
            .failed(now_ms(), self.id.0, kind, &reason);
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

    /// Removes and returns the I/O side of `conn` (the socket stays open: see `close_file`).
    pub fn remove_io(&self, conn: ConnId) -> Option<IoSlot> {
        self.io.borrow_mut().remove(conn)
    }

    pub fn send_mesh(&self, to: ShardId, msg: MeshMsg) {
        self.mesh.send(to, msg);
    }

    /// Queues a submission on the ring of table `table`.
    ///
    /// # Safety
    /// Every buffer the entry points to must stay valid until its completion is reaped.
    pub unsafe fn submit(&self, table: u16, e: io_uring::squeue::Entry) {
        // SAFETY: passed on from the caller.
        unsafe { self.tables.get(table).ring.push(e) }
    }

    /// The owner of `sock` if `gen` is its current generation.
    pub fn owner(&self, sock: Sock, gen: u32) -> Owner {
        self.tables
            .get(sock.table)
            .files
            .borrow()
            .owner(sock.file, gen)
    }

    /// A socket was installed at `sock`: a new generation, owned by `owner`.
    pub fn install(&self, sock: Sock, owner: Owner) -> u32 {
        self.tables
            .get(sock.table)
            .files
            .borrow_mut()
            .install(sock.file, owner)
    }

    pub fn set_owner(&self, sock: Sock, owner: Owner) {
        self.tables
            .get(sock.table)
            .files
            .borrow_mut()
            .set_owner(sock.file, owner);
    }

    /// Arms the multishot receive of `sock` (generation `gen`).
    pub fn arm_recv(&self, sock: Sock, gen: u32) {
        use io_uring::{opcode, types};
        let e = opcode::RecvMulti::new(types::Fixed(sock.file), super::ring::BGID)
            .build()
            .user_data(data(Op::Recv, gen, sock.file));
        // SAFETY: the receive writes only into provided buffers, which the ring owns.
        unsafe { self.submit(sock.table, e) };
    }

    /// Cancels the multishot receive of `sock`; its last completion says when it ended.
    pub fn cancel_recv(&self, sock: Sock, gen: u32) {
        use io_uring::{opcode, types};
        let target = data(Op::Recv, gen, sock.file);
        let e = opcode::AsyncCancel2::new(types::CancelBuilder::user_data(target))
            .build()
            .user_data(data(Op::Quiet, 0, 0));
        // SAFETY: no buffers.
        unsafe { self.submit(sock.table, e) };
    }

    /// Closes `sock`: a shutdown ends what is pending on it (the receive sees end of
    /// stream, a send an error, so they drop their hold on the socket), then its table slot
    /// is freed. A table that stopped accepting when it filled accepts again.
    ///
    /// Not a cancel by descriptor: the kernel finds those by walking every pending poll of
    /// the ring, which made each close cost O(connections) (43% of the broker's time while
    /// 19,000 clients connected).
    pub fn close_file(&self, sock: Sock) {
        use io_uring::{opcode, squeue::Flags, types};
        let shut = opcode::Shutdown::new(types::Fixed(sock.file), libc::SHUT_RDWR)
            .build()
            .flags(Flags::IO_HARDLINK)
            .user_data(data(Op::Quiet, 0, 0));
        // SAFETY: no buffers; queued right before the close it is linked to.
        unsafe { self.submit(sock.table, shut) };
        self.release_file(sock);
    }

    /// Frees the table slot of `sock` with nothing pending on it; the socket itself stays
    /// open while another ring holds it (a hand-off).
    pub fn release_file(&self, sock: Sock) {
        use io_uring::{opcode, types};
        self.set_owner(sock, Owner::Free);
        let close = opcode::Close::new(types::Fixed(sock.file))
            .build()
            .user_data(data(Op::Quiet, 0, 0));
        // SAFETY: no buffers.
        unsafe { self.submit(sock.table, close) };
        let accepting = self.tables.get(sock.table).accepting.get();
        if (accepting.count_ones() as usize) < self.listeners.len() {
            super::accept::room_in(self, sock.table);
        }
    }

    /// Hands everything queued on every ring to the kernel.
    pub fn submit_all(&self) {
        for (_, t) in self.tables.iter() {
            t.ring.submit();
        }
    }
}
