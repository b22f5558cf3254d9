//! One test per decoding rule of the fixed header, strings, CONNECT, CONNACK and PUBLISH,
//! each asserting the exact error (and so its clause). The SUBSCRIBE family, reason codes
//! and encode errors are in `negative_sub.rs`; properties in `props.rs`.

use crate::common::*;
use codec::*;

/// A CONNECT for `level`/name with the given flags and payload after keep alive.
fn connect_bytes(name: &[u8], level: u8, flags: u8, rest: &[u8]) -> Vec<u8> {
    let mut body = vec![0, name.len() as u8];
    body.extend(name);
    body.extend([level, flags, 0, 60]);
    if level == 5 {
        body.push(0); // no properties
    }
    body.extend(rest);
    let mut out = vec![0x10, body.len() as u8];
    out.extend(body);
    out
}

#[test]
fn reserved_flag_bits_mqtt_2_1_3_1() {
    let cases: [(u8, PacketType); 14] = [
        (0x11, PacketType::Connect),
        (0x28, PacketType::ConnAck),
        (0x41, PacketType::PubAck),
        (0x52, PacketType::PubRec),
        (0x60, PacketType::PubRel), // PUBREL needs 0b0010
        (0x63, PacketType::PubRel),
        (0x74, PacketType::PubComp),
        (0x80, PacketType::Subscribe), // SUBSCRIBE needs 0b0010
        (0x92, PacketType::SubAck),
        (0xA3, PacketType::Unsubscribe), // UNSUBSCRIBE needs 0b0010
        (0xB1, PacketType::UnsubAck),
        (0xC2, PacketType::PingReq),
        (0xD8, PacketType::PingResp),
        (0xE1, PacketType::Disconnect),
    ];
    for v in [V3, V4, V5] {
        for (first, packet_type) in cases {
            // The first byte alone is enough to refuse it.
            let e = dec_err(&[first], v);
            assert_eq!(
                e,
                DecodeError::ReservedFlags {
                    packet_type,
                    flags: first & 0x0F
                },
                "{first:#04x}"
            );
            assert_eq!(e.clause(), "[MQTT-2.1.3-1]");
        }
    }
    assert_eq!(
        dec_err(&[0xF4, 0x00], V5),
        DecodeError::ReservedFlags {
            packet_type: PacketType::Auth,
            flags: 4
        }
    );
}

#[test]
fn reserved_packet_type_0() {
    for v in [V3, V4, V5] {
        assert_eq!(
            dec_err(&[0x00, 0x00], v),
            DecodeError::ReservedPacketType(0)
        );
    }
}

#[test]
fn remaining_length_over_four_bytes() {
    let e = dec_err(&[0x30, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F], V4);
    assert_eq!(e, DecodeError::RemainingLengthTooLong);
    assert_eq!(e.reason_code(), ReasonCode::MalformedPacket);
    // Known as soon as the fourth length byte still continues.
    assert_eq!(
        dec_err(&[0x30, 0x80, 0x80, 0x80, 0x80], V4),
        DecodeError::RemainingLengthTooLong
    );
}

#[test]
fn remaining_length_not_minimal_mqtt_1_5_5_1() {
    // PINGREQ with remaining length 0 spelled "80 00".
    assert_eq!(
        dec_err(&[0xC0, 0x80, 0x00], V4),
        DecodeError::NonMinimalVarInt
    );
}

#[test]
fn fields_running_past_the_packet() {
    // PUBLISH: topic length 5, only one byte left in the packet.
    assert_eq!(
        dec_err(&[0x30, 0x03, 0x00, 0x05, b'a'], V4),
        DecodeError::UnexpectedEnd
    );
    // QoS 1 PUBLISH that ends before its packet id.
    assert_eq!(
        dec_err(&[0x32, 0x03, 0x00, 0x01, b'a'], V4),
        DecodeError::UnexpectedEnd
    );
    // PUBACK with a one-byte packet id.
    assert_eq!(dec_err(&[0x40, 0x01, 0x00], V4), DecodeError::UnexpectedEnd);
    // CONNECT that stops after the protocol level.
    assert_eq!(
        dec_err(&[0x10, 0x07, 0, 4, b'M', b'Q', b'T', b'T', 4], V4),
        DecodeError::UnexpectedEnd
    );
}

