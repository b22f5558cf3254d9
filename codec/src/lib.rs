//! ringmq's MQTT 3.1 / 3.1.1 / 5.0 codec: bytes in, packets out, no I/O.
//!
//! The only MQTT wire code in the project; the broker and the load harness both use it.
//! It never blocks, never allocates for a partial packet, and never panics on peer input.
//!
//! # Layout
//! - [`types`]: protocol version, QoS, packet ids, `ByteStr`, decoder `Limits`.
//! - [`packet`]: the 15 control packets and their MQTT 5 property structs.
//! - [`reason`]: MQTT 5 reason codes and 3.x CONNACK return codes.
//! - `decode` / `encode`: the wire format (filled in by the codec work).
//! - `topic`: topic name / filter validation and matching.

pub mod packet;
pub mod reason;
pub mod types;

pub use packet::*;
pub use reason::{ConnectReturnCode, ReasonCode};
pub use types::{ByteStr, Limits, PacketId, ProtocolVersion, QoS};
