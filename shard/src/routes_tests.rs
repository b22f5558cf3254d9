//! Tests of `ShardSet` and `RouteTable`: set operations, idempotent updates, pruning,
//! shared-group counts, and a model-based proptest against codec::topic::matches.

use super::*;
use crate::topic_trie::oracle::{filter_strategy, matches, topic_strategy};
use proptest::prelude::*;
use std::collections::{BTreeMap, BTreeSet};

fn ids(set: &ShardSet) -> Vec<u16> {
    set.iter().map(|s| s.0).collect()
}

#[test]
fn shard_set_operations() {
    let mut s = ShardSet::new();
    assert!(s.is_empty());
    assert!(s.insert(ShardId(3)));
    assert!(!s.insert(ShardId(3)));
    assert!(s.insert(ShardId(255)));
    assert!(s.insert(ShardId(64)));
    assert!(s.insert(ShardId(0)));
    assert!(!s.insert(ShardId(256)), "past MAX_SHARDS is ignored");
    assert!(!s.contains(ShardId(256)));
    assert!(!s.remove(ShardId(300)));
    assert_eq!(ids(&s), [0, 3, 64, 255]);
    assert_eq!(s.len(), 4);
    assert!(s.contains(ShardId(64)) && !s.contains(ShardId(65)));
    assert!(s.remove(ShardId(64)));
    assert!(!s.remove(ShardId(64)));
    let other: ShardSet = [ShardId(1), ShardId(3), ShardId(130)].into_iter().collect();
    let u = s.union(&other);
    assert_eq!(ids(&u), [0, 1, 3, 130, 255]);
    assert_eq!(format!("{u:?}"), "{0, 1, 3, 130, 255}");
    let mut c = u;
    c.clear();
    assert!(c.is_empty());
    assert_eq!((&u).into_iter().count(), 5);
}

#[test]
fn routes_are_idempotent_and_pruned() {
    let mut r = RouteTable::new();
    r.add("a/+", ShardId(1));
    r.add("a/+", ShardId(1));
    r.add("a/+", ShardId(2));
    r.add("a/#", ShardId(3));
    r.add("$SYS/#", ShardId(0));
    r.add("#", ShardId(4));
    assert_eq!(r.len(), 4);
    let mut out = ShardSet::new();
    out.insert(ShardId(9)); // must be cleared
    r.match_topic("a/b", &mut out);
    assert_eq!(ids(&out), [1, 2, 3, 4]);
    r.match_topic("a", &mut out);
    assert_eq!(ids(&out), [3, 4]);
    r.match_topic("$SYS/uptime", &mut out);
    assert_eq!(ids(&out), [0]);
    r.remove("a/+", ShardId(1));
    r.remove("a/+", ShardId(1));
    r.remove("never", ShardId(1));
    assert_eq!(r.shards_of("a/+").map(ids), Some(vec![2]));
    r.remove("a/+", ShardId(2));
    assert_eq!(r.shards_of("a/+"), None);
    for (f, s) in [("a/#", 3), ("$SYS/#", 0), ("#", 4)] {
        r.remove(f, ShardId(s));
    }
    assert!(r.is_empty());
    r.match_topic("a/b", &mut out);
    assert!(out.is_empty());
}

#[test]
fn shared_routes() {
    let mut r = RouteTable::new();
    assert!(r.shared_set("g", "a/+", ShardId(2), 3));
    assert!(
        !r.shared_set("g", "a/+", ShardId(2), 3),
        "re-sent update changes nothing"
    );
    assert!(r.shared_set("g", "a/+", ShardId(0), 1));
    assert!(r.shared_add("g", "a/+", ShardId(5), 2));
    assert!(r.shared_set("h", "a/#", ShardId(1), 1));
    assert_eq!(r.shared_len(), 2);
    let c = r.shared_counts("g", "a/+").unwrap();
    assert_eq!(
        c.iter().collect::<Vec<_>>(),
        [(ShardId(0), 1), (ShardId(2), 3), (ShardId(5), 2)]
    );
    assert_eq!(c.total(), 6);
    assert_eq!(c.get(ShardId(2)), 3);
    assert_eq!(c.get(ShardId(3)), 0);
    assert_eq!(ids(&c.shards()), [0, 2, 5]);
    let picks: Vec<_> = (0..7).map(|n| c.nth_member(n).map(|s| s.0)).collect();
    assert_eq!(
        picks,
        [Some(0), Some(2), Some(2), Some(2), Some(5), Some(5), None]
    );

    let mut seen = vec![];
    r.match_shared("a/x", |g| {
        seen.push((
            g.group().to_string(),
            g.filter().to_string(),
            g.counts().total(),
        ))
    });
    seen.sort();
    assert_eq!(
        seen,
        [
            ("g".to_string(), "a/+".to_string(), 6),
            ("h".to_string(), "a/#".to_string(), 1)
        ]
    );
    let mut n = 0;
    r.match_shared("$SYS/x", |_| n += 1);
    r.match_shared("b", |_| n += 1);
    assert_eq!(n, 0);

    assert!(r.shared_add("g", "a/+", ShardId(5), -7));
    assert!(!r.shared_set("g", "a/+", ShardId(5), 0));
    assert!(!r.shared_set("zz", "a/+", ShardId(5), 0));
    assert!(r.shared_set("g", "a/+", ShardId(2), 0));
    assert!(r.shared_set("g", "a/+", ShardId(0), 0));
    assert_eq!(r.shared_counts("g", "a/+"), None);
    assert!(r.shared_set("h", "a/#", ShardId(1), 0));
    assert_eq!(r.shared_len(), 0);
    assert!(r.is_empty());
}

proptest! {
    #[test]
    fn matches_like_the_model(
        ops in prop::collection::vec((any::<bool>(), filter_strategy(), 0..8u16, 1..3usize), 0..120),
        topics in prop::collection::vec(topic_strategy(), 1..20),
    ) {
        let mut r = RouteTable::new();
        let mut model: BTreeMap<String, BTreeSet<u16>> = BTreeMap::new();
        for (add, f, s, times) in &ops {
            // Route messages may be re-sent: apply each update once or twice.
            for _ in 0..*times {
                if *add {
                    r.add(f, ShardId(*s));
                } else {
                    r.remove(f, ShardId(*s));
                }
            }
            if *add {
                model.entry(f.clone()).or_default().insert(*s);
            } else if let Some(set) = model.get_mut(f) {
                set.remove(s);
                if set.is_empty() {
                    model.remove(f);
                }
            }
        }
        prop_assert_eq!(r.len(), model.len());
        let mut out = ShardSet::new();
        for topic in &topics {
            let want: BTreeSet<u16> = model
                .iter()
                .filter(|(f, _)| matches(f, topic))
                .flat_map(|(_, s)| s.iter().copied())
                .collect();
            r.match_topic(topic, &mut out);
            prop_assert_eq!(ids(&out), want.into_iter().collect::<Vec<_>>(), "topic {:?}", topic);
        }
    }
}
