//! Shared subscriptions `$share/{group}/{filter}` (§4.8.2) across shards: one member per
//! message, whichever shard it is on.
//!
//! Every shard's route table holds the member count per shard of each group (`SharedSet`
//! updates). The publishing shard picks a shard with the configured strategy, in proportion
//! to its members, and sends the message there ONCE (`SharedPublish`); that shard picks one
//! of its members with the same strategy. Online members are preferred: a shard whose
//! members are all offline passes the message on to a shard not yet tried, and only when
//! none is left does it queue the message to one of its offline members. When a member
//! leaves, what it had queued (and an unacknowledged QoS 1 message) goes to another member.
//! This file owns the strategy state (cursors, sticky choices) and never touches a socket.

use super::Shard;
use crate::config::SharedStrategy;
use crate::ids::{fnv1a_64, SessionKey, ShardId};
use crate::message::SharedMessage;
use crate::routes::{ShardCounts, ShardSet};
use crate::session::{Delivery, SharedTag};
use crate::shard_msg::{Confirm, ShardMsg, SharedDispatch};
use crate::subs::SubOptions;
use ahash::AHashMap;
use codec::ByteStr;
use std::sync::Arc;

/// Strategy state of one shared subscription on this shard.
#[derive(Debug)]
struct Group {
    /// The tag every delivery through this subscription carries (built once).
    tag: Arc<SharedTag>,
    /// `round_robin`: the next member number, publisher side.
    next: u64,
    /// `sticky`: the shard this shard's publishes go to, and the local member chosen.
    sticky_shard: Option<ShardId>,
    sticky_member: Option<SessionKey>,
}

/// Per-shard state of the shared-subscription strategies.
#[derive(Debug)]
pub(super) struct SharedState {
    /// Keyed by a hash of (group, filter); the tag is compared on lookup.
    groups: AHashMap<u64, Group>,
    rng: u64,
}

