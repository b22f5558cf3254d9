//! What a client may not do: publish or leave a will under `$SYS`, send a Subscription
//! Identifier in a PUBLISH; and what it is owed: a PUBCOMP (PUBREL) even for a packet id
//! the broker no longer knows, in MQTT 3.1.1 too.
mod common;
use codec::*;
use common::*;
use std::num::NonZeroU32;

const V4: ProtocolVersion = ProtocolVersion::V3_1_1;

fn sys_watcher(w: &mut World) -> C {
    let s = w.connect("sys-watch", V4, true);
    w.subscribe(s, 1, "$SYS/#", QoS::AtLeastOnce);
    w.recv(s);
    s
}

#[test]
fn a_v5_publish_to_sys_is_refused_with_0x87_and_goes_nowhere() {
    let mut w = World::new(2);
    let s = sys_watcher(&mut w);
    let p = w.connect_with(connect5("spoof5", true, Default::default()));
    w.recv(p);
    w.send(
        p,
        publish5(
            "$SYS/broker/version",
            "fake",
            QoS::AtLeastOnce,
            1,
            Default::default(),
        ),
    );
    let got = w.recv(p);
    assert_eq!(
        ack_of(&got, 1).map(|a| a.code),
        Some(ReasonCode::NotAuthorized)
    );
    w.publish(p, "$SYS/anything", "x", QoS::AtMostOnce, true, 0);
    assert!(
        w.publishes(s).is_empty(),
        "nothing reached $SYS subscribers"
    );
    assert_eq!(
        w.shards.iter().map(|x| x.retained_count()).sum::<usize>(),
        0
    );
    assert_eq!(w.stats().publishes_refused, 2);
    assert!(!w.is_closed(p), "refused, not disconnected");
}

#[test]
fn a_v3_publish_to_sys_is_acknowledged_dropped_and_counted() {
    let mut w = World::new(1);
    let s = sys_watcher(&mut w);
    let p = w.connect("spoof3", V4, true);
    w.publish(p, "$SYS/broker/version", "fake", QoS::AtLeastOnce, true, 7);
    let got = w.recv(p);
    assert_eq!(ack_of(&got, 7).map(|a| a.code), Some(ReasonCode::Success));
    assert!(w.publishes(s).is_empty());
    assert_eq!(w.shards[0].retained_count(), 0);
    assert_eq!(w.stats().publishes_refused, 1);
    // `$SYSTEM` is an ordinary topic.
    w.subscribe(s, 2, "$SYSTEM/x", QoS::AtMostOnce);
    w.publish(p, "$SYSTEM/x", "ok", QoS::AtMostOnce, false, 0);
    assert_eq!(w.publishes(s).len(), 1);
}

#[test]
fn a_will_under_sys_is_refused_at_connect() {
    for version in [V4, ProtocolVersion::V5] {
        let mut w = World::new(1);
        let will = LastWill {
            topic: ByteStr::from("$SYS/broker/clients/connected"),
            payload: bytes::Bytes::from_static(b"0"),
            qos: QoS::AtMostOnce,
            retain: true,
            properties: Default::default(),
        };
        let c = w.connect_with(connect_packet("will-sys", version, true, 0, Some(will)));
        let got = w.recv(c);
        assert_eq!(
            connack(&got[0]).code,
            ReasonCode::NotAuthorized,
            "{version:?}"
        );
        assert!(w.is_closed(c));
    }
}

#[test]
fn a_subscription_identifier_from_a_client_is_a_protocol_error() {
    let mut w = World::new(1);
    let p = w.connect_with(connect5("subid-pub", true, Default::default()));
    w.recv(p);
    let props = PublishProperties {
        subscription_identifiers: vec![NonZeroU32::new(5).expect("non-zero")],
        ..Default::default()
    };
    w.send(p, publish5("t", "x", QoS::AtLeastOnce, 1, props));
    let got = w.recv(p);
    assert_eq!(
        disconnect_of(&got).map(|d| d.code),
        Some(ReasonCode::ProtocolError),
        "[MQTT-3.3.4-6]: {got:?}"
    );
    assert!(w.is_closed(p));
}

#[test]
fn v3_pubrel_and_pubrec_for_unknown_ids_are_answered() {
    let mut w = World::new(1);
    let c = w.connect("lost-pubcomp", V4, true);
    w.recv(c);
    w.send(c, Packet::PubRel(PubAck::new(pid(42))));
    let got = w.recv(c);
    assert!(
        matches!(ack_of(&got, 42), Some(a) if a.code == ReasonCode::Success),
        "a plain PUBCOMP: {got:?}"
    );
    assert!(matches!(got[..], [Packet::PubComp(_)]));
    w.send(c, Packet::PubRec(PubAck::new(pid(43))));
    let got = w.recv(c);
    assert!(matches!(got[..], [Packet::PubRel(_)]), "{got:?}");
    assert!(!w.is_closed(c));
}

#[test]
fn a_v5_empty_client_id_with_clean_start_0_gets_an_assigned_id() {
    let mut w = World::new(2);
    let c = w.connect_with(connect5("", false, Default::default()));
    let got = w.recv(c);
    let ack = connack(&got[0]);
    assert_eq!(ack.code, ReasonCode::Success);
    assert!(ack.properties.assigned_client_identifier.is_some());
}
