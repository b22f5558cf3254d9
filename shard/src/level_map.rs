//! `LevelMap<N>`: the children of one trie node, keyed by topic level. Shared by the filter
//! trie (`topic_trie`) and the retained store (`retained`).
//!
//! Most nodes have no child or one (`devices/<id>/cmd` has a million nodes with exactly one
//! child each), and a hash table pays for at least four buckets plus its hasher state even
//! for one entry. So children live in an exactly-sized vector while there are few of them
//! (a linear scan of a few short strings also beats hashing), and in an ahash map once there
//! are many. The map holds boxed nodes: its buckets are allocated in powers of two, and
//! empty buckets then cost a pointer, not a whole node. It never panics and allocates only when the set of children changes.

use std::collections::HashMap;

type Map<N> = HashMap<Box<str>, Box<N>, ahash::RandomState>;

/// More children than this and the vector becomes a map.
const FEW_MAX: usize = 8;
/// Fewer than this and the map becomes a vector again (hysteresis against flapping).
const MANY_MIN: usize = FEW_MAX / 2;

#[derive(Default)]
pub(crate) enum LevelMap<N> {
    #[default]
    Empty,
    Few(Vec<(Box<str>, N)>),
    Many(Box<Map<N>>),
}

impl<N> LevelMap<N> {
    pub(crate) fn is_empty(&self) -> bool {
        matches!(self, LevelMap::Empty)
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        match self {
            LevelMap::Empty => 0,
            LevelMap::Few(v) => v.len(),
            LevelMap::Many(m) => m.len(),
        }
    }

    #[inline]
    pub(crate) fn get(&self, level: &str) -> Option<&N> {
        match self {
            LevelMap::Empty => None,
            LevelMap::Few(v) => v.iter().find(|(k, _)| &**k == level).map(|(_, n)| n),
            LevelMap::Many(m) => m.get(level).map(|n| &**n),
        }
    }

    pub(crate) fn get_mut(&mut self, level: &str) -> Option<&mut N> {
        match self {
            LevelMap::Empty => None,
            LevelMap::Few(v) => v.iter_mut().find(|(k, _)| &**k == level).map(|(_, n)| n),
            LevelMap::Many(m) => m.get_mut(level).map(|n| &mut **n),
        }
    }

    /// The child at `level`, created with `N::default()` when absent.
    pub(crate) fn get_or_insert_default(&mut self, level: &str) -> &mut N
    where
        N: Default,
    {
        if let LevelMap::Few(v) = self {
            if v.len() >= FEW_MAX && !v.iter().any(|(k, _)| &**k == level) {
                let few = std::mem::take(v).into_iter();
                let map: Map<N> = few.map(|(k, n)| (k, Box::new(n))).collect();
                *self = LevelMap::Many(Box::new(map));
            }
        }
        match self {
            LevelMap::Empty => {
                *self = LevelMap::Few(Vec::with_capacity(1));
                self.get_or_insert_default(level)
            }
            LevelMap::Few(v) => {
                let i = match v.iter().position(|(k, _)| &**k == level) {
                    Some(i) => i,
                    None => {
                        // Grow by exactly one: these vectors are small and numerous.
                        v.reserve_exact(1);
                        v.push((level.into(), N::default()));
                        v.len() - 1
                    }
                };
                &mut v[i].1
            }
            // `entry` needs an owned key even when the level exists; this is the insert path
            // (subscribe, retain), never the match path.
            LevelMap::Many(m) => m.entry(level.into()).or_default(),
        }
    }

    pub(crate) fn remove(&mut self, level: &str) -> Option<N> {
        let removed = match self {
            LevelMap::Empty => None,
            LevelMap::Few(v) => {
                let i = v.iter().position(|(k, _)| &**k == level)?;
                let (_, n) = v.swap_remove(i);
                v.shrink_to_fit();
                Some(n)
            }
            LevelMap::Many(m) => {
                let n = *m.remove(level)?;
                if m.capacity() > 64 && m.len() * 4 < m.capacity() {
                    // Give memory back after churn; below a quarter only, so the cost
                    // stays amortized O(1) per removal.
                    m.shrink_to_fit();
                }
                Some(n)
            }
        };
        match self {
            LevelMap::Few(v) if v.is_empty() => *self = LevelMap::Empty,
            LevelMap::Many(m) if m.len() < MANY_MIN => {
                let mut v: Vec<(Box<str>, N)> = Vec::with_capacity(m.len());
                v.extend(m.drain().map(|(k, n)| (k, *n)));
                *self = if v.is_empty() {
                    LevelMap::Empty
                } else {
                    LevelMap::Few(v)
                };
            }
            _ => {}
        }
        removed
    }

    pub(crate) fn iter(&self) -> Iter<'_, N> {
        match self {
            LevelMap::Empty => Iter::Few([].iter()),
            LevelMap::Few(v) => Iter::Few(v.iter()),
            LevelMap::Many(m) => Iter::Many(m.iter()),
        }
    }

    #[cfg(test)]
    pub(crate) fn values(&self) -> impl Iterator<Item = &N> {
        self.iter().map(|(_, n)| n)
    }
}

pub(crate) enum Iter<'a, N> {
    Few(std::slice::Iter<'a, (Box<str>, N)>),
    Many(std::collections::hash_map::Iter<'a, Box<str>, Box<N>>),
}

impl<'a, N> Iterator for Iter<'a, N> {
    type Item = (&'a str, &'a N);

    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        match self {
            Iter::Few(it) => it.next().map(|(k, n)| (&**k, n)),
            Iter::Many(it) => it.next().map(|(k, n)| (&**k, &**n)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_into_a_map_and_shrinks_back() {
        let mut m: LevelMap<u32> = LevelMap::default();
        assert!(m.is_empty());
        for i in 0..20u32 {
            *m.get_or_insert_default(&i.to_string()) += i;
            *m.get_or_insert_default(&i.to_string()) += 1;
            let many = matches!(m, LevelMap::Many(_));
            assert_eq!(many, i as usize >= FEW_MAX, "after {} children", i + 1);
        }
        assert_eq!(m.len(), 20);
        assert_eq!(m.get("7"), Some(&8));
        assert_eq!(m.get("20"), None);
        *m.get_mut("7").unwrap() = 70;
        let mut all: Vec<(String, u32)> = m.iter().map(|(k, v)| (k.to_string(), *v)).collect();
        all.sort_by_key(|(_, v)| *v);
        assert_eq!(all.len(), 20);
        assert_eq!(all[19], ("7".to_string(), 70));
        for i in 0..17u32 {
            assert!(m.remove(&i.to_string()).is_some());
            assert!(m.remove(&i.to_string()).is_none());
        }
        assert!(matches!(&m, LevelMap::Few(v) if v.len() == 3 && v.capacity() == 3));
        assert_eq!(m.values().copied().sum::<u32>(), 18 + 19 + 20);
        for i in 17..20u32 {
            assert_eq!(m.remove(&i.to_string()), Some(i + 1));
        }
        assert!(m.is_empty());
    }

    #[test]
    fn one_child_is_one_exact_allocation() {
        let mut m: LevelMap<u64> = LevelMap::default();
        *m.get_or_insert_default("cmd") = 1;
        assert!(matches!(&m, LevelMap::Few(v) if v.capacity() == 1));
        *m.get_or_insert_default("cmd") = 2;
        assert!(matches!(&m, LevelMap::Few(v) if v.capacity() == 1));
    }
}
