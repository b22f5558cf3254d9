//! Message flows on the virtual broker: QoS 0/1/2 both ways, downgrade, overlap, windows.
mod common;
use codec::*;
use common::*;

const V4: ProtocolVersion = ProtocolVersion::V3_1_1;

fn suback_codes(p: &[Packet]) -> Vec<ReasonCode> {
    p.iter()
        .find_map(|p| {
            if let Packet::SubAck(s) = p {
                Some(s.codes.clone())
            } else {
                None
            }
        })
        .expect("SUBACK")
}

#[test]
fn qos1_publish_is_acked_and_delivered_across_shards() {
    for nr in [1, 2, 4] {
        let mut w = World::new(nr);
        let s = w.connect(&id_on("sub", 0, nr), V4, true);
        let p = w.connect(&id_on("pub", nr - 1, nr), V4, true);
        w.subscribe(s, 1, "a/b", QoS::AtLeastOnce);
        assert_eq!(suback_codes(&w.recv(s)), vec![ReasonCode::GrantedQoS1]);
        w.recv(p);
        w.publish(p, "a/b", "x", QoS::AtLeastOnce, false, 7);
        assert!(w
            .recv(p)
            .iter()
            .any(|r| matches!(r, Packet::PubAck(a) if a.packet_id == pid(7))));
        let got = w.publishes(s);
        assert_eq!(got.len(), 1, "nr={nr}");
        assert_eq!(got[0].qos, QoS::AtLeastOnce);
        assert!(!got[0].retain);
    }
}

#[test]
fn qos_is_downgraded_to_the_granted_maximum() {
    let mut w = World::new(2);
    let s = w.connect("s", V4, true);
    let p = w.connect("p", V4, true);
    w.subscribe(s, 1, "d", QoS::AtMostOnce);
    w.recv(s);
    w.publish(p, "d", "x", QoS::ExactlyOnce, false, 1);
    let got = w.publishes(s);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].qos, QoS::AtMostOnce);
    assert_eq!(got[0].packet_id, None);
}

#[test]
fn overlapping_subscriptions_deliver_one_copy_at_the_highest_qos() {
    let mut w = World::new(2);
    let s = w.connect("s", V4, true);
    let p = w.connect("p", V4, true);
    w.subscribe(s, 1, "a/+", QoS::AtMostOnce);
    w.subscribe(s, 2, "a/#", QoS::ExactlyOnce);
    w.subscribe(s, 3, "a/b", QoS::AtLeastOnce);
    w.recv(s);
    w.publish(p, "a/b", "x", QoS::ExactlyOnce, false, 1);
    let got = w.publishes(s);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].qos, QoS::ExactlyOnce);
}

#[test]
fn qos2_inbound_duplicate_before_pubrel_is_delivered_once() {
    let mut w = World::new(2);
    let s = w.connect(&id_on("s", 0, 2), V4, true);
    let p = w.connect(&id_on("p", 1, 2), V4, true);
    w.subscribe(s, 1, "q2", QoS::AtMostOnce);
    w.recv(s);
    w.recv(p);
    w.publish(p, "q2", "once", QoS::ExactlyOnce, false, 9);
    let mut dup = publish_packet("q2", "once", QoS::ExactlyOnce, false, 9);
    if let Packet::Publish(ref mut x) = dup {
        x.dup = true;
    }
    w.send(p, dup);
    let acks = w.recv(p);
    assert_eq!(
        acks.iter()
            .filter(|a| matches!(a, Packet::PubRec(r) if r.packet_id == pid(9)))
            .count(),
        2
    );
    w.send(p, Packet::PubRel(PubAck::new(pid(9))));
    assert!(w
        .recv(p)
        .iter()
        .any(|a| matches!(a, Packet::PubComp(c) if c.packet_id == pid(9))));
    assert_eq!(w.publishes(s).len(), 1, "delivered exactly once");
    // After PUBCOMP the id is free: the same id is a new message.
    w.publish(p, "q2", "again", QoS::ExactlyOnce, false, 9);
    assert_eq!(w.publishes(s).len(), 1);
}

#[test]
fn qos2_outbound_flow_pubrec_pubrel_pubcomp() {
    let mut w = World::new(1);
    let s = w.connect("s", V4, true);
    let p = w.connect("p", V4, true);
    w.subscribe(s, 1, "o", QoS::ExactlyOnce);
    w.recv(s);
    w.publish(p, "o", "x", QoS::ExactlyOnce, false, 1);
    let got = w.publishes(s);
    let id = got[0].packet_id.expect("qos2 has id");
    w.send(s, Packet::PubRec(PubAck::new(id)));
    assert!(w
        .recv(s)
        .iter()
        .any(|x| matches!(x, Packet::PubRel(r) if r.packet_id == id)));
    w.send(s, Packet::PubComp(PubAck::new(id)));
    assert!(w.recv(s).is_empty());
}

