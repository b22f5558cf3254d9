//! MQTT 5.0: every control packet but the publish acknowledgements (in `v5_acks.rs`),
//! decoded from and encoded to annotated bytes.

use crate::common::*;
use codec::*;
use std::num::NonZeroU32;

#[test]
fn connect_spec_example_3_1_2_10() {
    // §3.1.2.10 gives this variable header verbatim; the payload is ours.
    let bytes = [
        0x10, 27, // CONNECT, remaining length 27
        0x00, 0x04, 0x4D, 0x51, 0x54, 0x54, // protocol name "MQTT"
        0x05, // protocol version 5
        0xC2, // flags: user name, password, clean start
        0x00, 0x0A, // keep alive 10 s
        0x05, // property length 5
        0x11, 0x00, 0x00, 0x00, 0x0A, // session expiry interval 10 s
        0x00, 0x03, b'c', b'i', b'd', // client id "cid"
        0x00, 0x01, b'u', // user name "u"
        0x00, 0x01, b'p', // password "p"
    ];
    let mut c = connect(V5, "cid");
    c.keep_alive = 10;
    c.properties.session_expiry_interval = Some(10);
    c.username = Some(s("u"));
    c.password = Some(b(b"p"));
    both(&bytes, Packet::Connect(Box::new(c)), V5);
}

#[test]
fn connect_every_property_and_will_property() {
    let bytes = [
        0x10, 88, // CONNECT, remaining length 88
        0x00, 0x04, b'M', b'Q', b'T', b'T', 0x05, // "MQTT" level 5
        0x16, // flags: will QoS 2, will, clean start
        0x00, 0x1E, // keep alive 30 s
        38,   // property length
        0x11, 0x00, 0x00, 0x00, 0x3C, // session expiry interval 60
        0x15, 0x00, 0x03, b'S', b'C', b'R', // authentication method "SCR"
        0x16, 0x00, 0x02, 0x01, 0x02, // authentication data 01 02
        0x17, 0x00, // request problem information 0
        0x19, 0x01, // request response information 1
        0x21, 0x00, 0x14, // receive maximum 20
        0x22, 0x00, 0x0A, // topic alias maximum 10
        0x27, 0x00, 0x00, 0x10, 0x00, // maximum packet size 4096
        0x26, 0x00, 0x01, b'k', 0x00, 0x01, b'v', // user property k=v
        0x00, 0x02, b'c', b'1', // client id "c1"
        28,   // will property length
        0x01, 0x01, // payload format indicator: UTF-8
        0x02, 0x00, 0x00, 0x00, 0x0A, // message expiry interval 10
        0x03, 0x00, 0x04, b't', b'e', b'x', b't', // content type "text"
        0x08, 0x00, 0x02, b'r', b'/', // response topic "r/"
        0x09, 0x00, 0x01, 0x00, // correlation data 00
        0x18, 0x00, 0x00, 0x00, 0x05, // will delay interval 5
        0x00, 0x01, b'w', // will topic "w"
        0x00, 0x01, b'x', // will payload "x"
    ];
    let mut c = connect(V5, "c1");
    c.keep_alive = 30;
    c.properties = ConnectProperties {
        session_expiry_interval: Some(60),
        receive_maximum: Some(20),
        maximum_packet_size: Some(4096),
        topic_alias_maximum: Some(10),
        request_response_information: Some(true),
        request_problem_information: Some(false),
        authentication_method: Some(s("SCR")),
        authentication_data: Some(b(&[1, 2])),
        user_properties: vec![(s("k"), s("v"))],
    };
    c.will = Some(LastWill {
        topic: s("w"),
        payload: b(b"x"),
        qos: QoS::ExactlyOnce,
        retain: false,
        properties: WillProperties {
            will_delay_interval: Some(5),
            payload_format_indicator: Some(true),
            message_expiry_interval: Some(10),
            content_type: Some(s("text")),
            response_topic: Some(s("r/")),
            correlation_data: Some(b(&[0])),
            user_properties: vec![],
        },
    });
    both(&bytes, Packet::Connect(Box::new(c)), V5);
}

