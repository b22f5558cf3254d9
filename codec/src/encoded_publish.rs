//! A PUBLISH encoded once and written to many subscribers (DESIGN "Encode once").
//!
//! [`EncodedPublish`] holds one complete frame in a shared `Bytes`: topic, properties and
//! payload are encoded a single time. Per subscriber only two things can differ, the DUP
//! bit in the first byte and the packet id, so [`EncodedPublish::write_to`] is one memcpy
//! plus a patch of those three bytes, and a QoS 0 frame is handed out as-is by
//! [`EncodedPublish::frame`] (a reference count, no copy). It never re-encodes anything.
//!
//! ```text
//! | 0x3_ | remaining length | topic len | topic | packet id (QoS>0: placeholder) | props | payload |
//!    ^ DUP patched per write                         ^ patched per write
//! ```

use crate::encode::publish::write_frame;
use crate::error::EncodeError;
use crate::packet::Publish;
use crate::types::{PacketId, ProtocolVersion, QoS};
use bytes::{Bytes, BytesMut};

/// A PUBLISH frame for one protocol version, QoS, RETAIN flag and property set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodedPublish {
    frame: Bytes,
    qos: QoS,
    /// Offset of the two packet-id bytes in `frame`; `None` at QoS 0.
    id_offset: Option<usize>,
}

impl EncodedPublish {
    /// Encodes `p` for `version` once. `p.dup` and `p.packet_id` are ignored: they are given
    /// per subscriber to [`EncodedPublish::write_to`].
    pub fn new(p: &Publish, version: ProtocolVersion) -> Result<Self, EncodeError> {
        let mut buf = BytesMut::new();
        let remaining = write_frame(p, version, false, 0, &mut buf)?;
        let header_len = buf.len() - remaining;
        let id_offset = (p.qos != QoS::AtMostOnce).then_some(header_len + 2 + p.topic.len());
        Ok(EncodedPublish {
            frame: buf.freeze(),
            qos: p.qos,
            id_offset,
        })
    }

    /// Appends the frame for one subscriber.
    ///
    /// `packet_id` must be `Some` exactly when the frame's QoS is 1 or 2, and `dup` may only be
    /// set then ([MQTT-3.3.1-2]); at QoS 0 both are ignored. Giving no id at QoS 1/2 is a
    /// caller bug: debug builds panic, release builds write id 0.
    pub fn write_to(&self, packet_id: Option<PacketId>, dup: bool, out: &mut BytesMut) {
        let start = out.len();
        out.extend_from_slice(&self.frame);
        let Some(offset) = self.id_offset else {
            return;
        };
        debug_assert!(
            packet_id.is_some(),
            "QoS {:?} PUBLISH written without a packet id",
            self.qos
        );
        let id = packet_id.map_or(0, |id| id.get()).to_be_bytes();
        // Both indices lie inside the frame just appended.
        if let Some(first) = out.get_mut(start) {
            *first |= u8::from(dup) << 3;
        }
        if let Some(slot) = out.get_mut(start + offset..start + offset + 2) {
            slot.copy_from_slice(&id);
        }
    }

    /// The whole frame, shared, for QoS 0 (which has no per-subscriber bytes); `None` at QoS 1/2.
    pub fn frame(&self) -> Option<Bytes> {
        match self.id_offset {
            None => Some(self.frame.clone()),
            Some(_) => None,
        }
    }

    /// The frame's size in bytes (what `write_to` appends).
    pub fn len(&self) -> usize {
        self.frame.len()
    }

    /// Never true: a PUBLISH frame has at least a fixed header and a topic length.
    pub fn is_empty(&self) -> bool {
        self.frame.is_empty()
    }

    pub fn qos(&self) -> QoS {
        self.qos
    }
}
