//! MQTT 5 message rules on the virtual broker: topic aliases, Receive Maximum, Maximum
//! Packet Size, Message Expiry, property forwarding, subscription options and ack reason codes.
mod common;
use bytes::Bytes;
use codec::*;
use common::*;
use shard::{Action, Authorizer, ClientInfo, ShardConfig};

fn v5(w: &mut World, id: &str, props: ConnectProperties) -> C {
    let c = w.connect_with(connect5(id, true, props));
    assert_eq!(connack(&w.recv(c)[0]).code, ReasonCode::Success);
    c
}

fn alias_pub(topic: &str, payload: &str, alias: u16) -> Packet {
    publish5(
        topic,
        payload,
        QoS::AtMostOnce,
        0,
        PublishProperties {
            topic_alias: Some(alias),
            ..Default::default()
        },
    )
}

#[test]
fn client_topic_aliases_set_use_replace_and_reset_per_connection() {
    let cfg = ShardConfig {
        topic_alias_maximum: 4,
        ..Default::default()
    };
    let mut w = World::with_config(2, cfg);
    let s = w.connect(&id_on("s", 0, 2), ProtocolVersion::V3_1_1, true);
    w.subscribe(s, 1, "al/#", QoS::AtMostOnce);
    w.recv(s);
    let pid_ = id_on("p", 1, 2);
    let p = v5(&mut w, &pid_, ConnectProperties::default());
    w.send(p, alias_pub("al/one", "1", 4));
    w.send(p, alias_pub("", "2", 4));
    w.send(p, alias_pub("al/two", "3", 4)); // remapped
    w.send(p, alias_pub("", "4", 4));
    let got: Vec<_> = w
        .publishes(s)
        .into_iter()
        .map(|p| (p.topic.to_string(), p.payload))
        .collect();
    assert_eq!(
        got,
        vec![
            ("al/one".to_string(), Bytes::from_static(b"1")),
            ("al/one".to_string(), Bytes::from_static(b"2")),
            ("al/two".to_string(), Bytes::from_static(b"3")),
            ("al/two".to_string(), Bytes::from_static(b"4")),
        ]
    );
    // A new connection starts with no aliases: the alias is unknown now.
    w.drop_conn(p);
    w.reconnect(p, connect5(&pid_, true, ConnectProperties::default()));
    w.recv(p);
    w.send(p, alias_pub("", "5", 4));
    assert!(w.is_closed(p));
    let d = disconnect_of(&w.recv(p)).cloned().expect("DISCONNECT");
    assert_eq!(d.code, ReasonCode::TopicAliasInvalid);
    assert!(w.publishes(s).is_empty());
}

#[test]
fn invalid_topic_aliases_disconnect_with_0x94() {
    let cfg = ShardConfig {
        topic_alias_maximum: 4,
        ..Default::default()
    };
    let mut w = World::with_config(1, cfg);
    // Above our maximum.
    let a = v5(&mut w, "a", ConnectProperties::default());
    w.send(a, alias_pub("t", "x", 5));
    assert_eq!(
        disconnect_of(&w.recv(a)).map(|d| d.code),
        Some(ReasonCode::TopicAliasInvalid)
    );
    // Alias 0 (refused by the decoder, mapped to 0x94).
    let b = v5(&mut w, "b", ConnectProperties::default());
    w.send_bytes(b, &[0x30, 0x07, 0x00, 0x01, b't', 0x03, 0x23, 0x00, 0x00]);
    assert!(w.is_closed(b));
    assert_eq!(
        disconnect_of(&w.recv(b)).map(|d| d.code),
        Some(ReasonCode::TopicAliasInvalid)
    );
    // Any alias when the maximum is 0.
    let mut w = World::with_config(
        1,
        ShardConfig {
            topic_alias_maximum: 0,
            ..Default::default()
        },
    );
    let c = v5(&mut w, "c", ConnectProperties::default());
    w.send(c, alias_pub("t", "x", 1));
    assert_eq!(
        disconnect_of(&w.recv(c)).map(|d| d.code),
        Some(ReasonCode::TopicAliasInvalid)
    );
}

