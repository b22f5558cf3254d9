//! The 15 MQTT control packets as plain data, shared by MQTT 3.1, 3.1.1 and 5.0.
//!
//! One struct per packet; MQTT 5 properties live in per-packet property structs so a
//! property can only be put where the spec allows it (§2.2.2.2). Fields that exist only in
//! MQTT 5 (reason codes, properties) are ignored when encoding for a v3 peer and are left at
//! their defaults when decoding from one. Strings are `ByteStr`, binary data and payloads are
//! `Bytes`: both are zero-copy slices of the decode buffer.

use crate::reason::{ConnectReturnCode, ReasonCode};
use crate::types::{ByteStr, PacketId, ProtocolVersion, QoS};
use bytes::Bytes;
use std::num::NonZeroU32;

/// A user property: a UTF-8 string pair (§3.1.2.11.8). May repeat, order preserved.
pub type UserProperty = (ByteStr, ByteStr);

/// Any MQTT control packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Packet {
    Connect(Box<Connect>),
    ConnAck(ConnAck),
    Publish(Publish),
    PubAck(PubAck),
    PubRec(PubAck),
    PubRel(PubAck),
    PubComp(PubAck),
    Subscribe(Subscribe),
    SubAck(SubAck),
    Unsubscribe(Unsubscribe),
    UnsubAck(UnsubAck),
    PingReq,
    PingResp,
    Disconnect(Disconnect),
    Auth(Auth),
}

/// The control packet type, the high nibble of the first byte (§2.1.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum PacketType {
    Connect = 1,
    ConnAck = 2,
    Publish = 3,
    PubAck = 4,
    PubRec = 5,
    PubRel = 6,
    PubComp = 7,
    Subscribe = 8,
    SubAck = 9,
    Unsubscribe = 10,
    UnsubAck = 11,
    PingReq = 12,
    PingResp = 13,
    Disconnect = 14,
    Auth = 15,
}

impl Packet {
    pub fn packet_type(&self) -> PacketType {
        match self {
            Packet::Connect(_) => PacketType::Connect,
            Packet::ConnAck(_) => PacketType::ConnAck,
            Packet::Publish(_) => PacketType::Publish,
            Packet::PubAck(_) => PacketType::PubAck,
            Packet::PubRec(_) => PacketType::PubRec,
            Packet::PubRel(_) => PacketType::PubRel,
            Packet::PubComp(_) => PacketType::PubComp,
            Packet::Subscribe(_) => PacketType::Subscribe,
            Packet::SubAck(_) => PacketType::SubAck,
            Packet::Unsubscribe(_) => PacketType::Unsubscribe,
            Packet::UnsubAck(_) => PacketType::UnsubAck,
            Packet::PingReq => PacketType::PingReq,
            Packet::PingResp => PacketType::PingResp,
            Packet::Disconnect(_) => PacketType::Disconnect,
            Packet::Auth(_) => PacketType::Auth,
        }
    }
}

/// CONNECT (§3.1). `protocol` is read from the packet itself, whatever version the caller
/// passed to `decode`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connect {
    pub protocol: ProtocolVersion,
    /// Clean Session (3.x) / Clean Start (5.0).
    pub clean_start: bool,
    /// Seconds; 0 disables keepalive.
    pub keep_alive: u16,
    /// May be empty (the server then assigns one, or refuses for 3.x without clean session).
    pub client_id: ByteStr,
    pub will: Option<LastWill>,
    pub username: Option<ByteStr>,
    pub password: Option<Bytes>,
    pub properties: ConnectProperties,
}

/// The will message carried in CONNECT (§3.1.2.5, §3.1.3.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LastWill {
    pub topic: ByteStr,
    pub payload: Bytes,
    pub qos: QoS,
    pub retain: bool,
    pub properties: WillProperties,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ConnectProperties {
    pub session_expiry_interval: Option<u32>,
    pub receive_maximum: Option<u16>,
    pub maximum_packet_size: Option<u32>,
    pub topic_alias_maximum: Option<u16>,
    pub request_response_information: Option<bool>,
    pub request_problem_information: Option<bool>,
    pub authentication_method: Option<ByteStr>,
    pub authentication_data: Option<Bytes>,
    pub user_properties: Vec<UserProperty>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct WillProperties {
    pub will_delay_interval: Option<u32>,
    pub payload_format_indicator: Option<bool>,
    pub message_expiry_interval: Option<u32>,
    pub content_type: Option<ByteStr>,
    pub response_topic: Option<ByteStr>,
    pub correlation_data: Option<Bytes>,
    pub user_properties: Vec<UserProperty>,
}

/// CONNACK (§3.2). For 3.x peers only `session_present` and `code` are on the wire; `code`
/// is then mapped with [`ReasonCode::to_connect_return_code`] when encoding, and decoded
/// v3 return codes are mapped back with [`ConnAck::reason_from_v3`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnAck {
    pub session_present: bool,
    pub code: ReasonCode,
    pub properties: ConnAckProperties,
}

