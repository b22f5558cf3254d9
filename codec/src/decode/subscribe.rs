//! SUBSCRIBE (§3.8), SUBACK (§3.9), UNSUBSCRIBE (§3.10) and UNSUBACK (§3.11).
//!
//! ```text
//! SUBSCRIBE:   | packet id | properties (5.0) | { filter (str) | options (u8) } ... (at least one)
//! SUBACK:      | packet id | properties (5.0) | { reason / return code (u8) } ...
//! UNSUBSCRIBE: | packet id | properties (5.0) | { filter (str) } ... (at least one)
//! UNSUBACK:    | packet id | properties (5.0) | { reason (u8) } ... (5.0 only)
//!
//! subscription options (5.0): 7-6 reserved, 5-4 retain handling, 3 retain as published,
//!                             2 no local, 1-0 maximum QoS. 3.x: 7-2 reserved, 1-0 QoS.
//! ```
//! Every filter is checked with `topic::validate_subscription`, shared ones included: a
//! `$share/` filter from a 3.x client is read as a shared subscription too, as common
//! brokers do.

use crate::error::DecodeError;
use crate::packet::*;
use crate::properties;
use crate::reason::ReasonCode;
use crate::topic;
use crate::types::{ProtocolVersion, QoS};
use crate::wire::{read_packet_id, read_str, read_u8};
use bytes::Bytes;

pub(super) fn decode_subscribe(
    b: &mut Bytes,
    version: ProtocolVersion,
) -> Result<Subscribe, DecodeError> {
    let packet_id = read_packet_id(b)?;
    let properties = if version.is_v5() {
        properties::decode_subscribe(b)?
    } else {
        SubscribeProperties::default()
    };
    let mut filters = Vec::new();
    while !b.is_empty() {
        let filter = read_str(b)?;
        let options = read_u8(b)?;
        let reserved = if version.is_v5() {
            0b1100_0000
        } else {
            0b1111_1100
        };
        if options & reserved != 0 {
            return Err(DecodeError::SubscriptionOptionsReserved);
        }
        let qos = QoS::from_u8(options & 0b11).ok_or(DecodeError::SubscriptionQoS3)?;
        let no_local = options & 0b0000_0100 != 0;
        let retain_as_published = options & 0b0000_1000 != 0;
        let retain_handling = match (options >> 4) & 0b11 {
            0 => RetainHandling::SendAtSubscribe,
            1 => RetainHandling::SendIfNew,
            2 => RetainHandling::DoNotSend,
            _ => return Err(DecodeError::RetainHandling3),
        };
        let shared = topic::validate_subscription(&filter)?;
        if shared && no_local {
            return Err(DecodeError::NoLocalOnShared);
        }
        filters.push(SubscribeFilter {
            filter,
            qos,
            no_local,
            retain_as_published,
            retain_handling,
        });
    }
    if filters.is_empty() {
        return Err(DecodeError::NoSubscribeFilters);
    }
    Ok(Subscribe {
        packet_id,
        filters,
        properties,
    })
}

pub(super) fn decode_suback(
    b: &mut Bytes,
    version: ProtocolVersion,
) -> Result<SubAck, DecodeError> {
    let packet_id = read_packet_id(b)?;
    let properties = if version.is_v5() {
        properties::decode_ack(b, PacketType::SubAck)?
    } else {
        AckProperties::default()
    };
    let mut codes = Vec::with_capacity(b.len());
    while !b.is_empty() {
        let raw = read_u8(b)?;
        let code = if version.is_v5() {
            super::reason(PacketType::SubAck, raw)?
        } else {
            // 3.x return codes: granted QoS 0, 1, 2, or 0x80 Failure (3.1.1 §3.9.3).
            match raw {
                0x00 => ReasonCode::Success,
                0x01 => ReasonCode::GrantedQoS1,
                0x02 => ReasonCode::GrantedQoS2,
                0x80 => ReasonCode::UnspecifiedError,
                _ => {
                    return Err(DecodeError::InvalidReasonCode {
                        packet_type: PacketType::SubAck,
                        code: raw,
                    })
                }
            }
        };
        codes.push(code);
    }
    if codes.is_empty() {
        return Err(DecodeError::NoSubAckCodes);
    }
    Ok(SubAck {
        packet_id,
        codes,
        properties,
    })
}

pub(super) fn decode_unsubscribe(
    b: &mut Bytes,
    version: ProtocolVersion,
) -> Result<Unsubscribe, DecodeError> {
    let packet_id = read_packet_id(b)?;
    let user_properties = if version.is_v5() {
        properties::decode_unsubscribe(b)?
    } else {
        Vec::new()
    };
    let mut filters = Vec::new();
    while !b.is_empty() {
        let filter = read_str(b)?;
        topic::validate_subscription(&filter)?;
        filters.push(filter);
    }
    if filters.is_empty() {
        return Err(DecodeError::NoUnsubscribeFilters);
    }
    Ok(Unsubscribe {
        packet_id,
        filters,
        user_properties,
    })
}

/// 3.x UNSUBACK is the packet id alone; 5.0 adds properties and one reason per filter
/// (so at least one).
pub(super) fn decode_unsuback(
    b: &mut Bytes,
    version: ProtocolVersion,
) -> Result<UnsubAck, DecodeError> {
    let packet_id = read_packet_id(b)?;
    if !version.is_v5() {
        return Ok(UnsubAck {
            packet_id,
            codes: Vec::new(),
            properties: AckProperties::default(),
        });
    }
    let properties = properties::decode_ack(b, PacketType::UnsubAck)?;
    let mut codes = Vec::with_capacity(b.len());
    while !b.is_empty() {
        codes.push(super::reason(PacketType::UnsubAck, read_u8(b)?)?);
    }
    if codes.is_empty() {
        return Err(DecodeError::NoUnsubAckCodes);
    }
    Ok(UnsubAck {
        packet_id,
        codes,
        properties,
    })
}
