//! Shared subscriptions `$share/{group}/{filter}` on the virtual broker, across shards:
//! one member per message, the four strategies, online preference, redistribution.
mod common;
use codec::*;
use common::*;
use shard::{ShardConfig, SharedStrategy};
use std::collections::{BTreeMap, BTreeSet};

const V4: ProtocolVersion = ProtocolVersion::V3_1_1;
const NR: usize = 4;

fn world(strategy: SharedStrategy) -> World {
    World::with_config(
        NR,
        ShardConfig {
            shared_strategy: strategy,
            ..Default::default()
        },
    )
}

/// A v5 member homed on `shard`, subscribed to `filter` at QoS 1.
fn member(w: &mut World, name: &str, shard: usize, filter: &str, props: ConnectProperties) -> C {
    let id = id_on(name, shard, NR);
    let c = w.connect_with(connect5(
        &id,
        props.session_expiry_interval.is_none(),
        props,
    ));
    w.subscribe(c, 1, filter, QoS::AtLeastOnce);
    let got = w.recv(c);
    assert_eq!(suback_codes(&got), vec![ReasonCode::GrantedQoS1], "{name}");
    c
}

/// Payloads `c` received, acknowledging each QoS 1 one.
fn take(w: &mut World, c: C) -> Vec<String> {
    let got = w.publishes(c);
    for p in &got {
        if let Some(id) = p.packet_id {
            w.send(c, Packet::PubAck(PubAck::new(id)));
        }
    }
    let mut out: Vec<_> = got
        .iter()
        .map(|p| String::from_utf8_lossy(&p.payload).into_owned())
        .collect();
    // Acks may release queued messages.
    if !out.is_empty() {
        out.extend(take(w, c));
    }
    out
}

fn publish_n(w: &mut World, p: C, topic: &str, from: usize, n: usize) {
    for i in from..from + n {
        w.publish(
            p,
            topic,
            &format!("m{i}"),
            QoS::AtLeastOnce,
            false,
            (i % 60000 + 1) as u16,
        );
    }
    w.recv(p);
}

#[test]
fn one_member_per_message_over_four_shards_and_round_robin_is_fair() {
    let mut w = world(SharedStrategy::RoundRobin);
    let members: Vec<C> = (0..8)
        .map(|i| {
            member(
                &mut w,
                &format!("g{i}"),
                i % NR,
                "$share/g/job/#",
                Default::default(),
            )
        })
        .collect();
    let other = member(&mut w, "h", 3, "$share/h/job/+", Default::default());
    let plain = member(&mut w, "plain", 2, "job/#", Default::default());
    let pubs: Vec<C> = (0..NR)
        .map(|i| w.connect(&id_on("pub", i, NR), V4, true))
        .collect();
    for (i, &p) in pubs.iter().enumerate() {
        w.recv(p);
        publish_n(&mut w, p, "job/x", i * 40, 40);
    }
    let mut seen = BTreeSet::new();
    for &m in &members {
        let got = take(&mut w, m);
        assert_eq!(got.len(), 20, "round robin: 160 / 8 each");
        for p in got {
            assert!(seen.insert(p), "delivered to one member only");
        }
    }
    assert_eq!(seen.len(), 160);
    assert_eq!(
        take(&mut w, other).len(),
        160,
        "every group gets its own copy"
    );
    assert_eq!(take(&mut w, plain).len(), 160);
}

