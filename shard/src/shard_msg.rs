//! `ShardMsg`: the whole vocabulary that crosses cores. Nothing else moves between shards.
//!
//! Messages are batched per destination per executor turn by the broker; every variant is
//! `Send` and cheap to move (shared `Arc`/`Bytes`, no deep copies).

use crate::ids::{SessionKey, ShardId};
use crate::message::SharedMessage;
use crate::routes::ShardSet;
use crate::session::SharedTag;
use codec::{ByteStr, QoS};
use std::num::NonZeroU32;
use std::sync::Arc;

/// One cross-shard message.
#[derive(Debug, Clone)]
pub enum ShardMsg {
    /// Pause (or resume) reading one of the receiver's connections: a subscriber on the
    /// sender is congested by that publisher's messages.
    Throttle {
        conn: crate::ids::ConnId,
        pause: bool,
    },
    /// Deliver to this shard's local subscribers. Sent once per destination shard.
    Publish(SharedMessage),
    /// A client's QoS 1/2 PUBLISH sent on credit (its acknowledgement is already out):
    /// deliver like `Publish`, and give the credit back (`Credit`, once per turn).
    PublishCredited(SharedMessage),
    /// Credit given back: the receiver took `n` credited messages of the sender's.
    Credit { n: u32 },
    /// A client's QoS 1/2 PUBLISH with no credit left: deliver like `Publish`, then answer
    /// `Delivered` so the sender acknowledges it only once this shard took it (`shard::acks`).
    PublishConfirm {
        msg: SharedMessage,
        conn: crate::ids::ConnId,
        token: u64,
    },
    /// Answer to `PublishConfirm`: how many local sessions took the message or refused it.
    Delivered {
        conn: crate::ids::ConnId,
        token: u64,
        accepted: u32,
        refused: u32,
    },
    /// The sender gained its first local subscriber of `filter`. Answered with `RouteAck`.
    RouteAdd { filter: ByteStr, token: u64 },
    /// The sender lost its last local subscriber of `filter`.
    RouteRemove { filter: ByteStr },
    /// A route update was applied; `token` identifies the waiting SUBSCRIBE.
    RouteAck { token: u64 },
    /// The sender now has `members` members of `$share/{group}/{filter}` (absolute, so a
    /// repeat changes nothing; 0 = none). With a token (the sender's first member, which a
    /// SUBACK waits on) it is answered with `RouteAck`.
    SharedSet {
        group: ByteStr,
        filter: ByteStr,
        members: u32,
        token: Option<u64>,
    },
    /// Deliver to ONE member of a shared subscription on this shard, or pass it on.
    SharedPublish(Box<SharedDispatch>),
    /// Store (or, with an empty payload, delete) a retained message in this partition.
    Retain(SharedMessage),
    /// Send back the retained messages of this partition matching `filter`.
    RetainedQuery {
        filter: ByteStr,
        session: SessionKey,
        granted: QoS,
        sub_id: Option<NonZeroU32>,
    },
    /// The answer to a `RetainedQuery`, delivered by the home shard of `session`.
    RetainedReply {
        filter: ByteStr,
        session: SessionKey,
        granted: QoS,
        sub_id: Option<NonZeroU32>,
        messages: Vec<SharedMessage>,
    },
}

/// A message for one member of a shared subscription group.
#[derive(Debug, Clone)]
pub struct SharedDispatch {
    pub msg: SharedMessage,
    pub tag: Arc<SharedTag>,
    /// Shards that had no online member for it: it goes to an offline member only once
    /// every shard with members was tried (online members are preferred).
    pub tried: ShardSet,
    /// Sent on the link's credit: the receiver gives it back.
    pub credited: bool,
    /// A client's QoS 1/2 message sent without credit: the shard where it ends (queued, or
    /// dropped for want of a member) answers `Delivered` to the publisher's shard.
    pub confirm: Option<Confirm>,
}

/// Who waits for a confirmation: the publisher's shard, connection and publish token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Confirm {
    pub shard: ShardId,
    pub conn: crate::ids::ConnId,
    pub token: u64,
}

/// Messages waiting to leave this shard, one batch per destination.
#[derive(Debug, Default)]
pub struct Outbox {
    batches: Vec<Vec<ShardMsg>>,
}

impl Outbox {
    pub fn new(nr_shards: usize) -> Self {
        Outbox {
            batches: (0..nr_shards).map(|_| Vec::new()).collect(),
        }
    }

    pub fn push(&mut self, to: ShardId, msg: ShardMsg) {
        if let Some(b) = self.batches.get_mut(to.index()) {
            b.push(msg);
        }
    }

    /// Takes every non-empty batch, leaving empty ones behind.
    pub fn drain(&mut self) -> impl Iterator<Item = (ShardId, Vec<ShardMsg>)> + '_ {
        self.batches
            .iter_mut()
            .enumerate()
            .filter(|(_, b)| !b.is_empty())
            .map(|(i, b)| (ShardId(i as u16), std::mem::take(b)))
    }

    pub fn is_empty(&self) -> bool {
        self.batches.iter().all(|b| b.is_empty())
    }
}
