//! MQTT 5 properties (§2.2.2): the 27 identifiers with their types, and decoding of each
//! packet's property set with the spec's checks.
//!
//! A property set is read in two steps: `PropReader` turns the wire into `(id, value)`
//! pairs, typed by the identifier's table entry and checked for duplicates (only User
//! Property and Subscription Identifier may repeat); then each packet's `decode_*` function
//! matches the pairs onto its struct. A pair that packet has no arm for is a property that
//! is not allowed there: Malformed Packet (§2.2.2.2). Value ranges (booleans 0/1, Receive
//! Maximum > 0, ...) are checked here too. Encoding lives in `properties_encode.rs`.

use crate::error::DecodeError;
use crate::packet::*;
use crate::types::{ByteStr, QoS};
use crate::wire::{read_binary, read_slice, read_str, read_u16, read_u32, read_u8, read_varint};
use bytes::Bytes;
use std::num::NonZeroU32;

/// The property identifiers (§2.2.2.2, table 2-4).
#[allow(missing_docs)]
pub mod id {
    pub const PAYLOAD_FORMAT_INDICATOR: u8 = 0x01;
    pub const MESSAGE_EXPIRY_INTERVAL: u8 = 0x02;
    pub const CONTENT_TYPE: u8 = 0x03;
    pub const RESPONSE_TOPIC: u8 = 0x08;
    pub const CORRELATION_DATA: u8 = 0x09;
    pub const SUBSCRIPTION_IDENTIFIER: u8 = 0x0B;
    pub const SESSION_EXPIRY_INTERVAL: u8 = 0x11;
    pub const ASSIGNED_CLIENT_IDENTIFIER: u8 = 0x12;
    pub const SERVER_KEEP_ALIVE: u8 = 0x13;
    pub const AUTHENTICATION_METHOD: u8 = 0x15;
    pub const AUTHENTICATION_DATA: u8 = 0x16;
    pub const REQUEST_PROBLEM_INFORMATION: u8 = 0x17;
    pub const WILL_DELAY_INTERVAL: u8 = 0x18;
    pub const REQUEST_RESPONSE_INFORMATION: u8 = 0x19;
    pub const RESPONSE_INFORMATION: u8 = 0x1A;
    pub const SERVER_REFERENCE: u8 = 0x1C;
    pub const REASON_STRING: u8 = 0x1F;
    pub const RECEIVE_MAXIMUM: u8 = 0x21;
    pub const TOPIC_ALIAS_MAXIMUM: u8 = 0x22;
    pub const TOPIC_ALIAS: u8 = 0x23;
    pub const MAXIMUM_QOS: u8 = 0x24;
    pub const RETAIN_AVAILABLE: u8 = 0x25;
    pub const USER_PROPERTY: u8 = 0x26;
    pub const MAXIMUM_PACKET_SIZE: u8 = 0x27;
    pub const WILDCARD_SUBSCRIPTION_AVAILABLE: u8 = 0x28;
    pub const SUBSCRIPTION_IDENTIFIER_AVAILABLE: u8 = 0x29;
    pub const SHARED_SUBSCRIPTION_AVAILABLE: u8 = 0x2A;
}

/// The data type of a property's value (§1.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PropertyType {
    Byte,
    TwoByteInt,
    FourByteInt,
    VarInt,
    Utf8String,
    BinaryData,
    Utf8StringPair,
}