impl ConnAck {
    /// Maps a 3.x return code to the reason code that carries the same meaning.
    pub fn reason_from_v3(rc: ConnectReturnCode) -> ReasonCode {
        match rc {
            ConnectReturnCode::Accepted => ReasonCode::Success,
            ConnectReturnCode::UnacceptableProtocolVersion => {
                ReasonCode::UnsupportedProtocolVersion
            }
            ConnectReturnCode::IdentifierRejected => ReasonCode::ClientIdentifierNotValid,
            ConnectReturnCode::ServerUnavailable => ReasonCode::ServerUnavailable,
            ConnectReturnCode::BadUserNameOrPassword => ReasonCode::BadUserNameOrPassword,
            ConnectReturnCode::NotAuthorized => ReasonCode::NotAuthorized,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ConnAckProperties {
    pub session_expiry_interval: Option<u32>,
    pub receive_maximum: Option<u16>,
    pub maximum_qos: Option<QoS>,
    pub retain_available: Option<bool>,
    pub maximum_packet_size: Option<u32>,
    pub assigned_client_identifier: Option<ByteStr>,
    pub topic_alias_maximum: Option<u16>,
    pub reason_string: Option<ByteStr>,
    pub wildcard_subscription_available: Option<bool>,
    pub subscription_identifiers_available: Option<bool>,
    pub shared_subscription_available: Option<bool>,
    pub server_keep_alive: Option<u16>,
    pub response_information: Option<ByteStr>,
    pub server_reference: Option<ByteStr>,
    pub authentication_method: Option<ByteStr>,
    pub authentication_data: Option<Bytes>,
    pub user_properties: Vec<UserProperty>,
}

/// PUBLISH (§3.3). `packet_id` is `Some` exactly when `qos` is 1 or 2; the decoder
/// guarantees it and the encoder refuses anything else.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Publish {
    pub dup: bool,
    pub qos: QoS,
    pub retain: bool,
    /// May be empty in MQTT 5 when a Topic Alias property stands in for it (§3.3.2.3.4).
    pub topic: ByteStr,
    pub packet_id: Option<PacketId>,
    pub properties: PublishProperties,
    pub payload: Bytes,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PublishProperties {
    pub payload_format_indicator: Option<bool>,
    pub message_expiry_interval: Option<u32>,
    pub topic_alias: Option<u16>,
    pub response_topic: Option<ByteStr>,
    pub correlation_data: Option<Bytes>,
    pub user_properties: Vec<UserProperty>,
    /// Server to client only; may repeat (§3.3.2.3.8). Each is 1..=268,435,455.
    pub subscription_identifiers: Vec<NonZeroU32>,
    pub content_type: Option<ByteStr>,
}

impl PublishProperties {
    /// Replaces every string and byte field by an exact-size copy that shares no buffer:
    /// decoded fields are slices of the read buffer and would keep all of it alive.
    pub fn detach(&mut self) {
        let own = |s: &mut ByteStr| *s = ByteStr::from(s.as_str());
        self.response_topic.as_mut().map(own);
        self.content_type.as_mut().map(own);
        if let Some(d) = self.correlation_data.as_mut() {
            *d = Bytes::copy_from_slice(d);
        }
        for (k, v) in &mut self.user_properties {
            own(k);
            own(v);
        }
    }

    /// True when no property is set (the common case; encodes as a single 0 byte in v5).
    /// Field by field: comparing against a fresh default was a visible cost per PUBLISH.
    pub fn is_empty(&self) -> bool {
        let PublishProperties {
            payload_format_indicator,
            message_expiry_interval,
            topic_alias,
            response_topic,
            correlation_data,
            user_properties,
            subscription_identifiers,
            content_type,
        } = self;
        payload_format_indicator.is_none()
            && message_expiry_interval.is_none()
            && topic_alias.is_none()
            && response_topic.is_none()
            && correlation_data.is_none()
            && user_properties.is_empty()
            && subscription_identifiers.is_empty()
            && content_type.is_none()
    }
}

/// PUBACK, PUBREC, PUBREL and PUBCOMP share a body (§3.4–3.7): packet id, reason, properties.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PubAck {
    pub packet_id: PacketId,
    pub code: ReasonCode,
    pub properties: AckProperties,
}

impl PubAck {
    /// A success acknowledgement with no properties.
    pub fn new(packet_id: PacketId) -> Self {
        PubAck {
            packet_id,
            code: ReasonCode::Success,
            properties: AckProperties::default(),
        }
    }
}

/// Properties of the acknowledgement packets (PUBACK…PUBCOMP, SUBACK, UNSUBACK).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AckProperties {
    pub reason_string: Option<ByteStr>,
    pub user_properties: Vec<UserProperty>,
}

/// Retain Handling subscription option (§3.8.3.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[repr(u8)]
pub enum RetainHandling {
    /// Send retained messages at the time of the subscribe.
    #[default]
    SendAtSubscribe = 0,
    /// Send them only if the subscription does not already exist.
    SendIfNew = 1,
    /// Do not send them.
    DoNotSend = 2,
}

/// One topic filter and its options in a SUBSCRIBE. v3 peers carry only `qos`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscribeFilter {
    /// The full filter as sent, `$share/{group}/{filter}` included.
    pub filter: ByteStr,
    pub qos: QoS,
    pub no_local: bool,
    pub retain_as_published: bool,
    pub retain_handling: RetainHandling,
}

