//! Encoding of each packet's MQTT 5 property set (§2.2.2): the length prefix, then every
//! property that is set, in identifier order within each struct.
//!
//! Each set implements [`WriteProps`] once over a [`Sink`]; [`put_properties`] runs it first
//! on a [`Counter`] to learn the length prefix, then on the real buffer. Called only for MQTT 5
//! peers: the v3 encoders never touch properties.

use crate::error::EncodeError;
use crate::packet::*;
use crate::properties::id::*;
use crate::types::{ByteStr, QoS};
use crate::wire::{length_varint, put_binary, put_str, put_varint, Counter, Sink};
use bytes::Bytes;
use std::num::NonZeroU32;

/// A property set that can write its properties (without the length prefix).
pub(crate) trait WriteProps {
    fn write<S: Sink>(&self, s: &mut S) -> Result<(), EncodeError>;
}

/// Length of the properties without their prefix.
pub(crate) fn props_len<P: WriteProps>(p: &P) -> Result<usize, EncodeError> {
    let mut c = Counter::default();
    p.write(&mut c)?;
    Ok(c.0)
}

/// Writes the property length (§2.2.2.1) and then the properties.
pub(crate) fn put_properties<S: Sink, P: WriteProps>(s: &mut S, p: &P) -> Result<(), EncodeError> {
    let len = props_len(p)?;
    put_varint(s, length_varint(len)?)?;
    p.write(s)
}

fn byte<S: Sink>(s: &mut S, id: u8, v: Option<u8>) {
    if let Some(v) = v {
        s.put_u8(id);
        s.put_u8(v);
    }
}

fn boolean<S: Sink>(s: &mut S, id: u8, v: Option<bool>) {
    byte(s, id, v.map(u8::from));
}

fn u16p<S: Sink>(s: &mut S, id: u8, v: Option<u16>) {
    if let Some(v) = v {
        s.put_u8(id);
        s.put_u16(v);
    }
}

fn u32p<S: Sink>(s: &mut S, id: u8, v: Option<u32>) {
    if let Some(v) = v {
        s.put_u8(id);
        s.put_u32(v);
    }
}

fn string<S: Sink>(s: &mut S, id: u8, v: &Option<ByteStr>) -> Result<(), EncodeError> {
    if let Some(v) = v {
        s.put_u8(id);
        put_str(s, v)?;
    }
    Ok(())
}

fn binary<S: Sink>(s: &mut S, id: u8, v: &Option<Bytes>) -> Result<(), EncodeError> {
    if let Some(v) = v {
        s.put_u8(id);
        put_binary(s, v)?;
    }
    Ok(())
}

fn sub_id<S: Sink>(s: &mut S, v: NonZeroU32) -> Result<(), EncodeError> {
    s.put_u8(SUBSCRIPTION_IDENTIFIER);
    put_varint(s, v.get())
}

/// A value the decoder would refuse (0 where the spec forbids it, Maximum QoS 2) is refused
/// here too, so whatever encodes also decodes.
fn non_zero<T: Default + PartialEq + Copy>(id: u8, v: Option<T>) -> Result<Option<T>, EncodeError> {
    match v {
        Some(x) if x == T::default() => Err(EncodeError::InvalidPropertyValue(id)),
        _ => Ok(v),
    }
}

/// Authentication Data without Authentication Method is a Protocol Error (§3.1.2.11.10).
fn auth_pair(method: &Option<ByteStr>, data: &Option<Bytes>) -> Result<(), EncodeError> {
    if data.is_some() && method.is_none() {
        return Err(EncodeError::InvalidPropertyValue(AUTHENTICATION_DATA));
    }
    Ok(())
}

fn user<S: Sink>(s: &mut S, props: &[UserProperty]) -> Result<(), EncodeError> {
    for (k, v) in props {
        s.put_u8(USER_PROPERTY);
        put_str(s, k)?;
        put_str(s, v)?;
    }
    Ok(())
}

impl WriteProps for ConnectProperties {
    fn write<S: Sink>(&self, s: &mut S) -> Result<(), EncodeError> {
        auth_pair(&self.authentication_method, &self.authentication_data)?;
        u32p(s, SESSION_EXPIRY_INTERVAL, self.session_expiry_interval);
        string(s, AUTHENTICATION_METHOD, &self.authentication_method)?;
        binary(s, AUTHENTICATION_DATA, &self.authentication_data)?;
        boolean(
            s,
            REQUEST_PROBLEM_INFORMATION,
            self.request_problem_information,
        );
        boolean(
            s,
            REQUEST_RESPONSE_INFORMATION,
            self.request_response_information,
        );
        u16p(
            s,
            RECEIVE_MAXIMUM,
            non_zero(RECEIVE_MAXIMUM, self.receive_maximum)?,
        );
        u16p(s, TOPIC_ALIAS_MAXIMUM, self.topic_alias_maximum);
        u32p(
            s,
            MAXIMUM_PACKET_SIZE,
            non_zero(MAXIMUM_PACKET_SIZE, self.maximum_packet_size)?,
        );
        user(s, &self.user_properties)
    }
}

