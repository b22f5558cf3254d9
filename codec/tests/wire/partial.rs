//! Partial input and size limits: every prefix of a valid packet is `Ok(None)` and leaves
//! the buffer exactly as it was; a packet over the limit is refused as soon as its fixed
//! header is known, before the body arrives.

use crate::common::*;
use bytes::BytesMut;
use codec::*;
use std::num::NonZeroU32;

/// A spread of packets, every type, with properties for v5.
fn samples(v: ProtocolVersion) -> Vec<Packet> {
    let mut c = connect(v, "client");
    c.username = Some(s("user"));
    c.password = Some(b(b"secret"));
    c.will = Some(LastWill {
        topic: s("will/t"),
        payload: b(b"gone"),
        qos: QoS::AtLeastOnce,
        retain: true,
        properties: WillProperties::default(),
    });
    let mut p1 = publish(QoS::AtLeastOnce, Some(42), "a/b/c", &[7; 300]);
    let mut ack = PubAck::new(pid(9));
    // Properties and reasons only where the version has them, so the packets round-trip.
    if v == V5 {
        if let Some(w) = c.will.as_mut() {
            w.properties.will_delay_interval = Some(3);
        }
        c.properties.receive_maximum = Some(100);
        p1.properties.user_properties.push((s("k"), s("v")));
        p1.properties
            .subscription_identifiers
            .push(NonZeroU32::new(300).unwrap());
        ack.code = ReasonCode::NoMatchingSubscribers;
    }
    let mut packets = vec![
        Packet::Connect(Box::new(c)),
        Packet::ConnAck(ConnAck {
            session_present: true,
            code: ReasonCode::Success,
            properties: Default::default(),
        }),
        Packet::Publish(publish(QoS::AtMostOnce, None, "t", b"payload")),
        Packet::Publish(p1),
        Packet::PubAck(ack),
        Packet::PubRec(PubAck::new(pid(1))),
        Packet::PubRel(PubAck::new(pid(2))),
        Packet::PubComp(PubAck::new(pid(3))),
        Packet::Subscribe(Subscribe {
            packet_id: pid(4),
            filters: vec![
                SubscribeFilter::new("a/+", QoS::AtLeastOnce),
                SubscribeFilter::new("#", QoS::AtMostOnce),
            ],
            properties: Default::default(),
        }),
        Packet::SubAck(SubAck {
            packet_id: pid(4),
            codes: vec![ReasonCode::GrantedQoS1],
            properties: Default::default(),
        }),
        Packet::Unsubscribe(Unsubscribe {
            packet_id: pid(5),
            filters: vec![s("a/+")],
            user_properties: vec![],
        }),
        Packet::UnsubAck(UnsubAck {
            packet_id: pid(5),
            codes: if v == V5 {
                vec![ReasonCode::Success]
            } else {
                vec![]
            },
            properties: Default::default(),
        }),
        Packet::PingReq,
        Packet::PingResp,
        Packet::Disconnect(Disconnect::new(ReasonCode::Success)),
    ];
    if v == V5 {
        let mut d = Disconnect::new(ReasonCode::ServerShuttingDown);
        d.properties.reason_string = Some(s("bye"));
        packets.push(Packet::Disconnect(d));
        packets.push(Packet::Auth(Auth {
            code: ReasonCode::ContinueAuthentication,
            properties: Default::default(),
        }));
    }
    packets
}

#[test]
fn every_prefix_is_incomplete_and_untouched() {
    let limits = Limits::default();
    for v in [V3, V4, V5] {
        for packet in samples(v) {
            let whole = enc(&packet, v);
            for cut in 0..whole.len() {
                let mut buf = BytesMut::from(&whole[..cut]);
                assert_eq!(
                    decode(&mut buf, &limits, v),
                    Ok(None),
                    "{v:?} {packet:?} cut at {cut}"
                );
                assert_eq!(&buf[..], &whole[..cut], "buffer changed");
            }
            // The whole packet, followed by the start of the next one.
            let mut buf = BytesMut::from(&whole[..]);
            buf.extend_from_slice(&[0xC0]);
            assert_eq!(decode(&mut buf, &limits, v), Ok(Some(packet)));
            assert_eq!(&buf[..], &[0xC0]);
        }
    }
}

