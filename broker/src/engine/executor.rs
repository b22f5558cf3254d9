//! One shard's executor: joins the mesh, binds the listeners, and runs the accept loops,
//! the mesh receivers, the timer tick and the end-of-turn flusher.

use super::conn;
use super::ctx::{now_ms, Ctx};
use super::flush::flush;
use super::listener;
use super::mesh::{MeshMsg, MeshOut};
use futures_lite::StreamExt;
use glommio::channels::channel_mesh::{Full, MeshBuilder};
use glommio::channels::local_channel;
use glommio::net::TcpStream;
use shard::{Shard, ShardConfig, ShardId};
use std::net::SocketAddr;
use std::os::unix::io::FromRawFd;
use std::rc::Rc;
use std::sync::mpsc::Sender;
use std::time::Duration;

/// How often the timer wheel is advanced. Keepalive and expiry work in seconds, so 50 ms
/// is precise enough and costs 20 wake-ups a second per shard.
const TICK: Duration = Duration::from_millis(50);

/// What every shard is started with.
#[derive(Clone)]
pub struct ShardStart {
    pub nr: usize,
    pub listeners: Vec<SocketAddr>,
    pub cfg: ShardConfig,
    /// Connections this shard holds at most (the broker limit split across shards).
    pub max_conns: usize,
    pub heartbeats: crate::sd_notify::Heartbeats,
    pub mesh: MeshBuilder<MeshMsg, Full>,
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
        mesh,
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
    let ctx = Rc::new(Ctx::new(
        id,
        nr,
        Shard::new(id, nr, cfg),
        MeshOut::new(senders, nr),
        kick_tx,
    ));

    let mut bound = Vec::new();
    for addr in &listeners {
        match listener::bind(*addr) {
            Ok(l) => bound.push(l),
            Err(e) => {
                let _ = ready.send(Err(format!("cannot listen on {addr}: {e}")));
                return;
            }
        }
    }

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

    let tctx = ctx.clone();
    glommio::spawn_local(async move {
        loop {
            glommio::timer::sleep(TICK).await;
            tctx.shard.borrow_mut().handle_timeout(now_ms());
            heartbeats.beat(tctx.id.index());
            tctx.kick();
        }
    })
    .detach();

    let _ = ready.send(Ok(id));
    let mut accepts = Vec::new();
    for l in bound {
        let ctx = ctx.clone();
        accepts.push(glommio::spawn_local(async move {
            loop {
                match l.accept().await {
                    Ok(stream) if ctx.live_conns() >= max_conns => {
                        // Over limits.max_connections: close before reading anything.
                        drop(stream);
                        ctx.refused.set(ctx.refused.get() + 1);
                    }
                    Ok(stream) => conn::add(&ctx, stream, None),
                    Err(e) => {
                        // EMFILE and friends: back off instead of spinning.
                        tracing::warn!("accept failed: {e}");
                        glommio::timer::sleep(Duration::from_millis(100)).await;
                    }
                }
            }
        }));
    }
    for a in accepts {
        a.await;
    }
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
            // SAFETY: `fd` was dup'ed for us by the accepting shard and is owned by nobody else.
            let stream = unsafe { TcpStream::from_raw_fd(fd) };
            conn::add(ctx, stream, Some((connect, leftover)));
        }
    }
}
