//! `EncodedPublish`: one encoding, many subscribers. Every write must equal a fresh
//! `encode` of the same PUBLISH with that subscriber's packet id and DUP flag.

use crate::common::*;
use bytes::BytesMut;
use codec::*;
use std::num::NonZeroU32;

fn template(qos: QoS, retain: bool, v: ProtocolVersion) -> Publish {
    let mut p = publish(
        qos,
        None,
        "sensors/room1/temp",
        b"21.5 degrees, humidity 40%",
    );
    p.retain = retain;
    if v == V5 {
        p.properties.message_expiry_interval = Some(3600);
        p.properties.content_type = Some(s("text/plain"));
        p.properties.user_properties.push((s("unit"), s("C")));
        p.properties
            .subscription_identifiers
            .push(NonZeroU32::new(1000).unwrap());
    }
    p
}

#[test]
fn write_to_equals_encode_for_every_qos_dup_and_id() {
    for v in [V3, V4, V5] {
        for qos in [QoS::AtMostOnce, QoS::AtLeastOnce, QoS::ExactlyOnce] {
            for retain in [false, true] {
                let base = template(qos, retain, v);
                let frame = EncodedPublish::new(&base, v).unwrap();
                assert_eq!(frame.qos(), qos);
                let ids: &[Option<u16>] = if qos == QoS::AtMostOnce {
                    &[None]
                } else {
                    &[Some(1), Some(0x00FF), Some(0xAB12), Some(u16::MAX)]
                };
                for &id in ids {
                    let dups: &[bool] = if qos == QoS::AtMostOnce {
                        &[false]
                    } else {
                        &[false, true]
                    };
                    for &dup in dups {
                        let want = Publish {
                            dup,
                            packet_id: id.map(pid),
                            ..base.clone()
                        };
                        let want = enc(&Packet::Publish(want), v);
                        let mut out = BytesMut::new();
                        frame.write_to(id.map(pid), dup, &mut out);
                        assert_eq!(
                            &out[..],
                            &want[..],
                            "{v:?} {qos:?} retain={retain} id={id:?} dup={dup}"
                        );
                        assert_eq!(frame.len(), want.len());
                    }
                }
            }
        }
    }
}

#[test]
fn the_template_packet_id_and_dup_do_not_leak() {
    // Built from a packet that already carries an id and DUP: neither ends up in the frame.
    let mut base = template(QoS::AtLeastOnce, false, V5);
    base.packet_id = Some(pid(999));
    base.dup = true;
    let frame = EncodedPublish::new(&base, V5).unwrap();
    let mut out = BytesMut::new();
    frame.write_to(Some(pid(5)), false, &mut out);
    let want = Publish {
        packet_id: Some(pid(5)),
        dup: false,
        ..base
    };
    assert_eq!(&out[..], &enc(&Packet::Publish(want), V5)[..]);
}

#[test]
fn qos0_frame_is_shared_not_copied() {
    let base = template(QoS::AtMostOnce, true, V5);
    let frame = EncodedPublish::new(&base, V5).unwrap();
    let a = frame.frame().expect("QoS 0 has a shared frame");
    let b = frame.frame().expect("QoS 0 has a shared frame");
    assert_eq!(
        a.as_ptr(),
        b.as_ptr(),
        "both subscribers get the same bytes"
    );
    assert_eq!(&a[..], &enc(&Packet::Publish(base), V5)[..]);
    // A decoded copy of the frame is the original packet.
    assert_eq!(
        dec(&a, V5),
        Packet::Publish(template(QoS::AtMostOnce, true, V5))
    );
    // QoS 1 and 2 frames differ per subscriber, so there is no shared frame to hand out.
    let q1 = EncodedPublish::new(&template(QoS::AtLeastOnce, false, V5), V5).unwrap();
    assert_eq!(q1.frame(), None);
}

#[test]
fn many_subscribers_append_to_one_buffer() {
    let base = template(QoS::ExactlyOnce, false, V4);
    let frame = EncodedPublish::new(&base, V4).unwrap();
    let mut out = BytesMut::new();
    for id in 1..=3u16 {
        frame.write_to(Some(pid(id)), id == 2, &mut out);
    }
    assert_eq!(out.len(), 3 * frame.len());
    let limits = Limits::default();
    for id in 1..=3u16 {
        let Some(Packet::Publish(p)) = decode(&mut out, &limits, V4).unwrap() else {
            panic!()
        };
        assert_eq!(p.packet_id, Some(pid(id)));
        assert_eq!(p.dup, id == 2);
        assert_eq!(p.payload, base.payload);
    }
    assert!(out.is_empty());
}

#[test]
fn v3_frames_drop_properties() {
    let v5 = template(QoS::AtLeastOnce, false, V5);
    let frame = EncodedPublish::new(&v5, V4).unwrap();
    let mut out = BytesMut::new();
    frame.write_to(Some(pid(1)), false, &mut out);
    let v4 = Publish {
        packet_id: Some(pid(1)),
        ..template(QoS::AtLeastOnce, false, V4)
    };
    assert_eq!(&out[..], &enc(&Packet::Publish(v4), V4)[..]);
}

#[test]
fn building_checks_what_encode_checks() {
    let mut p = template(QoS::AtMostOnce, false, V5);
    p.properties.topic_alias = Some(0);
    assert_eq!(
        EncodedPublish::new(&p, V5),
        Err(EncodeError::InvalidPropertyValue(0x23))
    );
}