#[test]
fn round_robin_is_fair_with_uneven_shards_and_a_v3_member() {
    let mut w = world(SharedStrategy::RoundRobin);
    let mut ms: Vec<C> = (0..3)
        .map(|i| {
            member(
                &mut w,
                &format!("a{i}"),
                0,
                "$share/g/rr",
                Default::default(),
            )
        })
        .collect();
    // A 3.1.1 client may join a shared subscription too (as EMQX allows).
    let v3 = w.connect(&id_on("v3", 1, NR), V4, true);
    w.subscribe(v3, 1, "$share/g/rr", QoS::AtLeastOnce);
    assert_eq!(suback_codes(&w.recv(v3)), vec![ReasonCode::GrantedQoS1]);
    ms.push(v3);
    let p = w.connect(&id_on("p", 2, NR), V4, true);
    publish_n(&mut w, p, "rr", 0, 40);
    let counts: Vec<usize> = ms.iter().map(|&m| take(&mut w, m).len()).collect();
    assert_eq!(counts, vec![10, 10, 10, 10]);
}

#[test]
fn random_spreads_over_every_member_exactly_once() {
    let mut w = world(SharedStrategy::Random);
    let ms: Vec<C> = (0..NR)
        .map(|i| {
            member(
                &mut w,
                &format!("r{i}"),
                i,
                "$share/g/rnd",
                Default::default(),
            )
        })
        .collect();
    let p = w.connect(&id_on("p", 0, NR), V4, true);
    publish_n(&mut w, p, "rnd", 0, 400);
    let mut total = BTreeSet::new();
    for &m in &ms {
        let got = take(&mut w, m);
        assert!(
            got.len() >= 50,
            "each of 4 gets a fair share of 400: {}",
            got.len()
        );
        total.extend(got);
    }
    assert_eq!(total.len(), 400);
}

#[test]
fn sticky_keeps_one_member_until_it_leaves() {
    let mut w = world(SharedStrategy::Sticky);
    let ms: Vec<C> = (0..NR)
        .map(|i| {
            member(
                &mut w,
                &format!("s{i}"),
                i,
                "$share/g/st",
                Default::default(),
            )
        })
        .collect();
    let pubs: Vec<C> = (0..NR)
        .map(|i| w.connect(&id_on("p", i, NR), V4, true))
        .collect();
    for (i, &p) in pubs.iter().enumerate() {
        publish_n(&mut w, p, "st", i * 10, 10);
    }
    let counts: Vec<usize> = ms.iter().map(|&m| take(&mut w, m).len()).collect();
    assert_eq!(counts.iter().filter(|&&n| n == 40).count(), 1, "{counts:?}");
    assert_eq!(counts.iter().sum::<usize>(), 40);
    let chosen = ms[counts.iter().position(|&n| n == 40).unwrap_or(0)];
    w.send(chosen, unsubscribe_packet(9, "$share/g/st"));
    w.recv(chosen);
    for &p in &pubs {
        publish_n(&mut w, p, "st", 100, 5);
    }
    let counts: Vec<usize> = ms.iter().map(|&m| take(&mut w, m).len()).collect();
    assert_eq!(
        counts.iter().filter(|&&n| n == 20).count(),
        1,
        "a new sticky member: {counts:?}"
    );
    assert_eq!(counts.iter().sum::<usize>(), 20);
}

#[test]
fn hash_sends_one_publisher_to_one_member() {
    let mut w = world(SharedStrategy::Hash);
    let ms: Vec<C> = (0..NR)
        .flat_map(|i| [i, i])
        .enumerate()
        .map(|(k, i)| {
            member(
                &mut w,
                &format!("h{k}"),
                i,
                "$share/g/hs",
                Default::default(),
            )
        })
        .collect();
    let mut owner_of: BTreeMap<usize, usize> = BTreeMap::new();
    for k in 0..12 {
        let p = w.connect(&format!("publisher-{k}"), V4, true);
        publish_n(&mut w, p, "hs", k * 100, 10);
        let counts: Vec<usize> = ms.iter().map(|&m| take(&mut w, m).len()).collect();
        let owners: Vec<usize> = (0..ms.len()).filter(|&i| counts[i] > 0).collect();
        assert_eq!(owners.len(), 1, "publisher {k}: {counts:?}");
        assert_eq!(counts[owners[0]], 10);
        owner_of.insert(k, owners[0]);
        // Again later: the same member.
        publish_n(&mut w, p, "hs", k * 100 + 50, 3);
        assert_eq!(take(&mut w, ms[owners[0]]).len(), 3);
    }
    let distinct: BTreeSet<_> = owner_of.values().collect();
    assert!(distinct.len() >= 3, "12 publishers spread: {owner_of:?}");
}

