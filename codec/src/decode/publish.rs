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
use crate::types::{ProtocolVersion, QoS};
use crate::wire::{read_packet_id, read_str, read_u8};
use bytes::Bytes;

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
    let topic = read_str(b)?;
    let packet_id = if qos == QoS::AtMostOnce {
        None
    } else {
        Some(read_packet_id(b)?)
    };
    let properties = if version.is_v5() {
        properties::decode_publish(b)?
    } else {
        PublishProperties::default()
    };
    if topic.is_empty() {
        // An MQTT 5 sender may leave the topic empty and name it by a Topic Alias (§3.3.2.3.4).
        if properties.topic_alias.is_none() {
            return Err(TopicError::EmptyName.into());
        }
    } else {
        topic::validate_name(&topic)?;
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
