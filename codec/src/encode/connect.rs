//! CONNECT (§3.1) and CONNACK (§3.2) encoding. Layouts are drawn in `decode/connect.rs`.

use crate::error::EncodeError;
use crate::packet::*;
use crate::properties_encode::put_properties;
use crate::types::ProtocolVersion;
use crate::wire::{put_binary, put_str, Sink};

/// CONNECT in the version `c.protocol` names.
pub(super) fn write_connect<S: Sink>(c: &Connect, s: &mut S) -> Result<(), EncodeError> {
    let v = c.protocol;
    if c.password.is_some() && c.username.is_none() && !v.is_v5() {
        return Err(EncodeError::PasswordWithoutUsername);
    }
    put_str(
        s,
        if v == ProtocolVersion::V3_1 {
            "MQIsdp"
        } else {
            "MQTT"
        },
    )?;
    s.put_u8(v.level());
    let mut flags = 0u8;
    if c.clean_start {
        flags |= 0b0000_0010;
    }
    if let Some(w) = &c.will {
        flags |= 0b0000_0100 | w.qos.as_u8() << 3;
        if w.retain {
            flags |= 0b0010_0000;
        }
    }
    if c.password.is_some() {
        flags |= 0b0100_0000;
    }
    if c.username.is_some() {
        flags |= 0b1000_0000;
    }
    s.put_u8(flags);
    s.put_u16(c.keep_alive);
    if v.is_v5() {
        put_properties(s, &c.properties)?;
    }
    put_str(s, &c.client_id)?;
    if let Some(w) = &c.will {
        if v.is_v5() {
            put_properties(s, &w.properties)?;
        }
        put_str(s, &w.topic)?;
        put_binary(s, &w.payload)?;
    }
    if let Some(u) = &c.username {
        put_str(s, u)?;
    }
    if let Some(p) = &c.password {
        put_binary(s, p)?;
    }
    Ok(())
}

/// CONNACK. 3.x peers get the return code closest to `code`
/// ([`crate::ReasonCode::to_connect_return_code`]) and no properties.
pub(super) fn write_connack<S: Sink>(
    c: &ConnAck,
    version: ProtocolVersion,
    s: &mut S,
) -> Result<(), EncodeError> {
    let code = if version.is_v5() {
        super::checked_reason(PacketType::ConnAck, c.code)?
    } else {
        c.code.to_connect_return_code() as u8
    };
    s.put_u8(u8::from(c.session_present));
    s.put_u8(code);
    if version.is_v5() {
        put_properties(s, &c.properties)?;
    }
    Ok(())
}
