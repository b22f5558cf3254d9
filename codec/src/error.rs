//! Decode and encode errors: one variant per rule the codec enforces.
//!
//! Every [`DecodeError`] knows the MQTT 5 reason code a server sends for it
//! ([`DecodeError::reason_code`]) and the spec clause it violates ([`DecodeError::clause`]);
//! `Display` shows both, so a log line points straight at the spec. Clauses name the MQTT 5.0
//! conformance statement when the rule exists in 5.0 and the 3.1.1 one when it is 3.x only;
//! rules without a numbered statement cite their section (`§2.1.4`).
//! Errors are small and `Copy` so tests can `assert_eq!` them; they never hold peer bytes.

use crate::packet::PacketType;
use crate::reason::ReasonCode;
use crate::topic::TopicError;

/// Why a packet could not be decoded. The connection that sent it must be closed (after a
/// CONNACK or DISCONNECT carrying [`DecodeError::reason_code`] for MQTT 5 peers).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    // ---- framing -------------------------------------------------------------------------
    #[error("reserved control packet type {0} {}", self.clause())]
    ReservedPacketType(u8),
    #[error("reserved flag bits {flags:#06b} in the fixed header of {packet_type:?} {}", self.clause())]
    ReservedFlags { packet_type: PacketType, flags: u8 },
    #[error("remaining length longer than 4 bytes {}", self.clause())]
    RemainingLengthTooLong,
    #[error("variable byte integer longer than 4 bytes {}", self.clause())]
    VarIntTooLong,
    #[error("variable byte integer not in its shortest form {}", self.clause())]
    NonMinimalVarInt,
    #[error("packet of {size} bytes exceeds the maximum packet size {max} {}", self.clause())]
    PacketTooLarge { size: u32, max: u32 },
    #[error("a field runs past the end of the packet {}", self.clause())]
    UnexpectedEnd,
    #[error("bytes left over after the packet's last field {}", self.clause())]
    TrailingBytes,
    #[error("string is not valid UTF-8 {}", self.clause())]
    InvalidUtf8,
    #[error("string contains U+0000 {}", self.clause())]
    NullCharacter,
    #[error("packet identifier 0 {}", self.clause())]
    PacketIdZero,
    #[error("invalid topic: {0}")]
    Topic(TopicError),
    #[error("reason code {code:#04x} is not valid in {packet_type:?} {}", self.clause())]
    InvalidReasonCode { packet_type: PacketType, code: u8 },

    // ---- CONNECT / CONNACK ---------------------------------------------------------------
    #[error("protocol name is neither \"MQTT\" nor \"MQIsdp\" {}", self.clause())]
    InvalidProtocolName,
    #[error("unsupported protocol level {0} {}", self.clause())]
    UnsupportedProtocolLevel(u8),
    #[error("CONNECT reserved flag is set {}", self.clause())]
    ConnectReservedFlag,
    #[error("will QoS set without the will flag {}", self.clause())]
    WillQoSWithoutWill,
    #[error("will retain set without the will flag {}", self.clause())]
    WillRetainWithoutWill,
    #[error("will QoS 3 {}", self.clause())]
    WillQoS3,
    #[error("password flag set without the user name flag {}", self.clause())]
    PasswordWithoutUsername,
    #[error("empty client identifier not allowed here {}", self.clause())]
    EmptyClientId,
    #[error("MQTT 3.1 client identifier of {0} characters (at most 23) {}", self.clause())]
    ClientIdTooLongFor31(u16),
    #[error("CONNACK reserved flag bits are set {}", self.clause())]
    ConnAckReservedFlags,
    #[error("session present set on a refused connection {}", self.clause())]
    SessionPresentOnError,

    // ---- PUBLISH -------------------------------------------------------------------------
    #[error("PUBLISH with QoS 3 {}", self.clause())]
    PublishQoS3,
    #[error("PUBLISH with QoS 0 and DUP set {}", self.clause())]
    DupWithQoS0,
    #[error("topic alias 0 {}", self.clause())]
    TopicAliasZero,

    // ---- SUBSCRIBE / UNSUBSCRIBE ---------------------------------------------------------
    #[error("SUBSCRIBE without topic filters {}", self.clause())]
    NoSubscribeFilters,
    #[error("UNSUBSCRIBE without topic filters {}", self.clause())]
    NoUnsubscribeFilters,
    #[error("SUBACK without reason codes {}", self.clause())]
    NoSubAckCodes,
    #[error("UNSUBACK without reason codes {}", self.clause())]
    NoUnsubAckCodes,
    #[error("reserved subscription option bits are set {}", self.clause())]
    SubscriptionOptionsReserved,
    #[error("subscription with maximum QoS 3 {}", self.clause())]
    SubscriptionQoS3,
    #[error("retain handling 3 {}", self.clause())]
    RetainHandling3,
    #[error("no local set on a shared subscription {}", self.clause())]
    NoLocalOnShared,

    // ---- properties ----------------------------------------------------------------------
    #[error("unknown property identifier {0:#04x} {}", self.clause())]
    UnknownProperty(u32),
    #[error("property {id:#04x} is not allowed in {packet_type:?} {}", self.clause())]
    PropertyNotAllowed { id: u8, packet_type: PacketType },
    #[error("property {0:#04x} appears more than once {}", self.clause())]
    DuplicateProperty(u8),
    #[error("property {0:#04x} has a value the spec forbids {}", self.clause())]
    InvalidPropertyValue(u8),
    #[error("authentication data without an authentication method {}", self.clause())]
    AuthDataWithoutMethod,
}