impl WriteProps for WillProperties {
    fn write<S: Sink>(&self, s: &mut S) -> Result<(), EncodeError> {
        boolean(s, PAYLOAD_FORMAT_INDICATOR, self.payload_format_indicator);
        u32p(s, MESSAGE_EXPIRY_INTERVAL, self.message_expiry_interval);
        string(s, CONTENT_TYPE, &self.content_type)?;
        string(s, RESPONSE_TOPIC, &self.response_topic)?;
        binary(s, CORRELATION_DATA, &self.correlation_data)?;
        u32p(s, WILL_DELAY_INTERVAL, self.will_delay_interval);
        user(s, &self.user_properties)
    }
}

impl WriteProps for ConnAckProperties {
    fn write<S: Sink>(&self, s: &mut S) -> Result<(), EncodeError> {
        auth_pair(&self.authentication_method, &self.authentication_data)?;
        // Only 0 or 1: a server supporting QoS 2 leaves Maximum QoS out (§3.2.2.3.4).
        if self.maximum_qos == Some(QoS::ExactlyOnce) {
            return Err(EncodeError::InvalidPropertyValue(MAXIMUM_QOS));
        }
        u32p(s, SESSION_EXPIRY_INTERVAL, self.session_expiry_interval);
        string(
            s,
            ASSIGNED_CLIENT_IDENTIFIER,
            &self.assigned_client_identifier,
        )?;
        u16p(s, SERVER_KEEP_ALIVE, self.server_keep_alive);
        string(s, AUTHENTICATION_METHOD, &self.authentication_method)?;
        binary(s, AUTHENTICATION_DATA, &self.authentication_data)?;
        string(s, RESPONSE_INFORMATION, &self.response_information)?;
        string(s, SERVER_REFERENCE, &self.server_reference)?;
        string(s, REASON_STRING, &self.reason_string)?;
        u16p(
            s,
            RECEIVE_MAXIMUM,
            non_zero(RECEIVE_MAXIMUM, self.receive_maximum)?,
        );
        u16p(s, TOPIC_ALIAS_MAXIMUM, self.topic_alias_maximum);
        byte(s, MAXIMUM_QOS, self.maximum_qos.map(|q| q.as_u8()));
        boolean(s, RETAIN_AVAILABLE, self.retain_available);
        u32p(
            s,
            MAXIMUM_PACKET_SIZE,
            non_zero(MAXIMUM_PACKET_SIZE, self.maximum_packet_size)?,
        );
        boolean(
            s,
            WILDCARD_SUBSCRIPTION_AVAILABLE,
            self.wildcard_subscription_available,
        );
        boolean(
            s,
            SUBSCRIPTION_IDENTIFIER_AVAILABLE,
            self.subscription_identifiers_available,
        );
        boolean(
            s,
            SHARED_SUBSCRIPTION_AVAILABLE,
            self.shared_subscription_available,
        );
        user(s, &self.user_properties)
    }
}

impl WriteProps for PublishProperties {
    fn write<S: Sink>(&self, s: &mut S) -> Result<(), EncodeError> {
        boolean(s, PAYLOAD_FORMAT_INDICATOR, self.payload_format_indicator);
        u32p(s, MESSAGE_EXPIRY_INTERVAL, self.message_expiry_interval);
        string(s, CONTENT_TYPE, &self.content_type)?;
        string(s, RESPONSE_TOPIC, &self.response_topic)?;
        binary(s, CORRELATION_DATA, &self.correlation_data)?;
        for id in &self.subscription_identifiers {
            sub_id(s, *id)?;
        }
        u16p(s, TOPIC_ALIAS, non_zero(TOPIC_ALIAS, self.topic_alias)?);
        user(s, &self.user_properties)
    }
}

impl WriteProps for AckProperties {
    fn write<S: Sink>(&self, s: &mut S) -> Result<(), EncodeError> {
        string(s, REASON_STRING, &self.reason_string)?;
        user(s, &self.user_properties)
    }
}

impl WriteProps for SubscribeProperties {
    fn write<S: Sink>(&self, s: &mut S) -> Result<(), EncodeError> {
        if let Some(id) = self.subscription_identifier {
            sub_id(s, id)?;
        }
        user(s, &self.user_properties)
    }
}

/// UNSUBSCRIBE's property set is its user properties.
impl WriteProps for Vec<UserProperty> {
    fn write<S: Sink>(&self, s: &mut S) -> Result<(), EncodeError> {
        user(s, self)
    }
}

impl WriteProps for DisconnectProperties {
    fn write<S: Sink>(&self, s: &mut S) -> Result<(), EncodeError> {
        u32p(s, SESSION_EXPIRY_INTERVAL, self.session_expiry_interval);
        string(s, SERVER_REFERENCE, &self.server_reference)?;
        string(s, REASON_STRING, &self.reason_string)?;
        user(s, &self.user_properties)
    }
}

impl WriteProps for AuthProperties {
    fn write<S: Sink>(&self, s: &mut S) -> Result<(), EncodeError> {
        auth_pair(&self.authentication_method, &self.authentication_data)?;
        string(s, AUTHENTICATION_METHOD, &self.authentication_method)?;
        binary(s, AUTHENTICATION_DATA, &self.authentication_data)?;
        string(s, REASON_STRING, &self.reason_string)?;
        user(s, &self.user_properties)
    }
}
