//! `TopicTrie<V>`: topic filters stored level by level, one `V` per filter, and the MQTT
//! matching walk that finds every stored filter matching a topic name (§4.7).
//!
//! It owns only the filter structure and its values; it serves both the local subscription
//! table (`subs`) and the route replica (`routes`). It never validates: callers pass filters
//! that `codec::topic::validate_filter` accepted and names that `validate_name` accepted. A `#`
//! that is not the last level (an invalid filter) is stored as a plain level named `#`, so
//! nothing panics on bad input. Matching never allocates.
//!
//! Shape of a node: `value` for the filter ending here, `hash` for `<here>/#` (a `#` is always
//! the last level, so it needs no node of its own; boxed, as few nodes have one), `plus` for
//! the `+` child and `children` for literal levels (a [`LevelMap`]: nothing on leaves, an
//! exact-size vector for a few children, a map for many). Empty nodes are pruned on removal,
//! so churn leaves no residue.
//!
//! Recursion depth is bounded by the depth of the stored filters (the broker caps levels with
//! `limits.max_topic_levels`), never by the length of the topic being matched.

use crate::level_map::LevelMap;

/// A map from topic filter to `V` with MQTT wildcard matching.
pub struct TopicTrie<V> {
    root: Node<V>,
    len: usize,
}

struct Node<V> {
    value: Option<V>,
    hash: Option<Box<V>>,
    plus: Option<Box<Node<V>>>,
    children: LevelMap<Node<V>>,
}

impl<V> Default for Node<V> {
    fn default() -> Self {
        Node {
            value: None,
            hash: None,
            plus: None,
            children: LevelMap::Empty,
        }
    }
}

impl<V> Node<V> {
    fn is_empty(&self) -> bool {
        self.value.is_none()
            && self.hash.is_none()
            && self.plus.is_none()
            && self.children.is_empty()
    }

    fn child(&self, level: &str) -> Option<&Node<V>> {
        if level == "+" {
            self.plus.as_deref()
        } else {
            self.children.get(level)
        }
    }

    fn child_mut(&mut self, level: &str) -> Option<&mut Node<V>> {
        if level == "+" {
            self.plus.as_deref_mut()
        } else {
            self.children.get_mut(level)
        }
    }

    #[cfg(test)]
    fn count_nodes(&self) -> usize {
        1 + self.plus.as_ref().map_or(0, |p| p.count_nodes())
            + self.children.values().map(Node::count_nodes).sum::<usize>()
    }
}

/// Splits off the first level: `"a/b/c"` → `("a", Some("b/c"))`, `"a"` → `("a", None)`,
/// `"a/"` → `("a", Some(""))` (an empty last level is a level).
#[inline]
fn split_level(s: &str) -> (&str, Option<&str>) {
    match s.split_once('/') {
        Some((level, rest)) => (level, Some(rest)),
        None => (s, None),
    }
}

impl<V> Default for TopicTrie<V> {
    fn default() -> Self {
        TopicTrie {
            root: Node::default(),
            len: 0,
        }
    }
}

impl<V> TopicTrie<V> {
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of stored filters.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The value stored for `filter`, inserting `make()` first when there is none.
    pub fn get_or_insert_with(&mut self, filter: &str, make: impl FnOnce() -> V) -> &mut V {
        let TopicTrie { root, len } = self;
        let mut node = root;
        let mut rest = Some(filter);
        while let Some(r) = rest {
            let (level, next) = split_level(r);
            if level == "#" && next.is_none() {
                if node.hash.is_none() {
                    *len += 1;
                }
                return node.hash.get_or_insert_with(|| Box::new(make()));
            }
            node = if level == "+" {
                node.plus.get_or_insert_with(Box::default)
            } else {
                node.children.get_or_insert_default(level)
            };
            rest = next;
        }
        if node.value.is_none() {
            *len += 1;
        }
        node.value.get_or_insert_with(make)
    }

    /// The value stored for `filter`, inserting `V::default()` first when there is none.
    pub fn entry(&mut self, filter: &str) -> &mut V
    where
        V: Default,
    {
        self.get_or_insert_with(filter, V::default)
    }

