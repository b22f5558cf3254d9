//! The specification's own examples, end to end through `decode` and `encode`.

use crate::common::*;
use codec::*;

#[test]
fn remaining_length_table_1_5_5() {
    // §1.5.5 (3.1.1 §2.2.3, table 2.4): the values at each size boundary, here as the
    // remaining length of a PUBLISH whose payload makes up the rest.
    let table: [(u32, &[u8]); 8] = [
        (0, &[0x00]),
        (127, &[0x7F]),
        (128, &[0x80, 0x01]),
        (16_383, &[0xFF, 0x7F]),
        (16_384, &[0x80, 0x80, 0x01]),
        (2_097_151, &[0xFF, 0xFF, 0x7F]),
        (2_097_152, &[0x80, 0x80, 0x80, 0x01]),
        (268_435_455, &[0xFF, 0xFF, 0xFF, 0x7F]),
    ];
    for (value, bytes) in table {
        assert_eq!(parse_varint(bytes), Ok(Some((value, bytes.len()))));
        assert_eq!(varint_len(value), bytes.len());
        let mut header = vec![0x30];
        header.extend(bytes);
        let h = peek_header(&header, V5).unwrap().unwrap();
        assert_eq!(
            (h.remaining_len, h.header_len),
            (value as usize, 1 + bytes.len())
        );
        if (3..=2_097_152).contains(&value) {
            // Encode a PUBLISH with exactly that remaining length and read it back.
            let payload = bytes::Bytes::from(vec![b'x'; value as usize - 3]);
            let p = Publish {
                payload,
                ..publish(QoS::AtMostOnce, None, "t", b"")
            };
            let limits = Limits {
                max_packet_size: Limits::PROTOCOL_MAX,
            };
            let mut out = bytes::BytesMut::new();
            encode(&Packet::Publish(p.clone()), V4, &mut out).unwrap();
            assert_eq!(&out[1..1 + bytes.len()], bytes, "{value}");
            assert_eq!(decode(&mut out, &limits, V4), Ok(Some(Packet::Publish(p))));
        }
    }
}

#[test]
fn connect_variable_header_example_3_1_2_10() {
    // "00 04 4D 51 54 54 05 C2 00 0A 05 11 00 00 00 0A": MQTT, level 5, user name +
    // password + clean start, keep alive 10, properties: session expiry interval 10.
    let mut bytes = vec![0x10, 0x00]; // CONNECT; remaining length filled in below
    bytes.extend([
        0x00, 0x04, 0x4D, 0x51, 0x54, 0x54, 0x05, 0xC2, 0x00, 0x0A, 0x05, 0x11, 0x00, 0x00, 0x00,
        0x0A,
    ]);
    bytes.extend([0x00, 0x00]); // client id "" (clean start, so the server assigns one)
    bytes.extend([0x00, 0x00]); // user name ""
    bytes.extend([0x00, 0x00]); // password ""
    bytes[1] = (bytes.len() - 2) as u8;
    let Packet::Connect(c) = dec(&bytes, V5) else {
        panic!()
    };
    assert_eq!(c.protocol, V5);
    assert!(c.clean_start);
    assert_eq!(c.keep_alive, 10);
    assert_eq!(c.properties.session_expiry_interval, Some(10));
    assert_eq!(c.username.as_deref(), Some(""));
    assert_eq!(c.password.as_deref(), Some(&b""[..]));
    assert!(c.will.is_none());
    assert_eq!(enc(&Packet::Connect(c), V5), bytes);
}

#[test]
fn connect_variable_header_example_3_1_1_figure_3_6() {
    // 3.1.1 §3.1.2.10 figure 3.6: "MQTT", level 4, flags CE (user name, password, will
    // QoS 1, will flag, clean session), keep alive 10.
    let mut bytes = vec![0x10, 0x00];
    bytes.extend([0x00, 0x04, b'M', b'Q', b'T', b'T', 0x04, 0xCE, 0x00, 0x0A]);
    bytes.extend([0x00, 0x01, b'c']); // client id "c"
    bytes.extend([0x00, 0x01, b'w', 0x00, 0x00]); // will topic "w", empty will message
    bytes.extend([0x00, 0x01, b'u', 0x00, 0x01, b'p']); // user name "u", password "p"
    bytes[1] = (bytes.len() - 2) as u8;
    let Packet::Connect(c) = dec(&bytes, V4) else {
        panic!()
    };
    let will = c.will.as_ref().unwrap();
    assert_eq!(
        (will.qos, will.retain, will.topic.as_str()),
        (QoS::AtLeastOnce, false, "w")
    );
    assert_eq!(c.keep_alive, 10);
    assert_eq!(enc(&Packet::Connect(c), V4), bytes);
}

