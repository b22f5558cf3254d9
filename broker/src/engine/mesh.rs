//! The cross-core envelope and its ordered, batched sender.
//!
//! `MeshMsg` is what glommio's channel mesh (SPSC rings between executors) carries: a batch
//! of `ShardMsg`s, or a socket handed to its client's home shard. `MeshOut` keeps the order
//! per destination: it tries a non-blocking send only when nothing is queued or in flight
//! for that destination, and otherwise queues behind a per-destination sender task.

use bytes::BytesMut;
use codec::Connect;
use glommio::channels::channel_mesh::Senders;
use glommio::GlommioError;
use shard::{ShardId, ShardMsg};
use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::os::unix::io::RawFd;
use std::rc::Rc;

/// What crosses between executors.
pub enum MeshMsg {
    /// One executor turn's worth of shard messages for the destination.
    Batch(Vec<ShardMsg>),
    /// A connection whose CONNECT names a client homed on the destination shard: a `dup`ed
    /// socket, the decoded CONNECT and the bytes read after it.
    Handoff {
        fd: RawFd,
        connect: Box<Connect>,
        leftover: BytesMut,
    },
}

struct Lane {
    backlog: RefCell<VecDeque<MeshMsg>>,
    busy: Cell<bool>,
}

/// Batches queued behind a full ring to one shard before this shard stops reading its
/// sockets (back-pressure to the publishers over TCP instead of unbounded memory).
const BACKLOG_HIGH: usize = 256;
/// Reading resumes once every lane is back under this many queued batches.
const BACKLOG_LOW: usize = 64;

/// Ordered non-blocking sending to every other shard.
pub struct MeshOut {
    senders: Rc<Senders<MeshMsg>>,
    lanes: Vec<Rc<Lane>>,
    /// Connection slots whose reads wait for the backlog to drain.
    parked: Rc<RefCell<Vec<u32>>>,
}

impl MeshOut {
    pub fn new(senders: Senders<MeshMsg>, nr: usize) -> Self {
        let lanes = (0..nr)
            .map(|_| {
                Rc::new(Lane {
                    backlog: RefCell::new(VecDeque::new()),
                    busy: Cell::new(false),
                })
            })
            .collect();
        MeshOut {
            senders: Rc::new(senders),
            lanes,
            parked: Rc::new(RefCell::new(Vec::new())),
        }
    }

    /// True while some lane has more than `BACKLOG_HIGH` batches waiting.
    pub fn congested(&self) -> bool {
        self.lanes
            .iter()
            .any(|l| l.backlog.borrow().len() > BACKLOG_HIGH)
    }

    /// Defers reading `slot` until the backlog drains.
    pub fn park(&self, slot: u32) {
        self.parked.borrow_mut().push(slot);
    }

    /// Sends `msg` to shard `to`, keeping the order of earlier sends to it.
    pub fn send(&self, to: ShardId, msg: MeshMsg) {
        let Some(lane) = self.lanes.get(to.index()) else {
            return;
        };
        if !lane.busy.get() {
            match self.senders.try_send_to(to.index(), msg) {
                Ok(()) => return,
                Err(GlommioError::WouldBlock(glommio::ResourceType::Channel(m))) => {
                    lane.backlog.borrow_mut().push_back(m);
                }
                Err(e) => {
                    tracing::error!(to = to.0, "mesh send failed: {e}");
                    return;
                }
            }
        } else {
            lane.backlog.borrow_mut().push_back(msg);
            return;
        }
        // The ring is full: drain the backlog in order from a task that can wait.
        lane.busy.set(true);
        let lane = lane.clone();
        let lanes = self.lanes.clone();
        let parked = self.parked.clone();
        let senders = self.senders.clone();
        let idx = to.index();
        glommio::spawn_local(async move {
            loop {
                let next = lane.backlog.borrow_mut().pop_front();
                let Some(m) = next else { break };
                if senders.send_to(idx, m).await.is_err() {
                    break;
                }
                let drained = lanes
                    .iter()
                    .all(|l| l.backlog.borrow().len() <= BACKLOG_LOW);
                if drained && !parked.borrow().is_empty() {
                    for slot in std::mem::take(&mut *parked.borrow_mut()) {
                        super::waker::mark_ready(slot);
                    }
                }
            }
            lane.busy.set(false);
            for slot in std::mem::take(&mut *parked.borrow_mut()) {
                super::waker::mark_ready(slot);
            }
        })
        .detach();
    }
}
