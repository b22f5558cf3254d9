//! Decoding: bytes from the peer to [`Packet`]s (§2, §3).
//!
//! ```text
//!  byte 0        bytes 1..=4              remaining length bytes
//! +------+------+------------------------+--------------------------------+
//! | type | flags| remaining length (VBI) | variable header | payload      |
//! +------+------+------------------------+--------------------------------+
//! ```
//! [`decode`] checks the first byte and the remaining length, refuses a packet larger than
//! `Limits::max_packet_size` as soon as that much is known, and touches the buffer only once
//! the whole packet is there: it then splits it off, freezes it, and the packet decoders
//! slice strings, binary data and payloads out of that one `Bytes` (no copy).
//! This file owns the framing and the packets without a family of their own (PINGREQ,
//! PINGRESP, DISCONNECT, AUTH); CONNECT/CONNACK, PUBLISH and its acks, and the subscribe
//! family live in `decode/`. Nothing here may panic, whatever the peer sends.

mod connect;
mod publish;
mod subscribe;

use crate::error::DecodeError;
use crate::packet::*;
use crate::properties;
use crate::reason::ReasonCode;
use crate::types::{Limits, ProtocolVersion};
use crate::wire::{expect_end, parse_varint, read_u8};
use bytes::{Buf, Bytes, BytesMut};

/// What the fixed header says about the packet at the front of a buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FixedHeader {
    pub packet_type: PacketType,
    /// The low nibble of the first byte.
    pub flags: u8,
    /// Bytes taken by the fixed header itself (2..=5).
    pub header_len: usize,
    /// The remaining length: variable header plus payload.
    pub remaining_len: usize,
}

impl FixedHeader {
    /// The whole packet's size in bytes.
    pub fn frame_len(&self) -> usize {
        self.header_len + self.remaining_len
    }
}

/// Reads the fixed header at the front of `buf` without consuming anything.
///
/// `Ok(None)` until the first byte and the whole remaining-length field are there. The first
/// byte is checked as soon as it arrives (reserved type, reserved flag bits, PUBLISH QoS 3),
/// so a bad packet is refused before its body is awaited. `version` matters only for AUTH,
/// which does not exist before MQTT 5.
pub fn peek_header(
    buf: &[u8],
    version: ProtocolVersion,
) -> Result<Option<FixedHeader>, DecodeError> {
    let Some(&first) = buf.first() else {
        return Ok(None);
    };
    let (packet_type, flags) = check_first_byte(first, version)?;
    let (remaining, len) = match parse_varint(buf.get(1..).unwrap_or(&[])) {
        Ok(Some(v)) => v,
        Ok(None) => return Ok(None),
        Err(DecodeError::VarIntTooLong) => return Err(DecodeError::RemainingLengthTooLong),
        Err(e) => return Err(e),
    };
    Ok(Some(FixedHeader {
        packet_type,
        flags,
        header_len: 1 + len,
        remaining_len: remaining as usize,
    }))
}

/// Decodes one packet from the front of `buf`.
///
/// - `Ok(None)`: not a whole packet yet; `buf` is untouched. Read more and call again.
/// - `Ok(Some(p))`: exactly that packet's bytes were removed from `buf`.
/// - `Err(e)`: the peer broke the protocol; close the connection. The packet's bytes may or
///   may not have been consumed: `buf` is not worth reading further.
///
/// CONNECT is decoded according to the protocol name and level it carries, whatever
/// `version` says; every other packet is decoded as `version` (the connection's, from its
/// CONNECT).
pub fn decode(
    buf: &mut BytesMut,
    limits: &Limits,
    version: ProtocolVersion,
) -> Result<Option<Packet>, DecodeError> {
    let Some(header) = peek_header(buf, version)? else {
        return Ok(None);
    };
    let frame_len = header.frame_len();
    // Refuse before buffering: a hostile length must not make us wait for (or reserve) it.
    if frame_len > limits.max_packet_size as usize {
        let size = u32::try_from(frame_len).unwrap_or(u32::MAX);
        return Err(DecodeError::PacketTooLarge {
            size,
            max: limits.max_packet_size,
        });
    }
    if buf.len() < frame_len {
        return Ok(None);
    }
    let mut body = buf.split_to(frame_len).freeze();
    body.advance(header.header_len);
    decode_body(header, body, version)
}

