//! Tests of `SubscriptionTable`: outcomes of every change, merged deliveries, No Local,
//! shared groups, session removal, and a model-based proptest against codec::topic::matches.

use super::*;
use crate::topic_trie::oracle::{filter_strategy, matches, topic_strategy};
use proptest::prelude::*;
use std::collections::BTreeMap;

fn id(n: u32) -> Option<NonZeroU32> {
    NonZeroU32::new(n)
}

fn opts(qos: u8, sub_id: u32) -> SubOptions {
    SubOptions {
        qos: QoS::from_u8(qos).unwrap(),
        subscription_id: id(sub_id),
        ..SubOptions::default()
    }
}

/// Deliveries sorted by key with sorted ids, for exact comparison.
fn matched(t: &SubscriptionTable<u32>, topic: &str, publisher: Option<u32>) -> Vec<Delivery<u32>> {
    let mut out = vec![Delivery::new(999, &SubOptions::default())]; // must be cleared
    t.match_topic(topic, publisher, &mut out);
    for d in &mut out {
        d.subscription_ids.sort();
    }
    out.sort_by_key(|d| d.key);
    out
}

fn delivery(key: u32, qos: u8, rap: bool, ids: &[u32]) -> Delivery<u32> {
    Delivery {
        key,
        qos: QoS::from_u8(qos).unwrap(),
        retain_as_published: rap,
        subscription_ids: ids.iter().map(|&i| NonZeroU32::new(i).unwrap()).collect(),
    }
}

const NEW_FIRST: SubscribeOutcome = SubscribeOutcome {
    existed_before: false,
    first_on_filter: true,
};
const NEW: SubscribeOutcome = SubscribeOutcome {
    existed_before: false,
    first_on_filter: false,
};
const REPLACED: SubscribeOutcome = SubscribeOutcome {
    existed_before: true,
    first_on_filter: false,
};
const GONE_LAST: UnsubscribeOutcome = UnsubscribeOutcome {
    existed: true,
    last_on_filter: true,
};
const GONE: UnsubscribeOutcome = UnsubscribeOutcome {
    existed: true,
    last_on_filter: false,
};
const NONE: UnsubscribeOutcome = UnsubscribeOutcome {
    existed: false,
    last_on_filter: false,
};

#[test]
fn subscribe_and_unsubscribe_outcomes() {
    let mut t = SubscriptionTable::new();
    assert_eq!(t.subscribe(1, "a/+", opts(0, 0)), NEW_FIRST);
    assert_eq!(t.subscribe(2, "a/+", opts(1, 0)), NEW);
    assert_eq!(t.subscribe(1, "a/+", opts(2, 0)), REPLACED);
    assert_eq!(t.get(1, "a/+").map(|o| o.qos), Some(QoS::ExactlyOnce));
    assert_eq!(t.subscription_count(), 2);
    assert_eq!(t.filter_count(), 1);
    assert_eq!(t.unsubscribe(3, "a/+"), NONE);
    assert_eq!(t.unsubscribe(1, "x"), NONE);
    assert_eq!(t.unsubscribe(1, "a/+"), GONE);
    assert_eq!(t.unsubscribe(1, "a/+"), NONE);
    assert_eq!(t.unsubscribe(2, "a/+"), GONE_LAST);
    assert_eq!(t.subscription_count(), 0);
    assert_eq!(t.filter_count(), 0);
    assert_eq!(t.subscribe(2, "a/+", opts(1, 0)), NEW_FIRST);
}

#[test]
fn overlapping_subscriptions_give_one_copy_at_highest_qos() {
    // [MQTT-3.3.5-1], [MQTT-3.3.4-4]
    let mut t = SubscriptionTable::new();
    t.subscribe(1, "a/+", opts(1, 5));
    t.subscribe(1, "a/#", opts(2, 7));
    t.subscribe(
        1,
        "#",
        SubOptions {
            retain_as_published: true,
            ..opts(0, 0)
        },
    );
    t.subscribe(2, "a/b", opts(0, 9));
    t.subscribe(3, "a/c", opts(2, 0));
    assert_eq!(
        matched(&t, "a/b", None),
        [delivery(1, 2, true, &[5, 7]), delivery(2, 0, false, &[9])]
    );
    assert_eq!(matched(&t, "b", None), [delivery(1, 0, true, &[])]);
    assert_eq!(matched(&t, "$SYS/x", None), []);
}