/// The type of property `id`, or `None` for an identifier the spec does not define.
pub const fn property_type(id: u8) -> Option<PropertyType> {
    use id::*;
    use PropertyType::*;
    Some(match id {
        PAYLOAD_FORMAT_INDICATOR
        | REQUEST_PROBLEM_INFORMATION
        | REQUEST_RESPONSE_INFORMATION
        | MAXIMUM_QOS
        | RETAIN_AVAILABLE
        | WILDCARD_SUBSCRIPTION_AVAILABLE
        | SUBSCRIPTION_IDENTIFIER_AVAILABLE
        | SHARED_SUBSCRIPTION_AVAILABLE => Byte,
        SERVER_KEEP_ALIVE | RECEIVE_MAXIMUM | TOPIC_ALIAS_MAXIMUM | TOPIC_ALIAS => TwoByteInt,
        MESSAGE_EXPIRY_INTERVAL
        | SESSION_EXPIRY_INTERVAL
        | WILL_DELAY_INTERVAL
        | MAXIMUM_PACKET_SIZE => FourByteInt,
        SUBSCRIPTION_IDENTIFIER => VarInt,
        CONTENT_TYPE
        | RESPONSE_TOPIC
        | ASSIGNED_CLIENT_IDENTIFIER
        | AUTHENTICATION_METHOD
        | RESPONSE_INFORMATION
        | SERVER_REFERENCE
        | REASON_STRING => Utf8String,
        CORRELATION_DATA | AUTHENTICATION_DATA => BinaryData,
        USER_PROPERTY => Utf8StringPair,
        _ => return None,
    })
}

/// One decoded property value, typed by [`property_type`].
#[derive(Debug)]
pub(crate) enum Value {
    Byte(u8),
    U16(u16),
    U32(u32),
    VarInt(u32),
    Str(ByteStr),
    Bin(Bytes),
    Pair(ByteStr, ByteStr),
}

/// Walks one property set: `(id, value)` pairs, duplicates refused.
pub(crate) struct PropReader {
    data: Bytes,
    /// Bit `id` is set once property `id` has been seen (every id is below 64).
    seen: u64,
}

impl PropReader {
    /// Reads the property length and takes that many bytes from `body` (§2.2.2.1).
    pub(crate) fn new(body: &mut Bytes) -> Result<Self, DecodeError> {
        let len = read_varint(body)?;
        let data = read_slice(body, len as usize)?;
        Ok(PropReader { data, seen: 0 })
    }

    pub(crate) fn next(&mut self) -> Result<Option<(u8, Value)>, DecodeError> {
        if self.data.is_empty() {
            return Ok(None);
        }
        let raw = read_varint(&mut self.data)?;
        let known = u8::try_from(raw)
            .ok()
            .and_then(|id| property_type(id).map(|t| (id, t)));
        let Some((id, ty)) = known else {
            return Err(DecodeError::UnknownProperty(raw));
        };
        let bit = 1u64 << id;
        if self.seen & bit != 0 && id != id::USER_PROPERTY && id != id::SUBSCRIPTION_IDENTIFIER {
            return Err(DecodeError::DuplicateProperty(id));
        }
        self.seen |= bit;
        let d = &mut self.data;
        let value = match ty {
            PropertyType::Byte => Value::Byte(read_u8(d)?),
            PropertyType::TwoByteInt => Value::U16(read_u16(d)?),
            PropertyType::FourByteInt => Value::U32(read_u32(d)?),
            PropertyType::VarInt => Value::VarInt(read_varint(d)?),
            PropertyType::Utf8String => Value::Str(read_str(d)?),
            PropertyType::BinaryData => Value::Bin(read_binary(d)?),
            PropertyType::Utf8StringPair => Value::Pair(read_str(d)?, read_str(d)?),
        };
        Ok(Some((id, value)))
    }
}

/// A byte that must be 0 or 1.
fn boolean(id: u8, v: u8) -> Result<bool, DecodeError> {
    match v {
        0 => Ok(false),
        1 => Ok(true),
        _ => Err(DecodeError::InvalidPropertyValue(id)),
    }
}

/// A value the spec forbids to be 0 (Receive Maximum, Maximum Packet Size).
fn non_zero<T: Default + PartialEq>(id: u8, v: T) -> Result<T, DecodeError> {
    if v == T::default() {
        Err(DecodeError::InvalidPropertyValue(id))
    } else {
        Ok(v)
    }
}

