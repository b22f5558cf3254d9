//! Persistent sessions, wills, keepalive and retained messages on the virtual broker.
mod common;
use codec::*;
use common::*;

const V4: ProtocolVersion = ProtocolVersion::V3_1_1;

fn will(topic: &str, payload: &str, qos: QoS, retain: bool) -> LastWill {
    LastWill {
        topic: ByteStr::from(topic),
        payload: bytes::Bytes::copy_from_slice(payload.as_bytes()),
        qos,
        retain,
        properties: WillProperties::default(),
    }
}

#[test]
fn persistent_session_queues_while_offline_and_resumes_across_shards() {
    let nr = 4;
    let sid = id_on("sub", 3, nr);
    let mut w = World::new(nr);
    let s = w.connect(&sid, V4, false);
    let p = w.connect(&id_on("pub", 0, nr), V4, true);
    w.subscribe(s, 1, "q/#", QoS::AtLeastOnce);
    w.recv(s);
    w.drop_conn(s);
    for i in 1..=3 {
        w.publish(p, "q/x", &format!("m{i}"), QoS::AtLeastOnce, false, i);
    }
    w.publish(p, "q/x", "qos0-lost", QoS::AtMostOnce, false, 0);
    w.reconnect(s, connect_packet(&sid, V4, false, 0, None));
    let got = w.recv(s);
    assert!(connack(&got[0]).session_present);
    let pubs: Vec<_> = got
        .iter()
        .filter_map(|p| {
            if let Packet::Publish(p) = p {
                Some(p.payload.clone())
            } else {
                None
            }
        })
        .collect();
    assert_eq!(pubs, vec![&b"m1"[..], &b"m2"[..], &b"m3"[..]]);
}

#[test]
fn unacked_inflight_is_resent_with_dup_on_reconnect() {
    let mut w = World::new(2);
    let s = w.connect("s", V4, false);
    let p = w.connect("p", V4, true);
    w.subscribe(s, 1, "r", QoS::AtLeastOnce);
    w.recv(s);
    w.publish(p, "r", "once", QoS::AtLeastOnce, false, 1);
    let first = w.publishes(s);
    assert!(!first[0].dup);
    w.drop_conn(s);
    w.reconnect(s, connect_packet("s", V4, false, 0, None));
    let again = w.publishes(s);
    assert_eq!(again.len(), 1);
    assert!(again[0].dup, "resent with DUP");
    assert_eq!(again[0].packet_id, first[0].packet_id, "same packet id");
}

#[test]
fn qos2_released_message_resends_pubrel_not_publish_after_reconnect() {
    let mut w = World::new(1);
    let s = w.connect("s", V4, false);
    let p = w.connect("p", V4, true);
    w.subscribe(s, 1, "r2", QoS::ExactlyOnce);
    w.recv(s);
    w.publish(p, "r2", "x", QoS::ExactlyOnce, false, 1);
    let id = w.publishes(s)[0].packet_id.unwrap();
    w.send(s, Packet::PubRec(PubAck::new(id)));
    w.recv(s);
    w.drop_conn(s);
    w.reconnect(s, connect_packet("s", V4, false, 0, None));
    let got = w.recv(s);
    assert!(got
        .iter()
        .any(|x| matches!(x, Packet::PubRel(r) if r.packet_id == id)));
    assert!(
        !got.iter().any(|x| matches!(x, Packet::Publish(_))),
        "not delivered twice"
    );
}

#[test]
fn incoming_qos2_state_survives_reconnect() {
    let mut w = World::new(1);
    let s = w.connect("s", V4, true);
    let p = w.connect("p", V4, false);
    w.subscribe(s, 1, "i2", QoS::AtMostOnce);
    w.recv(s);
    w.publish(p, "i2", "x", QoS::ExactlyOnce, false, 5);
    w.drop_conn(p);
    w.reconnect(p, connect_packet("p", V4, false, 0, None));
    // The client resends the PUBLISH (DUP) since it did not see PUBREC: not delivered again.
    w.publish(p, "i2", "x", QoS::ExactlyOnce, false, 5);
    w.send(p, Packet::PubRel(PubAck::new(pid(5))));
    assert_eq!(w.publishes(s).len(), 1);
}