#[test]
fn trailing_bytes_after_the_last_field() {
    assert_eq!(dec_err(&[0xC0, 0x01, 0x00], V4), DecodeError::TrailingBytes); // PINGREQ with a body
    assert_eq!(dec_err(&[0xD0, 0x01, 0x00], V5), DecodeError::TrailingBytes); // PINGRESP with a body
    assert_eq!(dec_err(&[0xE0, 0x01, 0x00], V4), DecodeError::TrailingBytes); // 3.x DISCONNECT with a body
    assert_eq!(
        dec_err(&[0x40, 0x03, 0x00, 0x01, 0x00], V4),
        DecodeError::TrailingBytes
    ); // 3.x PUBACK
    assert_eq!(
        dec_err(&[0xB0, 0x03, 0x00, 0x01, 0x00], V4),
        DecodeError::TrailingBytes
    ); // 3.x UNSUBACK
    assert_eq!(
        dec_err(&[0x20, 0x03, 0x00, 0x00, 0x00], V4),
        DecodeError::TrailingBytes
    ); // 3.x CONNACK
       // v5 PUBACK: reason, empty properties, then a stray byte.
    assert_eq!(
        dec_err(&[0x40, 0x05, 0x00, 0x01, 0x00, 0x00, 0xFF], V5),
        DecodeError::TrailingBytes
    );
    // CONNECT with a byte after the client id.
    let bytes = connect_bytes(b"MQTT", 4, 0x02, &[0, 1, b'c', 0xFF]);
    assert_eq!(dec_err(&bytes, V4), DecodeError::TrailingBytes);
}

#[test]
fn malformed_utf8_mqtt_1_5_4_1() {
    // Topic bytes FF FE are not UTF-8.
    let e = dec_err(&[0x30, 0x04, 0x00, 0x02, 0xFF, 0xFE], V4);
    assert_eq!(e, DecodeError::InvalidUtf8);
    assert_eq!(e.clause(), "[MQTT-1.5.4-1]");
    // A UTF-16 surrogate (U+D800 as ED A0 80) is not allowed either.
    assert_eq!(
        dec_err(&[0x30, 0x05, 0x00, 0x03, 0xED, 0xA0, 0x80], V4),
        DecodeError::InvalidUtf8
    );
    // Overlong encoding of '/' (C0 AF).
    assert_eq!(
        dec_err(&[0x30, 0x04, 0x00, 0x02, 0xC0, 0xAF], V4),
        DecodeError::InvalidUtf8
    );
    // In a client id.
    let bytes = connect_bytes(b"MQTT", 4, 0x02, &[0, 1, 0x80]);
    assert_eq!(dec_err(&bytes, V4), DecodeError::InvalidUtf8);
}

#[test]
fn null_character_mqtt_1_5_4_2() {
    let e = dec_err(&[0x30, 0x05, 0x00, 0x03, b'a', 0x00, b'b'], V4);
    assert_eq!(e, DecodeError::NullCharacter);
    assert_eq!(e.clause(), "[MQTT-1.5.4-2]");
    // In a user name.
    let bytes = connect_bytes(b"MQTT", 4, 0x82, &[0, 1, b'c', 0, 1, 0]);
    assert_eq!(dec_err(&bytes, V4), DecodeError::NullCharacter);
}

#[test]
fn packet_id_zero_mqtt_2_2_1_3() {
    let cases: [&[u8]; 9] = [
        &[0x32, 0x05, 0x00, 0x01, b't', 0x00, 0x00], // PUBLISH QoS 1
        &[0x34, 0x05, 0x00, 0x01, b't', 0x00, 0x00], // PUBLISH QoS 2
        &[0x40, 0x02, 0x00, 0x00],                   // PUBACK
        &[0x50, 0x02, 0x00, 0x00],                   // PUBREC
        &[0x62, 0x02, 0x00, 0x00],                   // PUBREL
        &[0x70, 0x02, 0x00, 0x00],                   // PUBCOMP
        &[0x82, 0x06, 0x00, 0x00, 0x00, 0x01, b'a', 0x00], // SUBSCRIBE
        &[0x90, 0x03, 0x00, 0x00, 0x00],             // SUBACK
        &[0xA2, 0x05, 0x00, 0x00, 0x00, 0x01, b'a'], // UNSUBSCRIBE
    ];
    for bytes in cases {
        let e = dec_err(bytes, V4);
        assert_eq!(e, DecodeError::PacketIdZero, "{bytes:02x?}");
        assert_eq!(e.clause(), "[MQTT-2.2.1-3]");
    }
    assert_eq!(
        dec_err(&[0xB0, 0x02, 0x00, 0x00], V4),
        DecodeError::PacketIdZero
    ); // UNSUBACK
}

