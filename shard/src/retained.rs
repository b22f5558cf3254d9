//! `RetainedStore<V>`: this shard's partition of the retained messages (topic T lives on
//! `retained_shard(T)`), stored in a trie of topic levels so a subscribe can find its
//! retained messages without scanning: an exact filter is a walk down one path, `+` visits
//! the children of one level, `#` visits one subtree.
//!
//! It owns the messages of its partition and their accounting (count, bytes) against the
//! `[retained]` limits. It never validates names or filters (the caller does, with
//! `codec::topic`) and never sends anything. Recursion depth is bounded by the number of
//! levels of the stored topics, which the broker caps with `limits.max_topic_levels`.

use crate::level_map::LevelMap;
use thiserror::Error;

/// How many bytes a retained message accounts for, beyond its topic (which the store adds).
/// Count the payload and the properties kept with it.
pub trait RetainedSize {
    fn retained_bytes(&self) -> usize;
}

impl RetainedSize for bytes::Bytes {
    fn retained_bytes(&self) -> usize {
        self.len()
    }
}

impl<T: RetainedSize + ?Sized> RetainedSize for std::sync::Arc<T> {
    fn retained_bytes(&self) -> usize {
        (**self).retained_bytes()
    }
}

impl<T: RetainedSize + ?Sized> RetainedSize for std::rc::Rc<T> {
    fn retained_bytes(&self) -> usize {
        (**self).retained_bytes()
    }
}

/// Why a retained message was not stored. The publish itself still goes to subscribers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum RetainedError {
    #[error("retained store full: {max} messages (raise retained.max_messages)")]
    TooManyMessages { max: usize },
    #[error("retained store full: {max} bytes (raise retained.max_bytes)")]
    TooManyBytes { max: usize },
}

/// The `[retained]` limits, applied per shard partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetainedLimits {
    pub max_messages: usize,
    pub max_bytes: usize,
}

impl RetainedLimits {
    pub const UNLIMITED: RetainedLimits = RetainedLimits {
        max_messages: usize::MAX,
        max_bytes: usize::MAX,
    };
}

struct Node<V> {
    /// The message and the bytes it was accounted with (kept so removal subtracts exactly
    /// what was added).
    value: Option<(V, usize)>,
    children: LevelMap<Node<V>>,
}

impl<V> Default for Node<V> {
    fn default() -> Self {
        Node {
            value: None,
            children: LevelMap::Empty,
        }
    }
}

impl<V> Node<V> {
    fn is_empty(&self) -> bool {
        self.value.is_none() && self.children.is_empty()
    }
}

#[inline]
fn split_level(s: &str) -> (&str, Option<&str>) {
    match s.split_once('/') {
        Some((level, rest)) => (level, Some(rest)),
        None => (s, None),
    }
}

/// Retained messages of one shard, keyed by topic name.
pub struct RetainedStore<V> {
    root: Node<V>,
    len: usize,
    total_bytes: usize,
    limits: RetainedLimits,
}

impl<V> RetainedStore<V> {
    pub fn new(limits: RetainedLimits) -> Self {
        RetainedStore {
            root: Node::default(),
            len: 0,
            total_bytes: 0,
            limits,
        }
    }

    /// New limits apply to later `set`s; what is stored stays.
    pub fn set_limits(&mut self, limits: RetainedLimits) {
        self.limits = limits;
    }

    pub fn limits(&self) -> RetainedLimits {
        self.limits
    }

    /// Number of retained messages.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Bytes accounted: for each message its topic length plus `retained_bytes()`.
    pub fn total_bytes(&self) -> usize {
        self.total_bytes
    }

    fn find(&self, topic: &str) -> Option<&Node<V>> {
        let mut node = &self.root;
        let mut rest = Some(topic);
        while let Some(r) = rest {
            let (level, next) = split_level(r);
            node = node.children.get(level)?;
            rest = next;
        }
        Some(node)
    }

    pub fn get(&self, topic: &str) -> Option<&V> {
        self.find(topic)?.value.as_ref().map(|(v, _)| v)
    }

    /// Stores (`Some`) or deletes (`None`, from an empty retained payload [MQTT-3.3.1-6])
    /// the retained message of `topic`, returning the one it replaced. A new topic that would
    /// pass `max_messages` or `max_bytes` is refused and nothing changes; replacing a message
    /// with one no larger is always accepted, so a full store can still be updated.
    pub fn set(&mut self, topic: &str, value: Option<V>) -> Result<Option<V>, RetainedError>
    where
        V: RetainedSize,
    {
        let Some(value) = value else {
            return Ok(self.remove(topic));
        };
        let size = topic.len().saturating_add(value.retained_bytes());
        let old_size = self.find(topic).and_then(|n| n.value.as_ref()).map(|v| v.1);
        match old_size {
            Some(old) => {
                let after = self.total_bytes - old;
                if size > old && after.saturating_add(size) > self.limits.max_bytes {
                    return Err(RetainedError::TooManyBytes {
                        max: self.limits.max_bytes,
                    });
                }
            }
            None => {
                if self.len >= self.limits.max_messages {
                    return Err(RetainedError::TooManyMessages {
                        max: self.limits.max_messages,
                    });
                }
                if self.total_bytes.saturating_add(size) > self.limits.max_bytes {
                    return Err(RetainedError::TooManyBytes {
                        max: self.limits.max_bytes,
                    });
                }
            }
        }
        let mut node = &mut self.root;
        let mut rest = Some(topic);
        while let Some(r) = rest {
            let (level, next) = split_level(r);
            node = node.children.get_or_insert_default(level);
            rest = next;
        }
        let old = node.value.replace((value, size));
        match &old {
            Some((_, old_size)) => self.total_bytes = self.total_bytes - old_size + size,
            None => {
                self.len += 1;
                self.total_bytes += size;
            }
        }
        Ok(old.map(|(v, _)| v))
    }

