//! One test per rule of SUBSCRIBE, SUBACK, UNSUBSCRIBE, UNSUBACK, DISCONNECT and AUTH, and
//! one per encode error, each asserting the exact error.

use crate::common::*;
use codec::*;

/// SUBSCRIBE with packet id 1 and one filter with the given options byte.
fn subscribe(v: ProtocolVersion, filter: &[u8], options: u8) -> Vec<u8> {
    let mut body = vec![0x00, 0x01];
    if v == V5 {
        body.push(0); // no properties
    }
    body.extend([0, filter.len() as u8]);
    body.extend(filter);
    body.push(options);
    let mut out = vec![0x82, body.len() as u8];
    out.extend(body);
    out
}

/// UNSUBSCRIBE with packet id 1 and one filter.
fn unsubscribe(v: ProtocolVersion, filter: &[u8]) -> Vec<u8> {
    let mut body = vec![0x00, 0x01];
    if v == V5 {
        body.push(0);
    }
    body.extend([0, filter.len() as u8]);
    body.extend(filter);
    let mut out = vec![0xA2, body.len() as u8];
    out.extend(body);
    out
}

#[test]
fn no_filters_mqtt_3_8_3_3_and_3_10_3_2() {
    let e = dec_err(&[0x82, 0x02, 0x00, 0x01], V4);
    assert_eq!(e, DecodeError::NoSubscribeFilters);
    assert_eq!(e.clause(), "[MQTT-3.8.3-3]");
    assert_eq!(
        dec_err(&[0x82, 0x03, 0x00, 0x01, 0x00], V5),
        DecodeError::NoSubscribeFilters
    );
    let e = dec_err(&[0xA2, 0x02, 0x00, 0x01], V4);
    assert_eq!(e, DecodeError::NoUnsubscribeFilters);
    assert_eq!(e.clause(), "[MQTT-3.10.3-2]");
    assert_eq!(
        dec_err(&[0xA2, 0x03, 0x00, 0x01, 0x00], V5),
        DecodeError::NoUnsubscribeFilters
    );
}

#[test]
fn filter_hash_not_last_mqtt_4_7_1_1() {
    for v in [V3, V4, V5] {
        for f in [&b"a/#/b"[..], b"a#", b"#/"] {
            let e = dec_err(&subscribe(v, f, 0), v);
            assert_eq!(e, DecodeError::Topic(TopicError::HashNotLast), "{f:?}");
            assert_eq!(e.reason_code(), ReasonCode::TopicFilterInvalid);
            assert_eq!(
                dec_err(&unsubscribe(v, f), v),
                DecodeError::Topic(TopicError::HashNotLast)
            );
        }
    }
}

#[test]
fn filter_plus_not_whole_level_mqtt_4_7_1_2() {
    for v in [V3, V4, V5] {
        for f in [&b"a+"[..], b"a/+b", b"++"] {
            let e = dec_err(&subscribe(v, f, 0), v);
            assert_eq!(
                e,
                DecodeError::Topic(TopicError::PlusNotWholeLevel),
                "{f:?}"
            );
            assert_eq!(e.clause(), "[MQTT-4.7.1-2]");
            assert_eq!(
                dec_err(&unsubscribe(v, f), v),
                DecodeError::Topic(TopicError::PlusNotWholeLevel)
            );
        }
    }
}

#[test]
fn empty_filter_mqtt_4_7_3_1() {
    for v in [V3, V4, V5] {
        assert_eq!(
            dec_err(&subscribe(v, b"", 0), v),
            DecodeError::Topic(TopicError::EmptyFilter)
        );
        assert_eq!(
            dec_err(&unsubscribe(v, b""), v),
            DecodeError::Topic(TopicError::EmptyFilter)
        );
    }
}

#[test]
fn shared_subscription_syntax_mqtt_4_8_2_1_and_2() {
    let cases: [(&[u8], TopicError); 6] = [
        (b"$share//a", TopicError::SharedGroupEmpty),
        (b"$share/", TopicError::SharedGroupEmpty),
        (b"$share/g+/a", TopicError::SharedGroupInvalid),
        (b"$share/g#/a", TopicError::SharedGroupInvalid),
        (b"$share/g", TopicError::SharedFilterMissing),
        (b"$share/g/", TopicError::SharedFilterMissing),
    ];
    for v in [V4, V5] {
        for (f, want) in cases {
            let e = dec_err(&subscribe(v, f, 0), v);
            assert_eq!(
                e,
                DecodeError::Topic(want),
                "{:?}",
                String::from_utf8_lossy(f)
            );
            assert_eq!(dec_err(&unsubscribe(v, f), v), DecodeError::Topic(want));
        }
    }
    assert_eq!(
        DecodeError::Topic(TopicError::SharedGroupInvalid).clause(),
        "[MQTT-4.8.2-1]"
    );
    assert_eq!(
        DecodeError::Topic(TopicError::SharedFilterMissing).clause(),
        "[MQTT-4.8.2-2]"
    );
    // The filter after the share name is checked like any filter.
    let e = dec_err(&subscribe(V5, b"$share/g/a#", 0), V5);
    assert_eq!(e, DecodeError::Topic(TopicError::HashNotLast));
}

