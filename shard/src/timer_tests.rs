//! Tests of `TimerWheel` on a virtual clock: exact firing times, far-future deadlines,
//! many items, and a model-based proptest (fires exactly the due items, in deadline order,
//! and `next_deadline` is never late).

use super::*;
use proptest::prelude::*;

/// Steps the clock from one `next_deadline` to the next until the wheel is empty, recording
/// `(wheel time, item)` for every item handed out and counting wake-ups.
fn run_to_empty<T>(w: &mut TimerWheel<T>) -> (Vec<(u64, T)>, usize) {
    let mut fired = Vec::new();
    let mut out = Vec::new();
    let mut wakeups = 0;
    while let Some(t) = w.next_deadline() {
        assert!(
            t >= w.now() || !w.due.is_empty(),
            "next_deadline in the past"
        );
        wakeups += 1;
        w.advance(t, &mut out);
        let now = w.now();
        fired.extend(out.drain(..).map(|i| (now, i)));
    }
    (fired, wakeups)
}

#[test]
fn fires_exactly_at_deadline() {
    let mut w = TimerWheel::new(1000);
    assert_eq!(w.next_deadline(), None);
    w.insert(1001, 'a');
    w.insert(1064, 'b');
    w.insert(1065, 'c');
    w.insert(5000, 'd');
    assert_eq!(w.len(), 4);
    let mut out = Vec::new();
    w.advance(1000, &mut out);
    assert_eq!(out, []);
    assert_eq!(w.next_deadline(), Some(1001));
    w.advance(1063, &mut out);
    assert_eq!(out, ['a']);
    w.advance(1064, &mut out);
    assert_eq!(out, ['a', 'b']);
    out.clear();
    w.advance(4999, &mut out);
    assert_eq!(out, ['c']);
    assert_eq!(w.next_deadline(), Some(5000));
    out.clear();
    w.advance(5000, &mut out);
    assert_eq!(out, ['d']);
    assert!(w.is_empty());
    assert_eq!(w.next_deadline(), None);
}

#[test]
fn past_deadlines_fire_on_next_advance() {
    let mut w = TimerWheel::new(100);
    w.insert(50, 1);
    w.insert(100, 2);
    w.insert(101, 3);
    assert_eq!(w.next_deadline(), Some(50));
    let mut out = Vec::new();
    w.advance(90, &mut out); // earlier than the wheel's time: only the due items
    assert_eq!(out, [1, 2]);
    assert_eq!(w.now(), 100);
    assert_eq!(w.next_deadline(), Some(101));
    w.advance(101, &mut out);
    assert_eq!(out, [1, 2, 3]);
}

#[test]
fn far_future_deadlines() {
    let max_session = u64::from(u32::MAX) * 1000; // Session Expiry 0xFFFFFFFF s, in ms
    let start = 1_700_000_000_000; // a wall-clock-like start
    let mut w = TimerWheel::new(start);
    w.insert(start + max_session, 1);
    w.insert(u64::MAX, 2);
    w.insert(start + 1, 3);
    let mut out = Vec::new();
    w.advance(start + max_session - 1, &mut out);
    assert_eq!(out, [3]);
    let nd = w.next_deadline().unwrap();
    assert!(nd <= start + max_session);
    w.advance(start + max_session, &mut out);
    assert_eq!(out, [3, 1]);
    w.advance(u64::MAX - 1, &mut out);
    assert_eq!(out, [3, 1]);
    assert!(w.next_deadline().is_some());
    w.advance(u64::MAX, &mut out);
    assert_eq!(out, [3, 1, 2]);
    assert!(w.is_empty());
}

#[test]
fn stepping_by_next_deadline_fires_each_item_at_its_deadline() {
    let mut w = TimerWheel::new(0);
    // Deadlines spread over every level, with duplicates.
    let mut deadlines: Vec<u64> = Vec::new();
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    for i in 0..5000u64 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let d = (x >> (i % 60)).saturating_add(1);
        deadlines.push(d);
        w.insert(d, d);
    }
    let (fired, wakeups) = run_to_empty(&mut w);
    assert_eq!(fired.len(), 5000);
    assert!(
        fired.iter().all(|(t, d)| t == d),
        "every item fires exactly at its deadline"
    );
    assert!(fired.windows(2).all(|p| p[0].0 <= p[1].0));
    assert!(wakeups <= 5000 * LEVELS, "{wakeups} wake-ups");
}

#[test]
fn a_million_keepalives() {
    // One million connections with keepalives of 1..=90 s, all advanced at once and then
    // tick by tick: everything fires once, at the right tick.
    let mut w = TimerWheel::new(0);
    for i in 0..1_000_000u64 {
        w.insert(1000 * (1 + i % 90), i);
    }
    let mut out = Vec::new();
    let mut total = 0;
    for tick in 1..=90u64 {
        w.advance(tick * 1000 - 1, &mut out);
        assert_eq!(out.len(), 0);
        w.advance(tick * 1000, &mut out);
        assert!(out.iter().all(|i| 1000 * (1 + i % 90) == tick * 1000));
        total += out.len();
        out.clear();
    }
    assert_eq!(total, 1_000_000);
    assert!(w.is_empty());
}

#[derive(Debug, Clone)]
enum Op {
    Insert(u64),
    Advance(u64),
}

fn delay() -> impl Strategy<Value = u64> {
    prop_oneof![
        0..70u64,
        0..5_000u64,
        0..1u64 << 20,
        0..1u64 << 43,
        Just(u64::MAX / 2),
    ]
}

proptest! {
    #[test]
    fn behaves_like_a_sorted_list(
        start in prop_oneof![Just(0u64), 0..1u64 << 41],
        ops in prop::collection::vec(
            prop_oneof![delay().prop_map(Op::Insert), delay().prop_map(Op::Advance)],
            0..200,
        ),
    ) {
        let mut w = TimerWheel::new(start);
        let mut now = start;
        let mut model: Vec<(u64, usize)> = Vec::new();
        let mut out = Vec::new();
        for (n, op) in ops.iter().enumerate() {
            match *op {
                // Some deadlines in the past too: `delay` may exceed the time since start.
                Op::Insert(d) => {
                    let deadline = if n % 7 == 0 { now.saturating_sub(d) } else { now.saturating_add(d) };
                    w.insert(deadline, (deadline, n));
                    model.push((deadline, n));
                }
                Op::Advance(d) => {
                    now = now.saturating_add(d);
                    out.clear();
                    w.advance(now, &mut out);
                    let mut want: Vec<(u64, usize)> =
                        model.iter().copied().filter(|(dl, _)| *dl <= now).collect();
                    model.retain(|(dl, _)| *dl > now);
                    let mut got = out.clone();
                    got.sort();
                    want.sort();
                    prop_assert_eq!(got, want);
                }
            }
            prop_assert_eq!(w.len(), model.len());
            match model.iter().map(|(d, _)| *d).min() {
                None => prop_assert_eq!(w.next_deadline(), None),
                Some(min) => {
                    let nd = w.next_deadline();
                    prop_assert!(nd.is_some_and(|nd| nd <= min), "next {:?} > min {}", nd, min);
                }
            }
        }
        // Whatever is left fires, never before its deadline.
        let (fired, _) = run_to_empty(&mut w);
        prop_assert!(fired.iter().all(|(t, (d, _))| t >= d));
        prop_assert_eq!(fired.len(), model.len());
    }
}
