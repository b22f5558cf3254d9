//! SUBSCRIBE and UNSUBSCRIBE: plain and shared subscriptions, the route updates other
//! shards must acknowledge before SUBACK, retained-message delivery after it, and removal
//! of a session's subscriptions when it ends. A connection's SUBACKs and UNSUBACKs leave in
//! the order of its requests: one that is ready waits behind an earlier SUBACK that waits
//! for other shards, so a client that subscribes, then changes or drops the subscription,
//! reads the answers in the order the broker applied them.

use super::{Action, PendingSub, Shard, SubReply};
use crate::ids::{ConnId, SessionKey, ShardId};
use crate::shard_msg::ShardMsg;
use crate::subs::SubOptions;
use codec::{
    AckProperties, ByteStr, Packet, QoS, ReasonCode, RetainHandling, SubAck, Subscribe,
    SubscribeFilter, UnsubAck, Unsubscribe,
};
use std::num::NonZeroU32;

impl Shard {
    pub(super) fn on_subscribe(
        &mut self,
        now_ms: u64,
        conn: ConnId,
        key: SessionKey,
        sub: Subscribe,
    ) {
        let v5 = self.is_v5_conn(conn);
        let sub_id = sub.properties.subscription_identifier;
        let mut codes = Vec::with_capacity(sub.filters.len());
        let mut retained = Vec::new();
        let mut awaiting = 0;
        let token = self.take_token();
        for f in sub.filters {
            let (code, wait) = self.subscribe_one(key, &f, sub_id, v5, token, &mut retained);
            awaiting += wait;
            codes.push(code);
        }
        let pending = PendingSub {
            session: key,
            conn,
            packet_id: sub.packet_id,
            codes,
            awaiting,
            retained,
            sub_id,
        };
        if awaiting == 0 && !self.sub_replies.contains_key(&conn) {
            return self.finish_subscribe(now_ms, pending);
        }
        self.pending_subs.insert(token, pending);
        self.sub_replies
            .entry(conn)
            .or_default()
            .push_back(SubReply::Sub(token));
        self.flush_sub_replies(now_ms, conn);
    }

    /// One more shard acknowledged the route updates of SUBSCRIBE `token`.
    pub(super) fn route_acked(&mut self, now_ms: u64, token: u64) {
        let Some(p) = self.pending_subs.get_mut(&token) else {
            return;
        };
        p.awaiting = p.awaiting.saturating_sub(1);
        if p.awaiting > 0 {
            return;
        }
        let conn = p.conn;
        if self.sub_replies.contains_key(&conn) {
            self.flush_sub_replies(now_ms, conn);
        } else if let Some(p) = self.pending_subs.remove(&token) {
            // Its connection closed meanwhile: the session still gets its retained messages.
            self.finish_subscribe(now_ms, p);
        }
    }

    /// Sends the answers at the front of `conn`'s queue that are ready, in order.
    fn flush_sub_replies(&mut self, now_ms: u64, conn: ConnId) {
        while let Some(q) = self.sub_replies.get_mut(&conn) {
            match q.front() {
                Some(SubReply::Sub(t)) => {
                    let t = *t;
                    if self.pending_subs.get(&t).is_some_and(|p| p.awaiting > 0) {
                        return;
                    }
                    q.pop_front();
                    if let Some(p) = self.pending_subs.remove(&t) {
                        self.finish_subscribe(now_ms, p);
                    }
                }
                Some(SubReply::Unsub(_)) => {
                    if let Some(SubReply::Unsub(ack)) = q.pop_front() {
                        self.send(conn, &Packet::UnsubAck(ack));
                    }
                }
                None => {
                    self.sub_replies.remove(&conn);
                    return;
                }
            }
        }
    }

    /// `conn` closed: SUBSCRIBEs queued behind others and ready finish now (their retained
    /// messages go to the session); those still waiting finish when their acks come.
    pub(super) fn drop_sub_replies(&mut self, now_ms: u64, conn: ConnId) {
        let Some(q) = self.sub_replies.remove(&conn) else {
            return;
        };
        for r in q {
            if let SubReply::Sub(t) = r {
                if self.pending_subs.get(&t).is_some_and(|p| p.awaiting == 0) {
                    if let Some(p) = self.pending_subs.remove(&t) {
                        self.finish_subscribe(now_ms, p);
                    }
                }
            }
        }
    }

    fn is_v5_conn(&self, conn: ConnId) -> bool {
        self.conns
            .get(conn.slot, conn.gen)
            .is_some_and(|c| c.version.is_v5())
    }

