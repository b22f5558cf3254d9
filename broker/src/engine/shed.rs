//! Counting and logging accepts the shard cannot take: its direct-descriptor table is full,
//! or accepting failed. Every one is counted; the log gets one line at the first and then at
//! most one summary per `LOG_EVERY_MS`, however many clients retry.

use std::cell::Cell;

/// How long accepting pauses after an accept error other than a full table.
pub const RETRY_MS: u64 = 1_000;

/// Least time between two log lines about refused accepts.
const LOG_EVERY_MS: u64 = 60_000;

#[derive(Default)]
pub struct Shed {
    /// Connections closed at accept because the table was full, and accept failures.
    pub failures: Cell<u64>,
    logged_at: Cell<Option<u64>>,
    logged_failures: Cell<u64>,
    /// Accepting waits until then after an error.
    pub retry_at_ms: Cell<u64>,
}

impl Shed {
    /// `n` clients were closed at accept because every table is full (`slots` in use).
    pub fn refuse(&self, now_ms: u64, shard: u16, slots: u64, n: u64) {
        self.failures.set(self.failures.get() + n);
        if self.due(now_ms) {
            let n = self.failures.get() - self.logged_failures.get();
            tracing::warn!(
                shard,
                "accept: all {slots} connection slots of the shard are in use; {n} \
                 connection(s) closed at accept since the last report (raise \
                 limits.max_connections, or LimitNOFILE / ulimit -n, which caps the slots of \
                 one table; next report in {} s at the earliest)",
                LOG_EVERY_MS / 1000
            );
            self.logged(now_ms);
        }
    }

    /// Accepting failed with errno `e` (retried after `RETRY_MS`).
    pub fn error(&self, now_ms: u64, shard: u16, e: i32) {
        self.failures.set(self.failures.get() + 1);
        if self.due(now_ms) {
            let what = std::io::Error::from_raw_os_error(e);
            tracing::warn!(
                shard,
                "accept: {what}; retrying in {} ms (next report in {} s at the earliest)",
                RETRY_MS,
                LOG_EVERY_MS / 1000
            );
            self.logged(now_ms);
        }
    }

    fn due(&self, now_ms: u64) -> bool {
        self.logged_at
            .get()
            .is_none_or(|t| now_ms >= t + LOG_EVERY_MS)
    }

    fn logged(&self, now_ms: u64) {
        self.logged_at.set(Some(now_ms));
        self.logged_failures.set(self.failures.get());
    }
}
