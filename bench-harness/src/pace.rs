//! Rate control for `-R` (connections per second) and `-I` (publish interval): `per_period`
//! events every `period_ns`, event k due at `start + k * period / per_period`.
//!
//! Kept as an exact rational schedule (no accumulated rounding drift over a long run) with a
//! bounded catch-up: after a stall, at most `burst` events are released at once and the
//! schedule restarts from there instead of flooding the broker with everything it missed.
//! Pure arithmetic on a caller-supplied clock, so tests run it in virtual time.

/// A schedule of events in time. `per_period == 0` means "no limit".
#[derive(Debug, Clone)]
pub struct Pacer {
    period_ns: u64,
    per_period: u64,
    burst: u64,
    /// Origin of the current schedule and the number issued when it was set.
    origin_ns: u64,
    origin_k: u64,
    issued: u64,
}

impl Pacer {
    /// `per_period` events every `period_ns` nanoseconds, starting at `start_ns` (the first
    /// event is due at `start_ns`).
    pub fn new(start_ns: u64, period_ns: u64, per_period: u64, burst: u64) -> Self {
        Pacer {
            period_ns: period_ns.max(1),
            per_period,
            burst: burst.max(1),
            origin_ns: start_ns,
            origin_k: 0,
            issued: 0,
        }
    }

    /// `rate` events per second.
    pub fn per_second(start_ns: u64, rate: u64, burst: u64) -> Self {
        Self::new(start_ns, 1_000_000_000, rate, burst)
    }

    pub fn unlimited(&self) -> bool {
        self.per_period == 0
    }

    fn due_time(&self, k: u64) -> u64 {
        let rel = (k - self.origin_k) as u128 * self.period_ns as u128 / self.per_period as u128;
        self.origin_ns
            .saturating_add(rel.min(u64::MAX as u128) as u64)
    }

    /// How many events may be issued at `now_ns` (at most `burst`; `u64::MAX` when unlimited).
    pub fn ready(&mut self, now_ns: u64) -> u64 {
        if self.unlimited() {
            return u64::MAX;
        }
        if now_ns < self.due_time(self.issued) {
            return 0;
        }
        // Events due by now: k with origin + (k-origin_k)*period/per <= now.
        let elapsed = (now_ns - self.origin_ns) as u128;
        let due_total = self.origin_k as u128
            + (elapsed * self.per_period as u128) / self.period_ns as u128
            + 1;
        let behind = (due_total - self.issued as u128).min(u64::MAX as u128) as u64;
        if behind > self.burst {
            // Stalled: release one burst and restart the schedule after it.
            // The burst is events origin_k..origin_k+burst-1, the last one due now.
            let back = ((self.burst - 1) as u128 * self.period_ns as u128 / self.per_period as u128)
                as u64;
            self.origin_ns = now_ns.saturating_sub(back);
            self.origin_k = self.issued;
            return self.burst;
        }
        behind
    }

    /// Records that `n` events were issued.
    pub fn take(&mut self, n: u64) {
        self.issued += n;
    }

    #[cfg(test)]
    pub fn issued(&self) -> u64 {
        self.issued
    }

    /// When the next event is due, or `None` when unlimited.
    pub fn next_due(&self) -> Option<u64> {
        (!self.unlimited()).then(|| self.due_time(self.issued))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000_000;

    /// Drives a pacer with a virtual clock ticking every `tick` ns from `start`, plus a last
    /// reading just before `end`, issuing everything ready; returns the total count issued.
    fn drive(p: &mut Pacer, start: u64, end: u64, tick: u64) -> u64 {
        let mut now = start;
        while now < end {
            let n = p.ready(now);
            p.take(n);
            now += tick;
        }
        let n = p.ready(end - 1);
        p.take(n);
        p.issued()
    }

    #[test]
    fn connection_rate_gives_exact_count_in_virtual_time() {
        // -R 1000 for 10 s, clock read every 1 ms: exactly 10,000 connections.
        let mut p = Pacer::per_second(5 * S, 1000, 1000);
        assert_eq!(drive(&mut p, 5 * S, 15 * S, 1_000_000), 10_000);
        // Read every 7 ms (not a divisor): still exact, since due events are released in groups.
        let mut p = Pacer::per_second(0, 1000, 1000);
        assert_eq!(drive(&mut p, 0, 10 * S, 7_000_000), 10_000);
    }

    #[test]
    fn odd_rates_do_not_drift() {
        // 3 per second is a period of 333,333,333.33 ns; after 1,000 s it must be 3,000, not 3,003.
        let mut p = Pacer::per_second(0, 3, 3);
        assert_eq!(drive(&mut p, 0, 1000 * S, 10_000_000), 3000);
        // The worker share of -R 1000 over 3 workers holding 10, 10 and 11 of 31 connections.
        let mut p = Pacer::new(0, S * 31, 1000 * 11, 100);
        assert_eq!(drive(&mut p, 0, 31 * S, 1_000_000), 11_000);
    }

    #[test]
    fn publish_interval_over_publishers() {
        // -I 100 ms with 50 publishers in this worker: 500 msg/s, 5,000 in 10 s.
        let mut p = Pacer::new(0, 100_000_000, 50, 50);
        assert_eq!(drive(&mut p, 0, 10 * S, 1_000_000), 5000);
        assert_eq!(p.next_due(), Some(10 * S));
    }

    #[test]
    fn first_event_is_due_at_start_and_next_due_is_exact() {
        let mut p = Pacer::per_second(100, 4, 10);
        assert_eq!(p.ready(99), 0);
        assert_eq!(p.ready(100), 1);
        p.take(1);
        assert_eq!(p.next_due(), Some(100 + S / 4));
        assert_eq!(p.ready(100 + S / 4 - 1), 0);
        assert_eq!(p.ready(100 + S / 4), 1);
    }

    #[test]
    fn a_stall_releases_one_burst_then_resumes_the_rate() {
        let mut p = Pacer::per_second(0, 100, 20);
        let n = p.ready(0);
        p.take(n);
        // Nothing read for 5 s: 500 events are overdue, only 20 are released.
        assert_eq!(p.ready(5 * S), 20);
        p.take(20);
        assert_eq!(p.ready(5 * S), 0);
        // Then the rate is 100/s again: 100 more in the next second.
        let issued = drive(&mut p, 5 * S + 1, 6 * S + 1, 1_000_000);
        assert_eq!(issued, 1 + 20 + 100);
    }

    #[test]
    fn unlimited_is_always_ready() {
        let mut p = Pacer::per_second(0, 0, 1);
        assert!(p.unlimited());
        assert_eq!(p.ready(0), u64::MAX);
        assert_eq!(p.next_due(), None);
    }
}
