//! PUBLISH (§3.3) and PUBACK/PUBREC/PUBREL/PUBCOMP (§3.4-§3.7) encoding.
//!
//! PUBLISH is the hot path: [`encode_publish`] adds up the handful of field lengths, reserves
//! once and writes; the only pass over anything variable is the property count, which is a
//! few branches for the usual empty property set. Layouts are drawn in `decode/publish.rs`.

use crate::error::EncodeError;
use crate::packet::*;
use crate::properties_encode::{props_len, put_properties, WriteProps};
use crate::reason::ReasonCode;
use crate::types::{ProtocolVersion, QoS};
use crate::wire::{length_varint, put_str, put_varint, varint_len, Sink};
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

pub(crate) fn encode_publish(
    p: &Publish,
    version: ProtocolVersion,
    out: &mut BytesMut,
) -> Result<(), EncodeError> {
    check(p)?;
    write_frame(p, version, p.dup, p.packet_id.map_or(0, |id| id.get()), out).map(|_| ())
}

/// Writes the whole frame with the given DUP flag and packet id (`id` is ignored at QoS 0):
/// lengths first, one reservation, then straight copies. Returns the remaining length.
/// Every error is found before the first byte is written, so `out` is unchanged on error.
pub(crate) fn write_frame(
    p: &Publish,
    version: ProtocolVersion,
    dup: bool,
    id: u16,
    out: &mut BytesMut,
) -> Result<usize, EncodeError> {
    let (remaining, props_len) = frame_lengths(p, version)?;
    let rl = length_varint(remaining)?;
    out.reserve(1 + varint_len(rl) + remaining);
    let flags = u8::from(dup) << 3 | p.qos.as_u8() << 1 | u8::from(p.retain);
    BufMut::put_u8(out, (PacketType::Publish as u8) << 4 | flags);
    put_varint(out, rl)?;
    put_str(out, &p.topic)?;
    if p.qos != QoS::AtMostOnce {
        BufMut::put_u16(out, id);
    }
    if let Some(len) = props_len {
        put_varint(out, len)?;
        p.properties.write(out)?;
    }
    out.extend_from_slice(&p.payload);
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