    /// One filter of a SUBSCRIBE: its reason code and how many route acks it waits for.
    fn subscribe_one(
        &mut self,
        key: SessionKey,
        f: &SubscribeFilter,
        sub_id: Option<NonZeroU32>,
        v5: bool,
        token: u64,
        retained: &mut Vec<(ByteStr, QoS)>,
    ) -> (ReasonCode, usize) {
        let (shared, inner) = match codec::topic::parse_shared(&f.filter) {
            Ok(Some((group, inner))) => (Some(group), inner),
            Ok(None) => (None, &*f.filter),
            // The decoder already checked it; kept for callers that skip the decoder.
            Err(e) => return (e.reason_code(), 0),
        };
        let s = self.sessions.get(key.slot, key.gen);
        let count = s.map_or(0, |s| s.subscriptions.len());
        let existing = s.is_some_and(|s| s.subscriptions.contains(&f.filter));
        if inner.split('/').count() > self.cfg.max_topic_levels {
            return (ReasonCode::TopicFilterInvalid, 0);
        }
        if count >= self.cfg.max_subscriptions_per_client && !existing {
            return (ReasonCode::QuotaExceeded, 0);
        }
        if !self.authorized(key, Action::Subscribe, inner) {
            return (ReasonCode::NotAuthorized, 0);
        }
        let granted = super::connect::grant(f.qos);
        let opts = SubOptions {
            qos: granted,
            no_local: f.no_local,
            retain_as_published: f.retain_as_published,
            retain_handling: f.retain_handling,
            subscription_id: sub_id,
        };
        let mut awaiting = 0;
        let out = match shared {
            Some(group) => {
                let out = self.subs.subscribe_shared(key, group, inner, opts);
                if !out.existed_before {
                    // SUBACK waits only when this shard is new to the group: before, no
                    // publisher could pick it; after, every shard's count is eventually right.
                    let t = out.first_on_filter.then_some(token);
                    awaiting = self.announce_shared(group, inner, t);
                }
                out
            }
            None => {
                let out = self.subs.subscribe(key, inner, opts);
                if out.first_on_filter {
                    awaiting = self.announce_route(inner, token);
                }
                out
            }
        };
        if !out.existed_before {
            if let Some(s) = self.session_mut(key) {
                // A compact copy: the decoded filter would pin the read buffer.
                s.subscriptions.push(ByteStr::from(f.filter.as_str()));
            }
        }
        // Retained messages are never sent for a shared subscription (§4.8.2).
        let send_retained = shared.is_none()
            && (!v5
                || match f.retain_handling {
                    RetainHandling::SendAtSubscribe => true,
                    RetainHandling::SendIfNew => !out.existed_before,
                    RetainHandling::DoNotSend => false,
                });
        if send_retained {
            retained.push((ByteStr::from(f.filter.as_str()), granted));
        }
        let code = match granted {
            QoS::AtMostOnce => ReasonCode::Success,
            QoS::AtLeastOnce => ReasonCode::GrantedQoS1,
            QoS::ExactlyOnce => ReasonCode::GrantedQoS2,
        };
        (code, awaiting)
    }

    /// This shard gained its first subscriber of `filter`: every other shard must learn it
    /// (and acknowledge) before SUBACK. Returns the acks to wait for.
    fn announce_route(&mut self, filter: &str, token: u64) -> usize {
        self.routes.add(filter, self.id);
        let filter = ByteStr::from(filter);
        let mut awaiting = 0;
        for i in 0..self.nr_shards {
            let to = ShardId(i as u16);
            if to != self.id {
                let msg = ShardMsg::RouteAdd {
                    filter: filter.clone(),
                    token,
                };
                self.outbox.push(to, msg);
                awaiting += 1;
            }
        }
        awaiting
    }

    /// Sends SUBACK once every shard knows the new routes, then starts retained delivery.
    pub(super) fn finish_subscribe(&mut self, now_ms: u64, p: PendingSub) {
        let ack = SubAck {
            packet_id: p.packet_id,
            codes: p.codes,
            properties: AckProperties::default(),
        };
        self.send(p.conn, &Packet::SubAck(ack));
        for (filter, granted) in p.retained {
            self.query_retained(now_ms, p.session, filter, granted, p.sub_id);
        }
    }

    pub(super) fn on_unsubscribe(
        &mut self,
        now_ms: u64,
        conn: ConnId,
        key: SessionKey,
        u: Unsubscribe,
    ) {
        let mut codes = Vec::with_capacity(u.filters.len());
        for f in u.filters {
            let existed = self.remove_subscription(key, &f);
            if existed {
                if let Some(s) = self.session_mut(key) {
                    s.subscriptions.retain(|x| *x != f);
                }
                // What this member had queued for a shared subscription goes to another
                // member; inflight messages complete to this client (§3.10.4).
                if let Ok(Some((group, inner))) = codec::topic::parse_shared(&f) {
                    let queued = self.take_queued_shared(key, group, inner);
                    self.redistribute(now_ms, queued);
                }
            }
            codes.push(if existed {
                ReasonCode::Success
            } else {
                ReasonCode::NoSubscriptionExisted
            });
        }
        let ack = UnsubAck {
            packet_id: u.packet_id,
            codes,
            properties: AckProperties::default(),
        };
        match self.sub_replies.get_mut(&conn) {
            // Behind a SUBACK that waits for other shards.
            Some(q) => q.push_back(SubReply::Unsub(ack)),
            None => {
                self.send(conn, &Packet::UnsubAck(ack));
            }
        }
    }

    /// Removes one subscription (full filter, `$share/` included) from the table and tells
    /// other shards what changed. The session's own list is the caller's. True if it existed.
    pub(super) fn remove_subscription(&mut self, key: SessionKey, filter: &str) -> bool {
        match codec::topic::parse_shared(filter) {
            Ok(Some((group, inner))) => {
                let out = self.subs.unsubscribe_shared(key, group, inner);
                if out.existed {
                    self.announce_shared(group, inner, None);
                }
                out.existed
            }
            _ => {
                let out = self.subs.unsubscribe(key, filter);
                if out.last_on_filter {
                    self.drop_route(filter);
                }
                out.existed
            }
        }
    }

    /// This shard lost its last local subscriber of `filter`: tell every shard.
    pub(super) fn drop_route(&mut self, filter: &str) {
        self.routes.remove(filter, self.id);
        let filter = ByteStr::from(filter);
        for i in 0..self.nr_shards {
            let to = ShardId(i as u16);
            if to != self.id {
                self.outbox.push(
                    to,
                    ShardMsg::RouteRemove {
                        filter: filter.clone(),
                    },
                );
            }
        }
    }
}