impl SubscribeFilter {
    /// A filter with the given maximum QoS and default v5 options.
    pub fn new(filter: impl Into<ByteStr>, qos: QoS) -> Self {
        SubscribeFilter {
            filter: filter.into(),
            qos,
            no_local: false,
            retain_as_published: false,
            retain_handling: RetainHandling::SendAtSubscribe,
        }
    }
}

/// SUBSCRIBE (§3.8). `filters` is never empty [MQTT-3.8.3-3].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscribe {
    pub packet_id: PacketId,
    pub filters: Vec<SubscribeFilter>,
    pub properties: SubscribeProperties,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SubscribeProperties {
    /// At most one in SUBSCRIBE; 1..=268,435,455 (§3.8.2.1.2).
    pub subscription_identifier: Option<NonZeroU32>,
    pub user_properties: Vec<UserProperty>,
}

/// SUBACK (§3.9): one code per filter, in order. For 3.x peers the codes are 0x00, 0x01,
/// 0x02 or 0x80 (Failure); any failure reason is encoded as 0x80 for them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubAck {
    pub packet_id: PacketId,
    pub codes: Vec<ReasonCode>,
    pub properties: AckProperties,
}

/// UNSUBSCRIBE (§3.10). `filters` is never empty [MQTT-3.10.3-2].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unsubscribe {
    pub packet_id: PacketId,
    pub filters: Vec<ByteStr>,
    pub user_properties: Vec<UserProperty>,
}

/// UNSUBACK (§3.11). `codes` is empty for 3.x peers (their UNSUBACK has no payload).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnsubAck {
    pub packet_id: PacketId,
    pub codes: Vec<ReasonCode>,
    pub properties: AckProperties,
}

/// DISCONNECT (§3.14). For 3.x peers it has no body; `code` is Success.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Disconnect {
    pub code: ReasonCode,
    pub properties: DisconnectProperties,
}

impl Disconnect {
    pub fn new(code: ReasonCode) -> Self {
        Disconnect {
            code,
            properties: DisconnectProperties::default(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DisconnectProperties {
    pub session_expiry_interval: Option<u32>,
    pub reason_string: Option<ByteStr>,
    pub server_reference: Option<ByteStr>,
    pub user_properties: Vec<UserProperty>,
}

/// AUTH (§3.15), MQTT 5 only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Auth {
    pub code: ReasonCode,
    pub properties: AuthProperties,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AuthProperties {
    pub authentication_method: Option<ByteStr>,
    pub authentication_data: Option<Bytes>,
    pub reason_string: Option<ByteStr>,
    pub user_properties: Vec<UserProperty>,
}
