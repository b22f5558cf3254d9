//! Encode once for QoS 1/2 fan-out. The PUBLISH frame last encoded for a queued delivery is
//! kept with its message, so the next subscriber of the same message (the rest of a fan-out,
//! pumped one after another) gets a copy with its packet id patched in (`EncodedPublish`)
//! instead of a `Publish` built and encoded again. One entry per shard: deliveries of one
//! message are pumped together, and a miss costs what every delivery cost before.
//! (QoS 0 shares one frame by reference instead: `deliver_qos0_shared`.)

use super::deliver::{build_publish, Recipient};
use super::Shard;
use crate::ids::ConnId;
use crate::message::SharedMessage;
use crate::session::Delivery;
use codec::{EncodedPublish, PacketId, QoS};
use std::sync::Arc;

/// The last frame: its message (held, so the pointer stays that message's), the variant
/// (v5, QoS, RETAIN) and the encoding.
#[derive(Debug, Default)]
pub(super) struct LastFrame(Option<(SharedMessage, bool, QoS, bool, EncodedPublish)>);

impl Shard {
    /// Writes the PUBLISH of queued delivery `d` with packet id `id` to `conn`. False when
    /// it is larger than the client accepts (nothing written; the caller counts the drop).
    pub(super) fn send_queued_publish(
        &mut self,
        now_ms: u64,
        conn: ConnId,
        d: &Delivery,
        id: PacketId,
    ) -> bool {
        let Some(c) = self.conns.get(conn.slot, conn.gen) else {
            return false;
        };
        let v5 = c.version.is_v5();
        // Per-subscriber bytes (identifiers, aliases) or a remaining lifetime: build it.
        let shareable = d.subscription_ids.is_empty()
            && (!v5 || (c.out_alias_max == 0 && !d.msg.has_expiry_property()));
        if !shareable {
            let p = self.publish_packet(now_ms, conn, d, Some(id), false);
            return self.send_publish(conn, p);
        }
        let hit = matches!(&self.last_frame.0,
            Some((m, fv5, q, r, _)) if Arc::ptr_eq(m, &d.msg) && *fv5 == v5 && *q == d.qos && *r == d.retain);
        if !hit {
            let to = Recipient {
                v5,
                qos: d.qos,
                retain: d.retain,
            };
            let p = build_publish(now_ms, &d.msg, to, &[], Some(id), false);
            match EncodedPublish::new(&p, c.version) {
                Ok(e) => self.last_frame.0 = Some((d.msg.clone(), v5, d.qos, d.retain, e)),
                Err(_) => return self.send_publish(conn, p),
            }
        }
        let (Some((.., frame)), Some(c)) =
            (&self.last_frame.0, self.conns.get_mut(conn.slot, conn.gen))
        else {
            return false;
        };
        if v5 && frame.len() > c.client_max_packet as usize {
            self.stats.dropped_too_large += 1;
            return false;
        }
        frame.write_to(Some(id), false, c.out.tail_mut());
        self.stats.bytes_sent += frame.len() as u64;
        c.mark_dirty(&mut self.events);
        true
    }
}