#[test]
fn wildcards_in_topic_name_mqtt_3_3_2_2() {
    for v in [V3, V4, V5] {
        let props: &[u8] = if v == V5 { &[0] } else { &[] };
        for topic in [b"a/+", b"a/#", b"+/b"] {
            let mut bytes = vec![0x30, (5 + props.len()) as u8, 0x00, 0x03];
            bytes.extend(topic);
            bytes.extend(props);
            let e = dec_err(&bytes, v);
            assert_eq!(e, DecodeError::Topic(TopicError::WildcardInName), "{v:?}");
            assert_eq!(e.reason_code(), ReasonCode::TopicNameInvalid);
            assert_eq!(e.clause(), "[MQTT-3.3.2-2]");
        }
    }
    // A will topic is a topic name too.
    let bytes = connect_bytes(b"MQTT", 4, 0x06, &[0, 1, b'c', 0, 1, b'#', 0, 0]);
    assert_eq!(
        dec_err(&bytes, V4),
        DecodeError::Topic(TopicError::WildcardInName)
    );
}

#[test]
fn empty_topic_name_mqtt_4_7_3_1() {
    // 3.x: never allowed.
    assert_eq!(
        dec_err(&[0x30, 0x03, 0x00, 0x00, b'x'], V4),
        DecodeError::Topic(TopicError::EmptyName)
    );
    // 5.0 without a topic alias.
    let e = dec_err(&[0x30, 0x04, 0x00, 0x00, 0x00, b'x'], V5);
    assert_eq!(e, DecodeError::Topic(TopicError::EmptyName));
    assert_eq!(e.clause(), "[MQTT-4.7.3-1]");
    // Empty will topic.
    let bytes = connect_bytes(b"MQTT", 4, 0x06, &[0, 1, b'c', 0, 0, 0, 0]);
    assert_eq!(
        dec_err(&bytes, V4),
        DecodeError::Topic(TopicError::EmptyName)
    );
}

#[test]
fn publish_qos_3_mqtt_3_3_1_4() {
    for v in [V3, V4, V5] {
        // 0x36: QoS bits 11. Refused on the first byte.
        assert_eq!(dec_err(&[0x36], v), DecodeError::PublishQoS3);
        assert_eq!(dec_err(&[0x3F, 0x00], v), DecodeError::PublishQoS3);
    }
}

#[test]
fn dup_with_qos_0_mqtt_3_3_1_2() {
    for v in [V3, V4, V5] {
        let e = dec_err(&[0x38, 0x03, 0x00, 0x01, b't'], v);
        assert_eq!(e, DecodeError::DupWithQoS0);
        assert_eq!(e.clause(), "[MQTT-3.3.1-2]");
    }
}

#[test]
fn protocol_name_and_level_mqtt_3_1_2_1_and_2() {
    let e = dec_err(&connect_bytes(b"MQTX", 4, 0x02, &[0, 1, b'c']), V4);
    assert_eq!(e, DecodeError::InvalidProtocolName);
    assert_eq!(e.clause(), "[MQTT-3.1.2-1]");
    assert_eq!(
        dec_err(&connect_bytes(b"mqtt", 4, 0x02, &[0, 1, b'c']), V4),
        DecodeError::InvalidProtocolName
    );
    // Right name, unknown level: Unsupported Protocol Version (CONNACK 0x01 / 0x84).
    for (name, level) in [
        (&b"MQTT"[..], 6u8),
        (b"MQTT", 3),
        (b"MQTT", 0),
        (b"MQIsdp", 4),
        (b"MQIsdp", 5),
    ] {
        let e = dec_err(&connect_bytes(name, level, 0x02, &[0, 1, b'c']), V4);
        assert_eq!(e, DecodeError::UnsupportedProtocolLevel(level));
        assert_eq!(e.reason_code(), ReasonCode::UnsupportedProtocolVersion);
        assert_eq!(e.clause(), "[MQTT-3.1.2-2]");
    }
}

#[test]
fn connect_reserved_flag_mqtt_3_1_2_3() {
    for (name, level) in [(&b"MQIsdp"[..], 3u8), (b"MQTT", 4), (b"MQTT", 5)] {
        let e = dec_err(&connect_bytes(name, level, 0x03, &[0, 1, b'c']), V4);
        assert_eq!(e, DecodeError::ConnectReservedFlag);
        assert_eq!(e.to_string(), "CONNECT reserved flag is set [MQTT-3.1.2-3]");
    }
}

#[test]
fn will_flags_without_will() {
    // Will QoS 1 (0x08) without the will flag.
    let e = dec_err(&connect_bytes(b"MQTT", 4, 0x0A, &[0, 1, b'c']), V4);
    assert_eq!(e, DecodeError::WillQoSWithoutWill);
    assert_eq!(e.clause(), "[MQTT-3.1.2-11]");
    // Will retain (0x20) without the will flag.
    let e = dec_err(&connect_bytes(b"MQTT", 5, 0x22, &[0, 1, b'c']), V5);
    assert_eq!(e, DecodeError::WillRetainWithoutWill);
    assert_eq!(e.clause(), "[MQTT-3.1.2-13]");
}