/// Subscription Identifier: 1..=268,435,455; 0 is a Protocol Error (§3.8.2.1.2).
fn sub_id(v: u32) -> Result<NonZeroU32, DecodeError> {
    NonZeroU32::new(v).ok_or(DecodeError::InvalidPropertyValue(
        id::SUBSCRIPTION_IDENTIFIER,
    ))
}

fn not_allowed(id: u8, packet_type: PacketType) -> DecodeError {
    DecodeError::PropertyNotAllowed { id, packet_type }
}

pub(crate) fn decode_connect(body: &mut Bytes) -> Result<ConnectProperties, DecodeError> {
    use id::*;
    let mut r = PropReader::new(body)?;
    let mut p = ConnectProperties::default();
    while let Some((id, v)) = r.next()? {
        match (id, v) {
            (SESSION_EXPIRY_INTERVAL, Value::U32(x)) => p.session_expiry_interval = Some(x),
            (RECEIVE_MAXIMUM, Value::U16(x)) => p.receive_maximum = Some(non_zero(id, x)?),
            (MAXIMUM_PACKET_SIZE, Value::U32(x)) => p.maximum_packet_size = Some(non_zero(id, x)?),
            (TOPIC_ALIAS_MAXIMUM, Value::U16(x)) => p.topic_alias_maximum = Some(x),
            (REQUEST_RESPONSE_INFORMATION, Value::Byte(x)) => {
                p.request_response_information = Some(boolean(id, x)?)
            }
            (REQUEST_PROBLEM_INFORMATION, Value::Byte(x)) => {
                p.request_problem_information = Some(boolean(id, x)?)
            }
            (AUTHENTICATION_METHOD, Value::Str(x)) => p.authentication_method = Some(x),
            (AUTHENTICATION_DATA, Value::Bin(x)) => p.authentication_data = Some(x),
            (USER_PROPERTY, Value::Pair(k, v)) => p.user_properties.push((k, v)),
            (id, _) => return Err(not_allowed(id, PacketType::Connect)),
        }
    }
    if p.authentication_data.is_some() && p.authentication_method.is_none() {
        return Err(DecodeError::AuthDataWithoutMethod);
    }
    Ok(p)
}

pub(crate) fn decode_will(body: &mut Bytes) -> Result<WillProperties, DecodeError> {
    use id::*;
    let mut r = PropReader::new(body)?;
    let mut p = WillProperties::default();
    while let Some((id, v)) = r.next()? {
        match (id, v) {
            (WILL_DELAY_INTERVAL, Value::U32(x)) => p.will_delay_interval = Some(x),
            (PAYLOAD_FORMAT_INDICATOR, Value::Byte(x)) => {
                p.payload_format_indicator = Some(boolean(id, x)?)
            }
            (MESSAGE_EXPIRY_INTERVAL, Value::U32(x)) => p.message_expiry_interval = Some(x),
            (CONTENT_TYPE, Value::Str(x)) => p.content_type = Some(x),
            (RESPONSE_TOPIC, Value::Str(x)) => p.response_topic = Some(x),
            (CORRELATION_DATA, Value::Bin(x)) => p.correlation_data = Some(x),
            (USER_PROPERTY, Value::Pair(k, v)) => p.user_properties.push((k, v)),
            (id, _) => return Err(not_allowed(id, PacketType::Connect)),
        }
    }
    Ok(p)
}

