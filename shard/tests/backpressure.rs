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
    // 2 in the window, then the queue: paused at 3/4 of 8 = 6 queued; the rest wait unread.
    for i in 1..=40u16 {
        w.publish(p, "bp", &format!("m{i}"), QoS::AtLeastOnce, false, i);
    }
    assert!(w.clients[p].paused, "publisher paused (nr={nr})");
    assert_eq!(w.clients[p].pauses, 1);
    let queued = w.stats().messages_received;
    assert!(queued < 40, "not every PUBLISH was read: {queued}");
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
    assert_eq!(got.len(), 40, "nothing lost");
    let order: Vec<_> = got.iter().map(|m| m.payload.clone()).collect();
    let want: Vec<_> = (1..=40)
        .map(|i| bytes::Bytes::from(format!("m{i}")))
        .collect();
    assert_eq!(order, want, "in order");
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
fn a_publisher_paused_and_resumed_again_and_again_keeps_one_timer_of_each_kind() {
    let (mut w, s, p) = stuck_subscriber(connect_packet("fast", V4, true, 0, None));
    let mut pid = 0u16;
    for cycle in 0..300 {
        while !w.clients[p].paused {
            pid = pid % 60_000 + 1;
            w.publish(p, "bp", "m", QoS::AtLeastOnce, false, pid);
        }
        // Acknowledge everything: the queue drains and the publisher resumes.
        while w.clients[p].paused {
            let batch = w.publishes(s);
            assert!(
                !batch.is_empty(),
                "cycle {cycle}: paused with nothing to drain"
            );
            for m in batch {
                w.send(s, Packet::PubAck(PubAck::new(m.packet_id.expect("qos1"))));
            }
        }
        // Time passes in steps shorter than the pause deadline and the renewal interval, so
        // old timers fire while the publisher is paused again.
        if cycle % 10 == 9 {
            w.advance(300);
        }
    }
    assert!(w.clients[p].pauses >= 300, "{} pauses", w.clients[p].pauses);
    let timers = w.shards[0].stats().timers;
    assert!(timers <= 8, "{timers} timers in the wheel after 300 pauses");
}

#[test]
fn a_pause_lasts_while_the_queue_stays_full_and_nothing_is_dropped() {
    let (mut w, _stuck, p) = stuck_subscriber(connect_packet("fast", V4, true, 0, None));
    for i in 1..=20u16 {
        w.publish(p, "bp", "x", QoS::AtLeastOnce, false, i);
    }
    assert!(w.clients[p].paused);
    let acked = |w: &mut World| {
        w.recv(p)
            .into_iter()
            .filter(|x| matches!(x, Packet::PubAck(_)))
            .count()
    };
    let first = acked(&mut w);
    assert!(first < 20, "not every PUBLISH was read: {first} acked");
    // The subscriber never acknowledges: the pause is renewed, not timed out.
    w.advance(10_000);
    assert!(w.clients[p].paused, "still paused after 10 s");
    assert_eq!(
        acked(&mut w),
        0,
        "nothing more read, nothing more acknowledged"
    );
    assert_eq!(w.stats().messages_dropped, 0);
    assert_eq!(w.clients[p].unread.len(), 20 - first);
}

#[test]
fn a_stuck_subscriber_is_disconnected_with_0x97_and_its_publishers_resume() {
    let cfg = shard::ShardConfig {
        max_queued_messages: 8,
        max_inflight: 2,
        stuck_timeout_ms: 30_000,
        ..Default::default()
    };
    let mut w = World::with_config(1, cfg);
    let s = w.connect_with(connect_packet("stuck5", ProtocolVersion::V5, true, 0, None));
    let p = w.connect("fast", V4, true);
    w.subscribe(s, 1, "bp", QoS::AtLeastOnce);
    w.recv(s);
    for i in 1..=20u16 {
        w.publish(p, "bp", "x", QoS::AtLeastOnce, false, i);
    }
    assert!(w.clients[p].paused);
    w.advance(29_000);
    assert!(!w.is_closed(s), "not yet: 29 s without progress");
    w.advance(2_000);
    assert!(w.is_closed(s), "closed after 30 s without progress");
    let last = w.recv(s).pop();
    assert!(
        matches!(&last, Some(Packet::Disconnect(d)) if d.code == ReasonCode::QuotaExceeded),
        "DISCONNECT 0x97 reaches the client: {last:?}"
    );
    assert!(!w.clients[p].paused, "its publisher resumed");
    assert!(w.clients[p].unread.is_empty(), "and read again");
    let st = w.stats();
    assert_eq!(st.stuck_disconnects, 1);
    assert_eq!(st.drops.get(shard::DropReason::QueueFull), 0);
    assert!(
        st.drops.get(shard::DropReason::SessionEnded) > 0,
        "what the ended session held is counted: {st:?}"
    );
    assert_eq!(st.messages_dropped, st.drops.total());
    let mut notices = Vec::new();
    w.shards[0].take_notices(&mut notices);
    assert_eq!(notices.len(), 1, "said once: {notices:?}");
}

