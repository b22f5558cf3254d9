//! MQTT 3.1 (level 3, "MQIsdp") and 3.1.1 (level 4): every control packet both ways.
//! The two versions share every packet but CONNECT, so most tests run for both.

use crate::common::*;
use codec::*;

#[test]
fn connect_v311_all_fields() {
    let bytes = [
        0x10, 36, // CONNECT, remaining length 36
        0x00, 0x04, b'M', b'Q', b'T', b'T', // protocol name "MQTT"
        0x04, // protocol level 4 (3.1.1)
        0xEE, // flags: username, password, will retain, will QoS 1, will, clean session
        0x00, 0x3C, // keep alive 60 s
        0x00, 0x04, b't', b'e', b's', b't', // client id "test"
        0x00, 0x03, b'w', b'/', b't', // will topic "w/t"
        0x00, 0x03, b'b', b'y', b'e', // will payload "bye"
        0x00, 0x04, b'u', b's', b'e', b'r', // username "user"
        0x00, 0x02, b'p', b'w', // password "pw"
    ];
    let mut c = connect(V4, "test");
    c.will = Some(LastWill {
        topic: s("w/t"),
        payload: b(b"bye"),
        qos: QoS::AtLeastOnce,
        retain: true,
        properties: WillProperties::default(),
    });
    c.username = Some(s("user"));
    c.password = Some(b(b"pw"));
    both(&bytes, Packet::Connect(Box::new(c)), V4);
}

#[test]
fn connect_v311_minimal_empty_client_id() {
    let bytes = [
        0x10, 12, // CONNECT, remaining length 12
        0x00, 0x04, b'M', b'Q', b'T', b'T', // "MQTT"
        0x04, // level 4
        0x02, // flags: clean session only
        0x00, 0x00, // keep alive 0: disabled
        0x00, 0x00, // client id "" (allowed with clean session, [MQTT-3.1.3-7])
    ];
    let mut c = connect(V4, "");
    c.keep_alive = 0;
    both(&bytes, Packet::Connect(Box::new(c)), V4);
}

#[test]
fn connect_v31_mqisdp() {
    let bytes = [
        0x10, 18, // CONNECT, remaining length 18
        0x00, 0x06, b'M', b'Q', b'I', b's', b'd', b'p', // protocol name "MQIsdp"
        0x03, // protocol level 3 (3.1)
        0x00, // flags: persistent session, nothing else
        0x00, 0x0A, // keep alive 10 s
        0x00, 0x04, b'd', b'e', b'v', b'1', // client id "dev1"
    ];
    let mut c = connect(V3, "dev1");
    c.clean_start = false;
    c.keep_alive = 10;
    both(&bytes, Packet::Connect(Box::new(c)), V3);
}

#[test]
fn connect_version_comes_from_the_packet() {
    // A 3.1 CONNECT decoded on a connection whose version is not known yet (V5 passed).
    let bytes = [
        0x10, 16, 0x00, 0x06, b'M', b'Q', b'I', b's', b'd', b'p', 0x03, 0x02, 0x00, 0x00, 0x00,
        0x02, b'i', b'd',
    ];
    let Packet::Connect(c) = dec(&bytes, V5) else {
        panic!("not a CONNECT")
    };
    assert_eq!(c.protocol, V3);
    assert_eq!(c.client_id.as_str(), "id");
    // And encoding follows `protocol`, whatever version is passed.
    assert_eq!(enc(&Packet::Connect(c), V5), bytes);
}

#[test]
fn connack_both_versions() {
    for v in [V3, V4] {
        let accepted = [
            0x20, 0x02, // CONNACK, remaining length 2
            0x00, // acknowledge flags: no session present
            0x00, // return code 0: accepted
        ];
        let p = ConnAck {
            session_present: false,
            code: ReasonCode::Success,
            properties: Default::default(),
        };
        both(&accepted, Packet::ConnAck(p), v);
        let refused = [0x20, 0x02, 0x00, 0x05]; // return code 5: not authorized
        let p = ConnAck {
            session_present: false,
            code: ReasonCode::NotAuthorized,
            properties: Default::default(),
        };
        both(&refused, Packet::ConnAck(p), v);
    }
    let resumed = [0x20, 0x02, 0x01, 0x00]; // session present, accepted (3.1.1 §3.2.2.2)
    let p = ConnAck {
        session_present: true,
        code: ReasonCode::Success,
        properties: Default::default(),
    };
    both(&resumed, Packet::ConnAck(p), V4);
}

