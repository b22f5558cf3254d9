//! Credit between shards: how a client's QoS 1/2 PUBLISH that crosses to another shard is
//! acknowledged without a round trip.
//!
//! Each shard holds, per other shard, a number of messages it may send there with their
//! PUBACK (PUBREC) given at once (`ShardConfig::link_credit`). The receiver delivers such a
//! message like any other (an online subscriber's queue always takes QoS 1/2 and pauses the
//! publishers that feed it; an offline one drops only as MQTT allows, counted) and gives the
//! credit back once per turn, with one `ShardMsg::Credit` per link, when the shard's outbox
//! is drained. With no credit left, the message goes as `PublishConfirm` and its
//! acknowledgement waits for the receiver's `Delivered` (`acks`): a receiver that falls
//! behind slows the publishers through their windows, and what is under way on a link is
//! bounded by its credit plus those windows. No counter is shared between cores.

use crate::ids::ShardId;
use crate::shard_msg::{Outbox, ShardMsg};

/// One shard's credit to every other shard, and what it owes back.
#[derive(Debug)]
pub(super) struct LinkCredit {
    /// Messages this shard may still send to each shard on credit.
    left: Vec<u32>,
    /// Credited messages taken from each shard since the last give-back.
    owed: Vec<u32>,
    any_owed: bool,
}

impl LinkCredit {
    pub(super) fn new(nr_shards: usize, credit: u32) -> Self {
        LinkCredit {
            left: vec![credit; nr_shards],
            owed: vec![0; nr_shards],
            any_owed: false,
        }
    }

    /// Takes one credit to `to`; false when none is left (the sender must ask to confirm).
    pub(super) fn take(&mut self, to: ShardId) -> bool {
        match self.left.get_mut(to.index()) {
            Some(n) if *n > 0 => {
                *n -= 1;
                true
            }
            _ => false,
        }
    }

    /// `from` gave `n` credits back.
    pub(super) fn returned(&mut self, from: ShardId, n: u32) {
        if let Some(left) = self.left.get_mut(from.index()) {
            *left = left.saturating_add(n);
        }
    }

    /// A credited message from `from` was taken.
    pub(super) fn owe(&mut self, from: ShardId) {
        if let Some(o) = self.owed.get_mut(from.index()) {
            *o += 1;
            self.any_owed = true;
        }
    }

    /// Queues one `Credit` per shard owed something (the end of a turn).
    pub(super) fn give_back(&mut self, outbox: &mut Outbox) {
        if !self.any_owed {
            return;
        }
        self.any_owed = false;
        for (i, o) in self.owed.iter_mut().enumerate() {
            if *o > 0 {
                outbox.push(ShardId(i as u16), ShardMsg::Credit { n: *o });
                *o = 0;
            }
        }
    }

    /// Credit left to `to`.
    #[cfg(test)]
    pub(super) fn left(&self, to: ShardId) -> u32 {
        self.left.get(to.index()).copied().unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credit_is_taken_until_none_is_left_and_comes_back_once_per_turn() {
        let mut a = LinkCredit::new(2, 2);
        let b_id = ShardId(1);
        assert!(a.take(b_id));
        assert!(a.take(b_id));
        assert!(
            !a.take(b_id),
            "no credit left: the sender must ask to confirm"
        );
        let mut b = LinkCredit::new(2, 2);
        let mut outbox = Outbox::new(2);
        b.owe(ShardId(0));
        b.owe(ShardId(0));
        b.give_back(&mut outbox);
        b.give_back(&mut outbox); // nothing more owed: no second message
        let batches: Vec<_> = outbox.drain().collect();
        assert_eq!(batches.len(), 1);
        let (to, msgs) = &batches[0];
        assert_eq!(*to, ShardId(0));
        assert!(matches!(msgs[..], [ShardMsg::Credit { n: 2 }]));
        a.returned(b_id, 2);
        assert_eq!(a.left(b_id), 2);
        assert!(a.take(b_id));
    }
}