#[test]
fn no_local_on_shared_subscription_mqtt_3_8_3_4() {
    let e = dec_err(&subscribe(V5, b"$share/g/a", 0x04), V5);
    assert_eq!(e, DecodeError::NoLocalOnShared);
    assert_eq!(e.reason_code(), ReasonCode::ProtocolError);
    // The same option on a plain filter is fine.
    dec(&subscribe(V5, b"a", 0x04), V5);
}

#[test]
fn reserved_subscription_option_bits_mqtt_3_8_3_5() {
    for options in [0x40, 0x80, 0xC1] {
        let e = dec_err(&subscribe(V5, b"a", options), V5);
        assert_eq!(
            e,
            DecodeError::SubscriptionOptionsReserved,
            "{options:#04x}"
        );
        assert_eq!(e.clause(), "[MQTT-3.8.3-5]");
    }
    // 3.x: only the two QoS bits exist.
    for v in [V3, V4] {
        for options in [0x04, 0x08, 0x10, 0x20, 0x40, 0x80] {
            let e = dec_err(&subscribe(v, b"a", options), v);
            assert_eq!(
                e,
                DecodeError::SubscriptionOptionsReserved,
                "{options:#04x}"
            );
        }
    }
}

#[test]
fn subscription_qos_3() {
    for v in [V3, V4, V5] {
        assert_eq!(
            dec_err(&subscribe(v, b"a", 0x03), v),
            DecodeError::SubscriptionQoS3
        );
    }
}

#[test]
fn retain_handling_3() {
    let e = dec_err(&subscribe(V5, b"a", 0x30), V5);
    assert_eq!(e, DecodeError::RetainHandling3);
    assert_eq!(e.reason_code(), ReasonCode::ProtocolError);
}

#[test]
fn suback_codes() {
    // 3.x: 0x03 is no return code.
    let want = DecodeError::InvalidReasonCode {
        packet_type: PacketType::SubAck,
        code: 3,
    };
    assert_eq!(dec_err(&[0x90, 0x03, 0x00, 0x01, 0x03], V4), want);
    // 3.x: 0x87 is a v5 reason only.
    let want = DecodeError::InvalidReasonCode {
        packet_type: PacketType::SubAck,
        code: 0x87,
    };
    assert_eq!(dec_err(&[0x90, 0x03, 0x00, 0x01, 0x87], V4), want);
    // 5.0: "No matching subscribers" belongs to PUBACK.
    let want = DecodeError::InvalidReasonCode {
        packet_type: PacketType::SubAck,
        code: 0x10,
    };
    assert_eq!(dec_err(&[0x90, 0x04, 0x00, 0x01, 0x00, 0x10], V5), want);
}

#[test]
fn acks_without_codes_mqtt_3_9_3_1_and_3_11_3_1() {
    // A SUBACK answers a SUBSCRIBE, which has at least one filter: one code per filter.
    for v in [V3, V4] {
        assert_eq!(
            dec_err(&[0x90, 0x02, 0x00, 0x01], v),
            DecodeError::NoSubAckCodes
        );
    }
    let e = dec_err(&[0x90, 0x03, 0x00, 0x01, 0x00], V5);
    assert_eq!(e, DecodeError::NoSubAckCodes);
    assert_eq!(e.clause(), "[MQTT-3.9.3-1]");
    // 5.0 UNSUBACK likewise (3.x UNSUBACK has no payload at all).
    let e = dec_err(&[0xB0, 0x03, 0x00, 0x01, 0x00], V5);
    assert_eq!(e, DecodeError::NoUnsubAckCodes);
    assert_eq!(e.clause(), "[MQTT-3.11.3-1]");
    let unsuback = UnsubAck {
        packet_id: pid(1),
        codes: vec![],
        properties: Default::default(),
    };
    let mut out = bytes::BytesMut::new();
    let r = encode(&Packet::UnsubAck(unsuback.clone()), V5, &mut out);
    assert_eq!(r, Err(EncodeError::EmptyPayload(PacketType::UnsubAck)));
    assert_eq!(
        enc(&Packet::UnsubAck(unsuback), V4),
        [0xB0, 0x02, 0x00, 0x01]
    );
}

#[test]
fn unsuback_codes() {
    let want = DecodeError::InvalidReasonCode {
        packet_type: PacketType::UnsubAck,
        code: 0x01,
    };
    assert_eq!(dec_err(&[0xB0, 0x04, 0x00, 0x01, 0x00, 0x01], V5), want);
}

