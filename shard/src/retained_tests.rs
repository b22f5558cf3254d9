//! Tests of `RetainedStore`: accounting, limits, matching rules, that exact and `+` filters
//! do not scan, and a model-based proptest against codec::topic::matches.

use super::*;
use crate::topic_trie::oracle::{filter_strategy, matches, topic_strategy};
use proptest::prelude::*;
use std::cell::Cell;
use std::collections::BTreeMap;

thread_local! {
    static VISITS: Cell<usize> = const { Cell::new(0) };
}

/// Called by the walk for every node it touches (test builds only).
pub(super) fn count_visit() {
    VISITS.with(|v| v.set(v.get() + 1));
}

fn visits_during(f: impl FnOnce()) -> usize {
    VISITS.with(|v| v.set(0));
    f();
    VISITS.with(|v| v.get())
}

/// A stand-in message: an id and a payload size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct M(u32, usize);

impl RetainedSize for M {
    fn retained_bytes(&self) -> usize {
        self.1
    }
}

fn store() -> RetainedStore<M> {
    RetainedStore::new(RetainedLimits::UNLIMITED)
}

fn matching(s: &RetainedStore<M>, filter: &str) -> Vec<(String, u32)> {
    let mut v = Vec::new();
    s.for_each_matching(filter, |t, m| v.push((t.to_string(), m.0)));
    v.sort();
    v
}

fn pairs(items: &[(&str, u32)]) -> Vec<(String, u32)> {
    items.iter().map(|(t, i)| (t.to_string(), *i)).collect()
}

#[test]
fn set_replace_delete_and_accounting() {
    let mut s = store();
    assert_eq!(s.set("a/b", Some(M(1, 10))), Ok(None));
    assert_eq!(s.set("a", Some(M(2, 5))), Ok(None));
    assert_eq!((s.len(), s.total_bytes()), (2, 3 + 10 + 1 + 5));
    assert_eq!(s.set("a/b", Some(M(3, 20))), Ok(Some(M(1, 10))));
    assert_eq!((s.len(), s.total_bytes()), (2, 3 + 20 + 1 + 5));
    assert_eq!(s.get("a/b"), Some(&M(3, 20)));
    assert_eq!(s.get("a/b/c"), None);
    assert_eq!(s.set("a/b", None), Ok(Some(M(3, 20))));
    assert_eq!(s.set("a/b", None), Ok(None));
    assert_eq!(s.set("nothing", None), Ok(None));
    assert_eq!((s.len(), s.total_bytes()), (1, 1 + 5));
    assert_eq!(s.get("a"), Some(&M(2, 5)));
    assert_eq!(s.set("a", None), Ok(Some(M(2, 5))));
    assert!(s.is_empty());
    assert_eq!(s.total_bytes(), 0);
    assert!(s.root.is_empty(), "all nodes pruned");
}

#[test]
fn limits_refuse_new_topics_but_allow_shrinking_replacements() {
    let mut s = RetainedStore::new(RetainedLimits {
        max_messages: 2,
        max_bytes: 100,
    });
    assert_eq!(s.set("t1", Some(M(1, 40))), Ok(None)); // 42 bytes
    assert_eq!(
        s.set("t2", Some(M(2, 57))),
        Err(RetainedError::TooManyBytes { max: 100 })
    );
    assert_eq!(s.set("t2", Some(M(2, 56))), Ok(None)); // 58: exactly 100
    assert_eq!(s.total_bytes(), 100);
    assert_eq!(
        s.set("t3", Some(M(3, 0))),
        Err(RetainedError::TooManyMessages { max: 2 })
    );
    assert_eq!(
        s.set("t1", Some(M(4, 41))),
        Err(RetainedError::TooManyBytes { max: 100 })
    );
    assert_eq!(
        s.get("t1"),
        Some(&M(1, 40)),
        "a refused set changes nothing"
    );
    assert_eq!(s.set("t1", Some(M(5, 40))), Ok(Some(M(1, 40))));
    // Lowered limits: the store is now over them, yet replacing with smaller still works.
    s.set_limits(RetainedLimits {
        max_messages: 1,
        max_bytes: 10,
    });
    assert_eq!(s.set("t1", Some(M(6, 30))), Ok(Some(M(5, 40))));
    assert_eq!(
        s.set("t1", Some(M(7, 31))),
        Err(RetainedError::TooManyBytes { max: 10 })
    );
    assert_eq!(s.set("t2", None), Ok(Some(M(2, 56))));
    assert_eq!((s.len(), s.total_bytes()), (1, 32));
    assert_eq!(
        RetainedError::TooManyMessages { max: 2 }.to_string(),
        "retained store full: 2 messages (raise retained.max_messages)"
    );
}

