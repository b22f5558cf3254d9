//! SUBSCRIBE, SUBACK, UNSUBSCRIBE and UNSUBACK encoding (§3.8-§3.11). Layouts are drawn in
//! `decode/subscribe.rs`.

use crate::error::EncodeError;
use crate::packet::*;
use crate::properties_encode::put_properties;
use crate::reason::ReasonCode;
use crate::types::ProtocolVersion;
use crate::wire::{put_str, Sink};

pub(super) fn write_subscribe<S: Sink>(
    p: &Subscribe,
    version: ProtocolVersion,
    s: &mut S,
) -> Result<(), EncodeError> {
    if p.filters.is_empty() {
        return Err(EncodeError::EmptyPayload(PacketType::Subscribe));
    }
    s.put_u16(p.packet_id.get());
    if version.is_v5() {
        put_properties(s, &p.properties)?;
    }
    for f in &p.filters {
        put_str(s, &f.filter)?;
        let mut options = f.qos.as_u8();
        if version.is_v5() {
            options |= u8::from(f.no_local) << 2 | u8::from(f.retain_as_published) << 3;
            options |= (f.retain_handling as u8) << 4;
        }
        s.put_u8(options);
    }
    Ok(())
}

/// 3.x SUBACK carries 0x00/0x01/0x02 or 0x80 Failure: every failure reason becomes 0x80.
pub(super) fn write_suback<S: Sink>(
    p: &SubAck,
    version: ProtocolVersion,
    s: &mut S,
) -> Result<(), EncodeError> {
    if p.codes.is_empty() {
        return Err(EncodeError::EmptyPayload(PacketType::SubAck));
    }
    s.put_u16(p.packet_id.get());
    if version.is_v5() {
        put_properties(s, &p.properties)?;
    }
    for &code in &p.codes {
        let byte = if version.is_v5() {
            super::checked_reason(PacketType::SubAck, code)?
        } else {
            match code {
                ReasonCode::Success | ReasonCode::GrantedQoS1 | ReasonCode::GrantedQoS2 => {
                    code.as_u8()
                }
                c if c.is_error() => 0x80,
                c => {
                    return Err(EncodeError::ReasonNotRepresentable {
                        packet_type: PacketType::SubAck,
                        code: c,
                    })
                }
            }
        };
        s.put_u8(byte);
    }
    Ok(())
}

pub(super) fn write_unsubscribe<S: Sink>(
    p: &Unsubscribe,
    version: ProtocolVersion,
    s: &mut S,
) -> Result<(), EncodeError> {
    if p.filters.is_empty() {
        return Err(EncodeError::EmptyPayload(PacketType::Unsubscribe));
    }
    s.put_u16(p.packet_id.get());
    if version.is_v5() {
        put_properties(s, &p.user_properties)?;
    }
    for f in &p.filters {
        put_str(s, f)?;
    }
    Ok(())
}

/// 3.x UNSUBACK is the packet id alone: the reason codes are dropped. 5.0 needs one per filter.
pub(super) fn write_unsuback<S: Sink>(
    p: &UnsubAck,
    version: ProtocolVersion,
    s: &mut S,
) -> Result<(), EncodeError> {
    if version.is_v5() && p.codes.is_empty() {
        return Err(EncodeError::EmptyPayload(PacketType::UnsubAck));
    }
    s.put_u16(p.packet_id.get());
    if !version.is_v5() {
        return Ok(());
    }
    put_properties(s, &p.properties)?;
    for &code in &p.codes {
        s.put_u8(super::checked_reason(PacketType::UnsubAck, code)?);
    }
    Ok(())
}
