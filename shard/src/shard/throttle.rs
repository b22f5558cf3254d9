//! Publisher back-pressure: a QoS 1/2 publisher whose messages pile up in an online
//! subscriber's queue is paused (the broker stops reading its socket, at packet
//! granularity) until that queue drains. The broker never acknowledges a message and then
//! drops it for an online subscriber: the queue takes every QoS 1/2 message, and pausing its
//! publishers is what bounds it.
//!
//! The queue pauses its publishers at three quarters of `max_queued_messages` (what is
//! already in flight from them still fits under the bound) and resumes them at one quarter.
//! While it stays high a timer renews the pauses every `RENEW_MS`; a publisher whose pause
//! is not renewed resumes `THROTTLE_MAX_MS` after the last renewal, so a lost resume never
//! stalls it for good. A subscriber that keeps publishers paused and makes no progress (no
//! acknowledgement, no byte taken by its socket) for `stuck_timeout_ms` is disconnected with
//! 0x97 and its session goes offline (offline sessions pause no one), so one dead client
//! cannot stall a topic forever. Publishers on other shards are paused through
//! `ShardMsg::Throttle`. A connection whose acknowledgements wait on other shards is also
//! held once `receive_maximum` of them wait (a v3 client has no Receive Maximum to obey).

use super::{IoEvent, Notice, Shard, TimerEvent};
use crate::ids::{ConnId, SessionKey, ShardId};
use crate::shard_msg::ShardMsg;
use ahash::AHashSet;

/// Longest a publisher stays paused after the last renewal of its pause.
pub const THROTTLE_MAX_MS: u64 = 1_000;

/// How often the pauses of a congested subscriber are renewed and its progress checked.
const RENEW_MS: u64 = 500;

/// Deadline of a pause that only the connection's own acknowledgements end.
const HELD_FOR_ACKS: u64 = u64::MAX;

/// Publishers paused by one congested session, and its progress.
#[derive(Debug)]
pub(super) struct Waiters {
    /// Last check at which the subscriber had made progress.
    progress_ms: u64,
    /// Progress seen since the last check (set on the ack and write paths).
    progressed: bool,
    list: AHashSet<(ShardId, ConnId)>,
}

impl Shard {
    pub(super) fn high_watermark(&self) -> usize {
        (self.cfg.max_queued_messages * 3 / 4).max(1)
    }