#[test]
fn server_topic_aliases_are_assigned_reused_lru_replaced_and_reset() {
    let mut w = World::new(2);
    let sid = id_on("s", 0, 2);
    let props = ConnectProperties {
        topic_alias_maximum: Some(2),
        ..Default::default()
    };
    let s = v5(&mut w, &sid, props.clone());
    w.subscribe(s, 1, "o/#", QoS::AtMostOnce);
    w.recv(s);
    let p = w.connect(&id_on("p", 1, 2), ProtocolVersion::V3_1_1, true);
    for t in ["o/a", "o/a", "o/b", "o/a", "o/c", "o/b"] {
        w.publish(p, t, "x", QoS::AtMostOnce, false, 0);
    }
    let got: Vec<_> = w
        .publishes(s)
        .into_iter()
        .map(|p| (p.topic.to_string(), p.properties.topic_alias))
        .collect();
    assert_eq!(
        got,
        vec![
            ("o/a".into(), Some(1)),
            ("".into(), Some(1)),
            ("o/b".into(), Some(2)),
            ("".into(), Some(1)),
            ("o/c".into(), Some(2)), // o/b was least recently used
            ("o/b".into(), Some(1)), // then o/a
        ]
    );
    // Reconnect: aliases start over.
    w.drop_conn(s);
    w.reconnect(s, connect5(&sid, true, props));
    w.recv(s);
    w.subscribe(s, 1, "o/#", QoS::AtMostOnce);
    w.recv(s);
    w.publish(p, "o/c", "x", QoS::AtMostOnce, false, 0);
    let got = w.publishes(s);
    assert_eq!(got[0].topic.as_str(), "o/c");
    assert_eq!(got[0].properties.topic_alias, Some(1));
    // A client that allows none gets full topics.
    let n = v5(&mut w, &id_on("n", 0, 2), ConnectProperties::default());
    w.subscribe(n, 1, "o/#", QoS::AtMostOnce);
    w.recv(n);
    w.publish(p, "o/c", "x", QoS::AtMostOnce, false, 0);
    w.publish(p, "o/c", "x", QoS::AtMostOnce, false, 0);
    assert!(w
        .publishes(n)
        .iter()
        .all(|p| p.topic.as_str() == "o/c" && p.properties.topic_alias.is_none()));
}

#[test]
fn incoming_receive_maximum_counts_qos2_until_pubrel_and_disconnects_with_0x93() {
    let cfg = ShardConfig {
        receive_maximum: 2,
        ..Default::default()
    };
    let mut w = World::with_config(1, cfg);
    let c = v5(&mut w, "rm", ConnectProperties::default());
    // QoS 1 is acknowledged at once: any number is fine.
    for i in 1..=5 {
        w.publish(c, "t", "q1", QoS::AtLeastOnce, false, i);
    }
    assert_eq!(w.recv(c).len(), 5);
    w.publish(c, "t", "a", QoS::ExactlyOnce, false, 10);
    w.publish(c, "t", "b", QoS::ExactlyOnce, false, 11);
    w.send(c, Packet::PubRel(PubAck::new(pid(10))));
    w.publish(c, "t", "c", QoS::ExactlyOnce, false, 12); // 2 awaiting PUBREL again
    assert!(!w.is_closed(c));
    w.recv(c);
    w.publish(c, "t", "d", QoS::ExactlyOnce, false, 13); // the third
    assert!(w.is_closed(c));
    let d = disconnect_of(&w.recv(c)).cloned().expect("DISCONNECT");
    assert_eq!(d.code, ReasonCode::ReceiveMaximumExceeded);
}

