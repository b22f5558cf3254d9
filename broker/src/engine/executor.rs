//! One shard's executor: joins the mesh, sets up its ring, binds the listeners, and runs the
//! poller, the ring's wake-up, the mesh receivers, the timer tick and the end-of-turn flusher.

use super::conn;
use super::ctx::{now_ms, Ctx};
use super::flush::flush;
use super::mesh::{MeshMsg, MeshOut};
use super::tables::{Peer, Tables};
use super::waker::wake_poller;
use futures_lite::StreamExt;
use glommio::channels::channel_mesh::{Full, MeshBuilder};
use glommio::channels::local_channel;
use shard::{Shard, ShardConfig, ShardId};
use std::os::fd::FromRawFd;
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::sync::mpsc::Sender;
use std::sync::Arc;
use std::time::Duration;

/// How often the timer wheel is advanced. Keepalive and expiry work in seconds, so 50 ms
/// is precise enough and costs 20 wake-ups a second per shard.
const TICK: Duration = Duration::from_millis(50);

/// Ticks between allocator collections (once a second).
const COLLECT_EVERY: u32 = 20;

/// What every shard is started with.
#[derive(Clone)]
pub struct ShardStart {
    pub nr: usize,
    pub listeners: Vec<super::Listen>,
    pub cfg: ShardConfig,
    /// Connections this shard holds at most (the broker limit split across shards).
    pub max_conns: usize,
    pub heartbeats: crate::sd_notify::Heartbeats,
    pub stop: super::StopSignal,
    pub sys: super::sys::SysTable,
    /// Seconds between `$SYS` publications; 0 disables them.
    pub sys_interval: u32,
    /// Node name in `$SYS` client event topics.
    pub node: String,
    pub mesh: MeshBuilder<MeshMsg, Full>,
    /// Every shard's ring fds by shard id, filled in as the shards open them.
    pub peers: Arc<[Peer]>,
    /// Each shard has a CPU of its own (pinned placement).
    pub pinned: bool,
    /// Told once this shard accepts on every listener (or failed to bind).
    pub ready: Sender<Result<ShardId, String>>,
    pub setup: super::ShardSetup,
}

