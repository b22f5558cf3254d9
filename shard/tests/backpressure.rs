//! Publisher back-pressure: a QoS 1 publisher flooding a slow online subscriber is paused
//! before the subscriber's queue overflows, and resumed when it drains; across shards too.
mod common;
use codec::*;
use common::*;

const V4: ProtocolVersion = ProtocolVersion::V3_1_1;

fn flood(nr: usize) {
    let cfg = shard::ShardConfig {
        max_queued_messages: 8,
        max_inflight: 2,
        ..Default::default()
    };
    let mut w = World::with_config(nr, cfg);
    let s = w.connect(&id_on("slow", 0, nr), V4, true);
    let p = w.connect(&id_on("fast", nr - 1, nr), V4, true);
    w.subscribe(s, 1, "bp", QoS::AtLeastOnce);
    w.recv(s);
    // 2 in the window, then the queue: paused at 3/4 of 8 = 6 queued.
    for i in 1..=8u16 {
        w.publish(p, "bp", &format!("m{i}"), QoS::AtLeastOnce, false, i);
    }
    assert!(w.clients[p].paused, "publisher paused (nr={nr})");
    assert_eq!(w.clients[p].pauses, 1);
    assert_eq!(
        w.shards
            .iter()
            .map(|x| x.stats().messages_dropped)
            .sum::<u64>(),
        0
    );
    // The subscriber acknowledges everything: the queue drains and the publisher resumes.
    let mut got = Vec::new();
    loop {
        let batch = w.publishes(s);
        if batch.is_empty() {
            break;
        }
        for m in batch {
            w.send(s, Packet::PubAck(PubAck::new(m.packet_id.expect("qos1"))));
            got.push(m);
        }
    }
    assert!(!w.clients[p].paused, "publisher resumed (nr={nr})");
    assert_eq!(got.len(), 8, "nothing lost");
}

/// One shard with a queue bound of 8 and a window of 2, a subscriber "stuck" on `bp` at
/// QoS 1, and the publisher `publisher` connected: returns (world, subscriber, publisher).
fn stuck_subscriber(publisher: Connect) -> (World, C, C) {
    let cfg = shard::ShardConfig {
        max_queued_messages: 8,
        max_inflight: 2,
        ..Default::default()
    };
    let mut w = World::with_config(1, cfg);
    let s = w.connect("stuck", V4, true);
    let p = w.connect_with(publisher);
    w.subscribe(s, 1, "bp", QoS::AtLeastOnce);
    w.recv(s);
    (w, s, p)
}

#[test]
fn flooding_publisher_is_paused_not_dropped_on_one_shard() {
    flood(1);
}

#[test]
fn flooding_publisher_is_paused_across_shards() {
    flood(2);
}

#[test]
fn pause_lasts_at_most_the_throttle_deadline_when_the_subscriber_never_acks() {
    let (mut w, _stuck, p) = stuck_subscriber(connect_packet("fast", V4, true, 0, None));
    for i in 1..=8u16 {
        w.publish(p, "bp", "x", QoS::AtLeastOnce, false, i);
    }
    assert!(w.clients[p].paused);
    w.advance(1_100);
    assert!(!w.clients[p].paused, "resumed by the deadline");
}

#[test]
fn offline_subscribers_never_pause_publishers() {
    let cfg = shard::ShardConfig {
        max_queued_messages: 8,
        ..Default::default()
    };
    let mut w = World::with_config(1, cfg);
    let s = w.connect("away", V4, false);
    w.subscribe(s, 1, "bp", QoS::AtLeastOnce);
    w.drop_conn(s);
    let p = w.connect("fast", V4, true);
    for i in 1..=20u16 {
        w.publish(p, "bp", "x", QoS::AtLeastOnce, false, i);
    }
    assert_eq!(w.clients[p].pauses, 0);
    assert_eq!(
        w.shards[0].stats().messages_dropped,
        12,
        "the queue bound applies"
    );
}

#[test]
fn a_subscriber_that_stays_slow_stops_holding_publishers_back_after_the_slow_consumer_limit() {
    let (mut w, _stuck, p) = stuck_subscriber(connect_packet("fast", V4, true, 0, None));
    let mut id = 0u16;
    let mut send = |w: &mut World, n: u16| {
        for _ in 0..n {
            id += 1;
            w.publish(p, "bp", "x", QoS::AtLeastOnce, false, id);
        }
    };
    send(&mut w, 8);
    assert!(w.clients[p].paused);
    // The subscriber never acknowledges. Each renewal keeps the publisher paused...
    for _ in 0..4 {
        w.advance(1_100);
        send(&mut w, 1);
    }
    let pauses = w.clients[p].pauses;
    assert!(pauses >= 2, "paused again while congested: {pauses}");
    // ...until the slow-consumer limit: then no more pauses, the bound drops instead.
    w.advance(1_100);
    send(&mut w, 5);
    w.advance(1_100);
    assert!(!w.clients[p].paused);
    send(&mut w, 5);
    assert!(
        !w.clients[p].paused,
        "no pause past the slow-consumer limit"
    );
    assert!(
        w.shards[0].stats().messages_dropped > 0,
        "its queue bound applies instead"
    );
}

#[test]
fn a_paused_publisher_is_not_closed_for_keepalive_while_we_do_not_read_it() {
    let (mut w, _s, p) = stuck_subscriber(connect_packet("fast-ka1", V4, true, 1, None));
    for i in 1..=8u16 {
        w.publish(p, "bp", "x", QoS::AtLeastOnce, false, i);
    }
    assert!(w.clients[p].paused);
    // Keepalive 1 s: 1.5 s of silence would close it, but the silence is the broker's doing.
    w.advance(1_000);
    assert!(!w.is_closed(p), "not closed while paused");
    // Resumed at the 1 s deadline with a fresh keepalive window.
    assert!(!w.clients[p].paused);
    w.advance(1_000);
    assert!(!w.is_closed(p), "fresh window after the resume");
    w.advance(1_000);
    assert!(
        w.is_closed(p),
        "a client that stays silent after the resume is closed as usual"
    );
}