#[test]
fn window_limits_inflight_and_acks_release_the_queue() {
    let cfg = shard::ShardConfig {
        max_inflight: 2,
        ..Default::default()
    };
    let mut w = World::with_config(1, cfg);
    let s = w.connect("s", V4, true);
    let p = w.connect("p", V4, true);
    w.subscribe(s, 1, "w", QoS::AtLeastOnce);
    w.recv(s);
    for i in 1..=5 {
        w.publish(p, "w", &format!("m{i}"), QoS::AtLeastOnce, false, i);
    }
    let first = w.publishes(s);
    assert_eq!(first.len(), 2, "only the window is sent");
    w.send(s, Packet::PubAck(PubAck::new(first[0].packet_id.unwrap())));
    let next = w.publishes(s);
    assert_eq!(next.len(), 1);
    assert_eq!(&next[0].payload[..], b"m3", "order kept");
}

#[test]
fn dollar_topics_are_not_matched_by_leading_wildcards() {
    let mut w = World::new(2);
    let s = w.connect("s", V4, true);
    let p = w.connect("p", V4, true);
    w.subscribe(s, 1, "#", QoS::AtMostOnce);
    w.subscribe(s, 2, "+/info", QoS::AtMostOnce);
    w.recv(s);
    w.publish(p, "$internal/info", "x", QoS::AtMostOnce, false, 0);
    assert!(w.publishes(s).is_empty());
    w.subscribe(s, 3, "$internal/#", QoS::AtMostOnce);
    w.recv(s);
    w.publish(p, "$internal/info", "x", QoS::AtMostOnce, false, 0);
    assert_eq!(w.publishes(s).len(), 1);
}

#[test]
fn unsubscribe_stops_delivery_and_removes_routes_on_other_shards() {
    let mut w = World::new(2);
    let s = w.connect(&id_on("s", 0, 2), V4, true);
    let p = w.connect(&id_on("p", 1, 2), V4, true);
    w.subscribe(s, 1, "u/+", QoS::AtMostOnce);
    w.recv(s);
    w.send(
        s,
        Packet::Unsubscribe(Unsubscribe {
            packet_id: pid(2),
            filters: vec![ByteStr::from("u/+")],
            user_properties: vec![],
        }),
    );
    assert!(w.recv(s).iter().any(|x| matches!(x, Packet::UnsubAck(_))));
    w.publish(p, "u/1", "x", QoS::AtMostOnce, false, 0);
    assert!(w.publishes(s).is_empty());
}

#[test]
fn pingreq_gets_pingresp() {
    let mut w = World::new(1);
    let c = w.connect("ping", V4, true);
    w.recv(c);
    w.send(c, Packet::PingReq);
    assert_eq!(w.recv(c), vec![Packet::PingResp]);
}

#[test]
fn subacks_and_unsubacks_leave_in_the_order_of_the_requests() {
    let mut w = World::new(2);
    let c = w.connect(&id_on("orderly", 0, 2), V4, true);
    w.recv(c);
    // The first SUBSCRIBE waits for shard 1's route acknowledgement; the second (same
    // filter, QoS 0) and the UNSUBSCRIBE of another filter need nothing from other shards.
    w.send_unsettled(c, subscribe_packet(1, "o/#", QoS::AtLeastOnce));
    w.send_unsettled(c, subscribe_packet(2, "o/#", QoS::AtMostOnce));
    w.send_unsettled(c, unsubscribe_packet(3, "none"));
    w.settle();
    let order: Vec<(u16, String)> = w
        .recv(c)
        .iter()
        .filter_map(|p| match p {
            Packet::SubAck(a) => Some((a.packet_id.get(), format!("{:?}", a.codes))),
            Packet::UnsubAck(a) => Some((a.packet_id.get(), "unsub".to_string())),
            _ => None,
        })
        .collect();
    assert_eq!(
        order,
        vec![
            (1, "[GrantedQoS1]".to_string()),
            (2, "[Success]".to_string()),
            (3, "unsub".to_string())
        ]
    );
    // The last SUBSCRIBE is in force: QoS 0.
    let p = w.connect(&id_on("pub", 1, 2), V4, true);
    w.publish(p, "o/x", "m", QoS::AtLeastOnce, false, 1);
    let got = w.publishes(c);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].qos, QoS::AtMostOnce);
}
