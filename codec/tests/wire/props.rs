//! MQTT 5 properties (§2.2.2): all 27 identifiers against every property set, duplicates,
//! and the value rules.

use crate::common::*;
use codec::properties::{id, property_type, PropertyType};
use codec::*;

/// The property sets of MQTT 5, as (name, packet type in errors).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Set {
    Connect,
    Will,
    ConnAck,
    Publish,
    PubAck,
    PubRec,
    PubRel,
    PubComp,
    Subscribe,
    SubAck,
    Unsubscribe,
    UnsubAck,
    Disconnect,
    Auth,
}

const SETS: [Set; 14] = [
    Set::Connect,
    Set::Will,
    Set::ConnAck,
    Set::Publish,
    Set::PubAck,
    Set::PubRec,
    Set::PubRel,
    Set::PubComp,
    Set::Subscribe,
    Set::SubAck,
    Set::Unsubscribe,
    Set::UnsubAck,
    Set::Disconnect,
    Set::Auth,
];

impl Set {
    fn packet_type(self) -> PacketType {
        match self {
            Set::Connect | Set::Will => PacketType::Connect,
            Set::ConnAck => PacketType::ConnAck,
            Set::Publish => PacketType::Publish,
            Set::PubAck => PacketType::PubAck,
            Set::PubRec => PacketType::PubRec,
            Set::PubRel => PacketType::PubRel,
            Set::PubComp => PacketType::PubComp,
            Set::Subscribe => PacketType::Subscribe,
            Set::SubAck => PacketType::SubAck,
            Set::Unsubscribe => PacketType::Unsubscribe,
            Set::UnsubAck => PacketType::UnsubAck,
            Set::Disconnect => PacketType::Disconnect,
            Set::Auth => PacketType::Auth,
        }
    }

    /// A valid packet whose property set `self` holds `props` (already with its length).
    fn packet(self, props: &[u8]) -> Vec<u8> {
        let mut body: Vec<u8> = Vec::new();
        let first = match self {
            Set::Connect | Set::Will => {
                body.extend([0, 4, b'M', b'Q', b'T', b'T', 5]);
                body.push(if self == Set::Will { 0x06 } else { 0x02 }); // (will,) clean start
                body.extend([0, 0]); // keep alive
                body.extend(if self == Set::Connect { props } else { &[0] }); // properties
                body.extend([0, 1, b'c']); // client id "c"
                if self == Set::Will {
                    body.extend(props); // will properties
                    body.extend([0, 1, b'w', 0, 0]); // will topic "w", empty will payload
                }
                0x10
            }
            Set::ConnAck => {
                body.extend([0, 0]); // flags, success
                body.extend(props);
                0x20
            }
            Set::Publish => {
                body.extend([0, 1, b't']); // topic "t" (QoS 0: no packet id)
                body.extend(props);
                0x30
            }
            Set::PubAck | Set::PubRec | Set::PubRel | Set::PubComp => {
                body.extend([0, 1, 0]); // packet id 1, success
                body.extend(props);
                match self {
                    Set::PubAck => 0x40,
                    Set::PubRec => 0x50,
                    Set::PubRel => 0x62,
                    _ => 0x70,
                }
            }
            Set::Subscribe | Set::Unsubscribe => {
                body.extend([0, 1]); // packet id 1
                body.extend(props);
                body.extend([0, 1, b'a']); // filter "a"
                if self == Set::Subscribe {
                    body.push(0); // options: QoS 0
                    0x82
                } else {
                    0xA2
                }
            }
            Set::SubAck | Set::UnsubAck => {
                body.extend([0, 1]); // packet id 1
                body.extend(props);
                body.push(0); // one success code
                if self == Set::SubAck {
                    0x90
                } else {
                    0xB0
                }
            }
            Set::Disconnect | Set::Auth => {
                body.push(0); // success
                body.extend(props);
                if self == Set::Disconnect {
                    0xE0
                } else {
                    0xF0
                }
            }
        };
        assert!(body.len() < 128, "tests keep to one-byte remaining lengths");
        let mut out = vec![first, body.len() as u8];
        out.extend(body);
        out
    }
}