#[test]
fn connect_v5_password_without_username_is_allowed() {
    let bytes = [
        0x10, 16, // CONNECT, remaining length 16
        0x00, 0x04, b'M', b'Q', b'T', b'T', 0x05, // "MQTT" level 5
        0x40, // flags: password only (allowed in 5.0, §3.1.2.9)
        0x00, 0x00, // keep alive 0
        0x00, // no properties
        0x00, 0x00, // client id "": the server assigns one, even without clean start
        0x00, 0x01, b'p', // password "p"
    ];
    let mut c = connect(V5, "");
    c.clean_start = false;
    c.keep_alive = 0;
    c.password = Some(b(b"p"));
    both(&bytes, Packet::Connect(Box::new(c)), V5);
}

#[test]
fn connack_minimal_and_refused() {
    let ok = [
        0x20, 0x03, // CONNACK, remaining length 3
        0x00, // no session present
        0x00, // reason: success
        0x00, // no properties
    ];
    let p = ConnAck {
        session_present: false,
        code: ReasonCode::Success,
        properties: Default::default(),
    };
    both(&ok, Packet::ConnAck(p), V5);
    let refused = [
        0x20, 0x0B, // CONNACK, remaining length 11
        0x00, // no session present
        0x9C, // reason: use another server
        0x08, // property length 8
        0x1C, 0x00, 0x05, b'h', b'o', b's', b't', b'2', // server reference "host2"
    ];
    let mut p = ConnAck {
        session_present: false,
        code: ReasonCode::UseAnotherServer,
        properties: Default::default(),
    };
    p.properties.server_reference = Some(s("host2"));
    both(&refused, Packet::ConnAck(p), V5);
}

#[test]
fn connack_server_capabilities() {
    let bytes = [
        0x20, 34,   // CONNACK, remaining length 34
        0x01, // session present
        0x00, // success
        31,   // property length
        0x12, 0x00, 0x04, b'a', b'u', b't', b'o', // assigned client identifier "auto"
        0x13, 0x00, 0x1E, // server keep alive 30
        0x21, 0x00, 0x0A, // receive maximum 10
        0x22, 0x00, 0x05, // topic alias maximum 5
        0x24, 0x01, // maximum QoS 1
        0x25, 0x00, // retain available: no
        0x27, 0x00, 0x01, 0x00, 0x00, // maximum packet size 65536
        0x28, 0x01, // wildcard subscription available
        0x29, 0x00, // subscription identifiers not available
        0x2A, 0x01, // shared subscription available
    ];
    let properties = ConnAckProperties {
        assigned_client_identifier: Some(s("auto")),
        server_keep_alive: Some(30),
        receive_maximum: Some(10),
        topic_alias_maximum: Some(5),
        maximum_qos: Some(QoS::AtLeastOnce),
        retain_available: Some(false),
        maximum_packet_size: Some(65536),
        wildcard_subscription_available: Some(true),
        subscription_identifiers_available: Some(false),
        shared_subscription_available: Some(true),
        ..Default::default()
    };
    let p = ConnAck {
        session_present: true,
        code: ReasonCode::Success,
        properties,
    };
    both(&bytes, Packet::ConnAck(p), V5);
}

#[test]
fn publish_qos0_no_properties() {
    let bytes = [
        0x30, 0x05, // PUBLISH QoS 0, remaining length 5
        0x00, 0x01, b't', // topic "t"
        0x00, // property length 0
        b'p', // payload
    ];
    both(
        &bytes,
        Packet::Publish(publish(QoS::AtMostOnce, None, "t", b"p")),
        V5,
    );
}