    pub fn get(&self, filter: &str) -> Option<&V> {
        let mut node = &self.root;
        let mut rest = Some(filter);
        while let Some(r) = rest {
            let (level, next) = split_level(r);
            if level == "#" && next.is_none() {
                return node.hash.as_deref();
            }
            node = node.child(level)?;
            rest = next;
        }
        node.value.as_ref()
    }

    pub fn get_mut(&mut self, filter: &str) -> Option<&mut V> {
        let mut node = &mut self.root;
        let mut rest = Some(filter);
        while let Some(r) = rest {
            let (level, next) = split_level(r);
            if level == "#" && next.is_none() {
                return node.hash.as_deref_mut();
            }
            node = node.child_mut(level)?;
            rest = next;
        }
        node.value.as_mut()
    }

    pub fn contains(&self, filter: &str) -> bool {
        self.get(filter).is_some()
    }

    /// Removes `filter`'s value and prunes the nodes left empty.
    pub fn remove(&mut self, filter: &str) -> Option<V> {
        let v = remove_rec(&mut self.root, Some(filter));
        if v.is_some() {
            self.len -= 1;
        }
        v
    }

    /// Calls `f` with the value of every stored filter that matches `topic` (a topic name,
    /// no wildcards). Each matching filter is visited once; the order is unspecified.
    ///
    /// `+` matches exactly one level, empty levels included; `#` matches the parent level and
    /// any number of levels below it (`a/#` matches `a`) [MQTT-4.7.1-2]; a name whose first
    /// level starts with `$` is not matched by a filter whose first level is a wildcard
    /// [MQTT-4.7.2-1].
    pub fn for_each_match<'a>(&'a self, topic: &str, mut f: impl FnMut(&'a V)) {
        let (first, rest) = split_level(topic);
        let root = &self.root;
        if !first.starts_with('$') {
            if let Some(v) = root.hash.as_deref() {
                f(v);
            }
            if let Some(p) = &root.plus {
                match_rec(p, rest, &mut f);
            }
        }
        if let Some(c) = root.children.get(first) {
            match_rec(c, rest, &mut f);
        }
    }

    /// Every stored `(filter, value)`, in no particular order. Allocates one `String` per
    /// filter; meant for persistence, resync and metrics, not for the publish path.
    pub fn iter(&self) -> Iter<'_, V> {
        Iter {
            stack: vec![(&self.root, None)],
            pending: Vec::new(),
        }
    }

    #[cfg(test)]
    fn node_count(&self) -> usize {
        self.root.count_nodes()
    }
}

/// `node` has matched every level before `rest`; `rest == None` means the topic is consumed.
fn match_rec<'a, V>(node: &'a Node<V>, rest: Option<&str>, f: &mut impl FnMut(&'a V)) {
    // `<here>/#` matches this level itself and anything below it.
    if let Some(v) = node.hash.as_deref() {
        f(v);
    }
    let Some(rest) = rest else {
        if let Some(v) = &node.value {
            f(v);
        }
        return;
    };
    let (level, next) = split_level(rest);
    if let Some(p) = &node.plus {
        match_rec(p, next, f);
    }
    if let Some(c) = node.children.get(level) {
        match_rec(c, next, f);
    }
}

fn remove_rec<V>(node: &mut Node<V>, rest: Option<&str>) -> Option<V> {
    let Some(rest) = rest else {
        return node.value.take();
    };
    let (level, next) = split_level(rest);
    if level == "#" && next.is_none() {
        return node.hash.take().map(|b| *b);
    }
    if level == "+" {
        let child = node.plus.as_deref_mut()?;
        let v = remove_rec(child, next);
        if child.is_empty() {
            node.plus = None;
        }
        return v;
    }
    let child = node.children.get_mut(level)?;
    let v = remove_rec(child, next);
    if child.is_empty() {
        node.children.remove(level);
    }
    v
}