pub(crate) fn decode_connack(body: &mut Bytes) -> Result<ConnAckProperties, DecodeError> {
    use id::*;
    let mut r = PropReader::new(body)?;
    let mut p = ConnAckProperties::default();
    while let Some((id, v)) = r.next()? {
        match (id, v) {
            (SESSION_EXPIRY_INTERVAL, Value::U32(x)) => p.session_expiry_interval = Some(x),
            (RECEIVE_MAXIMUM, Value::U16(x)) => p.receive_maximum = Some(non_zero(id, x)?),
            (MAXIMUM_QOS, Value::Byte(x)) => {
                // Only 0 or 1: a server supporting QoS 2 leaves the property out (§3.2.2.3.4).
                p.maximum_qos = Some(match x {
                    0 => QoS::AtMostOnce,
                    1 => QoS::AtLeastOnce,
                    _ => return Err(DecodeError::InvalidPropertyValue(id)),
                })
            }
            (RETAIN_AVAILABLE, Value::Byte(x)) => p.retain_available = Some(boolean(id, x)?),
            (MAXIMUM_PACKET_SIZE, Value::U32(x)) => p.maximum_packet_size = Some(non_zero(id, x)?),
            (ASSIGNED_CLIENT_IDENTIFIER, Value::Str(x)) => p.assigned_client_identifier = Some(x),
            (TOPIC_ALIAS_MAXIMUM, Value::U16(x)) => p.topic_alias_maximum = Some(x),
            (REASON_STRING, Value::Str(x)) => p.reason_string = Some(x),
            (WILDCARD_SUBSCRIPTION_AVAILABLE, Value::Byte(x)) => {
                p.wildcard_subscription_available = Some(boolean(id, x)?)
            }
            (SUBSCRIPTION_IDENTIFIER_AVAILABLE, Value::Byte(x)) => {
                p.subscription_identifiers_available = Some(boolean(id, x)?)
            }
            (SHARED_SUBSCRIPTION_AVAILABLE, Value::Byte(x)) => {
                p.shared_subscription_available = Some(boolean(id, x)?)
            }
            (SERVER_KEEP_ALIVE, Value::U16(x)) => p.server_keep_alive = Some(x),
            (RESPONSE_INFORMATION, Value::Str(x)) => p.response_information = Some(x),
            (SERVER_REFERENCE, Value::Str(x)) => p.server_reference = Some(x),
            (AUTHENTICATION_METHOD, Value::Str(x)) => p.authentication_method = Some(x),
            (AUTHENTICATION_DATA, Value::Bin(x)) => p.authentication_data = Some(x),
            (USER_PROPERTY, Value::Pair(k, v)) => p.user_properties.push((k, v)),
            (id, _) => return Err(not_allowed(id, PacketType::ConnAck)),
        }
    }
    if p.authentication_data.is_some() && p.authentication_method.is_none() {
        return Err(DecodeError::AuthDataWithoutMethod);
    }
    Ok(p)
}

pub(crate) fn decode_publish(body: &mut Bytes) -> Result<PublishProperties, DecodeError> {
    use id::*;
    let mut r = PropReader::new(body)?;
    let mut p = PublishProperties::default();
    while let Some((id, v)) = r.next()? {
        match (id, v) {
            (PAYLOAD_FORMAT_INDICATOR, Value::Byte(x)) => {
                p.payload_format_indicator = Some(boolean(id, x)?)
            }
            (MESSAGE_EXPIRY_INTERVAL, Value::U32(x)) => p.message_expiry_interval = Some(x),
            (TOPIC_ALIAS, Value::U16(x)) => {
                // [MQTT-3.3.2-8]: a Topic Alias of 0 is a Protocol Error.
                p.topic_alias = Some(if x == 0 {
                    return Err(DecodeError::TopicAliasZero);
                } else {
                    x
                })
            }
            (RESPONSE_TOPIC, Value::Str(x)) => p.response_topic = Some(x),
            (CORRELATION_DATA, Value::Bin(x)) => p.correlation_data = Some(x),
            (USER_PROPERTY, Value::Pair(k, v)) => p.user_properties.push((k, v)),
            (SUBSCRIPTION_IDENTIFIER, Value::VarInt(x)) => {
                p.subscription_identifiers.push(sub_id(x)?)
            }
            (CONTENT_TYPE, Value::Str(x)) => p.content_type = Some(x),
            (id, _) => return Err(not_allowed(id, PacketType::Publish)),
        }
    }
    Ok(p)
}