#[test]
fn connack_v3_maps_reasons_to_return_codes() {
    let cases = [
        (ReasonCode::UnsupportedProtocolVersion, 0x01),
        (ReasonCode::ClientIdentifierNotValid, 0x02),
        (ReasonCode::ServerBusy, 0x03),
        (ReasonCode::BadUserNameOrPassword, 0x04),
        (ReasonCode::Banned, 0x05),
    ];
    for (code, rc) in cases {
        let p = Packet::ConnAck(ConnAck {
            session_present: false,
            code,
            properties: Default::default(),
        });
        assert_eq!(enc(&p, V4), [0x20, 0x02, 0x00, rc], "{code:?}");
    }
    // The v5-only properties are dropped for a 3.x peer.
    let mut c = ConnAck {
        session_present: false,
        code: ReasonCode::Success,
        properties: Default::default(),
    };
    c.properties.reason_string = Some(s("hello"));
    assert_eq!(enc(&Packet::ConnAck(c), V4), [0x20, 0x02, 0x00, 0x00]);
}

#[test]
fn publish_qos0() {
    for v in [V3, V4] {
        let bytes = [
            0x30, 10, // PUBLISH, DUP 0, QoS 0, RETAIN 0; remaining length 10
            0x00, 0x03, b'a', b'/', b'b', // topic "a/b"
            b'h', b'e', b'l', b'l', b'o', // payload "hello" (no packet id at QoS 0)
        ];
        both(
            &bytes,
            Packet::Publish(publish(QoS::AtMostOnce, None, "a/b", b"hello")),
            v,
        );
    }
}

#[test]
fn publish_qos1_dup_retain() {
    for v in [V3, V4] {
        let bytes = [
            0x3B, 12, // PUBLISH, DUP 1, QoS 1, RETAIN 1; remaining length 12
            0x00, 0x03, b'a', b'/', b'b', // topic "a/b"
            0x00, 0x0A, // packet id 10
            b'h', b'e', b'l', b'l', b'o', // payload
        ];
        let mut p = publish(QoS::AtLeastOnce, Some(10), "a/b", b"hello");
        p.dup = true;
        p.retain = true;
        both(&bytes, Packet::Publish(p), v);
    }
}

#[test]
fn publish_qos2_empty_payload() {
    for v in [V3, V4] {
        let bytes = [
            0x34, 5, // PUBLISH, QoS 2; remaining length 5
            0x00, 0x01, b'x', // topic "x"
            0xFF, 0xFF, // packet id 65535
                  // empty payload
        ];
        both(
            &bytes,
            Packet::Publish(publish(QoS::ExactlyOnce, Some(0xFFFF), "x", b"")),
            v,
        );
    }
}

#[test]
fn publish_v3_drops_properties() {
    let mut p = publish(QoS::AtMostOnce, None, "a", b"p");
    p.properties.message_expiry_interval = Some(5);
    p.properties.user_properties.push((s("k"), s("v")));
    assert_eq!(
        enc(&Packet::Publish(p), V4),
        [0x30, 0x04, 0x00, 0x01, b'a', b'p']
    );
}

#[test]
fn pub_acks() {
    for v in [V3, V4] {
        // Each is the fixed header then the packet id 0x1234; PUBREL's flags are 0b0010.
        both(
            &[0x40, 0x02, 0x12, 0x34],
            Packet::PubAck(PubAck::new(pid(0x1234))),
            v,
        );
        both(
            &[0x50, 0x02, 0x12, 0x34],
            Packet::PubRec(PubAck::new(pid(0x1234))),
            v,
        );
        both(
            &[0x62, 0x02, 0x12, 0x34],
            Packet::PubRel(PubAck::new(pid(0x1234))),
            v,
        );
        both(
            &[0x70, 0x02, 0x12, 0x34],
            Packet::PubComp(PubAck::new(pid(0x1234))),
            v,
        );
    }
}

#[test]
fn pub_ack_failure_is_not_expressible_in_v3() {
    let mut a = PubAck::new(pid(1));
    a.code = ReasonCode::NotAuthorized;
    let mut out = bytes::BytesMut::new();
    assert_eq!(
        encode(&Packet::PubAck(a), V4, &mut out),
        Err(EncodeError::ReasonNotRepresentable {
            packet_type: PacketType::PubAck,
            code: ReasonCode::NotAuthorized
        })
    );
    assert!(out.is_empty(), "nothing written on error");
}

#[test]
fn subscribe_two_filters() {
    for v in [V3, V4] {
        let bytes = [
            0x82, 14, // SUBSCRIBE, flags 0b0010; remaining length 14
            0x00, 0x01, // packet id 1
            0x00, 0x03, b'a', b'/', b'b', // filter "a/b"
            0x01, // requested QoS 1
            0x00, 0x03, b'c', b'/', b'#', // filter "c/#"
            0x02, // requested QoS 2
        ];
        let p = Subscribe {
            packet_id: pid(1),
            filters: vec![
                SubscribeFilter::new("a/b", QoS::AtLeastOnce),
                SubscribeFilter::new("c/#", QoS::ExactlyOnce),
            ],
            properties: Default::default(),
        };
        both(&bytes, Packet::Subscribe(p), v);
    }
}