impl DecodeError {
    /// The MQTT 5 reason code a server puts in its CONNACK or DISCONNECT for this error.
    pub fn reason_code(&self) -> ReasonCode {
        use DecodeError::*;
        match self {
            PacketTooLarge { .. } => ReasonCode::PacketTooLarge,
            UnsupportedProtocolLevel(_) => ReasonCode::UnsupportedProtocolVersion,
            EmptyClientId | ClientIdTooLongFor31(_) => ReasonCode::ClientIdentifierNotValid,
            Topic(t) => t.reason_code(),
            InvalidProtocolName
            | PacketIdZero
            | SessionPresentOnError
            | TopicAliasZero
            | NoSubscribeFilters
            | NoUnsubscribeFilters
            | NoSubAckCodes
            | NoUnsubAckCodes
            | RetainHandling3
            | NoLocalOnShared
            | DuplicateProperty(_)
            | InvalidPropertyValue(_)
            | AuthDataWithoutMethod => ReasonCode::ProtocolError,
            ReservedPacketType(_)
            | ReservedFlags { .. }
            | RemainingLengthTooLong
            | VarIntTooLong
            | NonMinimalVarInt
            | UnexpectedEnd
            | TrailingBytes
            | InvalidUtf8
            | NullCharacter
            | InvalidReasonCode { .. }
            | ConnectReservedFlag
            | WillQoSWithoutWill
            | WillRetainWithoutWill
            | WillQoS3
            | PasswordWithoutUsername
            | ConnAckReservedFlags
            | PublishQoS3
            | DupWithQoS0
            | SubscriptionOptionsReserved
            | SubscriptionQoS3
            | UnknownProperty(_)
            | PropertyNotAllowed { .. } => ReasonCode::MalformedPacket,
        }
    }

    /// The spec clause this error violates, e.g. `"[MQTT-3.1.2-3]"`.
    pub fn clause(&self) -> &'static str {
        use DecodeError::*;
        match self {
            ReservedPacketType(_) => "§2.1.2",
            ReservedFlags { .. } => "[MQTT-2.1.3-1]",
            RemainingLengthTooLong | VarIntTooLong => "§1.5.5",
            NonMinimalVarInt => "[MQTT-1.5.5-1]",
            PacketTooLarge { .. } => "[MQTT-3.2.2-15]",
            UnexpectedEnd | TrailingBytes => "§2.1.4",
            InvalidUtf8 => "[MQTT-1.5.4-1]",
            NullCharacter => "[MQTT-1.5.4-2]",
            PacketIdZero => "[MQTT-2.2.1-3]",
            Topic(t) => t.clause(),
            InvalidReasonCode { .. } => "§2.4",
            InvalidProtocolName => "[MQTT-3.1.2-1]",
            UnsupportedProtocolLevel(_) => "[MQTT-3.1.2-2]",
            ConnectReservedFlag => "[MQTT-3.1.2-3]",
            WillQoSWithoutWill => "[MQTT-3.1.2-11]",
            WillQoS3 => "[MQTT-3.1.2-12]",
            WillRetainWithoutWill => "[MQTT-3.1.2-13]",
            // 3.1.1 only: MQTT 5 allows a password without a user name.
            PasswordWithoutUsername => "[MQTT-3.1.2-22]",
            // 3.1.1's rule for an empty id without Clean Session; 3.1 requires 1..=23 characters.
            EmptyClientId => "[MQTT-3.1.3-8]",
            // MQTT 3.1 §3.1: "more than 23 characters ... return code 2: Identifier Rejected".
            ClientIdTooLongFor31(_) => "[MQTT 3.1 §3.1]",
            ConnAckReservedFlags => "[MQTT-3.2.2-1]",
            SessionPresentOnError => "[MQTT-3.2.2-6]",
            PublishQoS3 => "[MQTT-3.3.1-4]",
            DupWithQoS0 => "[MQTT-3.3.1-2]",
            TopicAliasZero => "[MQTT-3.3.2-8]",
            NoSubscribeFilters => "[MQTT-3.8.3-3]",
            NoUnsubscribeFilters => "[MQTT-3.10.3-2]",
            // One code per filter of the SUBSCRIBE/UNSUBSCRIBE, which has at least one.
            NoSubAckCodes => "[MQTT-3.9.3-1]",
            NoUnsubAckCodes => "[MQTT-3.11.3-1]",
            SubscriptionOptionsReserved => "[MQTT-3.8.3-5]",
            SubscriptionQoS3 | RetainHandling3 => "§3.8.3.1",
            NoLocalOnShared => "[MQTT-3.8.3-4]",
            UnknownProperty(_) | PropertyNotAllowed { .. } | DuplicateProperty(_) => "§2.2.2.2",
            InvalidPropertyValue(_) => "§2.2.2.2",
            AuthDataWithoutMethod => "§3.1.2.11.10",
        }
    }
}

