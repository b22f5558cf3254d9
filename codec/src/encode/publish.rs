//! PUBLISH (§3.3) and PUBACK/PUBREC/PUBREL/PUBCOMP (§3.4-§3.7) encoding.
//!
//! PUBLISH is the hot path: [`encode_publish`] adds up the handful of field lengths with
//! plain integer math, checks them once, reserves once and writes; the usual empty v5
//! property set is a single 0 byte, and only a non-empty one goes through the (out-of-line)
//! general property writer. Layouts are drawn in `decode/publish.rs`; measurements are in
//! docs/benchmarks.md `## Codec`.

use crate::error::EncodeError;
use crate::packet::*;
use crate::properties_encode::{props_len, put_properties, WriteProps};
use crate::reason::ReasonCode;
use crate::types::{ProtocolVersion, QoS};
use crate::wire::{length_varint, put_str, put_varint, varint_len, varint_word, Sink};
use bytes::{BufMut, BytesMut};

/// The low nibble of PUBLISH's first byte: DUP, QoS, RETAIN (§3.3.1).
pub(crate) fn flags(p: &Publish) -> u8 {
    u8::from(p.dup) << 3 | p.qos.as_u8() << 1 | u8::from(p.retain)
}

/// The packet id must be present exactly for QoS 1 and 2 [MQTT-2.2.1-2], DUP only above QoS 0.
fn check(p: &Publish) -> Result<(), EncodeError> {
    if (p.qos == QoS::AtMostOnce) != p.packet_id.is_none() {
        return Err(EncodeError::PacketIdMismatch);
    }
    if p.qos == QoS::AtMostOnce && p.dup {
        return Err(EncodeError::DupWithQoS0);
    }
    Ok(())
}

/// Topic length, packet id, properties (5.0) and payload.
pub(crate) fn remaining_len(p: &Publish, version: ProtocolVersion) -> Result<usize, EncodeError> {
    check(p)?;
    frame_lengths(p, version).map(|(remaining, _)| remaining)
}

/// The remaining length and, for 5.0, the property length (without its prefix). The
/// packet-id slot follows `p.qos`; `p.packet_id` is not looked at.
fn frame_lengths(
    p: &Publish,
    version: ProtocolVersion,
) -> Result<(usize, Option<u32>), EncodeError> {
    if p.topic.len() > usize::from(u16::MAX) {
        return Err(EncodeError::StringTooLong(p.topic.len()));
    }
    let id_len = if p.qos == QoS::AtMostOnce { 0 } else { 2 };
    let (props, props_len) = if version.is_v5() {
        let len = length_varint(props_len(&p.properties)?)?;
        (varint_len(len) + len as usize, Some(len))
    } else {
        (0, None)
    };
    Ok((
        2 + p.topic.len() + id_len + props + p.payload.len(),
        props_len,
    ))
}

/// The fixed header and the topic's length prefix, type and flags (1), remaining length
/// (1-4) and topic length (2), are built in one `u64` (7 bytes used at most) and reach `out`
/// in one fixed-size copy.
const HEAD_SLOT: usize = 8;

/// How the MQTT 5 property block is written: not at all (3.x), as the single length byte
/// 0 (no property set, nearly every PUBLISH), or by the general property writer.
#[derive(Clone, Copy)]
enum PropsBlock {
    None,
    Empty,
    /// The property length, already known to fit a variable byte integer.
    Full(u32),
}

/// True when no property is set. Field by field rather than `== default()`, so that the
/// hot path does not build and compare a whole default struct, and with `|` rather than
/// `||`: eight flag tests and one branch instead of eight branches.
#[inline]
fn no_properties(p: &PublishProperties) -> bool {
    !(p.payload_format_indicator.is_some()
        | p.message_expiry_interval.is_some()
        | p.topic_alias.is_some()
        | p.response_topic.is_some()
        | p.correlation_data.is_some()
        | !p.user_properties.is_empty()
        | !p.subscription_identifiers.is_empty()
        | p.content_type.is_some())
}

/// The length of a non-empty property set, checked to fit a variable byte integer. Out of
/// line: nearly every PUBLISH has no properties, and the hot path stays small this way.
#[cold]
#[inline(never)]
fn full_props_len(props: &PublishProperties) -> Result<u32, EncodeError> {
    length_varint(props_len(props)?)
}

/// Writes a property set whose length `len` [`full_props_len`] has already measured. The
/// same writer ran over the same values then, so it cannot fail here; its `Result` is passed
/// on all the same rather than dropped.
#[cold]
#[inline(never)]
fn write_full_props(
    props: &PublishProperties,
    len: u32,
    out: &mut BytesMut,
) -> Result<(), EncodeError> {
    put_varint(out, len)?;
    props.write(out)
}