#[test]
fn outgoing_window_honours_the_clients_receive_maximum() {
    let mut w = World::new(2);
    let s = v5(
        &mut w,
        &id_on("s", 0, 2),
        ConnectProperties {
            receive_maximum: Some(3),
            ..Default::default()
        },
    );
    w.subscribe(s, 1, "win", QoS::AtLeastOnce);
    w.recv(s);
    let p = w.connect(&id_on("p", 1, 2), ProtocolVersion::V3_1_1, true);
    for i in 1..=10 {
        w.publish(p, "win", &format!("{i}"), QoS::AtLeastOnce, false, i);
    }
    let first = w.publishes(s);
    assert_eq!(first.len(), 3, "only Receive Maximum unacknowledged");
    w.send(s, Packet::PubAck(PubAck::new(first[0].packet_id.unwrap())));
    let next = w.publishes(s);
    assert_eq!(next.len(), 1);
    assert_eq!(&next[0].payload[..], b"4", "in order");
}

#[test]
fn never_sends_a_client_more_than_its_maximum_packet_size() {
    let mut w = World::new(1);
    let s = v5(
        &mut w,
        "small",
        ConnectProperties {
            maximum_packet_size: Some(40),
            ..Default::default()
        },
    );
    w.subscribe(s, 1, "mp", QoS::AtLeastOnce);
    w.recv(s);
    let p = w.connect("p", ProtocolVersion::V3_1_1, true);
    w.publish(p, "mp", "small", QoS::AtLeastOnce, false, 1);
    w.publish(p, "mp", &"x".repeat(100), QoS::AtLeastOnce, false, 2);
    w.publish(p, "mp", &"y".repeat(100), QoS::AtMostOnce, false, 0);
    w.publish(p, "mp", "after", QoS::AtLeastOnce, false, 3);
    let got = w.publishes(s);
    let payloads: Vec<_> = got.iter().map(|p| p.payload.clone()).collect();
    assert_eq!(payloads, vec![&b"small"[..], &b"after"[..]]);
    assert!(w.clients[s].largest_frame <= 40);
    assert_eq!(w.stats().dropped_too_large, 2);
    // The dropped QoS 1 message took no window slot: both delivered ones can be acked.
    for p in &got {
        w.send(s, Packet::PubAck(PubAck::new(p.packet_id.unwrap())));
    }
    assert_eq!(w.stats().messages_sent, 2);
}