#[test]
fn disconnect_and_auth_codes() {
    // "Granted QoS 1" is no DISCONNECT reason; "Unspecified error" is no AUTH reason.
    let want = DecodeError::InvalidReasonCode {
        packet_type: PacketType::Disconnect,
        code: 0x01,
    };
    assert_eq!(dec_err(&[0xE0, 0x01, 0x01], V5), want);
    let want = DecodeError::InvalidReasonCode {
        packet_type: PacketType::Auth,
        code: 0x80,
    };
    assert_eq!(dec_err(&[0xF0, 0x01, 0x80], V5), want);
    assert_eq!(want.clause(), "§2.4");
}

#[test]
fn encode_errors() {
    let mut out = bytes::BytesMut::new();
    // QoS and packet id disagree.
    let p = publish(QoS::AtLeastOnce, None, "t", b"");
    assert_eq!(
        encode(&Packet::Publish(p), V4, &mut out),
        Err(EncodeError::PacketIdMismatch)
    );
    let p = publish(QoS::AtMostOnce, Some(1), "t", b"");
    assert_eq!(
        encoded_len(&Packet::Publish(p), V4),
        Err(EncodeError::PacketIdMismatch)
    );
    // DUP at QoS 0.
    let mut p = publish(QoS::AtMostOnce, None, "t", b"");
    p.dup = true;
    assert_eq!(
        encode(&Packet::Publish(p), V5, &mut out),
        Err(EncodeError::DupWithQoS0)
    );
    // Strings and binary data over 65,535 bytes.
    let long = "a".repeat(65_536);
    let p = publish(QoS::AtMostOnce, None, "t", b"");
    let p = Publish {
        topic: ByteStr::from(long.as_str()),
        ..p
    };
    assert_eq!(
        encode(&Packet::Publish(p), V4, &mut out),
        Err(EncodeError::StringTooLong(65_536))
    );
    let mut c = connect(V4, "c");
    c.username = Some(s("u"));
    c.password = Some(bytes::Bytes::from(vec![0u8; 65_536]));
    let r = encode(&Packet::Connect(Box::new(c)), V4, &mut out);
    assert_eq!(r, Err(EncodeError::BinaryTooLong(65_536)));
    // A subscription identifier beyond the variable byte integer range.
    let mut p = publish(QoS::AtMostOnce, None, "t", b"");
    p.properties
        .subscription_identifiers
        .push(std::num::NonZeroU32::new(268_435_456).unwrap());
    assert_eq!(
        encode(&Packet::Publish(p), V5, &mut out),
        Err(EncodeError::VarIntTooLarge(268_435_456))
    );
    // SUBSCRIBE, UNSUBSCRIBE and SUBACK with nothing in them.
    let sub = Subscribe {
        packet_id: pid(1),
        filters: vec![],
        properties: Default::default(),
    };
    let r = encode(&Packet::Subscribe(sub), V5, &mut out);
    assert_eq!(r, Err(EncodeError::EmptyPayload(PacketType::Subscribe)));
    let unsub = Unsubscribe {
        packet_id: pid(1),
        filters: vec![],
        user_properties: vec![],
    };
    let r = encode(&Packet::Unsubscribe(unsub), V4, &mut out);
    assert_eq!(r, Err(EncodeError::EmptyPayload(PacketType::Unsubscribe)));
    let suback = SubAck {
        packet_id: pid(1),
        codes: vec![],
        properties: Default::default(),
    };
    let r = encode(&Packet::SubAck(suback), V4, &mut out);
    assert_eq!(r, Err(EncodeError::EmptyPayload(PacketType::SubAck)));
    // A SUBACK code that is neither a grant nor a failure has no 3.x form.
    let suback = SubAck {
        packet_id: pid(1),
        codes: vec![ReasonCode::NoMatchingSubscribers],
        properties: Default::default(),
    };
    let r = encode(&Packet::SubAck(suback), V4, &mut out);
    let want = EncodeError::ReasonNotRepresentable {
        packet_type: PacketType::SubAck,
        code: ReasonCode::NoMatchingSubscribers,
    };
    assert_eq!(r, Err(want));
    // And no error wrote anything.
    assert!(out.is_empty());
}

#[test]
fn remaining_length_over_the_protocol_maximum() {
    // A payload that fills the largest remaining length exactly, then one topic byte more. The
    // zeroed allocation is never touched, so this costs no real memory.
    let payload = bytes::Bytes::from(vec![0u8; 268_435_455 - 3]);
    let p = Publish {
        payload,
        ..publish(QoS::AtMostOnce, None, "t", b"")
    };
    assert_eq!(
        encoded_len(&Packet::Publish(p.clone()), V4),
        Ok(268_435_455 + 5)
    );
    let p = Publish {
        topic: s("tt"),
        ..p
    };
    assert_eq!(
        encoded_len(&Packet::Publish(p), V4),
        Err(EncodeError::PacketTooLarge(268_435_456))
    );
}