#[test]
fn no_local_skips_only_the_publishers_no_local_subscriptions() {
    // [MQTT-3.8.3-3]
    let no_local = |qos, sub_id| SubOptions {
        no_local: true,
        ..opts(qos, sub_id)
    };
    let mut t = SubscriptionTable::new();
    t.subscribe(1, "chat/+", no_local(1, 1));
    t.subscribe(2, "chat/+", no_local(1, 2));
    assert_eq!(
        matched(&t, "chat/x", Some(1)),
        [delivery(2, 1, false, &[2])]
    );
    assert_eq!(
        matched(&t, "chat/x", None),
        [delivery(1, 1, false, &[1]), delivery(2, 1, false, &[2])]
    );
    // A second, ordinary subscription of the publisher still delivers, with its own options.
    t.subscribe(1, "chat/#", opts(0, 3));
    assert_eq!(
        matched(&t, "chat/x", Some(1)),
        [delivery(1, 0, false, &[3]), delivery(2, 1, false, &[2])]
    );
}

#[test]
fn many_sessions_on_overlapping_filters_are_deduplicated() {
    // Past LINEAR_DEDUPE and INDEX_AT: the indexed paths.
    let mut t = SubscriptionTable::new();
    for k in 0..500 {
        t.subscribe(k, "s/+", opts(0, 1));
        if k % 2 == 0 {
            t.subscribe(k, "s/#", opts(1, 2));
        }
        if k % 3 == 0 {
            t.subscribe(k, "s/x", opts(2, 3));
        }
    }
    for k in (0..500).filter(|k| k % 5 == 0) {
        assert_eq!(t.unsubscribe(k, "s/+"), GONE);
    }
    let got = matched(&t, "s/x", None);
    let want: Vec<_> = (0..500)
        .filter_map(|k| {
            let mut ids = vec![];
            let mut qos = 0;
            if k % 5 != 0 {
                ids.push(1);
            }
            if k % 2 == 0 {
                ids.push(2);
                qos = 1;
            }
            if k % 3 == 0 {
                ids.push(3);
                qos = 2;
            }
            (!ids.is_empty()).then(|| delivery(k, qos, false, &ids))
        })
        .collect();
    assert_eq!(got, want);
}

#[test]
fn shared_groups() {
    let mut t = SubscriptionTable::new();
    assert_eq!(t.subscribe_shared(1, "g", "a/+", opts(1, 0)), NEW_FIRST);
    assert_eq!(t.subscribe_shared(2, "g", "a/+", opts(1, 0)), NEW);
    assert_eq!(t.subscribe_shared(2, "g", "a/+", opts(2, 0)), REPLACED);
    assert_eq!(t.subscribe_shared(3, "h", "a/+", opts(0, 0)), NEW_FIRST);
    assert_eq!(t.subscribe(4, "a/+", opts(0, 0)), NEW_FIRST);
    assert_eq!(t.shared_member_count(), 3);
    assert_eq!(t.subscription_count(), 1);

    let mut seen = vec![];
    t.match_shared("a/b", |g| {
        seen.push((
            g.group().to_string(),
            g.filter().to_string(),
            g.members().to_vec(),
        ))
    });
    seen.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        seen,
        [
            (
                "g".into(),
                "a/+".into(),
                vec![(1, opts(1, 0)), (2, opts(2, 0))]
            ),
            ("h".into(), "a/+".into(), vec![(3, opts(0, 0))]),
        ]
    );
    // Shared groups are not plain deliveries.
    assert_eq!(matched(&t, "a/b", None), [delivery(4, 0, false, &[])]);

    let g = t.shared_group("g", "a/+").unwrap();
    let turns: Vec<u32> = (0..5).map(|_| g.next_round_robin().unwrap().0).collect();
    assert_eq!(turns, [1, 2, 1, 2, 1]);

    assert_eq!(t.unsubscribe_shared(1, "h", "a/+"), NONE);
    assert_eq!(t.unsubscribe_shared(1, "g", "a/+"), GONE);
    assert_eq!(t.unsubscribe_shared(2, "g", "a/+"), GONE_LAST);
    assert!(t.shared_group("g", "a/+").is_none());
    assert_eq!(t.unsubscribe_shared(3, "h", "a/+"), GONE_LAST);
    assert_eq!(t.filter_count(), 1, "the plain subscriber keeps the filter");
    assert_eq!(t.unsubscribe(4, "a/+"), GONE_LAST);
    assert_eq!(t.filter_count(), 0);
    assert_eq!(t.shared_member_count(), 0);
}

