//! MQTT 5 message content on the virtual broker: Message Expiry (queued and retained),
//! properties forwarded unchanged across shards, subscription identifiers and options.
mod common;
use bytes::Bytes;
use codec::*;
use common::*;
use shard::ShardConfig;

const V4: ProtocolVersion = ProtocolVersion::V3_1_1;

fn expiring(secs: u32) -> PublishProperties {
    PublishProperties {
        message_expiry_interval: Some(secs),
        ..Default::default()
    }
}

fn persistent5(id: &str) -> Connect {
    connect5(
        id,
        false,
        ConnectProperties {
            session_expiry_interval: Some(3600),
            ..Default::default()
        },
    )
}

#[test]
fn queued_messages_expire_and_carry_the_remaining_interval() {
    let mut w = World::new(2);
    let sid = id_on("s", 0, 2);
    let s = w.connect_with(persistent5(&sid));
    w.subscribe(s, 1, "ex/#", QoS::AtLeastOnce);
    w.recv(s);
    w.drop_conn(s);
    let p = w.connect_with(connect5(&id_on("p", 1, 2), true, Default::default()));
    w.send(
        p,
        publish5("ex/short", "s", QoS::AtLeastOnce, 1, expiring(5)),
    );
    w.send(
        p,
        publish5("ex/long", "l", QoS::AtLeastOnce, 2, expiring(60)),
    );
    w.send(
        p,
        publish5("ex/none", "n", QoS::AtLeastOnce, 3, Default::default()),
    );
    w.advance(10_000);
    w.reconnect(s, persistent5(&sid));
    let got = w.publishes(s);
    let seen: Vec<_> = got
        .iter()
        .map(|p| (p.topic.to_string(), p.properties.message_expiry_interval))
        .collect();
    assert_eq!(
        seen,
        vec![("ex/long".into(), Some(50)), ("ex/none".into(), None)],
        "expired one dropped; 60 - 10 s forwarded; none added where none was set"
    );
    assert_eq!(w.stats().messages_expired, 1);

    // Behind a full window: expires while waiting, never sent.
    let mut w = World::with_config(
        1,
        ShardConfig {
            max_inflight: 1,
            ..Default::default()
        },
    );
    let s = w.connect_with(connect5("s", true, Default::default()));
    w.subscribe(s, 1, "win", QoS::AtLeastOnce);
    w.recv(s);
    let p = w.connect_with(connect5("p", true, Default::default()));
    w.send(
        p,
        publish5("win", "first", QoS::AtLeastOnce, 1, Default::default()),
    );
    w.send(
        p,
        publish5("win", "second", QoS::AtLeastOnce, 2, expiring(2)),
    );
    w.send(
        p,
        publish5("win", "third", QoS::AtLeastOnce, 3, expiring(9)),
    );
    let first = w.publishes(s);
    assert_eq!(first.len(), 1);
    w.advance(3_500);
    w.send(s, Packet::PubAck(PubAck::new(first[0].packet_id.unwrap())));
    let got = w.publishes(s);
    assert_eq!(got.len(), 1);
    assert_eq!(&got[0].payload[..], b"third");
    assert_eq!(
        got[0].properties.message_expiry_interval,
        Some(6),
        "9 - 3.5 s, rounded up"
    );
}

#[test]
fn max_message_expiry_caps_intervals_and_bounds_messages_without_one() {
    let cfg = ShardConfig {
        max_message_expiry: 30,
        ..Default::default()
    };
    let mut w = World::with_config(1, cfg);
    let s = w.connect_with(persistent5("s"));
    w.subscribe(s, 1, "cap", QoS::AtLeastOnce);
    w.recv(s);
    w.drop_conn(s);
    let p = w.connect_with(connect5("p", true, Default::default()));
    w.send(
        p,
        publish5("cap", "plain", QoS::AtLeastOnce, 1, Default::default()),
    );
    w.send(
        p,
        publish5("cap", "long", QoS::AtLeastOnce, 2, expiring(600)),
    );
    w.advance(10_000);
    w.reconnect(s, persistent5("s"));
    let got = w.publishes(s);
    assert_eq!(got.len(), 2);
    assert_eq!(got[0].properties.message_expiry_interval, None);
    assert_eq!(
        got[1].properties.message_expiry_interval,
        Some(20),
        "capped to 30 s"
    );
    w.drop_conn(s);
    w.send(
        p,
        publish5("cap", "late", QoS::AtLeastOnce, 3, Default::default()),
    );
    w.advance(31_000);
    w.reconnect(s, persistent5("s"));
    let got = w.publishes(s);
    assert_eq!(got.len(), 2);
    assert!(
        got.iter().all(|p| p.dup),
        "only the two unacked resends, not the expired one: {got:?}"
    );
}

