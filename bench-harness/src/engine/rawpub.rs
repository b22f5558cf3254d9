//! The receive fast path for the harness's busiest packet: a PUBLISH read in place from the
//! read buffer (fixed header, topic length, packet id, v5 property length, payload slice),
//! with no `Packet`, no `Bytes` split and no UTF-8 check of the topic.
//!
//! At millions of messages a second into one harness process the general decoder's
//! per-packet work (a `Bytes` per field, reference counts, topic validation) was most of the
//! harness's CPU, so the harness, not the broker, set the measured rate. Anything this
//! parser does not fully understand (another packet type, an incomplete frame, a length it
//! does not accept) is left to `codec::decode`, which reports errors as before.

use codec::{PacketId, QoS};

/// A complete PUBLISH at the front of a buffer.
#[derive(Debug, PartialEq, Eq)]
pub struct RawPublish<'a> {
    /// Bytes the whole frame takes.
    pub frame_len: usize,
    pub qos: QoS,
    pub packet_id: Option<PacketId>,
    pub payload: &'a [u8],
}

/// Reads a variable byte integer at `buf[at..]`: (value, bytes used).
fn varint(buf: &[u8], at: usize) -> Option<(usize, usize)> {
    let mut value = 0usize;
    for i in 0..4 {
        let b = *buf.get(at + i)?;
        value |= usize::from(b & 0x7F) << (7 * i);
        if b & 0x80 == 0 {
            return Some((value, i + 1));
        }
    }
    None
}

/// The PUBLISH at the front of `buf` when it is complete and well formed; `None` for
/// anything else (left to the general decoder).
pub fn peek(buf: &[u8], v5: bool) -> Option<RawPublish<'_>> {
    let first = *buf.first()?;
    if first >> 4 != 3 {
        return None;
    }
    let qos = match (first >> 1) & 3 {
        0 => QoS::AtMostOnce,
        1 => QoS::AtLeastOnce,
        2 => QoS::ExactlyOnce,
        _ => return None,
    };
    let (remaining, n) = varint(buf, 1)?;
    let body_at = 1 + n;
    let frame_len = body_at + remaining;
    let body = buf.get(body_at..frame_len)?;
    let topic_len = usize::from(u16::from_be_bytes([*body.first()?, *body.get(1)?]));
    let mut at = 2 + topic_len;
    let packet_id = if qos == QoS::AtMostOnce {
        None
    } else {
        let id = u16::from_be_bytes([*body.get(at)?, *body.get(at + 1)?]);
        at += 2;
        Some(PacketId::new(id)?)
    };
    if v5 {
        let (props, n) = varint(body, at)?;
        at += n + props;
    }
    Some(RawPublish {
        frame_len,
        qos,
        packet_id,
        payload: body.get(at..)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::{Bytes, BytesMut};
    use codec::{ByteStr, Packet, ProtocolVersion, Publish};

    fn frame(qos: QoS, id: Option<u16>, payload_len: usize, version: ProtocolVersion) -> BytesMut {
        let p = Publish {
            dup: false,
            qos,
            retain: false,
            topic: ByteStr::from_static("bench/fanout/7"),
            packet_id: id.and_then(PacketId::new),
            properties: Default::default(),
            payload: Bytes::from(vec![0xAB; payload_len]),
        };
        let mut out = BytesMut::new();
        codec::encode(&Packet::Publish(p), version, &mut out).unwrap();
        out
    }

    #[test]
    fn reads_what_the_codec_wrote_at_each_qos_and_version() {
        for version in [ProtocolVersion::V3_1_1, ProtocolVersion::V5] {
            for (qos, id) in [
                (QoS::AtMostOnce, None),
                (QoS::AtLeastOnce, Some(77)),
                (QoS::ExactlyOnce, Some(65535)),
            ] {
                // 300 bytes of payload: a two-byte remaining length.
                let f = frame(qos, id, 300, version);
                let r = peek(&f, version == ProtocolVersion::V5).unwrap();
                assert_eq!(r.frame_len, f.len());
                assert_eq!(r.qos, qos);
                assert_eq!(r.packet_id, id.and_then(PacketId::new));
                assert_eq!(r.payload, &[0xAB; 300][..]);
            }
        }
    }

    #[test]
    fn an_incomplete_frame_or_another_packet_is_left_to_the_codec() {
        let f = frame(QoS::AtLeastOnce, Some(1), 40, ProtocolVersion::V3_1_1);
        for cut in 0..f.len() {
            assert_eq!(peek(&f[..cut], false), None, "cut at {cut}");
        }
        // A PUBACK, then QoS 3 (malformed): neither is read here.
        assert_eq!(peek(&[0x40, 0x02, 0x00, 0x01], false), None);
        assert_eq!(peek(&[0x36, 0x02, 0x00, 0x00], false), None);
        // Packet id 0 at QoS 1 is malformed: the codec reports it.
        assert_eq!(peek(&[0x32, 0x04, 0x00, 0x00, 0x00, 0x00], false), None);
    }

    #[test]
    fn two_frames_back_to_back_are_read_one_at_a_time() {
        let mut buf = frame(QoS::AtMostOnce, None, 10, ProtocolVersion::V3_1_1);
        let first = buf.len();
        buf.extend_from_slice(&frame(QoS::AtMostOnce, None, 20, ProtocolVersion::V3_1_1));
        let a = peek(&buf, false).unwrap();
        assert_eq!((a.frame_len, a.payload.len()), (first, 10));
        let b = peek(&buf[first..], false).unwrap();
        assert_eq!(b.payload.len(), 20);
    }
}