/// MQTT 5.0 table 2-4: which property sets may hold each identifier.
fn allowed(id: u8, set: Set) -> bool {
    use Set::*;
    let sets: &[Set] = match id {
        0x01 | 0x02 | 0x03 | 0x08 | 0x09 => &[Publish, Will],
        0x0B => &[Publish, Subscribe],
        0x11 => &[Connect, ConnAck, Disconnect],
        0x12 | 0x13 | 0x1A | 0x24 | 0x25 | 0x28 | 0x29 | 0x2A => &[ConnAck],
        0x15 | 0x16 => &[Connect, ConnAck, Auth],
        0x17 | 0x19 => &[Connect],
        0x18 => &[Will],
        0x1C => &[ConnAck, Disconnect],
        0x1F => &[
            ConnAck, PubAck, PubRec, PubRel, PubComp, SubAck, UnsubAck, Disconnect, Auth,
        ],
        0x21 | 0x22 | 0x27 => &[Connect, ConnAck],
        0x23 => &[Publish],
        0x26 => &SETS,
        _ => &[],
    };
    sets.contains(&set)
}

/// One property with a valid value, as bytes (identifier first).
fn sample(id: u8) -> Vec<u8> {
    let value: &[u8] = match property_type(id).expect("known id") {
        PropertyType::Byte => &[1],
        PropertyType::TwoByteInt => &[0, 5],
        PropertyType::FourByteInt => &[0, 0, 0, 5],
        PropertyType::VarInt => &[5],
        PropertyType::Utf8String => &[0, 1, b'x'],
        PropertyType::BinaryData => &[0, 1, 0],
        PropertyType::Utf8StringPair => &[0, 1, b'k', 0, 1, b'v'],
    };
    let mut out = vec![id];
    out.extend(value);
    out
}

fn with_len(props: &[u8]) -> Vec<u8> {
    let mut out = vec![props.len() as u8];
    out.extend(props);
    out
}

const ALL_IDS: [u8; 27] = [
    0x01, 0x02, 0x03, 0x08, 0x09, 0x0B, 0x11, 0x12, 0x13, 0x15, 0x16, 0x17, 0x18, 0x19, 0x1A, 0x1C,
    0x1F, 0x21, 0x22, 0x23, 0x24, 0x25, 0x26, 0x27, 0x28, 0x29, 0x2A,
];

#[test]
fn exactly_27_identifiers_with_their_types() {
    let known: Vec<u8> = (0..=255u8)
        .filter(|&i| property_type(i).is_some())
        .collect();
    assert_eq!(known, ALL_IDS);
    assert_eq!(
        property_type(id::SUBSCRIPTION_IDENTIFIER),
        Some(PropertyType::VarInt)
    );
    assert_eq!(
        property_type(id::USER_PROPERTY),
        Some(PropertyType::Utf8StringPair)
    );
    assert_eq!(
        property_type(id::CORRELATION_DATA),
        Some(PropertyType::BinaryData)
    );
    assert_eq!(
        property_type(id::MAXIMUM_PACKET_SIZE),
        Some(PropertyType::FourByteInt)
    );
    assert_eq!(
        property_type(id::TOPIC_ALIAS),
        Some(PropertyType::TwoByteInt)
    );
    assert_eq!(property_type(id::MAXIMUM_QOS), Some(PropertyType::Byte));
    assert_eq!(
        property_type(id::REASON_STRING),
        Some(PropertyType::Utf8String)
    );
}

#[test]
fn every_identifier_in_every_property_set() {
    for set in SETS {
        for id in ALL_IDS {
            let mut props = sample(id);
            if id == id::AUTHENTICATION_DATA {
                // Authentication data is only legal next to a method.
                props.extend(sample(id::AUTHENTICATION_METHOD));
            }
            let bytes = set.packet(&with_len(&props));
            let mut buf = bytes::BytesMut::from(&bytes[..]);
            let got = decode(&mut buf, &Limits::default(), V5);
            if allowed(id, set) {
                let Ok(Some(packet)) = got else {
                    panic!("{id:#04x} in {set:?}: {got:?}")
                };
                // The value landed in a field: re-encoding gives it back (same size; for
                // 0x16 the method is written first, so only the size is compared).
                let again = enc(&packet, V5);
                assert_eq!(
                    again.len(),
                    bytes.len(),
                    "{id:#04x} in {set:?} lost on re-encoding"
                );
                if id != id::AUTHENTICATION_DATA {
                    assert_eq!(again, bytes, "{id:#04x} in {set:?}");
                }
            } else {
                // Refused at the first property read (for 0x16, before the method after it).
                let want = DecodeError::PropertyNotAllowed {
                    id,
                    packet_type: set.packet_type(),
                };
                assert_eq!(got, Err(want), "{id:#04x} in {set:?}");
                assert_eq!(want.reason_code(), ReasonCode::MalformedPacket);
            }
        }
    }
}