#[test]
fn publish_qos1_every_property() {
    let bytes = [
        0x32, 58, // PUBLISH QoS 1, remaining length 58
        0x00, 0x03, b'a', b'/', b'b', // topic "a/b"
        0x00, 0x01, // packet id 1
        48,   // property length
        0x01, 0x01, // payload format indicator: UTF-8
        0x02, 0x00, 0x00, 0x00, 0x3C, // message expiry interval 60
        0x03, 0x00, 0x0A, b't', b'e', b'x', b't', b'/', b'p', b'l', b'a', b'i',
        b'n', // content type
        0x08, 0x00, 0x05, b'r', b'e', b'p', b'l', b'y', // response topic "reply"
        0x09, 0x00, 0x02, 0xAB, 0xCD, // correlation data AB CD
        0x0B, 0x05, // subscription identifier 5
        0x0B, 0x80, 0x01, // subscription identifier 128 (a two-byte variable integer)
        0x23, 0x00, 0x07, // topic alias 7
        0x26, 0x00, 0x01, b'k', 0x00, 0x01, b'v', // user property k=v
        b'h', b'i', // payload "hi"
    ];
    let mut p = publish(QoS::AtLeastOnce, Some(1), "a/b", b"hi");
    p.properties = PublishProperties {
        payload_format_indicator: Some(true),
        message_expiry_interval: Some(60),
        topic_alias: Some(7),
        response_topic: Some(s("reply")),
        correlation_data: Some(b(&[0xAB, 0xCD])),
        user_properties: vec![(s("k"), s("v"))],
        subscription_identifiers: vec![NonZeroU32::new(5).unwrap(), NonZeroU32::new(128).unwrap()],
        content_type: Some(s("text/plain")),
    };
    both(&bytes, Packet::Publish(p), V5);
}

#[test]
fn publish_empty_topic_with_alias() {
    let bytes = [
        0x30, 0x07, // PUBLISH QoS 0, remaining length 7
        0x00, 0x00, // topic "": the alias names it (§3.3.2.3.4)
        0x03, // property length 3
        0x23, 0x00, 0x01, // topic alias 1
        b'x', // payload
    ];
    let mut p = publish(QoS::AtMostOnce, None, "", b"x");
    p.properties.topic_alias = Some(1);
    both(&bytes, Packet::Publish(p), V5);
}

#[test]
fn subscribe_with_options_and_identifier() {
    let bytes = [
        0x82, 31, // SUBSCRIBE, remaining length 31
        0x00, 0x0A, // packet id 10
        0x09, // property length 9
        0x0B, 0x01, // subscription identifier 1
        0x26, 0x00, 0x01, b'a', 0x00, 0x01, b'b', // user property a=b
        0x00, 0x03, b'a', b'/', b'+', // filter "a/+"
        0x2D, // options: retain handling 2, retain as published, no local, QoS 1
        0x00, 0x0A, b'$', b's', b'h', b'a', b'r', b'e', b'/', b'g', b'/',
        b'x', // "$share/g/x"
        0x02, // options: QoS 2
    ];
    let first = SubscribeFilter {
        filter: s("a/+"),
        qos: QoS::AtLeastOnce,
        no_local: true,
        retain_as_published: true,
        retain_handling: RetainHandling::DoNotSend,
    };
    let p = Subscribe {
        packet_id: pid(10),
        filters: vec![first, SubscribeFilter::new("$share/g/x", QoS::ExactlyOnce)],
        properties: SubscribeProperties {
            subscription_identifier: NonZeroU32::new(1),
            user_properties: vec![(s("a"), s("b"))],
        },
    };
    both(&bytes, Packet::Subscribe(p), V5);
}

#[test]
fn suback_reason_codes() {
    let bytes = [
        0x90, 14, // SUBACK, remaining length 14
        0x00, 0x0A, // packet id 10
        0x05, // property length 5
        0x1F, 0x00, 0x02, b'o', b'k', // reason string "ok"
        0x01, // granted QoS 1
        0x02, // granted QoS 2
        0x00, // granted QoS 0
        0x8F, // topic filter invalid
        0x9E, // shared subscriptions not supported
        0xA2, // wildcard subscriptions not supported
    ];
    use ReasonCode::*;
    let codes = vec![
        GrantedQoS1,
        GrantedQoS2,
        Success,
        TopicFilterInvalid,
        SharedSubscriptionsNotSupported,
        WildcardSubscriptionsNotSupported,
    ];
    let mut p = SubAck {
        packet_id: pid(10),
        codes,
        properties: Default::default(),
    };
    p.properties.reason_string = Some(s("ok"));
    both(&bytes, Packet::SubAck(p), V5);
}