#[test]
fn matching_rules() {
    let mut s = store();
    for (i, t) in [
        "a", "a/b", "a/b/c", "a//c", "a/", "$SYS/up", "$SYS", "b", "/x",
    ]
    .iter()
    .enumerate()
    {
        s.set(t, Some(M(i as u32, 1))).unwrap();
    }
    assert_eq!(
        matching(&s, "#"),
        pairs(&[
            ("/x", 8),
            ("a", 0),
            ("a/", 4),
            ("a//c", 3),
            ("a/b", 1),
            ("a/b/c", 2),
            ("b", 7)
        ])
    );
    assert_eq!(
        matching(&s, "a/#"),
        pairs(&[("a", 0), ("a/", 4), ("a//c", 3), ("a/b", 1), ("a/b/c", 2)])
    );
    assert_eq!(matching(&s, "a/+"), pairs(&[("a/", 4), ("a/b", 1)]));
    assert_eq!(matching(&s, "a/+/c"), pairs(&[("a//c", 3), ("a/b/c", 2)]));
    assert_eq!(matching(&s, "+"), pairs(&[("a", 0), ("b", 7)]));
    assert_eq!(
        matching(&s, "+/+"),
        pairs(&[("/x", 8), ("a/", 4), ("a/b", 1)])
    );
    assert_eq!(
        matching(&s, "$SYS/#"),
        pairs(&[("$SYS", 6), ("$SYS/up", 5)])
    );
    assert_eq!(matching(&s, "$SYS/+"), pairs(&[("$SYS/up", 5)]));
    assert_eq!(matching(&s, "a/b"), pairs(&[("a/b", 1)]));
    assert_eq!(matching(&s, "a/b/c/d"), pairs(&[]));
}

#[test]
fn hash_over_100k_topics_and_exact_filters_do_not_scan() {
    let mut s = store();
    for i in 0..100_000u32 {
        let t = format!("site/{}/dev/{}", i % 100, i);
        s.set(&t, Some(M(i, 8))).unwrap();
    }
    assert_eq!(s.len(), 100_000);
    let mut n = 0;
    let all = visits_during(|| s.for_each_matching("#", |_, _| n += 1));
    assert_eq!(n, 100_000);
    assert!(all >= 100_000);

    let mut got = Vec::new();
    let exact = visits_during(|| {
        s.for_each_matching("site/7/dev/4207", |t, m| got.push((t.to_string(), m.0)))
    });
    assert_eq!(got, [("site/7/dev/4207".to_string(), 4207)]);
    assert!(exact <= 4, "exact filter visited {exact} nodes");

    let mut n = 0;
    let plus = visits_during(|| s.for_each_matching("site/+/dev/4207", |_, _| n += 1));
    assert_eq!(n, 1);
    assert!(
        plus <= 1 + 1 + 100 + 100,
        "one level scanned, got {plus} visits"
    );

    let mut n = 0;
    let sub = visits_during(|| s.for_each_matching("site/3/#", |_, _| n += 1));
    assert_eq!(n, 1000);
    assert!(sub <= 2 + 1 + 1000 + 1, "one subtree, got {sub} visits");
}

#[test]
fn iter_lists_every_message() {
    let mut s = store();
    s.set("x/y", Some(M(1, 0))).unwrap();
    s.set("x", Some(M(2, 0))).unwrap();
    s.set("", Some(M(3, 0))).unwrap();
    let mut all: Vec<(String, u32)> = s.iter().map(|(t, m)| (t, m.0)).collect();
    all.sort();
    assert_eq!(all, pairs(&[("", 3), ("x", 2), ("x/y", 1)]));
}

proptest! {
    #[test]
    fn matches_like_the_model(
        ops in prop::collection::vec((topic_strategy(), prop::option::of(0..50usize)), 0..80),
        filters in prop::collection::vec(filter_strategy(), 1..20),
    ) {
        let mut s = store();
        let mut model: BTreeMap<String, M> = BTreeMap::new();
        for (i, (topic, size)) in ops.iter().enumerate() {
            let v = size.map(|sz| M(i as u32, sz));
            let old = match v {
                Some(v) => model.insert(topic.clone(), v),
                None => model.remove(topic),
            };
            prop_assert_eq!(s.set(topic, v), Ok(old));
        }
        prop_assert_eq!(s.len(), model.len());
        let bytes: usize = model.iter().map(|(t, m)| t.len() + m.1).sum();
        prop_assert_eq!(s.total_bytes(), bytes);
        let mut listed: Vec<(String, u32)> = s.iter().map(|(t, m)| (t, m.0)).collect();
        listed.sort();
        let want_all: Vec<(String, u32)> = model.iter().map(|(t, m)| (t.clone(), m.0)).collect();
        prop_assert_eq!(listed, want_all);
        for filter in &filters {
            let want: Vec<(String, u32)> = model
                .iter()
                .filter(|(t, _)| matches(filter, t))
                .map(|(t, m)| (t.clone(), m.0))
                .collect();
            prop_assert_eq!(matching(&s, filter), want, "filter {:?}", filter);
        }
    }
}
