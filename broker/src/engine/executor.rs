//! One shard's executor: joins the mesh, binds the listeners, and runs the accept loops,
//! the mesh receivers, the timer tick and the end-of-turn flusher.

use super::conn;
use super::ctx::{now_ms, Ctx};
use super::flush::flush;
use super::listener;
use super::mesh::{MeshMsg, MeshOut};
use super::readiness::Readiness;
use super::waker::wake_poller;
use futures_lite::StreamExt;
use glommio::channels::channel_mesh::{Full, MeshBuilder};
use glommio::channels::local_channel;
use shard::{Shard, ShardConfig, ShardId};
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::rc::Rc;
use std::sync::mpsc::Sender;
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
    pub listeners: Vec<SocketAddr>,
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
    /// Each shard has a CPU of its own (pinned placement).
    pub pinned: bool,
    /// Told once this shard accepts on every listener (or failed to bind).
    pub ready: Sender<Result<ShardId, String>>,
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
        pinned,
        ready,
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
    let readiness = match Readiness::new() {
        Ok(r) => r,
        Err(e) => {
            let _ = ready.send(Err(format!("shard {}: epoll: {e}", id.0)));
            return;
        }
    };
    let (wake, wake_fd) = match readiness.start_watcher(id.0) {
        Ok(w) => w,
        Err(e) => {
            let _ = ready.send(Err(format!("shard {}: idle watcher: {e}", id.0)));
            return;
        }
    };
    let mut ctx = Ctx::new(
        id,
        nr,
        Shard::new(id, nr, cfg),
        MeshOut::new(senders, nr),
        readiness,
        kick_tx,
    );
    ctx.node = node;
    ctx.max_conns = max_conns;
    ctx.spin_passes = if pinned { conn::SPIN_PASSES } else { 0 };

    for addr in &listeners {
        match listener::bind(*addr) {
            Ok(l) => {
                let index = ctx.listeners.len() as u32;
                if let Err(e) = ctx.readiness.add_listener(l.as_raw_fd(), index) {
                    let _ = ready.send(Err(format!("cannot watch {addr}: {e}")));
                    return;
                }
                ctx.listeners.push(l);
            }
            Err(e) => {
                let _ = ready.send(Err(format!("cannot listen on {addr}: {e}")));
                return;
            }
        }
    }

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
    let wctx = ctx.clone();
    glommio::spawn_local(async move {
        let fd = wake_fd;
        let mut wake = wake;
        let mut byte = [0u8; 1];
        while let Ok(1) = futures_lite::AsyncReadExt::read(&mut wake, &mut byte).await {
            wctx.wake_fd.set(fd);
            wctx.watcher_waiting.set(true);
            wake_poller();
        }
    })
    .detach();

    let tctx = ctx.clone();
    glommio::spawn_local(async move {
        let mut ticks = 0u32;
        let mut stopped = false;
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
            if stop.requested() && !stopped {
                // Graceful stop: v5 clients get DISCONNECT 0x8B, every socket is flushed
                // and closed, then the main thread is told this shard is done.
                stopped = true;
                tctx.shard.borrow_mut().shutdown(now_ms());
                flush(&tctx, &mut Vec::new());
                stop.done();
                continue;
            }
            if tctx.accept_pending.get() && now_ms() >= tctx.shed.retry_at_ms.get() {
                wake_poller();
            }
            tctx.shard.borrow_mut().handle_timeout(now_ms());
            tctx.linger.borrow_mut().tick(now_ms());
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
        MeshMsg::Handoff {
            fd,
            connect,
            leftover,
        } => {
            // SAFETY: the accepting shard gave up this fd; nobody else owns it.
            let fd = unsafe { OwnedFd::from_raw_fd(fd) };
            conn::add(ctx, fd, Some((connect, leftover)));
        }
    }
}

/// Lets the idle watcher poll again: the executor has nothing queued.
pub fn ack_watcher(ctx: &Ctx) {
    let fd = ctx.wake_fd.get();
    if fd >= 0 {
        // SAFETY: one-byte write to the wake-up socket owned by the watcher task.
        unsafe {
            libc::write(fd, b"a".as_ptr().cast(), 1);
        }
    }
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