#[test]
fn duplicates_are_refused_except_user_property_and_subscription_identifier() {
    for set in SETS {
        for id in ALL_IDS.into_iter().filter(|&i| allowed(i, set)) {
            let mut props = sample(id);
            props.extend(sample(id));
            if id == id::AUTHENTICATION_DATA {
                props.extend(sample(id::AUTHENTICATION_METHOD));
            }
            let bytes = set.packet(&with_len(&props));
            let mut buf = bytes::BytesMut::from(&bytes[..]);
            let got = decode(&mut buf, &Limits::default(), V5);
            let may_repeat = id == id::USER_PROPERTY
                || (id == id::SUBSCRIPTION_IDENTIFIER && set == Set::Publish);
            if may_repeat {
                assert!(
                    matches!(got, Ok(Some(_))),
                    "{id:#04x} twice in {set:?}: {got:?}"
                );
            } else {
                assert_eq!(
                    got,
                    Err(DecodeError::DuplicateProperty(id)),
                    "{id:#04x} twice in {set:?}"
                );
            }
        }
    }
}

#[test]
fn repeated_properties_keep_their_order() {
    let props = [
        0x26, 0, 1, b'a', 0, 1, b'1', // user property a=1
        0x0B, 0x02, // subscription identifier 2
        0x26, 0, 1, b'a', 0, 1, b'2', // user property a=2 (same key again)
        0x0B, 0x01, // subscription identifier 1
    ];
    let Packet::Publish(p) = dec(&Set::Publish.packet(&with_len(&props)), V5) else {
        panic!()
    };
    assert_eq!(
        p.properties.user_properties,
        vec![(s("a"), s("1")), (s("a"), s("2"))]
    );
    let ids: Vec<u32> = p
        .properties
        .subscription_identifiers
        .iter()
        .map(|i| i.get())
        .collect();
    assert_eq!(ids, [2, 1]);
}

#[test]
fn boolean_properties_must_be_0_or_1() {
    let bools = [
        (0x01, Set::Publish),
        (0x01, Set::Will),
        (0x17, Set::Connect),
        (0x19, Set::Connect),
        (0x25, Set::ConnAck),
        (0x28, Set::ConnAck),
        (0x29, Set::ConnAck),
        (0x2A, Set::ConnAck),
    ];
    for (id, set) in bools {
        let bytes = set.packet(&with_len(&[id, 2]));
        assert_eq!(
            dec_err(&bytes, V5),
            DecodeError::InvalidPropertyValue(id),
            "{id:#04x}"
        );
        let bytes = set.packet(&with_len(&[id, 0]));
        dec(&bytes, V5);
    }
}

#[test]
fn value_rules() {
    // Maximum QoS is 0 or 1 (§3.2.2.3.4).
    let bytes = Set::ConnAck.packet(&with_len(&[0x24, 2]));
    assert_eq!(dec_err(&bytes, V5), DecodeError::InvalidPropertyValue(0x24));
    // Receive Maximum 0 is a Protocol Error (§3.1.2.11.3, §3.2.2.3.3).
    for set in [Set::Connect, Set::ConnAck] {
        let bytes = set.packet(&with_len(&[0x21, 0, 0]));
        let e = dec_err(&bytes, V5);
        assert_eq!(e, DecodeError::InvalidPropertyValue(0x21));
        assert_eq!(e.reason_code(), ReasonCode::ProtocolError);
        // Maximum Packet Size 0 likewise (§3.1.2.11.4).
        let bytes = set.packet(&with_len(&[0x27, 0, 0, 0, 0]));
        assert_eq!(dec_err(&bytes, V5), DecodeError::InvalidPropertyValue(0x27));
    }
    // Subscription Identifier 0 is a Protocol Error (§3.8.2.1.2, §3.3.2.3.8).
    for set in [Set::Publish, Set::Subscribe] {
        let bytes = set.packet(&with_len(&[0x0B, 0]));
        assert_eq!(dec_err(&bytes, V5), DecodeError::InvalidPropertyValue(0x0B));
    }
    // Topic Alias 0 [MQTT-3.3.2-8].
    let bytes = Set::Publish.packet(&with_len(&[0x23, 0, 0]));
    assert_eq!(dec_err(&bytes, V5), DecodeError::TopicAliasZero);
    // The largest subscription identifier fits; the variable integer is not cut short.
    let bytes = Set::Publish.packet(&with_len(&[0x0B, 0xFF, 0xFF, 0xFF, 0x7F]));
    let Packet::Publish(p) = dec(&bytes, V5) else {
        panic!()
    };
    assert_eq!(p.properties.subscription_identifiers[0].get(), 268_435_455);
}