#[test]
fn publish_variable_header_example_3_3_2_3() {
    // 3.1.1 §3.3.2.3 figure 3.11 / 5.0 §3.3.2.3: topic "a/b", packet id 10.
    let v4 = [0x32, 0x07, 0x00, 0x03, 0x61, 0x2F, 0x62, 0x00, 0x0A];
    both(
        &v4,
        Packet::Publish(publish(QoS::AtLeastOnce, Some(10), "a/b", b"")),
        V4,
    );
    // 5.0 adds a property length, here 0.
    let v5 = [0x32, 0x08, 0x00, 0x03, 0x61, 0x2F, 0x62, 0x00, 0x0A, 0x00];
    both(
        &v5,
        Packet::Publish(publish(QoS::AtLeastOnce, Some(10), "a/b", b"")),
        V5,
    );
}

#[test]
fn subscribe_payload_example_3_8_3() {
    // 3.1.1 §3.8.3.1 figure 3.21: "a/b" QoS 1, "c/d" QoS 2, packet id 10.
    let bytes = [
        0x82, 0x0E, 0x00, 0x0A, 0x00, 0x03, b'a', b'/', b'b', 0x01, 0x00, 0x03, b'c', b'/', b'd',
        0x02,
    ];
    let p = Subscribe {
        packet_id: pid(10),
        filters: vec![
            SubscribeFilter::new("a/b", QoS::AtLeastOnce),
            SubscribeFilter::new("c/d", QoS::ExactlyOnce),
        ],
        properties: Default::default(),
    };
    both(&bytes, Packet::Subscribe(p), V4);
}

#[test]
fn suback_payload_example_3_9_3() {
    // 3.1.1 §3.9.3 figure 3.26: success QoS 0, success QoS 2, failure.
    let bytes = [0x90, 0x05, 0x00, 0x0A, 0x00, 0x02, 0x80];
    let codes = vec![
        ReasonCode::Success,
        ReasonCode::GrantedQoS2,
        ReasonCode::UnspecifiedError,
    ];
    both(
        &bytes,
        Packet::SubAck(SubAck {
            packet_id: pid(10),
            codes,
            properties: Default::default(),
        }),
        V4,
    );
}

#[test]
fn unsubscribe_payload_example_3_10_3() {
    // 3.1.1 §3.10.3 figure 3.30: "a/b" and "c/d".
    let bytes = [
        0xA2, 0x0C, 0x00, 0x0A, 0x00, 0x03, b'a', b'/', b'b', 0x00, 0x03, b'c', b'/', b'd',
    ];
    let p = Unsubscribe {
        packet_id: pid(10),
        filters: vec![s("a/b"), s("c/d")],
        user_properties: vec![],
    };
    both(&bytes, Packet::Unsubscribe(p), V4);
}

#[test]
fn utf8_example_1_5_4() {
    // §1.5.4 figure 1-2: "A" followed by U+2A6D4 is 00 05 41 F0 AA 9B 94; here as a topic.
    let bytes = [0x30, 0x07, 0x00, 0x05, 0x41, 0xF0, 0xAA, 0x9B, 0x94];
    let Packet::Publish(p) = dec(&bytes, V4) else {
        panic!()
    };
    assert_eq!(p.topic.as_str(), "A\u{2A6D4}");
    // U+FEFF (BOM) is kept, not stripped [MQTT-1.5.4-3].
    let bytes = [0x30, 0x05, 0x00, 0x03, 0xEF, 0xBB, 0xBF];
    let Packet::Publish(p) = dec(&bytes, V4) else {
        panic!()
    };
    assert_eq!(p.topic.as_str(), "\u{FEFF}");
}
