//! What a shard does when `accept` fails for lack of descriptors (EMFILE, ENFILE): it sheds.
//! A spare descriptor is kept open for this; on failure it is closed, the waiting connection
//! is accepted and closed at once (the client sees a clean close, not a connection left
//! hanging in the backlog), and the spare is opened again. So the backlog drains, nothing
//! wakes the shard again until a new client arrives, and the listener is never polled in a
//! loop. When even the spare cannot be had, accepting pauses for `RETRY_MS`.
//!
//! Every failure is counted; the log gets one line at the first one and then at most one
//! summary per `LOG_EVERY_MS`, however many clients retry.

use std::cell::{Cell, RefCell};
use std::os::fd::{FromRawFd, OwnedFd};

/// How long accepting pauses when no descriptor can be freed to shed a connection.
pub const RETRY_MS: u64 = 1_000;

/// Least time between two log lines about failed accepts.
const LOG_EVERY_MS: u64 = 60_000;

#[derive(Default)]
pub struct Shed {
    spare: RefCell<Option<OwnedFd>>,
    /// Connections closed at accept for lack of descriptors, and accept failures.
    pub failures: Cell<u64>,
    logged_at: Cell<Option<u64>>,
    logged_failures: Cell<u64>,
    /// Accepting waits until then (no spare to shed with).
    pub retry_at_ms: Cell<u64>,
}

fn open_spare() -> Option<OwnedFd> {
    // SAFETY: open(2) with a static NUL-terminated path; the fd is owned by the result.
    let fd = unsafe { libc::open(c"/dev/null".as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) };
    // SAFETY: a fresh descriptor owned by nobody else.
    (fd >= 0).then(|| unsafe { OwnedFd::from_raw_fd(fd) })
}

impl Shed {
    pub fn new() -> Self {
        let s = Shed::default();
        *s.spare.borrow_mut() = open_spare();
        s
    }

    /// Whether `e` is the descriptor shortage this module handles.
    pub fn is_shortage(e: &std::io::Error) -> bool {
        matches!(e.raw_os_error(), Some(libc::EMFILE) | Some(libc::ENFILE))
    }

    /// Frees the spare descriptor to accept one waiting connection with. False when there
    /// is none (accepting then waits `RETRY_MS`).
    pub fn release_spare(&self, now_ms: u64) -> bool {
        if self.spare.borrow_mut().take().is_some() {
            return true;
        }
        self.retry_at_ms.set(now_ms + RETRY_MS);
        false
    }

    /// A connection was shed (or an accept failed): count it, reopen the spare, and log
    /// at most once per `LOG_EVERY_MS`.
    pub fn shed(&self, now_ms: u64, shard: u16, what: &std::io::Error) {
        self.failures.set(self.failures.get() + 1);
        {
            let mut spare = self.spare.borrow_mut();
            if spare.is_none() {
                *spare = open_spare();
            }
        }
        let due = self
            .logged_at
            .get()
            .is_none_or(|t| now_ms >= t + LOG_EVERY_MS);
        if due {
            let n = self.failures.get() - self.logged_failures.get();
            tracing::warn!(
                shard,
                "accept: {what}; {n} connection(s) closed at accept since the last report \
                 (raise LimitNOFILE / ulimit -n, or lower limits.max_connections; next report \
                 in {} s at the earliest)",
                LOG_EVERY_MS / 1000
            );
            self.logged_at.set(Some(now_ms));
            self.logged_failures.set(self.failures.get());
        }
    }
}