#[test]
fn authentication_data_needs_a_method() {
    for set in [Set::Connect, Set::ConnAck, Set::Auth] {
        let bytes = set.packet(&with_len(&sample(id::AUTHENTICATION_DATA)));
        let e = dec_err(&bytes, V5);
        assert_eq!(e, DecodeError::AuthDataWithoutMethod, "{set:?}");
        assert_eq!(e.reason_code(), ReasonCode::ProtocolError);
    }
}

#[test]
fn unknown_identifiers_are_malformed() {
    for id in [0x00u8, 0x04, 0x0A, 0x14, 0x20, 0x2B, 0x7F] {
        let bytes = Set::Publish.packet(&with_len(&[id, 0]));
        assert_eq!(
            dec_err(&bytes, V5),
            DecodeError::UnknownProperty(u32::from(id)),
            "{id:#04x}"
        );
    }
    // Identifiers are variable byte integers: 0x80 0x01 is 128, not a known one.
    let bytes = Set::Publish.packet(&with_len(&[0x80, 0x01, 0]));
    assert_eq!(dec_err(&bytes, V5), DecodeError::UnknownProperty(128));
    // 0x81 0x00 would be 1 spelled long: refused as non-minimal.
    let bytes = Set::Publish.packet(&with_len(&[0x81, 0x00, 0x01]));
    assert_eq!(dec_err(&bytes, V5), DecodeError::NonMinimalVarInt);
}

#[test]
fn property_lengths_must_fit() {
    // Property length 5, but only the packet's last 3 bytes remain.
    let bytes = [0x30, 0x06, 0x00, 0x01, b't', 0x05, 0x01, 0x01];
    assert_eq!(dec_err(&bytes, V5), DecodeError::UnexpectedEnd);
    // A four-byte value cut off by the property length (which itself fits the packet).
    let bytes = [0x30, 0x08, 0x00, 0x01, b't', 0x03, 0x02, 0x00, 0x00, 0x00];
    assert_eq!(dec_err(&bytes, V5), DecodeError::UnexpectedEnd);
    // A string property whose own length runs past the property set.
    let bytes = [
        0x30, 0x09, 0x00, 0x01, b't', 0x03, 0x03, 0x00, 0x05, b'a', b'b',
    ];
    assert_eq!(dec_err(&bytes, V5), DecodeError::UnexpectedEnd);
    // User property strings are checked like any other.
    let bytes = Set::Publish.packet(&with_len(&[0x26, 0, 1, 0xFF, 0, 0]));
    assert_eq!(dec_err(&bytes, V5), DecodeError::InvalidUtf8);
}

#[test]
fn values_the_decoder_refuses_are_not_encoded() {
    let mut out = bytes::BytesMut::new();
    let mut c = ConnAck {
        session_present: false,
        code: ReasonCode::Success,
        properties: Default::default(),
    };
    c.properties.maximum_qos = Some(QoS::ExactlyOnce);
    let e = encode(&Packet::ConnAck(c.clone()), V5, &mut out);
    assert_eq!(e, Err(EncodeError::InvalidPropertyValue(0x24)));
    c.properties.maximum_qos = Some(QoS::AtLeastOnce);
    c.properties.receive_maximum = Some(0);
    let e = encode(&Packet::ConnAck(c), V5, &mut out);
    assert_eq!(e, Err(EncodeError::InvalidPropertyValue(0x21)));
    let mut k = connect(V5, "c");
    k.properties.maximum_packet_size = Some(0);
    let e = encode(&Packet::Connect(Box::new(k.clone())), V5, &mut out);
    assert_eq!(e, Err(EncodeError::InvalidPropertyValue(0x27)));
    k.properties.maximum_packet_size = None;
    k.properties.authentication_data = Some(b(b"d"));
    let e = encode(&Packet::Connect(Box::new(k)), V5, &mut out);
    assert_eq!(e, Err(EncodeError::InvalidPropertyValue(0x16)));
    let mut p = publish(QoS::AtMostOnce, None, "t", b"");
    p.properties.topic_alias = Some(0);
    assert_eq!(
        encode(&Packet::Publish(p), V5, &mut out),
        Err(EncodeError::InvalidPropertyValue(0x23))
    );
    assert!(out.is_empty(), "nothing written on error");
}