#[test]
fn retained_messages_expire() {
    let nr = 3;
    let mut w = World::new(nr);
    let p = w.connect_with(connect5("p", true, Default::default()));
    let mut props = expiring(5);
    props.content_type = Some(ByteStr::from("text/plain"));
    let Packet::Publish(mut m) = publish5("ret/e", "soon", QoS::AtLeastOnce, 1, props) else {
        unreachable!()
    };
    m.retain = true;
    w.send(p, Packet::Publish(m));
    w.advance(2_000);
    let a = w.connect_with(connect5("a", true, Default::default()));
    w.subscribe(a, 1, "ret/#", QoS::AtLeastOnce);
    let got = w.publishes(a);
    assert_eq!(got.len(), 1);
    assert!(got[0].retain);
    assert_eq!(got[0].properties.message_expiry_interval, Some(3));
    assert_eq!(
        got[0].properties.content_type.as_deref(),
        Some("text/plain")
    );
    w.advance(3_100);
    let b = w.connect_with(connect5("b", true, Default::default()));
    w.subscribe(b, 1, "ret/e", QoS::AtLeastOnce);
    assert!(
        w.publishes(b).is_empty(),
        "expired retained message not sent"
    );
    let owner = shard::retained_shard("ret/e", nr).index();
    assert_eq!(
        w.shards[owner].retained_count(),
        0,
        "and deleted from the store"
    );
}

#[test]
fn publish_properties_are_forwarded_unchanged_across_shards() {
    let nr = 4;
    let mut w = World::new(nr);
    let props = PublishProperties {
        payload_format_indicator: Some(true),
        message_expiry_interval: None,
        topic_alias: None,
        response_topic: Some(ByteStr::from("reply/here")),
        correlation_data: Some(Bytes::from_static(&[0, 1, 2, 0xff])),
        user_properties: vec![
            (ByteStr::from("k"), ByteStr::from("v1")),
            (ByteStr::from("k"), ByteStr::from("v2")),
            (ByteStr::from("a"), ByteStr::from("")),
        ],
        subscription_identifiers: vec![],
        content_type: Some(ByteStr::from("application/json")),
    };
    let subs: Vec<C> = (0..nr)
        .map(|i| {
            let c = w.connect_with(connect5(&id_on("s", i, nr), true, Default::default()));
            w.subscribe(c, 1, "props/#", QoS::AtLeastOnce);
            w.recv(c);
            c
        })
        .collect();
    let v3 = w.connect(&id_on("old", 1, nr), V4, true);
    w.subscribe(v3, 1, "props/#", QoS::AtMostOnce);
    w.recv(v3);
    let p = w.connect_with(connect5(&id_on("p", 2, nr), true, Default::default()));
    w.send(
        p,
        publish5("props/x", "{}", QoS::AtLeastOnce, 1, props.clone()),
    );
    for &c in &subs {
        let got = w.publishes(c);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].properties, props, "client {c}");
        assert_eq!(&got[0].payload[..], b"{}");
    }
    let old = w.publishes(v3);
    assert_eq!(
        old.len(),
        1,
        "v3 subscriber gets the message without properties"
    );
    // A will's properties are forwarded the same way.
    let mut c = connect5(&id_on("w", 3, nr), true, Default::default());
    c.will = Some(LastWill {
        topic: ByteStr::from("props/will"),
        payload: Bytes::from_static(b"bye"),
        qos: QoS::AtMostOnce,
        retain: false,
        properties: WillProperties {
            content_type: Some(ByteStr::from("text/plain")),
            response_topic: Some(ByteStr::from("r")),
            correlation_data: Some(Bytes::from_static(b"c")),
            user_properties: vec![(ByteStr::from("u"), ByteStr::from("1"))],
            payload_format_indicator: Some(true),
            ..Default::default()
        },
    });
    let wc = w.connect_with(c);
    w.drop_conn(wc);
    let got = w.publishes(v3);
    assert_eq!(got.len(), 1);
    let got = w.publishes(subs[0]);
    let wp = &got[0].properties;
    assert_eq!(wp.content_type.as_deref(), Some("text/plain"));
    assert_eq!(wp.response_topic.as_deref(), Some("r"));
    assert_eq!(wp.correlation_data.as_deref(), Some(&b"c"[..]));
    assert_eq!(
        wp.user_properties,
        vec![(ByteStr::from("u"), ByteStr::from("1"))]
    );
    assert_eq!(wp.payload_format_indicator, Some(true));
}

