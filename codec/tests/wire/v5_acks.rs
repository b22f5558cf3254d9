//! MQTT 5.0 PUBACK, PUBREC, PUBREL and PUBCOMP in their three wire forms (§3.4.2.1):
//! packet id alone, packet id and reason, packet id, reason and properties.

use crate::common::*;
use codec::*;

fn ack(id: u16, code: ReasonCode) -> PubAck {
    let mut a = PubAck::new(pid(id));
    a.code = code;
    a
}

/// First byte, the `Packet` variant, and a non-success reason the packet may carry.
type Kind = (u8, fn(PubAck) -> Packet, ReasonCode);

/// The four packets.
fn kinds() -> [Kind; 4] {
    [
        (0x40, Packet::PubAck, ReasonCode::NoMatchingSubscribers),
        (0x50, Packet::PubRec, ReasonCode::QuotaExceeded),
        (0x62, Packet::PubRel, ReasonCode::PacketIdentifierNotFound),
        (0x70, Packet::PubComp, ReasonCode::PacketIdentifierNotFound),
    ]
}

#[test]
fn short_form_is_success() {
    for (first, wrap, _) in kinds() {
        let bytes = [
            first, 0x02, // fixed header, remaining length 2
            0x00, 0x07, // packet id 7; reason Success and no properties are implied
        ];
        both(&bytes, wrap(PubAck::new(pid(7))), V5);
    }
}

#[test]
fn reason_without_properties() {
    for (first, wrap, code) in kinds() {
        let bytes = [
            first,
            0x03, // fixed header, remaining length 3
            0x00,
            0x07,         // packet id 7
            code.as_u8(), // reason code; properties omitted
        ];
        both(&bytes, wrap(ack(7, code)), V5);
    }
}

#[test]
fn reason_and_properties() {
    for (first, wrap, code) in kinds() {
        let bytes = [
            first,
            13, // fixed header, remaining length 13
            0x00,
            0x07,         // packet id 7
            code.as_u8(), // reason code
            9,            // property length
            0x1F,
            0x00,
            0x01,
            b'r', // reason string "r"
            0x26,
            0x00,
            0x00,
            0x00,
            0x00, // user property ""=""
        ];
        let mut a = ack(7, code);
        a.properties.reason_string = Some(s("r"));
        a.properties.user_properties.push((s(""), s("")));
        both(&bytes, wrap(a), V5);
    }
}

#[test]
fn long_forms_of_success_decode_and_encode_short() {
    for (first, wrap, _) in kinds() {
        // Success spelled out, with and without an empty property length.
        assert_eq!(
            dec(&[first, 0x03, 0x00, 0x07, 0x00], V5),
            wrap(PubAck::new(pid(7)))
        );
        assert_eq!(
            dec(&[first, 0x04, 0x00, 0x07, 0x00, 0x00], V5),
            wrap(PubAck::new(pid(7)))
        );
        assert_eq!(
            enc(&wrap(PubAck::new(pid(7))), V5),
            [first, 0x02, 0x00, 0x07]
        );
    }
    // A reason with only a reason string still needs the property length.
    let mut a = ack(9, ReasonCode::Success);
    a.properties.reason_string = Some(s("x"));
    assert_eq!(
        enc(&Packet::PubAck(a), V5),
        [0x40, 0x08, 0x00, 0x09, 0x00, 0x04, 0x1F, 0x00, 0x01, b'x']
    );
}

#[test]
fn reason_must_fit_the_packet() {
    // PUBREL cannot carry "No matching subscribers", PUBACK cannot carry "Packet identifier not found".
    assert_eq!(
        dec_err(&[0x62, 0x03, 0x00, 0x01, 0x10], V5),
        DecodeError::InvalidReasonCode {
            packet_type: PacketType::PubRel,
            code: 0x10
        }
    );
    assert_eq!(
        dec_err(&[0x40, 0x03, 0x00, 0x01, 0x92], V5),
        DecodeError::InvalidReasonCode {
            packet_type: PacketType::PubAck,
            code: 0x92
        }
    );
    // 0x05 is no reason code at all.
    assert_eq!(
        dec_err(&[0x50, 0x03, 0x00, 0x01, 0x05], V5),
        DecodeError::InvalidReasonCode {
            packet_type: PacketType::PubRec,
            code: 0x05
        }
    );
    let mut out = bytes::BytesMut::new();
    assert_eq!(
        encode(
            &Packet::PubRel(ack(1, ReasonCode::QuotaExceeded)),
            V5,
            &mut out
        ),
        Err(EncodeError::InvalidReasonCode {
            packet_type: PacketType::PubRel,
            code: ReasonCode::QuotaExceeded
        })
    );
}