pub async fn shard_main(start: ShardStart) {
    let ShardStart {
        nr,
        listeners,
        cfg,
        max_conns,
        heartbeats,
        stop,
        sys,
        sys_interval,
        node,
        mesh,
        peers,
        pinned,
        ready,
        setup,
    } = start;
    let (senders, mut receivers) = match mesh.join().await {
        Ok(x) => x,
        Err(_) => {
            let _ = ready.send(Err("a shard could not join the mesh".to_string()));
            return;
        }
    };
    // The mesh numbers its peers 0..nr in join order: that index is the shard id.
    let id = ShardId(senders.peer_id() as u16);
    let (kick_tx, kick_rx) = local_channel::new_bounded(1);
    let (max_tables, slots) = table_plan(max_conns);
    let tables = match Tables::new(max_tables.min(super::MAX_TABLES), slots) {
        Ok(t) => t,
        Err(e) => {
            let _ = ready.send(Err(format!(
                "shard {}: io_uring setup failed while {e}",
                id.0
            )));
            return;
        }
    };
    peers[id.index()].fds[0].store(tables.get(0).ring.fd(), Ordering::Release);
    // SAFETY: dup of the rings' eventfd; the glommio file below owns the copy.
    let wake_fd = unsafe { libc::dup(tables.eventfd()) };
    let mut shard = Shard::new(id, nr, cfg);
    setup(&mut shard);
    let mut ctx = Ctx::new(
        id,
        nr,
        shard,
        MeshOut::new(senders, nr),
        tables,
        peers,
        kick_tx,
    );
    ctx.node = node;
    ctx.max_conns = max_conns;
    ctx.spin_passes = if pinned { conn::SPIN_PASSES } else { 0 };

    for l in &listeners {
        match super::accept::bind(l) {
            Ok(l) => ctx.listeners.push(l),
            Err(e) => {
                let _ = ready.send(Err(format!("cannot listen on {}: {e}", l.addr)));
                return;
            }
        }
    }
    super::accept::arm_all(&ctx);
    ctx.submit_all();

    let ctx = Rc::new(ctx);

    // Flusher: runs after the tasks woken in the same turn, then writes everything once.
    let fctx = ctx.clone();
    let flusher = glommio::spawn_local(async move {
        let mut events = Vec::new();
        while kick_rx.recv().await.is_some() {
            flush(&fctx, &mut events);
        }
    })
    .detach();

    for (from, rx) in receivers.streams() {
        let ctx = ctx.clone();
        let from = ShardId(from as u16);
        glommio::spawn_local(async move {
            let mut rx = rx;
            while let Some(m) = rx.next().await {
                on_mesh(&ctx, from, m);
                ctx.kick();
            }
        })
        .detach();
    }

    glommio::spawn_local(conn::poller(ctx.clone())).detach();
    // Completions while the poller sleeps signal the rings' eventfd; a read of it pending in
    // glommio's own ring wakes this executor and the poller.
    glommio::spawn_local(async move {
        // SAFETY: `wake_fd` is our own dup of the eventfd; the file closes it on drop.
        let wake = unsafe { glommio::io::BufferedFile::from_raw_fd(wake_fd) };
        while wake.read_at(0, 8).await.is_ok() {
            wake_poller();
        }
        tracing::error!("the ring's wake-up eventfd failed; the shard polls from its tick");
    })
    .detach();

    let tctx = ctx.clone();
    glommio::spawn_local(async move {
        let mut ticks = 0u32;
        let mut stopped_at: Option<u64> = None;
        let mut told = false;
        let mut max_connected = 0u64;
        loop {
            glommio::timer::sleep(TICK).await;
            ticks = ticks.wrapping_add(1);
            if ticks.is_multiple_of(COLLECT_EVERY) {
                let shard = tctx.shard.borrow();
                let engine = super::sys::EngineCounts {
                    bytes_received: tctx.bytes_received.get(),
                    refused: tctx.refused.get() + tctx.shed.failures.get(),
                    mesh_dropped: tctx.mesh.dropped.get(),
                    transport_failed: tctx.transport_failures.by_kind(),
                };
                sys.write(tctx.id.index(), &shard, engine);
            }
            if tctx.id.0 == 0 && sys_interval > 0 && ticks.is_multiple_of(sys_interval * 20) {
                publish_sys(&tctx, &sys, &mut max_connected);
            }
            if ticks.is_multiple_of(COLLECT_EVERY) {
                // mimalloc purges freed pages only when asked or when the heap is busy; an
                // idle shard would keep the pages of every buffer it ever freed resident.
                // SAFETY: mi_collect only touches the calling thread's heap.
                unsafe { libmimalloc_sys::mi_collect(false) };
            }
            if stop.requested() && stopped_at.is_none() {
                // Graceful stop: v5 clients get DISCONNECT 0x8B and every socket's output
                // is sent; once no send is in flight (or after `STOP_DRAIN_MS`) the main
                // thread is told this shard is done.
                stopped_at = Some(now_ms());
                tctx.shard.borrow_mut().shutdown(now_ms());
                flush(&tctx, &mut Vec::new());
            }
            if let Some(at) = stopped_at {
                if !told && (tctx.sends.borrow().in_flight() == 0 || now_ms() >= at + STOP_DRAIN_MS)
                {
                    told = true;
                    stop.done();
                }
                wake_poller();
                continue;
            }
            if tctx.accept_pending.get() && now_ms() >= tctx.shed.retry_at_ms.get() {
                wake_poller();
            }
            tctx.shard.borrow_mut().handle_timeout(now_ms());
            super::linger::tick(&tctx, now_ms());
            // A lost eventfd wake-up costs at most one tick.
            wake_poller();
            heartbeats.beat(tctx.id.index());
            tctx.kick();
        }
    })
    .detach();

    let _ = ready.send(Ok(id));
    // Everything runs in the tasks spawned above; this shard lives as long as the process.
    futures_lite::future::pending::<()>().await;
    drop(flusher);
}

fn on_mesh(ctx: &Rc<Ctx>, from: ShardId, m: MeshMsg) {
    match m {
        MeshMsg::Batch(batch) => {
            let now = now_ms();
            let mut shard = ctx.shard.borrow_mut();
            for msg in batch {
                shard.handle_shard_msg(now, from, msg);
            }
        }
        MeshMsg::Handoff { token, arrival } => {
            super::handoff::on_message(ctx, from, token, arrival)
        }
    }
}

/// How long a stopping shard waits for its last sends.
const STOP_DRAIN_MS: u64 = 1_000;

/// Tables a shard that holds at most `max_conns` connections may open, and the slots of
/// each: its share plus room for sockets lingering or arriving by hand-off, in tables of at
/// most RLIMIT_NOFILE slots (the kernel's cap for one table).
fn table_plan(max_conns: usize) -> (usize, u32) {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit fills the struct it is given.
    let nofile = if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } == 0 {
        lim.rlim_cur
    } else {
        1024
    };
    let want = (max_conns as u64).saturating_add(crate::rlimit::TABLE_SPARE);
    let slots = want.min(nofile).clamp(1, 1 << 20);
    (want.div_ceil(slots).max(1) as usize, slots as u32)
}

/// Publishes the `$SYS` totals (shard 0 only), retained like Mosquitto's.
fn publish_sys(ctx: &Ctx, sys: &super::sys::SysTable, max_connected: &mut u64) {
    let totals = sys.totals();
    *max_connected = (*max_connected).max(totals.connections);
    let uptime = now_ms() / 1000;
    let mut shard = ctx.shard.borrow_mut();
    for (topic, payload) in super::sys::topics(
        &totals,
        &sys.per_shard_connections(),
        uptime,
        *max_connected,
    ) {
        shard.publish_system(
            now_ms(),
            &topic,
            bytes::Bytes::from(payload),
            codec::QoS::AtMostOnce,
            true,
        );
    }
}