struct DenyTopic(&'static str);
impl Authorizer for DenyTopic {
    fn allow(&self, _c: &ClientInfo<'_>, _a: Action, topic: &str) -> bool {
        !topic.starts_with(self.0)
    }
}

#[test]
fn reason_strings_leave_acks_that_would_be_too_large_or_unwanted() {
    let mut w = World::new(1);
    w.shards[0].set_authorizer(Box::new(DenyTopic("secret")));
    // Allows diagnostics and has room: the reason string is there.
    let a = v5(&mut w, "a", ConnectProperties::default());
    w.publish(a, "secret/x", "m", QoS::AtLeastOnce, false, 1);
    let got = w.recv(a);
    let ack = ack_of(&got, 1).expect("PUBACK");
    assert_eq!(ack.code, ReasonCode::NotAuthorized);
    assert_eq!(
        ack.properties.reason_string.as_deref(),
        Some("publish not authorized")
    );
    // Request Problem Information = 0: code kept, reason string left out.
    let b = v5(
        &mut w,
        "b",
        ConnectProperties {
            request_problem_information: Some(false),
            ..Default::default()
        },
    );
    w.publish(b, "secret/x", "m", QoS::AtLeastOnce, false, 1);
    let got = w.recv(b);
    let ack = ack_of(&got, 1).expect("PUBACK");
    assert_eq!(ack.code, ReasonCode::NotAuthorized);
    assert_eq!(ack.properties.reason_string, None);
    // Maximum Packet Size too small for the string: left out, ack still sent.
    let c = v5(
        &mut w,
        "c",
        ConnectProperties {
            maximum_packet_size: Some(28),
            ..Default::default()
        },
    );
    w.publish(c, "secret/x", "m", QoS::AtLeastOnce, false, 1);
    let got = w.recv(c);
    let ack = ack_of(&got, 1).expect("PUBACK");
    assert_eq!(ack.code, ReasonCode::NotAuthorized);
    assert_eq!(ack.properties.reason_string, None);
    assert!(w.clients[c].largest_frame <= 28);
    // So small that even the CONNACK's capabilities do not fit: a lean CONNACK still does.
    let d = w.connect_with(connect5(
        "d",
        true,
        ConnectProperties {
            maximum_packet_size: Some(12),
            ..Default::default()
        },
    ));
    let got = w.recv(d);
    assert_eq!(connack(&got[0]).code, ReasonCode::Success);
    assert!(w.clients[d].largest_frame <= 12);
}

#[test]
fn ack_reason_codes_no_subscribers_not_authorized_quota_and_no_subscription() {
    let cfg = ShardConfig {
        max_queued_messages: 1,
        max_inflight: 1,
        offline_queue_policy: shard::QueuePolicy::DropNewest,
        ..Default::default()
    };
    let mut w = World::with_config(2, cfg);
    for s in &mut w.shards {
        s.set_authorizer(Box::new(DenyTopic("deny")));
    }
    let pid_ = id_on("p", 0, 2);
    let p = v5(&mut w, &pid_, ConnectProperties::default());
    let code = |w: &mut World, id| ack_of(&w.recv(p), id).map(|a| a.code);
    // 0x10 on PUBACK and PUBREC.
    w.publish(p, "nobody", "m", QoS::AtLeastOnce, false, 1);
    assert_eq!(code(&mut w, 1), Some(ReasonCode::NoMatchingSubscribers));
    w.publish(p, "nobody", "m", QoS::ExactlyOnce, false, 2);
    assert_eq!(code(&mut w, 2), Some(ReasonCode::NoMatchingSubscribers));
    w.send(p, Packet::PubRel(PubAck::new(pid(2))));
    assert_eq!(code(&mut w, 2), Some(ReasonCode::Success), "PUBCOMP");
    // 0x92 on PUBCOMP for an unknown id.
    w.send(p, Packet::PubRel(PubAck::new(pid(9))));
    assert_eq!(code(&mut w, 9), Some(ReasonCode::PacketIdentifierNotFound));
    // 0x87 on PUBREC; the flow ends there (no id kept awaiting PUBREL).
    w.publish(p, "deny/x", "m", QoS::ExactlyOnce, false, 3);
    assert_eq!(code(&mut w, 3), Some(ReasonCode::NotAuthorized));
    w.send(p, Packet::PubRel(PubAck::new(pid(3))));
    assert_eq!(code(&mut w, 3), Some(ReasonCode::PacketIdentifierNotFound));
    // 0x87 in SUBACK; 0x11 in UNSUBACK.
    w.send(p, subscribe_packet(4, "deny/#", QoS::AtLeastOnce));
    assert_eq!(suback_codes(&w.recv(p)), vec![ReasonCode::NotAuthorized]);
    w.send(p, unsubscribe_packet(5, "never/subscribed"));
    let got = w.recv(p);
    assert!(
        matches!(&got[..], [Packet::UnsubAck(u)] if u.codes == vec![ReasonCode::NoSubscriptionExisted])
    );
    // 0x97: the only subscriber is offline on the publisher's shard, its queue full.
    let s = w.connect(&id_on("s", 0, 2), ProtocolVersion::V3_1_1, false);
    w.subscribe(s, 1, "q", QoS::AtLeastOnce);
    w.recv(s);
    w.drop_conn(s);
    w.publish(p, "q", "1", QoS::AtLeastOnce, false, 6);
    assert_eq!(code(&mut w, 6), Some(ReasonCode::Success));
    w.publish(p, "q", "2", QoS::AtLeastOnce, false, 7);
    let got = w.recv(p);
    let ack = ack_of(&got, 7).expect("PUBACK");
    assert_eq!(ack.code, ReasonCode::QuotaExceeded);
    assert!(ack.properties.reason_string.is_some());
    // With a subscriber on another shard the publisher cannot know: success.
    let r = w.connect(&id_on("r", 1, 2), ProtocolVersion::V3_1_1, true);
    w.subscribe(r, 1, "q", QoS::AtLeastOnce);
    w.publish(p, "q", "3", QoS::AtLeastOnce, false, 8);
    assert_eq!(code(&mut w, 8), Some(ReasonCode::Success));
}

#[test]
fn v3_publisher_not_authorized_gets_a_positive_ack_and_nothing_is_delivered() {
    let mut w = World::new(1);
    w.shards[0].set_authorizer(Box::new(DenyTopic("deny")));
    let s = w.connect("s", ProtocolVersion::V3_1_1, true);
    w.subscribe(s, 1, "#", QoS::AtLeastOnce);
    assert_eq!(suback_codes(&w.recv(s)), vec![ReasonCode::GrantedQoS1]);
    let p = w.connect("p", ProtocolVersion::V3_1_1, true);
    w.recv(p);
    w.publish(p, "deny/x", "m", QoS::AtLeastOnce, false, 1);
    assert_eq!(
        ack_of(&w.recv(p), 1).map(|a| a.code),
        Some(ReasonCode::Success)
    );
    assert!(w.publishes(s).is_empty());
    w.send(s, subscribe_packet(2, "deny/x", QoS::AtMostOnce));
    let got = w.recv(s);
    // 0x87 travels as the v3 Failure return code 0x80.
    assert_eq!(suback_codes(&got), vec![ReasonCode::UnspecifiedError]);
}

struct OnlyAlice;
impl Authorizer for OnlyAlice {
    fn allow(&self, c: &ClientInfo<'_>, a: Action, topic: &str) -> bool {
        match a {
            Action::Subscribe => true,
            Action::Publish => !topic.starts_with("priv/") || c.username == Some("alice"),
        }
    }
}

#[test]
fn authorizer_sees_the_username_and_checks_wills_too() {
    let mut w = World::new(2);
    for s in &mut w.shards {
        s.set_authorizer(Box::new(OnlyAlice));
    }
    let s = v5(&mut w, &id_on("s", 0, 2), ConnectProperties::default());
    w.subscribe(s, 1, "priv/#", QoS::AtMostOnce);
    w.recv(s);
    let mut alice = connect5(&id_on("a", 1, 2), true, ConnectProperties::default());
    alice.username = Some(ByteStr::from("alice"));
    let a = w.connect_with(alice);
    let mut bob = connect5(&id_on("b", 1, 2), true, ConnectProperties::default());
    bob.username = Some(ByteStr::from("bob"));
    bob.will = Some(LastWill {
        topic: ByteStr::from("priv/will"),
        payload: Bytes::from_static(b"w"),
        qos: QoS::AtMostOnce,
        retain: false,
        properties: WillProperties::default(),
    });
    let b = w.connect_with(bob);
    w.recv(a);
    w.recv(b);
    w.publish(a, "priv/x", "from alice", QoS::AtLeastOnce, false, 1);
    w.publish(b, "priv/x", "from bob", QoS::AtLeastOnce, false, 1);
    assert_eq!(
        ack_of(&w.recv(a), 1).map(|x| x.code),
        Some(ReasonCode::Success)
    );
    assert_eq!(
        ack_of(&w.recv(b), 1).map(|x| x.code),
        Some(ReasonCode::NotAuthorized)
    );
    w.drop_conn(b);
    let got: Vec<_> = w.publishes(s).iter().map(|p| p.payload.clone()).collect();
    assert_eq!(
        got,
        vec![Bytes::from_static(b"from alice")],
        "bob's will refused too"
    );
}