#[test]
fn queue_limit_drops_beyond_max_queued_messages() {
    let cfg = shard::ShardConfig {
        max_queued_messages: 5,
        ..Default::default()
    };
    let mut w = World::with_config(1, cfg);
    let s = w.connect("s", V4, false);
    let p = w.connect("p", V4, true);
    w.subscribe(s, 1, "l", QoS::AtLeastOnce);
    w.recv(s);
    w.drop_conn(s);
    for i in 1..=20 {
        w.publish(p, "l", &format!("m{i}"), QoS::AtLeastOnce, false, i);
    }
    assert_eq!(w.shards[0].stats().messages_dropped, 15);
    w.reconnect(s, connect_packet("s", V4, false, 0, None));
    assert_eq!(w.publishes(s).len(), 5);
}

#[test]
fn will_is_published_on_abnormal_close_with_qos_and_retain() {
    let mut w = World::new(2);
    let s = w.connect(&id_on("s", 0, 2), V4, true);
    w.subscribe(s, 1, "wills/#", QoS::AtLeastOnce);
    w.recv(s);
    let d = w.connect_with(connect_packet(
        &id_on("d", 1, 2),
        V4,
        true,
        0,
        Some(will("wills/d", "gone", QoS::AtLeastOnce, true)),
    ));
    w.drop_conn(d);
    let got = w.publishes(s);
    assert_eq!(got.len(), 1);
    assert_eq!(&got[0].payload[..], b"gone");
    assert_eq!(got[0].qos, QoS::AtLeastOnce);
    // Retained: a later subscriber receives it with RETAIN set.
    let late = w.connect("late", V4, true);
    w.subscribe(late, 1, "wills/d", QoS::AtLeastOnce);
    let r = w.publishes(late);
    assert_eq!(r.len(), 1);
    assert!(r[0].retain);
}

#[test]
fn will_is_not_published_after_disconnect() {
    let mut w = World::new(1);
    let s = w.connect("s", V4, true);
    w.subscribe(s, 1, "w", QoS::AtMostOnce);
    w.recv(s);
    let d = w.connect_with(connect_packet(
        "d",
        V4,
        true,
        0,
        Some(will("w", "gone", QoS::AtMostOnce, false)),
    ));
    w.send(d, Packet::Disconnect(Disconnect::new(ReasonCode::Success)));
    assert!(w.is_closed(d));
    assert!(w.publishes(s).is_empty());
}

#[test]
fn keepalive_timeout_closes_at_one_and_a_half_times_and_publishes_will() {
    let mut w = World::new(1);
    let s = w.connect("s", V4, true);
    w.subscribe(s, 1, "ka", QoS::AtMostOnce);
    w.recv(s);
    let d = w.connect_with(connect_packet(
        "d",
        V4,
        true,
        2,
        Some(will("ka", "timeout", QoS::AtMostOnce, false)),
    ));
    w.advance(2_900);
    assert!(!w.is_closed(d), "still within 1.5 x keepalive");
    w.send(d, Packet::PingReq);
    w.advance(2_900);
    assert!(!w.is_closed(d), "PINGREQ reset the timer");
    w.advance(200);
    assert!(w.is_closed(d), "closed after 3 s of silence");
    assert_eq!(w.publishes(s).len(), 1);
}