impl From<TopicError> for DecodeError {
    fn from(e: TopicError) -> Self {
        DecodeError::Topic(e)
    }
}

/// Why a packet could not be encoded. Always a bug or a limit on the sending side: the
/// packet is not representable on the wire (or not in the requested protocol version).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    #[error("string of {0} bytes is longer than 65,535 (§1.5.4)")]
    StringTooLong(usize),
    #[error("binary data of {0} bytes is longer than 65,535 (§1.5.6)")]
    BinaryTooLong(usize),
    #[error("value {0} does not fit a variable byte integer (max 268,435,455, §1.5.5)")]
    VarIntTooLarge(u64),
    #[error("remaining length {0} exceeds 268,435,455 (§2.1.4)")]
    PacketTooLarge(u64),
    #[error("PUBLISH QoS and packet identifier disagree: QoS 0 has none, QoS 1/2 need one [MQTT-2.2.1-2]")]
    PacketIdMismatch,
    #[error("PUBLISH with QoS 0 and DUP set [MQTT-3.3.1-2]")]
    DupWithQoS0,
    #[error("{0:?} does not exist in MQTT 3.x")]
    NotInVersion(PacketType),
    #[error("reason code {code:?} cannot be expressed in a MQTT 3.x {packet_type:?}")]
    ReasonNotRepresentable {
        packet_type: PacketType,
        code: ReasonCode,
    },
    #[error("reason code {code:?} is not valid in {packet_type:?} (§2.4)")]
    InvalidReasonCode {
        packet_type: PacketType,
        code: ReasonCode,
    },
    #[error("property {0:#04x} holds a value the spec forbids (§2.2.2.2)")]
    InvalidPropertyValue(u8),
    #[error("{0:?} needs at least one entry in its payload")]
    EmptyPayload(PacketType),
    #[error("password without user name cannot be sent to MQTT 3.x [MQTT-3.1.2-22]")]
    PasswordWithoutUsername,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_carries_the_clause() {
        let e = DecodeError::ConnectReservedFlag;
        assert_eq!(e.to_string(), "CONNECT reserved flag is set [MQTT-3.1.2-3]");
        assert_eq!(e.reason_code(), ReasonCode::MalformedPacket);
        let e = DecodeError::Topic(TopicError::WildcardInName);
        assert_eq!(e.clause(), "[MQTT-3.3.2-2]");
        assert!(e.to_string().ends_with("[MQTT-3.3.2-2]"), "{e}");
        assert_eq!(e.reason_code(), ReasonCode::TopicNameInvalid);
    }

    #[test]
    fn reason_codes_follow_the_spec() {
        let too_large = DecodeError::PacketTooLarge { size: 10, max: 5 };
        assert_eq!(too_large.reason_code(), ReasonCode::PacketTooLarge);
        assert_eq!(
            DecodeError::UnsupportedProtocolLevel(6).reason_code(),
            ReasonCode::UnsupportedProtocolVersion
        );
        assert_eq!(
            DecodeError::DuplicateProperty(0x11).reason_code(),
            ReasonCode::ProtocolError
        );
        assert_eq!(
            DecodeError::EmptyClientId.reason_code(),
            ReasonCode::ClientIdentifierNotValid
        );
        assert_eq!(
            DecodeError::Topic(TopicError::PlusNotWholeLevel).reason_code(),
            ReasonCode::TopicFilterInvalid
        );
    }

    #[test]
    fn errors_are_small() {
        // Copied around on every decode call; keep them a few bytes.
        assert!(
            std::mem::size_of::<DecodeError>() <= 12,
            "{}",
            std::mem::size_of::<DecodeError>()
        );
    }
}