/// Reason String and User Property: PUBACK, PUBREC, PUBREL, PUBCOMP, SUBACK, UNSUBACK.
pub(crate) fn decode_ack(
    body: &mut Bytes,
    packet_type: PacketType,
) -> Result<AckProperties, DecodeError> {
    use id::*;
    let mut r = PropReader::new(body)?;
    let mut p = AckProperties::default();
    while let Some((id, v)) = r.next()? {
        match (id, v) {
            (REASON_STRING, Value::Str(x)) => p.reason_string = Some(x),
            (USER_PROPERTY, Value::Pair(k, v)) => p.user_properties.push((k, v)),
            (id, _) => return Err(not_allowed(id, packet_type)),
        }
    }
    Ok(p)
}

pub(crate) fn decode_subscribe(body: &mut Bytes) -> Result<SubscribeProperties, DecodeError> {
    use id::*;
    let mut r = PropReader::new(body)?;
    let mut p = SubscribeProperties::default();
    while let Some((id, v)) = r.next()? {
        match (id, v) {
            (SUBSCRIPTION_IDENTIFIER, Value::VarInt(x)) => {
                // May repeat in PUBLISH, but SUBSCRIBE carries at most one (§3.8.2.1.2).
                if p.subscription_identifier.is_some() {
                    return Err(DecodeError::DuplicateProperty(id));
                }
                p.subscription_identifier = Some(sub_id(x)?);
            }
            (USER_PROPERTY, Value::Pair(k, v)) => p.user_properties.push((k, v)),
            (id, _) => return Err(not_allowed(id, PacketType::Subscribe)),
        }
    }
    Ok(p)
}

/// UNSUBSCRIBE carries User Properties only.
pub(crate) fn decode_unsubscribe(body: &mut Bytes) -> Result<Vec<UserProperty>, DecodeError> {
    let mut r = PropReader::new(body)?;
    let mut user = Vec::new();
    while let Some((id, v)) = r.next()? {
        match (id, v) {
            (id::USER_PROPERTY, Value::Pair(k, v)) => user.push((k, v)),
            (id, _) => return Err(not_allowed(id, PacketType::Unsubscribe)),
        }
    }
    Ok(user)
}

pub(crate) fn decode_disconnect(body: &mut Bytes) -> Result<DisconnectProperties, DecodeError> {
    use id::*;
    let mut r = PropReader::new(body)?;
    let mut p = DisconnectProperties::default();
    while let Some((id, v)) = r.next()? {
        match (id, v) {
            (SESSION_EXPIRY_INTERVAL, Value::U32(x)) => p.session_expiry_interval = Some(x),
            (REASON_STRING, Value::Str(x)) => p.reason_string = Some(x),
            (SERVER_REFERENCE, Value::Str(x)) => p.server_reference = Some(x),
            (USER_PROPERTY, Value::Pair(k, v)) => p.user_properties.push((k, v)),
            (id, _) => return Err(not_allowed(id, PacketType::Disconnect)),
        }
    }
    Ok(p)
}

pub(crate) fn decode_auth(body: &mut Bytes) -> Result<AuthProperties, DecodeError> {
    use id::*;
    let mut r = PropReader::new(body)?;
    let mut p = AuthProperties::default();
    while let Some((id, v)) = r.next()? {
        match (id, v) {
            (AUTHENTICATION_METHOD, Value::Str(x)) => p.authentication_method = Some(x),
            (AUTHENTICATION_DATA, Value::Bin(x)) => p.authentication_data = Some(x),
            (REASON_STRING, Value::Str(x)) => p.reason_string = Some(x),
            (USER_PROPERTY, Value::Pair(k, v)) => p.user_properties.push((k, v)),
            (id, _) => return Err(not_allowed(id, PacketType::Auth)),
        }
    }
    if p.authentication_data.is_some() && p.authentication_method.is_none() {
        return Err(DecodeError::AuthDataWithoutMethod);
    }
    Ok(p)
}
