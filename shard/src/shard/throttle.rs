//! Publisher back-pressure: a QoS 1/2 publisher whose messages pile up in an online
//! subscriber's queue is paused (the broker stops reading its socket) until that queue
//! drains, instead of the broker acknowledging messages it will then drop.
//!
//! The queue is paused at three quarters of `max_queued_messages`, so what is already in
//! flight from the paused publishers still fits; it resumes at one quarter. A pause never
//! lasts longer than `THROTTLE_MAX_MS`: a subscriber that stops acknowledging altogether
//! must not stall its publishers forever (past that, the queue bound and its counted drops
//! apply as before). And one subscriber holds publishers back for at most
//! `SLOW_CONSUMER_MS` per congestion episode, so a single slow consumer cannot stall a
//! fan-out to every other subscriber. Offline sessions never pause anyone. Publishers on
//! other shards are paused through `ShardMsg::Throttle`, so this holds across shards.

use super::{IoEvent, Shard, TimerEvent};
use crate::ids::{ConnId, SessionKey, ShardId};
use crate::shard_msg::ShardMsg;

/// Longest a publisher stays paused by one congested subscriber.
pub const THROTTLE_MAX_MS: u64 = 1_000;

/// How long one subscriber may keep holding publishers back in one congestion episode. Past
/// it the subscriber counts as a slow consumer: publishers are no longer paused for it (its
/// queue bound and counted drops apply), so it cannot stall a fan-out to everyone else.
pub const SLOW_CONSUMER_MS: u64 = 5_000;

/// Publishers paused by one congested session: `(shard, conn, last pause sent)`, and when
/// the congestion began.
#[derive(Debug, Default)]
pub(super) struct Waiters {
    since_ms: u64,
    list: Vec<(ShardId, ConnId, u64)>,
}

impl Shard {
    fn high_watermark(&self) -> usize {
        (self.cfg.max_queued_messages * 3 / 4).max(1)
    }

    /// A delivery from `origin` was queued for `key`: pause the origin if the queue is high.
    /// While the queue stays high the pause is renewed every half deadline, so a publisher
    /// stays paused as long as the congestion lasts (and no longer than the deadline after).
    pub(super) fn note_backlog(
        &mut self,
        now_ms: u64,
        key: SessionKey,
        origin: Option<(ShardId, ConnId)>,
    ) {
        let Some((shard, conn)) = origin else { return };
        let high = self.high_watermark();
        let Some(s) = self.sessions.get(key.slot, key.gen) else {
            return;
        };
        if s.conn.is_none() || s.queue_len() < high || s.conn == Some(conn) && shard == self.id {
            return;
        }
        let waiters = self.throttled.entry(key).or_insert_with(|| Waiters {
            since_ms: now_ms,
            list: Vec::new(),
        });
        if now_ms >= waiters.since_ms + SLOW_CONSUMER_MS {
            return; // a slow consumer: stop holding publishers back for it
        }
        let waiters = &mut waiters.list;
        match waiters.iter_mut().find(|w| w.0 == shard && w.1 == conn) {
            Some(w) if now_ms < w.2 + THROTTLE_MAX_MS / 2 => return,
            Some(w) => w.2 = now_ms,
            None => waiters.push((shard, conn, now_ms)),
        }
        self.set_throttle(now_ms, shard, conn, true);
    }

    /// Resumes the publishers waiting on `key` once its queue is low again (or it is gone).
    pub(super) fn release_waiters(&mut self, now_ms: u64, key: SessionKey) {
        if !self.throttled.contains_key(&key) {
            return;
        }
        let low = self.cfg.max_queued_messages / 4;
        let drained = self
            .sessions
            .get(key.slot, key.gen)
            .is_none_or(|s| s.conn.is_none() || s.queue_len() <= low);
        if drained {
            for (shard, conn, _) in self.throttled.remove(&key).unwrap_or_default().list {
                self.set_throttle(now_ms, shard, conn, false);
            }
        }
    }

    fn set_throttle(&mut self, now_ms: u64, shard: ShardId, conn: ConnId, pause: bool) {
        if shard == self.id {
            self.throttle_conn(now_ms, conn, pause);
        } else {
            self.outbox.push(shard, ShardMsg::Throttle { conn, pause });
        }
    }

    /// Pauses (or extends the pause of) or resumes one of this shard's connections.
    pub(super) fn throttle_conn(&mut self, now_ms: u64, conn: ConnId, pause: bool) {
        if self.conns.get(conn.slot, conn.gen).is_none() {
            self.paused.remove(&conn);
            return;
        }
        let deadline = now_ms + THROTTLE_MAX_MS;
        if pause {
            if self.paused.insert(conn, deadline).is_none() {
                self.stats.publisher_pauses += 1;
                self.events.push(IoEvent::Pause(conn));
                self.timers
                    .insert(deadline, TimerEvent::ThrottleDeadline(conn));
            }
        } else if self.paused.remove(&conn).is_some() {
            // A fresh keepalive window: the client was silent because we did not read it.
            if let Some(c) = self.conns.get_mut(conn.slot, conn.gen) {
                c.last_rx_ms = c.last_rx_ms.max(now_ms);
            }
            self.events.push(IoEvent::Resume(conn));
        }
    }

    /// The pause deadline of `conn` came: resume it, unless the pause was renewed since.
    pub(super) fn throttle_deadline(&mut self, now_ms: u64, conn: ConnId) {
        match self.paused.get(&conn).copied() {
            Some(deadline) if deadline > now_ms => {
                self.timers
                    .insert(deadline, TimerEvent::ThrottleDeadline(conn));
            }
            Some(_) => self.throttle_conn(now_ms, conn, false),
            None => {}
        }
    }
}
