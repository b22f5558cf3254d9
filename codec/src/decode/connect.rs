//! CONNECT (§3.1) and CONNACK (§3.2) decoding.
//!
//! CONNECT decides the connection's protocol version: it is read from the packet's protocol
//! name and level, never from the caller. All CONNECT flag rules are checked here.
//!
//! ```text
//! CONNECT variable header      CONNECT payload (in this order, each when its flag says so)
//! +---------------------+      +-----------+---------------+------------+-------------+----------+----------+
//! | protocol name (str) |      | client id | will props(5) | will topic | will payload| username | password |
//! | level (u8)          |      +-----------+---------------+------------+-------------+----------+----------+
//! | flags (u8)          |
//! | keep alive (u16)    |      flags: 7 username, 6 password, 5 will retain, 4-3 will QoS,
//! | properties (5.0)    |             2 will, 1 clean start, 0 reserved
//! +---------------------+
//! ```

use crate::error::DecodeError;
use crate::packet::*;
use crate::properties;
use crate::reason::{ConnectReturnCode, ReasonCode};
use crate::topic;
use crate::types::{ProtocolVersion, QoS};
use crate::wire::{read_binary, read_str, read_u16, read_u8};
use bytes::Bytes;

/// Protocol name and level to a version (§3.1.2.1, §3.1.2.2).
pub(super) fn protocol_version(name: &[u8], level: u8) -> Result<ProtocolVersion, DecodeError> {
    match (name, level) {
        (b"MQIsdp", 3) => Ok(ProtocolVersion::V3_1),
        (b"MQTT", 4) => Ok(ProtocolVersion::V3_1_1),
        (b"MQTT", 5) => Ok(ProtocolVersion::V5),
        (b"MQTT" | b"MQIsdp", level) => Err(DecodeError::UnsupportedProtocolLevel(level)),
        _ => Err(DecodeError::InvalidProtocolName),
    }
}

pub(super) fn decode_connect(b: &mut Bytes) -> Result<Connect, DecodeError> {
    let name = read_binary(b)?;
    let level = read_u8(b)?;
    let protocol = protocol_version(&name, level)?;
    let flags = read_u8(b)?;
    if flags & 0b0000_0001 != 0 {
        return Err(DecodeError::ConnectReservedFlag);
    }
    let clean_start = flags & 0b0000_0010 != 0;
    let will_flag = flags & 0b0000_0100 != 0;
    let will_qos = (flags >> 3) & 0b11;
    let will_retain = flags & 0b0010_0000 != 0;
    let password_flag = flags & 0b0100_0000 != 0;
    let username_flag = flags & 0b1000_0000 != 0;
    if !will_flag && will_qos != 0 {
        return Err(DecodeError::WillQoSWithoutWill);
    }
    if !will_flag && will_retain {
        return Err(DecodeError::WillRetainWithoutWill);
    }
    let will_qos = QoS::from_u8(will_qos).ok_or(DecodeError::WillQoS3)?;
    // MQTT 5 dropped this rule (§3.1.2.9); 3.1 and 3.1.1 keep it.
    if password_flag && !username_flag && !protocol.is_v5() {
        return Err(DecodeError::PasswordWithoutUsername);
    }
    let keep_alive = read_u16(b)?;
    let properties = if protocol.is_v5() {
        properties::decode_connect(b)?
    } else {
        ConnectProperties::default()
    };

    let client_id = read_str(b)?;
    // 3.1 requires 1..=23 characters; 3.1.1 allows an empty id only with Clean Session
    // [MQTT-3.1.3-8]; 5.0 always allows it (the server assigns one).
    let empty_refused = match protocol {
        ProtocolVersion::V3_1 => true,
        ProtocolVersion::V3_1_1 => !clean_start,
        ProtocolVersion::V5 => false,
    };
    if client_id.is_empty() && empty_refused {
        return Err(DecodeError::EmptyClientId);
    }
    let chars = client_id.chars().count();
    if protocol == ProtocolVersion::V3_1 && chars > 23 {
        return Err(DecodeError::ClientIdTooLongFor31(chars as u16));
    }
    let will = if will_flag {
        let properties = if protocol.is_v5() {
            properties::decode_will(b)?
        } else {
            WillProperties::default()
        };
        let topic = read_str(b)?;
        topic::validate_name(&topic)?;
        let payload = read_binary(b)?;
        Some(LastWill {
            topic,
            payload,
            qos: will_qos,
            retain: will_retain,
            properties,
        })
    } else {
        None
    };
    let username = if username_flag {
        Some(read_str(b)?)
    } else {
        None
    };
    let password = if password_flag {
        Some(read_binary(b)?)
    } else {
        None
    };
    Ok(Connect {
        protocol,
        clean_start,
        keep_alive,
        client_id,
        will,
        username,
        password,
        properties,
    })
}

/// CONNACK: acknowledge flags, then a 3.x return code or a 5.0 reason code and properties.
pub(super) fn decode_connack(
    b: &mut Bytes,
    version: ProtocolVersion,
) -> Result<ConnAck, DecodeError> {
    let flags = read_u8(b)?;
    if flags & 0b1111_1110 != 0 {
        return Err(DecodeError::ConnAckReservedFlags);
    }
    let session_present = flags & 1 != 0;
    let raw = read_u8(b)?;
    let code = if version.is_v5() {
        super::reason(PacketType::ConnAck, raw)?
    } else {
        let rc = ConnectReturnCode::from_u8(raw).ok_or(DecodeError::InvalidReasonCode {
            packet_type: PacketType::ConnAck,
            code: raw,
        })?;
        ConnAck::reason_from_v3(rc)
    };
    // A refused connection never has a session [MQTT-3.2.2-6] (3.1.1: [MQTT-3.2.2-4]).
    if session_present && code != ReasonCode::Success {
        return Err(DecodeError::SessionPresentOnError);
    }
    let properties = if version.is_v5() {
        properties::decode_connack(b)?
    } else {
        ConnAckProperties::default()
    };
    Ok(ConnAck {
        session_present,
        code,
        properties,
    })
}
