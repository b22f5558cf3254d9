//! `RouteTable`: this shard's replica of the broker-wide routes, `filter -> set of shards`
//! with local subscribers, plus `(group, filter) -> members per shard` for shared
//! subscriptions; and `ShardSet`, the fixed bitset of shards a publish goes to.
//!
//! It owns only the replica. Updates arrive as route messages from the shards that gained
//! or lost interest (and from this shard itself); they may be re-sent, so every update is
//! idempotent: adding a present route or removing an absent one changes nothing, and shared
//! member counts are set to absolute values. It never sends anything and never allocates
//! while matching.

use crate::ids::ShardId;
use crate::topic_trie::TopicTrie;

/// The most shards a `ShardSet` can name.
pub const MAX_SHARDS: usize = 256;

/// A set of shards, `0..MAX_SHARDS`, as a fixed bitset: copying and merging cost four words.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct ShardSet([u64; MAX_SHARDS / 64]);

impl ShardSet {
    pub const fn new() -> Self {
        ShardSet([0; MAX_SHARDS / 64])
    }

    /// Word and bit of a shard, or `None` past `MAX_SHARDS`.
    #[inline]
    fn locate(shard: ShardId) -> Option<(usize, u64)> {
        let i = shard.index();
        (i < MAX_SHARDS).then(|| (i / 64, 1u64 << (i % 64)))
    }

    /// Adds `shard`; true when it was not there. A shard id past `MAX_SHARDS` is not
    /// representable and is ignored (false); the broker refuses more shards at start-up.
    pub fn insert(&mut self, shard: ShardId) -> bool {
        let Some((w, bit)) = Self::locate(shard) else {
            return false;
        };
        let word = &mut self.0[w];
        let added = *word & bit == 0;
        *word |= bit;
        added
    }

    /// Removes `shard`; true when it was there.
    pub fn remove(&mut self, shard: ShardId) -> bool {
        let Some((w, bit)) = Self::locate(shard) else {
            return false;
        };
        let word = &mut self.0[w];
        let had = *word & bit != 0;
        *word &= !bit;
        had
    }

    pub fn contains(&self, shard: ShardId) -> bool {
        Self::locate(shard).is_some_and(|(w, bit)| self.0[w] & bit != 0)
    }

    pub fn is_empty(&self) -> bool {
        self.0.iter().all(|&w| w == 0)
    }

    pub fn len(&self) -> usize {
        self.0.iter().map(|w| w.count_ones() as usize).sum()
    }

    pub fn clear(&mut self) {
        self.0 = [0; MAX_SHARDS / 64];
    }

    /// Adds every shard of `other` to `self`.
    pub fn union_with(&mut self, other: &ShardSet) {
        for (a, b) in self.0.iter_mut().zip(other.0.iter()) {
            *a |= b;
        }
    }

    pub fn union(mut self, other: &ShardSet) -> ShardSet {
        self.union_with(other);
        self
    }

    /// The shards in ascending order.
    pub fn iter(&self) -> ShardSetIter {
        ShardSetIter {
            words: self.0,
            word: 0,
        }
    }
}

impl std::fmt::Debug for ShardSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.iter().map(|s| s.0)).finish()
    }
}

impl FromIterator<ShardId> for ShardSet {
    fn from_iter<I: IntoIterator<Item = ShardId>>(iter: I) -> Self {
        let mut s = ShardSet::new();
        for id in iter {
            s.insert(id);
        }
        s
    }
}

impl IntoIterator for &ShardSet {
    type Item = ShardId;
    type IntoIter = ShardSetIter;
    fn into_iter(self) -> ShardSetIter {
        self.iter()
    }
}

/// Iterator over a [`ShardSet`], lowest shard first.
pub struct ShardSetIter {
    words: [u64; MAX_SHARDS / 64],
    word: usize,
}

impl Iterator for ShardSetIter {
    type Item = ShardId;

    fn next(&mut self) -> Option<ShardId> {
        while let Some(w) = self.words.get_mut(self.word) {
            if *w != 0 {
                let bit = w.trailing_zeros() as usize;
                *w &= *w - 1; // clear the lowest set bit
                return Some(ShardId((self.word * 64 + bit) as u16));
            }
            self.word += 1;
        }
        None
    }
}

/// Members of one shared group per shard: sorted by shard, no zero counts.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ShardCounts {
    counts: Vec<(ShardId, u32)>,
    total: u64,
}

impl ShardCounts {
    /// Sets `shard`'s count (0 removes it); true when it changed.
    fn set(&mut self, shard: ShardId, members: u32) -> bool {
        match self.counts.binary_search_by_key(&shard, |&(s, _)| s) {
            Ok(i) => {
                let old = self.counts[i].1;
                if members == 0 {
                    self.counts.remove(i);
                } else {
                    self.counts[i].1 = members;
                }
                self.total = self.total - u64::from(old) + u64::from(members);
                old != members
            }
            Err(i) => {
                if members != 0 {
                    self.counts.insert(i, (shard, members));
                    self.total += u64::from(members);
                }
                members != 0
            }
        }
    }

    /// Members on `shard`.
    pub fn get(&self, shard: ShardId) -> u32 {
        self.counts
            .binary_search_by_key(&shard, |&(s, _)| s)
            .map_or(0, |i| self.counts[i].1)
    }

    /// Members on all shards together.
    pub fn total(&self) -> u64 {
        self.total
    }

