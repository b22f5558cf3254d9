//! Encoding: [`Packet`]s to bytes for one protocol version (§2, §3).
//!
//! Every packet except PUBLISH is written in two passes over the same code: a `Counter`
//! pass measures the remaining length (and finds any [`EncodeError`] before a byte is
//! written), then the real pass writes into space reserved once. PUBLISH, the hot path,
//! adds up its few lengths directly (see `encode/publish.rs`). On error `out` is unchanged.
//!
//! For MQTT 3.x peers the MQTT 5-only fields (properties, most reason codes) are dropped;
//! a value 3.x cannot express at all is an error rather than a silent change of meaning.
//! This file owns dispatch and the packets without a family (PINGREQ, PINGRESP, DISCONNECT,
//! AUTH); the families live in `encode/`.

mod connect;
pub(crate) mod publish;
mod subscribe;

use crate::decode::reason_allowed;
use crate::error::EncodeError;
use crate::packet::*;
use crate::properties_encode::put_properties;
use crate::reason::ReasonCode;
use crate::types::ProtocolVersion;
use crate::wire::{length_varint, put_varint, varint_len, Counter, Sink};
use bytes::{BufMut, BytesMut};

/// Appends exactly one packet, encoded for `version`, to `out`.
///
/// CONNECT is written in the version its `protocol` field names (as decoding reads it from
/// the packet); every other packet in `version`.
///
/// PUBLISH takes its own path, inlined here; every other packet goes through the generic
/// two-pass writer, kept out of line so the PUBLISH path stays small.
#[inline]
pub fn encode(
    packet: &Packet,
    version: ProtocolVersion,
    out: &mut BytesMut,
) -> Result<(), EncodeError> {
    match packet {
        Packet::Publish(p) => publish::encode_publish(p, version, out),
        _ => encode_generic(packet, version, out),
    }
}

/// Counts the body, reserves once, then writes header and body.
#[inline(never)]
fn encode_generic(
    packet: &Packet,
    version: ProtocolVersion,
    out: &mut BytesMut,
) -> Result<(), EncodeError> {
    let remaining = body_len(packet, version)?;
    let rl = length_varint(remaining)?;
    out.reserve(1 + varint_len(rl) + remaining);
    BufMut::put_u8(out, first_byte(packet));
    put_varint(out, rl)?;
    write_body(packet, version, out)
}

/// The exact number of bytes [`encode`] would append, e.g. to hold a packet to the peer's
/// Maximum Packet Size (§3.1.2.11.4) before building it.
pub fn encoded_len(packet: &Packet, version: ProtocolVersion) -> Result<usize, EncodeError> {
    let remaining = match packet {
        Packet::Publish(p) => publish::remaining_len(p, version)?,
        _ => body_len(packet, version)?,
    };
    Ok(1 + varint_len(length_varint(remaining)?) + remaining)
}

fn body_len(packet: &Packet, version: ProtocolVersion) -> Result<usize, EncodeError> {
    let mut c = Counter::default();
    write_body(packet, version, &mut c)?;
    Ok(c.0)
}

/// Type in the high nibble; PUBREL, SUBSCRIBE and UNSUBSCRIBE carry 0b0010 [MQTT-2.1.3-1].
fn first_byte(packet: &Packet) -> u8 {
    let ty = packet.packet_type();
    let flags = match (ty, packet) {
        (_, Packet::Publish(p)) => publish::flags(p),
        (PacketType::PubRel | PacketType::Subscribe | PacketType::Unsubscribe, _) => 0b0010,
        _ => 0,
    };
    (ty as u8) << 4 | flags
}

fn write_body<S: Sink>(
    packet: &Packet,
    version: ProtocolVersion,
    s: &mut S,
) -> Result<(), EncodeError> {
    match packet {
        Packet::Connect(c) => connect::write_connect(c, s),
        Packet::ConnAck(c) => connect::write_connack(c, version, s),
        Packet::Publish(p) => publish::write_body(p, version, s),
        Packet::PubAck(a) => publish::write_ack(PacketType::PubAck, a, version, s),
        Packet::PubRec(a) => publish::write_ack(PacketType::PubRec, a, version, s),
        Packet::PubRel(a) => publish::write_ack(PacketType::PubRel, a, version, s),
        Packet::PubComp(a) => publish::write_ack(PacketType::PubComp, a, version, s),
        Packet::Subscribe(p) => subscribe::write_subscribe(p, version, s),
        Packet::SubAck(p) => subscribe::write_suback(p, version, s),
        Packet::Unsubscribe(p) => subscribe::write_unsubscribe(p, version, s),
        Packet::UnsubAck(p) => subscribe::write_unsuback(p, version, s),
        Packet::PingReq | Packet::PingResp => Ok(()),
        Packet::Disconnect(d) => write_disconnect(d, version, s),
        Packet::Auth(a) => write_auth(a, version, s),
    }
}

/// A v5 reason code that `packet_type` may carry (§2.4), as its wire byte.
pub(crate) fn checked_reason(packet_type: PacketType, code: ReasonCode) -> Result<u8, EncodeError> {
    if reason_allowed(packet_type, code) {
        Ok(code.as_u8())
    } else {
        Err(EncodeError::InvalidReasonCode { packet_type, code })
    }
}

/// 3.x: no body. 5.0: nothing at all for a Normal Disconnection without properties, the
/// reason alone without properties (§3.14.2.1).
fn write_disconnect<S: Sink>(
    d: &Disconnect,
    version: ProtocolVersion,
    s: &mut S,
) -> Result<(), EncodeError> {
    if !version.is_v5() {
        return Ok(());
    }
    let no_props = d.properties == DisconnectProperties::default();
    let code = checked_reason(PacketType::Disconnect, d.code)?;
    if no_props && d.code == ReasonCode::Success {
        return Ok(());
    }
    s.put_u8(code);
    if no_props {
        return Ok(());
    }
    put_properties(s, &d.properties)
}

/// AUTH exists only in MQTT 5; same short forms as DISCONNECT (§3.15.2.1).
fn write_auth<S: Sink>(a: &Auth, version: ProtocolVersion, s: &mut S) -> Result<(), EncodeError> {
    if !version.is_v5() {
        return Err(EncodeError::NotInVersion(PacketType::Auth));
    }
    let no_props = a.properties == AuthProperties::default();
    let code = checked_reason(PacketType::Auth, a.code)?;
    if no_props && a.code == ReasonCode::Success {
        return Ok(());
    }
    s.put_u8(code);
    if no_props {
        return Ok(());
    }
    put_properties(s, &a.properties)
}