#[test]
fn retained_store_replace_delete_and_wildcard_across_shards() {
    let nr = 4;
    let mut w = World::new(nr);
    let p = w.connect("p", V4, true);
    // Topics spread over every retained partition.
    let mut topics = Vec::new();
    for i in 0.. {
        let t = format!("ret/{i}");
        let part = shard::retained_shard(&t, nr).index();
        if !topics.iter().any(|(_, s)| *s == part) {
            topics.push((t, part));
        }
        if topics.len() == nr {
            break;
        }
    }
    for (t, _) in &topics {
        w.publish(p, t, "v1", QoS::AtLeastOnce, true, 1);
        w.publish(p, t, "v2", QoS::AtLeastOnce, true, 2);
    }
    w.publish(p, &topics[0].0, "", QoS::AtMostOnce, true, 0);
    let s = w.connect("s", V4, true);
    w.subscribe(s, 1, "ret/#", QoS::AtLeastOnce);
    let got = w.publishes(s);
    assert_eq!(
        got.len(),
        nr - 1,
        "all partitions answered, deleted one missing"
    );
    assert!(got.iter().all(|p| p.retain && &p.payload[..] == b"v2"));
    // An exact subscribe asks one partition.
    let e = w.connect("e", V4, true);
    w.subscribe(e, 1, &topics[1].0, QoS::AtMostOnce);
    let got = w.publishes(e);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].qos, QoS::AtMostOnce);
    // Established subscribers get RETAIN 0.
    w.publish(p, &topics[1].0, "v3", QoS::AtMostOnce, true, 0);
    let live = w.publishes(e);
    assert!(!live[0].retain);
}

#[test]
fn max_offline_sessions_ends_the_longest_offline_first() {
    let cfg = shard::ShardConfig {
        max_offline_sessions: 2,
        ..Default::default()
    };
    let mut w = World::with_config(1, cfg);
    let watch = w.connect("watch", V4, true);
    w.subscribe(watch, 1, "gone/#", QoS::AtMostOnce);
    w.recv(watch);
    let ids = ["o1", "o2", "o3", "o4"];
    let cs: Vec<C> = ids
        .iter()
        .map(|id| {
            let c = w.connect_with(connect_packet(
                id,
                V4,
                false,
                0,
                Some(will(&format!("gone/{id}"), id, QoS::AtMostOnce, false)),
            ));
            w.recv(c);
            c
        })
        .collect();
    // o1 goes offline first, then o2; o1 comes back; then o3 and o4 go.
    w.drop_conn(cs[0]);
    w.drop_conn(cs[1]);
    let got: Vec<_> = w
        .publishes(watch)
        .iter()
        .map(|p| p.payload.clone())
        .collect();
    assert_eq!(got.len(), 2, "wills of the abnormal closes");
    w.reconnect(cs[0], connect_packet("o1", V4, false, 0, None));
    assert!(connack(&w.recv(cs[0])[0]).session_present);
    w.drop_conn(cs[2]);
    assert_eq!(w.sessions(), 5, "2 offline: within the cap");
    w.drop_conn(cs[3]);
    w.recv(watch);
    assert_eq!(w.sessions(), 4, "o2, the longest offline, was ended");
    w.reconnect(cs[1], connect_packet("o2", V4, false, 0, None));
    assert!(!connack(&w.recv(cs[1])[0]).session_present);
    w.reconnect(cs[2], connect_packet("o3", V4, false, 0, None));
    assert!(connack(&w.recv(cs[2])[0]).session_present, "o3 kept");
}

#[test]
fn publish_system_reaches_dollar_filters_on_every_shard_and_is_retained() {
    let nr = 3;
    let mut w = World::new(nr);
    let all = w.connect(&id_on("all", 0, nr), V4, true);
    w.subscribe(all, 1, "#", QoS::AtMostOnce);
    let sys: Vec<C> = (0..nr)
        .map(|i| {
            let c = w.connect(&id_on("sys", i, nr), V4, true);
            w.subscribe(c, 1, "$SYS/#", QoS::AtMostOnce);
            w.recv(c);
            c
        })
        .collect();
    w.recv(all);
    let now = w.now;
    w.shards[1].publish_system(
        now,
        "$SYS/broker/uptime",
        bytes::Bytes::from_static(b"42"),
        QoS::AtMostOnce,
        true,
    );
    w.settle();
    for &c in &sys {
        let got = w.publishes(c);
        assert_eq!(got.len(), 1);
        assert_eq!(&got[0].payload[..], b"42");
    }
    assert!(w.publishes(all).is_empty(), "'#' does not match '$' topics");
    let late = w.connect("late", V4, true);
    w.subscribe(late, 1, "$SYS/broker/+", QoS::AtMostOnce);
    let got = w.publishes(late);
    assert_eq!(got.len(), 1);
    assert!(got[0].retain);
}