#[test]
fn subscribe_v3_drops_v5_options() {
    let mut f = SubscribeFilter::new("a", QoS::AtLeastOnce);
    f.retain_as_published = true;
    f.retain_handling = RetainHandling::DoNotSend;
    let p = Subscribe {
        packet_id: pid(2),
        filters: vec![f],
        properties: Default::default(),
    };
    assert_eq!(
        enc(&Packet::Subscribe(p), V4),
        [0x82, 0x06, 0x00, 0x02, 0x00, 0x01, b'a', 0x01]
    );
}

#[test]
fn suback_return_codes() {
    for v in [V3, V4] {
        let bytes = [
            0x90, 0x06, // SUBACK, remaining length 6
            0x00, 0x01, // packet id 1
            0x00, // granted QoS 0
            0x01, // granted QoS 1
            0x02, // granted QoS 2
            0x80, // failure
        ];
        let codes = vec![
            ReasonCode::Success,
            ReasonCode::GrantedQoS1,
            ReasonCode::GrantedQoS2,
            ReasonCode::UnspecifiedError,
        ];
        both(
            &bytes,
            Packet::SubAck(SubAck {
                packet_id: pid(1),
                codes,
                properties: Default::default(),
            }),
            v,
        );
    }
    // Every v5 failure reason becomes 0x80 for a 3.x subscriber.
    let codes = vec![
        ReasonCode::NotAuthorized,
        ReasonCode::WildcardSubscriptionsNotSupported,
    ];
    let p = Packet::SubAck(SubAck {
        packet_id: pid(7),
        codes,
        properties: Default::default(),
    });
    assert_eq!(enc(&p, V4), [0x90, 0x04, 0x00, 0x07, 0x80, 0x80]);
}

#[test]
fn unsubscribe_and_unsuback() {
    for v in [V3, V4] {
        let bytes = [
            0xA2, 12, // UNSUBSCRIBE, flags 0b0010; remaining length 12
            0x00, 0x02, // packet id 2
            0x00, 0x03, b'a', b'/', b'b', // filter "a/b"
            0x00, 0x03, b'c', b'/', b'#', // filter "c/#"
        ];
        let p = Unsubscribe {
            packet_id: pid(2),
            filters: vec![s("a/b"), s("c/#")],
            user_properties: vec![],
        };
        both(&bytes, Packet::Unsubscribe(p), v);
        let bytes = [
            0xB0, 0x02, // UNSUBACK, remaining length 2
            0x00, 0x02, // packet id 2, and no payload in 3.x
        ];
        let p = UnsubAck {
            packet_id: pid(2),
            codes: vec![],
            properties: Default::default(),
        };
        both(&bytes, Packet::UnsubAck(p), v);
    }
    // 5.0 reason codes are dropped for a 3.x peer.
    let p = UnsubAck {
        packet_id: pid(2),
        codes: vec![ReasonCode::NoSubscriptionExisted],
        properties: Default::default(),
    };
    assert_eq!(enc(&Packet::UnsubAck(p), V4), [0xB0, 0x02, 0x00, 0x02]);
}

#[test]
fn ping_and_disconnect() {
    for v in [V3, V4] {
        both(&[0xC0, 0x00], Packet::PingReq, v); // PINGREQ, remaining length 0
        both(&[0xD0, 0x00], Packet::PingResp, v); // PINGRESP, remaining length 0
        both(
            &[0xE0, 0x00],
            Packet::Disconnect(Disconnect::new(ReasonCode::Success)),
            v,
        ); // DISCONNECT
           // A v5 reason on DISCONNECT has no 3.x form: the packet stays bodiless.
        assert_eq!(
            enc(
                &Packet::Disconnect(Disconnect::new(ReasonCode::ServerShuttingDown)),
                v
            ),
            [0xE0, 0x00]
        );
    }
}

#[test]
fn auth_does_not_exist_in_v3() {
    let auth = Packet::Auth(Auth {
        code: ReasonCode::Success,
        properties: Default::default(),
    });
    let mut out = bytes::BytesMut::new();
    assert_eq!(
        encode(&auth, V4, &mut out),
        Err(EncodeError::NotInVersion(PacketType::Auth))
    );
    assert_eq!(
        encoded_len(&auth, V3),
        Err(EncodeError::NotInVersion(PacketType::Auth))
    );
    assert_eq!(
        dec_err(&[0xF0, 0x00], V4),
        DecodeError::ReservedPacketType(15)
    );
    assert_eq!(
        dec_err(&[0xF0, 0x00], V3),
        DecodeError::ReservedPacketType(15)
    );
}

#[test]
fn several_packets_in_one_buffer() {
    let mut buf = bytes::BytesMut::from(&[0xC0, 0x00, 0x40, 0x02, 0x00, 0x05, 0xD0][..]);
    let limits = Limits::default();
    assert_eq!(decode(&mut buf, &limits, V4), Ok(Some(Packet::PingReq)));
    assert_eq!(
        decode(&mut buf, &limits, V4),
        Ok(Some(Packet::PubAck(PubAck::new(pid(5)))))
    );
    assert_eq!(decode(&mut buf, &limits, V4), Ok(None));
    assert_eq!(&buf[..], &[0xD0]);
}