    fn remove(&mut self, topic: &str) -> Option<V> {
        let (v, size) = remove_rec(&mut self.root, Some(topic))?;
        self.len -= 1;
        self.total_bytes -= size;
        Some(v)
    }

    /// Calls `f(topic, message)` for every retained message whose topic matches `filter`
    /// (§4.7; names starting with `$` are not matched by a leading wildcard [MQTT-4.7.2-1]).
    /// Allocates a path buffer (and, for `#`, a work stack) per call, nothing per message.
    pub fn for_each_matching(&self, filter: &str, mut f: impl FnMut(&str, &V)) {
        let mut path = String::new();
        walk(&self.root, filter, true, &mut path, &mut f);
    }

    /// Every `(topic, message)`, in no particular order: persistence and $SYS use it.
    /// Allocates one `String` per message.
    pub fn iter(&self) -> Iter<'_, V> {
        Iter {
            stack: vec![(&self.root, None)],
        }
    }
}

/// Appends one level to the path being built (`at_root`: the path is still empty).
fn push_level(path: &mut String, at_root: bool, level: &str) {
    if !at_root {
        path.push('/');
    }
    path.push_str(level);
}

/// `node` is reached by `path`; `rest` is what is left of the filter (at least one level).
fn walk<V>(
    node: &Node<V>,
    rest: &str,
    at_root: bool,
    path: &mut String,
    f: &mut impl FnMut(&str, &V),
) {
    #[cfg(test)]
    tests::count_visit();
    let (level, next) = split_level(rest);
    if level == "#" && next.is_none() {
        // `#` matches the parent level too (`a/#` matches `a`), but at the root there is no parent.
        if !at_root {
            if let Some((v, _)) = &node.value {
                f(path, v);
            }
        }
        visit_below(node, at_root, path, f);
        return;
    }
    let children = &node.children;
    let base = path.len();
    let mut step = |name: &str, child: &Node<V>, path: &mut String| {
        push_level(path, at_root, name);
        match next {
            Some(next) => walk(child, next, false, path, f),
            None => {
                if let Some((v, _)) = &child.value {
                    f(path, v);
                }
            }
        }
        path.truncate(base);
    };
    if level == "+" {
        for (name, child) in children.iter() {
            if !(at_root && name.starts_with('$')) {
                step(name, child, path);
            }
        }
    } else if let Some(child) = children.get(level) {
        step(level, child, path);
    }
}

/// Every message strictly below `node`, iteratively: a `#` may cover the whole store, and
/// the stack lives on the heap rather than the thread's stack.
fn visit_below<V>(node: &Node<V>, at_root: bool, path: &mut String, f: &mut impl FnMut(&str, &V)) {
    let base = path.len();
    let mut stack = Vec::new();
    push_children(&mut stack, node, base, at_root);
    while let Some((n, parent_len, name, parent_is_root)) = stack.pop() {
        path.truncate(parent_len);
        push_level(path, parent_is_root, name);
        #[cfg(test)]
        tests::count_visit();
        if let Some((v, _)) = &n.value {
            f(path, v);
        }
        push_children(&mut stack, n, path.len(), false);
    }
    path.truncate(base);
}

/// Pending nodes of `visit_below`: (node, length of its parent's path, its level, whether
/// the parent is the root). The path is rebuilt by truncating to the parent's length.
type Pending<'a, V> = Vec<(&'a Node<V>, usize, &'a str, bool)>;

fn push_children<'a, V>(
    stack: &mut Pending<'a, V>,
    n: &'a Node<V>,
    parent_len: usize,
    at_root: bool,
) {
    for (name, child) in n.children.iter() {
        if !(at_root && name.starts_with('$')) {
            stack.push((child, parent_len, name, at_root));
        }
    }
}

fn remove_rec<V>(node: &mut Node<V>, rest: Option<&str>) -> Option<(V, usize)> {
    let Some(rest) = rest else {
        return node.value.take();
    };
    let (level, next) = split_level(rest);
    let child = node.children.get_mut(level)?;
    let v = remove_rec(child, next);
    if child.is_empty() {
        node.children.remove(level);
    }
    v
}

/// Iterator over `(topic, &message)`; see [`RetainedStore::iter`].
pub struct Iter<'a, V> {
    stack: Vec<(&'a Node<V>, Option<String>)>,
}

impl<'a, V> Iterator for Iter<'a, V> {
    type Item = (String, &'a V);

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let (node, path) = self.stack.pop()?;
            for (name, child) in node.children.iter() {
                let p = match &path {
                    None => name.to_string(),
                    Some(p) => format!("{p}/{name}"),
                };
                self.stack.push((child, Some(p)));
            }
            if let (Some((v, _)), Some(p)) = (&node.value, path) {
                return Some((p, v));
            }
        }
    }
}

#[cfg(test)]
#[path = "retained_tests.rs"]
mod tests;