/// A member whose window holds one message: the rest of what it is given waits queued.
fn narrow() -> ConnectProperties {
    ConnectProperties {
        receive_maximum: Some(1),
        ..Default::default()
    }
}

#[test]
fn unsubscribe_hands_queued_messages_to_the_other_members() {
    let mut w = world(SharedStrategy::RoundRobin);
    let a = member(&mut w, "a", 1, "$share/g/red", narrow());
    let b = member(&mut w, "b", 2, "$share/g/red", Default::default());
    let p = w.connect(&id_on("p", 0, NR), V4, true);
    publish_n(&mut w, p, "red", 0, 20);
    let a_first = w.publishes(a);
    assert_eq!(a_first.len(), 1, "window of one; 9 more queued for a");
    w.send(a, unsubscribe_packet(5, "$share/g/red"));
    // a's inflight message completes to a; its queue went to b.
    w.send(
        a,
        Packet::PubAck(PubAck::new(a_first[0].packet_id.unwrap())),
    );
    assert!(w.publishes(a).is_empty());
    let b_got = take(&mut w, b);
    assert_eq!(b_got.len(), 19);
    let mut all: BTreeSet<String> = b_got.into_iter().collect();
    all.insert(String::from_utf8_lossy(&a_first[0].payload).into_owned());
    assert_eq!(all.len(), 20, "no loss, no duplicate");
    assert_eq!(w.stats().shared_redistributed, 9);
}

#[test]
fn session_end_hands_queued_and_unacked_qos1_to_others_but_never_qos2() {
    let mut w = world(SharedStrategy::RoundRobin);
    let a = member(&mut w, "a", 1, "$share/g/end", narrow());
    let b = member(&mut w, "b", 3, "$share/g/end", Default::default());
    let p = w.connect(&id_on("p", 0, NR), V4, true);
    publish_n(&mut w, p, "end", 0, 10);
    let a_got = w.publishes(a);
    assert_eq!(a_got.len(), 1);
    w.drop_conn(a); // expiry 0: the session ends
    let b_got = take(&mut w, b);
    assert_eq!(b_got.len(), 10, "5 own + 4 queued + 1 unacknowledged QoS 1");
    let all: BTreeSet<String> = b_got.into_iter().collect();
    assert_eq!(all.len(), 10);

    // QoS 2 already sent to a member is never offered to another [MQTT-4.8.2-5].
    let c = member(&mut w, "c", 1, "$share/q2/end2", narrow());
    let d = w.connect_with(connect5(&id_on("d", 2, NR), true, Default::default()));
    w.send(d, subscribe_packet(1, "$share/q2/end2", QoS::ExactlyOnce));
    w.recv(d);
    w.send(c, subscribe_packet(2, "$share/q2/end2", QoS::ExactlyOnce));
    w.recv(c);
    w.publish(p, "end2", "x2", QoS::ExactlyOnce, false, 1);
    w.send(p, Packet::PubRel(PubAck::new(pid(1))));
    let (to_c, to_d) = (w.publishes(c), w.publishes(d));
    assert_eq!(to_c.len() + to_d.len(), 1);
    let (holder, other) = if to_c.len() == 1 { (c, d) } else { (d, c) };
    w.drop_conn(holder);
    assert!(w.publishes(other).is_empty(), "not redistributed");
}