    pub fn is_empty(&self) -> bool {
        self.counts.is_empty()
    }

    /// `(shard, members)` in ascending shard order.
    pub fn iter(&self) -> impl Iterator<Item = (ShardId, u32)> + '_ {
        self.counts.iter().copied()
    }

    pub fn shards(&self) -> ShardSet {
        self.counts.iter().map(|&(s, _)| s).collect()
    }

    /// The shard holding member number `n` (`0..total()`) when members are numbered shard by
    /// shard: `nth_member(r % total())` picks a shard in proportion to its members, which
    /// makes `random` and `hash` strategies fair across shards.
    pub fn nth_member(&self, n: u64) -> Option<ShardId> {
        let mut left = n;
        for &(shard, c) in &self.counts {
            if left < u64::from(c) {
                return Some(shard);
            }
            left -= u64::from(c);
        }
        None
    }
}

/// One shared subscription `$share/{group}/{filter}` as every shard sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SharedRoute {
    group: Box<str>,
    filter: Box<str>,
    counts: ShardCounts,
}

impl SharedRoute {
    pub fn group(&self) -> &str {
        &self.group
    }
    pub fn filter(&self) -> &str {
        &self.filter
    }
    pub fn counts(&self) -> &ShardCounts {
        &self.counts
    }
}

/// This shard's replica of the routes; see the module documentation.
#[derive(Default)]
pub struct RouteTable {
    routes: TopicTrie<ShardSet>,
    shared: TopicTrie<Vec<SharedRoute>>,
    /// Number of `SharedRoute`s in `shared`, for metrics.
    shared_len: usize,
}

impl RouteTable {
    pub fn new() -> Self {
        Self::default()
    }

    /// Filters with at least one shard.
    pub fn len(&self) -> usize {
        self.routes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.routes.is_empty() && self.shared.is_empty()
    }

    /// Records that `shard` has local subscribers of `filter`. Idempotent.
    pub fn add(&mut self, filter: &str, shard: ShardId) {
        self.routes.entry(filter).insert(shard);
    }

    /// Records that `shard` has no more local subscribers of `filter`. Idempotent; the
    /// filter is dropped with its last shard.
    pub fn remove(&mut self, filter: &str, shard: ShardId) {
        if let Some(set) = self.routes.get_mut(filter) {
            set.remove(shard);
            if set.is_empty() {
                self.routes.remove(filter);
            }
        }
    }

    /// The shards with subscribers of exactly `filter`.
    pub fn shards_of(&self, filter: &str) -> Option<&ShardSet> {
        self.routes.get(filter)
    }

    /// Sets `out` (cleared first) to the shards with a subscription matching `topic`.
    pub fn match_topic(&self, topic: &str, out: &mut ShardSet) {
        out.clear();
        self.routes.for_each_match(topic, |set| out.union_with(set));
    }

    /// Sets the number of members `shard` has in `$share/{group}/{filter}` (0: none).
    /// Absolute, hence idempotent; returns whether anything changed.
    pub fn shared_set(&mut self, group: &str, filter: &str, shard: ShardId, members: u32) -> bool {
        if members == 0 {
            let Some(groups) = self.shared.get_mut(filter) else {
                return false;
            };
            let Some(i) = groups.iter().position(|g| &*g.group == group) else {
                return false;
            };
            let changed = groups[i].counts.set(shard, 0);
            if groups[i].counts.is_empty() {
                groups.swap_remove(i);
                self.shared_len -= 1;
            }
            if groups.is_empty() {
                self.shared.remove(filter);
            }
            return changed;
        }
        let groups = self.shared.entry(filter);
        let i = match groups.iter().position(|g| &*g.group == group) {
            Some(i) => i,
            None => {
                groups.push(SharedRoute {
                    group: group.into(),
                    filter: filter.into(),
                    counts: ShardCounts::default(),
                });
                self.shared_len += 1;
                groups.len() - 1
            }
        };
        groups[i].counts.set(shard, members)
    }

    /// Changes `shard`'s member count by `delta`, saturating at 0 and `u32::MAX`. Not
    /// idempotent: prefer `shared_set` for messages that may be re-sent.
    pub fn shared_add(&mut self, group: &str, filter: &str, shard: ShardId, delta: i64) -> bool {
        let now = self
            .shared_counts(group, filter)
            .map_or(0, |c| c.get(shard));
        let next = (i64::from(now) + delta).clamp(0, i64::from(u32::MAX)) as u32;
        self.shared_set(group, filter, shard, next)
    }

    pub fn shared_counts(&self, group: &str, filter: &str) -> Option<&ShardCounts> {
        let groups = self.shared.get(filter)?;
        groups
            .iter()
            .find(|g| &*g.group == group)
            .map(|g| &g.counts)
    }

    /// Calls `f` for every shared subscription whose filter matches `topic`; the caller picks
    /// a shard (e.g. `counts().nth_member(..)`), which then picks a member.
    pub fn match_shared<'a>(&'a self, topic: &str, mut f: impl FnMut(&'a SharedRoute)) {
        self.shared.for_each_match(topic, |groups| {
            for g in groups {
                f(g);
            }
        });
    }

    /// Shared subscriptions known, all groups and filters.
    pub fn shared_len(&self) -> usize {
        self.shared_len
    }
}

#[cfg(test)]
#[path = "routes_tests.rs"]
mod tests;
