//! Small protocol value types shared by every packet: protocol version, QoS, packet ids,
//! validated UTF-8 strings and the decoder's limits.
//!
//! Everything here is `Copy` or a cheap `Bytes` clone; nothing allocates per use.

use bytes::Bytes;
use std::num::NonZeroU16;

/// The protocol level carried in CONNECT (3.1.1 §3.1.2.2, 5.0 §3.1.2.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum ProtocolVersion {
    /// MQTT 3.1, protocol name "MQIsdp", level 3.
    V3_1 = 3,
    /// MQTT 3.1.1, protocol name "MQTT", level 4.
    V3_1_1 = 4,
    /// MQTT 5.0, protocol name "MQTT", level 5.
    V5 = 5,
}

impl ProtocolVersion {
    pub const fn level(self) -> u8 {
        self as u8
    }
    pub const fn is_v5(self) -> bool {
        matches!(self, ProtocolVersion::V5)
    }
}

/// Quality of service (§4.3). Value 3 is unrepresentable: the decoder rejects it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
#[repr(u8)]
pub enum QoS {
    #[default]
    AtMostOnce = 0,
    AtLeastOnce = 1,
    ExactlyOnce = 2,
}

impl QoS {
    pub const fn from_u8(v: u8) -> Option<Self> {
        match v {
            0 => Some(QoS::AtMostOnce),
            1 => Some(QoS::AtLeastOnce),
            2 => Some(QoS::ExactlyOnce),
            _ => None,
        }
    }
    pub const fn as_u8(self) -> u8 {
        self as u8
    }
}

/// A packet identifier: never zero [MQTT-2.2.1-3].
pub type PacketId = NonZeroU16;

/// A UTF-8 string as the spec defines it (§1.5.4): valid UTF-8, no U+0000, at most 65,535 bytes.
/// It is a zero-copy slice of the buffer it was decoded from.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct ByteStr(Bytes);

impl ByteStr {
    /// Wraps bytes that are already known to be valid UTF-8 (for example a `&'static str`).
    pub fn from_static(s: &'static str) -> Self {
        ByteStr(Bytes::from_static(s.as_bytes()))
    }

    /// Validates `b` as a spec UTF-8 string: valid UTF-8 and no U+0000 [MQTT-1.5.4-1] [MQTT-1.5.4-2].
    /// Returns the bytes back when they are not one.
    pub fn try_from_bytes(b: Bytes) -> Result<Self, Bytes> {
        match std::str::from_utf8(&b) {
            Ok(s) if !s.contains('\0') && b.len() <= u16::MAX as usize => Ok(ByteStr(b)),
            _ => Err(b),
        }
    }

    /// Wraps bytes the caller has already checked to be valid UTF-8 without U+0000 (the
    /// PUBLISH topic, whose U+0000 check shares `validate_name`'s scan).
    pub(crate) fn from_checked(b: Bytes) -> Self {
        ByteStr(b)
    }

    /// Exact-size copies of this string and of `payload` that share no buffer with their
    /// source, in one allocation (a PUBLISH's topic and payload that outlive the read
    /// buffer they were decoded from). Cloning either afterwards allocates nothing.
    pub fn detach_with(&self, payload: &[u8]) -> (ByteStr, Bytes) {
        let mut b = bytes::BytesMut::with_capacity(self.len() + payload.len());
        b.extend_from_slice(&self.0);
        b.extend_from_slice(payload);
        let topic = b.split_to(self.len());
        (ByteStr(topic.freeze()), b.freeze())
    }

    pub fn as_str(&self) -> &str {
        // SAFETY: every constructor checks that the bytes are valid UTF-8.
        unsafe { std::str::from_utf8_unchecked(&self.0) }
    }

    pub fn as_bytes(&self) -> &Bytes {
        &self.0
    }

    pub fn into_bytes(self) -> Bytes {
        self.0
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl From<String> for ByteStr {
    /// Panics never; a string holding U+0000 is still stored (the encoder writes what it is given).
    fn from(s: String) -> Self {
        ByteStr(Bytes::from(s))
    }
}

impl From<&str> for ByteStr {
    fn from(s: &str) -> Self {
        ByteStr(Bytes::copy_from_slice(s.as_bytes()))
    }
}

impl std::ops::Deref for ByteStr {
    type Target = str;
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl std::fmt::Debug for ByteStr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(self.as_str(), f)
    }
}

impl std::fmt::Display for ByteStr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What the decoder enforces before it buffers a body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest whole packet (fixed header included) accepted, in bytes. MQTT 5's Maximum Packet
    /// Size counts the whole packet (§3.1.2.11.4); the same rule is applied to v3 clients.
    pub max_packet_size: u32,
}

impl Limits {
    /// The protocol's own ceiling: remaining length 268,435,455 plus a 5-byte fixed header.
    pub const PROTOCOL_MAX: u32 = 268_435_455 + 5;
}

impl Default for Limits {
    fn default() -> Self {
        // 1 MiB: large enough for typical IoT payloads, small enough that a hostile
        // declared length cannot make the broker reserve much memory.
        Limits {
            max_packet_size: 1024 * 1024,
        }
    }
}
