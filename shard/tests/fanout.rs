//! QoS 0 fan-out on the virtual broker: the frame is encoded once per publish and shared by
//! reference among subscribers of the same kind; every kind of subscriber must still get
//! exactly its own PUBLISH (protocol, RETAIN as its options say, v5 properties, size limit),
//! in order with the frames written for it by other paths.
mod common;
use codec::*;
use common::*;

const V4: ProtocolVersion = ProtocolVersion::V3_1_1;
const V3: ProtocolVersion = ProtocolVersion::V3_1;

/// Longer than `shard::outq::SHARE_MIN`, so the frame is queued by reference.
fn big() -> String {
    "x".repeat(2 * shard::outq::SHARE_MIN)
}

fn user_props() -> PublishProperties {
    PublishProperties {
        user_properties: vec![(ByteStr::from("k"), ByteStr::from("v"))],
        message_expiry_interval: Some(60),
        ..Default::default()
    }
}

#[test]
fn every_kind_of_subscriber_gets_its_own_frame_from_one_publish() {
    for shards in [1, 3] {
        let mut w = World::new(shards);
        let v4 = w.connect("v4", V4, true);
        let v3 = w.connect("v3", V3, true);
        let v5 = w.connect_with(connect5("v5", true, Default::default()));
        let rap = w.connect_with(connect5("rap", true, Default::default()));
        let sid = w.connect_with(connect5("sid", true, Default::default()));
        let small = w.connect_with(connect5(
            "small",
            true,
            ConnectProperties {
                maximum_packet_size: Some(100),
                ..Default::default()
            },
        ));
        for c in [v4, v3, v5, small] {
            w.subscribe(c, 1, "f/#", QoS::AtMostOnce);
        }
        let mut f = SubscribeFilter::new("f/#", QoS::AtMostOnce);
        f.retain_as_published = true;
        w.send(rap, subscribe_with(1, f, None));
        w.send(
            sid,
            subscribe_with(1, SubscribeFilter::new("f/#", QoS::AtLeastOnce), Some(9)),
        );
        for c in [v4, v3, v5, rap, sid, small] {
            w.recv(c);
        }
        let publisher = w.connect_with(connect5("pub", true, Default::default()));
        let Packet::Publish(mut p) = publish5("f/a", &big(), QoS::AtMostOnce, 0, user_props())
        else {
            unreachable!()
        };
        p.retain = true;
        w.send(publisher, Packet::Publish(p));
        w.settle();

        for (c, name) in [(v4, "v4"), (v3, "v3")] {
            let got = w.publishes(c);
            assert_eq!(got.len(), 1, "{name} with {shards} shards");
            let g = &got[0];
            assert_eq!(
                (g.topic.as_ref(), g.payload.len(), g.qos, g.retain),
                ("f/a", big().len(), QoS::AtMostOnce, false),
                "{name}"
            );
        }
        let got = w.publishes(v5);
        assert_eq!(got.len(), 1);
        assert!(
            !got[0].retain,
            "no Retain As Published: RETAIN 0 on a live message"
        );
        assert_eq!(
            got[0].properties.user_properties,
            user_props().user_properties
        );
        assert_eq!(got[0].properties.message_expiry_interval, Some(60));
        assert!(got[0].properties.subscription_identifiers.is_empty());

        let got = w.publishes(rap);
        assert_eq!(got.len(), 1);
        assert!(got[0].retain, "Retain As Published keeps RETAIN");
        assert_eq!(
            got[0].properties.user_properties,
            user_props().user_properties
        );

        let got = w.publishes(sid);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].qos, QoS::AtMostOnce, "min(published 0, granted 1)");
        assert_eq!(
            got[0].properties.subscription_identifiers,
            vec![std::num::NonZeroU32::new(9).unwrap()]
        );

        assert!(
            w.publishes(small).is_empty(),
            "larger than its Maximum Packet Size: not sent [MQTT-3.1.2-25]"
        );
        assert!(!w.is_closed(small));
    }
}

#[test]
fn shared_frames_and_copied_frames_reach_a_subscriber_in_publish_order() {
    let mut w = World::new(1);
    let sub = w.connect("sub", V4, true);
    w.subscribe(sub, 1, "zero", QoS::AtMostOnce);
    w.subscribe(sub, 2, "one", QoS::AtLeastOnce);
    w.recv(sub);
    let publisher = w.connect("pub", V4, true);
    // One turn: shared QoS 0 frame, a QoS 1 frame written for this subscriber, a short QoS 0
    // frame (copied), and a shared one again.
    w.send(
        publisher,
        publish_packet("zero", &big(), QoS::AtMostOnce, false, 0),
    );
    w.send(
        publisher,
        publish_packet("one", "q1", QoS::AtLeastOnce, false, 5),
    );
    w.send(
        publisher,
        publish_packet("zero", "tiny", QoS::AtMostOnce, false, 0),
    );
    w.send(
        publisher,
        publish_packet("zero", &big(), QoS::AtMostOnce, false, 0),
    );
    w.settle();
    let got: Vec<(String, usize)> = w
        .publishes(sub)
        .iter()
        .map(|p| (p.topic.to_string(), p.payload.len()))
        .collect();
    assert_eq!(
        got,
        vec![
            ("zero".to_string(), big().len()),
            ("one".to_string(), 2),
            ("zero".to_string(), 4),
            ("zero".to_string(), big().len()),
        ]
    );
}

#[test]
fn qos1_fan_out_gives_each_subscriber_its_own_packet_ids() {
    let mut w = World::new(1);
    let a = w.connect("a", V4, true);
    let b = w.connect("b", V3, true);
    let c = w.connect_with(connect5("c", true, Default::default()));
    // `b` already has a message in flight, so its packet ids differ from the others'.
    w.subscribe(b, 1, "warm", QoS::AtLeastOnce);
    let publisher = w.connect("pub", V4, true);
    w.publish(publisher, "warm", "w", QoS::AtLeastOnce, false, 1);
    for s in [a, b, c] {
        w.subscribe(s, 2, "f/#", QoS::ExactlyOnce);
    }
    for s in [a, b, c, publisher] {
        w.recv(s);
    }
    for (i, payload) in ["first", "second"].iter().enumerate() {
        w.publish(
            publisher,
            "f/x",
            payload,
            QoS::AtLeastOnce,
            false,
            10 + i as u16,
        );
    }
    let ids = |w: &mut World, s| -> Vec<(u16, String, bool, QoS)> {
        w.publishes(s)
            .iter()
            .map(|p| {
                let payload = String::from_utf8(p.payload.to_vec()).unwrap();
                (p.packet_id.unwrap().get(), payload, p.dup, p.qos)
            })
            .collect()
    };
    let one = |id: u16, p: &str| (id, p.to_string(), false, QoS::AtLeastOnce);
    assert_eq!(ids(&mut w, a), vec![one(1, "first"), one(2, "second")]);
    assert_eq!(ids(&mut w, b), vec![one(2, "first"), one(3, "second")]);
    assert_eq!(ids(&mut w, c), vec![one(1, "first"), one(2, "second")]);
}