#[test]
fn a_slow_subscriber_that_makes_progress_is_never_disconnected() {
    let (mut w, s, p) = stuck_subscriber(connect_packet("fast", V4, true, 0, None));
    let mut next = 1u16;
    let mut got = 0;
    // One acknowledgement a second for 60 s while the publisher always has more to send.
    for _ in 0..60 {
        while w.clients[p].unread.len() < 4 {
            w.publish(p, "bp", "x", QoS::AtLeastOnce, false, next);
            next += 1;
        }
        if let Some(m) = w.publishes(s).into_iter().next() {
            w.send(s, Packet::PubAck(PubAck::new(m.packet_id.expect("qos1"))));
            got += 1;
        }
        w.advance(1_000);
    }
    assert!(!w.is_closed(s), "progress, however slow, is not stuck");
    assert!(got > 0);
    assert_eq!(w.stats().stuck_disconnects, 0);
    assert_eq!(w.stats().messages_dropped, 0);
}

#[test]
fn a_publisher_is_held_while_too_many_of_its_acks_wait_on_other_shards() {
    let cfg = shard::ShardConfig {
        receive_maximum: 4,
        link_credit: 0, // every cross-shard acknowledgement waits for its confirmation
        ..Default::default()
    };
    let mut w = World::with_config(2, cfg);
    let s = w.connect(&id_on("far-sub", 1, 2), V4, true);
    let p = w.connect(&id_on("v3-pub", 0, 2), V4, true);
    w.subscribe(s, 1, "acks", QoS::AtLeastOnce);
    w.recv(s);
    // A v3 client may send without waiting for PUBACKs: the 4th waiting ack holds it.
    for i in 1..=10u16 {
        w.send_unsettled(p, publish_packet("acks", "x", QoS::AtLeastOnce, false, i));
    }
    let conn = w.clients[p].conn.expect("connected");
    assert!(
        w.shards[0].is_paused(conn),
        "held at 4 waiting acknowledgements"
    );
    assert_eq!(w.clients[p].unread.len(), 6);
    w.settle();
    let acks = w
        .recv(p)
        .into_iter()
        .filter(|x| matches!(x, Packet::PubAck(_)))
        .count();
    assert_eq!(acks, 10, "released as the other shard confirmed");
    assert!(!w.shards[0].is_paused(conn));
    assert_eq!(w.publishes(s).len(), 10);
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
fn a_paused_publisher_is_not_closed_for_keepalive_while_we_do_not_read_it() {
    let (mut w, sub, p) = stuck_subscriber(connect_packet("fast-ka1", V4, true, 1, None));
    for i in 1..=8u16 {
        w.publish(p, "bp", "x", QoS::AtLeastOnce, false, i);
    }
    assert!(w.clients[p].paused);
    // Keepalive 1 s: 1.5 s of silence would close it, but the silence is the broker's doing.
    w.advance(3_000);
    assert!(!w.is_closed(p), "not closed while paused");
    // The subscriber catches up: the publisher resumes with a fresh keepalive window.
    loop {
        let batch = w.publishes(sub);
        if batch.is_empty() {
            break;
        }
        for m in batch {
            w.send(sub, Packet::PubAck(PubAck::new(m.packet_id.expect("qos1"))));
        }
    }
    assert!(!w.clients[p].paused);
    w.advance(1_000);
    assert!(!w.is_closed(p), "fresh window after the resume");
    w.advance(1_000);
    assert!(
        w.is_closed(p),
        "a client that stays silent after the resume is closed as usual"
    );
}
