//! PUBLISH (§3.3) and its acknowledgements PUBACK, PUBREC, PUBREL, PUBCOMP (§3.4-§3.7).
//!
//! ```text
//! PUBLISH: | topic (str) | packet id (u16, QoS 1/2 only) | properties (5.0) | payload ... |
//! acks:    | packet id (u16) | reason (5.0, optional) | properties (5.0, optional) |
//! ```
//! The payload is whatever follows the properties: a zero-copy slice of the packet body.
//! The fixed-header flags (QoS 3, DUP at QoS 0) were checked by `peek_header`.

use crate::error::DecodeError;
use crate::packet::*;
use crate::properties;
use crate::topic::{self, TopicError};
use crate::types::{ByteStr, ProtocolVersion, QoS};
use crate::wire::{read_binary, read_packet_id, read_u8};
use bytes::{Buf, Bytes};

/// Always `Some` on success; the `Option` is there so the value is built in the caller's
/// return slot (see `decode`).
pub(super) fn decode_publish(
    flags: u8,
    mut body: Bytes,
    version: ProtocolVersion,
) -> Result<Option<Packet>, DecodeError> {
    let b = &mut body;
    let dup = flags & 0b1000 != 0;
    let qos = QoS::from_u8((flags >> 1) & 0b11).ok_or(DecodeError::PublishQoS3)?;
    let retain = flags & 0b0001 != 0;
    let topic = read_topic_name(b)?;
    let packet_id = if qos == QoS::AtMostOnce {
        None
    } else {
        Some(read_packet_id(b)?)
    };
    let properties = if version.is_v5() && b.first() == Some(&0) {
        // The usual empty property block (one 0x00 length byte): skipping the property reader
        // and the Result round trip of the ~200-byte struct took a 64 B v5 PUBLISH decode
        // from ~90 to ~70 ns. A non-minimal zero (0x80 0x00) still goes to the reader.
        b.advance(1);
        PublishProperties::default()
    } else if version.is_v5() {
        properties::decode_publish(b)?
    } else {
        PublishProperties::default()
    };
    // An MQTT 5 sender may leave the topic empty and name it by a Topic Alias (§3.3.2.3.4).
    if topic.is_empty() && properties.topic_alias.is_none() {
        return Err(TopicError::EmptyName.into());
    }
    Ok(Some(Packet::Publish(Publish {
        dup,
        qos,
        retain,
        topic,
        packet_id,
        properties,
        payload: body,
    })))
}

/// The topic name: valid UTF-8, then one `validate_name` scan that finds U+0000 and the
/// wildcards together (`read_str` would scan for U+0000 first, a second pass over every
/// PUBLISH topic). Empty passes here; the caller checks for a Topic Alias.
fn read_topic_name(b: &mut Bytes) -> Result<ByteStr, DecodeError> {
    let raw = read_binary(b)?;
    let name = std::str::from_utf8(&raw).map_err(|_| DecodeError::InvalidUtf8)?;
    if !name.is_empty() {
        topic::validate_name(name).map_err(|e| match e {
            // The same error `read_str` gives for U+0000 in any string [MQTT-1.5.4-2].
            TopicError::NullCharacter => DecodeError::NullCharacter,
            e => e.into(),
        })?;
    }
    Ok(ByteStr::from_checked(raw))
}

/// The four acknowledgements share one body. 3.x: the packet id and nothing else.
/// 5.0: remaining length 2 means Success without properties, 3 means a reason code without
/// properties (§3.4.2.1).
pub(super) fn decode_ack(
    packet_type: PacketType,
    b: &mut Bytes,
    version: ProtocolVersion,
) -> Result<PubAck, DecodeError> {
    let packet_id = read_packet_id(b)?;
    if !version.is_v5() || b.is_empty() {
        return Ok(PubAck::new(packet_id));
    }
    let code = super::reason(packet_type, read_u8(b)?)?;
    let properties = if b.is_empty() {
        AckProperties::default()
    } else {
        properties::decode_ack(b, packet_type)?
    };
    Ok(PubAck {
        packet_id,
        code,
        properties,
    })
}
