//! `TimerWheel<T>`: the one timer structure of a shard (keepalive, retry, will delay, session
//! expiry, message expiry), a hierarchical timing wheel with millisecond resolution.
//!
//! It owns pending items and the wheel's notion of time; it never reads a clock (the caller
//! passes `now_ms` on the broker's monotonic clock) and never sleeps.
//!
//! There is no cancel. A caller that re-arms or drops a timer keeps a generation number in
//! its own state and puts it in `T`; when an item fires whose generation no longer matches,
//! the caller ignores it. That keeps the wheel free of handles and back-pointers, and a
//! stale item costs one comparison when it fires.
//!
//! Layout: 11 levels of 64 slots; level `L` slots are `64^L` ms wide, so 66 bits cover every
//! `u64` deadline (2^32 s is 2^42 ms). An item sits at the level of the highest bit where
//! its deadline differs from the wheel's time, in the slot given by that level's 6 bits of
//! the deadline. `advance` takes the earliest occupied slot (found with one bitmap per
//! level, so empty stretches of time cost nothing), fires the items that are due and moves
//! the others down a level: at most 11 moves per item, O(1) amortized.
//!
//! ```text
//!  deadline bits:  | L10 |  L9  | ... |  L1  |  L0  |
//!                   63-60 59-54         11-6    5-0
//! ```

/// Bits of deadline per level, and slots per level.
const SLOT_BITS: u32 = 6;
const SLOTS: usize = 1 << SLOT_BITS;
/// Enough levels that any `u64` deadline has a place: 11 × 6 = 66 ≥ 64.
const LEVELS: usize = 11;

struct Level<T> {
    /// Bit `s` set when `slots[s]` is not empty.
    occupied: u64,
    slots: [Vec<(u64, T)>; SLOTS],
}

/// A hierarchical timing wheel; see the module documentation.
pub struct TimerWheel<T> {
    /// Every item with a deadline at or before this time has been handed out (or is in `due`).
    elapsed: u64,
    levels: Box<[Level<T>; LEVELS]>,
    /// Items inserted with a deadline already reached; handed out by the next `advance`.
    due: Vec<(u64, T)>,
    len: usize,
    /// An empty buffer with capacity, swapped with a slot while it is processed so that slot
    /// vectors keep their allocations instead of being freed and regrown every millisecond.
    spare: Vec<(u64, T)>,
}

/// Level of a deadline `d > elapsed`: where the highest differing bit lies.
#[inline]
fn level_of(elapsed: u64, d: u64) -> usize {
    let msb = 63 - (elapsed ^ d).leading_zeros();
    (msb / SLOT_BITS) as usize
}

#[inline]
fn slot_of(level: usize, d: u64) -> usize {
    ((d >> (level as u32 * SLOT_BITS)) as usize) & (SLOTS - 1)
}

/// Start time of `slot` at `level` in the block of time that contains `elapsed`.
#[inline]
fn slot_start(elapsed: u64, level: usize, slot: usize) -> u64 {
    let shift = (level as u32 + 1) * SLOT_BITS;
    let high = if shift >= 64 {
        0
    } else {
        (elapsed >> shift) << shift
    };
    high | ((slot as u64) << (level as u32 * SLOT_BITS))
}

impl<T> TimerWheel<T> {
    /// An empty wheel whose time is `now_ms`. Starting at 0 is fine too: the first
    /// `advance` moves it to the broker's clock in one step, however far that is.
    pub fn new(now_ms: u64) -> Self {
        TimerWheel {
            elapsed: now_ms,
            levels: Box::new(std::array::from_fn(|_| Level {
                occupied: 0,
                slots: std::array::from_fn(|_| Vec::new()),
            })),
            due: Vec::new(),
            len: 0,
            spare: Vec::new(),
        }
    }

    /// Pending items, stale ones included.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The wheel's time: the latest `now_ms` given to `advance` (or `new`).
    pub fn now(&self) -> u64 {
        self.elapsed
    }

    /// Schedules `item` to be handed out by the first `advance(now)` with `now >= deadline_ms`.
    /// A deadline already reached is handed out by the next `advance`.
    pub fn insert(&mut self, deadline_ms: u64, item: T) {
        self.len += 1;
        if deadline_ms <= self.elapsed {
            self.due.push((deadline_ms, item));
        } else {
            self.place(deadline_ms, item);
        }
    }

    /// `d > self.elapsed`.
    fn place(&mut self, d: u64, item: T) {
        let level = level_of(self.elapsed, d);
        let slot = slot_of(level, d);
        let l = &mut self.levels[level];
        l.slots[slot].push((d, item));
        l.occupied |= 1 << slot;
    }

    /// The lowest occupied level and its first occupied slot. Every item of a lower level
    /// lies in the current block of the higher ones, before any of their occupied slots, so
    /// this slot holds the earliest deadlines.
    fn first_occupied(&self) -> Option<(usize, usize)> {
        self.levels
            .iter()
            .position(|l| l.occupied != 0)
            .map(|level| (level, self.levels[level].occupied.trailing_zeros() as usize))
    }

    /// Moves every item whose deadline is `<= now_ms` into `out` (appended; `out` is not
    /// cleared) and sets the wheel's time to `now_ms`. Items come out in deadline order,
    /// except that items inserted with an already-reached deadline come first. A `now_ms`
    /// earlier than the wheel's time only hands out those.
    pub fn advance(&mut self, now_ms: u64, out: &mut Vec<T>) {
        self.len -= self.due.len();
        out.extend(self.due.drain(..).map(|(_, t)| t));
        while let Some((level, slot)) = self.first_occupied() {
            let start = slot_start(self.elapsed, level, slot);
            if start > now_ms {
                break;
            }
            // Entering this slot's block: everything in it is due now or belongs lower.
            self.elapsed = start;
            let mut items = std::mem::take(&mut self.spare);
            let l = &mut self.levels[level];
            std::mem::swap(&mut items, &mut l.slots[slot]);
            l.occupied &= !(1 << slot);
            for (d, t) in items.drain(..) {
                if d <= start {
                    self.len -= 1;
                    out.push(t);
                } else {
                    self.place(d, t);
                }
            }
            self.spare = items;
        }
        // No occupied slot starts at or before `now_ms`, so moving time there keeps every
        // item at a valid level (its deadline still differs from the time in the same bits).
        self.elapsed = self.elapsed.max(now_ms);
    }

    /// A time at which to call `advance` next: never later than the earliest pending
    /// deadline, possibly earlier (the start of a coarse slot, after which a new call gives
    /// a finer answer). `None` when nothing is pending.
    pub fn next_deadline(&self) -> Option<u64> {
        if let Some(min) = self.due.iter().map(|(d, _)| *d).min() {
            return Some(min);
        }
        let (level, slot) = self.first_occupied()?;
        Some(slot_start(self.elapsed, level, slot))
    }
}

impl<T> Default for TimerWheel<T> {
    fn default() -> Self {
        Self::new(0)
    }
}

#[cfg(test)]
#[path = "timer_tests.rs"]
mod tests;
