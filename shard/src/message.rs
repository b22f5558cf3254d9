//! The routed message: one PUBLISH as the broker carries it between sessions and shards.
//!
//! A `Message` is created once when a PUBLISH arrives and then shared by `Arc` with every
//! subscriber, queue and shard it reaches: payload and properties are never copied per
//! subscriber. It must stay immutable after creation (other shards read it concurrently).

use bytes::Bytes;
use codec::{ByteStr, PublishProperties, QoS};
use std::sync::Arc;

/// A published application message, shared by reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub topic: ByteStr,
    pub payload: Bytes,
    /// QoS the publisher used; each subscriber gets min(this, its granted QoS).
    pub qos: QoS,
    /// The RETAIN flag as published (kept for Retain As Published).
    pub retain: bool,
    /// MQTT 5 properties to forward (topic alias and subscription ids already stripped).
    pub properties: Option<Box<PublishProperties>>,
    /// Absolute expiry on the broker clock (ms), from Message Expiry Interval (capped by
    /// `max_message_expiry`). Only forwarded when the publisher set the property.
    pub expires_at_ms: Option<u64>,
    /// Client id of the publisher, the key of the `hash` shared-subscription strategy; set
    /// only when that strategy is configured (`None` also for messages the broker makes).
    pub publisher: Option<ByteStr>,
    /// The publishing connection of a QoS 1/2 message, so a congested subscriber can pause
    /// it (publisher back-pressure, `shard::throttle`); `None` for QoS 0 and broker messages.
    pub origin: Option<(crate::ids::ShardId, crate::ids::ConnId)>,
    /// Topic, payload and properties are exact-size allocations of their own. A decoded
    /// PUBLISH is not: its fields are slices of the read buffer, which they keep alive
    /// whole, so a message that stays (retained store, a session queue) is replaced by
    /// `detached()` first.
    pub owned: bool,
}

pub type SharedMessage = Arc<Message>;

impl Message {
    /// True when the message has a Message Expiry Interval that has passed at `now_ms`.
    pub fn is_expired(&self, now_ms: u64) -> bool {
        matches!(self.expires_at_ms, Some(t) if t <= now_ms)
    }

    /// Whether the publisher set a Message Expiry Interval, which is then forwarded with the
    /// remaining lifetime [MQTT-3.3.2-6].
    pub fn has_expiry_property(&self) -> bool {
        self.properties
            .as_ref()
            .is_some_and(|p| p.message_expiry_interval.is_some())
    }

    /// A copy whose topic, payload and properties share no buffer with this one (one
    /// allocation for topic and payload). Measured: a 64-byte retained message kept ~48 KB
    /// of RSS alive as a slice, 668 B as a copy (docs/benchmarks.md).
    pub fn detached(&self) -> Message {
        let (topic, payload) = self.topic.detach_with(&self.payload);
        let properties = self.properties.as_ref().map(|p| {
            let mut p = p.clone();
            p.detach();
            p
        });
        Message {
            topic,
            payload,
            properties,
            publisher: self.publisher.as_ref().map(|p| ByteStr::from(p.as_str())),
            owned: true,
            ..self.clone()
        }
    }
}

impl crate::retained::RetainedSize for Message {
    fn retained_bytes(&self) -> usize {
        self.payload.len() + self.properties.as_ref().map_or(0, |_| 64)
    }
}
