//! Acknowledgements of a client's QoS 1/2 PUBLISHes that went to other shards.
//!
//! The PUBACK (PUBREC) of such a message leaves only once every destination shard confirmed
//! it took the message (`ShardMsg::PublishConfirm` -> `ShardMsg::Delivered`). So the
//! publisher's window bounds how much of its traffic is inside the broker, and the reason
//! code counts every subscriber (0x97 when all of them, on any shard, refused it). Before,
//! the publisher's shard acknowledged at once; when shards fell far behind (four shards on one
//! CPU) the cross-shard pause arrived seconds late and millions of acknowledged messages were
//! dropped at full queues. Per connection the acknowledgements leave in PUBLISH order
//! [MQTT-4.6.0-2]: one that needs no confirmation still waits behind earlier ones that do.
//! Nothing is kept for a connection with nothing waiting.

use super::deliver::RouteOutcome;
use super::Shard;
use crate::ids::ConnId;
use codec::{ByteStr, Packet, PacketId, PubAck, QoS, ReasonCode};
use std::collections::VecDeque;

/// One connection's acknowledgements that wait, oldest first.
#[derive(Debug, Default)]
pub(super) struct AckQueue(VecDeque<PendingAck>);

#[derive(Debug)]
struct PendingAck {
    token: u64,
    packet_id: PacketId,
    qos: QoS,
    /// A code decided before routing (0x87 Not authorized), else one from `outcome`.
    fixed: Option<ReasonCode>,
    outcome: RouteOutcome,
    /// Shards still to confirm.
    awaiting: u16,
}

impl Shard {
    /// A fresh token naming one confirmed publish (or one SUBSCRIBE's route update).
    pub(super) fn take_token(&mut self) -> u64 {
        let t = self.next_token;
        self.next_token += 1;
        t
    }

    /// Sends the acknowledgement of a client's QoS 1/2 PUBLISH now, or queues it until the
    /// shards in `outcome.awaiting` confirmed and every earlier one of `conn` has left.
    pub(super) fn acknowledge(
        &mut self,
        now_ms: u64,
        conn: ConnId,
        token: u64,
        (packet_id, qos): (PacketId, QoS),
        fixed: Option<ReasonCode>,
        outcome: RouteOutcome,
    ) {
        // The map is empty on a one-shard broker: no hash per message there.
        if outcome.awaiting == 0
            && (self.pending_acks.is_empty() || !self.pending_acks.contains_key(&conn))
        {
            return self.send_ack(conn, packet_id, qos, fixed, &outcome);
        }
        let awaiting = outcome.awaiting;
        self.pending_acks
            .entry(conn)
            .or_default()
            .0
            .push_back(PendingAck {
                token,
                packet_id,
                qos,
                fixed,
                outcome,
                awaiting,
            });
        self.flush_acks(now_ms, conn);
    }

    /// Another shard took (or refused) the message `token` of `conn`.
    pub(super) fn ack_delivered(
        &mut self,
        now_ms: u64,
        conn: ConnId,
        token: u64,
        accepted: u32,
        refused: u32,
    ) {
        let Some(q) = self.pending_acks.get_mut(&conn) else {
            return; // the connection is gone
        };
        if let Some(p) = q.0.iter_mut().find(|p| p.token == token) {
            p.awaiting = p.awaiting.saturating_sub(1);
            p.outcome.accepted += accepted;
            p.outcome.refused += refused;
        }
        self.flush_acks(now_ms, conn);
    }

    /// Sends the acknowledgements at the front of `conn`'s queue that are complete, and
    /// holds the connection while too many still wait (`hold_for_acks`).
    fn flush_acks(&mut self, now_ms: u64, conn: ConnId) {
        loop {
            let Some(q) = self.pending_acks.get_mut(&conn) else {
                return self.hold_for_acks(now_ms, conn, 0);
            };
            if q.0.front().is_none_or(|p| p.awaiting != 0) {
                let waiting = q.0.len();
                if waiting == 0 {
                    self.pending_acks.remove(&conn);
                }
                return self.hold_for_acks(now_ms, conn, waiting);
            }
            let Some(p) = q.0.pop_front() else { return };
            self.send_ack(conn, p.packet_id, p.qos, p.fixed, &p.outcome);
        }
    }

    fn send_ack(
        &mut self,
        conn: ConnId,
        packet_id: PacketId,
        qos: QoS,
        fixed: Option<ReasonCode>,
        outcome: &RouteOutcome,
    ) {
        let code = fixed.unwrap_or(if !outcome.matched {
            ReasonCode::NoMatchingSubscribers
        } else if outcome.all_refused() {
            ReasonCode::QuotaExceeded
        } else {
            ReasonCode::Success
        });
        let mut ack = PubAck::new(packet_id);
        if self.is_v5(conn) {
            ack.code = code;
            ack.properties.reason_string = match code {
                ReasonCode::NotAuthorized => Some(ByteStr::from_static("publish not authorized")),
                ReasonCode::QuotaExceeded => Some(ByteStr::from_static(
                    "every subscriber is offline with a full queue (limits.max_queued_messages)",
                )),
                _ => None,
            };
        }
        let pkt = if qos == QoS::AtLeastOnce {
            Packet::PubAck(ack)
        } else {
            Packet::PubRec(ack)
        };
        self.send(conn, &pkt);
    }
}