#[test]
fn online_members_are_preferred_and_offline_ones_queue_only_when_none_is_online() {
    let mut w = world(SharedStrategy::RoundRobin);
    let persist = ConnectProperties {
        session_expiry_interval: Some(600),
        ..Default::default()
    };
    let off_id = id_on("off", 1, NR);
    let off = member(&mut w, "off", 1, "$share/g/on", persist.clone());
    let on = member(&mut w, "on", 2, "$share/g/on", Default::default());
    w.drop_conn(off);
    let p = w.connect(&id_on("p", 0, NR), V4, true);
    publish_n(&mut w, p, "on", 0, 12);
    assert_eq!(take(&mut w, on).len(), 12, "all to the online member");
    // Nobody online: queued to the offline member, delivered when it is back.
    w.drop_conn(on);
    publish_n(&mut w, p, "on", 100, 5);
    w.reconnect(off, connect5(&off_id, false, persist));
    let got = w.recv(off);
    assert!(connack(&got[0]).session_present);
    let pubs: Vec<_> = got[1..]
        .iter()
        .map(|p| match p {
            Packet::Publish(p) => String::from_utf8_lossy(&p.payload).into_owned(),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(pubs, vec!["m100", "m101", "m102", "m103", "m104"]);
    assert_eq!(w.stats().messages_dropped, 0);
}

#[test]
fn retained_messages_are_not_sent_to_shared_subscriptions() {
    let mut w = world(SharedStrategy::RoundRobin);
    let p = w.connect(&id_on("p", 0, NR), V4, true);
    w.publish(p, "ret/x", "kept", QoS::AtLeastOnce, true, 1);
    let c = w.connect_with(connect5(&id_on("s", 1, NR), true, Default::default()));
    w.recv(c);
    w.subscribe(c, 1, "$share/g/ret/#", QoS::AtLeastOnce);
    let got = w.recv(c);
    assert!(matches!(&got[..], [Packet::SubAck(_)]), "{got:?}");
    w.subscribe(c, 2, "ret/#", QoS::AtLeastOnce);
    let got = w.recv(c);
    assert!(
        matches!(&got[..], [Packet::SubAck(_), Packet::Publish(p)] if p.retain),
        "{got:?}"
    );
}

#[test]
fn suback_waits_for_every_shard_and_leaving_removes_the_group_everywhere() {
    let mut w = world(SharedStrategy::RoundRobin);
    let c = w.connect_with(connect5(&id_on("m", 1, NR), true, Default::default()));
    w.recv(c);
    let (sh, conn) = (w.clients[c].shard, w.clients[c].conn.expect("conn"));
    let now = w.now;
    let mut f = SubscribeFilter::new("$share/g/wait", QoS::AtMostOnce);
    f.qos = QoS::AtLeastOnce;
    w.shards[sh].handle_packet(now, conn, subscribe_with(1, f, Some(42)));
    assert!(
        w.shards[sh].conn_output(0, conn).is_none(),
        "no SUBACK before the acks"
    );
    w.settle();
    assert_eq!(suback_codes(&w.recv(c)), vec![ReasonCode::GrantedQoS1]);
    // Every shard routes to it now, with its subscription id and granted QoS.
    let p = w.connect_with(connect5(&id_on("p", 3, NR), true, Default::default()));
    w.send(
        p,
        publish5("wait", "x", QoS::ExactlyOnce, 1, Default::default()),
    );
    let got = w.publishes(c);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].qos, QoS::AtLeastOnce);
    assert_eq!(got[0].properties.subscription_identifiers[0].get(), 42);
    w.send(c, unsubscribe_packet(2, "$share/g/wait"));
    let got = w.recv(c);
    assert!(matches!(&got[..], [Packet::UnsubAck(u)] if u.codes == vec![ReasonCode::Success]));
    w.send(
        p,
        publish5("wait", "y", QoS::AtLeastOnce, 2, Default::default()),
    );
    assert_eq!(
        ack_of(&w.recv(p), 2).map(|a| a.code),
        Some(ReasonCode::NoMatchingSubscribers)
    );
}
