//! The cross-core envelope and its ordered, batched sender.
//!
//! `MeshMsg` is what glommio's channel mesh (SPSC rings between executors) carries: a batch
//! of `ShardMsg`s, or a socket handed to its client's home shard. `MeshOut` keeps the order
//! per destination: it tries a non-blocking send only when nothing is queued or in flight
//! for that destination, and otherwise queues behind a per-destination sender task. A send
//! that fails for good (the destination's ring closed, which only happens as the process
//! stops) discards its batch counted (`MeshOut::dropped`, logged once), so nothing is lost
//! uncounted.

use glommio::channels::channel_mesh::Senders;
use glommio::GlommioError;
use shard::{ShardId, ShardMsg};
use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::rc::Rc;

/// What crosses between executors.
pub enum MeshMsg {
    /// One executor turn's worth of shard messages for the destination.
    Batch(Vec<ShardMsg>),
    /// A connection whose CONNECT names a client homed on the destination shard: the
    /// decoded CONNECT, the bytes read after it and its transport. The socket itself went to the
    /// destination's ring (IORING_OP_MSG_RING) under the same `token` (`handoff`).
    Handoff {
        token: u32,
        arrival: super::handoff::Arrival,
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
    /// Shard messages and hand-offs discarded because their send failed for good.
    pub dropped: Rc<Cell<u64>>,
}

/// Discards a message whose send failed for good: counts what it held, says so in the log
/// once.
fn discard(dropped: &Cell<u64>, to: usize, msg: Option<MeshMsg>, why: &dyn std::fmt::Display) {
    let n = match msg {
        Some(MeshMsg::Batch(b)) => b.len() as u64,
        Some(MeshMsg::Handoff { .. }) | None => 1,
    };
    if dropped.get() == 0 {
        tracing::error!(
            to,
            "mesh send failed: {why}; {n} message(s) discarded (counted, logged once)"
        );
    }
    dropped.set(dropped.get() + n);
}

/// The message a failed send hands back, when it does.
fn returned(e: GlommioError<MeshMsg>) -> (Option<MeshMsg>, String) {
    let why = e.to_string();
    match e {
        GlommioError::Closed(glommio::ResourceType::Channel(m))
        | GlommioError::WouldBlock(glommio::ResourceType::Channel(m)) => (Some(m), why),
        _ => (None, why),
    }
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
            dropped: Rc::new(Cell::new(0)),
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
                    let (m, why) = returned(e);
                    return discard(&self.dropped, to.index(), m, &why);
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
        let dropped = self.dropped.clone();
        let idx = to.index();
        glommio::spawn_local(async move {
            loop {
                let next = lane.backlog.borrow_mut().pop_front();
                let Some(m) = next else { break };
                if let Err(e) = senders.send_to(idx, m).await {
                    let (m, why) = returned(e);
                    discard(&dropped, idx, m, &why);
                    let rest: Vec<_> = lane.backlog.borrow_mut().drain(..).collect();
                    for m in rest {
                        discard(&dropped, idx, Some(m), &why);
                    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_discarded_batch_is_counted() {
        let dropped = Cell::new(0);
        let batch = MeshMsg::Batch(vec![ShardMsg::RouteAck { token: 1 }; 3]);
        discard(&dropped, 1, Some(batch), &"closed");
        assert_eq!(dropped.get(), 3);
        discard(&dropped, 1, None, &"closed");
        assert_eq!(dropped.get(), 4);
    }
}