#[inline(always)]
pub(crate) fn encode_publish(
    p: &Publish,
    version: ProtocolVersion,
    out: &mut BytesMut,
) -> Result<(), EncodeError> {
    check(p)?;
    write_frame(p, version, p.dup, p.packet_id.map_or(0, |id| id.get()), out).map(|_| ())
}

/// Writes the whole frame with the given DUP flag and packet id (`id` is ignored at QoS 0)
/// and returns the remaining length.
///
/// Every length is added up and checked first, in the order `frame_lengths` reports errors,
/// so `out` is unchanged on error; after that nothing can fail: one reservation, the fixed
/// header and topic length as one word, then straight copies. Inlined into `encode` (and
/// `EncodedPublish::new`): the call layers and their `Result` hand-offs were a large part
/// of a 64-byte PUBLISH's cost.
#[inline(always)]
pub(crate) fn write_frame(
    p: &Publish,
    version: ProtocolVersion,
    dup: bool,
    id: u16,
    out: &mut BytesMut,
) -> Result<usize, EncodeError> {
    let topic: &[u8] = p.topic.as_bytes();
    let Ok(topic_len) = u16::try_from(topic.len()) else {
        return Err(EncodeError::StringTooLong(topic.len()));
    };
    let has_id = p.qos != QoS::AtMostOnce;
    let props = if !version.is_v5() {
        PropsBlock::None
    } else if no_properties(&p.properties) {
        PropsBlock::Empty
    } else {
        PropsBlock::Full(full_props_len(&p.properties)?)
    };
    let props_total = match props {
        PropsBlock::None => 0,
        PropsBlock::Empty => 1,
        PropsBlock::Full(len) => varint_len(len) + len as usize,
    };
    let remaining = 2 + topic.len() + 2 * usize::from(has_id) + props_total + p.payload.len();
    let rl = length_varint(remaining)?;

    // Fixed header and topic length, built in a register: first byte lowest, then the
    // remaining length, then the topic length big-endian. Bytes written one at a time to a
    // stack array and read back as a word would stall store-to-load forwarding.
    let first = (PacketType::Publish as u8) << 4
        | u8::from(dup) << 3
        | p.qos.as_u8() << 1
        | u8::from(p.retain);
    let (rl_word, rl_len) = varint_word(rl);
    // The topic length is both the head's last two bytes and part of `remaining`.
    let head_len = 1 + rl_len + 2;
    let head = u64::from(first)
        | u64::from(rl_word) << 8
        | u64::from(topic_len.swap_bytes()) << (8 * (1 + rl_len));
    let head = head.to_le_bytes();
    let total = 1 + rl_len + remaining;

    out.reserve(total);
    if total >= HEAD_SLOT {
        // A fixed-size copy compiles to one 8-byte store instead of a `memcpy` call; the
        // bytes past `head_len` lie inside the reserved frame and are cut off at once, to be
        // overwritten by the topic.
        let start = out.len();
        out.put_slice(&head);
        out.truncate(start + head_len);
    } else {
        out.put_slice(&head[..head_len]);
    }
    out.put_slice(topic);
    if has_id {
        BufMut::put_u16(out, id);
    }
    match props {
        PropsBlock::None => {}
        PropsBlock::Empty => BufMut::put_u8(out, 0),
        PropsBlock::Full(len) => write_full_props(&p.properties, len, out)?,
    }
    out.put_slice(&p.payload);
    Ok(remaining)
}

/// Everything after the fixed header, for the generic two-pass path (`encoded_len`).
pub(crate) fn write_body<S: Sink>(
    p: &Publish,
    version: ProtocolVersion,
    s: &mut S,
) -> Result<(), EncodeError> {
    check(p)?;
    put_str(s, &p.topic)?;
    if let Some(id) = p.packet_id {
        s.put_u16(id.get());
    }
    if version.is_v5() {
        put_properties(s, &p.properties)?;
    }
    s.put(&p.payload);
    Ok(())
}