/// The protocol version a complete or partial CONNECT at the front of `buf` asks for, if its
/// name and level can be read. Lets a server answer a CONNECT it failed to decode with a
/// CONNACK in the client's own version.
pub fn peek_connect_version(buf: &[u8]) -> Option<ProtocolVersion> {
    let header = peek_header(buf, ProtocolVersion::V5).ok()??;
    if header.packet_type != PacketType::Connect {
        return None;
    }
    let vh = buf.get(header.header_len..)?;
    let name_len = usize::from(u16::from_be_bytes([*vh.first()?, *vh.get(1)?]));
    let name = vh.get(2..2 + name_len)?;
    let level = *vh.get(2 + name_len)?;
    connect::protocol_version(name, level).ok()
}

fn packet_type(v: u8) -> Option<PacketType> {
    use PacketType::*;
    Some(match v {
        1 => Connect,
        2 => ConnAck,
        3 => Publish,
        4 => PubAck,
        5 => PubRec,
        6 => PubRel,
        7 => PubComp,
        8 => Subscribe,
        9 => SubAck,
        10 => Unsubscribe,
        11 => UnsubAck,
        12 => PingReq,
        13 => PingResp,
        14 => Disconnect,
        15 => Auth,
        _ => return None,
    })
}

/// Type and flags of the first byte, checked (§2.1.2, §2.1.3).
fn check_first_byte(first: u8, version: ProtocolVersion) -> Result<(PacketType, u8), DecodeError> {
    let ty = first >> 4;
    let flags = first & 0x0F;
    let packet_type = match packet_type(ty) {
        // AUTH is a reserved type number before MQTT 5.
        Some(PacketType::Auth) if !version.is_v5() => {
            return Err(DecodeError::ReservedPacketType(ty))
        }
        Some(t) => t,
        None => return Err(DecodeError::ReservedPacketType(ty)),
    };
    match packet_type {
        PacketType::Publish => {
            // QoS 3 is forbidden [MQTT-3.3.1-4]; DUP must be 0 at QoS 0 [MQTT-3.3.1-2].
            let qos = (flags >> 1) & 0b11;
            if qos == 3 {
                return Err(DecodeError::PublishQoS3);
            }
            if qos == 0 && flags & 0b1000 != 0 {
                return Err(DecodeError::DupWithQoS0);
            }
        }
        // These three carry 0b0010 in the flags [MQTT-2.1.3-1] (3.1.1: [MQTT-3.6.1-1] etc.).
        PacketType::PubRel | PacketType::Subscribe | PacketType::Unsubscribe if flags != 0b0010 => {
            return Err(DecodeError::ReservedFlags { packet_type, flags })
        }
        PacketType::PubRel | PacketType::Subscribe | PacketType::Unsubscribe => {}
        _ if flags != 0 => return Err(DecodeError::ReservedFlags { packet_type, flags }),
        _ => {}
    }
    Ok((packet_type, flags))
}

/// Always `Some` on success: returning the `Option` from here lets PUBLISH, the hot path,
/// be built straight in the caller's return slot (a `Publish` is ~230 bytes and every
/// re-wrapping is a copy of it; measured ~10% of a small PUBLISH decode).
fn decode_body(
    header: FixedHeader,
    mut body: Bytes,
    version: ProtocolVersion,
) -> Result<Option<Packet>, DecodeError> {
    let b = &mut body;
    let packet = match header.packet_type {
        PacketType::Connect => Packet::Connect(Box::new(connect::decode_connect(b)?)),
        PacketType::ConnAck => Packet::ConnAck(connect::decode_connack(b, version)?),
        // The payload is the rest of the body, so nothing can be left over.
        PacketType::Publish => return publish::decode_publish(header.flags, body, version),
        PacketType::PubAck => Packet::PubAck(publish::decode_ack(PacketType::PubAck, b, version)?),
        PacketType::PubRec => Packet::PubRec(publish::decode_ack(PacketType::PubRec, b, version)?),
        PacketType::PubRel => Packet::PubRel(publish::decode_ack(PacketType::PubRel, b, version)?),
        PacketType::PubComp => {
            Packet::PubComp(publish::decode_ack(PacketType::PubComp, b, version)?)
        }
        PacketType::Subscribe => Packet::Subscribe(subscribe::decode_subscribe(b, version)?),
        PacketType::SubAck => Packet::SubAck(subscribe::decode_suback(b, version)?),
        PacketType::Unsubscribe => Packet::Unsubscribe(subscribe::decode_unsubscribe(b, version)?),
        PacketType::UnsubAck => Packet::UnsubAck(subscribe::decode_unsuback(b, version)?),
        PacketType::PingReq => Packet::PingReq,
        PacketType::PingResp => Packet::PingResp,
        PacketType::Disconnect => Packet::Disconnect(decode_disconnect(b, version)?),
        PacketType::Auth => Packet::Auth(decode_auth(b)?),
    };
    // Every decoder reads its fields and leaves the rest; anything left is malformed.
    expect_end(&body)?;
    Ok(Some(packet))
}

