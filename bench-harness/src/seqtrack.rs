//! Loss, order and duplicate detection for one stream: the messages one subscriber receives
//! from one publisher, each carrying the publisher's sequence number (0, 1, 2, ...).
//!
//! A bitset of seen sequence numbers tells a duplicate (seen before) from a reorder (a
//! late arrival below the highest seen). Gaps are sequence numbers below the highest seen
//! that never arrived; a stream knows nothing about messages after its highest, so run-wide
//! loss (expected minus unique received) is computed by the caller who knows what was sent.
//! Sequence numbers at or above `MAX_TRACKED` are counted but not tracked, which bounds the
//! memory a stream can take whatever the payload claims. Below it the bitset only grows as far
//! as the highest sequence number that arrived: one bit per message actually sent.

/// 2^30 sequence numbers per stream (over three minutes at 5 million msg/s from a single
/// publisher): a 128 MiB bitset at most.
pub const MAX_TRACKED: u64 = 1 << 30;

/// What one arrival was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arrival {
    /// The next sequence number, or any new one above it (a gap opens below).
    InOrder,
    /// New, but below the highest already seen: it arrived late.
    Reordered,
    /// Seen before.
    Duplicate,
    /// Beyond `MAX_TRACKED`: counted only.
    Untracked,
}

/// The received sequence numbers of one (subscriber, publisher) stream.
#[derive(Debug, Clone, Default)]
pub struct SeqStream {
    bits: Vec<u64>,
    /// One past the highest sequence number seen.
    end: u64,
    unique: u64,
    duplicates: u64,
    reordered: u64,
}

impl SeqStream {
    pub fn record(&mut self, seq: u64) -> Arrival {
        if seq >= MAX_TRACKED {
            return Arrival::Untracked;
        }
        let (word, bit) = ((seq / 64) as usize, seq % 64);
        if word >= self.bits.len() {
            // Grow geometrically so a long stream costs O(log n) reallocations.
            let want = (word + 1).max(self.bits.len() * 2).max(4);
            self.bits.resize(want, 0);
        }
        let mask = 1u64 << bit;
        let w = &mut self.bits[word];
        if *w & mask != 0 {
            self.duplicates += 1;
            return Arrival::Duplicate;
        }
        *w |= mask;
        self.unique += 1;
        if seq + 1 >= self.end {
            self.end = seq + 1;
            Arrival::InOrder
        } else {
            self.reordered += 1;
            Arrival::Reordered
        }
    }

    #[cfg(test)]
    pub fn unique(&self) -> u64 {
        self.unique
    }
    #[cfg(test)]
    pub fn duplicates(&self) -> u64 {
        self.duplicates
    }
    #[cfg(test)]
    pub fn reordered(&self) -> u64 {
        self.reordered
    }
    /// Sequence numbers below the highest seen that have not arrived.
    pub fn gaps(&self) -> u64 {
        self.end - self.unique
    }
    /// Missing given that the publisher sent `sent` messages (0..sent).
    #[cfg(test)]
    pub fn lost_of(&self, sent: u64) -> u64 {
        sent.max(self.end) - self.unique
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_order_stream_has_no_loss() {
        let mut s = SeqStream::default();
        for i in 0..1000 {
            assert_eq!(s.record(i), Arrival::InOrder);
        }
        assert_eq!(
            (s.unique(), s.duplicates(), s.reordered(), s.gaps()),
            (1000, 0, 0, 0)
        );
        assert_eq!(s.lost_of(1000), 0);
        assert_eq!(s.lost_of(1003), 3);
    }

    #[test]
    fn gaps_then_late_arrivals_are_reorders() {
        let mut s = SeqStream::default();
        for i in [0, 1, 2, 5, 6] {
            s.record(i);
        }
        assert_eq!(s.gaps(), 2); // 3 and 4
        assert_eq!(s.record(4), Arrival::Reordered);
        assert_eq!(s.gaps(), 1);
        assert_eq!(s.record(3), Arrival::Reordered);
        assert_eq!((s.unique(), s.reordered(), s.gaps()), (7, 2, 0));
    }

    #[test]
    fn duplicates_are_told_apart_from_reorders() {
        let mut s = SeqStream::default();
        s.record(0);
        s.record(1);
        assert_eq!(s.record(1), Arrival::Duplicate);
        assert_eq!(s.record(0), Arrival::Duplicate);
        s.record(3);
        assert_eq!(s.record(2), Arrival::Reordered);
        assert_eq!(s.record(2), Arrival::Duplicate);
        assert_eq!(
            (s.unique(), s.duplicates(), s.reordered(), s.gaps()),
            (4, 3, 1, 0)
        );
    }

    #[test]
    fn loss_with_a_missing_tail_and_missing_middle() {
        // Publisher sent 0..10; 3 and 8, 9 were lost.
        let mut s = SeqStream::default();
        for i in [0, 1, 2, 4, 5, 6, 7] {
            s.record(i);
        }
        assert_eq!(s.gaps(), 1);
        assert_eq!(s.lost_of(10), 3);
    }

    #[test]
    fn crosses_bitset_words_and_bounds_memory() {
        let mut s = SeqStream::default();
        assert_eq!(s.record(130), Arrival::InOrder);
        assert_eq!(s.record(63), Arrival::Reordered);
        assert_eq!(s.record(64), Arrival::Reordered);
        assert_eq!(s.record(130), Arrival::Duplicate);
        assert_eq!(s.gaps(), 131 - 3);
        assert_eq!(s.record(MAX_TRACKED), Arrival::Untracked);
        assert_eq!(s.record(u64::MAX), Arrival::Untracked);
        assert!(s.bits.len() <= 8);
    }
}