/// The shared ack body. 3.x: packet id only, so only Success is expressible. 5.0: the packet
/// id alone for Success without properties, id and reason without properties, or all three.
pub(crate) fn write_ack<S: Sink>(
    packet_type: PacketType,
    a: &PubAck,
    version: ProtocolVersion,
    s: &mut S,
) -> Result<(), EncodeError> {
    if !version.is_v5() {
        if a.code != ReasonCode::Success {
            return Err(EncodeError::ReasonNotRepresentable {
                packet_type,
                code: a.code,
            });
        }
        s.put_u16(a.packet_id.get());
        return Ok(());
    }
    let code = super::checked_reason(packet_type, a.code)?;
    s.put_u16(a.packet_id.get());
    let no_props = a.properties.reason_string.is_none() && a.properties.user_properties.is_empty();
    if no_props && a.code == ReasonCode::Success {
        return Ok(());
    }
    s.put_u8(code);
    if no_props {
        return Ok(());
    }
    put_properties(s, &a.properties)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::{ByteStr, PacketId};
    use bytes::Bytes;

    fn publish(qos: QoS, topic: &'static str, payload_len: usize) -> Publish {
        Publish {
            dup: false,
            qos,
            retain: true,
            topic: ByteStr::from_static(topic),
            packet_id: (qos != QoS::AtMostOnce).then(|| PacketId::new(0x1234).unwrap()),
            properties: PublishProperties::default(),
            payload: Bytes::from(vec![0xA5; payload_len]),
        }
    }

    /// The frame written field by field with the general helpers, as the reference.
    fn reference(p: &Publish, version: ProtocolVersion) -> BytesMut {
        let mut body = BytesMut::new();
        write_body(p, version, &mut body).unwrap();
        let mut out = BytesMut::new();
        BufMut::put_u8(&mut out, 0x30 | flags(p));
        put_varint(&mut out, body.len() as u32).unwrap();
        out.extend_from_slice(&body);
        out
    }

    /// Remaining lengths on both sides of every variable-byte-integer size (§1.5.5), and
    /// frames shorter than the 8-byte header store, for both versions and both QoS levels.
    #[test]
    fn fast_path_matches_the_general_writer() {
        // Remaining length = 2 + topic (1) + id + props + payload.
        for target in [3usize, 5, 6, 127, 128, 16_383, 16_384, 2_097_151, 2_097_152] {
            for version in [ProtocolVersion::V3_1_1, ProtocolVersion::V5] {
                for qos in [QoS::AtMostOnce, QoS::AtLeastOnce, QoS::ExactlyOnce] {
                    let fixed =
                        3 + usize::from(qos != QoS::AtMostOnce) * 2 + usize::from(version.is_v5());
                    let Some(payload_len) = target.checked_sub(fixed) else {
                        continue;
                    };
                    let p = publish(qos, "t", payload_len);
                    let want = reference(&p, version);
                    // Into a buffer of exactly the frame's size: no reallocation either.
                    let mut out = BytesMut::with_capacity(want.len());
                    let at = out.as_ptr();
                    encode_publish(&p, version, &mut out).unwrap();
                    assert_eq!(out, want, "{target} {version:?} {qos:?}");
                    assert_eq!(out.as_ptr(), at, "{target} {version:?} {qos:?}");
                    // After bytes already in the buffer.
                    let mut out = BytesMut::from(&b"xy"[..]);
                    encode_publish(&p, version, &mut out).unwrap();
                    assert_eq!(&out[..2], b"xy");
                    assert_eq!(&out[2..], &want[..]);
                }
            }
        }
    }

    #[test]
    fn smallest_frame() {
        // QoS 0, empty topic (allowed with a v5 Topic Alias), no payload: 4 bytes in 3.1.1.
        let p = publish(QoS::AtMostOnce, "", 0);
        let mut out = BytesMut::new();
        encode_publish(&p, ProtocolVersion::V3_1_1, &mut out).unwrap();
        assert_eq!(&out[..], &[0x31, 0x02, 0x00, 0x00]);
    }

    #[test]
    fn properties_take_the_general_writer() {
        let mut p = publish(QoS::AtLeastOnce, "a/b", 5);
        p.properties.message_expiry_interval = Some(60);
        p.properties
            .user_properties
            .push((ByteStr::from_static("k"), ByteStr::from_static("v")));
        let mut out = BytesMut::new();
        encode_publish(&p, ProtocolVersion::V5, &mut out).unwrap();
        assert_eq!(out, reference(&p, ProtocolVersion::V5));
        // A Topic Alias of 0 is refused before anything is written (§3.3.2.3.4).
        p.properties.topic_alias = Some(0);
        let mut out = BytesMut::from(&b"xy"[..]);
        assert_eq!(
            encode_publish(&p, ProtocolVersion::V5, &mut out),
            Err(EncodeError::InvalidPropertyValue(0x23))
        );
        assert_eq!(&out[..], b"xy");
    }
}