#[test]
fn will_qos_3() {
    // Will flag with QoS bits 11 (0x18).
    let e = dec_err(
        &connect_bytes(b"MQTT", 4, 0x1E, &[0, 1, b'c', 0, 1, b'w', 0, 0]),
        V4,
    );
    assert_eq!(e, DecodeError::WillQoS3);
    assert_eq!(e.reason_code(), ReasonCode::MalformedPacket);
}

#[test]
fn password_without_username_mqtt_3_1_2_22() {
    let rest = [0, 1, b'c', 0, 1, b'p'];
    assert_eq!(
        dec_err(&connect_bytes(b"MQTT", 4, 0x42, &rest), V4),
        DecodeError::PasswordWithoutUsername
    );
    assert_eq!(
        dec_err(&connect_bytes(b"MQIsdp", 3, 0x42, &rest), V3),
        DecodeError::PasswordWithoutUsername
    );
    // Allowed in 5.0 (tested in v5.rs); and the encoder refuses to write it for 3.x.
    let mut c = connect(V4, "c");
    c.password = Some(b(b"p"));
    let mut out = bytes::BytesMut::new();
    let r = encode(&Packet::Connect(Box::new(c)), V4, &mut out);
    assert_eq!(r, Err(EncodeError::PasswordWithoutUsername));
}

#[test]
fn empty_client_id_mqtt_3_1_3_8() {
    // 3.1.1 without clean session.
    let e = dec_err(&connect_bytes(b"MQTT", 4, 0x00, &[0, 0]), V4);
    assert_eq!(e, DecodeError::EmptyClientId);
    assert_eq!(e.reason_code(), ReasonCode::ClientIdentifierNotValid);
    // 3.1 always needs 1 to 23 characters.
    assert_eq!(
        dec_err(&connect_bytes(b"MQIsdp", 3, 0x02, &[0, 0]), V3),
        DecodeError::EmptyClientId
    );
}

#[test]
fn mqtt_3_1_client_id_over_23_characters_is_rejected() {
    let id = [b'a'; 24];
    let mut rest = vec![0, 24];
    rest.extend_from_slice(&id);
    let e = dec_err(&connect_bytes(b"MQIsdp", 3, 0x02, &rest), V3);
    assert_eq!(e, DecodeError::ClientIdTooLongFor31(24));
    assert_eq!(e.reason_code(), ReasonCode::ClientIdentifierNotValid);
    // 23 is fine in 3.1, and 24 in 3.1.1 (which sets no upper bound).
    let mut ok = vec![0, 23];
    ok.extend_from_slice(&id[..23]);
    for (bytes, v) in [
        (connect_bytes(b"MQIsdp", 3, 0x02, &ok), V3),
        (connect_bytes(b"MQTT", 4, 0x02, &rest), V4),
    ] {
        let mut buf = bytes::BytesMut::from(&bytes[..]);
        assert!(matches!(
            decode(&mut buf, &Limits::default(), v),
            Ok(Some(Packet::Connect(_)))
        ));
    }
}

#[test]
fn connack_reserved_bits_mqtt_3_2_2_1() {
    for v in [V3, V4] {
        assert_eq!(
            dec_err(&[0x20, 0x02, 0x02, 0x00], v),
            DecodeError::ConnAckReservedFlags
        );
    }
    assert_eq!(
        dec_err(&[0x20, 0x03, 0x80, 0x00, 0x00], V5),
        DecodeError::ConnAckReservedFlags
    );
}

#[test]
fn connack_session_present_on_refusal() {
    assert_eq!(
        dec_err(&[0x20, 0x02, 0x01, 0x05], V4),
        DecodeError::SessionPresentOnError
    );
    let e = dec_err(&[0x20, 0x03, 0x01, 0x87, 0x00], V5);
    assert_eq!(e, DecodeError::SessionPresentOnError);
    assert_eq!(e.clause(), "[MQTT-3.2.2-6]");
}

#[test]
fn connack_unknown_return_codes() {
    // 3.1.1 return codes stop at 5.
    let want = DecodeError::InvalidReasonCode {
        packet_type: PacketType::ConnAck,
        code: 6,
    };
    assert_eq!(dec_err(&[0x20, 0x02, 0x00, 0x06], V4), want);
    // 5.0: "Granted QoS 1" is no CONNACK reason.
    let want = DecodeError::InvalidReasonCode {
        packet_type: PacketType::ConnAck,
        code: 1,
    };
    assert_eq!(dec_err(&[0x20, 0x03, 0x00, 0x01, 0x00], V5), want);
}
