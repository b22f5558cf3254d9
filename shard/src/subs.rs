//! `SubscriptionTable<K>`: this shard's local subscriptions, plain and shared, keyed by filter,
//! and the publish-side match that turns a topic name into one delivery per session.
//!
//! It owns the filter → subscribers map and nothing else: the session keeps its own list of
//! filters (for `remove_session`), the route table is told about first/last subscribers
//! through the returned outcomes, and picking a shared-group member is the caller's strategy.
//! Inputs are validated filters (`codec::topic`); nothing here panics or allocates per match
//! beyond the caller's reused `out` buffer.
//!
//! Overlapping subscriptions of one session yield ONE delivery at the highest granted QoS
//! [MQTT-3.3.5-1] carrying every matching Subscription Identifier [MQTT-3.3.4-4]; a No Local
//! subscription is skipped for its own publisher [MQTT-3.8.3-3]. Shared subscriptions are
//! never folded into those deliveries: each matching group gets its own copy (§4.8.2).

use crate::topic_trie::TopicTrie;
use codec::{QoS, RetainHandling};
use smallvec::SmallVec;
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::hash::Hash;
use std::num::NonZeroU32;

type Index<K> = HashMap<K, u32, ahash::RandomState>;

/// The options a subscription was granted with (§3.8.3.1). v3 subscriptions carry only `qos`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SubOptions {
    /// Maximum QoS granted for this subscription.
    pub qos: QoS,
    pub no_local: bool,
    pub retain_as_published: bool,
    pub retain_handling: RetainHandling,
    pub subscription_id: Option<NonZeroU32>,
}