#[test]
fn bytes_arriving_one_at_a_time() {
    let limits = Limits::default();
    let whole = enc(
        &Packet::Publish(publish(QoS::ExactlyOnce, Some(7), "x/y", &[1; 200])),
        V5,
    );
    let mut buf = BytesMut::new();
    let mut got = None;
    for (i, byte) in whole.iter().enumerate() {
        buf.extend_from_slice(&[*byte]);
        got = decode(&mut buf, &limits, V5).unwrap();
        assert_eq!(got.is_some(), i == whole.len() - 1);
    }
    assert_eq!(
        got,
        Some(Packet::Publish(publish(
            QoS::ExactlyOnce,
            Some(7),
            "x/y",
            &[1; 200]
        )))
    );
    assert!(buf.is_empty());
}

#[test]
fn too_large_is_refused_before_the_body_arrives() {
    let limits = Limits {
        max_packet_size: 100,
    };
    // PUBLISH declaring remaining length 1000 (E8 07): only the fixed header is here.
    let mut buf = BytesMut::from(&[0x30, 0xE8, 0x07][..]);
    let e = decode(&mut buf, &limits, V4);
    assert_eq!(
        e,
        Err(DecodeError::PacketTooLarge {
            size: 1003,
            max: 100
        })
    );
    assert_eq!(e.unwrap_err().reason_code(), ReasonCode::PacketTooLarge);
    // The largest remaining length the protocol allows, against the default 1 MiB limit.
    let mut buf = BytesMut::from(&[0x30, 0xFF, 0xFF, 0xFF, 0x7F][..]);
    let e = decode(&mut buf, &Limits::default(), V5);
    assert_eq!(
        e,
        Err(DecodeError::PacketTooLarge {
            size: 268_435_460,
            max: 1024 * 1024
        })
    );
    // Incomplete remaining length: nothing to judge yet.
    let mut buf = BytesMut::from(&[0x30, 0xE8][..]);
    assert_eq!(decode(&mut buf, &limits, V4), Ok(None));
}

#[test]
fn the_limit_counts_the_whole_packet() {
    // 2 bytes of fixed header + 96 of body = 98 bytes in all.
    let packet = Packet::Publish(publish(QoS::AtMostOnce, None, "t", &[0; 93]));
    let whole = enc(&packet, V4);
    assert_eq!(whole.len(), 98);
    let mut buf = BytesMut::from(&whole[..]);
    assert_eq!(
        decode(
            &mut buf,
            &Limits {
                max_packet_size: 98
            },
            V4
        ),
        Ok(Some(packet))
    );
    let mut buf = BytesMut::from(&whole[..]);
    let e = decode(
        &mut buf,
        &Limits {
            max_packet_size: 97,
        },
        V4,
    );
    assert_eq!(e, Err(DecodeError::PacketTooLarge { size: 98, max: 97 }));
}

#[test]
fn peek_header_reports_the_frame() {
    assert_eq!(peek_header(&[], V4), Ok(None));
    assert_eq!(peek_header(&[0x30], V4), Ok(None));
    assert_eq!(peek_header(&[0x30, 0x80], V4), Ok(None));
    let h = peek_header(&[0x32, 0x80, 0x01, 0xAA], V4).unwrap().unwrap();
    assert_eq!(
        h,
        FixedHeader {
            packet_type: PacketType::Publish,
            flags: 0b0010,
            header_len: 3,
            remaining_len: 128
        }
    );
    assert_eq!(h.frame_len(), 131);
}

#[test]
fn peek_connect_version_reads_name_and_level() {
    for v in [V3, V4, V5] {
        let whole = enc(&Packet::Connect(Box::new(connect(v, "c"))), v);
        // The name and level are enough; the rest need not have arrived.
        let name_end = if v == V3 { 11 } else { 9 };
        assert_eq!(peek_connect_version(&whole[..name_end]), Some(v));
        assert_eq!(peek_connect_version(&whole[..name_end - 1]), None);
    }
    assert_eq!(peek_connect_version(&[0xC0, 0x00]), None);
    assert_eq!(
        peek_connect_version(&[0x10, 0x07, 0, 4, b'M', b'Q', b'T', b'T', 9]),
        None
    );
}