/// Iterator over `(filter, &value)`; see [`TopicTrie::iter`].
pub struct Iter<'a, V> {
    /// Nodes still to visit with their path (`None` for the root, which has no path).
    stack: Vec<(&'a Node<V>, Option<String>)>,
    pending: Vec<(String, &'a V)>,
}

impl<'a, V> Iterator for Iter<'a, V> {
    type Item = (String, &'a V);

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(item) = self.pending.pop() {
                return Some(item);
            }
            let (node, path) = self.stack.pop()?;
            let join = |level: &str| match &path {
                None => level.to_owned(),
                Some(p) => format!("{p}/{level}"),
            };
            if let Some(p) = &node.plus {
                self.stack.push((p, Some(join("+"))));
            }
            for (level, c) in node.children.iter() {
                self.stack.push((c, Some(join(level))));
            }
            if let Some(v) = node.hash.as_deref() {
                self.pending.push((join("#"), v));
            }
            if let (Some(v), Some(p)) = (&node.value, path) {
                self.pending.push((p, v));
            }
        }
    }
}

/// Test helpers shared by every structure that matches topics.
#[cfg(test)]
pub(crate) mod oracle {
    use proptest::prelude::*;

    /// The reference matcher every structure is checked against.
    pub use codec::topic::matches;

    /// Filters over a tiny alphabet, so that random filters and names collide often.
    pub fn filter_strategy() -> impl Strategy<Value = String> {
        let level = prop::sample::select(vec!["a", "b", "", "$x", "+"]);
        (prop::collection::vec(level, 1..5), any::<bool>()).prop_map(|(levels, hash)| {
            let mut s = levels.join("/");
            if hash {
                s.push_str("/#");
            }
            if s == "/#" {
                s = "#".into();
            }
            s
        })
    }

    pub fn topic_strategy() -> impl Strategy<Value = String> {
        let level = prop::sample::select(vec!["a", "b", "", "$x"]);
        prop::collection::vec(level, 1..6).prop_map(|l| l.join("/"))
    }
}

#[cfg(test)]
mod tests {
    use super::oracle::*;
    use super::*;
    use proptest::prelude::*;
    use std::collections::{BTreeMap, BTreeSet};

    fn matched(trie: &TopicTrie<String>, topic: &str) -> Vec<String> {
        let mut v = Vec::new();
        trie.for_each_match(topic, |s| v.push(s.clone()));
        v.sort();
        v
    }

    fn trie_of(filters: &[&str]) -> TopicTrie<String> {
        let mut t = TopicTrie::new();
        for f in filters {
            *t.entry(f) = f.to_string();
        }
        t
    }

    #[test]
    fn spec_examples_multi_level() {
        // §4.7.1.2
        let t = trie_of(&["sport/tennis/player1/#", "sport/#", "#"]);
        assert_eq!(
            matched(&t, "sport/tennis/player1"),
            ["#", "sport/#", "sport/tennis/player1/#"]
        );
        assert_eq!(
            matched(&t, "sport/tennis/player1/score/wimbledon"),
            ["#", "sport/#", "sport/tennis/player1/#"]
        );
        assert_eq!(matched(&t, "sport"), ["#", "sport/#"]);
        assert_eq!(matched(&t, "other"), ["#"]);
    }

    #[test]
    fn spec_examples_single_level() {
        // §4.7.1.3
        let t = trie_of(&["sport/tennis/+", "sport/+", "+/+", "/+", "+"]);
        assert_eq!(matched(&t, "sport/tennis/player1"), ["sport/tennis/+"]);
        assert_eq!(
            matched(&t, "sport/tennis/player1/ranking"),
            Vec::<String>::new()
        );
        assert_eq!(matched(&t, "sport"), ["+"]);
        assert_eq!(matched(&t, "sport/"), ["+/+", "sport/+"]);
        assert_eq!(matched(&t, "/finance"), ["+/+", "/+"]);
    }

    #[test]
    fn dollar_topics_not_matched_by_leading_wildcards() {
        // §4.7.2, [MQTT-4.7.2-1]
        let t = trie_of(&["#", "+/monitor/Clients", "$SYS/#", "$SYS/monitor/+", "+"]);
        assert_eq!(
            matched(&t, "$SYS/monitor/Clients"),
            ["$SYS/#", "$SYS/monitor/+"]
        );
        assert_eq!(matched(&t, "$SYS"), ["$SYS/#"]);
        assert_eq!(
            matched(&t, "a$/monitor/Clients"),
            ["#", "+/monitor/Clients"]
        );
    }