/// DISCONNECT (§3.14). 3.x: no body. 5.0: remaining length 0 means Normal Disconnection
/// without properties, 1 means a reason code without properties (§3.14.2.1).
fn decode_disconnect(b: &mut Bytes, version: ProtocolVersion) -> Result<Disconnect, DecodeError> {
    if !version.is_v5() || b.is_empty() {
        return Ok(Disconnect::new(ReasonCode::Success));
    }
    let code = reason(PacketType::Disconnect, read_u8(b)?)?;
    let properties = if b.is_empty() {
        DisconnectProperties::default()
    } else {
        properties::decode_disconnect(b)?
    };
    Ok(Disconnect { code, properties })
}

/// AUTH (§3.15), MQTT 5 only: the same short forms as DISCONNECT.
fn decode_auth(b: &mut Bytes) -> Result<Auth, DecodeError> {
    if b.is_empty() {
        return Ok(Auth {
            code: ReasonCode::Success,
            properties: AuthProperties::default(),
        });
    }
    let code = reason(PacketType::Auth, read_u8(b)?)?;
    let properties = if b.is_empty() {
        AuthProperties::default()
    } else {
        properties::decode_auth(b)?
    };
    Ok(Auth { code, properties })
}

/// Parses an MQTT 5 reason code and checks that `packet_type` may carry it (§2.4 table 2-6).
pub(crate) fn reason(packet_type: PacketType, v: u8) -> Result<ReasonCode, DecodeError> {
    match ReasonCode::from_u8(v) {
        Some(code) if reason_allowed(packet_type, code) => Ok(code),
        _ => Err(DecodeError::InvalidReasonCode {
            packet_type,
            code: v,
        }),
    }
}

/// Which reason codes each packet may carry (§3.2.2.2, §3.4.2.1, ..., §3.15.2.1).
pub fn reason_allowed(packet_type: PacketType, code: ReasonCode) -> bool {
    use ReasonCode::*;
    match packet_type {
        PacketType::ConnAck => matches!(
            code,
            Success
                | UnspecifiedError
                | MalformedPacket
                | ProtocolError
                | ImplementationSpecificError
                | UnsupportedProtocolVersion
                | ClientIdentifierNotValid
                | BadUserNameOrPassword
                | NotAuthorized
                | ServerUnavailable
                | ServerBusy
                | Banned
                | BadAuthenticationMethod
                | TopicNameInvalid
                | PacketTooLarge
                | QuotaExceeded
                | PayloadFormatInvalid
                | RetainNotSupported
                | QoSNotSupported
                | UseAnotherServer
                | ServerMoved
                | ConnectionRateExceeded
        ),
        PacketType::PubAck | PacketType::PubRec => matches!(
            code,
            Success
                | NoMatchingSubscribers
                | UnspecifiedError
                | ImplementationSpecificError
                | NotAuthorized
                | TopicNameInvalid
                | PacketIdentifierInUse
                | QuotaExceeded
                | PayloadFormatInvalid
        ),
        PacketType::PubRel | PacketType::PubComp => {
            matches!(code, Success | PacketIdentifierNotFound)
        }
        PacketType::SubAck => matches!(
            code,
            Success
                | GrantedQoS1
                | GrantedQoS2
                | UnspecifiedError
                | ImplementationSpecificError
                | NotAuthorized
                | TopicFilterInvalid
                | PacketIdentifierInUse
                | QuotaExceeded
                | SharedSubscriptionsNotSupported
                | SubscriptionIdentifiersNotSupported
                | WildcardSubscriptionsNotSupported
        ),
        PacketType::UnsubAck => matches!(
            code,
            Success
                | NoSubscriptionExisted
                | UnspecifiedError
                | ImplementationSpecificError
                | NotAuthorized
                | TopicFilterInvalid
                | PacketIdentifierInUse
        ),
        PacketType::Disconnect => !matches!(
            code,
            GrantedQoS1
                | GrantedQoS2
                | NoMatchingSubscribers
                | NoSubscriptionExisted
                | ContinueAuthentication
                | ReAuthenticate
                | UnsupportedProtocolVersion
                | ClientIdentifierNotValid
                | BadUserNameOrPassword
                | ServerUnavailable
                | Banned
                | BadAuthenticationMethod
                | PacketIdentifierInUse
                | PacketIdentifierNotFound
        ),
        PacketType::Auth => matches!(code, Success | ContinueAuthentication | ReAuthenticate),
        _ => false,
    }
}
