//! ringmq's MQTT 3.1 / 3.1.1 / 5.0 codec: bytes in, packets out, no I/O.
//!
//! The only MQTT wire code in the project; the broker and the load harness both use it.
//! It never blocks, never allocates for a partial packet, and never panics on peer input.
//!
//! # Layout
//! - [`types`]: protocol version, QoS, packet ids, `ByteStr`, decoder `Limits`.
//! - [`packet`]: the 15 control packets and their MQTT 5 property structs.
//! - [`reason`]: MQTT 5 reason codes and 3.x CONNACK return codes.
//! - [`error`]: `DecodeError` (one variant per rule, with reason code and spec clause) and
//!   `EncodeError`.
//! - `wire`: variable byte integers, integers, strings and binary data; the `Sink` that lets
//!   one function both measure and write.
//! - [`properties`] / `properties_encode`: the 27 MQTT 5 properties, per-packet decoding with
//!   the allowed-here, duplicate and value checks, and encoding.
//! - [`decode`](mod@decode): framing ([`peek_header`], [`decode()`]) and the per-family
//!   decoders in `decode/` (connect, publish and acks, subscribe family).
//! - [`encode`](mod@encode): [`encode()`], [`encoded_len`], per-family writers in `encode/`.
//! - [`encoded_publish`]: [`EncodedPublish`], a PUBLISH frame encoded once and written to
//!   many subscribers with only the packet id and DUP patched.
//! - [`topic`]: topic name / filter validation, `$share/` parsing and matching (its unit
//!   tests, the spec's §4.7 examples, are in `topic_tests.rs`).
//!
//! Wire-format tests with annotated byte vectors, one per packet and version, and one
//! negative test per rule, are one test binary in `tests/wire/`.

pub mod decode;
pub mod encode;
pub mod encoded_publish;
pub mod error;
pub mod packet;
pub mod properties;
mod properties_encode;
pub mod reason;
pub mod topic;
pub mod types;
mod wire;

pub use decode::{decode, peek_connect_version, peek_header, FixedHeader};
pub use encode::{encode, encoded_len};
pub use encoded_publish::EncodedPublish;
pub use error::{DecodeError, EncodeError};
pub use packet::*;
pub use reason::{ConnectReturnCode, ReasonCode};
pub use topic::TopicError;
pub use types::{ByteStr, Limits, PacketId, ProtocolVersion, QoS};
pub use wire::{parse_varint, varint_len, MAX_VARINT};