fn group_key(group: &str, filter: &str) -> u64 {
    // FNV-1a over "group/filter" without building the string (a group has no '/').
    let mut h = fnv1a_64(group.as_bytes());
    for &b in b"/".iter().chain(filter.as_bytes()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// SplitMix64: a cheap, well-mixed step for the random strategy and for hash spreading.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

impl SharedState {
    pub(super) fn new(shard: ShardId) -> Self {
        SharedState {
            groups: AHashMap::new(),
            rng: mix(u64::from(shard.0) + 1),
        }
    }

    fn group(&mut self, group: &str, filter: &str) -> &mut Group {
        let g = self
            .groups
            .entry(group_key(group, filter))
            .or_insert_with(|| Group::new(group, filter));
        if &*g.tag.group != group || &*g.tag.filter != filter {
            // A 64-bit hash collision: the newer subscription takes the slot.
            *g = Group::new(group, filter);
        }
        g
    }

    fn random(&mut self) -> u64 {
        self.rng = self.rng.wrapping_add(1);
        mix(self.rng)
    }

    /// Forgets the strategy state of a subscription no shard has members of any more.
    pub(super) fn forget(&mut self, group: &str, filter: &str) {
        self.groups.remove(&group_key(group, filter));
    }
}

impl Group {
    fn new(group: &str, filter: &str) -> Self {
        Group {
            tag: Arc::new(SharedTag {
                group: ByteStr::from(group),
                filter: ByteStr::from(filter),
            }),
            next: 0,
            sticky_shard: None,
            sticky_member: None,
        }
    }
}

/// The key of the `hash` strategy: the publisher's client id, or the topic for messages
/// with no publisher.
fn publisher_hash(msg: &SharedMessage) -> u64 {
    match &msg.publisher {
        Some(id) => fnv1a_64(id.as_bytes()),
        None => fnv1a_64(msg.topic.as_bytes()),
    }
}

/// Picks a shard among `counts` minus `exclude`, in proportion to its members.
fn pick_shard(
    strategy: SharedStrategy,
    counts: &ShardCounts,
    exclude: &ShardSet,
    g: &mut Group,
    random: u64,
    hash: u64,
) -> Option<ShardId> {
    let eligible = || counts.iter().filter(|(s, _)| !exclude.contains(*s));
    let total: u64 = eligible().map(|(_, c)| u64::from(c)).sum();
    if total == 0 {
        return None;
    }
    let n = match strategy {
        SharedStrategy::Random => random % total,
        SharedStrategy::Hash => hash % total,
        SharedStrategy::RoundRobin => {
            let n = g.next;
            g.next = g.next.wrapping_add(1);
            n % total
        }
        SharedStrategy::Sticky => {
            if let Some(s) = g.sticky_shard {
                if counts.get(s) > 0 && !exclude.contains(s) {
                    return Some(s);
                }
            }
            // Every shard picks the lowest shard with members, so they agree.
            let s = eligible().next().map(|(s, _)| s);
            if exclude.is_empty() {
                g.sticky_shard = s;
            }
            return s;
        }
    };
    let mut left = n;
    for (s, c) in eligible() {
        if left < u64::from(c) {
            return Some(s);
        }
        left -= u64::from(c);
    }
    None
}

impl Shard {
    /// Sends `msg` to one member of each matching shared subscription, adding to `out`
    /// what matched and where it went. With `confirm` (a client's QoS 1/2 PUBLISH) a message
    /// for a member on another shard goes on the link's credit, or waits to be confirmed.
    pub(super) fn route_shared(
        &mut self,
        now_ms: u64,
        msg: &SharedMessage,
        confirm: Option<(crate::ids::ConnId, u64)>,
        out: &mut super::deliver::RouteOutcome,
    ) {
        let strategy = self.cfg.shared_strategy;
        let hash = if strategy == SharedStrategy::Hash {
            publisher_hash(msg)
        } else {
            0
        };
        let mut picks: Vec<(ShardId, Arc<SharedTag>)> = Vec::new();
        let mut matched = false;
        let state = &mut self.shared;
        let none = ShardSet::new();
        self.routes.match_shared(&msg.topic, |r| {
            matched = true;
            let random = state.random();
            let g = state.group(r.group(), r.filter());
            if let Some(s) = pick_shard(strategy, r.counts(), &none, g, random, hash) {
                picks.push((s, g.tag.clone()));
            }
        });
        out.matched |= matched;
        for (to, tag) in picks {
            let mut d = SharedDispatch {
                msg: msg.clone(),
                tag,
                tried: ShardSet::new(),
                credited: false,
                confirm: None,
            };
            if to == self.id {
                match self.dispatch_shared(now_ms, d) {
                    Some(true) => out.accepted += 1,
                    Some(false) => out.refused += 1,
                    None => out.remote = true,
                }
                continue;
            }
            if let Some((conn, token)) = confirm {
                if self.credit.take(to) {
                    d.credited = true;
                    out.remote = true;
                } else {
                    let shard = self.id;
                    d.confirm = Some(Confirm { shard, conn, token });
                    out.awaiting += 1;
                }
            } else {
                out.remote = true;
            }
            self.outbox.push(to, ShardMsg::SharedPublish(Box::new(d)));
        }
    }

    /// Delivers a shared message to one local member, or passes it on (see the module
    /// documentation). Some(accepted) when it stayed here, None when it was passed on or
    /// dropped for want of any member. Where it ends, its `confirm` is answered.
    pub(super) fn dispatch_shared(&mut self, now_ms: u64, d: SharedDispatch) -> Option<bool> {
        let SharedDispatch {
            msg,
            tag,
            mut tried,
            confirm,
            ..
        } = d;
        let ended = |s: &mut Self, took: Option<bool>| {
            if let Some(c) = confirm {
                let (accepted, refused) = match took {
                    Some(true) => (1, 0),
                    Some(false) => (0, 1),
                    None => (0, 0),
                };
                s.confirm_to(now_ms, c, accepted, refused);
            }
            took
        };
        if let Some((key, opts)) = self.pick_member(&tag, &msg, true) {
            let took = self.deliver_shared(now_ms, key, opts, msg, tag);
            return ended(self, Some(took));
        }
        tried.insert(self.id);
        let strategy = self.cfg.shared_strategy;
        let random = self.shared.random();
        let g = self.shared.group(&tag.group, &tag.filter);
        let next = self
            .routes
            .shared_counts(&tag.group, &tag.filter)
            .and_then(|c| pick_shard(strategy, c, &tried, g, random, publisher_hash(&msg)));
        if let Some(to) = next {
            // Passed on uncredited (at most once per shard); a confirmation goes with it.
            let d = SharedDispatch {
                msg,
                tag,
                tried,
                credited: false,
                confirm,
            };
            self.outbox.push(to, ShardMsg::SharedPublish(Box::new(d)));
            return None;
        }
        if let Some((key, opts)) = self.pick_member(&tag, &msg, false) {
            let took = self.deliver_shared(now_ms, key, opts, msg, tag);
            return ended(self, Some(took));
        }
        // No member left anywhere this shard knows of.
        self.count_drop(None, crate::session::DropReason::NoSharedMember, 1);
        ended(self, None)
    }

    /// Answers a confirmation: to the publisher's shard, or here when it is this one.
    fn confirm_to(&mut self, now_ms: u64, c: Confirm, accepted: u32, refused: u32) {
        if c.shard == self.id {
            self.ack_delivered(now_ms, c.conn, c.token, accepted, refused);
        } else {
            let (conn, token) = (c.conn, c.token);
            let msg = ShardMsg::Delivered {
                conn,
                token,
                accepted,
                refused,
            };
            self.outbox.push(c.shard, msg);
        }
    }

    /// One local member of the group, by strategy; only online ones when `online_only`.
    fn pick_member(
        &mut self,
        tag: &SharedTag,
        msg: &SharedMessage,
        online_only: bool,
    ) -> Option<(SessionKey, SubOptions)> {
        let group = self.subs.shared_group(&tag.group, &tag.filter)?;
        let sessions = &self.sessions;
        let ok = |k: &SessionKey| {
            !online_only
                || sessions
                    .get(k.slot, k.gen)
                    .is_some_and(|s| s.conn.is_some())
        };
        let members = group.members();
        let n = members.len();
        let strategy = self.cfg.shared_strategy;
        let start = match strategy {
            SharedStrategy::RoundRobin => {
                for _ in 0..n {
                    let m = group.next_round_robin()?;
                    if ok(&m.0) {
                        return Some(*m);
                    }
                }
                return None;
            }
            SharedStrategy::Random => self.shared.random(),
            SharedStrategy::Hash => mix(publisher_hash(msg)),
            SharedStrategy::Sticky => {
                let random = self.shared.random();
                let g = self.shared.group(&tag.group, &tag.filter);
                if let Some(k) = g.sticky_member {
                    if let Some(m) = members.iter().find(|m| m.0 == k && ok(&m.0)) {
                        return Some(*m);
                    }
                }
                let m = (0..n)
                    .filter_map(|i| members.get((random as usize + i) % n))
                    .find(|m| ok(&m.0))
                    .copied();
                g.sticky_member = m.map(|m| m.0);
                return m;
            }
        };
        let start = (start % n.max(1) as u64) as usize;
        (0..n)
            .filter_map(|i| members.get((start + i) % n))
            .find(|m| ok(&m.0))
            .copied()
    }

    fn deliver_shared(
        &mut self,
        now_ms: u64,
        key: SessionKey,
        opts: SubOptions,
        msg: SharedMessage,
        tag: Arc<SharedTag>,
    ) -> bool {
        let d = Delivery {
            qos: msg.qos.min(opts.qos),
            retain: msg.retain && opts.retain_as_published,
            subscription_ids: opts.subscription_id.into_iter().collect(),
            shared: Some(tag),
            msg,
        };
        self.deliver_to_session(now_ms, key, d).is_ok()
    }

    /// Hands messages a leaving member still held to the other members of their groups.
    pub(super) fn redistribute(&mut self, now_ms: u64, orphans: Vec<Delivery>) {
        for d in orphans {
            let Some(tag) = d.shared else { continue };
            if d.msg.is_expired(now_ms) {
                self.count_drop(None, crate::session::DropReason::Expired, 1);
                continue;
            }
            self.stats.shared_redistributed += 1;
            let d = SharedDispatch {
                msg: d.msg,
                tag,
                tried: ShardSet::new(),
                credited: false,
                confirm: None,
            };
            self.dispatch_shared(now_ms, d);
        }
    }

    /// Tells every shard how many members of `$share/{group}/{filter}` this shard has now.
    /// With `token`, the other shards acknowledge; returns how many acks to wait for.
    pub(super) fn announce_shared(
        &mut self,
        group: &str,
        filter: &str,
        token: Option<u64>,
    ) -> usize {
        let members = self
            .subs
            .shared_group(group, filter)
            .map_or(0, |g| g.members().len() as u32);
        self.apply_shared_set(group, filter, self.id, members);
        let (g, f) = (ByteStr::from(group), ByteStr::from(filter));
        let mut awaiting = 0;
        for i in 0..self.nr_shards {
            let to = ShardId(i as u16);
            if to != self.id {
                let msg = ShardMsg::SharedSet {
                    group: g.clone(),
                    filter: f.clone(),
                    members,
                    token,
                };
                self.outbox.push(to, msg);
                awaiting += 1;
            }
        }
        if token.is_some() {
            awaiting
        } else {
            0
        }
    }

    /// Applies a member count to the route table, dropping strategy state with the group.
    pub(super) fn apply_shared_set(&mut self, group: &str, filter: &str, from: ShardId, n: u32) {
        self.routes.shared_set(group, filter, from, n);
        if self.routes.shared_counts(group, filter).is_none() {
            self.shared.forget(group, filter);
        }
    }

    /// The session's queued deliveries through `$share/{group}/{filter}`, taken out.
    pub(super) fn take_queued_shared(
        &mut self,
        key: SessionKey,
        group: &str,
        filter: &str,
    ) -> Vec<Delivery> {
        let Some(s) = self.sessions.get_mut(key.slot, key.gen) else {
            return Vec::new();
        };
        s.queue_take(|d| {
            d.shared
                .as_ref()
                .is_some_and(|t| &*t.group == group && &*t.filter == filter)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(v: &[(u16, u32)]) -> ShardCounts {
        let mut rt = crate::routes::RouteTable::new();
        for &(s, n) in v {
            rt.shared_set("g", "f", ShardId(s), n);
        }
        rt.shared_counts("g", "f").cloned().unwrap_or_default()
    }

    #[test]
    fn round_robin_walks_members_across_shards_in_proportion() {
        let c = counts(&[(0, 1), (2, 2), (3, 1)]);
        let mut g = Group::new("g", "f");
        let picks: Vec<u16> = (0..8)
            .map(|_| {
                pick_shard(
                    SharedStrategy::RoundRobin,
                    &c,
                    &ShardSet::new(),
                    &mut g,
                    0,
                    0,
                )
            })
            .map(|s| s.map_or(99, |s| s.0))
            .collect();
        assert_eq!(picks, vec![0, 2, 2, 3, 0, 2, 2, 3]);
    }

    #[test]
    fn excluded_shards_are_skipped_and_none_when_all_are() {
        let c = counts(&[(0, 1), (1, 1)]);
        let mut g = Group::new("g", "f");
        let ex: ShardSet = [ShardId(0)].into_iter().collect();
        for r in 0..4 {
            let s = pick_shard(SharedStrategy::Random, &c, &ex, &mut g, r, 0);
            assert_eq!(s, Some(ShardId(1)));
        }
        let all: ShardSet = [ShardId(0), ShardId(1)].into_iter().collect();
        assert_eq!(
            pick_shard(SharedStrategy::Hash, &c, &all, &mut g, 0, 7),
            None
        );
    }

    #[test]
    fn sticky_keeps_its_shard_until_it_has_no_members() {
        let mut c = counts(&[(1, 1), (2, 1)]);
        let mut g = Group::new("g", "f");
        let none = ShardSet::new();
        for r in 0..5 {
            assert_eq!(
                pick_shard(SharedStrategy::Sticky, &c, &none, &mut g, r, 0),
                Some(ShardId(1))
            );
        }
        // A member joins on a lower shard: the choice stays.
        c = counts(&[(0, 1), (1, 1), (2, 1)]);
        assert_eq!(
            pick_shard(SharedStrategy::Sticky, &c, &none, &mut g, 0, 0),
            Some(ShardId(1))
        );
        c = counts(&[(0, 1), (2, 1)]);
        assert_eq!(
            pick_shard(SharedStrategy::Sticky, &c, &none, &mut g, 0, 0),
            Some(ShardId(0))
        );
    }

    #[test]
    fn state_keeps_one_entry_per_subscription_with_its_tag() {
        let mut st = SharedState::new(ShardId(0));
        st.group("g1", "x/#").next = 5;
        st.group("g2", "x/#").next = 7;
        assert_eq!(st.group("g1", "x/#").next, 5);
        let g = st.group("g2", "x/#");
        assert_eq!((&*g.tag.group, &*g.tag.filter, g.next), ("g2", "x/#", 7));
        st.forget("g1", "x/#");
        assert_eq!(st.group("g1", "x/#").next, 0, "state starts over");
    }
}