#[test]
fn remove_session_reports_what_was_removed() {
    let mut t = SubscriptionTable::new();
    t.subscribe(1, "a", opts(0, 0));
    t.subscribe(2, "a", opts(0, 0));
    t.subscribe(1, "b/#", opts(1, 0));
    t.subscribe_shared(1, "g", "c", opts(1, 0));
    let list = [
        ("a", None),
        ("b/#", None),
        ("c", Some("g")),
        ("never", None),
    ];
    let removed = t.remove_session(1, list);
    assert_eq!(
        removed,
        [
            RemovedSub {
                filter: "a",
                group: None,
                last_on_filter: false
            },
            RemovedSub {
                filter: "b/#",
                group: None,
                last_on_filter: true
            },
            RemovedSub {
                filter: "c",
                group: Some("g"),
                last_on_filter: true
            },
        ]
    );
    assert_eq!(t.subscription_count(), 1);
    assert_eq!(t.filter_count(), 1);
    let mut filters = vec![];
    t.for_each_filter(|f, plain, groups| filters.push((f.to_string(), plain, groups.len())));
    assert_eq!(filters, [("a".to_string(), true, 0)]);
}

#[derive(Debug, Clone)]
enum Op {
    Sub(u32, String, u8, bool, u32),
    Unsub(u32, String),
}

/// Random filters, or a few hot ones so that filters gain enough members to be indexed.
fn some_filter() -> impl Strategy<Value = String> {
    let hot = prop::sample::select(vec!["a/+", "a/#", "#", "a/b", "+/b"]).prop_map(String::from);
    prop_oneof![1 => filter_strategy(), 3 => hot]
}

fn op_strategy() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (0..100u32, some_filter(), 0..3u8, any::<bool>(), 0..4u32)
            .prop_map(|(k, f, q, nl, i)| Op::Sub(k, f, q, nl, i)),
        2 => (0..100u32, some_filter()).prop_map(|(k, f)| Op::Unsub(k, f)),
    ]
}

proptest! {
    #[test]
    fn matches_like_the_model(
        ops in prop::collection::vec(op_strategy(), 0..1000),
        topics in prop::collection::vec((topic_strategy(), prop::option::of(0..100u32)), 1..10),
    ) {
        let mut t = SubscriptionTable::new();
        let mut model: BTreeMap<(u32, String), SubOptions> = BTreeMap::new();
        for op in &ops {
            match op {
                Op::Sub(k, f, q, nl, i) => {
                    let o = SubOptions { no_local: *nl, ..opts(*q, *i) };
                    let first = !model.keys().any(|(_, mf)| mf == f);
                    let existed = model.insert((*k, f.clone()), o).is_some();
                    prop_assert_eq!(
                        t.subscribe(*k, f, o),
                        SubscribeOutcome { existed_before: existed, first_on_filter: first }
                    );
                }
                Op::Unsub(k, f) => {
                    let existed = model.remove(&(*k, f.clone())).is_some();
                    let last = existed && !model.keys().any(|(_, mf)| mf == f);
                    prop_assert_eq!(
                        t.unsubscribe(*k, f),
                        UnsubscribeOutcome { existed, last_on_filter: last }
                    );
                }
            }
        }
        prop_assert_eq!(t.subscription_count(), model.len());
        for (topic, publisher) in &topics {
            let mut want: BTreeMap<u32, Delivery<u32>> = BTreeMap::new();
            for ((k, f), o) in &model {
                if !matches(f, topic) || (o.no_local && Some(*k) == *publisher) {
                    continue;
                }
                match want.get_mut(k) {
                    Some(d) => d.merge(o),
                    None => { want.insert(*k, Delivery::new(*k, o)); }
                }
            }
            let want: Vec<_> = want.into_values().map(|mut d| { d.subscription_ids.sort(); d }).collect();
            prop_assert_eq!(matched(&t, topic, *publisher), want, "topic {:?}", topic);
        }
    }
}