    /// A delivery from `origin` was queued for `key`: pause the origin if the queue is high.
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
        let fresh = !self.throttled.contains_key(&key);
        let waiters = self.throttled.entry(key).or_insert_with(|| Waiters {
            progress_ms: now_ms,
            progressed: false,
            list: AHashSet::new(),
        });
        // A remote publisher already asked to pause may still have messages on the way;
        // a local one delivering again was resumed by its deadline and is paused again.
        if !waiters.list.insert((shard, conn)) && shard != self.id {
            return;
        }
        if fresh {
            self.arm_congestion_timer(key, now_ms + RENEW_MS);
        }
        self.set_throttle(now_ms, shard, conn, true);
    }

    /// The subscriber of `key` acknowledged something or its socket took bytes.
    pub(super) fn note_progress(&mut self, key: SessionKey) {
        if let Some(w) = self.throttled.get_mut(&key) {
            w.progressed = true;
        }
    }

    /// Resumes the publishers waiting on `key` once its queue is low again (or it is gone
    /// or offline). True when they were resumed.
    pub(super) fn release_waiters(&mut self, now_ms: u64, key: SessionKey) -> bool {
        if !self.throttled.contains_key(&key) {
            return false;
        }
        let low = self.cfg.max_queued_messages / 4;
        let drained = self
            .sessions
            .get(key.slot, key.gen)
            .is_none_or(|s| s.conn.is_none() || s.queue_len() <= low);
        if !drained {
            return false;
        }
        let list = self
            .throttled
            .remove(&key)
            .map(|w| w.list)
            .unwrap_or_default();
        for (shard, conn) in list {
            self.set_throttle(now_ms, shard, conn, false);
        }
        true
    }

    /// Puts the renewal timer of congested `key` in the wheel unless one that fires no later
    /// is there (one per subscriber, however often it congests and drains).
    fn arm_congestion_timer(&mut self, key: SessionKey, at: u64) {
        if self.congestion_timers.get(&key).is_none_or(|&t| t > at) {
            self.congestion_timers.insert(key, at);
            self.timers.insert(at, TimerEvent::Congestion(key, at));
        }
    }

    /// The renewal timer of a congested session (set for `at`): resume its publishers if it
    /// drained, disconnect it if it made no progress for `stuck_timeout_ms`, else renew the
    /// pauses. A timer that is no longer the session's one is ignored.
    pub(super) fn congestion_check(&mut self, now_ms: u64, key: SessionKey, at: u64) {
        if self.congestion_timers.get(&key) != Some(&at) {
            return;
        }
        self.congestion_timers.remove(&key);
        if self.release_waiters(now_ms, key) {
            return;
        }
        let stuck_after = self.cfg.stuck_timeout_ms;
        let Some(w) = self.throttled.get_mut(&key) else {
            return;
        };
        if std::mem::take(&mut w.progressed) {
            w.progress_ms = now_ms;
        }
        if now_ms.saturating_sub(w.progress_ms) >= stuck_after {
            return self.disconnect_stuck(now_ms, key);
        }
        let list: Vec<_> = w.list.iter().copied().collect();
        for (shard, conn) in list {
            self.set_throttle(now_ms, shard, conn, true);
        }
        self.arm_congestion_timer(key, now_ms + RENEW_MS);
    }

    /// Closes the connection of a subscriber that held publishers back without progress.
    fn disconnect_stuck(&mut self, now_ms: u64, key: SessionKey) {
        let Some(s) = self.sessions.get(key.slot, key.gen) else {
            return;
        };
        let Some(conn) = s.conn else { return };
        self.stats.stuck_disconnects += 1;
        self.notices.push(Notice::StuckSubscriber {
            client_id: s.client_id.clone(),
            queued: s.queue_len(),
            inflight: s.inflight_len(),
            idle_ms: self.cfg.stuck_timeout_ms,
        });
        let mut d = codec::Disconnect::new(codec::ReasonCode::QuotaExceeded);
        d.properties.reason_string = Some(codec::ByteStr::from_static(
            "no progress while publishers waited on a full queue (limits.stuck_timeout)",
        ));
        self.close_conn_with(now_ms, conn, true, Some(d));
        self.release_waiters(now_ms, key);
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
        self.set_paused(now_ms, conn, pause.then_some(now_ms + THROTTLE_MAX_MS));
    }

    /// `Some(deadline)` pauses `conn` until then (extending an earlier pause, never
    /// shortening one held for acknowledgements); `None` resumes it.
    fn set_paused(&mut self, now_ms: u64, conn: ConnId, until: Option<u64>) {
        if self.conns.get(conn.slot, conn.gen).is_none() {
            self.paused.remove(&conn);
            return;
        }
        match until {
            Some(deadline) => match self.paused.get_mut(&conn) {
                Some(d) => *d = (*d).max(deadline),
                None => {
                    self.paused.insert(conn, deadline);
                    self.stats.publisher_pauses += 1;
                    self.events.push(IoEvent::Pause(conn));
                    if deadline != HELD_FOR_ACKS {
                        self.arm_throttle_timer(conn, deadline);
                    }
                }
            },
            None => {
                if self.paused.remove(&conn).is_some() {
                    // A fresh keepalive window: the client was silent because we did not read it.
                    if let Some(c) = self.conns.get_mut(conn.slot, conn.gen) {
                        c.last_rx_ms = c.last_rx_ms.max(now_ms);
                    }
                    self.events.push(IoEvent::Resume(conn));
                }
            }
        }
    }

    /// Holds `conn` (stops reading it) while too many of its acknowledgements wait on
    /// other shards, and lets it go once half of them left.
    pub(super) fn hold_for_acks(&mut self, now_ms: u64, conn: ConnId, waiting: usize) {
        let max = usize::from(self.cfg.receive_maximum).max(1);
        if waiting < max && self.paused.is_empty() {
            return;
        }
        let held = self.paused.get(&conn) == Some(&HELD_FOR_ACKS);
        if waiting >= max && !held {
            // Also when a subscriber paused it already: the longer pause wins.
            self.set_paused(now_ms, conn, Some(HELD_FOR_ACKS));
        } else if held && waiting <= max / 2 {
            self.set_paused(now_ms, conn, None);
        }
    }

    /// Puts a pause-deadline timer for `conn` in the wheel unless one that fires no later is
    /// there already: a publisher paused and resumed thousands of times a second has one
    /// timer, not one per pause (each of which re-armed itself while the publisher was
    /// paused again: the wheel grew by ~12 bytes per message under fan-in).
    fn arm_throttle_timer(&mut self, conn: ConnId, deadline: u64) {
        if self
            .throttle_timers
            .get(&conn)
            .is_none_or(|&at| at > deadline)
        {
            self.throttle_timers.insert(conn, deadline);
            self.timers
                .insert(deadline, TimerEvent::ThrottleDeadline(conn, deadline));
        }
    }

    /// The pause-deadline timer of `conn` set for `at` fired: resume it, unless the pause
    /// was renewed since (then wait for the new deadline). A timer that is no longer the
    /// connection's one is ignored.
    pub(super) fn throttle_deadline(&mut self, now_ms: u64, conn: ConnId, at: u64) {
        if self.throttle_timers.get(&conn) != Some(&at) {
            return;
        }
        self.throttle_timers.remove(&conn);
        match self.paused.get(&conn).copied() {
            Some(HELD_FOR_ACKS) => {}
            Some(deadline) if deadline > now_ms => self.arm_throttle_timer(conn, deadline),
            Some(_) => self.set_paused(now_ms, conn, None),
            None => {}
        }
    }

    /// Whether the broker must stop reading `conn` now (checked after each packet, so a
    /// pause takes effect at packet granularity).
    pub fn is_paused(&self, conn: ConnId) -> bool {
        !self.paused.is_empty() && self.paused.contains_key(&conn)
    }
}
