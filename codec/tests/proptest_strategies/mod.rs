//! proptest strategies for arbitrary VALID MQTT packets of each protocol version.
//!
//! Shared by the property tests in `tests/proptest.rs`; not a test binary itself (cargo only
//! builds `tests/*.rs` and `tests/*/main.rs`). Every generated packet must be one the codec is
//! obliged to encode and decode unchanged: 3.x packets carry only what 3.x can express (v5
//! fields stay at their defaults), v5 packets carry arbitrary properties, user properties,
//! subscription ids and the reason codes the spec lists for that packet type. This module must
//! never generate a packet the spec forbids; rejects belong in the negative tests.

use bytes::Bytes;
use codec::*;
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::strategy::Union;
use std::num::{NonZeroU16, NonZeroU32};

mod packets;
use packets::*;
pub use packets::{codes, publish};

/// The three protocol versions.
pub fn version() -> impl Strategy<Value = ProtocolVersion> {
    prop_oneof![
        Just(ProtocolVersion::V3_1),
        Just(ProtocolVersion::V3_1_1),
        Just(ProtocolVersion::V5)
    ]
}

/// Any char the spec allows in a UTF-8 string: everything but U+0000 (surrogates cannot be a
/// Rust `char`). Control characters and non-characters are "SHOULD NOT" only (§1.5.4), so the
/// decoder must accept them. Weighted toward ASCII so the strings look like real topics.
fn text_char() -> impl Strategy<Value = char> {
    prop_oneof![
        6 => proptest::char::range('a', 'z'),
        1 => proptest::char::range('\u{1}', '\u{7f}'),
        1 => any::<char>().prop_filter("U+0000 is forbidden", |c| *c != '\0'),
    ]
}

/// A spec UTF-8 string of 0..=10 chars.
pub fn text() -> impl Strategy<Value = ByteStr> {
    vec(text_char(), 0..=10).prop_map(|cs| ByteStr::from(cs.into_iter().collect::<String>()))
}

/// Binary data (§1.5.6) of 0..=24 bytes.
pub fn binary() -> impl Strategy<Value = Bytes> {
    vec(any::<u8>(), 0..=24).prop_map(Bytes::from)
}

pub fn payload() -> impl Strategy<Value = Bytes> {
    prop_oneof![
        4 => vec(any::<u8>(), 0..=40).prop_map(Bytes::from),
        // Now and then a payload long enough to need a 2-byte remaining length.
        1 => vec(any::<u8>(), 120..=300).prop_map(Bytes::from),
    ]
}

pub fn user_properties() -> impl Strategy<Value = Vec<UserProperty>> {
    prop_oneof![
        2 => Just(Vec::new()),
        1 => vec((text(), text()), 1..=3),
    ]
}

/// One topic level: any text without `/`, `+`, `#` (may be empty: `a//b` is a valid name).
fn level() -> impl Strategy<Value = String> {
    vec(
        text_char().prop_filter("separator or wildcard", |c| !matches!(c, '/' | '+' | '#')),
        0..=5,
    )
    .prop_map(|cs| cs.into_iter().collect())
}

/// A valid topic name: 1..=4 levels, no wildcards, not empty [MQTT-4.7.3-1].
pub fn topic_name_string() -> impl Strategy<Value = String> {
    vec(level(), 1..=4)
        .prop_map(|ls| ls.join("/"))
        .prop_filter("empty topic name", |s| !s.is_empty())
}

pub fn topic_name() -> impl Strategy<Value = ByteStr> {
    topic_name_string().prop_map(ByteStr::from)
}

/// A valid topic filter: levels that are text or a whole `+`, optionally ending in `#`.
pub fn topic_filter_string() -> impl Strategy<Value = String> {
    let lvl = prop_oneof![3 => level(), 1 => Just("+".to_string())];
    (vec(lvl, 0..=4), any::<bool>())
        .prop_map(|(mut ls, hash)| {
            if hash || ls.is_empty() {
                ls.push("#".to_string());
            }
            ls.join("/")
        })
        .prop_filter("empty topic filter", |s| !s.is_empty())
}

/// A shared-subscription group name: non-empty, no `/`, `+` or `#` (§4.8.2).
fn share_group() -> impl Strategy<Value = String> {
    level().prop_filter("empty group", |s| !s.is_empty())
}

/// A filter as it appears in SUBSCRIBE/UNSUBSCRIBE: plain, or `$share/{group}/{filter}`.
/// Returns the filter and whether it is shared.
pub fn subscription_filter() -> impl Strategy<Value = (ByteStr, bool)> {
    prop_oneof![
        4 => topic_filter_string().prop_map(|f| (ByteStr::from(f), false)),
        1 => (share_group(), topic_filter_string())
            .prop_map(|(g, f)| (ByteStr::from(format!("$share/{g}/{f}")), true)),
    ]
}

pub(crate) fn packet_id() -> impl Strategy<Value = PacketId> {
    any::<u16>().prop_map(|n| NonZeroU16::new(n.max(1)).unwrap_or(NonZeroU16::MIN))
}

pub(crate) fn qos() -> impl Strategy<Value = QoS> {
    prop_oneof![
        Just(QoS::AtMostOnce),
        Just(QoS::AtLeastOnce),
        Just(QoS::ExactlyOnce)
    ]
}

/// A Subscription Identifier: 1..=268,435,455 (§3.3.2.3.8), biased to the varint edges.
pub(crate) fn subscription_id() -> impl Strategy<Value = NonZeroU32> {
    prop_oneof![
        Just(1u32),
        Just(127u32),
        Just(128u32),
        Just(16_383u32),
        Just(16_384u32),
        Just(2_097_151u32),
        Just(2_097_152u32),
        Just(268_435_455u32),
        1u32..=268_435_455,
    ]
    .prop_map(|n| NonZeroU32::new(n).unwrap_or(NonZeroU32::MIN))
}
/// Any valid packet of version `v`, every packet type equally likely (AUTH only in v5).
pub fn packet(v: ProtocolVersion) -> BoxedStrategy<Packet> {
    let mut arms: Vec<BoxedStrategy<Packet>> = vec![
        connect(v).boxed(),
        connack(v).boxed(),
        publish(v).prop_map(Packet::Publish).boxed(),
        pub_ack(v, codes::PUBACK).prop_map(Packet::PubAck).boxed(),
        pub_ack(v, codes::PUBACK).prop_map(Packet::PubRec).boxed(),
        pub_ack(v, codes::PUBREL).prop_map(Packet::PubRel).boxed(),
        pub_ack(v, codes::PUBREL).prop_map(Packet::PubComp).boxed(),
        subscribe(v).boxed(),
        suback(v).boxed(),
        unsubscribe(v).boxed(),
        unsuback(v).boxed(),
        Just(Packet::PingReq).boxed(),
        Just(Packet::PingResp).boxed(),
        disconnect(v).boxed(),
    ];
    if v.is_v5() {
        arms.push(auth().boxed());
    }
    Union::new(arms).boxed()
}

/// A version and a valid packet of that version.
pub fn versioned_packet() -> impl Strategy<Value = (ProtocolVersion, Packet)> {
    version().prop_flat_map(|v| (Just(v), packet(v)))
}