impl SubOptions {
    /// Options of a v3 subscription (or a v5 one with default options).
    pub fn new(qos: QoS) -> Self {
        SubOptions {
            qos,
            ..Self::default()
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SubscribeOutcome {
    /// The same session already had this subscription; its options were replaced.
    pub existed_before: bool,
    /// The first local subscriber of this filter (or member of this group): routes must learn it.
    pub first_on_filter: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnsubscribeOutcome {
    /// The subscription existed (UNSUBACK 0x00 rather than 0x11 No subscription existed).
    pub existed: bool,
    /// It was the last local subscriber of the filter (or member of the group): routes must forget it.
    pub last_on_filter: bool,
}

/// Subscription identifiers of one delivery; two inline cover nearly every real case.
pub type SubIds = SmallVec<[NonZeroU32; 2]>;

/// One message copy for one session, merged over its overlapping subscriptions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery<K> {
    pub key: K,
    /// Highest QoS granted among the matching subscriptions; the caller still takes the
    /// minimum with the published QoS.
    pub qos: QoS,
    /// True when any matching subscription has Retain As Published.
    pub retain_as_published: bool,
    pub subscription_ids: SubIds,
}

impl<K> Delivery<K> {
    fn new(key: K, opts: &SubOptions) -> Self {
        Delivery {
            key,
            qos: opts.qos,
            retain_as_published: opts.retain_as_published,
            subscription_ids: opts.subscription_id.into_iter().collect(),
        }
    }

    fn merge(&mut self, opts: &SubOptions) {
        self.qos = self.qos.max(opts.qos);
        self.retain_as_published |= opts.retain_as_published;
        if let Some(id) = opts.subscription_id {
            self.subscription_ids.push(id);
        }
    }
}

/// A removed subscription reported by [`SubscriptionTable::remove_session`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RemovedSub<'s> {
    pub filter: &'s str,
    pub group: Option<&'s str>,
    pub last_on_filter: bool,
}

/// Subscribers of one filter (or one shared group), unique by key. A plain list while small;
/// an index is added once it grows, so 100k sessions on one filter stay O(1) per change.
struct Members<K> {
    list: Vec<(K, SubOptions)>,
    index: Option<Box<Index<K>>>,
}

/// Above this many members the list gets an index; below a quarter of it the index goes.
const INDEX_AT: usize = 32;

impl<K: Copy + Eq + Hash> Members<K> {
    fn new() -> Self {
        Members {
            list: Vec::new(),
            index: None,
        }
    }

    fn position(&self, key: K) -> Option<usize> {
        match &self.index {
            Some(ix) => ix.get(&key).map(|&i| i as usize),
            None => self.list.iter().position(|(k, _)| *k == key),
        }
    }

    /// Inserts or replaces; true when the key was already there.
    fn upsert(&mut self, key: K, opts: SubOptions) -> bool {
        if let Some(slot) = self.position(key).and_then(|i| self.list.get_mut(i)) {
            slot.1 = opts;
            return true;
        }
        if let Some(ix) = &mut self.index {
            ix.insert(key, self.list.len() as u32);
        }
        if self.list.len() < 4 {
            // Most filters have one subscriber: grow exactly while small instead of the
            // default first capacity of four.
            self.list.reserve_exact(1);
        }
        self.list.push((key, opts));
        if self.index.is_none() && self.list.len() > INDEX_AT {
            let ix = self
                .list
                .iter()
                .enumerate()
                .map(|(i, (k, _))| (*k, i as u32));
            self.index = Some(Box::new(ix.collect()));
        }
        false
    }

    fn remove(&mut self, key: K) -> bool {
        let Some(i) = self.position(key) else {
            return false;
        };
        self.list.swap_remove(i);
        if let Some(ix) = &mut self.index {
            ix.remove(&key);
            if let Some((moved, _)) = self.list.get(i) {
                ix.insert(*moved, i as u32);
            }
            if self.list.len() < INDEX_AT / 4 {
                self.index = None;
                self.list.shrink_to_fit();
            }
        }
        true
    }
}

/// One shared subscription `$share/{group}/{filter}` with its members on this shard.
pub struct SharedGroup<K> {
    group: Box<str>,
    filter: Box<str>,
    members: Members<K>,
    cursor: Cell<u32>,
}

impl<K: Copy + Eq + Hash> SharedGroup<K> {
    pub fn group(&self) -> &str {
        &self.group
    }

    pub fn filter(&self) -> &str {
        &self.filter
    }

    /// The local members and their options; never empty (empty groups are removed).
    pub fn members(&self) -> &[(K, SubOptions)] {
        &self.members.list
    }

    /// The next member in turn, for the `round_robin` strategy. The cursor lives here so the
    /// strategy needs no map lookup per message.
    pub fn next_round_robin(&self) -> Option<&(K, SubOptions)> {
        let n = self.members.list.len();
        if n == 0 {
            return None;
        }
        let i = self.cursor.get() as usize % n;
        self.cursor.set(((i + 1) % n) as u32);
        self.members.list.get(i)
    }
}

/// Everything subscribed to one filter on this shard. Shared groups are rare, so their list
/// is boxed: every trie node carries an `Option<FilterEntry>` inline.
struct FilterEntry<K> {
    subs: Members<K>,
    // 8 bytes instead of a 24-byte `Vec` in every node of the trie.
    #[allow(clippy::box_collection)]
    shared: Option<Box<Vec<SharedGroup<K>>>>,
}

impl<K> Default for FilterEntry<K> {
    fn default() -> Self {
        FilterEntry {
            subs: Members {
                list: Vec::new(),
                index: None,
            },
            shared: None,
        }
    }
}

impl<K> FilterEntry<K> {
    fn is_empty(&self) -> bool {
        self.subs.list.is_empty() && self.shared.is_none()
    }

    fn groups(&self) -> &[SharedGroup<K>] {
        self.shared.as_deref().map_or(&[], |v| v.as_slice())
    }
}

/// Above this many deliveries, deduplication switches from a linear scan of `out` to the
/// scratch index; below it a scan of a few cache lines beats hashing.
const LINEAR_DEDUPE: usize = 16;

/// This shard's subscriptions. `K` is the session key (`Copy`, cheap to compare).
pub struct SubscriptionTable<K> {
    trie: TopicTrie<FilterEntry<K>>,
    subscriptions: usize,
    shared_members: usize,
    /// Reused by `match_topic` for deduplication; a `RefCell` because matching takes `&self`.
    /// It is only borrowed inside `match_topic`, which calls no foreign code, so it is never
    /// borrowed twice.
    scratch: RefCell<Index<K>>,
}

impl<K: Copy + Eq + Hash> Default for SubscriptionTable<K> {
    fn default() -> Self {
        SubscriptionTable {
            trie: TopicTrie::new(),
            subscriptions: 0,
            shared_members: 0,
            scratch: RefCell::new(Index::default()),
        }
    }
}

impl<K: Copy + Eq + Hash> SubscriptionTable<K> {
    pub fn new() -> Self {
        Self::default()
    }

    /// Plain (non-shared) subscriptions, all sessions together.
    pub fn subscription_count(&self) -> usize {
        self.subscriptions
    }

    /// Shared-group memberships, all groups together.
    pub fn shared_member_count(&self) -> usize {
        self.shared_members
    }

    /// Distinct filters with at least one plain subscriber or shared group.
    pub fn filter_count(&self) -> usize {
        self.trie.len()
    }

    /// Subscribes `key` to `filter`, replacing the options if it already was [MQTT-3.8.4-3].
    pub fn subscribe(&mut self, key: K, filter: &str, opts: SubOptions) -> SubscribeOutcome {
        let entry = self.trie.entry(filter);
        let first_on_filter = entry.subs.list.is_empty();
        let existed_before = entry.subs.upsert(key, opts);
        if !existed_before {
            self.subscriptions += 1;
        }
        SubscribeOutcome {
            existed_before,
            first_on_filter,
        }
    }

    pub fn unsubscribe(&mut self, key: K, filter: &str) -> UnsubscribeOutcome {
        let mut out = UnsubscribeOutcome {
            existed: false,
            last_on_filter: false,
        };
        let Some(entry) = self.trie.get_mut(filter) else {
            return out;
        };
        out.existed = entry.subs.remove(key);
        out.last_on_filter = out.existed && entry.subs.list.is_empty();
        let empty = entry.is_empty();
        if out.existed {
            self.subscriptions -= 1;
        }
        if empty {
            self.trie.remove(filter);
        }
        out
    }

    /// The options of `key`'s plain subscription to `filter`.
    pub fn get(&self, key: K, filter: &str) -> Option<&SubOptions> {
        let subs = &self.trie.get(filter)?.subs;
        subs.position(key)
            .and_then(|i| subs.list.get(i))
            .map(|(_, o)| o)
    }

    /// Adds `key` to `$share/{group}/{filter}`; `first_on_filter` means the group gained its
    /// first member on this shard.
    pub fn subscribe_shared(
        &mut self,
        key: K,
        group: &str,
        filter: &str,
        opts: SubOptions,
    ) -> SubscribeOutcome {
        let groups = self
            .trie
            .entry(filter)
            .shared
            .get_or_insert_with(Box::default);
        let g = match groups.iter().position(|g| &*g.group == group) {
            Some(i) => &mut groups[i],
            None => {
                groups.push(SharedGroup {
                    group: group.into(),
                    filter: filter.into(),
                    members: Members::new(),
                    cursor: Cell::new(0),
                });
                let last = groups.len() - 1;
                &mut groups[last]
            }
        };
        let first_on_filter = g.members.list.is_empty();
        let existed_before = g.members.upsert(key, opts);
        if !existed_before {
            self.shared_members += 1;
        }
        SubscribeOutcome {
            existed_before,
            first_on_filter,
        }
    }

    pub fn unsubscribe_shared(&mut self, key: K, group: &str, filter: &str) -> UnsubscribeOutcome {
        let mut out = UnsubscribeOutcome {
            existed: false,
            last_on_filter: false,
        };
        let Some(entry) = self.trie.get_mut(filter) else {
            return out;
        };
        let Some(groups) = entry.shared.as_deref_mut() else {
            return out;
        };
        let Some(i) = groups.iter().position(|g| &*g.group == group) else {
            return out;
        };
        let members = &mut groups[i].members;
        out.existed = members.remove(key);
        if members.list.is_empty() {
            out.last_on_filter = out.existed;
            groups.swap_remove(i);
            if groups.is_empty() {
                entry.shared = None;
            }
        }
        let empty = entry.is_empty();
        if out.existed {
            self.shared_members -= 1;
        }
        if empty {
            self.trie.remove(filter);
        }
        out
    }

    /// The group `$share/{group}/{filter}` on this shard, if it has members here.
    pub fn shared_group(&self, group: &str, filter: &str) -> Option<&SharedGroup<K>> {
        let entry = self.trie.get(filter)?;
        entry.groups().iter().find(|g| &*g.group == group)
    }

    /// Removes every subscription of a session that is going away. `subs` is the session's
    /// own list of `(filter, group)`; the removals that happened are returned, with
    /// `last_on_filter` telling which need a route update.
    pub fn remove_session<'s>(
        &mut self,
        key: K,
        subs: impl IntoIterator<Item = (&'s str, Option<&'s str>)>,
    ) -> Vec<RemovedSub<'s>> {
        let mut removed = Vec::new();
        for (filter, group) in subs {
            let o = match group {
                Some(g) => self.unsubscribe_shared(key, g, filter),
                None => self.unsubscribe(key, filter),
            };
            if o.existed {
                removed.push(RemovedSub {
                    filter,
                    group,
                    last_on_filter: o.last_on_filter,
                });
            }
        }
        removed
    }