#[test]
fn unsubscribe_and_unsuback() {
    let bytes = [
        0xA2, 15, // UNSUBSCRIBE, remaining length 15
        0x00, 0x03, // packet id 3
        0x07, // property length 7
        0x26, 0x00, 0x01, b'k', 0x00, 0x01, b'v', // user property k=v
        0x00, 0x03, b'a', b'/', b'+', // filter "a/+"
    ];
    let p = Unsubscribe {
        packet_id: pid(3),
        filters: vec![s("a/+")],
        user_properties: vec![(s("k"), s("v"))],
    };
    both(&bytes, Packet::Unsubscribe(p), V5);
    let bytes = [
        0xB0, 0x05, // UNSUBACK, remaining length 5
        0x00, 0x03, // packet id 3
        0x00, // no properties
        0x00, // success
        0x11, // no subscription existed
    ];
    let codes = vec![ReasonCode::Success, ReasonCode::NoSubscriptionExisted];
    both(
        &bytes,
        Packet::UnsubAck(UnsubAck {
            packet_id: pid(3),
            codes,
            properties: Default::default(),
        }),
        V5,
    );
}

#[test]
fn ping() {
    both(&[0xC0, 0x00], Packet::PingReq, V5);
    both(&[0xD0, 0x00], Packet::PingResp, V5);
}

#[test]
fn disconnect_short_forms() {
    // Remaining length 0: normal disconnection, no properties (§3.14.2.1).
    both(
        &[0xE0, 0x00],
        Packet::Disconnect(Disconnect::new(ReasonCode::Success)),
        V5,
    );
    // Remaining length 1: reason code only.
    let with_will = Disconnect::new(ReasonCode::DisconnectWithWillMessage);
    both(&[0xE0, 0x01, 0x04], Packet::Disconnect(with_will), V5);
    // A long form with nothing in it decodes the same and encodes short.
    assert_eq!(
        dec(&[0xE0, 0x02, 0x00, 0x00], V5),
        Packet::Disconnect(Disconnect::new(ReasonCode::Success))
    );
}

#[test]
fn disconnect_with_properties() {
    let bytes = [
        0xE0, 15,   // DISCONNECT, remaining length 15
        0x8B, // server shutting down
        0x0D, // property length 13
        0x11, 0x00, 0x00, 0x00, 0x00, // session expiry interval 0
        0x1C, 0x00, 0x01, b's', // server reference "s"
        0x1F, 0x00, 0x01, b'r', // reason string "r"
    ];
    let mut d = Disconnect::new(ReasonCode::ServerShuttingDown);
    d.properties.session_expiry_interval = Some(0);
    d.properties.server_reference = Some(s("s"));
    d.properties.reason_string = Some(s("r"));
    both(&bytes, Packet::Disconnect(d), V5);
}

#[test]
fn auth() {
    let success = Auth {
        code: ReasonCode::Success,
        properties: Default::default(),
    };
    both(&[0xF0, 0x00], Packet::Auth(success), V5); // remaining length 0: success (§3.15.2.1)
    let reauth = Auth {
        code: ReasonCode::ReAuthenticate,
        properties: Default::default(),
    };
    both(&[0xF0, 0x01, 0x19], Packet::Auth(reauth), V5); // re-authenticate, no properties
    let bytes = [
        0xF0, 12,   // AUTH, remaining length 12
        0x18, // continue authentication
        0x0A, // property length 10
        0x15, 0x00, 0x03, b'S', b'C', b'R', // authentication method "SCR"
        0x16, 0x00, 0x01, 0x01, // authentication data 01
    ];
    let mut a = Auth {
        code: ReasonCode::ContinueAuthentication,
        properties: Default::default(),
    };
    a.properties.authentication_method = Some(s("SCR"));
    a.properties.authentication_data = Some(b(&[1]));
    both(&bytes, Packet::Auth(a), V5);
}

#[test]
fn decoded_fields_share_the_input_buffer() {
    let bytes = [0x30, 0x07, 0x00, 0x01, b't', 0x00, b'a', b'b', b'c'];
    let mut buf = bytes::BytesMut::from(&bytes[..]);
    let base = buf.as_ptr() as usize;
    let Some(Packet::Publish(p)) = decode(&mut buf, &Limits::default(), V5).unwrap() else {
        panic!()
    };
    // Topic and payload point into the original allocation: no copy was made.
    assert_eq!(p.topic.as_bytes().as_ptr() as usize, base + 4);
    assert_eq!(p.payload.as_ptr() as usize, base + 6);
    assert_eq!(&p.payload[..], b"abc");
}