#[test]
fn subscription_identifiers_are_delivered_for_every_matching_subscription() {
    let nr = 2;
    let mut w = World::new(nr);
    let s = w.connect_with(connect5(&id_on("s", 0, nr), true, Default::default()));
    w.send(
        s,
        subscribe_with(1, SubscribeFilter::new("a/+", QoS::AtMostOnce), Some(7)),
    );
    w.send(
        s,
        subscribe_with(2, SubscribeFilter::new("a/#", QoS::AtLeastOnce), Some(300)),
    );
    w.send(
        s,
        subscribe_with(3, SubscribeFilter::new("a/b", QoS::AtLeastOnce), None),
    );
    w.recv(s);
    let p = w.connect(&id_on("p", 1, nr), V4, true);
    w.publish(p, "a/b", "x", QoS::AtLeastOnce, false, 1);
    w.publish(p, "a/c/d", "y", QoS::AtLeastOnce, false, 2);
    let got = w.publishes(s);
    assert_eq!(got.len(), 2, "one copy per message");
    let mut ids: Vec<u32> = got[0]
        .properties
        .subscription_identifiers
        .iter()
        .map(|i| i.get())
        .collect();
    ids.sort();
    assert_eq!(ids, vec![7, 300]);
    assert_eq!(got[0].qos, QoS::AtLeastOnce, "highest granted QoS");
    let ids: Vec<u32> = got[1]
        .properties
        .subscription_identifiers
        .iter()
        .map(|i| i.get())
        .collect();
    assert_eq!(ids, vec![300]);
}

#[test]
fn no_local_retain_as_published_and_retain_handling() {
    let mut w = World::new(1);
    let c = w.connect_with(connect5("c", true, Default::default()));
    let mut nl = SubscribeFilter::new("nl", QoS::AtMostOnce);
    nl.no_local = true;
    w.send(c, subscribe_with(1, nl, None));
    w.recv(c);
    w.publish(c, "nl", "own", QoS::AtMostOnce, false, 0);
    assert!(
        w.publishes(c).is_empty(),
        "No Local: not sent to its publisher"
    );
    let other = w.connect("o", V4, true);
    w.publish(other, "nl", "theirs", QoS::AtMostOnce, false, 0);
    assert_eq!(w.publishes(c).len(), 1);

    // Retain As Published keeps RETAIN on live messages.
    let mut rap = SubscribeFilter::new("rap", QoS::AtMostOnce);
    rap.retain_as_published = true;
    w.send(c, subscribe_with(2, rap, None));
    w.send(c, subscribe_packet(3, "norap", QoS::AtMostOnce));
    w.recv(c);
    w.publish(other, "rap", "r", QoS::AtMostOnce, true, 0);
    w.publish(other, "norap", "r", QoS::AtMostOnce, true, 0);
    let got = w.publishes(c);
    assert!(got[0].retain);
    assert!(!got[1].retain);

    // Retain Handling: 0 always, 1 only if new, 2 never.
    w.publish(other, "rh", "kept", QoS::AtMostOnce, true, 0);
    let count = |w: &mut World, rh, pid| {
        let mut f = SubscribeFilter::new("rh", QoS::AtMostOnce);
        f.retain_handling = rh;
        w.send(c, subscribe_with(pid, f, None));
        w.publishes(c).len()
    };
    assert_eq!(
        count(&mut w, RetainHandling::SendIfNew, 10),
        1,
        "new subscription"
    );
    assert_eq!(
        count(&mut w, RetainHandling::SendIfNew, 11),
        0,
        "already existed"
    );
    assert_eq!(count(&mut w, RetainHandling::SendAtSubscribe, 12), 1);
    assert_eq!(count(&mut w, RetainHandling::DoNotSend, 13), 0);
}