    /// Fills `out` (cleared first) with one [`Delivery`] per session whose plain subscriptions
    /// match `topic`. `publisher` is the publishing session when it is local, for No Local.
    pub fn match_topic(&self, topic: &str, publisher: Option<K>, out: &mut Vec<Delivery<K>>) {
        out.clear();
        // Only when the scratch index is busy: `default()` seeds a hasher (~1% per publish).
        let mut fallback: Option<Index<K>> = None;
        let mut guard = self.scratch.try_borrow_mut();
        let index: &mut Index<K> = match &mut guard {
            Ok(g) => g,
            Err(_) => fallback.get_or_insert_with(Index::default),
        };
        index.clear();
        let mut indexed = false;
        let mut entries = 0usize;
        self.trie.for_each_match(topic, |entry| {
            if entry.subs.list.is_empty() {
                return;
            }
            entries += 1;
            for (key, opts) in &entry.subs.list {
                if opts.no_local && Some(*key) == publisher {
                    continue;
                }
                if entries == 1 {
                    // Keys are unique within one filter: no deduplication needed yet.
                    out.push(Delivery::new(*key, opts));
                    continue;
                }
                if !indexed && out.len() > LINEAR_DEDUPE {
                    index.extend(out.iter().enumerate().map(|(i, d)| (d.key, i as u32)));
                    indexed = true;
                }
                let found = if indexed {
                    index.get(key).map(|&i| i as usize)
                } else {
                    out.iter().position(|d| d.key == *key)
                };
                match found.and_then(|i| out.get_mut(i)) {
                    Some(d) => d.merge(opts),
                    None => {
                        if indexed {
                            index.insert(*key, out.len() as u32);
                        }
                        out.push(Delivery::new(*key, opts));
                    }
                }
            }
        });
    }

    /// Calls `f` once per shared group whose filter matches `topic`; the caller picks one
    /// member with its strategy (or forwards to another shard's members).
    pub fn match_shared<'a>(&'a self, topic: &str, mut f: impl FnMut(&'a SharedGroup<K>)) {
        self.trie.for_each_match(topic, |entry| {
            for g in entry.groups() {
                f(g);
            }
        });
    }

    /// Every filter with local interest: `(filter, has plain subscribers, shared groups)`.
    /// For re-announcing routes (e.g. after a restart); allocates one `String` per filter.
    pub fn for_each_filter(&self, mut f: impl FnMut(&str, bool, &[SharedGroup<K>])) {
        for (filter, entry) in self.trie.iter() {
            f(&filter, !entry.subs.list.is_empty(), entry.groups());
        }
    }
}

#[cfg(test)]
#[path = "subs_tests.rs"]
mod tests;