    #[test]
    fn empty_levels_are_levels() {
        let t = trie_of(&["a//b", "a/+/b", "+", "/", "+/+", "a/#"]);
        assert_eq!(matched(&t, "a//b"), ["a/#", "a/+/b", "a//b"]);
        assert_eq!(matched(&t, "/"), ["+/+", "/"]);
        assert_eq!(matched(&t, ""), ["+"]);
    }

    #[test]
    fn get_insert_remove_and_len() {
        let mut t: TopicTrie<u32> = TopicTrie::new();
        assert!(t.is_empty());
        *t.entry("a/b") += 1;
        *t.entry("a/b") += 1;
        *t.entry("a/#") += 7;
        *t.get_or_insert_with("a/+", || 9) += 1;
        assert_eq!(t.len(), 3);
        assert_eq!(t.get("a/b"), Some(&2));
        assert_eq!(t.get("a/#"), Some(&7));
        assert_eq!(t.get("a/+"), Some(&10));
        assert_eq!(t.get("a"), None);
        assert_eq!(t.get("a/b/c"), None);
        *t.get_mut("a/#").unwrap() = 8;
        assert_eq!(t.get("a/#"), Some(&8));
        assert_eq!(t.remove("a/c"), None);
        assert_eq!(t.remove("a/b"), Some(2));
        assert_eq!(t.remove("a/b"), None);
        assert_eq!(t.len(), 2);
        assert_eq!(t.remove("a/#"), Some(8));
        assert_eq!(t.remove("a/+"), Some(10));
        assert!(t.is_empty());
        assert_eq!(t.node_count(), 1, "everything pruned back to the root");
    }

    #[test]
    fn misplaced_hash_is_a_plain_level() {
        let t = trie_of(&["a/#/b"]);
        assert_eq!(matched(&t, "a/x/b"), Vec::<String>::new());
        assert_eq!(matched(&t, "a/#/b"), ["a/#/b"]);
        assert_eq!(t.iter().map(|(f, _)| f).collect::<Vec<_>>(), ["a/#/b"]);
    }

    #[test]
    fn churn_leaves_no_nodes() {
        let mut t: TopicTrie<u32> = TopicTrie::new();
        for i in 0..10_000u32 {
            t.entry(&format!("dev/{}/+/x/{}", i % 100, i));
            t.entry(&format!("dev/{i}/#"));
        }
        assert_eq!(t.len(), 20_000);
        for i in 0..10_000u32 {
            assert!(t.remove(&format!("dev/{}/+/x/{}", i % 100, i)).is_some());
            assert!(t.remove(&format!("dev/{i}/#")).is_some());
        }
        assert_eq!(t.len(), 0);
        assert_eq!(t.node_count(), 1);
    }

    proptest! {
        #[test]
        fn matches_like_the_oracle(
            ops in prop::collection::vec((any::<bool>(), filter_strategy()), 0..60),
            topics in prop::collection::vec(topic_strategy(), 1..20),
        ) {
            let mut trie: TopicTrie<String> = TopicTrie::new();
            let mut model: BTreeMap<String, ()> = BTreeMap::new();
            for (insert, f) in &ops {
                if *insert {
                    *trie.entry(f) = f.clone();
                    model.insert(f.clone(), ());
                } else {
                    prop_assert_eq!(trie.remove(f).is_some(), model.remove(f).is_some());
                }
            }
            prop_assert_eq!(trie.len(), model.len());
            let listed: BTreeSet<String> = trie.iter().map(|(f, v)| { assert_eq!(&f, v); f }).collect();
            prop_assert_eq!(listed, model.keys().cloned().collect::<BTreeSet<_>>());
            for topic in &topics {
                let want: Vec<String> =
                    model.keys().filter(|f| matches(f, topic)).cloned().collect();
                prop_assert_eq!(matched(&trie, topic), want, "topic {:?}", topic);
            }
            for f in model.keys() {
                prop_assert!(trie.remove(f).is_some());
            }
            prop_assert_eq!(trie.node_count(), 1);
        }
    }
}
