//! The engine: one glommio executor per shard, pinned to a CPU when there are enough CPUs
//! for all shards (unpinned otherwise), joined by a full channel mesh.

mod accept;
mod completions;
mod conn;
mod ctx;
mod executor;
mod flush;
mod handoff;
mod held;
mod iotable;
mod linger;
mod mesh;
mod peer;
mod ring;
mod shed;
mod sockets;
mod sys;
mod tables;
mod transport;
mod waker;

pub use ctx::now_ms;

use anyhow::anyhow;
use executor::{shard_main, ShardStart};
use glommio::channels::channel_mesh::MeshBuilder;
use glommio::{CpuSet, LocalExecutorPoolBuilder, PoolPlacement};
use shard::ShardConfig;
use std::net::SocketAddr;
use std::sync::mpsc;

/// Most descriptor tables (rings) one shard opens: with RLIMIT_NOFILE at 20,000, enough for
/// 5M connections per shard.
const MAX_TABLES: usize = crate::rlimit::MAX_TABLES as usize;

/// Capacity of each shard-to-shard ring, in batches.
const MESH_CAPACITY: usize = 1024;

pub use transport::{CertName, Kind as TransportKind, TlsSettings, WsSettings};

/// One listening address, and what its connections are carried in (TLS, WebSocket, both, or
/// neither: plain TCP).
#[derive(Clone)]
pub struct Listen {
    pub addr: SocketAddr,
    pub transport: TransportKind,
    /// The listener's own anonymous policy (`listeners.allow_anonymous`), over the broker's.
    pub allow_anonymous: Option<bool>,
}

/// A started engine: its shards are accepting.
pub struct Engine {
    handles: glommio::PoolThreadHandles<()>,
    stop: StopSignal,
    nr: usize,
}

/// Asks every shard to stop gracefully and counts those that did (lock-free: shards poll
/// it from their timer tick).
#[derive(Clone, Default)]
pub struct StopSignal(
    std::sync::Arc<(
        std::sync::atomic::AtomicBool,
        std::sync::atomic::AtomicUsize,
    )>,
);

impl StopSignal {
    pub fn requested(&self) -> bool {
        self.0 .0.load(std::sync::atomic::Ordering::Acquire)
    }

    pub fn done(&self) {
        self.0 .1.fetch_add(1, std::sync::atomic::Ordering::AcqRel);
    }
}

/// CPUs this process may run on (honours `taskset`).
fn allowed_cpus() -> Vec<usize> {
    // SAFETY: sched_getaffinity fills the zeroed set it is given.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) != 0 {
            return Vec::new();
        }
        (0..libc::CPU_SETSIZE as usize)
            .filter(|&c| libc::CPU_ISSET(c, &set))
            .collect()
    }
}

/// Called on each shard's state machine before it serves anyone (installs authentication).
pub type ShardSetup = std::sync::Arc<dyn Fn(&mut shard::Shard) + Send + Sync>;

/// What the engine is started with.
pub struct Settings {
    /// Shards (executors).
    pub nr: usize,
    pub listeners: Vec<Listen>,
    pub cfg: ShardConfig,
    /// Connections the broker holds at most, over all shards.
    pub max_connections: usize,
    pub heartbeats: crate::sd_notify::Heartbeats,
    /// Seconds between `$SYS` publications; 0 disables them.
    pub sys_interval: u32,
    /// Node name in `$SYS` client event topics (empty: from the host name).
    pub node: String,
    pub setup: ShardSetup,
}

/// Starts the shards listening on the listeners; returns once every shard accepts.
pub fn start(settings: Settings) -> anyhow::Result<Engine> {
    let Settings {
        nr,
        listeners,
        cfg,
        max_connections,
        heartbeats,
        sys_interval,
        node,
        setup,
    } = settings;
    ring::probe().map_err(|e| anyhow!("io_uring is not usable: {e}"))?;
    let allowed = allowed_cpus();
    let pinned = nr <= allowed.len();
    let placement = if pinned {
        let set = CpuSet::online()
            .map_err(|e| anyhow!("reading online CPUs: {e}"))?
            .filter(|l| allowed.contains(&l.cpu));
        PoolPlacement::MaxSpread(nr, Some(set))
    } else {
        tracing::info!(
            shards = nr,
            cpus = allowed.len(),
            "more shards than CPUs: executors are not pinned"
        );
        PoolPlacement::Unbound(nr)
    };
    let (ready_tx, ready_rx) = mpsc::channel();
    let stop = StopSignal::default();
    let start = ShardStart {
        nr,
        listeners,
        cfg,
        max_conns: max_connections.div_ceil(nr),
        heartbeats,
        stop: stop.clone(),
        sys: sys::SysTable::new(nr),
        sys_interval,
        node: sys::node_name(&node),
        mesh: MeshBuilder::full(nr, MESH_CAPACITY),
        peers: (0..nr).map(|_| tables::Peer::new(MAX_TABLES)).collect(),
        pinned,
        ready: ready_tx,
        setup,
    };
    let handles = LocalExecutorPoolBuilder::new(placement)
        .on_all_shards(move || {
            let start = start.clone();
            async move { shard_main(start).await }
        })
        .map_err(|e| anyhow!("starting {nr} executors: {e}"))?;
    for _ in 0..nr {
        match ready_rx.recv() {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => return Err(anyhow!(e)),
            Err(_) => return Err(anyhow!("a shard exited during start-up")),
        }
    }
    Ok(Engine { handles, stop, nr })
}

impl Engine {
    /// Stops every shard gracefully: DISCONNECT 0x8B to v5 clients, sockets flushed and
    /// closed. Waits at most `timeout` for the shards to confirm; returns whether all did.
    pub fn stop(&self, timeout: std::time::Duration) -> bool {
        use std::sync::atomic::Ordering;
        self.stop.0 .0.store(true, Ordering::Release);
        let deadline = std::time::Instant::now() + timeout;
        while std::time::Instant::now() < deadline {
            if self.stop.0 .1.load(Ordering::Acquire) >= self.nr {
                return true;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        false
    }

    /// Blocks until every shard exits.
    pub fn join(self) {
        self.handles.join_all();
    }
}
